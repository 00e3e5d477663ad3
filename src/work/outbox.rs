//! The outbox's lane: due outbox rows claimed under a lease, each sent through its
//! inbox's connector, and what happened recorded: sent, retry later, or failed for good
//! (see [`crate::work::dispatch`] for the loop that drives it).
//!
//! Rows are written in the same unit of work as the change that caused them, so the
//! dispatcher only has to be woken ([`Notify`](tokio::sync::Notify)) or to wake itself
//! at the next due time. A conversation's messages leave in order: the store hands out at
//! most one row per conversation at a time.

use std::sync::Arc;

use async_trait::async_trait;
use switchboard_connector_core::SendError;

use crate::channels::Channels;
use crate::clock::Clock;
use crate::domain::{DeskResult, deliveries};
use crate::store::{ClaimPlan, Delivery, DeliveryResult, Lease, Settlement, StoreResult, Tx};
use crate::work::config::OutboxSettings;
use crate::work::destinations::SendOutcome;
use crate::work::dispatch::{Lane, after_transient_failure};

/// Outbound messages (replies, status updates) to their inboxes' channels.
pub struct OutboxLane {
    pub channels: Arc<Channels>,
    pub clock: Arc<dyn Clock>,
    pub settings: OutboxSettings,
}

/// A send's outcome for the store: the row, what became of it, when.
#[derive(Debug, Clone)]
pub struct OutboxRecord {
    pub outbox_id: i64,
    pub result: DeliveryResult,
    /// The parts of the message the channel has taken by now, when this attempt added
    /// some and still failed: the next attempt starts after them.
    pub parts_sent: Option<u32>,
    pub at: i64,
}

#[async_trait]
impl Lane for OutboxLane {
    type Item = Delivery;
    type Record = OutboxRecord;

    const NAME: &'static str = "outbox";

    fn destination(item: &Delivery) -> i64 {
        item.inbox_id
    }

    fn id(item: &Delivery) -> i64 {
        item.outbox_id
    }

    fn record(tx: &mut dyn Tx, record: &OutboxRecord) -> DeskResult<()> {
        if let Some(parts_sent) = record.parts_sent {
            tx.set_parts_sent(record.outbox_id, parts_sent)?;
        }
        deliveries::record(tx, record.outbox_id, &record.result, record.at)
    }

    fn unclaim(tx: &mut dyn Tx, id: i64, not_before: i64, now: i64) -> StoreResult<()> {
        tx.settle_delivery(id, Settlement::Unclaimed { not_before }, now)
            .map(|_| ())
    }

    fn defer(tx: &mut dyn Tx, inbox_id: i64, until: i64, now: i64) -> StoreResult<()> {
        tx.defer_deliveries(inbox_id, until, now).map(|_| ())
    }

    fn claim(tx: &mut dyn Tx, now: i64, limit: u32, lease: Lease<'_>, plan: &ClaimPlan) -> StoreResult<Vec<Delivery>> {
        tx.claim_deliveries(now, limit, lease, plan)
    }

    fn release(tx: &mut dyn Tx, expired_before: i64, now: i64) -> StoreResult<u64> {
        tx.release_deliveries(expired_before, now)
    }

    fn renew(tx: &mut dyn Tx, lease: Lease<'_>) -> StoreResult<u64> {
        tx.renew_deliveries(lease)
    }

    fn next_due(tx: &mut dyn Tx, now: i64) -> StoreResult<Option<i64>> {
        tx.next_delivery_after(now)
    }

    async fn deliver(&self, delivery: Delivery) -> (OutboxRecord, SendOutcome) {
        // A message that waited past its expiry (behind an earlier message of its
        // conversation, or through a long downtime) is stale news: it is not sent.
        let outcome = if self.clock.now_ms() > delivery.expires_at {
            Err(SendError::permanent(
                "expired before it could be sent (outbox.expire_after)",
            ))
        } else {
            match self.channels.get(delivery.inbox_id) {
                Some(inbox) => inbox.connector.sender().send(&delivery.message).await,
                None => Err(SendError::permanent("the inbox is no longer configured")),
            }
        };
        let now = self.clock.now_ms();
        let for_breaker = SendOutcome::of(&outcome);
        let (parts_sent, result) = match outcome {
            Ok(receipt) => (0, DeliveryResult::Sent(receipt)),
            Err(error) => {
                let (parts_sent, error) = error.split_progress();
                (parts_sent, self.failed(error, &delivery, now))
            }
        };
        let message_id = delivery.message.message_id;
        match &result {
            DeliveryResult::Sent(_) => tracing::debug!(message_id, attempts = delivery.attempts, "delivered"),
            DeliveryResult::RetryAt { error, .. } => {
                tracing::info!(message_id, attempts = delivery.attempts, %error, "delivery failed; will retry")
            }
            DeliveryResult::Failed { error } | DeliveryResult::Unreachable { error } => {
                tracing::warn!(message_id, attempts = delivery.attempts, %error, "delivery failed for good")
            }
            DeliveryResult::Skipped { reason } => {
                tracing::info!(message_id, %reason, "not sent: the channel skipped it")
            }
        }
        let record = OutboxRecord {
            outbox_id: delivery.outbox_id,
            result,
            parts_sent: (parts_sent > delivery.message.parts_sent).then_some(parts_sent),
            at: now,
        };
        (record, for_breaker)
    }
}

