//! The facts reports are made of (`query::reports`): the SQL every backend runs (numbered
//! `$n` parameters, which SQLite reads too, bound in order) and what is made of the
//! rows. SQLite reads them through rusqlite on a blocking thread, PostgreSQL through sqlx.
//! Who may see what is decided above the store (`query::report_cache`).
//!
//! The large fact tables (events, responses, message tallies) are read by time alone,
//! through indexes that hold what is read, and joined to their conversations here
//! rather than in SQL: a year of a desk is hundreds of thousands of rows, and a join per
//! row would cost more than the rows themselves.

use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHashSet};

use crate::model::{Direction, MessageKind};
use crate::query::reports::{
    ClockMetFact, ConversationFact, Grouping, ReportConversation, SLOT_MS, TallyFact, Timeline,
};
use crate::store::StoreResult;
use crate::store::columns::{tally_of, vocabulary};

/// The events a figure counts, by time: the condition is the `events_reported` index's,
/// word for word, so the planner knows the index holds them all.
pub(in crate::store) const EVENTS: &str = "SELECT e.conversation_id, e.created_at, e.kind, e.data FROM events e
     WHERE e.kind IN ('conversation.status_changed', 'conversation.escalated', 'conversation.transferred',
                      'sla.warning', 'sla.breached')
       AND e.created_at >= $1 AND e.created_at < $2";

/// Responses by when they were sent, from the index alone.
pub(in crate::store) const RESPONSES: &str = "SELECT r.conversation_id, r.waited_from, r.answered_at, r.first, r.sla
     FROM responses r WHERE r.answered_at >= $1 AND r.answered_at < $2";

/// Whole quarter hours' tallies: `$1`, `$2` are slots.
pub(in crate::store) const TALLIES: &str =
    "SELECT t.slot, t.conversation_id, t.inbound, t.outbound, t.automated, t.notes
     FROM message_tallies t WHERE t.slot >= $1 AND t.slot < $2";

/// The messages of part of a quarter hour (`$1`), between `$2` and `$3`: found through
/// the quarter's tallies, so no index by time on the messages is needed.
pub(in crate::store) const EDGE_MESSAGES: &str =
    "SELECT m.conversation_id, m.direction, m.kind, COUNT(*) FROM message_tallies t
     JOIN messages m ON m.conversation_id = t.conversation_id
     WHERE t.slot = $1 AND m.created_at >= $2 AND m.created_at < $3
     GROUP BY m.conversation_id, m.direction, m.kind";

/// Resolution and max-open clocks that reached their goal in time (response clocks'
/// outcomes are on their responses).
pub(in crate::store) const CLOCKS_MET: &str = "SELECT s.conversation_id, s.kind, s.stopped_at FROM sla_clocks s
     WHERE s.state = 'met' AND s.breached_at IS NULL AND s.kind IN ('resolution', 'max_open')
       AND s.stopped_at >= $1 AND s.stopped_at < $2";

/// Conversations whose own times fall in `[$1, $2)`, found through their indexes.
pub(in crate::store) const IN_RANGE: &str = "(c.created_at >= $1 AND c.created_at < $2)
     OR (c.resolved_at >= $1 AND c.resolved_at < $2)
     OR (c.csat_requested_at >= $1 AND c.csat_requested_at < $2)
     OR (c.csat_answered_at >= $1 AND c.csat_answered_at < $2)";

/// [`IN_RANGE`] read by one pass over the table: for a long range, most conversations
/// are in it, and four index walks then a lookup of each row cost several times the
/// pass (80 against about 20 ms for the scale desk's year on SQLite). `+` hides a column
/// from the planner's index choice.
pub(in crate::store) const IN_LONG_RANGE: &str = "(+c.created_at >= $1 AND +c.created_at < $2)
     OR (+c.resolved_at >= $1 AND +c.resolved_at < $2)
     OR (+c.csat_requested_at >= $1 AND +c.csat_requested_at < $2)
     OR (+c.csat_answered_at >= $1 AND +c.csat_answered_at < $2)";

