//! Event subscriptions: the integrations' registry, the fan-out of the desk's events to
//! them in the transaction that records the event, and their deliveries' lifecycle.

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Value, json};

use crate::model::{DeliveryStatus, Timestamp};
use crate::store::{
    DeliveryResult, EventDelivery, NewSubscription, StoreError, StoreResult, Subscription, SubscriptionDelivery,
};
use crate::work::events::EventType;

const COLUMNS: &str = "SELECT id, url, events, secret, description, active, disabled_reason, disabled_at,
        created_at, updated_at FROM subscriptions";

fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Subscription> {
    let events: String = row.get(2)?;
    Ok(Subscription {
        id: row.get(0)?,
        url: row.get(1)?,
        events: serde_json::from_str(&events).unwrap_or_default(),
        secret: row.get(3)?,
        description: row.get(4)?,
        active: row.get(5)?,
        disabled_reason: row.get(6)?,
        disabled_at: row.get::<_, Option<i64>>(7)?.map(Timestamp),
        created_at: Timestamp(row.get(8)?),
        updated_at: Timestamp(row.get(9)?),
    })
}

pub fn create(conn: &Connection, new: &NewSubscription, now: i64) -> StoreResult<Subscription> {
    let events = serde_json::to_string(&new.events).unwrap_or_else(|_| "[]".into());
    let id: i64 = conn
        .prepare_cached(
            "INSERT INTO subscriptions (url, events, secret, description, created_by, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6) RETURNING id",
        )?
        .query_row(
            params![new.url, events, new.secret, new.description, new.created_by, now],
            |row| row.get(0),
        )?;
    get(conn, id)
}

/// A subscription that was not deleted.
pub fn get(conn: &Connection, id: i64) -> StoreResult<Subscription> {
    conn.prepare_cached(&format!("{COLUMNS} WHERE id = ?1 AND deleted_at IS NULL"))?
        .query_row([id], from_row)
        .optional()?
        .ok_or(StoreError::NotFound("subscription"))
}

pub fn list(conn: &Connection) -> StoreResult<Vec<Subscription>> {
    Ok(conn
        .prepare_cached(&format!("{COLUMNS} WHERE deleted_at IS NULL ORDER BY id"))?
        .query_map([], from_row)?
        .collect::<Result<_, _>>()?)
}

/// Deleted: told nothing more; its deliveries not yet sent are dropped (failed).
pub fn delete(conn: &Connection, id: i64, now: i64) -> StoreResult<()> {
    get(conn, id)?;
    conn.prepare_cached("UPDATE subscriptions SET deleted_at = ?1, active = 0, updated_at = ?1 WHERE id = ?2")?
        .execute(params![now, id])?;
    conn.prepare_cached(
        "UPDATE event_deliveries SET status = 'failed', last_error = 'the subscription was deleted', updated_at = ?1
         WHERE subscription_id = ?2 AND status IN ('scheduled', 'in_flight')",
    )?
    .execute(params![now, id])?;
    Ok(())
}

/// Enabled again, or disabled with the reason.
pub fn set_active(conn: &Connection, id: i64, active: bool, reason: Option<&str>, now: i64) -> StoreResult<()> {
    get(conn, id)?;
    if !active {
        drop_pending(conn, id, reason.unwrap_or("disabled"), now)?;
    }
    conn.prepare_cached(
        "UPDATE subscriptions SET active = ?1, disabled_reason = ?2, disabled_at = ?3, updated_at = ?4 WHERE id = ?5",
    )?
    .execute(params![
        active,
        reason.filter(|_| !active),
        (!active).then_some(now),
        now,
        id
    ])?;
    Ok(())
}

/// A disabled subscription is told nothing: what waited for it is failed with the reason,
/// rather than sent in a burst of stale events when it is enabled again. A `ping` may
/// wait: it was asked for while disabled.
fn drop_pending(conn: &Connection, id: i64, reason: &str, now: i64) -> StoreResult<()> {
    conn.prepare_cached(
        "UPDATE event_deliveries SET status = 'failed', last_error = ?1, updated_at = ?2
         WHERE subscription_id = ?3 AND status = 'scheduled' AND event_type != 'ping'",
    )?
    .execute(params![
        format!("not sent: the subscription was disabled ({reason})"),
        now,
        id
    ])?;
    Ok(())
}

