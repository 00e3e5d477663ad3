//! The admins' read models (the audit log, an agent's tokens), the same SQL on every
//! backend: [`admin_queries!`] makes them for a backend's pool, with the placeholders
//! its query builder writes.

/// `admin_audit(pool, agent_id, before, limit)` and `agent_tokens(pool, agent_id)` for
/// `$db`.
macro_rules! admin_queries {
    ($db:ty, $pool:ty) => {
        use sqlx::QueryBuilder;

        use crate::model::Timestamp;
        use crate::query::{AdminAuditEntry, TokenView};
        use crate::store::StoreResult;
        use crate::store::columns::json_column;

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

pub(in crate::store) use admin_queries;
