//! What becomes of what leaves: an outbound message's attempt recorded (sent, retried,
//! failed, the recipient gone), a failed one retried by an agent; and the lifecycle of
//! event subscriptions and their deliveries.

use serde_json::json;
use switchboard_connector_core::{DeliveryReport, DeliveryState};

use crate::domain::events::{self, Actor, DomainEvent, EventType};
use crate::domain::{DeskError, DeskResult, agents};
use crate::model::DeliveryStatus;
use crate::store::{DeliveryResult, IdentityRef, NewSubscription, OutboxRow, Settlement, Subscription, Tx, Waiting};

/// A failure report's error when the channel gave none.
const REPORTED_FAILED: &str = "the channel reported the message failed";

/// Records what became of an attempt. A row no longer in flight was settled meanwhile (a
/// bounce that arrived before the send's own record): that word stands.
pub fn record(tx: &mut dyn Tx, outbox_id: i64, result: &DeliveryResult, now: i64) -> DeskResult<()> {
    match result {
        DeliveryResult::Sent(receipt) => {
            let stored = json!({"external_id": receipt.external_id, "detail": receipt.detail}).to_string();
            let sent = Settlement::Sent {
                receipt: &stored,
                external_id: receipt.external_id.as_deref(),
            };
            let Some(row) = tx.settle_delivery(outbox_id, sent, now)? else {
                return Ok(());
            };
            if let Some(thread_id) = &receipt.thread_id {
                tx.set_sent_message_id(outbox_id, thread_id)?;
            }
            // The channel may report a failure before the send's own answer is recorded
            // (Meta's webhook can outrun the Graph API's reply): the report waited for
            // this row, and its word stands, as a bounce's does.
            if receipt.external_id.is_some()
                && let Some(error) = tx.reported_failure(outbox_id)?
            {
                let error = error.as_deref().unwrap_or(REPORTED_FAILED);
                tx.fail_delivery(outbox_id, error, now)?;
                tell_reported_failure(tx, &row, error, now)?;
            }
        }
        DeliveryResult::Skipped { reason } => {
            let Some(row) = tx.settle_delivery(outbox_id, Settlement::Skipped { reason }, now)? else {
                return Ok(());
            };
            let skipped = DomainEvent::DeliverySkipped {
                message_id: row.message_id,
                reason: reason.clone(),
            };
            events::insert(tx, row.conversation_id, &[(Actor::SYSTEM, skipped)], now)?;
        }
        DeliveryResult::RetryAt { at, error } => {
            tx.settle_delivery(outbox_id, Settlement::RetryAt { at: *at, error }, now)?;
        }
        DeliveryResult::Failed { error } | DeliveryResult::Unreachable { error } => {
            let Some(row) = tx.settle_delivery(outbox_id, Settlement::Failed { error }, now)? else {
                return Ok(());
            };
            let failed = DomainEvent::DeliveryFailed {
                message_id: row.message_id,
                attempts: Some(row.attempts),
                error: error.clone(),
            };
            events::insert(tx, row.conversation_id, &[(Actor::SYSTEM, failed)], now)?;
            if matches!(result, DeliveryResult::Unreachable { .. }) {
                tx.set_reachability(IdentityRef::OfConversation(row.conversation_id), Some(error), now)?;
            }
        }
    }
    Ok(())
}

/// Takes a channel's report on a message we sent (WhatsApp's `sent`, `delivered`,
/// `read`, `failed`), in whatever order reports arrive: the state only moves forward, so
/// a `delivered` after `read` changes nothing. A `delivered` or `read` that moved the
/// state tells the conversation (`delivery.reported`, so a console shows the ticks live);
/// a failure fails the sent delivery instead, with `delivery.failed`. Returns whether it
/// failed one.
pub fn report(tx: &mut dyn Tx, inbox_id: i64, report: &DeliveryReport, now: i64) -> DeskResult<bool> {
    if !tx.record_delivery_report(inbox_id, report, now)? {
        return Ok(false);
    }
    if report.state != DeliveryState::Failed {
        // A report on a send not recorded yet is kept; the message shows it when it is.
        // `sent` tells nothing the delivery's own status does not: no event for it.
        if report.state != DeliveryState::Sent
            && let Some(row) = tx.delivery_by_channel_id(inbox_id, &report.external_id)?
        {
            let reported = DomainEvent::DeliveryReported {
                message_id: row.message_id,
                state: report.state.as_str(),
            };
            events::insert(tx, row.conversation_id, &[(Actor::SYSTEM, reported)], now)?;
        }
        return Ok(false);
    }
    let error = report.error.as_deref().unwrap_or(REPORTED_FAILED);
    let Some(row) = tx.fail_sent_delivery(inbox_id, &report.external_id, error, now)? else {
        return Ok(false);
    };
    tell_reported_failure(tx, &row, error, now)?;
    Ok(true)
}

