//! The facts reports are made of (`query::reports`), read with the same SQL on every
//! backend: [`report_queries!`] makes `report_facts` for a backend's pool, with the
//! placeholders its query builder writes.

/// `report_facts(pool, request)` for `$db`; `snapshot` is what makes the transaction's
/// reads see one state (PostgreSQL's `REPEATABLE READ`; SQLite's read transactions do).
macro_rules! report_queries {
    ($db:ty, $pool:ty, snapshot = $snapshot:expr) => {
        use sqlx::QueryBuilder;

        use super::conversations::{Scope, push_scope, scope_of};
        use crate::query::reports::{ConversationFact, EventFact, Grouping, MessageCount, ReportFacts, ReportRequest};
        use crate::store::StoreResult;
        use crate::store::columns::json_column;

        /// The events a figure counts.
        const COUNTED: &str = "('conversation.status_changed', 'conversation.escalated', \
                               'conversation.transferred', 'sla.warning', 'sla.breached')";

        /// Every conversation row `c` of a report joins what its grouping may read.
        const JOINS: &str = " JOIN inboxes i ON i.id = c.inbox_id LEFT JOIN teams t ON t.id = c.team_id
                              LEFT JOIN agents ag ON ag.id = c.assignee_id";

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

        async fn conversations(
            conn: &mut <$db as sqlx::Database>::Connection,
            request: &ReportRequest,
            scope: &Scope,
        ) -> StoreResult<Vec<ConversationFact>> {
            let (from, to) = (request.from, request.to);
            let mut query = QueryBuilder::<$db>::new(format!(
                "SELECT c.id, {} AS report_key, c.created_at, c.first_response_at, c.resolved_at, c.transfer_count,
                        c.csat_score, c.csat_requested_at, c.csat_answered_at
                 FROM conversations c{JOINS} WHERE (",
                key_of(request.grouping)
            ));
            push_range(&mut query, "c.created_at", from, to);
            query.push(" OR ");
            push_range(&mut query, "c.resolved_at", from, to);
            query.push(" OR ");
            push_range(&mut query, "c.csat_requested_at", from, to);
            query.push(" OR ");
            push_range(&mut query, "c.csat_answered_at", from, to);
            query.push(" OR c.id IN (SELECT e.conversation_id FROM events e WHERE ");
            push_range(&mut query, "e.created_at", from, to);
            query.push(format!(" AND e.kind IN {COUNTED}))"));
            push_scope(&mut query, scope);
            type Row = (
                i64,
                Option<String>,
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
                        created_at,
                        first_response_at,
                        resolved_at,
                        transfer_count,
                        score,
                        requested,
                        answered,
                    )| {
                        ConversationFact {
                            id,
                            key,
                            created_at,
                            first_response_at,
                            resolved_at,
                            transfer_count,
                            csat_score: score,
                            csat_requested_at: requested,
                            csat_answered_at: answered,
                        }
                    },
                )
                .collect())
        }

        async fn events(
            conn: &mut <$db as sqlx::Database>::Connection,
            request: &ReportRequest,
            scope: &Scope,
        ) -> StoreResult<Vec<EventFact>> {
            let mut query = QueryBuilder::<$db>::new(format!(
                "SELECT e.conversation_id, {} AS report_key, e.kind, e.data
                 FROM events e JOIN conversations c ON c.id = e.conversation_id{JOINS} WHERE ",
                key_of(request.grouping)
            ));
            push_range(&mut query, "e.created_at", request.from, request.to);
            query.push(format!(" AND e.kind IN {COUNTED}"));
            push_scope(&mut query, scope);
            let rows: Vec<(i64, Option<String>, String, String)> = query.build_query_as().fetch_all(&mut *conn).await?;
            rows.into_iter()
                .map(|(conversation_id, key, kind, data)| {
                    let data: serde_json::Value = json_column(&data)?;
                    let status = |field: &str| {
                        data.get(field)
                            .and_then(|value| value.as_str())
                            .map(str::to_owned)
                    };
                    Ok(EventFact {
                        conversation_id,
                        key,
                        from_status: status("from").filter(|_| kind == "conversation.status_changed"),
                        to_status: status("to").filter(|_| kind == "conversation.status_changed"),
                        kind,
                    })
                })
                .collect()
        }

        async fn messages(
            conn: &mut <$db as sqlx::Database>::Connection,
            request: &ReportRequest,
            scope: &Scope,
        ) -> StoreResult<Vec<MessageCount>> {
            let mut query = QueryBuilder::<$db>::new(format!(
                "SELECT {} AS report_key, m.direction, m.kind = 'status_update' AS automated, COUNT(*)
                 FROM messages m JOIN conversations c ON c.id = m.conversation_id{JOINS} WHERE ",
                key_of(request.grouping)
            ));
            push_range(&mut query, "m.created_at", request.from, request.to);
            push_scope(&mut query, scope);
            query.push(" GROUP BY 1, 2, 3");
            let rows: Vec<(Option<String>, String, bool, i64)> = query.build_query_as().fetch_all(&mut *conn).await?;
            Ok(rows
                .into_iter()
                .map(|(key, direction, automated, count)| MessageCount {
                    key,
                    direction,
                    automated,
                    count,
                })
                .collect())
        }

        /// The facts of the request's range, in one read transaction so the three reads
        /// agree.
        pub async fn report_facts(pool: &$pool, request: &ReportRequest) -> StoreResult<ReportFacts> {
            let mut tx = pool.begin().await?;
            let snapshot: Option<&str> = $snapshot;
            if let Some(statement) = snapshot {
                sqlx::query(statement).execute(&mut *tx).await?;
            }
            let scope = scope_of(&mut tx, &request.visible_to).await?;
            let conversations = conversations(&mut tx, request, &scope).await?;
            let events = events(&mut tx, request, &scope).await?;
            let messages = messages(&mut tx, request, &scope).await?;
            tx.commit().await?;
            Ok(ReportFacts {
                conversations,
                events,
                messages,
            })
        }
    };
}

pub(in crate::store) use report_queries;
