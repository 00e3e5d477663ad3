//! The SLA scheduler: one task that sleeps until the earliest stored deadline (a warning
//! or a breach), fires what is due through the store, and sleeps again. It never walks
//! the open conversations: the store answers "when next?" from an index, and work that
//! makes a deadline earlier than the planned wake-up wakes it.
//!
//! Deadlines are stored, so a restart loses none: what fell due while the daemon was
//! down fires at start, once (firing and its actions commit together).
//!
//! It also runs the retention policy (`[privacy] erase_resolved_after`): at start and
//! then once a day of its clock, finished conversations past the age are erased. Driven
//! by the same injected clock, so tests move a day by setting the time. On the same
//! rhythm, whatever the policy, it forgets channel reports that no recorded send carries
//! (a WhatsApp message id encodes the customer's number).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::domain::DeskError;
use crate::domain::service::Service;

/// Clocks fired per transaction: a burst of due clocks (a restart after a weekend)
/// commits in steps, and other writes interleave.
const BATCH: u32 = 256;
/// The longest single sleep: a guard against the wall clock being stepped while the
/// process sleeps on a monotonic timer. Waking this rarely costs nothing.
const MAX_SLEEP_MS: i64 = 15 * 60 * 1000;
/// The wait before trying again after the store failed.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);
/// How often the retention policy runs.
const RETENTION_EVERY_MS: i64 = 24 * 60 * 60 * 1000;
/// How long a channel's report waits for the send it names to be recorded (Meta's
/// webhook can outrun the answer to the send by seconds), and how often the ones that
/// waited longer are looked for: messages another tool sent from the same number, or
/// sends erased since.
const UNMATCHED_REPORT_KEPT_MS: i64 = 24 * 60 * 60 * 1000;

/// How other tasks reach the scheduler, and what it has done.
#[derive(Debug)]
pub struct SchedulerHandle {
    wakeup: Notify,
    /// When it plans to wake next (`i64::MAX`: nothing scheduled).
    planned: AtomicI64,
    /// Times it woke up (deadline, nudge, or the guard).
    pub wakeups: AtomicU64,
    pub warnings: AtomicU64,
    pub breaches: AtomicU64,
    /// Retention passes run, and conversations they erased.
    pub retention_sweeps: AtomicU64,
    pub retention_erased: AtomicU64,
    /// Channel reports forgotten because no recorded send carried them.
    pub reports_pruned: AtomicU64,
}

impl Default for SchedulerHandle {
    fn default() -> SchedulerHandle {
        SchedulerHandle {
            wakeup: Notify::new(),
            planned: AtomicI64::new(i64::MAX),
            wakeups: AtomicU64::new(0),
            warnings: AtomicU64::new(0),
            breaches: AtomicU64::new(0),
            retention_sweeps: AtomicU64::new(0),
            retention_erased: AtomicU64::new(0),
            reports_pruned: AtomicU64::new(0),
        }
    }
}

impl SchedulerHandle {
    /// A commit scheduled something at `at`: wakes the scheduler if that is sooner than
    /// it planned. Cheap enough to call after every ingest.
    pub fn scheduled(&self, at: Option<i64>) {
        if let Some(at) = at
            && at < self.planned.load(Ordering::Relaxed)
        {
            self.wakeup.notify_one();
        }
    }

    /// Something changed deadlines in ways the caller does not know (an agent's edit):
    /// the scheduler looks again.
    pub fn nudge(&self) {
        self.wakeup.notify_one();
    }
}

pub struct Scheduler {
    /// Fires the clocks with the desk's policies; its store says when next.
    pub service: Service,
    pub clock: Arc<dyn Clock>,
    pub handle: Arc<SchedulerHandle>,
    /// Wakes the outbox after a batch that may have queued status updates (an
    /// escalation, a reminder, an automatic close).
    pub outbox_wakeup: Arc<Notify>,
    /// Wakes the event dispatcher after a batch that may have told subscribers
    /// (`sla.warning`, `sla.breached`, `contact.erased`).
    pub events_wakeup: Arc<Notify>,
    /// `[privacy] erase_resolved_after`: `None`, no retention policy.
    pub retention: Option<Duration>,
}

