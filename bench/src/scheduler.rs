//! The SLA scheduler with 100,000 open conversations that have deadlines.
//!
//! Unlike the other scenarios this one measures the daemon's library in this process
//! (`switchboard::server::open_store`, `switchboard::work::scheduler`), not the daemon binary:
//! a [`ManualClock`] can then move every deadline into the past at once, and the CPU the
//! scheduler and the store's writer thread use is this process's own, read from
//! `/proc/self/stat` (in ticks of 10 ms).
//!
//! The conversations are ingested as the daemon would (routing, SLA clocks for first
//! response, resolution and the open-time cap), then:
//! - idle: the scheduler on the system clock with every deadline hours away, alone and
//!   while new conversations arrive at a paced rate, some with deadlines earlier than
//!   any stored one. It should wake for the earliest deadline only, not per conversation;
//! - firing: the manual clock jumps past every first-response deadline and the breaches
//!   are counted until all have fired, first with a policy that only notifies, then
//!   for a fifth as many conversations with one that also escalates to the next tier;
//! - the query the scheduler plans by, `next_sla_fire`, timed on its own.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use switchboard::auth::hash_token;
use switchboard::clock::{Clock, ManualClock, SystemClock};
use switchboard::domain::ingest::IngestContext;
use switchboard::domain::router::Router;
use switchboard::domain::service::Service;
use switchboard::model::Role;
use switchboard::store::{InboxRef, NewAgent};
use switchboard::work::scheduler::{Scheduler, SchedulerHandle};
use switchboard_connector_core::{InboundMessage, Sender};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::daemon::{SECRET, process_cpu_seconds};

/// Messages per `ingest_in_order` call while seeding: the writer commits them in a group
/// or two (up to 512 a group), not with one fsync each.
pub(crate) const SEED_BATCH: u64 = 500;
/// New conversations a second while the scheduler idles: a busy desk's daytime rate.
const PACED_PER_SECOND: u32 = 200;
/// Calls of `next_sla_fire` timed.
const QUERY_CALLS: usize = 1_000;
const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 60 * MINUTE_MS;
/// The targets in the config below: support's first response for normal priority, the
/// orders team's for every priority.
const SUPPORT_FIRST_RESPONSE_MS: i64 = 4 * HOUR_MS;
const ORDERS_FIRST_RESPONSE_MS: i64 = 8 * HOUR_MS;
/// Long enough for the scheduler to look at the store and go to sleep, so a measurement
/// starts with it idle.
const SETTLE: Duration = Duration::from_millis(300);
/// How long firing may take before the scenario gives up.
const FIRING_DEADLINE: Duration = Duration::from_secs(600);

/// Around-the-clock policies, so a deadline is its target after creation whatever the
/// day. Support only notifies on a breach: firing it measures the scheduler and the
/// breach's event. Orders also escalate to their second tier.
fn config(database: &Path) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
[storage]
url = "sqlite://{database}"
[log]
level = "warn"
[updates]
events = []
[routing]
default_team = "support"

[sla_policies.notify]
time = "calendar"
warning = 0.8
first_response = {{ urgent = "2h", high = "3h", normal = "4h", low = "8h" }}
resolution = "3days"
on_breach = ["notify"]

[sla_policies.escalate]
time = "calendar"
warning = 0.8
first_response = "8h"
resolution = "3days"
on_breach = ["escalate", "notify"]

[teams.support]
name = "Support"
sla = "notify"

[teams.orders]
name = "Orders"
department = "orders"
tier = 0
sla = "escalate"

[teams.orders-l2]
name = "Orders L2"
department = "orders"
tier = 1
sla = "escalate"

[inboxes.shop.webhook]
secret = "{SECRET}"
callback_url = "http://127.0.0.1:9/unused"

[[rules]]
name = "urgent"
when = {{ text = '(?i)\burgent\b' }}
then = {{ priority = "urgent" }}

[[rules]]
name = "orders"
when = {{ text = '(?i)\border\b' }}
then = {{ team = "orders" }}
"#,
        database = database.display()
    )
}

