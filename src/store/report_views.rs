//! The facts reports are made of (`query::reports`): the SQL every backend runs (numbered
//! `$n` parameters, which SQLite reads too, bound in order) and what is made of the
//! rows. SQLite reads them through rusqlite on a blocking thread, PostgreSQL through sqlx.
//!
//! The large fact tables (events, responses, message tallies) are read by time alone,
//! through indexes that hold what is read, and joined to their conversations here
//! rather than in SQL: a year of a desk is hundreds of thousands of rows, and a join per
//! row would cost more than the rows themselves. Who may see what is decided here too,
//! by [`Visibility::allows`] on each conversation's team and assignee.

use rustc_hash::{FxHashMap, FxHashSet};

use crate::model::{Direction, MessageKind};
use crate::query::Visibility;
use crate::query::reports::{ConversationFact, Grouping, ReportFacts, SLOT_MS, TallyFact};
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

/// A report's conversations where `condition` holds, with the grouping's value.
pub(in crate::store) fn conversations_sql(grouping: Option<Grouping>, condition: &str) -> String {
    let key = match grouping {
        None => "CAST(NULL AS TEXT)",
        Some(Grouping::Team) => "t.key",
        Some(Grouping::Agent) => "ag.name",
        Some(Grouping::Channel) => "i.kind",
        Some(Grouping::Inbox) => "i.key",
        Some(Grouping::Language) => "c.language",
        Some(Grouping::Priority) => "c.priority",
    };
    format!(
        "SELECT c.id, {key} AS report_key, t.key AS team_key, c.assignee_id, c.created_at,
                c.first_response_at, c.resolved_at, c.transfer_count, c.csat_score, c.csat_requested_at,
                c.csat_answered_at
         FROM conversations c JOIN inboxes i ON i.id = c.inbox_id LEFT JOIN teams t ON t.id = c.team_id
         LEFT JOIN agents ag ON ag.id = c.assignee_id WHERE {condition}"
    )
}

/// A conversation row of [`conversations_sql`], as read.
pub(in crate::store) type ConversationRow = (
    i64,
    Option<String>,
    Option<String>,
    Option<i64>,
    i64,
    Option<i64>,
    Option<i64>,
    i64,
    Option<i64>,
    Option<i64>,
    Option<i64>,
);

/// A conversation as a report reads it, with its assignee: with its team, what decides
/// who may see it.
pub(in crate::store) struct Visible {
    pub fact: ConversationFact,
    pub assignee_id: Option<i64>,
}

impl Visible {
    pub fn of(row: ConversationRow) -> Visible {
        let (
            id,
            key,
            team,
            assignee_id,
            created_at,
            first_response_at,
            resolved_at,
            transfer_count,
            csat_score,
            csat_requested_at,
            csat_answered_at,
        ) = row;
        Visible {
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

/// The conversations of facts that `rows` (those with times of their own in the range)
/// do not hold, ascending.
pub(in crate::store) fn missing(facts: &ReportFacts, rows: &[Visible]) -> Vec<i64> {
    let known: FxHashSet<i64> = rows.iter().map(|row| row.fact.id).collect();
    let mut missing: Vec<i64> = facts
        .events
        .iter()
        .map(|fact| fact.conversation_id)
        .chain(facts.responses.iter().map(|fact| fact.conversation_id))
        .chain(facts.tallies.iter().map(|fact| fact.conversation_id))
        .chain(facts.clocks_met.iter().map(|fact| fact.conversation_id))
        .filter(|id| !known.contains(id))
        .collect::<FxHashSet<i64>>()
        .into_iter()
        .collect();
    missing.sort_unstable();
    missing
}

/// The facts with their conversations, of what the reader may see only.
pub(in crate::store) fn finish(mut facts: ReportFacts, rows: Vec<Visible>, reader: &Visibility) -> ReportFacts {
    let visible: FxHashMap<i64, ConversationFact> = rows
        .into_iter()
        .filter(|row| reader.allows(row.fact.team.as_deref(), row.assignee_id))
        .map(|row| (row.fact.id, row.fact))
        .collect();
    facts.events.retain(|fact| visible.contains_key(&fact.conversation_id));
    facts
        .responses
        .retain(|fact| visible.contains_key(&fact.conversation_id));
    facts.tallies.retain(|fact| visible.contains_key(&fact.conversation_id));
    facts
        .clocks_met
        .retain(|fact| visible.contains_key(&fact.conversation_id));
    facts.conversations = visible.into_values().collect();
    facts.conversations.sort_unstable_by_key(|fact| fact.id);
    facts
}
