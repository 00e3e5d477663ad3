//! The dispatcher: claims due outbox rows, sends each through its inbox's connector,
//! and records what happened: sent, retry later, or failed for good.
//!
//! Rows are written in the same transaction as the change that caused them, so the
//! dispatcher only has to be woken ([`Notify`]) or to wake itself at the next due time.
//! A conversation's messages leave in order: the store hands out at most one row per
//! conversation at a time.

use std::sync::Arc;
use std::time::Duration;

use switchboard_connector_core::SendError;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::channels::Channels;
use crate::clock::Clock;
use crate::config::OutboxSettings;
use crate::domain::{DeskError, deliveries};
use crate::store::{Delivery, DeliveryResult, Store};
use crate::work::destinations::{Destinations, InFlight, SendOutcome};

/// How long a claimed row belongs to this dispatcher. Longer than any send may take.
pub(crate) const LEASE: Duration = Duration::from_secs(300);
/// The longest the dispatcher sleeps without looking, in case a wake-up was missed
/// (another process wrote a row, or a row waits behind a conversation's earlier one).
pub(crate) const IDLE_CHECK: Duration = Duration::from_secs(5);
/// Pause after a storage error before trying again.
const STORE_ERROR_PAUSE: Duration = Duration::from_secs(1);

/// What to do after a transient failure. Pure, so the schedule is testable.
///
/// `attempts` counts the attempts made, this one included; `jitter` is in `[0, 1)`
/// and spreads retries by ±10 % so receivers coming back are not hit all at once.
pub fn after_transient_failure(
    schedule: &[Duration],
    attempts: u32,
    now: i64,
    expires_at: i64,
    retry_after: Option<Duration>,
    reason: String,
    jitter: f64,
) -> DeliveryResult {
    let Some(base) = schedule.get(attempts.saturating_sub(1) as usize) else {
        return DeliveryResult::Failed {
            error: format!("gave up after {attempts} attempts: {reason}"),
        };
    };
    let spread = base.mul_f64(0.9 + 0.2 * jitter.clamp(0.0, 1.0));
    let delay = retry_after.map_or(spread, |asked| asked.max(spread));
    let at = now.saturating_add(crate::model::millis(delay));
    if at > expires_at {
        return DeliveryResult::Failed {
            error: format!("expired after {attempts} attempts: {reason}"),
        };
    }
    DeliveryResult::RetryAt { at, error: reason }
}

/// How long a dispatcher sleeps: until the next row falls due or a paused destination
/// resumes, whichever is first (zero when it fell due since the claim: look again at
/// once), and never longer than [`IDLE_CHECK`].
pub(crate) fn wait_for(now: i64, due: Option<i64>, resume: Option<i64>) -> Duration {
    let next = match (due, resume) {
        (Some(due), Some(resume)) => Some(due.min(resume)),
        (due, resume) => due.or(resume),
    };
    next.map_or(IDLE_CHECK, |at| {
        Duration::from_millis(at.saturating_sub(now).max(0) as u64).min(IDLE_CHECK)
    })
}

/// A dispatcher's loop, the outbox's and the event subscriptions': `dispatch` starts
/// what is due and says how long to wait; it runs again after that, or when woken, until
/// `shutdown`. Then the sends it started (in `tracker`) get `grace` to finish; one cut
/// off there stays in flight in the store and is sent again after the restart.
pub async fn dispatch_until<F, Fut>(
    name: &str,
    shutdown: &CancellationToken,
    wakeup: &Notify,
    grace: Duration,
    tracker: &TaskTracker,
    mut dispatch: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Duration, crate::store::StoreError>>,
{
    while !shutdown.is_cancelled() {
        let wait = match dispatch().await {
            Ok(wait) => wait,
            Err(error) => {
                tracing::error!(%error, dispatcher = name, "storage failed; retrying");
                STORE_ERROR_PAUSE
            }
        };
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = wakeup.notified() => {}
            () = tokio::time::sleep(wait) => {}
        }
    }
    tracker.close();
    if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
        tracing::warn!(
            dispatcher = name,
            in_flight = tracker.len(),
            "grace period over; unfinished sends are retried after restart"
        );
    }
}