/// From how long a range [`IN_LONG_RANGE`] reads its conversations.
const LONG_RANGE_MS: i64 = 31 * 86_400_000;

/// The condition for a range's conversations.
pub(in crate::store) fn in_range(from: i64, to: i64) -> &'static str {
    if to - from > LONG_RANGE_MS {
        IN_LONG_RANGE
    } else {
        IN_RANGE
    }
}

/// The columns a report reads of each conversation, in [`ConversationRow`]'s order: its
/// own only, names looked up by id in [`Names`] (a join per conversation costs more, a
/// year being 100,000 of them). Language and priority are texts, read only when the
/// report is grouped by them.
fn conversation_columns(grouping: Option<Grouping>) -> [&'static str; 13] {
    [
        "c.id",
        "c.team_id",
        "c.assignee_id",
        "c.inbox_id",
        if grouping == Some(Grouping::Language) {
            "c.language"
        } else {
            "CAST(NULL AS TEXT)"
        },
        if grouping == Some(Grouping::Priority) {
            "c.priority"
        } else {
            "CAST(NULL AS TEXT)"
        },
        "c.created_at",
        "c.first_response_at",
        "c.resolved_at",
        "c.transfer_count",
        "c.csat_score",
        "c.csat_requested_at",
        "c.csat_answered_at",
    ]
}

/// A report's conversations where `condition` holds, a row each.
pub(in crate::store) fn conversations_sql(grouping: Option<Grouping>, condition: &str) -> String {
    format!(
        "SELECT {} FROM conversations c WHERE {condition}",
        conversation_columns(grouping).join(", ")
    )
}

/// The teams', agents' and inboxes' names by id, read in the same transaction as the
/// conversations that name them.
pub(in crate::store) const TEAM_NAMES: &str = "SELECT id, key FROM teams";
pub(in crate::store) const AGENT_NAMES: &str = "SELECT id, name FROM agents";
pub(in crate::store) const INBOX_NAMES: &str = "SELECT id, key, kind FROM inboxes";

/// A conversation row of [`conversations_sql`], as read (`Text`: owned or borrowed).
pub(in crate::store) type ConversationRow<Text> = (
    i64,
    Option<i64>,
    Option<i64>,
    i64,
    Option<Text>,
    Option<Text>,
    i64,
    Option<i64>,
    Option<i64>,
    i64,
    Option<i64>,
    Option<i64>,
    Option<i64>,
);

/// What a report's conversations name by id, and the values they share, each held once.
#[derive(Default)]
pub(in crate::store) struct Names {
    teams: FxHashMap<i64, Arc<str>>,
    agents: FxHashMap<i64, Arc<str>>,
    /// Key and channel.
    inboxes: FxHashMap<i64, (Arc<str>, Arc<str>)>,
    values: FxHashMap<Box<str>, Arc<str>>,
}

impl Names {
    pub fn new(teams: Vec<(i64, String)>, agents: Vec<(i64, String)>, inboxes: Vec<(i64, String, String)>) -> Names {
        Names {
            teams: teams.into_iter().map(|(id, key)| (id, Arc::from(key))).collect(),
            agents: agents.into_iter().map(|(id, name)| (id, Arc::from(name))).collect(),
            inboxes: inboxes
                .into_iter()
                .map(|(id, key, kind)| (id, (Arc::from(key), Arc::from(kind))))
                .collect(),
            values: FxHashMap::default(),
        }
    }

    /// `text`, shared with every other conversation that has it.
    fn value(&mut self, text: &str) -> Arc<str> {
        if let Some(value) = self.values.get(text) {
            return Arc::clone(value);
        }
        let value: Arc<str> = Arc::from(text);
        self.values.insert(text.into(), Arc::clone(&value));
        value
    }