pub struct Seeding {
    pub conversations: u64,
    pub seconds: f64,
    pub database_bytes: u64,
    pub wal_bytes: u64,
}

impl Seeding {
    pub fn per_second(&self) -> f64 {
        self.conversations as f64 / self.seconds
    }
}

/// A stretch of real time with the scheduler on the system clock.
pub struct Window {
    pub seconds: f64,
    pub wakeups: u64,
    pub cpu_seconds: f64,
    /// New conversations during the window.
    pub ingested: u64,
    /// Of them, the urgent ones: each with a deadline before every seeded one.
    pub urgent: u64,
}

impl Window {
    fn to_json(&self) -> Value {
        json!({
            "seconds": round(self.seconds),
            "wakeups": self.wakeups,
            "process_cpu_seconds": round(self.cpu_seconds),
            "new_conversations": self.ingested,
            "new_urgent_with_deadlines_before_every_seeded_one": self.urgent,
        })
    }
}

/// The manual clock jumped past deadlines, until every breach fired.
pub struct Firing {
    pub conversations: u64,
    pub breaches: u64,
    pub warnings: u64,
    pub wakeups: u64,
    pub seconds: f64,
    pub cpu_seconds: f64,
}

impl Firing {
    pub fn per_second(&self) -> f64 {
        self.breaches as f64 / self.seconds
    }

    fn to_json(&self) -> Value {
        json!({
            "conversations": self.conversations,
            "breaches": self.breaches,
            "warnings": self.warnings,
            "wakeups": self.wakeups,
            "seconds": round(self.seconds),
            "breaches_per_second": self.per_second().round(),
            "process_cpu_seconds": round(self.cpu_seconds),
            "cpu_us_per_breach": (self.cpu_seconds * 1e6 / self.breaches.max(1) as f64).round(),
        })
    }
}

pub struct SchedulerFigures {
    pub seeding: Seeding,
    /// Clocks with a moment still to fire when `next_sla_fire` was timed.
    pub pending_clocks: u64,
    pub next_fire_us: Histogram<u64>,
    pub idle: Window,
    pub paced: Window,
    pub notify: Firing,
    pub escalate: Firing,
    /// Conversations in the orders team's second tier after the escalating breaches.
    pub escalated: u64,
    /// EXPLAIN QUERY PLAN of the scheduler's two queries.
    pub plans: Vec<(&'static str, Vec<String>)>,
}

impl SchedulerFigures {
    pub fn query_us(&self, percentile: f64) -> f64 {
        self.next_fire_us.value_at_quantile(percentile / 100.0) as f64
    }

    pub fn to_json(&self) -> Value {
        json!({
            "description": "switchboard::work::scheduler::Scheduler over the SQLite store in the benchmark's process; conversations ingested through Service::ingest_in_order, each with first-response, resolution and open-time SLA clocks",
            "seeding": {
                "conversations": self.seeding.conversations,
                "batch": SEED_BATCH,
                "seconds": round(self.seeding.seconds),
                "per_second": self.seeding.per_second().round(),
                "database_bytes": self.seeding.database_bytes,
                "wal_bytes": self.seeding.wal_bytes,
            },
            "idle": self.idle.to_json(),
            "idle_with_paced_ingest": {
                "offered_per_second": PACED_PER_SECOND,
                "window": self.paced.to_json(),
            },
            "firing_notify": self.notify.to_json(),
            "firing_escalate": {
                "escalated_conversations": self.escalated,
                "firing": self.escalate.to_json(),
            },
            "next_sla_fire": {
                "calls": self.next_fire_us.len(),
                "pending_clocks": self.pending_clocks,
                "p50_us": self.query_us(50.0),
                "p99_us": self.query_us(99.0),
                "max_us": self.next_fire_us.max(),
            },
            "query_plans": self.plans.iter().map(|(query, plan)| json!({"query": query, "plan": plan})).collect::<Vec<_>>(),
        })
    }
}

/// What ingest needs for the one inbox, as the webhook hook builds it (the updates
/// scenario seeds its stores with it too).
pub(crate) struct Intake {
    pub(crate) store: Service,
    pub(crate) inbox: InboxRef,
    pub(crate) router: Arc<Router>,
}

impl Intake {
    /// A message from a sender of its own, so it opens a conversation.
    fn message(&self, now: i64, sender: String, text: String) -> (IngestContext, InboundMessage) {
        let context = IngestContext {
            inbox: self.inbox.clone(),
            router: Arc::clone(&self.router),
            greeting: false,
            now,
            expires_at: now + HOUR_MS,
        };
        let message = InboundMessage {
            external_id: format!("{sender}-1"),
            sender: Sender {
                external_id: sender,
                ..Sender::default()
            },
            text,
            ..InboundMessage::default()
        };
        (context, message)
    }