pub struct Dispatcher {
    pub store: Arc<dyn Store>,
    pub channels: Arc<Channels>,
    pub clock: Arc<dyn Clock>,
    pub settings: OutboxSettings,
    /// Poked after every commit that queued a row, and after every finished send.
    pub wakeup: Arc<Notify>,
    /// Per-inbox concurrency and circuit breakers; shared with `/metrics`.
    pub destinations: Arc<Destinations>,
}

impl Dispatcher {
    /// Runs until `shutdown`, then gives sends in flight `shutdown_grace` to finish.
    /// A send cut off there stays in flight in the store and is retried after restart.
    pub async fn run(self, shutdown: CancellationToken) {
        let this = Arc::new(self);
        let now = this.clock.now_ms();
        match this.store.unit(move |tx| tx.release_deliveries(now)).await {
            Ok(0) => {}
            Ok(released) => tracing::info!(released, "re-queued deliveries left in flight by the previous run"),
            Err(error) => tracing::error!(%error, "could not re-queue deliveries left in flight"),
        }
        let slots = Arc::new(Semaphore::new(this.settings.concurrency));
        let tracker = TaskTracker::new();
        dispatch_until(
            "outbox",
            &shutdown,
            &this.wakeup,
            this.settings.shutdown_grace,
            &tracker,
            || this.dispatch_due(&slots, &tracker),
        )
        .await;
    }

    /// Starts every due delivery there is room for; returns how long to wait before
    /// looking again (unless woken first).
    async fn dispatch_due(
        self: &Arc<Self>,
        slots: &Arc<Semaphore>,
        tracker: &TaskTracker,
    ) -> Result<Duration, crate::store::StoreError> {
        let free = slots.available_permits();
        if free > 0 {
            let now = self.clock.now_ms();
            let lease_until = now + LEASE.as_millis() as i64;
            // A destination at its share of the slots or paused waits; the others go.
            // One claim may still give a destination more than its share: the cap holds
            // from the next claim on.
            let plan = self.destinations.plan(now);
            let claim = plan.clone();
            let batch = self
                .store
                .unit(move |tx| tx.claim_deliveries(now, free as u32, lease_until, &claim))
                .await?;
            let filled = batch.len() == free;
            for delivery in batch {
                let Ok(permit) = Arc::clone(slots).try_acquire_owned() else {
                    break;
                };
                let send = self.destinations.started(delivery.inbox_id, now);
                let this = Arc::clone(self);
                tracker.spawn(async move {
                    this.deliver(delivery, &send).await;
                    drop(send);
                    drop(permit);
                    this.wakeup.notify_one();
                });
            }
            if !filled {
                return self.until_next_due(&plan.held).await;
            }
        }
        // Every slot is busy: a finished send wakes us.
        Ok(IDLE_CHECK)
    }

    async fn until_next_due(&self, held: &[i64]) -> Result<Duration, crate::store::StoreError> {
        let now = self.clock.now_ms();
        let due = self.store.next_delivery_due(held).await?;
        Ok(wait_for(now, due, self.destinations.next_resume(now)))
    }

    async fn record(&self, outbox_id: i64, result: &DeliveryResult, now: i64) -> Result<(), DeskError> {
        let result = result.clone();
        self.store
            .unit(move |tx| deliveries::record(tx, outbox_id, &result, now))
            .await
    }