    /// A row of [`conversations_sql`] as a report reads it, with the grouping's value.
    pub fn conversation<Text: AsRef<str>>(
        &mut self,
        grouping: Option<Grouping>,
        row: ConversationRow<Text>,
    ) -> ReportConversation {
        let (
            id,
            team_id,
            assignee_id,
            inbox_id,
            language,
            priority,
            created_at,
            first_response_at,
            resolved_at,
            transfer_count,
            csat_score,
            csat_requested_at,
            csat_answered_at,
        ) = row;
        let team = team_id.and_then(|id| self.teams.get(&id).cloned());
        let inbox = self.inboxes.get(&inbox_id);
        let key = match grouping {
            None => None,
            Some(Grouping::Team) => team.clone(),
            Some(Grouping::Agent) => assignee_id.and_then(|id| self.agents.get(&id).cloned()),
            Some(Grouping::Channel) => inbox.map(|(_, kind)| Arc::clone(kind)),
            Some(Grouping::Inbox) => inbox.map(|(key, _)| Arc::clone(key)),
            Some(Grouping::Language) => language.map(|language| self.value(language.as_ref())),
            Some(Grouping::Priority) => priority.map(|priority| self.value(priority.as_ref())),
        };
        ReportConversation {
            fact: ConversationFact {
                id,
                key,
                team,
                created_at,
                first_response_at,
                resolved_at,
                transfer_count,
                csat_score,
                csat_requested_at,
                csat_answered_at,
            },
            assignee_id,
        }
    }
}

/// Part of one quarter hour: its slot, and the instants it runs from and to.
pub(in crate::store) type Edge = (i64, i64, i64);

/// The quarter hours of `[from, to)`: the whole ones (a range of slots, if any) and the
/// parts at either edge.
pub(in crate::store) fn slots(from: i64, to: i64) -> (Option<(i64, i64)>, Vec<Edge>) {
    let first_slot = from.div_euclid(SLOT_MS);
    let last_slot = (to - 1).div_euclid(SLOT_MS);
    let whole_from = if from % SLOT_MS == 0 {
        first_slot
    } else {
        first_slot + 1
    };
    let whole_to = if to % SLOT_MS == 0 { last_slot + 1 } else { last_slot };
    let mut edges = Vec::new();
    if from % SLOT_MS != 0 {
        edges.push((first_slot, from, to.min((first_slot + 1) * SLOT_MS)));
    }
    if to % SLOT_MS != 0 && (last_slot != first_slot || from % SLOT_MS == 0) {
        edges.push((last_slot, from.max(last_slot * SLOT_MS), to));
    }
    ((whole_from < whole_to).then_some((whole_from, whole_to)), edges)
}

/// A row of [`EDGE_MESSAGES`] as a tally of the part of the quarter from `at`.
pub(in crate::store) fn edge_tally(
    conversation_id: i64,
    direction: &str,
    kind: &str,
    count: i64,
    at: i64,
) -> StoreResult<TallyFact> {
    let one = tally_of(
        vocabulary(Direction::parse, direction)?,
        vocabulary(MessageKind::parse, kind)?,
    );
    Ok(TallyFact {
        conversation_id,
        at,
        counts: one.map(|unit| unit * count),
    })
}

/// The conversations of the timeline's facts and the clocks that `rows` (those with
/// times of their own in the range) do not hold, ascending.
pub(in crate::store) fn missing(
    timeline: &Timeline,
    clocks_met: &[ClockMetFact],
    rows: &[ReportConversation],
) -> Vec<i64> {
    let mut missing: FxHashSet<i64> = timeline
        .conversations()
        .iter()
        .copied()
        .chain(clocks_met.iter().map(|fact| fact.conversation_id))
        .collect();
    // Usually a handful (today's facts): the rows are walked, not hashed.
    if !missing.is_empty() {
        for row in rows {
            missing.remove(&row.fact.id);
        }
    }
    let mut missing: Vec<i64> = missing.into_iter().collect();
    missing.sort_unstable();
    missing
}