    /// Ingests `count` conversations in batches; tells `handle` of their deadlines as
    /// the daemon's hooks do, when there is a scheduler to tell.
    pub(crate) async fn seed(
        &self,
        clock: &dyn Clock,
        handle: Option<&SchedulerHandle>,
        prefix: &str,
        count: u64,
        text: impl Fn(u64) -> String,
    ) -> anyhow::Result<()> {
        for start in (0..count).step_by(SEED_BATCH as usize) {
            let now = clock.now_ms();
            let batch = (start..count.min(start + SEED_BATCH))
                .map(|n| self.message(now, format!("{prefix}-{n}"), text(n)))
                .collect();
            for outcome in self.store.ingest_in_order(batch).await {
                let outcome = outcome.context("seeding")?;
                ensure!(outcome.created_conversation, "a seeded message joined a conversation");
                if let Some(handle) = handle {
                    handle.scheduled(outcome.next_sla_fire);
                }
            }
        }
        Ok(())
    }
}

fn start_scheduler(
    service: &Service,
    clock: Arc<dyn Clock>,
) -> (Arc<SchedulerHandle>, CancellationToken, JoinHandle<()>) {
    let handle = Arc::new(SchedulerHandle::default());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(
        Scheduler {
            service: service.clone(),
            clock,
            handle: Arc::clone(&handle),
            outbox_wakeup: Arc::new(tokio::sync::Notify::new()),
            events_wakeup: Arc::new(tokio::sync::Notify::new()),
            retention: None,
        }
        .run(shutdown.clone()),
    );
    (handle, shutdown, task)
}

/// Two decimals: CPU time comes in ticks of 10 ms.
fn round(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |metadata| metadata.len())
}