impl OutboxLane {
    /// What a failed send means for the row.
    fn failed(&self, error: SendError, delivery: &Delivery, now: i64) -> DeliveryResult {
        match error {
            SendError::Permanent { reason } => DeliveryResult::Failed { error: reason },
            SendError::Unreachable { reason } => DeliveryResult::Unreachable { error: reason },
            SendError::Skipped { reason } => DeliveryResult::Skipped { reason },
            SendError::Transient { reason, retry_after } => after_transient_failure(
                &self.settings.retry_schedule,
                delivery.attempts,
                now,
                delivery.expires_at,
                retry_after,
                reason,
                fastrand::f64(),
            ),
            // `split_progress` took the count off; the error under it is what counts.
            SendError::PartlySent { error, .. } => self.failed(*error, delivery, now),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use tokio::sync::Notify;
    use tokio_util::sync::CancellationToken;

    use crate::channels::config::{ChannelSettings, InboxSettings};
    use crate::work::destinations::Destinations;
    use crate::work::dispatch::Dispatcher;
    use switchboard_connector_webhook::WebhookConfig;

    #[tokio::test]
    async fn a_message_past_its_expiry_is_failed_without_being_sent() {
        let test = crate::store::testing::with_shop().await;
        let now = crate::clock::SystemClock.now_ms();
        // Queued two minutes ago to expire a minute later: stale before it is claimed.
        let seeded = test.converse("ada", "Hello", Some("Hi Ada"), now - 120_000).await;
        let catalog = crate::store::Catalog {
            inboxes: [("shop".to_owned(), test.shop.clone())].into(),
        };

        // Nothing listens on the callback port: were the message sent, the attempt would
        // fail with "could not connect" rather than the expiry reason.
        let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let webhook = WebhookConfig {
            secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
            previous_secrets: vec![],
            callback_url: format!("http://127.0.0.1:{closed_port}/cb"),
            max_body_bytes: 65536,
            timestamp_tolerance_secs: 300,
            callback_timeout_secs: 1,
            max_attachments: 20,
            max_metadata_bytes: 16 * 1024,
        };
        let inboxes = [InboxSettings {
            key: "shop".into(),
            name: "Shop".into(),
            channel: ChannelSettings::Webhook(Box::new(webhook.validate().unwrap())),
        }];
        let lane = OutboxLane {
            channels: Arc::new(Channels::build(&inboxes, &catalog).unwrap()),
            clock: Arc::new(crate::clock::SystemClock),
            settings: OutboxSettings {
                retry_schedule: vec![Duration::from_secs(60)],
                expire_after: Duration::from_secs(60),
                concurrency: 4,
                shutdown_grace: Duration::from_secs(1),
                inbox_concurrency: 4,
                breaker_failures: 5,
                breaker_pause: Duration::from_secs(30),
            },
        };
        let dispatcher = Dispatcher {
            lane: Arc::new(lane),
            store: Arc::clone(&test.store),
            clock: Arc::new(crate::clock::SystemClock),
            destinations: Arc::new(Destinations::new(4, 5, Duration::from_secs(30))),
            wakeup: Arc::new(Notify::new()),
            holder: "test".into(),
            concurrency: 4,
            shutdown_grace: Duration::from_secs(1),
        };
        let shutdown = CancellationToken::new();
        let running = tokio::spawn(dispatcher.run(shutdown.clone()));
        let started = std::time::Instant::now();
        let delivery = loop {
            let detail = test.queries.conversation(seeded.conversation_id).await.unwrap();
            let delivery = detail.messages.iter().find_map(|m| m.delivery.clone()).unwrap();
            if delivery.status == crate::model::DeliveryStatus::Failed {
                break delivery;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the expired message was not failed"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        shutdown.cancel();
        running.await.unwrap();
        assert_eq!(
            delivery.last_error.as_deref(),
            Some("expired before it could be sent (outbox.expire_after)")
        );
    }
}
