//! Reports: what happened on the desk between two instants, counted from the facts the
//! daemon keeps (conversations' times, the event log, responses, message tallies, SLA
//! clocks), grouped by one of the conversation's attributes and by hour, day or week.
//! The store reads the facts ([`ReportFacts`]); the figures are made here, once, so a
//! report and its drill-down (the conversations behind a figure) cannot disagree. The
//! definitions are docs/REPORTS.md's.

use std::collections::{BTreeMap, HashMap};

use rustc_hash::FxHashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::Visibility;
use crate::model::Timestamp;
use crate::model::clock::ClockKind;
use crate::model::hours::BusinessHours;

/// The quarter hour `message_tallies` counts messages by (`created_at / SLOT_MS`): every
/// time zone's offset is a multiple of it, so hours, days and weeks are whole slots.
pub const SLOT_MS: i64 = 900_000;

/// What a report groups by: the conversation's attribute now (its current team, its
/// current assignee), not as it was when each fact happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grouping {
    Team,
    Agent,
    Channel,
    Inbox,
    Language,
    Priority,
}

impl Grouping {
    pub const NAMES: &'static str = "team, agent, channel, inbox, language, priority";

    pub fn parse(text: &str) -> Option<Grouping> {
        Some(match text {
            "team" => Grouping::Team,
            "agent" => Grouping::Agent,
            "channel" => Grouping::Channel,
            "inbox" => Grouping::Inbox,
            "language" => Grouping::Language,
            "priority" => Grouping::Priority,
            _ => return None,
        })
    }
}

/// The length of a report's time buckets, in the report's time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interval {
    Hour,
    Day,
    /// From Monday 00:00.
    Week,
}

impl Interval {
    pub const NAMES: &'static str = "hour, day, week";

    pub fn parse(text: &str) -> Option<Interval> {
        Some(match text {
            "hour" => Interval::Hour,
            "day" => Interval::Day,
            "week" => Interval::Week,
            _ => return None,
        })
    }
}

/// The most buckets one report has: a month by the hour, years by the week.
pub const MAX_BUCKETS: usize = 1_000;

/// `[from, to)` cut where each hour, day or week begins in `zone`: the first and last
/// buckets may be partial. `None` when there would be more than [`MAX_BUCKETS`].
pub fn buckets(from: i64, to: i64, zone: &jiff::tz::TimeZone, interval: Interval) -> Option<Vec<(i64, i64)>> {
    use jiff::ToSpan;
    let local = zone.to_datetime(jiff::Timestamp::from_millisecond(from).ok()?);
    let midnight = local.date().to_datetime(jiff::civil::Time::midnight());
    let instant = |civil: jiff::civil::DateTime| {
        zone.to_ambiguous_timestamp(civil)
            .compatible()
            .ok()
            .map(|at| at.as_millisecond())
    };
    let first = match interval {
        Interval::Hour => midnight.checked_add(i64::from(local.hour()).hours()).ok()?,
        Interval::Day => midnight,
        Interval::Week => midnight
            .checked_sub(i64::from(local.weekday().to_monday_zero_offset()).days())
            .ok()?,
    };
    let mut cuts = vec![from];
    let mut civil = first;
    let mut hour_start = instant(first)?;
    loop {
        // Hours step in absolute time (a DST day has 23 or 25 of them); days and weeks
        // in civil time, so each begins at local midnight.
        let at = match interval {
            Interval::Hour => {
                hour_start += 3_600_000;
                hour_start
            }
            Interval::Day | Interval::Week => {
                civil = civil
                    .checked_add(if interval == Interval::Day { 1.day() } else { 1.week() })
                    .ok()?;
                instant(civil)?
            }
        };
        if at >= to {
            break;
        }
        if at > *cuts.last()? {
            cuts.push(at);
        }
        if cuts.len() > MAX_BUCKETS {
            return None;
        }
    }
    cuts.push(to);
    Some(cuts.windows(2).map(|pair| (pair[0], pair[1])).collect())
}

/// The facts of `[from, to)` the caller may see.
#[derive(Debug, Clone)]
pub struct ReportRequest {
    pub from: i64,
    pub to: i64,
    pub grouping: Option<Grouping>,
    pub visible_to: Visibility,
}

/// A conversation with a fact in the range: its own times, or one of the events,
/// responses, messages or clocks below.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationFact {
    pub id: i64,
    /// The grouping's value (`None`: no team, unassigned, no language).
    pub key: Option<String>,
    /// Its team now: whose business hours measure it.
    pub team: Option<String>,
    pub created_at: i64,
    pub first_response_at: Option<i64>,
    pub resolved_at: Option<i64>,
    /// How often it was passed on (escalated or transferred), ever.
    pub transfer_count: i64,
    pub csat_score: Option<i64>,
    pub csat_requested_at: Option<i64>,
    pub csat_answered_at: Option<i64>,
}

