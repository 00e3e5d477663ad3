//! What `route replay` reads: each conversation's opening as routing saw it, the same
//! SQL on every backend: [`replay_queries!`] makes it for a backend's pool, with the
//! placeholders its query builder writes.

use std::collections::BTreeMap;

use serde_json::Value;

use super::StoreResult;
use super::columns::{json_column, vocabulary};
use crate::model::Priority;
use crate::query::{RoutedDecision, RoutedOpening};

/// `conversations c JOIN inboxes i JOIN contacts ct`, with the first inbound message's
/// text (none for an erased conversation) and the `conversation.routed` event's data.
pub(in crate::store) const OPENING_SELECT: &str = "SELECT c.id, i.key, i.kind, c.subject, c.language, ct.metadata,
        c.created_at,
        CASE WHEN EXISTS (SELECT 1 FROM events x WHERE x.conversation_id = c.id AND x.kind = 'conversation.erased')
             THEN NULL
             ELSE (SELECT m.text FROM messages m WHERE m.conversation_id = c.id AND m.direction = 'inbound'
                   ORDER BY m.id LIMIT 1)
        END,
        (SELECT e.data FROM events e WHERE e.conversation_id = c.id AND e.kind = 'conversation.routed'
         ORDER BY e.id LIMIT 1)
    FROM conversations c JOIN inboxes i ON i.id = c.inbox_id JOIN contacts ct ON ct.id = c.contact_id
    WHERE c.created_at >= ";
pub(in crate::store) type OpeningColumns = (
    i64,
    String,
    String,
    Option<String>,
    Option<String>,
    String,
    i64,
    Option<String>,
    Option<String>,
);

pub(in crate::store) fn opening(columns: OpeningColumns) -> StoreResult<RoutedOpening> {
    let (id, inbox, kind, subject, language, metadata, created_at, text, routed) = columns;
    let routed: Option<Value> = routed.as_deref().map(json_column).transpose()?;
    let decision = routed.as_ref().and_then(|data| {
        Some(RoutedDecision {
            rule: data.get("rule").and_then(Value::as_str).map(str::to_owned),
            team: data.get("team")?.as_str()?.to_owned(),
            priority: Priority::parse(data.get("priority")?.as_str()?)?,
            labels: data
                .get("labels")
                .and_then(Value::as_array)
                .map(|labels| labels.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                .unwrap_or_default(),
        })
    });
    let seen = routed
        .as_ref()
        .and_then(|data| data.get("language"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    Ok(RoutedOpening {
        conversation_id: id,
        inbox,
        channel: vocabulary(crate::channels::kind, &kind)?,
        subject,
        text,
        language: seen.or(language),
        metadata: json_column::<BTreeMap<String, Value>>(&metadata)?,
        routed: decision,
        opened_at: created_at,
    })
}

/// `routed_openings` for `$db`.
macro_rules! replay_queries {
    ($db:ty, $pool:ty) => {
        use sqlx::QueryBuilder;

        use crate::query::RoutedOpening;
        use crate::store::StoreResult;
        use crate::store::replay_views::{OPENING_SELECT, OpeningColumns, opening};

        pub async fn routed_openings(
            pool: &$pool,
            since: i64,
            after: Option<i64>,
            limit: u32,
        ) -> StoreResult<Vec<RoutedOpening>> {
            let mut query = QueryBuilder::<$db>::new(OPENING_SELECT);
            query.push_bind(since);
            if let Some(after) = after {
                query.push(" AND c.id > ").push_bind(after);
            }
            query.push(" ORDER BY c.id LIMIT ").push_bind(i64::from(limit));
            let rows: Vec<OpeningColumns> = query.build_query_as().fetch_all(pool).await?;
            rows.into_iter().map(opening).collect()
        }
    };
}

pub(in crate::store) use replay_queries;
