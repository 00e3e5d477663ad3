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

/// What the store reads for a report of `[from, to)`: the conversations with times of
/// their own in it, the SLA clocks met in it, and the timeline of the parts `timeline`
/// (the rest of the range comes from [`ReportCache`](super::report_cache::ReportCache)),
/// with the conversations of that timeline's facts, all in one read so they agree.
#[derive(Debug, Clone)]
pub struct ReportRequest {
    pub from: i64,
    pub to: i64,
    pub grouping: Option<Grouping>,
    pub timeline: Vec<(i64, i64)>,
}

/// A conversation with a fact in the range: its own times, or one of the events,
/// responses, messages or clocks below.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationFact {
    pub id: i64,
    /// The grouping's value (`None`: no team, unassigned, no language).
    pub key: Option<Arc<str>>,
    /// Its team now: whose business hours measure it.
    pub team: Option<Arc<str>>,
    pub created_at: i64,
    pub first_response_at: Option<i64>,
    pub resolved_at: Option<i64>,
    /// How often it was passed on (escalated or transferred), ever.
    pub transfer_count: i64,
    pub csat_score: Option<i64>,
    pub csat_requested_at: Option<i64>,
    pub csat_answered_at: Option<i64>,
}

#[cfg(test)]
impl ConversationFact {
    /// Conversation `id` of `team`, opened at `created_at`, nothing since; no grouping.
    pub(crate) fn opened(id: i64, team: &str, created_at: i64) -> ConversationFact {
        ConversationFact {
            id,
            key: None,
            team: Some(team.into()),
            created_at,
            first_response_at: None,
            resolved_at: None,
            transfer_count: 0,
            csat_score: None,
            csat_requested_at: None,
            csat_answered_at: None,
        }
    }
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

/// The facts written once, at the instant they are about, and never changed after:
/// counted events, responses and message tallies. A finished day's timeline is final,
/// which is what lets [`ReportCache`](super::report_cache::ReportCache) keep it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Timeline {
    pub events: Vec<EventFact>,
    pub responses: Vec<ResponseFact>,
    pub tallies: Vec<TallyFact>,
    /// The conversations the facts are of, ascending, each once.
    conversations: Vec<i64>,
}

impl Timeline {
    pub fn new(events: Vec<EventFact>, responses: Vec<ResponseFact>, tallies: Vec<TallyFact>) -> Timeline {
        let mut conversations: Vec<i64> = events
            .iter()
            .map(|fact| fact.conversation_id)
            .chain(responses.iter().map(|fact| fact.conversation_id))
            .chain(tallies.iter().map(|fact| fact.conversation_id))
            .collect();
        conversations.sort_unstable();
        conversations.dedup();
        Timeline {
            events,
            responses,
            tallies,
            conversations,
        }
    }

    /// The facts of all `parts` in one timeline.
    pub fn join(parts: Vec<Timeline>) -> Timeline {
        if parts.len() == 1 {
            return parts.into_iter().next().unwrap_or_default();
        }
        let (mut events, mut responses, mut tallies) = (Vec::new(), Vec::new(), Vec::new());
        for part in parts {
            events.extend(part.events);
            responses.extend(part.responses);
            tallies.extend(part.tallies);
        }
        Timeline::new(events, responses, tallies)
    }

    pub fn conversations(&self) -> &[i64] {
        &self.conversations
    }

    pub fn len(&self) -> usize {
        self.events.len() + self.responses.len() + self.tallies.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The facts of the conversations `keep` takes.
    pub fn only(&self, keep: impl Fn(i64) -> bool) -> Timeline {
        Timeline::new(
            self.events
                .iter()
                .filter(|fact| keep(fact.conversation_id))
                .cloned()
                .collect(),
            self.responses
                .iter()
                .filter(|fact| keep(fact.conversation_id))
                .cloned()
                .collect(),
            self.tallies
                .iter()
                .filter(|fact| keep(fact.conversation_id))
                .cloned()
                .collect(),
        )
    }
}

/// A conversation as the store reads it for a report, with its assignee: with its team,
/// what decides who may see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportConversation {
    pub fact: ConversationFact,
    pub assignee_id: Option<i64>,
}