/// What a counted event says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// `conversation.status_changed` to `resolved`.
    Resolved,
    /// `conversation.status_changed` from `resolved` or `closed` to `open`.
    Reopened,
    /// `conversation.escalated`: to the next tier of the department, or to another one.
    Escalated {
        hierarchical: bool,
    },
    /// `conversation.transferred`.
    Transferred,
    SlaWarning {
        clock: ClockKind,
    },
    SlaBreached {
        clock: ClockKind,
        actions: BreachActionsTaken,
    },
}

/// What a breach did besides being recorded (the `actions` of `sla.breached`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BreachActionsTaken {
    pub escalated: bool,
    pub priority_raised: bool,
    pub notified: bool,
    pub labelled: bool,
}

impl EventKind {
    /// The events the store reads for reports; every other kind counts nowhere.
    pub const COUNTED: [&'static str; 5] = [
        "conversation.status_changed",
        "conversation.escalated",
        "conversation.transferred",
        "sla.warning",
        "sla.breached",
    ];

    /// An event row as a report reads it; `None` for what no figure counts (a status
    /// change to `pending`, say) or data this version cannot read.
    pub fn of(kind: &str, data: &str) -> Option<EventKind> {
        #[derive(Deserialize)]
        struct Status<'a> {
            #[serde(borrow)]
            from: Option<&'a str>,
            #[serde(borrow)]
            to: Option<&'a str>,
        }
        #[derive(Deserialize)]
        struct Escalation<'a> {
            #[serde(borrow)]
            kind: Option<&'a str>,
        }
        #[derive(Deserialize)]
        struct Sla<'a> {
            #[serde(borrow)]
            clock: &'a str,
            notified: Option<serde::de::IgnoredAny>,
            #[serde(default)]
            actions: Actions,
        }
        #[derive(Deserialize, Default)]
        struct Actions {
            escalate_to: Option<String>,
            #[serde(default)]
            raise_priority: bool,
            label: Option<String>,
        }
        Some(match kind {
            "conversation.status_changed" => {
                let status: Status<'_> = serde_json::from_str(data).ok()?;
                match (status.from, status.to) {
                    (_, Some("resolved")) => EventKind::Resolved,
                    (Some("resolved" | "closed"), Some("open")) => EventKind::Reopened,
                    _ => return None,
                }
            }
            "conversation.escalated" => {
                let escalation: Escalation<'_> = serde_json::from_str(data).ok()?;
                EventKind::Escalated {
                    hierarchical: escalation.kind == Some("hierarchical"),
                }
            }
            "conversation.transferred" => EventKind::Transferred,
            "sla.warning" => {
                let sla: Sla<'_> = serde_json::from_str(data).ok()?;
                EventKind::SlaWarning {
                    clock: ClockKind::parse(sla.clock)?,
                }
            }
            "sla.breached" => {
                let sla: Sla<'_> = serde_json::from_str(data).ok()?;
                EventKind::SlaBreached {
                    clock: ClockKind::parse(sla.clock)?,
                    actions: BreachActionsTaken {
                        escalated: sla.actions.escalate_to.is_some(),
                        priority_raised: sla.actions.raise_priority,
                        notified: sla.notified.is_some(),
                        labelled: sla.actions.label.is_some(),
                    },
                }
            }
            _ => return None,
        })
    }
}

/// A counted event of the range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFact {
    pub conversation_id: i64,
    pub at: i64,
    pub kind: EventKind,
}

/// An agent's reply of the range that answered a waiting customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseFact {
    pub conversation_id: i64,
    pub waited_from: i64,
    pub answered_at: i64,
    pub first: bool,
    /// What the response clock said: breached, met in time, or no clock ran.
    pub sla_breached: Option<bool>,
}

/// A conversation's messages of one quarter hour of the range (or of the part of it in
/// the range, at the range's edges), from `at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TallyFact {
    pub conversation_id: i64,
    pub at: i64,
    /// Customers' messages, agents' replies, automated updates, notes.
    pub counts: [i64; 4],
}

/// A resolution or max-open clock that reached its goal in the range without breaching.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClockMetFact {
    pub conversation_id: i64,
    pub clock: ClockKind,
    pub at: i64,
}

/// What the store read for a report: every fact's conversation is in `conversations`
/// (the store drops facts of conversations the reader may not see).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReportFacts {
    pub conversations: Vec<ConversationFact>,
    pub events: Vec<EventFact>,
    pub responses: Vec<ResponseFact>,
    pub tallies: Vec<TallyFact>,
    pub clocks_met: Vec<ClockMetFact>,
}

/// Durations, in milliseconds: in calendar time, and in the business hours of each
/// conversation's team (the same as calendar time for a team open around the clock).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Durations {
    pub count: usize,
    pub median_ms: Option<i64>,
    pub p90_ms: Option<i64>,
    pub average_ms: Option<i64>,
    pub business_median_ms: Option<i64>,
    pub business_p90_ms: Option<i64>,
    pub business_average_ms: Option<i64>,
}

