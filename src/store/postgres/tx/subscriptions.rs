//! Event subscriptions and their deliveries.

use sqlx::postgres::PgRow;

use super::{PgTx, column};
use crate::model::Timestamp;
use crate::store::StoreResult;
use crate::store::columns::to_json;
use crate::store::records::*;
use crate::store::tx::*;

const SUBSCRIPTION_COLUMNS: &str = "SELECT id, url, events, secret, description, active, disabled_reason, disabled_at,
        created_at, updated_at FROM subscriptions";

fn subscription_from_row(row: &PgRow) -> StoreResult<Subscription> {
    let events: String = column(row, "events")?;
    Ok(Subscription {
        id: column(row, "id")?,
        url: column(row, "url")?,
        events: serde_json::from_str(&events).unwrap_or_default(),
        secret: column(row, "secret")?,
        description: column(row, "description")?,
        active: column(row, "active")?,
        disabled_reason: column(row, "disabled_reason")?,
        disabled_at: column::<Option<i64>>(row, "disabled_at")?.map(Timestamp),
        created_at: Timestamp(column(row, "created_at")?),
        updated_at: Timestamp(column(row, "updated_at")?),
    })
}

/// Which event deliveries may go: of an active subscription (a test event goes to any),
/// not held (`$4`: the subscription ids paused or at their concurrency), and first in
/// their subscription's line for their conversation (an event of no conversation lines
/// up with the others of none).
const CLAIMABLE_EVENTS: &str = "d.status = 'scheduled'
    AND d.subscription_id <> ALL($4)
    AND (s.active OR d.event_type = 'ping') AND s.deleted_at IS NULL
    AND NOT EXISTS (
        SELECT 1 FROM event_deliveries earlier
        WHERE earlier.subscription_id = d.subscription_id
          AND earlier.conversation_id IS NOT DISTINCT FROM d.conversation_id
          AND earlier.id < d.id AND earlier.status IN ('scheduled', 'in_flight'))";