/// What the store read for a [`ReportRequest`]: every fact's conversation is among
/// `conversations` unless it no longer exists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredFacts {
    pub conversations: Vec<ReportConversation>,
    pub timeline: Timeline,
    pub clocks_met: Vec<ClockMetFact>,
}

/// A report's facts, of what its reader may see only: every fact's conversation is in
/// `conversations` (ascending by id). The timeline comes in pieces, finished days shared
/// with other reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReportFacts {
    pub conversations: Vec<ConversationFact>,
    pub timeline: Vec<Arc<Timeline>>,
    pub clocks_met: Vec<ClockMetFact>,
}

impl ReportFacts {
    pub fn events(&self) -> impl Iterator<Item = &EventFact> {
        self.timeline.iter().flat_map(|piece| piece.events.iter())
    }

    pub fn responses(&self) -> impl Iterator<Item = &ResponseFact> {
        self.timeline.iter().flat_map(|piece| piece.responses.iter())
    }

    pub fn tallies(&self) -> impl Iterator<Item = &TallyFact> {
        self.timeline.iter().flat_map(|piece| piece.tallies.iter())
    }
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
/// values at or below it) and the average rounded to the millisecond. Ranks are found by
/// selection, not sorting: a year's next responses are hundreds of thousands.
fn summary(mut values: Vec<i64>) -> (Option<i64>, Option<i64>, Option<i64>) {
    if values.is_empty() {
        return (None, None, None);
    }
    let rank = |share: f64, len: usize| ((share * len as f64).ceil() as usize).max(1) - 1;
    let sum: i128 = values.iter().map(|value| i128::from(*value)).sum();
    let average = (sum as f64 / values.len() as f64).round() as i64;
    let (p90_index, median_index) = (rank(0.9, values.len()), rank(0.5, values.len()));
    let (below, p90, _) = values.select_nth_unstable(p90_index);
    let p90 = *p90;
    // The median's rank is at or below p90's, so it is among the values left of it.
    let median = if median_index == p90_index {
        p90
    } else {
        *below.select_nth_unstable(median_index).1
    };
    (Some(median), Some(p90), Some(average))
}

impl Durations {
    /// From `(calendar, business)` pairs.
    fn of(pairs: Vec<(i64, i64)>) -> Durations {
        let count = pairs.len();
        let open_around_the_clock = pairs.iter().all(|(calendar, business)| calendar == business);
        let (calendar, business): (Vec<i64>, Vec<i64>) = if open_around_the_clock {
            (pairs.into_iter().map(|(calendar, _)| calendar).collect(), Vec::new())
        } else {
            pairs.into_iter().unzip()
        };
        let (median_ms, p90_ms, average_ms) = summary(calendar);
        let (business_median_ms, business_p90_ms, business_average_ms) = if open_around_the_clock {
            (median_ms, p90_ms, average_ms)
        } else {
            summary(business)
        };
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

/// A conversation's place in `ReportFacts::conversations`: facts are joined to their
/// conversation once per report, and figures then index instead of hashing ids.
type At = u32;

/// What every figure computation of one report reads.
struct Context<'a> {
    conversations: &'a [ConversationFact],
    /// Each conversation's team's business hours; `None`: open around the clock.
    hours: Vec<Option<&'a BusinessHours>>,
}

impl<'a> Context<'a> {
    fn new(facts: &'a ReportFacts, calendars: &'a Calendars) -> Context<'a> {
        Context {
            conversations: &facts.conversations,
            hours: facts
                .conversations
                .iter()
                .map(|fact| {
                    fact.team
                        .as_deref()
                        .and_then(|team| calendars.get(team))
                        .map(|hours| hours.as_ref())
                })
                .collect(),
        }
    }

    fn conversation(&self, at: At) -> &'a ConversationFact {
        &self.conversations[at as usize]
    }

