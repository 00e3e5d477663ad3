//! One dispatcher for every queue the store leases work from: the outbox's messages and
//! the subscriptions' event deliveries are each a [`Lane`]. It claims what is due within
//! each destination's room, sends each on a task of its own, and records what became of
//! them.
//!
//! The records of the sends that finished and the next claim are one unit of work: under
//! load one commit settles a batch of sends and takes the next batch, where a commit per
//! send and per claim kept each send's slot through two fsyncs. A claim takes up to one
//! share more per destination than it may send at once; those wait here, and a send that
//! finishes starts the next waiting one for a destination with room, so a slot never
//! idles through a round trip to the store. A row stays in flight in the store until its
//! record commits, so nothing of its conversation can overtake it. What waits for a
//! destination that gets paused goes back to the store's queue (unclaimed), to wait out
//! the pause there.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::clock::Clock;
use crate::domain::{DeskError, DeskResult};
use crate::model::millis;
use crate::store::{ClaimPlan, DeliveryResult, Lease, Store, StoreResult, Tx};
use crate::work::destinations::{Destinations, SendOutcome};

/// How long a claimed row belongs to this dispatcher unless renewed. Several daemons may
/// share a store: one that dies leaves its rows in flight, and another takes them over
/// this long after its last renewal.
pub const LEASE: Duration = Duration::from_secs(30);
/// How often a dispatcher renews the leases it holds, and takes over the rows whose
/// lease ran out. A third of [`LEASE`]: two renewals may fail before a live daemon's
/// rows could be taken.
pub const RENEW_EVERY: Duration = Duration::from_secs(10);
/// The longest a dispatcher sleeps without looking, in case a wake-up was missed
/// (another process wrote a row, or a row waits behind a conversation's earlier one).
pub const IDLE_CHECK: Duration = Duration::from_secs(5);
/// Pause after a storage error before trying again.
const STORE_ERROR_PAUSE: Duration = Duration::from_secs(1);