/// Tells the conversation that the channel reported its sent message failed.
fn tell_reported_failure(tx: &mut dyn Tx, row: &OutboxRow, error: &str, now: i64) -> DeskResult<()> {
    let failed = DomainEvent::DeliveryFailed {
        message_id: row.message_id,
        attempts: None,
        error: error.to_owned(),
    };
    events::insert(tx, row.conversation_id, &[(Actor::SYSTEM, failed)], now)
}

/// Schedules a failed delivery again: due now, its retry schedule from the start (the
/// attempt count restarts), a new expiry; `Conflict` unless it failed.
pub fn retry(tx: &mut dyn Tx, id: i64, agent_id: i64, now: i64, expires_at: i64) -> DeskResult<()> {
    let Some(row) = tx.delivery(id)? else {
        return Err(DeskError::NotFound("delivery"));
    };
    if row.status != DeliveryStatus::Failed {
        return Err(DeskError::Conflict(format!(
            "delivery {id} is {}; only a failed delivery can be retried",
            row.status
        )));
    }
    tx.reschedule_delivery(id, now, expires_at)?;
    let retried = DomainEvent::DeliveryRetried {
        message_id: row.message_id,
        delivery_id: id,
        attempts_before: row.attempts,
    };
    events::insert(tx, row.conversation_id, &[(Actor::agent(agent_id), retried)], now)
}

fn subscription(tx: &mut dyn Tx, id: i64) -> DeskResult<Subscription> {
    tx.subscription(id)?.ok_or(DeskError::NotFound("subscription"))
}

pub fn create_subscription(tx: &mut dyn Tx, new: &NewSubscription, now: i64) -> DeskResult<Subscription> {
    let id = tx.insert_subscription(new, now)?;
    let details = json!({"url": new.url, "events": new.events});
    agents::audit(
        tx,
        Some(new.created_by),
        "subscription.created",
        "subscription",
        id,
        details,
        now,
    )?;
    subscription(tx, id)
}

/// Deleted: told nothing more; its deliveries not yet sent are dropped (failed).
pub fn delete_subscription(tx: &mut dyn Tx, actor: Option<i64>, id: i64, now: i64) -> DeskResult<()> {
    let before = subscription(tx, id)?;
    tx.delete_subscription(id, now)?;
    tx.drop_waiting_events(id, Waiting::All, "the subscription was deleted", now)?;
    let details = json!({"url": before.url});
    agents::audit(tx, actor, "subscription.deleted", "subscription", id, details, now)?;
    Ok(())
}

/// Enabled again, or disabled by an admin. A disabled subscription is told nothing: what
/// waited for it is failed with the reason, rather than sent in a burst of stale events
/// when it is enabled again. A `ping` may wait: it was asked for while disabled.
pub fn set_subscription_active(
    tx: &mut dyn Tx,
    actor: Option<i64>,
    id: i64,
    active: bool,
    now: i64,
) -> DeskResult<Subscription> {
    const REASON: &str = "disabled by an admin";
    let before = subscription(tx, id)?;
    if !active {
        drop_waiting(tx, id, REASON, now)?;
    }
    tx.set_subscription_active(id, active, Some(REASON), now)?;
    if before.active != active {
        let action = if active {
            "subscription.enabled"
        } else {
            "subscription.disabled"
        };
        agents::audit(tx, actor, action, "subscription", id, json!({}), now)?;
    }
    subscription(tx, id)
}

fn drop_waiting(tx: &mut dyn Tx, id: i64, reason: &str, now: i64) -> DeskResult<()> {
    let error = format!("not sent: the subscription was disabled ({reason})");
    Ok(tx.drop_waiting_events(id, Waiting::ExceptPings, &error, now)?)
}

/// Queues a test event for one subscription, whatever its events and state; returns the
/// delivery's id.
pub fn ping_subscription(tx: &mut dyn Tx, id: i64, now: i64) -> DeskResult<i64> {
    subscription(tx, id)?;
    let payload = events::payload(EventType::Ping, json!({"subscription_id": id}), now);
    Ok(tx.queue_event(id, None, EventType::Ping.as_str(), &payload, now)?)
}

/// Records an event delivery's attempt; `disable` names why the subscription stops (the
/// receiver answered 410, a delivery failed for good).
pub fn record_event(
    tx: &mut dyn Tx,
    id: i64,
    result: &DeliveryResult,
    disable: Option<&str>,
    now: i64,
) -> DeskResult<()> {
    let receipt;
    let settlement = match result {
        DeliveryResult::Sent(sent) => {
            receipt = json!({"detail": sent.detail}).to_string();
            Settlement::Sent {
                receipt: &receipt,
                external_id: None,
            }
        }
        DeliveryResult::RetryAt { at, error } => Settlement::RetryAt { at: *at, error },
        DeliveryResult::Failed { error }
        | DeliveryResult::Unreachable { error }
        | DeliveryResult::Skipped { reason: error } => Settlement::Failed { error },
    };
    tx.settle_event(id, settlement, now)?;
    if let Some(reason) = disable
        && let Some(subscription) = tx.event_subscription(id)?
        && tx.disable_subscription(subscription, reason, now)?
    {
        drop_waiting(tx, subscription, reason, now)?;
    }
    Ok(())
}
