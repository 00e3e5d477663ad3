//! Reports: what happened on the desk between two instants, counted from the facts the
//! daemon keeps (conversations' times, the event log, messages), grouped by one of the
//! conversation's attributes. The store reads the facts ([`ReportFacts`]); the figures
//! are made here, once, so a report and its drill-down (the conversations behind a
//! figure) cannot disagree. The definitions are docs/REPORTS.md's.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::Visibility;

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

/// The facts of `[from, to)` the caller may see.
#[derive(Debug, Clone)]
pub struct ReportRequest {
    pub from: i64,
    pub to: i64,
    pub grouping: Option<Grouping>,
    pub visible_to: Visibility,
}

/// A conversation with anything of its own in the range: opened, first answered,
/// resolved, or a satisfaction question asked or answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationFact {
    pub id: i64,
    /// The grouping's value (`None`: no team, unassigned, no language).
    pub key: Option<String>,
    pub created_at: i64,
    pub first_response_at: Option<i64>,
    pub resolved_at: Option<i64>,
    pub transfer_count: i64,
    pub csat_score: Option<i64>,
    pub csat_requested_at: Option<i64>,
    pub csat_answered_at: Option<i64>,
}

/// An event of the range that a figure counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFact {
    pub conversation_id: i64,
    pub key: Option<String>,
    /// `conversation.status_changed`, `conversation.escalated`, `conversation.transferred`,
    /// `sla.warning`, `sla.breached`.
    pub kind: String,
    /// For status changes: `from` and `to`.
    pub from_status: Option<String>,
    pub to_status: Option<String>,
}

/// Messages of the range, counted by the grouping's value and direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageCount {
    pub key: Option<String>,
    /// `inbound`, `outbound` (agents' replies; automated updates apart) or `note`.
    pub direction: String,
    pub automated: bool,
    pub count: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReportFacts {
    pub conversations: Vec<ConversationFact>,
    pub events: Vec<EventFact>,
    pub messages: Vec<MessageCount>,
}

/// Durations, in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Durations {
    pub count: usize,
    pub median_ms: Option<i64>,
    pub p90_ms: Option<i64>,
    pub average_ms: Option<i64>,
}

impl Durations {
    /// Median and p90 by nearest rank: the smallest value with at least that share of
    /// the values at or below it. The average rounds to the millisecond.
    fn of(mut values: Vec<i64>) -> Durations {
        values.sort_unstable();
        let rank = |share: f64| {
            let index = ((share * values.len() as f64).ceil() as usize).max(1) - 1;
            values.get(index).copied()
        };
        let average = (!values.is_empty()).then(|| {
            let sum: i128 = values.iter().map(|value| i128::from(*value)).sum();
            (sum as f64 / values.len() as f64).round() as i64
        });
        Durations {
            count: values.len(),
            median_ms: rank(0.5),
            p90_ms: rank(0.9),
            average_ms: average,
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

/// One group's figures (or the whole range's).
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
    pub resolution: Durations,
    pub escalations: usize,
    pub escalated: usize,
    pub transfers: usize,
    pub transferred: usize,
    /// Of the conversations resolved in the range, the share never moved to another team.
    pub resolved_without_transfer: Option<f64>,
    pub sla_warnings: usize,
    pub sla_breaches: usize,
    pub breached: usize,
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
    Resolution,
    Escalated,
    Transferred,
    ResolvedWithoutTransfer,
    Breached,
    CsatAsked,
    CsatAnswers,
}

impl Figure {
    pub const NAMES: &'static str = "opened, resolved, reopened, first_response, resolution, escalated, transferred, \
                                     resolved_without_transfer, breached, csat_asked, csat_answers";

    pub fn parse(text: &str) -> Option<Figure> {
        Some(match text {
            "opened" => Figure::Opened,
            "resolved" => Figure::Resolved,
            "reopened" => Figure::Reopened,
            "first_response" => Figure::FirstResponse,
            "resolution" => Figure::Resolution,
            "escalated" => Figure::Escalated,
            "transferred" => Figure::Transferred,
            "resolved_without_transfer" => Figure::ResolvedWithoutTransfer,
            "breached" => Figure::Breached,
            "csat_asked" => Figure::CsatAsked,
            "csat_answers" => Figure::CsatAnswers,
            _ => return None,
        })
    }
}

fn within(at: Option<i64>, from: i64, to: i64) -> bool {
    at.is_some_and(|at| from <= at && at < to)
}

/// The conversations each conversation-naming figure counts, for one group's facts.
struct Sets {
    by_figure: BTreeMap<&'static str, BTreeSet<i64>>,
}

impl Sets {
    fn of(conversations: &[&ConversationFact], events: &[&EventFact], from: i64, to: i64) -> Sets {
        let mut by_figure: BTreeMap<&'static str, BTreeSet<i64>> = BTreeMap::new();
        let mut add = |figure: &'static str, id: i64| {
            by_figure.entry(figure).or_default().insert(id);
        };
        for fact in conversations {
            if within(Some(fact.created_at), from, to) {
                add("opened", fact.id);
                if fact.first_response_at.is_some() {
                    add("first_response", fact.id);
                }
            }
            if within(fact.resolved_at, from, to) {
                add("resolution", fact.id);
            }
            if within(fact.csat_requested_at, from, to) {
                add("csat_asked", fact.id);
            }
            if within(fact.csat_answered_at, from, to) && fact.csat_score.is_some() {
                add("csat_answers", fact.id);
            }
        }
        for event in events {
            let id = event.conversation_id;
            match event.kind.as_str() {
                "conversation.status_changed" => {
                    if event.to_status.as_deref() == Some("resolved") {
                        add("resolved", id);
                    }
                    if matches!(event.from_status.as_deref(), Some("resolved" | "closed"))
                        && event.to_status.as_deref() == Some("open")
                    {
                        add("reopened", id);
                    }
                }
                "conversation.escalated" => add("escalated", id),
                "conversation.transferred" => add("transferred", id),
                "sla.breached" => add("breached", id),
                _ => {}
            }
        }
        let never_moved: BTreeSet<i64> = conversations
            .iter()
            .filter(|fact| fact.transfer_count == 0)
            .map(|fact| fact.id)
            .collect();
        let resolved = by_figure.get("resolved").cloned().unwrap_or_default();
        by_figure.insert(
            "resolved_without_transfer",
            resolved.intersection(&never_moved).copied().collect(),
        );
        Sets { by_figure }
    }

    fn get(&self, figure: &str) -> BTreeSet<i64> {
        self.by_figure.get(figure).cloned().unwrap_or_default()
    }
}

fn figure_name(figure: Figure) -> &'static str {
    match figure {
        Figure::Opened => "opened",
        Figure::Resolved => "resolved",
        Figure::Reopened => "reopened",
        Figure::FirstResponse => "first_response",
        Figure::Resolution => "resolution",
        Figure::Escalated => "escalated",
        Figure::Transferred => "transferred",
        Figure::ResolvedWithoutTransfer => "resolved_without_transfer",
        Figure::Breached => "breached",
        Figure::CsatAsked => "csat_asked",
        Figure::CsatAnswers => "csat_answers",
    }
}

