//! The outbox and event deliveries as agents and `/metrics` see them, and when the next
//! one falls due.

use sqlx::postgres::PgRow;
use sqlx::{PgPool, Postgres, QueryBuilder, Row};

use crate::model::{DeliveryStatus, MessageKind, Timestamp};
use crate::query::*;
use crate::store::columns::{json_column, vocabulary};
use crate::store::{StoreError, StoreResult, Subscription};

const DELIVERY_COLUMNS: &str = "SELECT o.id, o.message_id, o.conversation_id, i.key AS inbox, i.kind AS channel,
        m.kind, o.status, o.attempts, o.next_attempt_at, o.expires_at, o.last_error, o.receipt, o.sent_at,
        o.created_at, o.updated_at
     FROM outbox o JOIN inboxes i ON i.id = o.inbox_id JOIN messages m ON m.id = o.message_id";

fn delivery_record(row: &PgRow) -> StoreResult<DeliveryRecord> {
    let status = vocabulary(DeliveryStatus::parse, row.try_get("status")?)?;
    Ok(DeliveryRecord {
        id: row.try_get("id")?,
        message_id: row.try_get("message_id")?,
        conversation_id: row.try_get("conversation_id")?,
        inbox: row.try_get("inbox")?,
        channel: vocabulary(crate::channels::kind, row.try_get("channel")?)?,
        kind: vocabulary(MessageKind::parse, row.try_get("kind")?)?,
        status,
        attempts: row.try_get("attempts")?,
        next_attempt_at: (status == DeliveryStatus::Scheduled)
            .then(|| row.try_get("next_attempt_at").map(Timestamp))
            .transpose()?,
        expires_at: Timestamp(row.try_get("expires_at")?),
        last_error: row.try_get("last_error")?,
        receipt: row
            .try_get::<Option<String>, _>("receipt")?
            .map(|text| json_column(&text))
            .transpose()?,
        sent_at: row.try_get::<Option<i64>, _>("sent_at")?.map(Timestamp),
        created_at: Timestamp(row.try_get("created_at")?),
        updated_at: Timestamp(row.try_get("updated_at")?),
    })
}

pub async fn list_deliveries(
    pool: &PgPool,
    status: Option<DeliveryStatus>,
    before: Option<i64>,
    limit: u32,
) -> StoreResult<DeliveryPage> {
    let mut query = QueryBuilder::<Postgres>::new(DELIVERY_COLUMNS);
    query.push(" WHERE o.id < ").push_bind(before.unwrap_or(i64::MAX));
    if let Some(status) = status {
        query.push(" AND o.status = ").push_bind(status.as_str());
    }
    // One more than asked: whether a next page exists.
    query.push(" ORDER BY o.id DESC LIMIT ").push_bind(i64::from(limit) + 1);
    let rows = query.build().fetch_all(pool).await?;
    let mut deliveries = rows.iter().map(delivery_record).collect::<StoreResult<Vec<_>>>()?;
    let next_cursor = (deliveries.len() > limit as usize).then(|| {
        deliveries.truncate(limit as usize);
        deliveries.last().map(|last| last.id.to_string())
    });
    Ok(DeliveryPage {
        deliveries,
        next_cursor: next_cursor.flatten(),
    })
}

