//! `/metrics` for operators beyond the outbox: counters kept in memory since the daemon
//! started (messages received, HTTP responses, ingest latency), and the queue and SLA per
//! team, read from the store at each scrape.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::http::StatusCode;
use switchboard_connector_core::ChannelKind;

use crate::query::TeamCounts;

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

/// Counters kept in memory since the daemon started. Each event is one relaxed atomic
/// add (two or three for an ingest): no lock, no allocation.
pub struct Metrics {
    /// Per inbox key: its channel and the messages stored from it.
    received: BTreeMap<String, (&'static str, AtomicU64)>,
    /// HTTP responses by status class, 1xx to 5xx.
    responses: [AtomicU64; 5],
    /// Webhook ingests per latency bucket (not cumulative); the last is above every bound.
    ingest_buckets: [AtomicU64; INGEST_BUCKETS.len() + 1],
    ingest_micros: AtomicU64,
}

impl Metrics {
    /// Counters at zero for these inboxes (key and channel).
    pub fn new<'a>(inboxes: impl IntoIterator<Item = (&'a str, ChannelKind)>) -> Metrics {
        Metrics {
            received: inboxes
                .into_iter()
                .map(|(key, channel)| (key.to_owned(), (channel.as_str(), AtomicU64::new(0))))
                .collect(),
            responses: Default::default(),
            ingest_buckets: Default::default(),
            ingest_micros: AtomicU64::new(0),
        }
    }

    /// A customer message from `inbox` was stored (not a duplicate).
    pub fn received(&self, inbox: &str) {
        if let Some((_, count)) = self.received.get(inbox) {
            count.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The HTTP interface answered with `status`.
    pub fn responded(&self, status: StatusCode) {
        if let Some(count) = self.responses.get(usize::from(status.as_u16() / 100).wrapping_sub(1)) {
            count.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A webhook message was ingested (stored, or known as a duplicate) in `took`.
    pub fn ingested(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        let bucket = INGEST_BUCKETS
            .iter()
            .position(|(bound, _)| seconds <= *bound)
            .unwrap_or(INGEST_BUCKETS.len());
        self.ingest_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.ingest_micros
            .fetch_add(u64::try_from(took.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
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
        text.push_str(
            "# HELP switchboard_http_responses_total HTTP responses since the daemon started, by status class.\n\
             # TYPE switchboard_http_responses_total counter\n",
        );
        for (class, count) in self.responses.iter().enumerate() {
            let _ = writeln!(
                text,
                "switchboard_http_responses_total{{code=\"{}xx\"}} {}",
                class + 1,
                count.load(Ordering::Relaxed)
            );
        }
        text.push_str(
            "# HELP switchboard_ingest_seconds Time to store a webhook message (or recognise a duplicate), since the daemon started.\n\
             # TYPE switchboard_ingest_seconds histogram\n",
        );
        let mut cumulative = 0;
        for ((_, bound), count) in INGEST_BUCKETS.iter().zip(&self.ingest_buckets) {
            cumulative += count.load(Ordering::Relaxed);
            let _ = writeln!(text, "switchboard_ingest_seconds_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        cumulative += self.ingest_buckets[INGEST_BUCKETS.len()].load(Ordering::Relaxed);
        let sum = self.ingest_micros.load(Ordering::Relaxed) as f64 / 1_000_000.0;
        let _ = write!(
            text,
            "switchboard_ingest_seconds_bucket{{le=\"+Inf\"}} {cumulative}\n\
             switchboard_ingest_seconds_sum {sum:.6}\n\
             switchboard_ingest_seconds_count {cumulative}\n"
        );
    }
}
