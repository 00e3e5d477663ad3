//! `/metrics` for operators beyond the outbox: counters kept in memory since the daemon
//! started (messages received, HTTP requests by route, ingest latency per channel), the
//! pull readers' state as they report it, and what is read from the store at each scrape
//! (the queue and SLA per team, SLA events counted from the event log, subscriptions'
//! backlogs).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use axum::http::StatusCode;
use switchboard_connector_core::ChannelKind;

use crate::channels::registry::REGISTERED;
use crate::query::{SlaEventCounts, SubscriptionBacklog, TeamCounts};

/// A team gauge's value, from the team's counts and the time now.
type TeamValue = fn(&TeamCounts, i64) -> String;

/// The queue and SLA gauges of each active team, in the Prometheus text format.
pub fn render_teams(text: &mut String, teams: &[TeamCounts], now_ms: i64) {
    let families: [(&str, &str, TeamValue); 4] = [
        (
            "switchboard_queue_waiting",
            "Open conversations nobody is assigned to, per team.",
            |team, _| team.waiting.to_string(),
        ),
        (
            "switchboard_queue_oldest_waiting_seconds",
            "How long the longest-waiting conversation of a team's queue has waited; 0 when none waits.",
            |team, now| {
                let age = team
                    .oldest_waiting_since
                    .map_or(0.0, |since| (now - since.0).max(0) as f64 / 1000.0);
                format!("{age:.3}")
            },
        ),
        (
            "switchboard_sla_at_risk",
            "Unresolved conversations with an SLA clock past its warning, not yet breached, per team.",
            |team, _| team.at_risk.to_string(),
        ),
        (
            "switchboard_sla_breached_open",
            "Unresolved conversations with an SLA breach, per team.",
            |team, _| team.breached.to_string(),
        ),
    ];
    for (name, help, value) in families {
        let _ = write!(text, "# HELP {name} {help}\n# TYPE {name} gauge\n");
        for team in teams {
            let _ = writeln!(text, "{name}{{team=\"{}\"}} {}", team.key, value(team, now_ms));
        }
    }
}

/// An SLA counter's value, from a team's warnings and breaches.
type SlaValue = fn(&(u64, u64)) -> u64;

/// Each team's SLA warnings and breaches ever recorded, as counters: read from the event
/// log, they survive restarts and agree across daemons sharing a store. Every active team
/// is listed, at 0 before its first; a team since deactivated keeps its counts.
pub fn render_sla_events(text: &mut String, teams: &[TeamCounts], counts: &[SlaEventCounts]) {
    let mut by_team: BTreeMap<&str, (u64, u64)> = teams.iter().map(|team| (team.key.as_str(), (0, 0))).collect();
    for count in counts {
        by_team.insert(&count.team, (count.warnings, count.breaches));
    }
    let families: [(&str, &str, SlaValue); 2] = [
        (
            "switchboard_sla_warnings_total",
            "SLA warnings recorded, per team the conversation was in; from the event log, so since the desk began.",
            |(warnings, _)| *warnings,
        ),
        (
            "switchboard_sla_breaches_total",
            "SLA breaches recorded, per team the conversation was in; from the event log, so since the desk began.",
            |(_, breaches)| *breaches,
        ),
    ];
    for (name, help, value) in families {
        let _ = write!(text, "# HELP {name} {help}\n# TYPE {name} counter\n");
        for (team, counts) in &by_team {
            let _ = writeln!(text, "{name}{{team=\"{team}\"}} {}", value(counts));
        }
    }
}