impl SubscriptionTx for PgTx<'_> {
    fn subscribers(&mut self) -> StoreResult<Vec<Subscriber>> {
        self.rows(sqlx::query("SELECT id, events FROM subscriptions WHERE active"))?
            .iter()
            .map(|row| {
                let events: String = column(row, "events")?;
                Ok(Subscriber {
                    id: column(row, "id")?,
                    events: serde_json::from_str(&events).unwrap_or_default(),
                })
            })
            .collect()
    }

    fn queue_event(
        &mut self,
        subscription_id: i64,
        conversation_id: Option<i64>,
        event_type: &str,
        payload: &str,
        now: i64,
    ) -> StoreResult<i64> {
        let row = self
            .row(
                sqlx::query(
                    "INSERT INTO event_deliveries (subscription_id, conversation_id, event_type, payload, status,
                                                   next_attempt_at, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, 'scheduled', $5, $5, $5) RETURNING id",
                )
                .bind(subscription_id)
                .bind(conversation_id)
                .bind(event_type)
                .bind(payload)
                .bind(now),
            )?
            .ok_or_else(|| sqlx::Error::RowNotFound)?;
        column(&row, "id")
    }

    fn insert_subscription(&mut self, new: &NewSubscription, now: i64) -> StoreResult<i64> {
        let row = self
            .row(
                sqlx::query(
                    "INSERT INTO subscriptions (url, events, secret, description, created_by, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING id",
                )
                .bind(&new.url)
                .bind(to_json(&new.events, "[]"))
                .bind(&new.secret)
                .bind(&new.description)
                .bind(new.created_by)
                .bind(now),
            )?
            .ok_or_else(|| sqlx::Error::RowNotFound)?;
        column(&row, "id")
    }

    fn subscription(&mut self, id: i64) -> StoreResult<Option<Subscription>> {
        self.row(sqlx::query(&format!("{SUBSCRIPTION_COLUMNS} WHERE id = $1 AND deleted_at IS NULL")).bind(id))?
            .as_ref()
            .map(subscription_from_row)
            .transpose()
    }

    fn delete_subscription(&mut self, id: i64, now: i64) -> StoreResult<()> {
        self.execute(
            sqlx::query("UPDATE subscriptions SET deleted_at = $1, active = FALSE, updated_at = $1 WHERE id = $2")
                .bind(now)
                .bind(id),
        )?;
        Ok(())
    }

    fn set_subscription_active(&mut self, id: i64, active: bool, reason: Option<&str>, now: i64) -> StoreResult<()> {
        self.execute(
            sqlx::query(
                "UPDATE subscriptions SET active = $1, disabled_reason = $2, disabled_at = $3, updated_at = $4
                 WHERE id = $5",
            )
            .bind(active)
            .bind(reason.filter(|_| !active))
            .bind((!active).then_some(now))
            .bind(now)
            .bind(id),
        )?;
        Ok(())
    }

    fn disable_subscription(&mut self, id: i64, reason: &str, now: i64) -> StoreResult<bool> {
        let disabled = self.execute(
            sqlx::query(
                "UPDATE subscriptions SET active = FALSE, disabled_reason = $1, disabled_at = $2, updated_at = $2
                 WHERE id = $3 AND active",
            )
            .bind(reason)
            .bind(now)
            .bind(id),
        )?;
        Ok(disabled > 0)
    }

    fn drop_waiting_events(&mut self, subscription_id: i64, which: Waiting, error: &str, now: i64) -> StoreResult<()> {
        let statement = match which {
            Waiting::All => {
                "UPDATE event_deliveries SET status = 'failed', last_error = $1, updated_at = $2
                 WHERE subscription_id = $3 AND status IN ('scheduled', 'in_flight')"
            }
            Waiting::ExceptPings => {
                "UPDATE event_deliveries SET status = 'failed', last_error = $1, updated_at = $2
                 WHERE subscription_id = $3 AND status = 'scheduled' AND event_type <> 'ping'"
            }
        };
        self.execute(sqlx::query(statement).bind(error).bind(now).bind(subscription_id))?;
        Ok(())
    }

    /// Several daemons claim at once: the candidates are locked `SKIP LOCKED`, so one
    /// another claimer holds is passed over rather than waited for or sent twice. Only
    /// the deliveries are locked (`OF d`): claimers share the subscription rows. An event
    /// behind one another claimer holds is no candidate either, so a conversation's
    /// events still leave in order.
    fn claim_events(
        &mut self,
        now: i64,
        limit: u32,
        lease: Lease<'_>,
        held: &[i64],
    ) -> StoreResult<Vec<EventDelivery>> {
        let claimed = self.rows(
            sqlx::query(&format!(
                "UPDATE event_deliveries SET status = 'in_flight', attempts = attempts + 1, lease_until = $1,
                        lease_holder = $5, updated_at = $2
                 WHERE id IN (
                     SELECT d.id FROM event_deliveries d JOIN subscriptions s ON s.id = d.subscription_id
                     WHERE d.next_attempt_at <= $2 AND {CLAIMABLE_EVENTS}
                     ORDER BY d.next_attempt_at, d.id LIMIT $3
                     FOR UPDATE OF d SKIP LOCKED)
                 RETURNING id"
            ))
            .bind(lease.until)
            .bind(now)
            .bind(i64::from(limit))
            .bind(held)
            .bind(lease.holder),
        )?;
        let mut deliveries = Vec::with_capacity(claimed.len());
        for row in claimed {
            let id: i64 = column(&row, "id")?;
            let row = self
                .row(
                    sqlx::query(
                        "SELECT d.id, d.subscription_id, d.event_type, d.payload, d.attempts, d.created_at, s.url,
                                s.secret
                         FROM event_deliveries d JOIN subscriptions s ON s.id = d.subscription_id WHERE d.id = $1",
                    )
                    .bind(id),
                )?
                .ok_or_else(|| sqlx::Error::RowNotFound)?;
            deliveries.push(EventDelivery {
                id: column(&row, "id")?,
                subscription_id: column(&row, "subscription_id")?,
                event_type: column(&row, "event_type")?,
                payload: column::<String>(&row, "payload")?.into_bytes(),
                attempts: column::<i64>(&row, "attempts")?.try_into().unwrap_or(u32::MAX),
                created_at: column(&row, "created_at")?,
                url: column(&row, "url")?,
                secret: column(&row, "secret")?,
            });
        }
        deliveries.sort_by_key(|delivery| delivery.id);
        Ok(deliveries)
    }

    fn settle_event(&mut self, id: i64, settlement: Settlement<'_>, now: i64) -> StoreResult<Option<i64>> {
        let row = match settlement {
            Settlement::Sent { receipt, .. } => self.row(
                sqlx::query(
                    "UPDATE event_deliveries SET status = 'sent', sent_at = $1, receipt = $2, last_error = NULL,
                            lease_until = NULL, updated_at = $1
                     WHERE id = $3 AND status = 'in_flight' RETURNING subscription_id",
                )
                .bind(now)
                .bind(receipt)
                .bind(id),
            )?,
            Settlement::RetryAt { at, error } => self.row(
                sqlx::query(
                    "UPDATE event_deliveries SET status = 'scheduled', next_attempt_at = $1, last_error = $2,
                            lease_until = NULL, updated_at = $3
                     WHERE id = $4 AND status = 'in_flight' RETURNING subscription_id",
                )
                .bind(at)
                .bind(error)
                .bind(now)
                .bind(id),
            )?,
            Settlement::Failed { error } | Settlement::Skipped { reason: error } => self.row(
                sqlx::query(
                    "UPDATE event_deliveries SET status = 'failed', last_error = $1, lease_until = NULL, updated_at = $2
                     WHERE id = $3 AND status = 'in_flight' RETURNING subscription_id",
                )
                .bind(error)
                .bind(now)
                .bind(id),
            )?,
            Settlement::Unclaimed { not_before } => self.row(
                sqlx::query(
                    "UPDATE event_deliveries SET status = 'scheduled', attempts = GREATEST(attempts - 1, 0),
                            next_attempt_at = GREATEST(next_attempt_at, $1), lease_until = NULL, updated_at = $2
                     WHERE id = $3 AND status = 'in_flight' RETURNING subscription_id",
                )
                .bind(not_before)
                .bind(now)
                .bind(id),
            )?,
        };
        row.map(|row| column(&row, "subscription_id")).transpose()
    }

    fn event_subscription(&mut self, id: i64) -> StoreResult<Option<i64>> {
        self.row(sqlx::query("SELECT subscription_id FROM event_deliveries WHERE id = $1").bind(id))?
            .map(|row| column(&row, "subscription_id"))
            .transpose()
    }

    fn defer_events(&mut self, subscription_id: i64, until: i64, now: i64) -> StoreResult<()> {
        self.execute(
            sqlx::query(
                "UPDATE event_deliveries SET next_attempt_at = $1, updated_at = $2
                 WHERE subscription_id = $3 AND status = 'scheduled' AND next_attempt_at < $1",
            )
            .bind(until)
            .bind(now)
            .bind(subscription_id),
        )?;
        Ok(())
    }

    fn next_event_after(&mut self, now: i64) -> StoreResult<Option<i64>> {
        let row = self.row(
            sqlx::query(
                "SELECT MIN(next_attempt_at) AS next FROM event_deliveries
                 WHERE status = 'scheduled' AND next_attempt_at > $1",
            )
            .bind(now),
        )?;
        match row {
            Some(row) => column(&row, "next"),
            None => Ok(None),
        }
    }

    fn release_events(&mut self, expired_before: i64, now: i64) -> StoreResult<u64> {
        self.release_leased("event_deliveries", expired_before, now)
    }

    fn renew_events(&mut self, lease: Lease<'_>) -> StoreResult<u64> {
        self.renew_leased("event_deliveries", lease)
    }
}