pub async fn delivery(pool: &PgPool, id: i64) -> StoreResult<DeliveryRecord> {
    let row = sqlx::query(&format!("{DELIVERY_COLUMNS} WHERE o.id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await?
        .ok_or(StoreError::NotFound("delivery"))?;
    delivery_record(&row)
}

pub async fn outbox_gauges(pool: &PgPool) -> StoreResult<OutboxGauges> {
    // The unsent rows' and the failed rows' counts walk partial indexes (a backlog's
    // size); the whole table's is one pass over it (an index-only scan once vacuumed).
    let unsent: Vec<(String, i64)> = sqlx::query_as(
        "SELECT status, COUNT(*) FROM outbox WHERE status IN ('scheduled', 'in_flight') GROUP BY status",
    )
    .fetch_all(pool)
    .await?;
    let failed: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE status = 'failed'")
        .fetch_one(pool)
        .await?;
    let skipped: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE status = 'skipped'")
        .fetch_one(pool)
        .await?;
    let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox")
        .fetch_one(pool)
        .await?;
    let oldest_unsent_at: Option<i64> = sqlx::query_scalar(
        "SELECT created_at FROM outbox WHERE id = (SELECT MIN(id) FROM outbox WHERE status IN ('scheduled', 'in_flight'))",
    )
    .fetch_optional(pool)
    .await?;
    let count = |status: &str| unsent.iter().find(|(s, _)| s == status).map_or(0, |(_, n)| *n);
    let (scheduled, in_flight) = (count("scheduled"), count("in_flight"));
    let unsigned = |n: i64| u64::try_from(n).unwrap_or(0);
    Ok(OutboxGauges {
        scheduled: unsigned(scheduled),
        in_flight: unsigned(in_flight),
        failed: unsigned(failed),
        skipped: unsigned(skipped),
        sent: unsigned(total - scheduled - in_flight - failed - skipped),
        oldest_unsent_at,
    })
}

pub async fn sla_event_counts(pool: &PgPool) -> StoreResult<Vec<SlaEventCounts>> {
    // The partial index holds the SLA events alone; its expression must be written here
    // as in the index for the planner to take it.
    let rows: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT (data::jsonb) ->> 'team' AS team,
                COUNT(*) FILTER (WHERE kind = 'sla.warning'), COUNT(*) FILTER (WHERE kind = 'sla.breached')
         FROM events
         WHERE kind IN ('sla.warning', 'sla.breached') AND (data::jsonb) ->> 'team' IS NOT NULL
         GROUP BY 1 ORDER BY 1",
    )
    .fetch_all(pool)
    .await?;
    Ok(crate::store::metric_views::sla_counts(rows))
}

pub async fn subscription_backlogs(pool: &PgPool) -> StoreResult<Vec<SubscriptionBacklog>> {
    let rows = sqlx::query_as(crate::store::metric_views::SUBSCRIPTION_BACKLOGS)
        .fetch_all(pool)
        .await?;
    Ok(crate::store::metric_views::backlogs(rows))
}

/// A subscription's deliveries, newest first.
pub async fn subscription_deliveries(pool: &PgPool, id: i64, limit: u32) -> StoreResult<Vec<SubscriptionDelivery>> {
    let exists: Option<i64> = sqlx::query_scalar("SELECT id FROM subscriptions WHERE id = $1 AND deleted_at IS NULL")
        .bind(id)
        .fetch_optional(pool)
        .await?;
    if exists.is_none() {
        return Err(StoreError::NotFound("subscription"));
    }
    let rows = sqlx::query(
        "SELECT id, event_type, conversation_id, status, attempts, next_attempt_at, last_error, sent_at, created_at
         FROM event_deliveries WHERE subscription_id = $1 ORDER BY id DESC LIMIT $2",
    )
    .bind(id)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            let status = DeliveryStatus::parse(row.try_get("status")?).unwrap_or(DeliveryStatus::Failed);
            Ok(SubscriptionDelivery {
                id: row.try_get("id")?,
                event_type: row.try_get("event_type")?,
                conversation_id: row.try_get("conversation_id")?,
                status,
                attempts: row.try_get("attempts")?,
                next_attempt_at: (status == DeliveryStatus::Scheduled)
                    .then(|| row.try_get("next_attempt_at").map(Timestamp))
                    .transpose()?,
                last_error: row.try_get("last_error")?,
                sent_at: row.try_get::<Option<i64>, _>("sent_at")?.map(Timestamp),
                created_at: Timestamp(row.try_get("created_at")?),
            })
        })
        .collect()
}

pub(super) const SUBSCRIPTION_COLUMNS: &str =
    "SELECT id, url, events, secret, description, active, disabled_reason, disabled_at,
        created_at, updated_at FROM subscriptions";

pub(super) fn subscription(row: &PgRow) -> StoreResult<Subscription> {
    Ok(Subscription {
        id: row.try_get("id")?,
        url: row.try_get("url")?,
        events: json_column(row.try_get("events")?)?,
        secret: row.try_get("secret")?,
        description: row.try_get("description")?,
        active: row.try_get("active")?,
        disabled_reason: row.try_get("disabled_reason")?,
        disabled_at: row.try_get::<Option<i64>, _>("disabled_at")?.map(Timestamp),
        created_at: Timestamp(row.try_get("created_at")?),
        updated_at: Timestamp(row.try_get("updated_at")?),
    })
}