    /// `(calendar, business)` time from `start` to `end` for the conversation at `at`.
    fn span(&self, at: At, start: i64, end: i64) -> (i64, i64) {
        let business = match self.hours[at as usize] {
            Some(hours) => hours.elapsed(start, end),
            None => end.saturating_sub(start),
        };
        (end - start, business)
    }
}

/// Which conversation-counting figures each conversation of a slice is in: a bit set
/// per conversation, over all of the report's, with the ones set listed so that a
/// slice's computation costs what it touches, not the report's size.
struct Members {
    bits: Vec<u16>,
    touched: Vec<At>,
}

impl Members {
    fn new(conversations: usize) -> Members {
        Members {
            bits: vec![0; conversations],
            touched: Vec::new(),
        }
    }

    fn add(&mut self, at: At, figure: Figure) {
        let bits = &mut self.bits[at as usize];
        if *bits == 0 {
            self.touched.push(at);
        }
        *bits |= figure.bit();
    }

    /// Each conversation set with its bits, clearing them for the next slice.
    fn drain(&mut self) -> Vec<(At, u16)> {
        let bits = &mut self.bits;
        self.touched
            .drain(..)
            .map(|at| (at, std::mem::take(&mut bits[at as usize])))
            .collect()
    }
}

/// The facts one figure computation reads: a slice of the report's (a group, a bucket),
/// each fact with its conversation's place.
#[derive(Default)]
struct Slice<'a> {
    /// Conversations whose own times (opened, resolved, asked, answered) may fall in it.
    conversations: Vec<At>,
    events: Vec<(At, &'a EventFact)>,
    responses: Vec<(At, &'a ResponseFact)>,
    tallies: Vec<(At, &'a TallyFact)>,
    clocks_met: Vec<(At, &'a ClockMetFact)>,
}

impl<'a> Slice<'a> {
    fn all(facts: &'a ReportFacts) -> Slice<'a> {
        let place: FxHashMap<i64, At> = facts
            .conversations
            .iter()
            .enumerate()
            .map(|(at, fact)| (fact.id, at as At))
            .collect();
        // The store hands over the facts of visible conversations only; any other is
        // left out rather than trusted.
        let placed = |id: i64| place.get(&id).copied();
        let pieces = &facts.timeline;
        let mut slice = Slice {
            conversations: (0..facts.conversations.len() as At).collect(),
            events: Vec::with_capacity(pieces.iter().map(|piece| piece.events.len()).sum()),
            responses: Vec::with_capacity(pieces.iter().map(|piece| piece.responses.len()).sum()),
            tallies: Vec::with_capacity(pieces.iter().map(|piece| piece.tallies.len()).sum()),
            clocks_met: Vec::with_capacity(facts.clocks_met.len()),
        };
        macro_rules! place {
            ($field:ident, $facts:expr) => {
                slice
                    .$field
                    .extend($facts.filter_map(|fact| Some((placed(fact.conversation_id)?, fact))));
            };
        }
        place!(events, facts.events());
        place!(responses, facts.responses());
        place!(tallies, facts.tallies());
        place!(clocks_met, facts.clocks_met.iter());
        slice
    }

    /// Split by a key of each fact's conversation, in the keys' order.
    fn split<K: Ord + std::hash::Hash + Copy>(
        &self,
        context: &Context<'a>,
        key: impl Fn(&'a ConversationFact) -> K,
    ) -> Vec<(K, Slice<'a>)> {
        // Each conversation's part is found once; its facts then go to it by place.
        let mut parts_by_key: FxHashMap<K, usize> = FxHashMap::default();
        let part_of: Vec<usize> = context
            .conversations
            .iter()
            .map(|fact| {
                let next = parts_by_key.len();
                *parts_by_key.entry(key(fact)).or_insert(next)
            })
            .collect();
        // Sized first: pushing a year's facts into growing vectors copies them over and over.
        let mut sizes = vec![[0usize; 5]; parts_by_key.len()];
        macro_rules! count {
            ($field:ident, $i:expr) => {
                for &(at, _) in &self.$field {
                    sizes[part_of[at as usize]][$i] += 1;
                }
            };
        }
        for &at in &self.conversations {
            sizes[part_of[at as usize]][0] += 1;
        }
        count!(events, 1);
        count!(responses, 2);
        count!(tallies, 3);
        count!(clocks_met, 4);
        let mut parts: Vec<Slice<'a>> = sizes
            .iter()
            .map(|size| Slice {
                conversations: Vec::with_capacity(size[0]),
                events: Vec::with_capacity(size[1]),
                responses: Vec::with_capacity(size[2]),
                tallies: Vec::with_capacity(size[3]),
                clocks_met: Vec::with_capacity(size[4]),
            })
            .collect();
        for &at in &self.conversations {
            parts[part_of[at as usize]].conversations.push(at);
        }
        macro_rules! spread {
            ($field:ident) => {
                for &(at, fact) in &self.$field {
                    parts[part_of[at as usize]].$field.push((at, fact));
                }
            };
        }
        spread!(events);
        spread!(responses);
        spread!(tallies);
        spread!(clocks_met);
        let mut keys: Vec<(K, usize)> = parts_by_key.into_iter().collect();
        keys.sort_unstable_by_key(|(key, _)| *key);
        keys.into_iter()
            .map(|(key, part)| (key, std::mem::take(&mut parts[part])))
            .collect()
    }

    /// Split into `buckets` by each fact's time; a conversation goes to every bucket one
    /// of its own times falls in.
    fn by_bucket(&self, context: &Context<'a>, buckets: &[(i64, i64)]) -> Vec<Slice<'a>> {
        let mut parts: Vec<Slice<'a>> = buckets.iter().map(|_| Slice::default()).collect();
        let index = |at: i64| {
            let i = buckets.partition_point(|(start, _)| *start <= at);
            (i > 0 && at < buckets[i - 1].1).then(|| i - 1)
        };
        for &at in &self.conversations {
            let fact = context.conversation(at);
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
                parts[i].conversations.push(at);
            }
        }
        for &(at, fact) in &self.events {
            if let Some(i) = index(fact.at) {
                parts[i].events.push((at, fact));
            }
        }
        for &(at, fact) in &self.responses {
            if let Some(i) = index(fact.answered_at) {
                parts[i].responses.push((at, fact));
            }
        }
        for &(at, fact) in &self.tallies {
            if let Some(i) = index(fact.at) {
                parts[i].tallies.push((at, fact));
            }
        }
        for &(at, fact) in &self.clocks_met {
            if let Some(i) = index(fact.at) {
                parts[i].clocks_met.push((at, fact));
            }
        }
        parts
    }

    /// Marks which conversation-counting figures each conversation of the slice is in,
    /// for `[from, to)`.
    fn members(&self, context: &Context<'a>, members: &mut Members, from: i64, to: i64) {
        for &at in &self.conversations {
            let fact = context.conversation(at);
            if within(Some(fact.created_at), from, to) {
                members.add(at, Figure::Opened);
                if fact.first_response_at.is_some() {
                    members.add(at, Figure::FirstResponse);
                }
            }
            if within(fact.resolved_at, from, to) {
                members.add(at, Figure::Resolution);
            }
            if within(fact.csat_requested_at, from, to) {
                members.add(at, Figure::CsatAsked);
            }
            if within(fact.csat_answered_at, from, to) && fact.csat_score.is_some() {
                members.add(at, Figure::CsatAnswers);
            }
        }
        for &(at, event) in &self.events {
            if !within(Some(event.at), from, to) {
                continue;
            }
            match event.kind {
                EventKind::Resolved => {
                    members.add(at, Figure::Resolved);
                    if context.conversation(at).transfer_count == 0 {
                        members.add(at, Figure::ResolvedWithoutTransfer);
                    }
                }
                EventKind::Reopened => members.add(at, Figure::Reopened),
                EventKind::Escalated { .. } => members.add(at, Figure::Escalated),
                EventKind::Transferred => members.add(at, Figure::Transferred),
                EventKind::SlaBreached { .. } => members.add(at, Figure::Breached),
                EventKind::SlaWarning { .. } => {}
            }
        }
        for &(at, response) in &self.responses {
            if !response.first && within(Some(response.answered_at), from, to) {
                members.add(at, Figure::NextResponse);
            }
        }
    }

    fn figures(&self, context: &Context<'a>, members: &mut Members, from: i64, to: i64) -> Figures {
        self.members(context, members, from, to);
        let mut counts = [0usize; Figure::ALL.len()];
        let (mut first_response, mut resolution) = (Vec::new(), Vec::new());
        let (mut passes, mut asked_answered) = (0i64, 0usize);
        let mut answered: Vec<i64> = Vec::new();
        for (at, bits) in members.drain() {
            for (figure, count) in counts.iter_mut().enumerate() {
                *count += usize::from(bits & (1 << figure) != 0);
            }
            let fact = context.conversation(at);
            let has = |figure: Figure| bits & figure.bit() != 0;
            if has(Figure::FirstResponse)
                && let Some(end) = fact.first_response_at
            {
                first_response.push(context.span(at, fact.created_at, end));
            }
            if has(Figure::Resolution)
                && let Some(end) = fact.resolved_at
            {
                resolution.push(context.span(at, fact.created_at, end));
            }
            if has(Figure::Resolved) {
                passes += fact.transfer_count;
            }
            if has(Figure::CsatAnswers)
                && let Some(score) = fact.csat_score
            {
                answered.push(score);
            }
            if has(Figure::CsatAsked) && fact.csat_score.is_some() {
                asked_answered += 1;
            }
        }
        let count = |figure: Figure| counts[figure as usize];

        let mut sla: BTreeMap<&'static str, ClockFigures> = ClockKind::ALL
            .iter()
            .map(|clock| (clock.as_str(), ClockFigures::default()))
            .collect();
        let mut next_response = Vec::new();
        for &(at, response) in &self.responses {
            if !within(Some(response.answered_at), from, to) {
                continue;
            }
            if !response.first {
                next_response.push(context.span(at, response.waited_from, response.answered_at));
            }
            if response.sla_breached == Some(false) {
                let clock = if response.first {
                    ClockKind::FirstResponse
                } else {
                    ClockKind::NextResponse
                };
                sla.entry(clock.as_str()).or_default().met += 1;
            }
        }

        let mut breach_actions = BreachActions::default();
        let (mut escalations_functional, mut escalations_hierarchical) = (0, 0);
        let (mut transfers, mut sla_warnings, mut sla_breaches) = (0, 0, 0);
        for (_, event) in self.events.iter().filter(|(_, event)| within(Some(event.at), from, to)) {
            match event.kind {
                EventKind::Escalated { hierarchical: true } => escalations_hierarchical += 1,
                EventKind::Escalated { hierarchical: false } => escalations_functional += 1,
                EventKind::Transferred => transfers += 1,
                EventKind::SlaWarning { clock } => {
                    sla_warnings += 1;
                    sla.entry(clock.as_str()).or_default().warnings += 1;
                }
                EventKind::SlaBreached { clock, actions } => {
                    sla_breaches += 1;
                    sla.entry(clock.as_str()).or_default().breached += 1;
                    breach_actions.escalated += usize::from(actions.escalated);
                    breach_actions.priority_raised += usize::from(actions.priority_raised);
                    breach_actions.supervisors_notified += usize::from(actions.notified);
                    breach_actions.labelled_overdue += usize::from(actions.labelled);
                }
                EventKind::Resolved | EventKind::Reopened => {}
            }
        }
        for (_, met) in self.clocks_met.iter().filter(|(_, met)| within(Some(met.at), from, to)) {
            sla.entry(met.clock.as_str()).or_default().met += 1;
        }
        let share = |part: usize, whole: usize| (whole > 0).then(|| part as f64 / whole as f64);
        for figures in sla.values_mut() {
            figures.share_met = share(figures.met, figures.met + figures.breached);
        }

        let mut messages = [0i64; 4];
        for (_, tally) in self
            .tallies
            .iter()
            .filter(|(_, tally)| within(Some(tally.at), from, to))
        {
            for (sum, count) in messages.iter_mut().zip(tally.counts) {
                *sum += count;
            }
        }

        let resolved = count(Figure::Resolved);
        let asked = count(Figure::CsatAsked);
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
            first_response: Durations::of(first_response),
            next_response: Durations::of(next_response),
            resolution: Durations::of(resolution),
            escalations: escalations_functional + escalations_hierarchical,
            escalations_functional,
            escalations_hierarchical,
            escalated: count(Figure::Escalated),
            transfers,
            transferred: count(Figure::Transferred),
            resolved_without_transfer: share(count(Figure::ResolvedWithoutTransfer), resolved),
            transfers_per_conversation: (resolved > 0).then(|| passes as f64 / resolved as f64),
            sla_warnings,
            sla_breaches,
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

fn series(slice: &Slice<'_>, context: &Context<'_>, members: &mut Members, shape: &Shape<'_>) -> Option<Vec<Bucket>> {
    let buckets = shape.buckets?;
    Some(
        slice
            .by_bucket(context, buckets)
            .iter()
            .zip(buckets)
            .map(|(part, (from, to))| Bucket {
                from: Timestamp(*from),
                to: Timestamp(*to),
                figures: part.figures(context, members, *from, *to),
            })
            .collect(),
    )
}

/// The whole range's figures, each group's when grouped, and their series when asked.
pub fn report(facts: &ReportFacts, shape: &Shape<'_>) -> Report {
    let context = Context::new(facts, shape.calendars);
    let mut members = Members::new(facts.conversations.len());
    let all = Slice::all(facts);
    let total = all.figures(&context, &mut members, shape.from, shape.to);
    let groups = if shape.grouped {
        all.split(&context, |fact| fact.key.as_deref())
            .into_iter()
            .map(|(key, part)| Group {
                key: key.map(str::to_owned),
                figures: part.figures(&context, &mut members, shape.from, shape.to),
                series: series(&part, &context, &mut members, shape),
            })
            .collect()
    } else {
        Vec::new()
    };
    Report {
        series: series(&all, &context, &mut members, shape),
        total,
        groups,
    }
}

/// The conversations behind `figure`, of the group `key` when given (`Some(None)`: the
/// group without a value), ascending: as many as the figure counts.
pub fn drill_down(facts: &ReportFacts, from: i64, to: i64, figure: Figure, key: Option<Option<&str>>) -> Vec<i64> {
    let calendars = Calendars::new();
    let context = Context::new(facts, &calendars);
    let mut members = Members::new(facts.conversations.len());
    let all = Slice::all(facts);
    let slice = match key {
        None => all,
        Some(key) => all
            .split(&context, |fact| fact.key.as_deref() == key)
            .into_iter()
            .find_map(|(chosen, part)| chosen.then_some(part))
            .unwrap_or_default(),
    };
    slice.members(&context, &mut members, from, to);
    let mut ids: Vec<i64> = members
        .drain()
        .into_iter()
        .filter(|(_, bits)| bits & figure.bit() != 0)
        .map(|(at, _)| context.conversation(at).id)
        .collect();
    ids.sort_unstable();
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conversation(id: i64, key: &str, created_at: i64) -> ConversationFact {
        ConversationFact {
            key: Some(key.into()),
            ..ConversationFact::opened(id, key, created_at)
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
            timeline: vec![Arc::new(Timeline::new(
                vec![
                    event(1, 400, EventKind::Resolved),
                    event(2, 500, EventKind::Resolved),
                    event(2, 600, EventKind::Reopened),
                    event(2, 900, EventKind::Resolved),
                    event(2, 300, EventKind::Transferred),
                ],
                vec![
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
                vec![TallyFact {
                    conversation_id: 1,
                    at: 100,
                    counts: [3, 1, 1, 0],
                }],
            ))],
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
            timeline: vec![Arc::new(Timeline::new(
                vec![event(1, 700, EventKind::Resolved)],
                Vec::new(),
                Vec::new(),
            ))],
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