/// Each subscription's deliveries waiting to go, and how long the oldest has waited.
pub fn render_subscriptions(text: &mut String, backlogs: &[SubscriptionBacklog], now_ms: i64) {
    if backlogs.is_empty() {
        return;
    }
    text.push_str(
        "# HELP switchboard_subscription_pending Event deliveries of a subscription not yet sent nor failed.\n\
         # TYPE switchboard_subscription_pending gauge\n",
    );
    for backlog in backlogs {
        let _ = writeln!(
            text,
            "switchboard_subscription_pending{{subscription=\"{}\"}} {}",
            backlog.subscription_id, backlog.pending
        );
    }
    text.push_str(
        "# HELP switchboard_subscription_oldest_pending_age_seconds Age of a subscription's oldest delivery not yet sent nor failed; 0 when none waits.\n\
         # TYPE switchboard_subscription_oldest_pending_age_seconds gauge\n",
    );
    for backlog in backlogs {
        let age = backlog
            .oldest_pending_at
            .map_or(0.0, |at| (now_ms - at).max(0) as f64 / 1000.0);
        let _ = writeln!(
            text,
            "switchboard_subscription_oldest_pending_age_seconds{{subscription=\"{}\"}} {age:.3}",
            backlog.subscription_id
        );
    }
}

/// Upper bounds (seconds) of the ingest latency histogram's buckets.
const INGEST_BUCKETS: [(f64, &str); 12] = [
    (0.001, "0.001"),
    (0.0025, "0.0025"),
    (0.005, "0.005"),
    (0.01, "0.01"),
    (0.025, "0.025"),
    (0.05, "0.05"),
    (0.1, "0.1"),
    (0.25, "0.25"),
    (0.5, "0.5"),
    (1.0, "1"),
    (2.5, "2.5"),
    (5.0, "5"),
];

/// Responses of one route template (or of no route), by status class 1xx to 5xx.
type ClassCounts = [AtomicU64; 5];

/// The label of requests no route matched: their paths are whatever a caller sent, so
/// they share one series instead of one each.
pub const UNMATCHED: &str = "unmatched";

/// One ingest latency histogram: per bucket (not cumulative; the last is above every
/// bound), and the sum.
#[derive(Default)]
struct Histogram {
    buckets: [AtomicU64; INGEST_BUCKETS.len() + 1],
    micros: AtomicU64,
}

/// A pull reader's state (an IMAP mailbox, a polling Telegram bot), written by the
/// reader with relaxed stores and read at each scrape.
#[derive(Default)]
pub struct ReaderStatus {
    connected: AtomicBool,
    /// Unix milliseconds of the last look for new messages that succeeded; 0 before one.
    polled_at: AtomicI64,
}

impl ReaderStatus {
    /// The reader's session is up (`true`) or down: lost, failing, or stopped because
    /// another daemon holds the reader's lease.
    pub fn set_connected(&self, connected: bool) {
        self.connected.store(connected, Ordering::Relaxed);
    }

    /// The reader asked the server for new messages, and it answered, at `now_ms`.
    pub fn polled(&self, now_ms: i64) {
        self.polled_at.store(now_ms, Ordering::Relaxed);
    }

    /// Marks the reader connected until the guard is dropped: whether its session ends
    /// in an error or is cancelled mid-await (lease lost, shutdown), it shows down.
    pub fn connected(self: &Arc<ReaderStatus>) -> ConnectedGuard {
        self.set_connected(true);
        ConnectedGuard(Arc::clone(self))
    }
}

/// See [`ReaderStatus::connected`].
pub struct ConnectedGuard(Arc<ReaderStatus>);

impl Drop for ConnectedGuard {
    fn drop(&mut self) {
        self.0.set_connected(false);
    }
}