/// A queue of sends the store leases out.
#[async_trait]
pub trait Lane: Send + Sync + 'static {
    /// What is claimed and sent.
    type Item: Send + 'static;
    /// What a finished send leaves to record.
    type Record: Clone + Send + Sync + 'static;

    /// For the log.
    const NAME: &'static str;

    /// Who receives it (an inbox, a subscription): the unit of concurrency and breakers.
    fn destination(item: &Self::Item) -> i64;

    /// Its row in the store.
    fn id(item: &Self::Item) -> i64;

    /// Records what became of one send.
    fn record(tx: &mut dyn Tx, record: &Self::Record) -> DeskResult<()>;

    /// Puts a claimed item that was never sent back in the queue, due no earlier than
    /// `not_before`.
    fn unclaim(tx: &mut dyn Tx, id: i64, not_before: i64, now: i64) -> StoreResult<()>;

    /// Moves a paused destination's queued items to `until` at the earliest.
    fn defer(tx: &mut dyn Tx, destination: i64, until: i64, now: i64) -> StoreResult<()>;

    /// Claims up to `limit` due items within `plan`, each under `lease`.
    fn claim(tx: &mut dyn Tx, now: i64, limit: u32, lease: Lease<'_>, plan: &ClaimPlan)
    -> StoreResult<Vec<Self::Item>>;

    /// In one unit of work: records what finished, puts back the unclaimed, moves the
    /// queued items of paused destinations past their pause, and claims up to `limit`
    /// due items within `plan`.
    fn settle_and_claim(
        tx: &mut dyn Tx,
        finished: &Finished<Self::Record>,
        now: i64,
        limit: u32,
        lease: Lease<'_>,
        plan: &ClaimPlan,
    ) -> DeskResult<Vec<Self::Item>> {
        for record in &finished.records {
            Self::record(tx, record)?;
        }
        for &(id, not_before) in &finished.unclaimed {
            Self::unclaim(tx, id, not_before, now)?;
        }
        for &(destination, until) in &finished.paused {
            Self::defer(tx, destination, until, now)?;
        }
        if limit == 0 {
            return Ok(Vec::new());
        }
        Ok(Self::claim(tx, now, limit, lease, plan)?)
    }

    /// Puts items in flight whose lease ran out before `expired_before` back in the
    /// queue (`i64::MAX`: all of them).
    fn release(tx: &mut dyn Tx, expired_before: i64, now: i64) -> StoreResult<u64>;

    /// Extends the leases `lease.holder` holds to `lease.until`.
    fn renew(tx: &mut dyn Tx, lease: Lease<'_>) -> StoreResult<u64>;

    /// When the first queued item falls due after `now` (what is due already and was not
    /// claimed waits for something that wakes the dispatcher).
    fn next_due(tx: &mut dyn Tx, now: i64) -> StoreResult<Option<i64>>;

    /// Sends one item; returns its record and how the destination fared.
    async fn deliver(&self, item: Self::Item) -> (Self::Record, SendOutcome);
}

/// What the store must hear: sends that finished, claimed items that will not be sent
/// now, and destinations whose breaker opened.
#[derive(Clone)]
pub struct Finished<R> {
    pub records: Vec<R>,
    /// `(id, not before)`: claimed, never sent (their destination was paused, or the
    /// daemon is stopping); back to the queue with the attempt not counted.
    pub unclaimed: Vec<(i64, i64)>,
    /// `(destination, until)`: its queued items wait out the pause off the due index, so
    /// claims for other destinations do not read past them.
    pub paused: Vec<(i64, i64)>,
}

impl<R> Default for Finished<R> {
    fn default() -> Finished<R> {
        Finished {
            records: Vec::new(),
            unclaimed: Vec::new(),
            paused: Vec::new(),
        }
    }
}

impl<R> Finished<R> {
    fn is_empty(&self) -> bool {
        self.records.is_empty() && self.unclaimed.is_empty() && self.paused.is_empty()
    }

    /// Puts back what a failed unit of work did not record, before what finished since.
    fn restore(&mut self, mut earlier: Finished<R>) {
        earlier.records.append(&mut self.records);
        earlier.unclaimed.append(&mut self.unclaimed);
        earlier.paused.append(&mut self.paused);
        *self = earlier;
    }
}

pub struct Dispatcher<L: Lane> {
    pub lane: Arc<L>,
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    /// Per-destination concurrency and circuit breakers; shared with `/metrics`.
    pub destinations: Arc<Destinations>,
    /// Poked after every commit that queued an item, and after every finished send.
    pub wakeup: Arc<Notify>,
    /// This daemon's name on the leases it takes ([`holder_name`]).
    pub holder: Arc<str>,
    /// Sends in flight at once, across destinations.
    pub concurrency: usize,
    /// How long shutdown waits for sends in flight; one cut off stays in flight in the
    /// store and is sent again after the restart.
    pub shutdown_grace: Duration,
}

struct Running<L: Lane> {
    dispatcher: Dispatcher<L>,
    finished: Mutex<Finished<L::Record>>,
    /// Claimed, waiting for a slot and their destination's room, oldest first.
    waiting: Mutex<VecDeque<L::Item>>,
    slots: Arc<Semaphore>,
    tracker: TaskTracker,
    /// Set at shutdown: nothing new starts.
    stopping: AtomicBool,
}

impl<L: Lane> Dispatcher<L> {
    /// Runs until `shutdown`, then gives sends in flight the grace to finish, and
    /// records what they did.
    pub async fn run(self, shutdown: CancellationToken) {
        // A daemon alone on its store (SQLite) knows that whatever is in flight was left
        // by its previous run; on a shared one, only rows whose lease ran out are.
        let expired_before = if self.store.exclusive() {
            i64::MAX
        } else {
            self.clock.now_ms()
        };
        self.take_over(expired_before).await;
        let mut next_renewal = tokio::time::Instant::now() + RENEW_EVERY;
        let running = Arc::new(Running {
            slots: Arc::new(Semaphore::new(self.concurrency)),
            dispatcher: self,
            finished: Mutex::new(Finished::default()),
            waiting: Mutex::new(VecDeque::new()),
            tracker: TaskTracker::new(),
            stopping: AtomicBool::new(false),
        });
        while !shutdown.is_cancelled() {
            if tokio::time::Instant::now() >= next_renewal {
                running.dispatcher.renew().await;
                running.dispatcher.take_over(running.dispatcher.clock.now_ms()).await;
                next_renewal = tokio::time::Instant::now() + RENEW_EVERY;
            }
            let wait = match running.dispatch_due(true).await {
                Ok(wait) => wait,
                Err(error) => {
                    tracing::error!(%error, dispatcher = L::NAME, "storage failed; retrying");
                    STORE_ERROR_PAUSE
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = running.dispatcher.wakeup.notified() => {}
                () = tokio::time::sleep(wait) => {}
                () = tokio::time::sleep_until(next_renewal) => {}
            }
        }
        running.finish().await;
    }

    /// Puts back in the queue what is in flight with a lease that ran out before
    /// `expired_before`: a dead daemon's sends (or this daemon's previous run's).
    async fn take_over(&self, expired_before: i64) {
        let now = self.clock.now_ms();
        match self.store.unit(move |tx| L::release(tx, expired_before, now)).await {
            Ok(0) => {}
            Ok(released) => tracing::info!(
                dispatcher = L::NAME,
                released,
                "re-queued sends left in flight by a daemon that stopped"
            ),
            Err(error) => tracing::error!(dispatcher = L::NAME, %error, "could not re-queue what was left in flight"),
        }
    }

    /// Keeps the rows this daemon has in flight its own for another [`LEASE`].
    async fn renew(&self) {
        let holder = Arc::clone(&self.holder);
        let until = self.clock.now_ms().saturating_add(millis(LEASE));
        let renewed = self
            .store
            .unit(move |tx| L::renew(tx, Lease { holder: &holder, until }))
            .await;
        if let Err(error) = renewed {
            tracing::error!(dispatcher = L::NAME, %error, "could not renew the leases of sends in flight");
        }
    }
}

/// A name for this daemon's run, unique among the daemons sharing a store: the host,
/// the process and a random part (a restarted process may get the same id).
pub fn holder_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host = host.trim();
    format!(
        "{}/{}/{:08x}",
        if host.is_empty() { "host" } else { host },
        std::process::id(),
        fastrand::u32(..)
    )
}

impl<L: Lane> Running<L> {
    /// The buffer survives a panic elsewhere: pushes and takes leave it whole.
    fn finished(&self) -> MutexGuard<'_, Finished<L::Record>> {
        self.finished.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn waiting(&self) -> MutexGuard<'_, VecDeque<L::Item>> {
        self.waiting.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records what finished and, when `claim`, claims what is due within each
    /// destination's room and starts what may start; returns how long to wait before
    /// looking again (unless woken first).
    async fn dispatch_due(self: &Arc<Self>, claim: bool) -> Result<Duration, DeskError> {
        let this = &self.dispatcher;
        let now = this.clock.now_ms();
        let (limit, plan) = if claim {
            let waiting = self.waiting();
            let mut by_destination: HashMap<i64, u32> = HashMap::new();
            for item in waiting.iter() {
                *by_destination.entry(L::destination(item)).or_default() += 1;
            }
            // One batch ahead of the slots: as many again as may be in flight at once.
            let in_flight = this.concurrency - self.slots.available_permits();
            let room = (this.concurrency * 2).saturating_sub(in_flight + waiting.len());
            (room as u32, this.destinations.plan(now, &by_destination))
        } else {
            (0, ClaimPlan::default())
        };
        let finished = std::mem::take(&mut *self.finished());
        if limit == 0 && finished.is_empty() {
            // Every slot is busy and a batch waits: a finished send wakes us.
            return Ok(IDLE_CHECK);
        }
        let lease_until = now.saturating_add(millis(LEASE));
        let holder = Arc::clone(&this.holder);
        // A copy goes into the unit of work (which may run more than once); the original
        // is kept until the commit, because the sends happened and losing their records
        // would send them again.
        let recording = finished.clone();
        let claimed = this
            .store
            .unit(move |tx| {
                let lease = Lease {
                    holder: &holder,
                    until: lease_until,
                };
                let batch = L::settle_and_claim(tx, &recording, now, limit, lease, &plan)?;
                // Filled: a finished send wakes us. Otherwise the index says when next.
                let due = if claim && (batch.len() as u32) < limit {
                    L::next_due(tx, now)?
                } else {
                    None
                };
                Ok::<_, DeskError>((batch, due))
            })
            .await;
        let (batch, due) = match claimed {
            Ok(claimed) => claimed,
            Err(error) => {
                self.finished().restore(finished);
                return Err(error);
            }
        };
        let filled = batch.len() as u32 == limit;
        self.waiting().extend(batch);
        self.start_waiting();
        if filled || !claim {
            return Ok(IDLE_CHECK);
        }
        let now = this.clock.now_ms();
        Ok(wait_for(now, due, this.destinations.next_resume(now)))
    }

    /// Starts every waiting item that has a slot and its destination's room, oldest
    /// first; gives back to the store what waits for a paused destination.
    fn start_waiting(self: &Arc<Self>) {
        if self.stopping.load(Ordering::Relaxed) {
            return;
        }
        let this = &self.dispatcher;
        let now = this.clock.now_ms();
        let mut waiting = self.waiting();
        let mut kept = VecDeque::with_capacity(waiting.len());
        let mut unclaimed = Vec::new();
        while let Some(item) = waiting.pop_front() {
            let destination = L::destination(&item);
            if let Some(until) = this.destinations.paused_until(destination, now) {
                unclaimed.push((L::id(&item), until));
                continue;
            }
            let Ok(permit) = Arc::clone(&self.slots).try_acquire_owned() else {
                kept.push_back(item);
                kept.extend(waiting.drain(..));
                break;
            };
            let Some(send) = this.destinations.try_start(destination, now) else {
                drop(permit);
                kept.push_back(item);
                continue;
            };
            let running = Arc::clone(self);
            self.tracker.spawn(async move {
                let (record, outcome) = running.dispatcher.lane.deliver(item).await;
                let now = running.dispatcher.clock.now_ms();
                let paused = running.dispatcher.destinations.finished(&send, outcome, now);
                drop(send);
                drop(permit);
                if let Some(until) = paused {
                    tracing::warn!(
                        dispatcher = L::NAME,
                        destination,
                        paused_for_ms = until - now,
                        "destination failing; paused, then one probe"
                    );
                }
                {
                    let mut finished = running.finished();
                    finished.records.push(record);
                    if let Some(until) = paused {
                        finished.paused.push((destination, until));
                    }
                }
                // The slot this send held goes to what waits, without the store.
                running.start_waiting();
                running.dispatcher.wakeup.notify_one();
            });
        }
        *waiting = kept;
        drop(waiting);
        if !unclaimed.is_empty() {
            self.finished().unclaimed.extend(unclaimed);
            this.wakeup.notify_one();
        }
    }

    /// After shutdown: the sends in flight get the grace to finish, then what finished
    /// is recorded (tried until the grace is over).
    async fn finish(self: &Arc<Self>) {
        let grace = self.dispatcher.shutdown_grace;
        let deadline = tokio::time::Instant::now() + grace;
        self.stopping.store(true, Ordering::Relaxed);
        // What was claimed but not started goes back to the queue now.
        let now = self.dispatcher.clock.now_ms();
        let unstarted: Vec<(i64, i64)> = self.waiting().drain(..).map(|item| (L::id(&item), now)).collect();
        self.finished().unclaimed.extend(unstarted);
        self.tracker.close();
        if tokio::time::timeout_at(deadline, self.tracker.wait()).await.is_err() {
            tracing::warn!(
                dispatcher = L::NAME,
                in_flight = self.tracker.len(),
                "grace period over; unfinished sends are retried after restart"
            );
        }
        loop {
            match self.dispatch_due(false).await {
                Ok(_) if self.finished().is_empty() => return,
                Ok(_) => {}
                Err(error) => {
                    tracing::error!(%error, dispatcher = L::NAME, "could not record finished sends; retrying");
                    if tokio::time::Instant::now() >= deadline {
                        tracing::error!(dispatcher = L::NAME, "unrecorded sends are sent again after restart");
                        return;
                    }
                    tokio::time::sleep(STORE_ERROR_PAUSE.min(grace)).await;
                }
            }
        }
    }
}

/// How long a dispatcher sleeps: until the next item falls due or a paused destination
/// resumes, whichever is first (zero when it fell due since the claim: look again at
/// once), and never longer than [`IDLE_CHECK`].
pub fn wait_for(now: i64, due: Option<i64>, resume: Option<i64>) -> Duration {
    let next = match (due, resume) {
        (Some(due), Some(resume)) => Some(due.min(resume)),
        (due, resume) => due.or(resume),
    };
    next.map_or(IDLE_CHECK, |at| {
        Duration::from_millis(at.saturating_sub(now).max(0) as u64).min(IDLE_CHECK)
    })
}

/// What to do after a transient failure: the next step of `schedule` (±10 % jitter, a
/// longer `retry_after` wins), or failed for good when the schedule is used up or the
/// retry would come after `expires_at`. Pure, so the schedule is testable.
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
    let at = now.saturating_add(millis(delay));
    if at > expires_at {
        return DeliveryResult::Failed {
            error: format!("expired after {attempts} attempts: {reason}"),
        };
    }
    DeliveryResult::RetryAt { at, error: reason }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