pub async fn run(conversations: u64, idle_seconds: u64) -> anyhow::Result<SchedulerFigures> {
    let dir = tempfile::tempdir()?;
    let database = dir.path().join("switchboard.db");
    let config_path = dir.path().join("switchboard.toml");
    std::fs::write(&config_path, config(&database))?;
    let settings = switchboard::config::load(&config_path)?;
    let system: Arc<dyn Clock> = Arc::new(SystemClock);
    // Not a `Send` future: awaited here, on the thread that blocks on the runtime.
    let (store, catalog) = switchboard::server::open_store(&settings, system.as_ref()).await?;
    for team in ["support", "orders", "orders-l2"] {
        let supervisor = NewAgent {
            name: format!("{team} supervisor"),
            role: Role::Supervisor,
            teams: vec![team.to_owned()],
            token_hash: hash_token(&format!("bench-{team}")),
            first_token: Some("first".into()),
            capacity: None,
            available: false,
            languages: Vec::new(),
        };
        store.create_agent(supervisor, None, system.now_ms()).await?;
    }
    let intake = Arc::new(Intake {
        store: store.clone(),
        inbox: catalog.inboxes.get("shop").context("the shop inbox")?.clone(),
        router: Arc::clone(&settings.router),
    });

    let started = Instant::now();
    intake
        .seed(system.as_ref(), None, "customer", conversations, |n| {
            format!("Hello, I have a question about my account, reference {n}. Could someone get back to me?")
        })
        .await?;
    let seeding = Seeding {
        conversations,
        seconds: started.elapsed().as_secs_f64(),
        database_bytes: file_size(&database),
        wal_bytes: file_size(&dir.path().join("switchboard.db-wal")),
    };

    let plans = query_plans(&database)?;
    let pending_clocks = count(
        &database,
        "SELECT COUNT(*) FROM sla_clocks WHERE next_fire_at IS NOT NULL",
    )?;
    // Bounded, not `Histogram::new`: `saturating_record` clamps a value above an
    // auto-resizing histogram's current range (2 at first) instead of growing it.
    let mut next_fire_us = crate::load::histogram();
    for _ in 0..QUERY_CALLS {
        let before = Instant::now();
        store
            .store()
            .next_sla_fire()
            .await?
            .context("no SLA moment is pending")?;
        next_fire_us.saturating_record(before.elapsed().as_micros() as u64);
    }

    let (handle, shutdown, task) = start_scheduler(&store, Arc::clone(&system));
    tokio::time::sleep(SETTLE).await;
    let window = Duration::from_secs(idle_seconds);
    let idle = measure(&handle, async {
        tokio::time::sleep(window).await;
        Ok((0, 0))
    })
    .await?;
    let paced = measure(&handle, paced_ingest(&intake, &handle, window)).await?;
    shutdown.cancel();
    task.await?;
    let last_created = system.now_ms();

    // One scheduler on a manual clock from here, so deadlines come due on command.
    let manual = Arc::new(ManualClock::new(last_created));
    let (handle, shutdown, task) = start_scheduler(&store, Arc::clone(&manual) as Arc<dyn Clock>);
    let support = conversations + paced.ingested;
    let jump = last_created + SUPPORT_FIRST_RESPONSE_MS + MINUTE_MS;
    let notify = fire(&handle, &manual, jump, support).await?;

    let orders = (conversations / 5).max(1);
    intake
        .seed(manual.as_ref(), Some(&handle), "buyer", orders, |n| {
            format!("Where is my order {n}? It should have arrived last week.")
        })
        .await?;
    let jump = manual.now_ms() + ORDERS_FIRST_RESPONSE_MS + MINUTE_MS;
    let escalate = fire(&handle, &manual, jump, orders).await?;
    shutdown.cancel();
    task.await?;
    let escalated = count(
        &database,
        "SELECT COUNT(*) FROM conversations c JOIN teams t ON t.id = c.team_id WHERE t.key = 'orders-l2'",
    )?;
    // The writer thread checkpoints and closes the file before the folder goes.
    drop(intake);
    drop(store);
    Ok(SchedulerFigures {
        seeding,
        pending_clocks,
        next_fire_us,
        idle,
        paced,
        notify,
        escalate,
        escalated,
        plans,
    })
}

/// Wake-ups and process CPU while `work` runs; it returns the conversations it
/// created, and how many of them were urgent.
async fn measure(
    handle: &SchedulerHandle,
    work: impl Future<Output = anyhow::Result<(u64, u64)>>,
) -> anyhow::Result<Window> {
    let wakeups = handle.wakeups.load(Ordering::Relaxed);
    let cpu = process_cpu_seconds("self");
    let started = Instant::now();
    let (ingested, urgent) = work.await?;
    Ok(Window {
        seconds: started.elapsed().as_secs_f64(),
        wakeups: handle.wakeups.load(Ordering::Relaxed) - wakeups,
        cpu_seconds: process_cpu_seconds("self") - cpu,
        ingested,
        urgent,
    })
}