    async fn deliver(&self, delivery: Delivery, send: &InFlight) {
        // A message that waited past its expiry (behind an earlier message of its
        // conversation, or through a long downtime) is stale news: it is not sent.
        let outcome = if self.clock.now_ms() > delivery.expires_at {
            Err(SendError::permanent(
                "expired before it could be sent (outbox.expire_after)",
            ))
        } else {
            match self.channels.get(delivery.inbox_id) {
                Some(channel) => channel.send(&delivery.message).await,
                None => Err(SendError::permanent("the inbox is no longer configured")),
            }
        };
        let now = self.clock.now_ms();
        let for_breaker = match &outcome {
            Ok(_) => SendOutcome::Delivered,
            Err(SendError::Transient { .. }) => SendOutcome::Unavailable,
            Err(_) => SendOutcome::Answered,
        };
        if let Some(until) = self.destinations.finished(send, for_breaker, now) {
            tracing::warn!(
                inbox_id = delivery.inbox_id,
                paused_for_ms = until - now,
                "outbox: destination failing; paused, then one probe"
            );
            // Its queued messages wait out the pause off the due index, so claims for
            // other destinations do not read past them.
            let inbox_id = delivery.inbox_id;
            let deferred = self
                .store
                .unit(move |tx| tx.defer_deliveries(inbox_id, until, now))
                .await;
            if let Err(error) = deferred {
                tracing::error!(%error, "could not defer a paused destination's messages");
            }
        }
        let result = match outcome {
            Ok(receipt) => DeliveryResult::Sent(receipt),
            Err(SendError::Permanent { reason }) => DeliveryResult::Failed { error: reason },
            Err(SendError::Unreachable { reason }) => DeliveryResult::Unreachable { error: reason },
            Err(SendError::Transient { reason, retry_after }) => after_transient_failure(
                &self.settings.retry_schedule,
                delivery.attempts,
                now,
                delivery.expires_at,
                retry_after,
                reason,
                fastrand::f64(),
            ),
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
        }
        // The send happened; losing its record would send it again. Keep trying.
        let mut pause = Duration::from_millis(50);
        while let Err(error) = self.record(delivery.outbox_id, &result, now).await {
            tracing::error!(message_id, %error, "could not record a delivery; retrying");
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(5));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ChannelSettings, InboxSettings};
    use switchboard_connector_webhook::WebhookConfig;

    const SECOND: i64 = 1000;

    fn schedule() -> Vec<Duration> {
        vec![Duration::from_secs(5), Duration::from_secs(60)]
    }

    #[test]
    fn follows_the_schedule_with_bounded_jitter() {
        let retry =
            |attempts, jitter| after_transient_failure(&schedule(), attempts, 0, i64::MAX, None, "down".into(), jitter);
        assert!(matches!(retry(1, 0.5), DeliveryResult::RetryAt { at, .. } if at == 5 * SECOND));
        assert!(matches!(retry(1, 0.0), DeliveryResult::RetryAt { at, .. } if at == 4500));
        assert!(matches!(retry(2, 0.999_999), DeliveryResult::RetryAt { at, .. } if (65_999..=66_000).contains(&at)));
    }

    #[test]
    fn gives_up_after_the_last_step() {
        let result = after_transient_failure(&schedule(), 3, 0, i64::MAX, None, "HTTP 503".into(), 0.5);
        assert!(matches!(result, DeliveryResult::Failed { error } if error == "gave up after 3 attempts: HTTP 503"));
    }

    #[test]
    fn honours_a_longer_retry_after_but_not_a_shorter_one() {
        let longer = after_transient_failure(
            &schedule(),
            1,
            0,
            i64::MAX,
            Some(Duration::from_secs(30)),
            "429".into(),
            0.5,
        );
        assert!(matches!(longer, DeliveryResult::RetryAt { at, .. } if at == 30 * SECOND));
        let shorter = after_transient_failure(
            &schedule(),
            1,
            0,
            i64::MAX,
            Some(Duration::from_secs(1)),
            "429".into(),
            0.5,
        );
        assert!(matches!(shorter, DeliveryResult::RetryAt { at, .. } if at == 5 * SECOND));
    }

    #[test]
    fn fails_when_the_next_try_would_come_after_expiry() {
        let result = after_transient_failure(&schedule(), 1, 0, 4 * SECOND, None, "down".into(), 0.5);
        assert!(matches!(result, DeliveryResult::Failed { error } if error.starts_with("expired after 1 attempts")));
    }

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
        };
        let inboxes = [InboxSettings {
            key: "shop".into(),
            name: "Shop".into(),
            channel: ChannelSettings::Webhook(webhook.validate().unwrap()),
        }];
        let dispatcher = Dispatcher {
            store: Arc::clone(&test.store),
            channels: Arc::new(Channels::build(&inboxes, &catalog, &std::collections::HashMap::new()).unwrap()),
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
            wakeup: Arc::new(Notify::new()),
            destinations: Arc::new(Destinations::new(4, 5, Duration::from_secs(30))),
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