/// Median and p90 by nearest rank (the smallest value with at least that share of the
/// values at or below it) and the average rounded to the millisecond.
fn summary(mut values: Vec<i64>) -> (Option<i64>, Option<i64>, Option<i64>) {
    values.sort_unstable();
    let rank = |share: f64| {
        let index = ((share * values.len() as f64).ceil() as usize).max(1) - 1;
        values.get(index).copied()
    };
    let average = (!values.is_empty()).then(|| {
        let sum: i128 = values.iter().map(|value| i128::from(*value)).sum();
        (sum as f64 / values.len() as f64).round() as i64
    });
    (rank(0.5), rank(0.9), average)
}

impl Durations {
    /// From `(calendar, business)` pairs.
    fn of(pairs: Vec<(i64, i64)>) -> Durations {
        let count = pairs.len();
        let (calendar, business): (Vec<i64>, Vec<i64>) = pairs.into_iter().unzip();
        let (median_ms, p90_ms, average_ms) = summary(calendar);
        let (business_median_ms, business_p90_ms, business_average_ms) = summary(business);
        Durations {
            count,
            median_ms,
            p90_ms,
            average_ms,
            business_median_ms,
            business_p90_ms,
            business_average_ms,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Csat {
    /// Questions asked in the range.
    pub asked: usize,
    /// Answers given in the range.
    pub answers: usize,
    /// Of the questions asked in the range, the share answered (at any time until now).
    pub response_rate: Option<f64>,
    pub average: Option<f64>,
    /// Answers by score, 1 to 5.
    pub distribution: BTreeMap<String, usize>,
}

/// One SLA clock's outcomes in the range.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ClockFigures {
    /// Runs of the clock that reached their goal in time (a response sent, a resolution).
    pub met: usize,
    /// Runs that breached.
    pub breached: usize,
    /// `met / (met + breached)`; `null` when none was decided.
    pub share_met: Option<f64>,
    pub warnings: usize,
}

/// What the breaches of the range did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BreachActions {
    pub escalated: usize,
    pub priority_raised: usize,
    pub supervisors_notified: usize,
    pub labelled_overdue: usize,
}

/// One group's figures (or the whole range's, or one bucket's).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Figures {
    pub opened: usize,
    pub resolved: usize,
    pub reopened: usize,
    pub messages_in: i64,
    pub messages_out: i64,
    pub automated_updates: i64,
    pub notes: i64,
    pub first_response: Durations,
    pub next_response: Durations,
    pub resolution: Durations,
    pub escalations: usize,
    pub escalations_functional: usize,
    pub escalations_hierarchical: usize,
    pub escalated: usize,
    pub transfers: usize,
    pub transferred: usize,
    /// Of the conversations resolved in the range, the share never passed on.
    pub resolved_without_transfer: Option<f64>,
    /// Of the conversations resolved in the range, how often each was passed on
    /// (escalated or transferred) in its life, on average.
    pub transfers_per_conversation: Option<f64>,
    pub sla_warnings: usize,
    pub sla_breaches: usize,
    pub breached: usize,
    /// Per clock: `first_response`, `next_response`, `resolution`, `max_open`.
    pub sla: BTreeMap<&'static str, ClockFigures>,
    pub breach_actions: BreachActions,
    pub csat: Csat,
}

/// A figure that names conversations, for the drill-down: its count is the number of
/// conversations the drill-down lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Figure {
    Opened,
    Resolved,
    Reopened,
    FirstResponse,
    NextResponse,
    Resolution,
    Escalated,
    Transferred,
    ResolvedWithoutTransfer,
    Breached,
    CsatAsked,
    CsatAnswers,
}