fn figures(
    conversations: &[&ConversationFact],
    events: &[&EventFact],
    messages: &[&MessageCount],
    from: i64,
    to: i64,
) -> Figures {
    let sets = Sets::of(conversations, events, from, to);
    let by_id: BTreeMap<i64, &ConversationFact> = conversations.iter().map(|fact| (fact.id, *fact)).collect();
    let durations = |figure: &str, end: fn(&ConversationFact) -> Option<i64>| {
        Durations::of(
            sets.get(figure)
                .iter()
                .filter_map(|id| by_id.get(id))
                .filter_map(|fact| end(fact).map(|at| at - fact.created_at))
                .collect(),
        )
    };
    let count_events = |kind: &str| events.iter().filter(|event| event.kind == kind).count();
    let messages_of = |direction: &str, automated: bool| -> i64 {
        messages
            .iter()
            .filter(|count| count.direction == direction && count.automated == automated)
            .map(|count| count.count)
            .sum()
    };
    let resolved = sets.get("resolved").len();
    let answered: Vec<i64> = sets
        .get("csat_answers")
        .iter()
        .filter_map(|id| by_id.get(id).and_then(|fact| fact.csat_score))
        .collect();
    let asked = sets.get("csat_asked");
    let asked_answered = asked
        .iter()
        .filter(|id| by_id.get(id).is_some_and(|fact| fact.csat_score.is_some()))
        .count();
    let mut distribution: BTreeMap<String, usize> = (1..=5).map(|score| (score.to_string(), 0)).collect();
    for score in &answered {
        *distribution.entry(score.to_string()).or_default() += 1;
    }
    let share = |part: usize, whole: usize| (whole > 0).then(|| part as f64 / whole as f64);
    Figures {
        opened: sets.get("opened").len(),
        resolved,
        reopened: sets.get("reopened").len(),
        messages_in: messages_of("inbound", false),
        messages_out: messages_of("outbound", false),
        automated_updates: messages_of("outbound", true),
        notes: messages_of("note", false),
        first_response: durations("first_response", |fact| fact.first_response_at),
        resolution: durations("resolution", |fact| fact.resolved_at),
        escalations: count_events("conversation.escalated"),
        escalated: sets.get("escalated").len(),
        transfers: count_events("conversation.transferred"),
        transferred: sets.get("transferred").len(),
        resolved_without_transfer: share(sets.get("resolved_without_transfer").len(), resolved),
        sla_warnings: count_events("sla.warning"),
        sla_breaches: count_events("sla.breached"),
        breached: sets.get("breached").len(),
        csat: Csat {
            asked: asked.len(),
            answers: answered.len(),
            response_rate: share(asked_answered, asked.len()),
            average: (!answered.is_empty()).then(|| answered.iter().sum::<i64>() as f64 / answered.len() as f64),
            distribution,
        },
    }
}