/// Queues `event_type` for every active subscription that asked for it. Costs one
/// lookup of a small table when nobody subscribed.
pub(super) fn fan_out(
    conn: &Connection,
    event_type: EventType,
    conversation_id: Option<i64>,
    data: Value,
    now: i64,
) -> StoreResult<()> {
    let subscribers: Vec<(i64, String)> = conn
        .prepare_cached("SELECT id, events FROM subscriptions WHERE active = 1")?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let wanted: Vec<i64> = subscribers
        .into_iter()
        .filter(|(_, events)| {
            serde_json::from_str::<Vec<String>>(events)
                .is_ok_and(|events| events.iter().any(|e| e == event_type.as_str()))
        })
        .map(|(id, _)| id)
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let payload = json!({
        "type": event_type.as_str(),
        "timestamp": Timestamp(now),
        "data": data,
    })
    .to_string();
    let mut insert = conn.prepare_cached(
        "INSERT INTO event_deliveries (subscription_id, conversation_id, event_type, payload, status, next_attempt_at,
                                       created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, 'scheduled', ?5, ?5, ?5)",
    )?;
    for subscription_id in wanted {
        insert.execute(params![
            subscription_id,
            conversation_id,
            event_type.as_str(),
            payload,
            now
        ])?;
    }
    Ok(())
}

/// Queues a test event for one subscription, whatever its events and state.
pub fn queue_ping(conn: &Connection, id: i64, now: i64) -> StoreResult<i64> {
    get(conn, id)?;
    let payload = json!({
        "type": EventType::Ping.as_str(),
        "timestamp": Timestamp(now),
        "data": {"subscription_id": id},
    })
    .to_string();
    Ok(conn
        .prepare_cached(
            "INSERT INTO event_deliveries (subscription_id, event_type, payload, status, next_attempt_at, created_at,
                                           updated_at)
             VALUES (?1, ?2, ?3, 'scheduled', ?4, ?4, ?4) RETURNING id",
        )?
        .query_row(params![id, EventType::Ping.as_str(), payload, now], |row| row.get(0))?)
}

pub fn release_in_flight(conn: &Connection, now: i64) -> StoreResult<u64> {
    Ok(conn.execute(
        "UPDATE event_deliveries SET status = 'scheduled', lease_until = NULL,
                next_attempt_at = MIN(next_attempt_at, ?1), updated_at = ?1
         WHERE status = 'in_flight'",
        [now],
    )? as u64)
}

/// Which rows may go: of an active subscription (a test event goes to any), not held
/// (`?held`: a JSON array of subscription ids paused or at their concurrency), and
/// first in their subscription's line for their conversation.
const CLAIMABLE: &str = "d.status = 'scheduled' AND d.subscription_id NOT IN (SELECT value FROM json_each(?held))
    AND (s.active = 1 OR d.event_type = 'ping') AND s.deleted_at IS NULL
    AND NOT EXISTS (
        SELECT 1 FROM event_deliveries earlier
        WHERE earlier.subscription_id = d.subscription_id AND earlier.conversation_id IS d.conversation_id
          AND earlier.id < d.id AND earlier.status IN ('scheduled', 'in_flight'))";

/// Claims up to `limit` due deliveries, at most one per subscription and conversation at
/// a time, so a subscriber sees a conversation's events in order while a slow or failing
/// subscriber holds up nobody else.
pub fn claim(conn: &Connection, now: i64, limit: u32, lease_until: i64, held: &str) -> StoreResult<Vec<EventDelivery>> {
    let claimed: Vec<i64> = conn
        .prepare_cached(&format!(
            "UPDATE event_deliveries SET status = 'in_flight', attempts = attempts + 1, lease_until = ?1, updated_at = ?2
             WHERE id IN (
                 SELECT d.id FROM event_deliveries d JOIN subscriptions s ON s.id = d.subscription_id
                 WHERE d.next_attempt_at <= ?2 AND {}
                 ORDER BY d.next_attempt_at, d.id LIMIT ?3)
             RETURNING id",
            CLAIMABLE.replace("?held", "?4")
        ))?
        .query_map(params![lease_until, now, limit, held], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    let mut select = conn.prepare_cached(
        "SELECT d.id, d.subscription_id, d.event_type, d.payload, d.attempts, d.created_at, s.url, s.secret
         FROM event_deliveries d JOIN subscriptions s ON s.id = d.subscription_id WHERE d.id = ?1",
    )?;
    let mut deliveries = Vec::with_capacity(claimed.len());
    for id in claimed {
        deliveries.push(select.query_row([id], |row| {
            Ok(EventDelivery {
                id: row.get(0)?,
                subscription_id: row.get(1)?,
                event_type: row.get(2)?,
                payload: row.get::<_, String>(3)?.into_bytes(),
                attempts: row.get::<_, i64>(4)?.try_into().unwrap_or(u32::MAX),
                created_at: row.get(5)?,
                url: row.get(6)?,
                secret: row.get(7)?,
            })
        })?);
    }
    deliveries.sort_by_key(|delivery| delivery.id);
    Ok(deliveries)
}

/// When the next claimable delivery is due: rows waiting behind an earlier one, or for a
/// held or disabled subscription, do not count (each would make the dispatcher spin).
pub fn next_due(conn: &Connection, held: &str) -> StoreResult<Option<i64>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT MIN(d.next_attempt_at) FROM event_deliveries d JOIN subscriptions s ON s.id = d.subscription_id
             WHERE {}",
            CLAIMABLE.replace("?held", "?1")
        ))?
        .query_row([held], |row| row.get(0))?)
}