impl Figure {
    const ALL: [(Figure, &'static str); 12] = [
        (Figure::Opened, "opened"),
        (Figure::Resolved, "resolved"),
        (Figure::Reopened, "reopened"),
        (Figure::FirstResponse, "first_response"),
        (Figure::NextResponse, "next_response"),
        (Figure::Resolution, "resolution"),
        (Figure::Escalated, "escalated"),
        (Figure::Transferred, "transferred"),
        (Figure::ResolvedWithoutTransfer, "resolved_without_transfer"),
        (Figure::Breached, "breached"),
        (Figure::CsatAsked, "csat_asked"),
        (Figure::CsatAnswers, "csat_answers"),
    ];

    pub const NAMES: &'static str = "opened, resolved, reopened, first_response, next_response, resolution, escalated, \
                                     transferred, resolved_without_transfer, breached, csat_asked, csat_answers";

    pub fn parse(text: &str) -> Option<Figure> {
        Figure::ALL
            .iter()
            .find(|(_, name)| *name == text)
            .map(|(figure, _)| *figure)
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

fn within(at: Option<i64>, from: i64, to: i64) -> bool {
    at.is_some_and(|at| from <= at && at < to)
}

/// Business hours by team key; a team absent is open around the clock.
pub type Calendars = HashMap<String, Arc<BusinessHours>>;

/// The facts one figure computation reads: a slice of the report's (a group, a bucket).
#[derive(Default)]
struct Slice<'a> {
    /// Conversations whose own times (opened, resolved, asked, answered) may fall in it.
    conversations: Vec<&'a ConversationFact>,
    events: Vec<&'a EventFact>,
    responses: Vec<&'a ResponseFact>,
    tallies: Vec<&'a TallyFact>,
    clocks_met: Vec<&'a ClockMetFact>,
}

impl<'a> Slice<'a> {
    fn all(facts: &'a ReportFacts) -> Slice<'a> {
        Slice {
            conversations: facts.conversations.iter().collect(),
            events: facts.events.iter().collect(),
            responses: facts.responses.iter().collect(),
            tallies: facts.tallies.iter().collect(),
            clocks_met: facts.clocks_met.iter().collect(),
        }
    }

    /// Split by a key of each fact's conversation.
    fn split<K: Ord>(
        &self,
        by_id: &FxHashMap<i64, &'a ConversationFact>,
        key: impl Fn(&'a ConversationFact) -> K,
    ) -> BTreeMap<K, Slice<'a>> {
        // Each conversation's part is found once; its facts then go to it by id.
        let mut order: BTreeMap<K, usize> = BTreeMap::new();
        let mut part_of: FxHashMap<i64, usize> = FxHashMap::default();
        for fact in by_id.values() {
            let next = order.len();
            let part = *order.entry(key(fact)).or_insert(next);
            part_of.insert(fact.id, part);
        }
        let mut parts: Vec<Slice<'a>> = (0..order.len()).map(|_| Slice::default()).collect();
        for fact in &self.conversations {
            if let Some(part) = part_of.get(&fact.id) {
                parts[*part].conversations.push(fact);
            }
        }
        macro_rules! spread {
            ($field:ident) => {
                for fact in &self.$field {
                    if let Some(part) = part_of.get(&fact.conversation_id) {
                        parts[*part].$field.push(fact);
                    }
                }
            };
        }
        spread!(events);
        spread!(responses);
        spread!(tallies);
        spread!(clocks_met);
        order
            .into_iter()
            .map(|(key, part)| (key, std::mem::take(&mut parts[part])))
            .collect()
    }

    /// Split into `buckets` by each fact's time; a conversation goes to every bucket one
    /// of its own times falls in.
    fn by_bucket(&self, buckets: &[(i64, i64)]) -> Vec<Slice<'a>> {
        let mut parts: Vec<Slice<'a>> = buckets.iter().map(|_| Slice::default()).collect();
        let index = |at: i64| {
            let i = buckets.partition_point(|(start, _)| *start <= at);
            (i > 0 && at < buckets[i - 1].1).then(|| i - 1)
        };
        for fact in &self.conversations {
            let mut seen: Vec<usize> = [
                Some(fact.created_at),
                fact.resolved_at,
                fact.csat_requested_at,
                fact.csat_answered_at,
            ]
            .into_iter()
            .flatten()
            .filter_map(index)
            .collect();
            seen.sort_unstable();
            seen.dedup();
            for i in seen {
                parts[i].conversations.push(fact);
            }
        }
        for fact in &self.events {
            if let Some(i) = index(fact.at) {
                parts[i].events.push(fact);
            }
        }
        for fact in &self.responses {
            if let Some(i) = index(fact.answered_at) {
                parts[i].responses.push(fact);
            }
        }
        for fact in &self.tallies {
            if let Some(i) = index(fact.at) {
                parts[i].tallies.push(fact);
            }
        }
        for fact in &self.clocks_met {
            if let Some(i) = index(fact.at) {
                parts[i].clocks_met.push(fact);
            }
        }
        parts
    }

    /// Which conversation-counting figures each conversation of the slice is in, for
    /// `[from, to)`.
    fn members(&self, by_id: &FxHashMap<i64, &ConversationFact>, from: i64, to: i64) -> FxHashMap<i64, u16> {
        let mut members: FxHashMap<i64, u16> = FxHashMap::default();
        let mut add = |id: i64, figure: Figure| *members.entry(id).or_default() |= figure.bit();
        for fact in &self.conversations {
            if within(Some(fact.created_at), from, to) {
                add(fact.id, Figure::Opened);
                if fact.first_response_at.is_some() {
                    add(fact.id, Figure::FirstResponse);
                }
            }
            if within(fact.resolved_at, from, to) {
                add(fact.id, Figure::Resolution);
            }
            if within(fact.csat_requested_at, from, to) {
                add(fact.id, Figure::CsatAsked);
            }
            if within(fact.csat_answered_at, from, to) && fact.csat_score.is_some() {
                add(fact.id, Figure::CsatAnswers);
            }
        }
        for event in self.events.iter().filter(|event| within(Some(event.at), from, to)) {
            let id = event.conversation_id;
            match event.kind {
                EventKind::Resolved => {
                    add(id, Figure::Resolved);
                    if by_id.get(&id).is_some_and(|fact| fact.transfer_count == 0) {
                        add(id, Figure::ResolvedWithoutTransfer);
                    }
                }
                EventKind::Reopened => add(id, Figure::Reopened),
                EventKind::Escalated { .. } => add(id, Figure::Escalated),
                EventKind::Transferred => add(id, Figure::Transferred),
                EventKind::SlaBreached { .. } => add(id, Figure::Breached),
                EventKind::SlaWarning { .. } => {}
            }
        }
        for response in &self.responses {
            if !response.first && within(Some(response.answered_at), from, to) {
                add(response.conversation_id, Figure::NextResponse);
            }
        }
        members
    }

    fn figures(&self, by_id: &FxHashMap<i64, &ConversationFact>, calendars: &Calendars, from: i64, to: i64) -> Figures {
        let members = self.members(by_id, from, to);
        let count = |figure: Figure| members.values().filter(|bits| *bits & figure.bit() != 0).count();
        let facts_of = |figure: Figure| {
            members
                .iter()
                .filter(move |(_, bits)| *bits & figure.bit() != 0)
                .filter_map(|(id, _)| by_id.get(id).copied())
        };
        let business = |team: Option<&String>, start: i64, end: i64| match team.and_then(|team| calendars.get(team)) {
            Some(hours) => hours.elapsed(start, end),
            None => end.saturating_sub(start),
        };
        let span = |fact: &ConversationFact, end: i64| {
            (
                end - fact.created_at,
                business(fact.team.as_ref(), fact.created_at, end),
            )
        };
        let first_response = Durations::of(
            facts_of(Figure::FirstResponse)
                .filter_map(|fact| fact.first_response_at.map(|at| span(fact, at)))
                .collect(),
        );
        let resolution = Durations::of(
            facts_of(Figure::Resolution)
                .filter_map(|fact| fact.resolved_at.map(|at| span(fact, at)))
                .collect(),
        );
        let in_range: Vec<&&ResponseFact> = self
            .responses
            .iter()
            .filter(|response| within(Some(response.answered_at), from, to))
            .collect();
        let next_response = Durations::of(
            in_range
                .iter()
                .filter(|response| !response.first)
                .map(|response| {
                    let team = by_id.get(&response.conversation_id).and_then(|fact| fact.team.as_ref());
                    (
                        response.answered_at - response.waited_from,
                        business(team, response.waited_from, response.answered_at),
                    )
                })
                .collect(),
        );

        let events: Vec<&&EventFact> = self
            .events
            .iter()
            .filter(|event| within(Some(event.at), from, to))
            .collect();
        let count_events = |wanted: fn(&EventKind) -> bool| events.iter().filter(|event| wanted(&event.kind)).count();
        let mut sla: BTreeMap<&'static str, ClockFigures> = ClockKind::ALL
            .iter()
            .map(|clock| (clock.as_str(), ClockFigures::default()))
            .collect();
        let mut breach_actions = BreachActions::default();
        for event in &events {
            match event.kind {
                EventKind::SlaWarning { clock } => sla.entry(clock.as_str()).or_default().warnings += 1,
                EventKind::SlaBreached { clock, actions } => {
                    sla.entry(clock.as_str()).or_default().breached += 1;
                    breach_actions.escalated += usize::from(actions.escalated);
                    breach_actions.priority_raised += usize::from(actions.priority_raised);
                    breach_actions.supervisors_notified += usize::from(actions.notified);
                    breach_actions.labelled_overdue += usize::from(actions.labelled);
                }
                _ => {}
            }
        }
        for response in in_range.iter().filter(|response| response.sla_breached == Some(false)) {
            let clock = if response.first {
                ClockKind::FirstResponse
            } else {
                ClockKind::NextResponse
            };
            sla.entry(clock.as_str()).or_default().met += 1;
        }
        for met in self.clocks_met.iter().filter(|met| within(Some(met.at), from, to)) {
            sla.entry(met.clock.as_str()).or_default().met += 1;
        }
        let share = |part: usize, whole: usize| (whole > 0).then(|| part as f64 / whole as f64);
        for figures in sla.values_mut() {
            figures.share_met = share(figures.met, figures.met + figures.breached);
        }

        let mut messages = [0i64; 4];
        for tally in self.tallies.iter().filter(|tally| within(Some(tally.at), from, to)) {
            for (sum, count) in messages.iter_mut().zip(tally.counts) {
                *sum += count;
            }
        }

        let resolved = count(Figure::Resolved);
        let passes: i64 = facts_of(Figure::Resolved).map(|fact| fact.transfer_count).sum();
        let answered: Vec<i64> = facts_of(Figure::CsatAnswers)
            .filter_map(|fact| fact.csat_score)
            .collect();
        let asked = count(Figure::CsatAsked);
        let asked_answered = facts_of(Figure::CsatAsked)
            .filter(|fact| fact.csat_score.is_some())
            .count();
        let mut distribution: BTreeMap<String, usize> = (1..=5).map(|score| (score.to_string(), 0)).collect();
        for score in &answered {
            *distribution.entry(score.to_string()).or_default() += 1;
        }
        Figures {
            opened: count(Figure::Opened),
            resolved,
            reopened: count(Figure::Reopened),
            messages_in: messages[0],
            messages_out: messages[1],
            automated_updates: messages[2],
            notes: messages[3],
            first_response,
            next_response,
            resolution,
            escalations: count_events(|kind| matches!(kind, EventKind::Escalated { .. })),
            escalations_functional: count_events(|kind| matches!(kind, EventKind::Escalated { hierarchical: false })),
            escalations_hierarchical: count_events(|kind| matches!(kind, EventKind::Escalated { hierarchical: true })),
            escalated: count(Figure::Escalated),
            transfers: count_events(|kind| matches!(kind, EventKind::Transferred)),
            transferred: count(Figure::Transferred),
            resolved_without_transfer: share(count(Figure::ResolvedWithoutTransfer), resolved),
            transfers_per_conversation: (resolved > 0).then(|| passes as f64 / resolved as f64),
            sla_warnings: count_events(|kind| matches!(kind, EventKind::SlaWarning { .. })),
            sla_breaches: count_events(|kind| matches!(kind, EventKind::SlaBreached { .. })),
            breached: count(Figure::Breached),
            sla,
            breach_actions,
            csat: Csat {
                asked,
                answers: answered.len(),
                response_rate: share(asked_answered, asked),
                average: (!answered.is_empty()).then(|| answered.iter().sum::<i64>() as f64 / answered.len() as f64),
                distribution,
            },
        }
    }
}

/// One bucket of a series.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bucket {
    pub from: Timestamp,
    pub to: Timestamp,
    pub figures: Figures,
}

/// One group of a report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Group {
    /// The grouping's value; `null`: none (no team, unassigned, language unknown).
    pub key: Option<String>,
    pub figures: Figures,
    /// By bucket, when the report has an interval.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub series: Option<Vec<Bucket>>,
}

