//! The scenarios, each on a fresh daemon process and store (the in-process ones on a fresh store).

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::Full;
use hyper::Request;
use serde_json::json;
use switchboard_connector_webhook::Secret;

use crate::Options;
use crate::daemon::{Daemon, Process, SECRET, wait_ready};
use crate::desk::{CpuFigures, Desk, Postgres, ServerCounters, Store};
use crate::load::{self, LoadResult, Workload};
use crate::receiver::Receiver;
use crate::report::Report;
use crate::workloads::{CustomerMessages, QueueQueries, Senders, fifty_rules};

pub const CLIENT_COUNTS: [usize; 4] = [1, 16, 64, 256];
/// Offered rates for the end-to-end scenario, messages per second: latency means
/// something only below saturation, where it does not grow with the run's length.
const END_TO_END_RATES: [f64; 2] = [1_000.0, 3_000.0];
const WARMUP: Duration = Duration::from_secs(1);
/// Returning customers in the ingest and stream scenarios.
pub const CUSTOMER_BASE: u64 = 10_000;

pub async fn run_all(options: &Options, binary: &Path) -> anyhow::Result<Report> {
    let mut report = Report::new(options.seconds);
    // Started by the first scenario on PostgreSQL (`--store`), stopped at the end.
    let postgres = Postgres::default();
    if options.runs("ingest") {
        for &clients in &options.clients {
            let mut daemons = Vec::new();
            for &store in &options.stores {
                daemons.push((
                    store,
                    ingest_daemon(binary, store, &postgres, clients, options.duration()).await?,
                ));
            }
            let bare = if options.no_bare {
                None
            } else {
                Some(ingest_bare(clients, options.duration()).await?)
            };
            // The bare endpoint's row once, under the first store's.
            for (index, (store, daemon)) in daemons.iter().enumerate() {
                report.set_store(*store);
                report.ingest(clients, daemon, bare.as_ref().filter(|_| index == 0));
            }
            report.set_store(Store::Sqlite);
        }
    }
    if options.runs("mixed") {
        report.mixed(&mixed(binary, options.duration()).await?);
    }
    if options.runs("e2e") {
        for &store in &options.stores {
            report.set_store(store);
            for rate in END_TO_END_RATES {
                report.end_to_end(&end_to_end(binary, store, &postgres, options.duration(), Some(rate)).await?);
            }
            report.end_to_end(&end_to_end(binary, store, &postgres, options.duration(), None).await?);
        }
        report.set_store(Store::Sqlite);
    }
    if options.runs("scale") {
        for &store in &options.stores {
            let figures =
                crate::scale::run(binary, store, &postgres, options.scale_messages, options.duration()).await?;
            report.set_store(store);
            report.scale(&figures);
        }
        report.set_store(Store::Sqlite);
    }
    if options.runs("email") {
        report.email(&crate::email::run(binary, options.email_mails, options.email_live).await?);
    }
    if options.runs("telegram") {
        report.telegram(&crate::telegram::run(binary, options.telegram_replies, options.telegram_chats).await?);
    }
    if options.runs("routing") {
        report.routing(&crate::routing::run(options.duration()));
    }
    if options.runs("scheduler") {
        let conversations = options.scheduler_conversations;
        report.scheduler(&crate::scheduler::run(conversations, options.scheduler_idle_seconds).await?);
    }
    if options.runs("updates") {
        report.updates(&crate::updates::run(options.updates_conversations, options.duration()).await?);
    }
    if options.runs("outbound") {
        report.outbound(&crate::outbound::run(binary, options.outbound_messages, options.duration()).await?);
    }
    if options.runs("stream") {
        let figures =
            crate::stream::run(binary, options.stream_agents, options.stream_rate, options.duration()).await?;
        report.stream(&figures);
    }
    if options.runs("migrate") {
        let figures = crate::migrate::run(binary, &postgres, options.scale_messages, options.duration()).await?;
        report.migrate(&figures);
    }
    Ok(report)
}

