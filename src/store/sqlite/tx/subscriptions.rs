//! Event subscriptions and their deliveries.

use rusqlite::{OptionalExtension, params};

use super::SqliteTx;
use crate::model::Timestamp;
use crate::store::StoreResult;
use crate::store::columns::to_json;
use crate::store::records::*;
use crate::store::tx::*;

const SUBSCRIPTION_COLUMNS: &str = "SELECT id, url, events, secret, description, active, disabled_reason, disabled_at,
        created_at, updated_at FROM subscriptions";

fn subscription_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Subscription> {
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

/// Which event deliveries may go: of an active subscription (a test event goes to any),
/// not held (`?held`: a JSON array of subscription ids paused or at their concurrency),
/// and first in their subscription's line for their conversation.
const CLAIMABLE_EVENTS: &str = "d.status = 'scheduled'
    AND d.subscription_id NOT IN (SELECT value FROM json_each(?held))
    AND (s.active = 1 OR d.event_type = 'ping') AND s.deleted_at IS NULL
    AND NOT EXISTS (
        SELECT 1 FROM event_deliveries earlier
        WHERE earlier.subscription_id = d.subscription_id AND earlier.conversation_id IS d.conversation_id
          AND earlier.id < d.id AND earlier.status IN ('scheduled', 'in_flight'))";

impl SubscriptionTx for SqliteTx<'_> {
    fn subscribers(&mut self) -> StoreResult<Vec<Subscriber>> {
        let rows: Vec<(i64, String)> = self
            .conn
            .prepare_cached("SELECT id, events FROM subscriptions WHERE active = 1")?
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<Result<_, _>>()?;
        Ok(rows
            .into_iter()
            .map(|(id, events)| Subscriber {
                id,
                events: serde_json::from_str(&events).unwrap_or_default(),
            })
            .collect())
    }

    fn queue_event(
        &mut self,
        subscription_id: i64,
        conversation_id: Option<i64>,
        event_type: &str,
        payload: &str,
        now: i64,
    ) -> StoreResult<i64> {
        Ok(self
            .conn
            .prepare_cached(
                "INSERT INTO event_deliveries (subscription_id, conversation_id, event_type, payload, status,
                                               next_attempt_at, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, 'scheduled', ?5, ?5, ?5) RETURNING id",
            )?
            .query_row(
                params![subscription_id, conversation_id, event_type, payload, now],
                |row| row.get(0),
            )?)
    }

    fn insert_subscription(&mut self, new: &NewSubscription, now: i64) -> StoreResult<i64> {
        Ok(self
            .conn
            .prepare_cached(
                "INSERT INTO subscriptions (url, events, secret, description, created_by, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6) RETURNING id",
            )?
            .query_row(
                params![
                    new.url,
                    to_json(&new.events, "[]"),
                    new.secret,
                    new.description,
                    new.created_by,
                    now
                ],
                |row| row.get(0),
            )?)
    }

    fn subscription(&mut self, id: i64) -> StoreResult<Option<Subscription>> {
        Ok(self
            .conn
            .prepare_cached(&format!("{SUBSCRIPTION_COLUMNS} WHERE id = ?1 AND deleted_at IS NULL"))?
            .query_row([id], subscription_from_row)
            .optional()?)
    }

    fn delete_subscription(&mut self, id: i64, now: i64) -> StoreResult<()> {
        self.conn
            .prepare_cached("UPDATE subscriptions SET deleted_at = ?1, active = 0, updated_at = ?1 WHERE id = ?2")?
            .execute(params![now, id])?;
        Ok(())
    }

    fn set_subscription_active(&mut self, id: i64, active: bool, reason: Option<&str>, now: i64) -> StoreResult<()> {
        self.conn
            .prepare_cached(
                "UPDATE subscriptions SET active = ?1, disabled_reason = ?2, disabled_at = ?3, updated_at = ?4
                 WHERE id = ?5",
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

    fn disable_subscription(&mut self, id: i64, reason: &str, now: i64) -> StoreResult<bool> {
        let disabled = self
            .conn
            .prepare_cached(
                "UPDATE subscriptions SET active = 0, disabled_reason = ?1, disabled_at = ?2, updated_at = ?2
                 WHERE id = ?3 AND active = 1",
            )?
            .execute(params![reason, now, id])?;
        Ok(disabled > 0)
    }

    fn drop_waiting_events(&mut self, subscription_id: i64, which: Waiting, error: &str, now: i64) -> StoreResult<()> {
        let statement = match which {
            Waiting::All => {
                "UPDATE event_deliveries SET status = 'failed', last_error = ?1, updated_at = ?2
                 WHERE subscription_id = ?3 AND status IN ('scheduled', 'in_flight')"
            }
            Waiting::ExceptPings => {
                "UPDATE event_deliveries SET status = 'failed', last_error = ?1, updated_at = ?2
                 WHERE subscription_id = ?3 AND status = 'scheduled' AND event_type != 'ping'"
            }
        };
        self.conn
            .prepare_cached(statement)?
            .execute(params![error, now, subscription_id])?;
        Ok(())
    }

    fn claim_events(
        &mut self,
        now: i64,
        limit: u32,
        lease: Lease<'_>,
        held: &[i64],
    ) -> StoreResult<Vec<EventDelivery>> {
        let held = to_json(&held, "[]");
        let claimed: Vec<i64> = self
            .conn
            .prepare_cached(&format!(
                "UPDATE event_deliveries SET status = 'in_flight', attempts = attempts + 1, lease_until = ?1,
                        lease_holder = ?5, updated_at = ?2
                 WHERE id IN (
                     SELECT d.id FROM event_deliveries d JOIN subscriptions s ON s.id = d.subscription_id
                     WHERE d.next_attempt_at <= ?2 AND {}
                     ORDER BY d.next_attempt_at, d.id LIMIT ?3)
                 RETURNING id",
                CLAIMABLE_EVENTS.replace("?held", "?4")
            ))?
            .query_map(params![lease.until, now, limit, held, lease.holder], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        let mut select = self.conn.prepare_cached(
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

    fn settle_event(&mut self, id: i64, settlement: Settlement<'_>, now: i64) -> StoreResult<Option<i64>> {
        let row = match settlement {
            Settlement::Sent { receipt, .. } => self
                .conn
                .prepare_cached(
                    "UPDATE event_deliveries SET status = 'sent', sent_at = ?1, receipt = ?2, last_error = NULL,
                            lease_until = NULL, updated_at = ?1
                     WHERE id = ?3 AND status = 'in_flight' RETURNING subscription_id",
                )?
                .query_row(params![now, receipt, id], |row| row.get(0))
                .optional()?,
            Settlement::RetryAt { at, error } => self
                .conn
                .prepare_cached(
                    "UPDATE event_deliveries SET status = 'scheduled', next_attempt_at = ?1, last_error = ?2,
                            lease_until = NULL, updated_at = ?3
                     WHERE id = ?4 AND status = 'in_flight' RETURNING subscription_id",
                )?
                .query_row(params![at, error, now, id], |row| row.get(0))
                .optional()?,
            Settlement::Failed { error } | Settlement::Skipped { reason: error } => self
                .conn
                .prepare_cached(
                    "UPDATE event_deliveries SET status = 'failed', last_error = ?1, lease_until = NULL, updated_at = ?2
                     WHERE id = ?3 AND status = 'in_flight' RETURNING subscription_id",
                )?
                .query_row(params![error, now, id], |row| row.get(0))
                .optional()?,
            Settlement::Unclaimed { not_before } => self
                .conn
                .prepare_cached(
                    "UPDATE event_deliveries SET status = 'scheduled', attempts = MAX(attempts - 1, 0),
                            next_attempt_at = MAX(next_attempt_at, ?1), lease_until = NULL, updated_at = ?2
                     WHERE id = ?3 AND status = 'in_flight' RETURNING subscription_id",
                )?
                .query_row(params![not_before, now, id], |row| row.get(0))
                .optional()?,
        };
        Ok(row)
    }

    fn event_subscription(&mut self, id: i64) -> StoreResult<Option<i64>> {
        Ok(self
            .conn
            .prepare_cached("SELECT subscription_id FROM event_deliveries WHERE id = ?1")?
            .query_row([id], |row| row.get(0))
            .optional()?)
    }

    fn defer_events(&mut self, subscription_id: i64, until: i64, now: i64) -> StoreResult<()> {
        self.conn
            .prepare_cached(
                "UPDATE event_deliveries SET next_attempt_at = ?1, updated_at = ?2
                 WHERE subscription_id = ?3 AND status = 'scheduled' AND next_attempt_at < ?1",
            )?
            .execute(params![until, now, subscription_id])?;
        Ok(())
    }

    fn next_event_after(&mut self, now: i64) -> StoreResult<Option<i64>> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT MIN(next_attempt_at) FROM event_deliveries WHERE status = 'scheduled' AND next_attempt_at > ?1",
            )?
            .query_row([now], |row| row.get(0))?)
    }

    fn release_events(&mut self, expired_before: i64, now: i64) -> StoreResult<u64> {
        self.release_leased("event_deliveries", expired_before, now)
    }

    fn renew_events(&mut self, lease: Lease<'_>) -> StoreResult<u64> {
        self.renew_leased("event_deliveries", lease)
    }
}