/// A whole report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub total: Figures,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub series: Option<Vec<Bucket>>,
    pub groups: Vec<Group>,
}

/// What a report is asked for, past the facts.
pub struct Shape<'a> {
    pub from: i64,
    pub to: i64,
    pub grouped: bool,
    /// The buckets of a series (see [`buckets`]).
    pub buckets: Option<&'a [(i64, i64)]>,
    pub calendars: &'a Calendars,
}

fn index(facts: &ReportFacts) -> FxHashMap<i64, &ConversationFact> {
    facts.conversations.iter().map(|fact| (fact.id, fact)).collect()
}

fn series(slice: &Slice<'_>, by_id: &FxHashMap<i64, &ConversationFact>, shape: &Shape<'_>) -> Option<Vec<Bucket>> {
    let buckets = shape.buckets?;
    Some(
        slice
            .by_bucket(buckets)
            .iter()
            .zip(buckets)
            .map(|(part, (from, to))| Bucket {
                from: Timestamp(*from),
                to: Timestamp(*to),
                figures: part.figures(by_id, shape.calendars, *from, *to),
            })
            .collect(),
    )
}

/// The whole range's figures, each group's when grouped, and their series when asked.
pub fn report(facts: &ReportFacts, shape: &Shape<'_>) -> Report {
    let by_id = index(facts);
    let all = Slice::all(facts);
    let total = all.figures(&by_id, shape.calendars, shape.from, shape.to);
    let groups = if shape.grouped {
        all.split(&by_id, |fact| fact.key.as_deref())
            .into_iter()
            .map(|(key, part)| Group {
                key: key.map(str::to_owned),
                figures: part.figures(&by_id, shape.calendars, shape.from, shape.to),
                series: series(&part, &by_id, shape),
            })
            .collect()
    } else {
        Vec::new()
    };
    Report {
        series: series(&all, &by_id, shape),
        total,
        groups,
    }
}