/// Signed customer messages to the benchmark config's `shop` inbox.
pub fn messages(run: &str, address: std::net::SocketAddr, senders: Senders) -> CustomerMessages {
    CustomerMessages {
        run: run.to_owned(),
        host: address.to_string(),
        secret: Secret::parse(SECRET).expect("a valid secret"),
        senders,
    }
}

pub struct IngestFigures {
    pub load: LoadResult,
    pub idle_rss_mib: f64,
    pub peak_rss_mib: f64,
    /// Inbound messages in the store after the run, warm-up included.
    pub stored: u64,
    /// Acknowledged (202) messages, warm-up included.
    pub acknowledged: u64,
    /// Acknowledgement updates the callback receiver had by the end of the load.
    pub delivered: u64,
    /// Acknowledgement updates queued (one per new conversation), warm-up included.
    pub queued: u64,
    /// The store's growth: on PostgreSQL without the empty database's size.
    pub store_bytes: u64,
    /// The WAL's size at the end of the run: bounded by the checkpoints under load
    /// (SQLite; 0 on PostgreSQL).
    pub wal_bytes: u64,
    /// CPU time over the measured run (not the warm-up), per acknowledged message.
    pub cpu: CpuFigures,
    /// PostgreSQL's counters from before the warm-up until the daemons stopped
    /// ([`ServerCounters::between`]); `None` on SQLite.
    pub server: Option<serde_json::Value>,
}

async fn ingest_daemon(
    binary: &Path,
    store: Store,
    postgres: &Postgres,
    clients: usize,
    duration: Duration,
) -> anyhow::Result<IngestFigures> {
    let receiver = Receiver::start().await?;
    let mut desk = Desk::start(binary, store, postgres, &receiver.url(), "").await?;
    let addresses = desk.addresses();
    let address = addresses[0];
    let idle_rss_mib = desk.rss_mib();
    // A PostgreSQL database is several MiB before its first row: not counted per message.
    let empty_store_bytes = match desk.postgres_url() {
        Some(_) => desk.store_bytes().await?,
        None => 0,
    };
    let counters = desk.server_counters().await?;
    let warm = load::run_across(
        &addresses,
        clients,
        WARMUP,
        Arc::new(messages("warm", address, Senders::Base(CUSTOMER_BASE))),
    )
    .await;
    let cpu_before = desk.cpu();
    let run = load::run_across(
        &addresses,
        clients,
        duration,
        Arc::new(messages("run", address, Senders::Base(CUSTOMER_BASE))),
    )
    .await;
    let cpu = CpuFigures::between(&cpu_before, &desk.cpu(), run.accepted);
    let peak_rss_mib = desk.peak_rss_mib();
    // The daemon sends each new conversation's acknowledgement while it ingests: what it
    // delivered by the end of the load is work done beside the ingest rate.
    let delivered = receiver.acknowledged() as u64;
    // Checked before the daemon stops, which checkpoints and removes it.
    let wal_bytes = desk.sqlite().map_or(0, |database| {
        std::fs::metadata(format!("{}-wal", database.display())).map_or(0, |m| m.len())
    });
    desk.stop()?;
    let server = match (counters, desk.server_counters().await?) {
        (Some(before), Some(after)) => Some(ServerCounters::between(&before, &after, warm.accepted + run.accepted)),
        _ => None,
    };
    let stored = desk
        .count("SELECT COUNT(*) FROM messages WHERE direction = 'inbound'")
        .await?;
    let queued = desk
        .count("SELECT COUNT(*) FROM messages WHERE kind = 'status_update'")
        .await?;
    let store_bytes = desk.store_bytes().await? - empty_store_bytes;
    desk.finish().await?;
    Ok(IngestFigures {
        acknowledged: warm.accepted + run.accepted,
        load: run,
        idle_rss_mib,
        peak_rss_mib,
        stored,
        delivered,
        queued,
        store_bytes,
        wal_bytes,
        cpu,
        server,
    })
}

pub struct BareFigures {
    pub load: LoadResult,
    pub peak_rss_mib: f64,
}

