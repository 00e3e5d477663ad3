//! What is read of agents (the admins' audit log, an agent's tokens, their mentions), the
//! same SQL on every backend: [`agent_queries!`] makes it for a backend's pool, with the
//! placeholders its query builder writes.

/// `admin_audit`, `agent_tokens`, `mentions` and `unread_mentions` for `$db`.
macro_rules! agent_queries {
    ($db:ty, $pool:ty) => {
        use sqlx::QueryBuilder;

        use super::conversations::{push_scope, scope_of};
        use crate::model::Timestamp;
        use crate::query::{AdminAuditEntry, MentionView, TokenView, Visibility};
        use crate::store::StoreResult;
        use crate::store::columns::json_column;

        /// The agent's mentions newest first, in conversations they may still see (one
        /// that moved to another team keeps its row but leaves the list).
        pub async fn mentions(
            pool: &$pool,
            agent_id: i64,
            visible_to: &Visibility,
            unread_only: bool,
            before: Option<i64>,
            limit: u32,
        ) -> StoreResult<Vec<MentionView>> {
            let mut conn = pool.acquire().await?;
            let scope = scope_of(&mut conn, visible_to).await?;
            let mut query = QueryBuilder::<$db>::new(
                "SELECT m.id, m.conversation_id, m.message_id, m.by_agent_id, a.name, SUBSTR(msg.text, 1, 280),
                        m.created_at, m.read_at
                 FROM mentions m JOIN conversations c ON c.id = m.conversation_id
                 JOIN messages msg ON msg.id = m.message_id LEFT JOIN agents a ON a.id = m.by_agent_id
                 WHERE m.agent_id = ",
            );
            query.push_bind(agent_id);
            if unread_only {
                query.push(" AND m.read_at IS NULL");
            }
            if let Some(before) = before {
                query.push(" AND m.id < ").push_bind(before);
            }
            push_scope(&mut query, &scope);
            query.push(" ORDER BY m.id DESC LIMIT ").push_bind(i64::from(limit));
            type Row = (i64, i64, i64, i64, Option<String>, String, i64, Option<i64>);
            let rows: Vec<Row> = query.build_query_as().fetch_all(&mut *conn).await?;
            Ok(rows
                .into_iter()
                .map(
                    |(id, conversation_id, message_id, by_id, by_name, excerpt, at, read_at)| MentionView {
                        id,
                        conversation_id,
                        message_id,
                        by: serde_json::json!({"id": by_id, "name": by_name}),
                        excerpt,
                        created_at: Timestamp(at),
                        read_at: read_at.map(Timestamp),
                    },
                )
                .collect())
        }

        pub async fn unread_mentions(pool: &$pool, agent_id: i64, visible_to: &Visibility) -> StoreResult<i64> {
            let mut conn = pool.acquire().await?;
            let scope = scope_of(&mut conn, visible_to).await?;
            let mut query = QueryBuilder::<$db>::new(
                "SELECT COUNT(*) FROM mentions m JOIN conversations c ON c.id = m.conversation_id
                 WHERE m.read_at IS NULL AND m.agent_id = ",
            );
            query.push_bind(agent_id);
            push_scope(&mut query, &scope);
            Ok(query.build_query_scalar().fetch_one(&mut *conn).await?)
        }

        pub async fn admin_audit(
            pool: &$pool,
            agent_id: Option<i64>,
            before: Option<i64>,
            limit: u32,
        ) -> StoreResult<Vec<AdminAuditEntry>> {
            let mut query = QueryBuilder::<$db>::new(
                "SELECT l.id, l.actor_id, a.name, l.action, l.target_kind, l.target_id, l.details, l.created_at
                 FROM admin_audit l LEFT JOIN agents a ON a.id = l.actor_id WHERE TRUE",
            );
            if let Some(agent_id) = agent_id {
                query
                    .push(" AND l.target_kind = 'agent' AND l.target_id = ")
                    .push_bind(agent_id);
            }
            if let Some(before) = before {
                query.push(" AND l.id < ").push_bind(before);
            }
            query.push(" ORDER BY l.id DESC LIMIT ").push_bind(i64::from(limit));
            type Row = (i64, Option<i64>, Option<String>, String, String, Option<i64>, String, i64);
            let rows: Vec<Row> = query.build_query_as().fetch_all(pool).await?;
            rows.into_iter()
                .map(
                    |(id, actor_id, actor_name, action, target_kind, target_id, details, at)| {
                        Ok(AdminAuditEntry {
                            id,
                            actor_id,
                            actor_name,
                            action,
                            target: serde_json::json!({"kind": target_kind, "id": target_id}),
                            details: json_column(&details)?,
                            at: Timestamp(at),
                        })
                    },
                )
                .collect()
        }

        pub async fn agent_tokens(pool: &$pool, agent_id: i64) -> StoreResult<Vec<TokenView>> {
            let mut query =
                QueryBuilder::<$db>::new("SELECT id, label, created_at, revoked_at FROM agent_tokens WHERE agent_id = ");
            query.push_bind(agent_id).push(" ORDER BY id");
            let rows: Vec<(i64, String, i64, Option<i64>)> = query.build_query_as().fetch_all(pool).await?;
            Ok(rows
                .into_iter()
                .map(|(id, label, created_at, revoked_at)| TokenView {
                    id,
                    label,
                    created_at: Timestamp(created_at),
                    revoked_at: revoked_at.map(Timestamp),
                })
                .collect())
        }
    };
}

pub(in crate::store) use agent_queries;