/// The conversations behind `figure`, of the group `key` when given (`Some(None)`: the
/// group without a value), ascending: as many as the figure counts.
pub fn drill_down(facts: &ReportFacts, from: i64, to: i64, figure: Figure, key: Option<Option<&str>>) -> Vec<i64> {
    let by_id = index(facts);
    let all = Slice::all(facts);
    let slice = match key {
        None => all,
        Some(key) => all
            .split(&by_id, |fact| fact.key.as_deref() == key)
            .remove(&true)
            .unwrap_or_default(),
    };
    let mut ids: Vec<i64> = slice
        .members(&by_id, from, to)
        .into_iter()
        .filter(|(_, bits)| bits & figure.bit() != 0)
        .map(|(id, _)| id)
        .collect();
    ids.sort_unstable();
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conversation(id: i64, key: &str, created_at: i64) -> ConversationFact {
        ConversationFact {
            id,
            key: Some(key.into()),
            team: Some(key.into()),
            created_at,
            first_response_at: None,
            resolved_at: None,
            transfer_count: 0,
            csat_score: None,
            csat_requested_at: None,
            csat_answered_at: None,
        }
    }

    fn event(id: i64, at: i64, kind: EventKind) -> EventFact {
        EventFact {
            conversation_id: id,
            at,
            kind,
        }
    }

    fn shape(calendars: &Calendars) -> Shape<'_> {
        Shape {
            from: 50,
            to: 1_000,
            grouped: true,
            buckets: None,
            calendars,
        }
    }

    #[test]
    fn nearest_rank_percentiles_and_a_rounded_average() {
        let durations = Durations::of(vec![(40, 4), (10, 1), (30, 3), (20, 2)]);
        assert_eq!(durations.median_ms, Some(20), "the smallest with half at or below");
        assert_eq!(durations.p90_ms, Some(40));
        assert_eq!(durations.average_ms, Some(25));
        assert_eq!(durations.business_median_ms, Some(2));
        assert_eq!(Durations::of(Vec::new()), Durations::default());
        assert_eq!(Durations::of(vec![(7, 7)]).p90_ms, Some(7));
    }

    #[test]
    fn events_are_read_from_their_stored_data() {
        assert_eq!(
            EventKind::of("conversation.status_changed", r#"{"from":"open","to":"resolved"}"#),
            Some(EventKind::Resolved)
        );
        assert_eq!(
            EventKind::of(
                "conversation.status_changed",
                r#"{"from":"closed","to":"open","reason":"customer_message"}"#
            ),
            Some(EventKind::Reopened)
        );
        assert_eq!(
            EventKind::of("conversation.status_changed", r#"{"from":"open","to":"pending"}"#),
            None
        );
        assert_eq!(
            EventKind::of("conversation.escalated", r#"{"kind":"hierarchical","to":{"team":"x"}}"#),
            Some(EventKind::Escalated { hierarchical: true })
        );
        let breached = r#"{"clock":"first_response","notified":["ana"],
                           "actions":{"escalate_to":"l2","raise_priority":false,"label":null}}"#;
        assert_eq!(
            EventKind::of("sla.breached", breached),
            Some(EventKind::SlaBreached {
                clock: ClockKind::FirstResponse,
                actions: BreachActionsTaken {
                    escalated: true,
                    priority_raised: false,
                    notified: true,
                    labelled: false,
                },
            })
        );
        assert_eq!(EventKind::of("sla.breached", "not json"), None);
    }

    #[test]
    fn figures_count_conversations_once_and_the_drill_down_lists_the_same_ones() {
        let mut answered = conversation(1, "billing", 100);
        answered.first_response_at = Some(160);
        answered.resolved_at = Some(400);
        answered.csat_requested_at = Some(400);
        answered.csat_answered_at = Some(450);
        answered.csat_score = Some(4);
        let mut moved = conversation(2, "support", 200);
        moved.transfer_count = 1;
        moved.resolved_at = Some(900);
        let before = conversation(3, "billing", 10);
        let facts = ReportFacts {
            conversations: vec![answered, moved, before],
            events: vec![
                event(1, 400, EventKind::Resolved),
                event(2, 500, EventKind::Resolved),
                event(2, 600, EventKind::Reopened),
                event(2, 900, EventKind::Resolved),
                event(2, 300, EventKind::Transferred),
            ],
            responses: vec![
                ResponseFact {
                    conversation_id: 3,
                    waited_from: 500,
                    answered_at: 530,
                    first: false,
                    sla_breached: Some(false),
                },
                ResponseFact {
                    conversation_id: 1,
                    waited_from: 100,
                    answered_at: 160,
                    first: true,
                    sla_breached: None,
                },
            ],
            tallies: vec![TallyFact {
                conversation_id: 1,
                at: 100,
                counts: [3, 1, 1, 0],
            }],
            clocks_met: Vec::new(),
        };
        let calendars = Calendars::new();
        let report = report(&facts, &shape(&calendars));
        let total = &report.total;
        assert_eq!((total.opened, total.resolved, total.reopened), (2, 2, 1));
        assert_eq!(total.first_response.median_ms, Some(60));
        assert_eq!(total.next_response.median_ms, Some(30));
        assert_eq!(total.resolution.count, 2);
        assert_eq!(total.resolution.p90_ms, Some(700));
        assert_eq!(total.resolved_without_transfer, Some(0.5));
        assert_eq!(total.transfers_per_conversation, Some(0.5));
        assert_eq!((total.transfers, total.transferred), (1, 1));
        assert_eq!(total.csat.average, Some(4.0));
        assert_eq!(total.csat.response_rate, Some(1.0));
        assert_eq!(
            (total.messages_in, total.messages_out, total.automated_updates),
            (3, 1, 1)
        );
        assert_eq!(total.sla["next_response"].share_met, Some(1.0));
        assert_eq!(total.sla["first_response"].share_met, None, "no clock ran");
        let billing = report
            .groups
            .iter()
            .find(|group| group.key.as_deref() == Some("billing"))
            .unwrap();
        assert_eq!(billing.figures.opened, 1, "conversation 3 opened before the range");
        assert_eq!(
            billing.figures.next_response.count, 1,
            "conversation 3's response is in it"
        );
        assert_eq!(drill_down(&facts, 50, 1_000, Figure::Resolved, None), [1, 2]);
        assert_eq!(drill_down(&facts, 50, 1_000, Figure::NextResponse, None), [3]);
        assert_eq!(
            drill_down(
                &facts,
                50,
                1_000,
                Figure::ResolvedWithoutTransfer,
                Some(Some("billing"))
            ),
            [1]
        );
        assert_eq!(
            drill_down(&facts, 50, 1_000, Figure::Reopened, Some(Some("billing"))),
            Vec::<i64>::new()
        );
    }

    #[test]
    fn a_series_adds_up_to_its_total_and_counts_each_fact_in_its_own_bucket() {
        let mut early = conversation(1, "billing", 100);
        early.resolved_at = Some(700);
        let late = conversation(2, "billing", 600);
        let facts = ReportFacts {
            conversations: vec![early, late],
            events: vec![event(1, 700, EventKind::Resolved)],
            ..ReportFacts::default()
        };
        let calendars = Calendars::new();
        let buckets = [(50, 500), (500, 1_000)];
        let report = report(
            &facts,
            &Shape {
                buckets: Some(&buckets),
                ..shape(&calendars)
            },
        );
        let series = report.series.unwrap();
        assert_eq!(series.len(), 2);
        assert_eq!((series[0].figures.opened, series[0].figures.resolved), (1, 0));
        assert_eq!((series[1].figures.opened, series[1].figures.resolved), (1, 1));
        assert_eq!(series[1].figures.resolution.median_ms, Some(600));
        assert_eq!(report.groups[0].series.as_ref().unwrap().len(), 2);
    }

    #[test]
    fn business_hours_measure_durations_in_the_teams_calendar() {
        // Open 09:00-17:00 on weekdays, UTC; 2026-12-07 is a Monday.
        let week: BTreeMap<String, String> = ["mon", "tue", "wed", "thu", "fri"]
            .into_iter()
            .map(|day| (day.to_owned(), "09:00-17:00".to_owned()))
            .collect();
        let hours = BusinessHours::new("UTC", &week, &[]).unwrap();
        let monday_16h = "2026-12-07T16:00:00Z"
            .parse::<jiff::Timestamp>()
            .unwrap()
            .as_millisecond();
        let tuesday_10h = monday_16h + 18 * 3_600_000;
        let mut slow = conversation(1, "billing", monday_16h);
        slow.first_response_at = Some(tuesday_10h);
        let facts = ReportFacts {
            conversations: vec![slow],
            ..ReportFacts::default()
        };
        let calendars: Calendars = [("billing".to_owned(), Arc::new(hours))].into_iter().collect();
        let report = report(
            &facts,
            &Shape {
                from: monday_16h,
                to: tuesday_10h + 1,
                grouped: false,
                buckets: None,
                calendars: &calendars,
            },
        );
        assert_eq!(report.total.first_response.median_ms, Some(18 * 3_600_000));
        assert_eq!(
            report.total.first_response.business_median_ms,
            Some(2 * 3_600_000),
            "an hour on Monday, an hour on Tuesday"
        );
    }

    #[test]
    fn buckets_begin_at_local_midnight_and_mondays() {
        let zone = jiff::tz::TimeZone::get("Europe/Berlin").unwrap();
        let at = |text: &str| text.parse::<jiff::Timestamp>().unwrap().as_millisecond();
        // Sunday 2026-03-29 is 23 hours long in Berlin.
        let days = buckets(
            at("2026-03-28T10:00:00Z"),
            at("2026-03-30T22:00:00Z"),
            &zone,
            Interval::Day,
        )
        .unwrap();
        assert_eq!(
            days,
            [
                (at("2026-03-28T10:00:00Z"), at("2026-03-28T23:00:00Z")),
                (at("2026-03-28T23:00:00Z"), at("2026-03-29T22:00:00Z")),
                (at("2026-03-29T22:00:00Z"), at("2026-03-30T22:00:00Z")),
            ]
        );
        let weeks = buckets(
            at("2026-12-01T00:00:00Z"),
            at("2026-12-15T00:00:00Z"),
            &zone,
            Interval::Week,
        )
        .unwrap();
        assert_eq!(
            weeks[1].0,
            at("2026-12-06T23:00:00Z"),
            "Monday 7 December, local midnight"
        );
        assert_eq!(weeks.len(), 3);
        assert!(
            buckets(0, 366 * 86_400_000, &zone, Interval::Hour).is_none(),
            "too many"
        );
    }
}