async fn ingest_bare(clients: usize, duration: Duration) -> anyhow::Result<BareFigures> {
    let mut command = Command::new(std::env::current_exe()?);
    command.arg("bare-endpoint");
    let bare = Process::start(command)?;
    wait_ready(bare.address).await?;
    let address = bare.address;
    load::run(
        address,
        clients,
        WARMUP,
        Arc::new(messages("warm", address, Senders::Base(CUSTOMER_BASE))),
    )
    .await;
    let run = load::run(
        address,
        clients,
        duration,
        Arc::new(messages("run", address, Senders::Base(CUSTOMER_BASE))),
    )
    .await;
    let peak_rss_mib = bare.rss_mib().1;
    bare.stop()?;
    Ok(BareFigures {
        load: run,
        peak_rss_mib,
    })
}

pub struct MixedFigures {
    pub ingest: LoadResult,
    pub queries: LoadResult,
    pub peak_rss_mib: f64,
    pub base_conversations: u64,
}

/// 80 % of messages from returning customers (joining their open conversation), 20 %
/// from new ones (a conversation routed through 50 rules), while agents poll queues.
async fn mixed(binary: &Path, duration: Duration) -> anyhow::Result<MixedFigures> {
    const BASE: u64 = 2_000;
    const INGEST_CLIENTS: usize = 64;
    const AGENTS: usize = 4;
    // Two hundred agents refreshing their queue every second: more than a large desk,
    // and a fixed load, so the ingest figure does not depend on how fast queries return.
    const AGENT_QUERIES_PER_SECOND: f64 = 200.0;
    let dir = tempfile::tempdir()?;
    let receiver = Receiver::start().await?;
    let daemon = Daemon::start(binary, dir.path(), &receiver.url(), &fifty_rules()).await?;
    let address = daemon.process.address;
    let token = daemon.agent("bench", "support")?;
    // The returning customers' conversations exist before the measurement: seeded until
    // twice as many messages as customers were taken (all but about 14 % of customers
    // have written by then), however fast the daemon under test is.
    let seeding = Instant::now();
    let mut seeded = 0;
    for round in 0.. {
        if seeded >= BASE * 2 {
            break;
        }
        if seeding.elapsed() > Duration::from_secs(120) {
            bail!("seeding the mixed scenario took over 2 minutes ({seeded} messages)");
        }
        let run = format!("seed{round}");
        seeded += load::run(
            address,
            INGEST_CLIENTS,
            Duration::from_secs(1),
            Arc::new(messages(&run, address, Senders::Base(BASE))),
        )
        .await
        .accepted;
    }
    let base_conversations = BASE;
    let ingest = load::run(
        address,
        INGEST_CLIENTS,
        duration,
        Arc::new(messages(
            "mixed",
            address,
            Senders::Mixed {
                new_per_mille: 200,
                base: BASE,
            },
        )),
    );
    let queue_paths = [
        "/api/v1/conversations?team=billing&status=open",
        "/api/v1/conversations?team=support&status=open",
        "/api/v1/conversations?team=technical&status=open,pending",
        "/api/v1/conversations?assignee=none&status=open&limit=50",
        "/api/v1/conversations",
    ];
    let queries = load::run_paced(
        address,
        AGENTS,
        duration,
        AGENT_QUERIES_PER_SECOND,
        Arc::new(QueueQueries {
            host: address.to_string(),
            token,
            paths: queue_paths.map(String::from).to_vec(),
        }),
    );
    let (ingest, queries) = tokio::join!(ingest, queries);
    let peak_rss_mib = daemon.process.rss_mib().1;
    daemon.process.stop()?;
    Ok(MixedFigures {
        ingest,
        queries,
        peak_rss_mib,
        base_conversations,
    })
}

