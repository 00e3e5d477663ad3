//! The facts reports are made of (`query::reports`), read with the same SQL on every
//! backend: [`report_queries!`] makes `report_facts` for a backend's pool, with the
//! placeholders its query builder writes.
//!
//! The large fact tables (events, responses, message tallies) are read by time alone,
//! through indexes that hold what is read, and joined to their conversations here
//! rather than in SQL: a year of a desk is hundreds of thousands of rows, and a join per
//! row would cost more than the rows themselves. Who may see what is decided here too,
//! on each conversation's team and assignee.

/// `report_facts(pool, request)` for `$db`; `snapshot` is what makes the transaction's
/// reads see one state (PostgreSQL's `REPEATABLE READ`; SQLite's read transactions do).
macro_rules! report_queries {
    ($db:ty, $pool:ty, snapshot = $snapshot:expr) => {
        use std::collections::{HashMap, HashSet};

        use sqlx::QueryBuilder;

        use super::conversations::{Scope, scope_of};
        use crate::model::clock::ClockKind;
        use crate::model::{Direction, MessageKind};
        use crate::query::reports::{
            ClockMetFact, ConversationFact, EventFact, EventKind, Grouping, ReportFacts, ReportRequest, ResponseFact,
            SLOT_MS, TallyFact,
        };
        use crate::store::StoreResult;
        use crate::store::columns::{tally_of, vocabulary};

        type Conn = <$db as sqlx::Database>::Connection;

        /// The events a figure counts: the same text as the `events_reported` index's
        /// condition, so the planner knows the index holds them all.
        const COUNTED: &str = "e.kind IN ('conversation.status_changed', 'conversation.escalated', \
                               'conversation.transferred', 'sla.warning', 'sla.breached')";

        fn key_of(grouping: Option<Grouping>) -> &'static str {
            match grouping {
                None => "CAST(NULL AS TEXT)",
                Some(Grouping::Team) => "t.key",
                Some(Grouping::Agent) => "ag.name",
                Some(Grouping::Channel) => "i.kind",
                Some(Grouping::Inbox) => "i.key",
                Some(Grouping::Language) => "c.language",
                Some(Grouping::Priority) => "c.priority",
            }
        }

        fn push_range<'a>(query: &mut QueryBuilder<'a, $db>, column: &str, from: i64, to: i64) {
            query
                .push(format!("({column} >= "))
                .push_bind(from)
                .push(format!(" AND {column} < "))
                .push_bind(to)
                .push(")");
        }

        /// A conversation as a report reads it, with what decides who may see it.
        struct Visible {
            fact: ConversationFact,
            team_id: Option<i64>,
            assignee_id: Option<i64>,
        }

        fn may_see(scope: &Scope, row: &Visible) -> bool {
            match scope {
                Scope::All => true,
                Scope::Of { agent_id, team_ids } => {
                    row.assignee_id == Some(*agent_id) || row.team_id.is_some_and(|team| team_ids.contains(&team))
                }
            }
        }

        fn conversations_query<'a>(grouping: Option<Grouping>) -> QueryBuilder<'a, $db> {
            QueryBuilder::<$db>::new(format!(
                "SELECT c.id, {} AS report_key, t.key AS team_key, c.team_id, c.assignee_id, c.created_at,
                        c.first_response_at, c.resolved_at, c.transfer_count, c.csat_score, c.csat_requested_at,
                        c.csat_answered_at
                 FROM conversations c JOIN inboxes i ON i.id = c.inbox_id LEFT JOIN teams t ON t.id = c.team_id
                 LEFT JOIN agents ag ON ag.id = c.assignee_id WHERE ",
                key_of(grouping)
            ))
        }

        async fn read_conversations(conn: &mut Conn, query: &mut QueryBuilder<'_, $db>) -> StoreResult<Vec<Visible>> {
            type Row = (
                i64,
                Option<String>,
                Option<String>,
                Option<i64>,
                Option<i64>,
                i64,
                Option<i64>,
                Option<i64>,
                i64,
                Option<i64>,
                Option<i64>,
                Option<i64>,
            );
            let rows: Vec<Row> = query.build_query_as().fetch_all(&mut *conn).await?;
            Ok(rows
                .into_iter()
                .map(
                    |(
                        id,
                        key,
                        team,
                        team_id,
                        assignee_id,
                        created_at,
                        first_response_at,
                        resolved_at,
                        transfer_count,
                        csat_score,
                        csat_requested_at,
                        csat_answered_at,
                    )| Visible {
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
                        team_id,
                        assignee_id,
                    },
                )
                .collect())
        }

        /// Conversations whose own times fall in the range.
        async fn conversations(conn: &mut Conn, request: &ReportRequest) -> StoreResult<Vec<Visible>> {
            let (from, to) = (request.from, request.to);
            let mut query = conversations_query(request.grouping);
            query.push("(");
            push_range(&mut query, "c.created_at", from, to);
            query.push(" OR ");
            push_range(&mut query, "c.resolved_at", from, to);
            query.push(" OR ");
            push_range(&mut query, "c.csat_requested_at", from, to);
            query.push(" OR ");
            push_range(&mut query, "c.csat_answered_at", from, to);
            query.push(")");
            read_conversations(conn, &mut query).await
        }

        /// The conversations of facts whose conversation had no time of its own in the
        /// range (a response to one opened last year).
        async fn conversations_by_id(
            conn: &mut Conn,
            request: &ReportRequest,
            ids: &[i64],
        ) -> StoreResult<Vec<Visible>> {
            let mut found = Vec::new();
            for chunk in ids.chunks(500) {
                let mut query = conversations_query(request.grouping);
                query.push("c.id IN (");
                let mut list = query.separated(", ");
                for id in chunk {
                    list.push_bind(*id);
                }
                query.push(")");
                found.extend(read_conversations(conn, &mut query).await?);
            }
            Ok(found)
        }

        async fn events(conn: &mut Conn, request: &ReportRequest) -> StoreResult<Vec<EventFact>> {
            let mut query = QueryBuilder::<$db>::new(format!(
                "SELECT e.conversation_id, e.created_at, e.kind, e.data FROM events e WHERE {COUNTED} AND "
            ));
            push_range(&mut query, "e.created_at", request.from, request.to);
            let rows: Vec<(i64, i64, String, String)> = query.build_query_as().fetch_all(&mut *conn).await?;
            Ok(rows
                .into_iter()
                .filter_map(|(conversation_id, at, kind, data)| {
                    EventKind::of(&kind, &data).map(|kind| EventFact {
                        conversation_id,
                        at,
                        kind,
                    })
                })
                .collect())
        }

        async fn responses(conn: &mut Conn, request: &ReportRequest) -> StoreResult<Vec<ResponseFact>> {
            let mut query = QueryBuilder::<$db>::new(
                "SELECT r.conversation_id, r.waited_from, r.answered_at, r.first, r.sla FROM responses r WHERE ",
            );
            push_range(&mut query, "r.answered_at", request.from, request.to);
            let rows: Vec<(i64, i64, i64, bool, Option<String>)> = query.build_query_as().fetch_all(&mut *conn).await?;
            Ok(rows
                .into_iter()
                .map(
                    |(conversation_id, waited_from, answered_at, first, sla)| ResponseFact {
                        conversation_id,
                        waited_from,
                        answered_at,
                        first,
                        sla_breached: sla.map(|sla| sla == "breached"),
                    },
                )
                .collect())
        }

        /// Messages by quarter hour: whole quarters from their tallies, the parts of a
        /// quarter at either edge of the range counted from the messages themselves.
        async fn tallies(conn: &mut Conn, request: &ReportRequest) -> StoreResult<Vec<TallyFact>> {
            let (from, to) = (request.from, request.to);
            let first_slot = from.div_euclid(SLOT_MS);
            let last_slot = (to - 1).div_euclid(SLOT_MS);
            let whole_from = if from % SLOT_MS == 0 {
                first_slot
            } else {
                first_slot + 1
            };
            let whole_to = if to % SLOT_MS == 0 {
                last_slot + 1
            } else {
                last_slot
            };
            let mut tallies = Vec::new();
            if whole_from < whole_to {
                let mut query = QueryBuilder::<$db>::new(
                    "SELECT t.slot, t.conversation_id, t.inbound, t.outbound, t.automated, t.notes
                     FROM message_tallies t WHERE ",
                );
                push_range(&mut query, "t.slot", whole_from, whole_to);
                let rows: Vec<(i64, i64, i64, i64, i64, i64)> = query.build_query_as().fetch_all(&mut *conn).await?;
                tallies.extend(
                    rows.into_iter().map(
                        |(slot, conversation_id, inbound, outbound, automated, notes)| TallyFact {
                            conversation_id,
                            at: slot * SLOT_MS,
                            counts: [inbound, outbound, automated, notes],
                        },
                    ),
                );
            }
            let mut edges = Vec::new();
            if from % SLOT_MS != 0 {
                edges.push((first_slot, from, to.min((first_slot + 1) * SLOT_MS)));
            }
            if to % SLOT_MS != 0 && (last_slot != first_slot || from % SLOT_MS == 0) {
                edges.push((last_slot, from.max(last_slot * SLOT_MS), to));
            }
            for (slot, start, end) in edges {
                let mut query = QueryBuilder::<$db>::new(
                    "SELECT m.conversation_id, m.direction, m.kind, COUNT(*) FROM message_tallies t
                     JOIN messages m ON m.conversation_id = t.conversation_id WHERE t.slot = ",
                );
                query.push_bind(slot).push(" AND ");
                push_range(&mut query, "m.created_at", start, end);
                query.push(" GROUP BY m.conversation_id, m.direction, m.kind");
                let rows: Vec<(i64, String, String, i64)> = query.build_query_as().fetch_all(&mut *conn).await?;
                for (conversation_id, direction, kind, count) in rows {
                    let one = tally_of(
                        vocabulary(Direction::parse, &direction)?,
                        vocabulary(MessageKind::parse, &kind)?,
                    );
                    tallies.push(TallyFact {
                        conversation_id,
                        at: start,
                        counts: one.map(|unit| unit * count),
                    });
                }
            }
            Ok(tallies)
        }

        /// Resolution and max-open clocks that reached their goal in the range in time.
        /// (Response clocks' outcomes are on their responses.)
        async fn clocks_met(conn: &mut Conn, request: &ReportRequest) -> StoreResult<Vec<ClockMetFact>> {
            let mut query = QueryBuilder::<$db>::new(
                "SELECT s.conversation_id, s.kind, s.stopped_at FROM sla_clocks s
                 WHERE s.state = 'met' AND s.breached_at IS NULL AND s.kind IN ('resolution', 'max_open') AND ",
            );
            push_range(&mut query, "s.stopped_at", request.from, request.to);
            let rows: Vec<(i64, String, i64)> = query.build_query_as().fetch_all(&mut *conn).await?;
            rows.into_iter()
                .map(|(conversation_id, clock, at)| {
                    Ok(ClockMetFact {
                        conversation_id,
                        clock: vocabulary(ClockKind::parse, &clock)?,
                        at,
                    })
                })
                .collect()
        }

        /// The facts of the request's range, in one read transaction so the reads agree.
        pub async fn report_facts(pool: &$pool, request: &ReportRequest) -> StoreResult<ReportFacts> {
            let mut tx = pool.begin().await?;
            let snapshot: Option<&str> = $snapshot;
            if let Some(statement) = snapshot {
                sqlx::query(statement).execute(&mut *tx).await?;
            }
            let scope = scope_of(&mut tx, &request.visible_to).await?;
            let mut facts = ReportFacts {
                events: events(&mut tx, request).await?,
                responses: responses(&mut tx, request).await?,
                tallies: tallies(&mut tx, request).await?,
                clocks_met: clocks_met(&mut tx, request).await?,
                conversations: Vec::new(),
            };
            let mut rows = conversations(&mut tx, request).await?;
            let known: HashSet<i64> = rows.iter().map(|row| row.fact.id).collect();
            let mut missing: Vec<i64> = facts
                .events
                .iter()
                .map(|fact| fact.conversation_id)
                .chain(facts.responses.iter().map(|fact| fact.conversation_id))
                .chain(facts.tallies.iter().map(|fact| fact.conversation_id))
                .chain(facts.clocks_met.iter().map(|fact| fact.conversation_id))
                .filter(|id| !known.contains(id))
                .collect::<HashSet<i64>>()
                .into_iter()
                .collect();
            missing.sort_unstable();
            rows.extend(conversations_by_id(&mut tx, request, &missing).await?);
            tx.commit().await?;

            let visible: HashMap<i64, ConversationFact> = rows
                .into_iter()
                .filter(|row| may_see(&scope, row))
                .map(|row| (row.fact.id, row.fact))
                .collect();
            facts
                .events
                .retain(|fact| visible.contains_key(&fact.conversation_id));
            facts
                .responses
                .retain(|fact| visible.contains_key(&fact.conversation_id));
            facts
                .tallies
                .retain(|fact| visible.contains_key(&fact.conversation_id));
            facts
                .clocks_met
                .retain(|fact| visible.contains_key(&fact.conversation_id));
            facts.conversations = visible.into_values().collect();
            facts.conversations.sort_unstable_by_key(|fact| fact.id);
            Ok(facts)
        }
    };
}

pub(in crate::store) use report_queries;