/// Counters kept in memory since the daemon started. Each event is one relaxed atomic
/// add (two for an ingest): no lock, no allocation.
pub struct Metrics {
    /// Per inbox key: its channel and the messages stored from it.
    received: BTreeMap<String, (&'static str, AtomicU64)>,
    /// Each route template's index in `responses`, from the router as it was built;
    /// [`UNMATCHED`] is the last. A fixed table: a label per raw path would grow with
    /// every id and every scanner's guess.
    routes: HashMap<Box<str>, usize>,
    /// The templates in `responses`' order, for rendering.
    templates: Vec<Box<str>>,
    responses: Box<[ClassCounts]>,
    /// Ingest latency per channel, in [`REGISTERED`]'s order.
    ingest: Box<[Histogram]>,
    /// Channels with a configured inbox: only their histograms are shown.
    channels: Vec<ChannelKind>,
    /// Per pull reader's inbox key: its channel and state.
    readers: BTreeMap<String, (&'static str, Arc<ReaderStatus>)>,
}

impl Metrics {
    /// Counters at zero for these inboxes (key, channel, and whether a reader pulls its
    /// messages) and the router's route templates.
    pub fn new<'a>(
        inboxes: impl IntoIterator<Item = (&'a str, ChannelKind, bool)>,
        templates: impl IntoIterator<Item = String>,
    ) -> Metrics {
        let inboxes: Vec<_> = inboxes.into_iter().collect();
        let mut templates: Vec<Box<str>> = templates.into_iter().map(String::into_boxed_str).collect();
        templates.sort();
        templates.dedup();
        templates.push(UNMATCHED.into());
        let mut channels: Vec<ChannelKind> = inboxes.iter().map(|(_, channel, _)| *channel).collect();
        channels.sort_by_key(|channel| channel_index(*channel));
        channels.dedup();
        Metrics {
            received: inboxes
                .iter()
                .map(|(key, channel, _)| ((*key).to_owned(), (channel.as_str(), AtomicU64::new(0))))
                .collect(),
            routes: templates
                .iter()
                .enumerate()
                .map(|(index, template)| (template.clone(), index))
                .collect(),
            responses: templates.iter().map(|_| ClassCounts::default()).collect(),
            templates,
            ingest: REGISTERED.iter().map(|_| Histogram::default()).collect(),
            channels,
            readers: inboxes
                .iter()
                .filter(|(_, _, pulls)| *pulls)
                .map(|(key, channel, _)| ((*key).to_owned(), (channel.as_str(), Arc::default())))
                .collect(),
        }
    }

    /// A customer message from `inbox` was stored (not a duplicate).
    pub fn received(&self, inbox: &str) {
        if let Some((_, count)) = self.received.get(inbox) {
            count.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The index of `template` (the route a request matched; `None` when none did) in
    /// the response counters, looked up before the request is handed on.
    pub fn route(&self, template: Option<&str>) -> usize {
        template
            .and_then(|template| self.routes.get(template).copied())
            .unwrap_or(self.templates.len() - 1)
    }

    /// The HTTP interface answered a request of `route` (from [`Metrics::route`]) with
    /// `status`.
    pub fn responded(&self, route: usize, status: StatusCode) {
        let class = usize::from(status.as_u16() / 100).wrapping_sub(1);
        if let Some(count) = self.responses.get(route).and_then(|classes| classes.get(class)) {
            count.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A message of `channel` was ingested (stored, or known as a duplicate) in `took`.
    pub fn ingested(&self, channel: ChannelKind, took: Duration) {
        let histogram = &self.ingest[channel_index(channel)];
        let seconds = took.as_secs_f64();
        let bucket = INGEST_BUCKETS
            .iter()
            .position(|(bound, _)| seconds <= *bound)
            .unwrap_or(INGEST_BUCKETS.len());
        histogram.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        histogram
            .micros
            .fetch_add(u64::try_from(took.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// The state the pull reader of `inbox` keeps; `None` for an inbox nothing pulls.
    pub fn reader(&self, inbox: &str) -> Option<&Arc<ReaderStatus>> {
        self.readers.get(inbox).map(|(_, status)| status)
    }

    /// The counters and the histogram in the Prometheus text format.
    pub fn render(&self, text: &mut String) {
        text.push_str(
            "# HELP switchboard_messages_received_total Customer messages stored since the daemon started, per inbox and channel; duplicates not counted.\n\
             # TYPE switchboard_messages_received_total counter\n",
        );
        for (inbox, (channel, count)) in &self.received {
            let _ = writeln!(
                text,
                "switchboard_messages_received_total{{inbox=\"{inbox}\",channel=\"{channel}\"}} {}",
                count.load(Ordering::Relaxed)
            );
        }
        let counts: Vec<[u64; 5]> = self
            .responses
            .iter()
            .map(|classes| classes.each_ref().map(|count| count.load(Ordering::Relaxed)))
            .collect();
        text.push_str(
            "# HELP switchboard_http_responses_total HTTP responses since the daemon started, by status class.\n\
             # TYPE switchboard_http_responses_total counter\n",
        );
        for class in 0..5 {
            let total: u64 = counts.iter().map(|classes| classes[class]).sum();
            let _ = writeln!(
                text,
                "switchboard_http_responses_total{{code=\"{}xx\"}} {total}",
                class + 1
            );
        }
        text.push_str(
            "# HELP switchboard_http_requests_total HTTP requests since the daemon started, by route template (\"unmatched\" when no route matched) and status class; a series appears with its first request.\n\
             # TYPE switchboard_http_requests_total counter\n",
        );
        for (template, classes) in self.templates.iter().zip(&counts) {
            for (class, count) in classes.iter().enumerate().filter(|(_, count)| **count > 0) {
                let _ = writeln!(
                    text,
                    "switchboard_http_requests_total{{route=\"{template}\",code=\"{}xx\"}} {count}",
                    class + 1
                );
            }
        }
        text.push_str(
            "# HELP switchboard_ingest_seconds Time to store a customer message (or recognise a duplicate) since the daemon started, per channel; an email's is its batch's.\n\
             # TYPE switchboard_ingest_seconds histogram\n",
        );
        for channel in &self.channels {
            let histogram = &self.ingest[channel_index(*channel)];
            let channel = channel.as_str();
            let mut cumulative = 0;
            for ((_, bound), count) in INGEST_BUCKETS.iter().zip(&histogram.buckets) {
                cumulative += count.load(Ordering::Relaxed);
                let _ = writeln!(
                    text,
                    "switchboard_ingest_seconds_bucket{{channel=\"{channel}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            cumulative += histogram.buckets[INGEST_BUCKETS.len()].load(Ordering::Relaxed);
            let sum = histogram.micros.load(Ordering::Relaxed) as f64 / 1_000_000.0;
            let _ = write!(
                text,
                "switchboard_ingest_seconds_bucket{{channel=\"{channel}\",le=\"+Inf\"}} {cumulative}\n\
                 switchboard_ingest_seconds_sum{{channel=\"{channel}\"}} {sum:.6}\n\
                 switchboard_ingest_seconds_count{{channel=\"{channel}\"}} {cumulative}\n"
            );
        }
        if self.readers.is_empty() {
            return;
        }
        text.push_str(
            "# HELP switchboard_reader_connected 1 while a pull reader's session with its server is up; 0 while it is down or another daemon holds its lease.\n\
             # TYPE switchboard_reader_connected gauge\n",
        );
        for (inbox, (channel, status)) in &self.readers {
            let _ = writeln!(
                text,
                "switchboard_reader_connected{{inbox=\"{inbox}\",channel=\"{channel}\"}} {}",
                u8::from(status.connected.load(Ordering::Relaxed))
            );
        }
        text.push_str(
            "# HELP switchboard_reader_last_poll_timestamp_seconds When a pull reader last looked for new messages and the server answered, in Unix seconds; 0 before its first look.\n\
             # TYPE switchboard_reader_last_poll_timestamp_seconds gauge\n",
        );
        for (inbox, (channel, status)) in &self.readers {
            let at = status.polled_at.load(Ordering::Relaxed) as f64 / 1000.0;
            let _ = writeln!(
                text,
                "switchboard_reader_last_poll_timestamp_seconds{{inbox=\"{inbox}\",channel=\"{channel}\"}} {at:.3}"
            );
        }
    }
}

fn channel_index(channel: ChannelKind) -> usize {
    REGISTERED.iter().position(|kind| *kind == channel).unwrap_or_default()
}