pub struct EndToEndFigures {
    /// Messages per second offered; `None` for as fast as the daemon answers.
    pub offered_per_second: Option<f64>,
    pub load: LoadResult,
    /// From sending the message to the acknowledgement's arrival at the receiver.
    pub latency_us: Histogram<u64>,
    pub missing: u64,
    /// Acknowledgements delivered per second, from the run's start to the last arrival.
    pub delivered_per_second: f64,
    /// CPU time from the run's start until the last acknowledgement arrived, per message.
    pub cpu: CpuFigures,
    /// PostgreSQL's counters over the run and the deliveries; `None` on SQLite.
    pub server: Option<serde_json::Value>,
}

/// Every message opens a conversation; its acknowledgement goes to the receiver.
struct Timed {
    inner: CustomerMessages,
    sent: Mutex<Vec<(i64, Instant)>>,
}

impl Workload for Timed {
    fn request(&self, client: usize, seq: u64) -> Request<Full<Bytes>> {
        self.inner.request(client, seq)
    }

    fn accepted(&self, status: hyper::StatusCode) -> bool {
        self.inner.accepted(status)
    }

    fn on_accepted(&self, started: Instant, body: &Bytes) {
        if let Some(conversation) = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|b| b["conversation_id"].as_i64())
        {
            self.sent.lock().unwrap().push((conversation, started));
        }
    }
}

async fn end_to_end(
    binary: &Path,
    store: Store,
    postgres: &Postgres,
    duration: Duration,
    offered_per_second: Option<f64>,
) -> anyhow::Result<EndToEndFigures> {
    const CLIENTS: usize = 16;
    let receiver = Receiver::start().await?;
    let mut desk = Desk::start(binary, store, postgres, &receiver.url(), "").await?;
    let addresses = desk.addresses();
    let workload = Arc::new(Timed {
        inner: messages("e2e", addresses[0], Senders::AllNew),
        sent: Mutex::new(Vec::new()),
    });
    let workload_ref = Arc::clone(&workload) as Arc<dyn Workload>;
    let counters = desk.server_counters().await?;
    let cpu_before = desk.cpu();
    let run_started = Instant::now();
    let run = match offered_per_second {
        Some(rate) => load::run_paced_across(&addresses, CLIENTS, duration, rate, workload_ref).await,
        None => load::run_across(&addresses, CLIENTS, duration, workload_ref).await,
    };
    let expected = workload.sent.lock().unwrap().len();
    let started = Instant::now();
    while receiver.acknowledged() < expected && started.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let cpu = CpuFigures::between(&cpu_before, &desk.cpu(), run.accepted);
    desk.stop()?;
    let server = match (counters, desk.server_counters().await?) {
        (Some(before), Some(after)) => Some(ServerCounters::between(&before, &after, run.accepted)),
        _ => None,
    };
    desk.finish().await?;
    let arrivals = receiver.received.acknowledged.lock().unwrap();
    let mut latency_us = load::histogram();
    let mut missing = 0;
    for (conversation, sent) in workload.sent.lock().unwrap().iter() {
        match arrivals.get(conversation) {
            Some(arrived) => latency_us.saturating_record(arrived.duration_since(*sent).as_micros() as u64),
            None => missing += 1,
        }
    }
    // The dispatcher's pace over the run: from the first message to the last arrival.
    let delivered_per_second = arrivals.values().max().map_or(0.0, |last| {
        arrivals.len() as f64 / last.duration_since(run_started).as_secs_f64()
    });
    Ok(EndToEndFigures {
        offered_per_second,
        load: run,
        latency_us,
        missing,
        delivered_per_second,
        cpu,
        server,
    })
}

/// The machine the figures come from.
pub fn machine() -> serde_json::Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_gib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.split_whitespace().next()?.parse::<f64>().ok())
        .map(|kib| (kib / 1024.0 / 1024.0 * 10.0).round() / 10.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_owned();
    let disk = Command::new("df")
        .args(["-h", "--output=source,fstype", "/tmp"])
        .output()
        .ok()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .nth(1)
                .unwrap_or_default()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        });
    json!({"cpu": model, "cores": cores, "memory_gib": memory_gib, "kernel": kernel, "temp_dir_filesystem": disk})
}