impl Scheduler {
    pub async fn run(self, shutdown: CancellationToken) {
        // The first pass at start: a daemon restarted daily still erases.
        let mut next_sweep = self.clock.now_ms();
        let mut next_prune = next_sweep;
        loop {
            if let Some(age) = self.retention
                && self.clock.now_ms() >= next_sweep
            {
                next_sweep = self.sweep(age).await;
            }
            if self.clock.now_ms() >= next_prune {
                next_prune = self.prune_reports().await;
            }
            // While it fires and asks, every new deadline must wake it again: what it
            // reads may predate that commit.
            self.handle.planned.store(i64::MIN, Ordering::Relaxed);
            let next = match self.fire_due().await {
                Ok(()) => self.service.store().next_sla_fire().await.map_err(DeskError::from),
                Err(err) => Err(err),
            };
            let wake_at = match next {
                Ok(next) => {
                    let now = self.clock.now_ms();
                    let guard = now.saturating_add(MAX_SLEEP_MS);
                    self.handle.planned.store(next.unwrap_or(i64::MAX), Ordering::Relaxed);
                    next.map_or(guard, |next| next.min(guard))
                }
                Err(err) => {
                    tracing::error!(%err, "SLA scheduler: the store failed; trying again");
                    self.handle.planned.store(i64::MIN, Ordering::Relaxed);
                    self.clock
                        .now_ms()
                        .saturating_add(RETRY_AFTER_FAILURE.as_millis() as i64)
                }
            };
            let wake_at = if self.retention.is_some() {
                wake_at.min(next_sweep)
            } else {
                wake_at
            }
            .min(next_prune);
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = self.clock.sleep_until(wake_at) => {}
                () = self.handle.wakeup.notified() => {}
            }
            self.handle.wakeups.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Erases what the retention policy says is due, a batch per transaction; returns
    /// when the next pass is due (sooner after a failure).
    async fn sweep(&self, age: Duration) -> i64 {
        loop {
            let now = self.clock.now_ms();
            let before = now.saturating_sub(i64::try_from(age.as_millis()).unwrap_or(i64::MAX));
            match self.service.sweep_retention(before, BATCH, now).await {
                Ok(outcome) => {
                    self.handle
                        .retention_erased
                        .fetch_add(u64::from(outcome.conversations), Ordering::Relaxed);
                    if outcome.conversations > 0 {
                        tracing::info!(
                            conversations = outcome.conversations,
                            contacts = outcome.contacts,
                            "retention policy erased finished conversations"
                        );
                        self.events_wakeup.notify_one();
                    }
                    if outcome.conversations < BATCH {
                        self.handle.retention_sweeps.fetch_add(1, Ordering::Relaxed);
                        return now.saturating_add(RETENTION_EVERY_MS);
                    }
                }
                Err(err) => {
                    tracing::error!(%err, "retention policy: the store failed; trying again");
                    return now.saturating_add(RETRY_AFTER_FAILURE.as_millis() as i64);
                }
            }
        }
    }

    /// Forgets the channel reports no recorded send has carried for a day; returns when to
    /// look again. One statement, reading the reports table once a day (a row per
    /// message sent on a channel that reports).
    async fn prune_reports(&self) -> i64 {
        let now = self.clock.now_ms();
        match self
            .service
            .prune_delivery_reports(now.saturating_sub(UNMATCHED_REPORT_KEPT_MS))
            .await
        {
            Ok(pruned) => {
                self.handle.reports_pruned.fetch_add(pruned, Ordering::Relaxed);
                if pruned > 0 {
                    tracing::info!(pruned, "forgot channel reports that no recorded send carries");
                }
                now.saturating_add(UNMATCHED_REPORT_KEPT_MS)
            }
            Err(err) => {
                tracing::error!(%err, "pruning channel reports: the store failed; trying again");
                now.saturating_add(RETRY_AFTER_FAILURE.as_millis() as i64)
            }
        }
    }

    /// Fires everything due now, a batch per transaction.
    async fn fire_due(&self) -> Result<(), DeskError> {
        loop {
            let outcome = self.service.fire_sla(self.clock.now_ms(), BATCH).await?;
            self.handle
                .warnings
                .fetch_add(u64::from(outcome.warnings), Ordering::Relaxed);
            self.handle
                .breaches
                .fetch_add(u64::from(outcome.breaches), Ordering::Relaxed);
            if outcome.breaches > 0 || outcome.follow_ups > 0 {
                self.outbox_wakeup.notify_one();
            }
            if outcome.breaches > 0 || outcome.warnings > 0 || outcome.follow_ups > 0 {
                self.events_wakeup.notify_one();
            }
            if outcome.follow_ups > 0 {
                tracing::info!(
                    follow_ups = outcome.follow_ups,
                    "follow-ups of waiting conversations fired"
                );
            }
            if outcome.breaches > 0 || outcome.warnings > 0 {
                tracing::info!(
                    warnings = outcome.warnings,
                    breaches = outcome.breaches,
                    "SLA clocks fired"
                );
            }
            if outcome.clocks < BATCH && outcome.follow_ups < BATCH {
                return Ok(());
            }
        }
    }
}