/// A paused subscription's queued events wait out the pause.
pub fn defer(conn: &Connection, id: i64, until: i64, now: i64) -> StoreResult<()> {
    conn.prepare_cached(
        "UPDATE event_deliveries SET next_attempt_at = ?1, updated_at = ?2
         WHERE subscription_id = ?3 AND status = 'scheduled' AND next_attempt_at < ?1",
    )?
    .execute(params![until, now, id])?;
    Ok(())
}

/// Records an attempt's outcome; `disable` names why the subscription stops (the
/// receiver answered 410, a delivery failed for good).
pub fn record(conn: &Connection, id: i64, result: &DeliveryResult, disable: Option<&str>, now: i64) -> StoreResult<()> {
    match result {
        DeliveryResult::Sent(receipt) => {
            let receipt = json!({"detail": receipt.detail}).to_string();
            conn.prepare_cached(
                "UPDATE event_deliveries SET status = 'sent', sent_at = ?1, receipt = ?2, last_error = NULL,
                        lease_until = NULL, updated_at = ?1
                 WHERE id = ?3 AND status = 'in_flight'",
            )?
            .execute(params![now, receipt, id])?;
        }
        DeliveryResult::RetryAt { at, error } => {
            conn.prepare_cached(
                "UPDATE event_deliveries SET status = 'scheduled', next_attempt_at = ?1, last_error = ?2,
                        lease_until = NULL, updated_at = ?3
                 WHERE id = ?4 AND status = 'in_flight'",
            )?
            .execute(params![at, error, now, id])?;
        }
        DeliveryResult::Failed { error } | DeliveryResult::Unreachable { error } => {
            conn.prepare_cached(
                "UPDATE event_deliveries SET status = 'failed', last_error = ?1, lease_until = NULL, updated_at = ?2
                 WHERE id = ?3 AND status = 'in_flight'",
            )?
            .execute(params![error, now, id])?;
        }
    }
    if let Some(reason) = disable {
        let subscription: i64 = conn
            .prepare_cached("SELECT subscription_id FROM event_deliveries WHERE id = ?1")?
            .query_row([id], |row| row.get(0))?;
        let disabled = conn
            .prepare_cached(
                "UPDATE subscriptions SET active = 0, disabled_reason = ?1, disabled_at = ?2, updated_at = ?2
                 WHERE id = ?3 AND active = 1",
            )?
            .execute(params![reason, now, subscription])?;
        if disabled > 0 {
            drop_pending(conn, subscription, reason, now)?;
        }
    }
    Ok(())
}

/// A subscription's deliveries, newest first.
pub fn deliveries(conn: &Connection, id: i64, limit: u32) -> StoreResult<Vec<SubscriptionDelivery>> {
    get(conn, id)?;
    Ok(conn
        .prepare_cached(
            "SELECT id, event_type, conversation_id, status, attempts, next_attempt_at, last_error, sent_at, created_at
             FROM event_deliveries WHERE subscription_id = ?1 ORDER BY id DESC LIMIT ?2",
        )?
        .query_map(params![id, limit], |row| {
            let status: String = row.get(3)?;
            let status = DeliveryStatus::parse(&status).unwrap_or(DeliveryStatus::Failed);
            Ok(SubscriptionDelivery {
                id: row.get(0)?,
                event_type: row.get(1)?,
                conversation_id: row.get(2)?,
                status,
                attempts: row.get(4)?,
                next_attempt_at: (status == DeliveryStatus::Scheduled)
                    .then(|| row.get(5).map(Timestamp))
                    .transpose()?,
                last_error: row.get(6)?,
                sent_at: row.get::<_, Option<i64>>(7)?.map(Timestamp),
                created_at: Timestamp(row.get(8)?),
            })
        })?
        .collect::<Result<_, _>>()?)
}