/// One group of a report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Group {
    /// The grouping's value; `null`: none (no team, unassigned, language unknown).
    pub key: Option<String>,
    pub figures: Figures,
}

/// The whole range's figures, and each group's when grouped.
pub fn report(facts: &ReportFacts, from: i64, to: i64, grouped: bool) -> (Figures, Vec<Group>) {
    let all_conversations: Vec<&ConversationFact> = facts.conversations.iter().collect();
    let all_events: Vec<&EventFact> = facts.events.iter().collect();
    let all_messages: Vec<&MessageCount> = facts.messages.iter().collect();
    let total = figures(&all_conversations, &all_events, &all_messages, from, to);
    if !grouped {
        return (total, Vec::new());
    }
    let mut keys: BTreeSet<Option<String>> = BTreeSet::new();
    keys.extend(facts.conversations.iter().map(|fact| fact.key.clone()));
    keys.extend(facts.events.iter().map(|fact| fact.key.clone()));
    keys.extend(facts.messages.iter().map(|count| count.key.clone()));
    let groups = keys
        .into_iter()
        .map(|key| {
            let conversations: Vec<&ConversationFact> =
                facts.conversations.iter().filter(|fact| fact.key == key).collect();
            let events: Vec<&EventFact> = facts.events.iter().filter(|fact| fact.key == key).collect();
            let messages: Vec<&MessageCount> = facts.messages.iter().filter(|count| count.key == key).collect();
            let figures = figures(&conversations, &events, &messages, from, to);
            Group { key, figures }
        })
        .collect();
    (total, groups)
}

/// The conversations behind `figure`, of the group `key` when given (`Some(None)`: the
/// group without a value), ascending: as many as the figure counts.
pub fn drill_down(facts: &ReportFacts, from: i64, to: i64, figure: Figure, key: Option<Option<&str>>) -> Vec<i64> {
    let in_group = |fact_key: &Option<String>| key.is_none_or(|key| fact_key.as_deref() == key);
    let conversations: Vec<&ConversationFact> = facts.conversations.iter().filter(|fact| in_group(&fact.key)).collect();
    let events: Vec<&EventFact> = facts.events.iter().filter(|fact| in_group(&fact.key)).collect();
    Sets::of(&conversations, &events, from, to)
        .get(figure_name(figure))
        .into_iter()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conversation(id: i64, key: &str, created_at: i64) -> ConversationFact {
        ConversationFact {
            id,
            key: Some(key.into()),
            created_at,
            first_response_at: None,
            resolved_at: None,
            transfer_count: 0,
            csat_score: None,
            csat_requested_at: None,
            csat_answered_at: None,
        }
    }

    fn status(id: i64, key: &str, from: &str, to: &str) -> EventFact {
        EventFact {
            conversation_id: id,
            key: Some(key.into()),
            kind: "conversation.status_changed".into(),
            from_status: Some(from.into()),
            to_status: Some(to.into()),
        }
    }

    #[test]
    fn nearest_rank_percentiles_and_a_rounded_average() {
        let durations = Durations::of(vec![40, 10, 30, 20]);
        assert_eq!(durations.median_ms, Some(20), "the smallest with half at or below");
        assert_eq!(durations.p90_ms, Some(40));
        assert_eq!(durations.average_ms, Some(25));
        assert_eq!(Durations::of(Vec::new()), Durations::default());
        assert_eq!(Durations::of(vec![7]).p90_ms, Some(7));
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
                status(1, "billing", "open", "resolved"),
                status(2, "support", "open", "resolved"),
                status(2, "support", "resolved", "open"),
                status(2, "support", "open", "resolved"),
                EventFact {
                    conversation_id: 2,
                    key: Some("support".into()),
                    kind: "conversation.transferred".into(),
                    from_status: None,
                    to_status: None,
                },
            ],
            messages: vec![MessageCount {
                key: Some("billing".into()),
                direction: "inbound".into(),
                automated: false,
                count: 3,
            }],
        };
        let (total, groups) = report(&facts, 50, 1_000, true);
        assert_eq!((total.opened, total.resolved, total.reopened), (2, 2, 1));
        assert_eq!(total.first_response.median_ms, Some(60));
        assert_eq!(total.resolution.count, 2);
        assert_eq!(total.resolution.p90_ms, Some(700));
        assert_eq!(total.resolved_without_transfer, Some(0.5));
        assert_eq!((total.transfers, total.transferred), (1, 1));
        assert_eq!(total.csat.average, Some(4.0));
        assert_eq!(total.csat.response_rate, Some(1.0));
        assert_eq!(total.messages_in, 3);
        let billing = groups
            .iter()
            .find(|group| group.key.as_deref() == Some("billing"))
            .unwrap();
        assert_eq!(billing.figures.opened, 1, "conversation 3 opened before the range");
        assert_eq!(drill_down(&facts, 50, 1_000, Figure::Resolved, None), [1, 2]);
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
}