/// New conversations at [`PACED_PER_SECOND`], each ingested as a webhook request would
/// be (its own write, the scheduler told of its deadline). Every other one is urgent,
/// with half the normal first-response target: a deadline before every seeded one,
/// though each later than the urgent one before it.
async fn paced_ingest(
    intake: &Arc<Intake>,
    handle: &Arc<SchedulerHandle>,
    window: Duration,
) -> anyhow::Result<(u64, u64)> {
    let mut ticks = tokio::time::interval(Duration::from_secs(1) / PACED_PER_SECOND);
    let mut writes = tokio::task::JoinSet::new();
    let started = Instant::now();
    let mut sent = 0u64;
    while started.elapsed() < window {
        ticks.tick().await;
        let text = if sent.is_multiple_of(2) {
            format!("URGENT: I cannot get into my account, reference {sent}")
        } else {
            format!("Hello, another question about my account, reference {sent}")
        };
        let (context, message) = intake.message(SystemClock.now_ms(), format!("newcomer-{sent}"), text);
        let (intake, handle) = (Arc::clone(intake), Arc::clone(handle));
        writes.spawn(async move {
            let outcome = intake.store.ingest(context, message).await?;
            // What the hook does after its commit: a wake-up only when the deadline is
            // earlier than the one the scheduler sleeps until.
            handle.scheduled(outcome.next_sla_fire);
            anyhow::Ok(outcome.created_conversation)
        });
        sent += 1;
    }
    let mut created = 0;
    while let Some(write) = writes.join_next().await {
        created += u64::from(write??);
    }
    ensure!(created == sent, "{sent} paced messages opened {created} conversations");
    Ok((created, sent.div_ceil(2)))
}

/// Jumps the manual clock to `to` and waits for `expected` breaches.
async fn fire(handle: &SchedulerHandle, clock: &ManualClock, to: i64, expected: u64) -> anyhow::Result<Firing> {
    // The scheduler done with what came before (its start, the wake-ups new deadlines
    // caused) and asleep, so the timing and the wake-ups are the jump's alone.
    tokio::time::sleep(SETTLE).await;
    let breaches = handle.breaches.load(Ordering::Relaxed);
    let warnings = handle.warnings.load(Ordering::Relaxed);
    let wakeups = handle.wakeups.load(Ordering::Relaxed);
    let cpu = process_cpu_seconds("self");
    let started = Instant::now();
    clock.set(to);
    loop {
        let fired = handle.breaches.load(Ordering::Relaxed) - breaches;
        if fired >= expected {
            break;
        }
        if started.elapsed() > FIRING_DEADLINE {
            bail!("{fired} of {expected} breaches fired in {FIRING_DEADLINE:?}");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(Firing {
        conversations: expected,
        breaches: handle.breaches.load(Ordering::Relaxed) - breaches,
        warnings: handle.warnings.load(Ordering::Relaxed) - warnings,
        wakeups: handle.wakeups.load(Ordering::Relaxed) - wakeups,
        seconds,
        cpu_seconds: process_cpu_seconds("self") - cpu,
    })
}

fn read_only(database: &Path) -> anyhow::Result<rusqlite::Connection> {
    Ok(rusqlite::Connection::open_with_flags(
        database,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )?)
}

fn count(database: &Path, sql: &str) -> anyhow::Result<u64> {
    Ok(read_only(database)?.query_row(sql, [], |row| row.get::<_, i64>(0))? as u64)
}

/// The plans SQLite chooses for the scheduler's queries on the seeded store. The SQL is
/// copied from src/store/sqlite (queries/mod.rs `next_sla_fire`, tx/clocks.rs
/// `due_clocks`): a change there is not seen here.
fn query_plans(database: &Path) -> anyhow::Result<Vec<(&'static str, Vec<String>)>> {
    let queries = [
        (
            "next_sla_fire",
            "SELECT MIN(at) FROM (SELECT MIN(next_fire_at) AS at FROM sla_clocks WHERE next_fire_at IS NOT NULL
                                UNION ALL SELECT MIN(fire_at) FROM conversation_timers)",
        ),
        (
            "fire_sla",
            "SELECT conversation_id, kind FROM sla_clocks
             WHERE next_fire_at IS NOT NULL AND next_fire_at <= 0 ORDER BY next_fire_at LIMIT 256",
        ),
    ];
    let connection = read_only(database)?;
    queries
        .into_iter()
        .map(|(name, sql)| {
            let mut statement = connection.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
            let plan = statement
                .query_map([], |row| row.get::<_, String>(3))?
                .collect::<Result<_, _>>()?;
            Ok((name, plan))
        })
        .collect()
}
