//! Where a scenario's daemons keep their data (`--store`), and what a setup spends.
//!
//! - `sqlite`: one daemon on an SQLite file in the scenario's temp dir (the default).
//! - `postgres`: one daemon on a fresh database of a private PostgreSQL cluster on loopback
//!   whose commits wait for the disk (`fsync=on`, `synchronous_commit=on`), as a
//!   production server's do; the cluster is started once per run, when first needed.
//! - `postgres-2`: two daemons on one such database, each with its own config and port;
//!   the load generator's clients alternate between them.
//!
//! A [`Desk`] is one scenario's daemons and store. Its [`CpuSample`]s give the CPU time
//! of the daemons and of every PostgreSQL server process (the postmaster and its
//! children), and its [`ServerCounters`] what PostgreSQL counted meanwhile: commits,
//! rollbacks, serialization failures (SQLSTATE 40001, from the server's log: the daemon
//! retries them without a word), WAL written and flushed.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use serde_json::{Value, json};
use sqlx::Connection;
use switchboard_test_postgres::Cluster;

use crate::daemon::{Daemon, process_cpu_seconds, process_tree_cpu_seconds, sqlite_url};

/// The PostgreSQL server's settings over initdb's defaults: commits durable, as SQLite's
/// (`synchronous = FULL`) are in every scenario.
pub const DURABLE: [&str; 2] = ["fsync=on", "synchronous_commit=on"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Store {
    Sqlite,
    /// This many daemons on one PostgreSQL database.
    Postgres {
        daemons: usize,
    },
}

impl Store {
    pub const NAMES: &str = "sqlite, postgres, postgres-2";

    pub fn parse(name: &str) -> anyhow::Result<Store> {
        Ok(match name {
            "sqlite" => Store::Sqlite,
            "postgres" => Store::Postgres { daemons: 1 },
            "postgres-2" => Store::Postgres { daemons: 2 },
            other => bail!("--store: no store `{other}`; there are {}", Store::NAMES),
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Store::Sqlite => "sqlite",
            Store::Postgres { daemons: 1 } => "postgres",
            Store::Postgres { .. } => "postgres-2",
        }
    }

    /// What a commit means on this store, for the report.
    pub fn durability(self) -> &'static str {
        match self {
            Store::Sqlite => {
                "SQLite WAL, synchronous=FULL: every acknowledged message is on disk (fsync) before its 202"
            }
            Store::Postgres { .. } => {
                "PostgreSQL on loopback, fsync=on, synchronous_commit=on (WAL flushed before COMMIT returns, so before the 202); SERIALIZABLE units of work"
            }
        }
    }
}

/// The run's PostgreSQL cluster, started by the first scenario that needs it and stopped
/// when the benchmark ends.
#[derive(Default)]
pub struct Postgres {
    cluster: tokio::sync::OnceCell<Cluster>,
}

impl Postgres {
    /// The cluster, started with [`DURABLE`] and any settings in
    /// `SWITCHBOARD_BENCH_POSTGRES_SETTINGS` (space-separated `name=value`, for profiling:
    /// `shared_preload_libraries=pg_stat_statements log_lock_waits=on`).
    pub async fn cluster(&self) -> &Cluster {
        self.cluster
            .get_or_init(|| async {
                let extra = std::env::var("SWITCHBOARD_BENCH_POSTGRES_SETTINGS").unwrap_or_default();
                let settings: Vec<&str> = DURABLE.iter().copied().chain(extra.split_whitespace()).collect();
                let cluster = Cluster::start_with(&settings).await;
                eprintln!(
                    "PostgreSQL on 127.0.0.1:{} (postmaster {}) with {}",
                    cluster.port(),
                    cluster.postmaster(),
                    settings.join(" ")
                );
                cluster
            })
            .await
    }
}

/// One scenario's daemons on a fresh store.
pub struct Desk<'a> {
    pub daemons: Vec<Daemon>,
    /// Each daemon's config (and with SQLite the store): removed on drop.
    dirs: Vec<tempfile::TempDir>,
    /// The PostgreSQL database, when the store is one.
    database: Option<(&'a Cluster, String)>,
}

impl<'a> Desk<'a> {
    /// Starts the store's daemons one after another (the first creates the schema) on a
    /// fresh store, each answering on a port of its own.
    pub async fn start(
        binary: &Path,
        store: Store,
        postgres: &'a Postgres,
        callback_url: &str,
        rules: &str,
    ) -> anyhow::Result<Desk<'a>> {
        let (count, database) = match store {
            Store::Sqlite => (1, None),
            Store::Postgres { daemons } => {
                let cluster = postgres.cluster().await;
                (daemons, Some((cluster, cluster.fresh_database().await)))
            }
        };
        let mut desk = Desk {
            daemons: Vec::new(),
            dirs: Vec::new(),
            database,
        };
        for _ in 0..count {
            let dir = tempfile::tempdir()?;
            let storage_url = match &desk.database {
                Some((_, url)) => url.clone(),
                None => sqlite_url(&dir.path().join("switchboard.db")),
            };
            let daemon = Daemon::start_at(binary, dir.path(), &storage_url, callback_url, rules).await?;
            desk.daemons.push(daemon);
            desk.dirs.push(dir);
        }
        Ok(desk)
    }

    /// Starts the daemons again on their configs and the store as it is.
    pub async fn restart(&mut self, binary: &Path) -> anyhow::Result<()> {
        self.stop()?;
        for dir in &self.dirs {
            self.daemons.push(Daemon::start_existing(binary, dir.path()).await?);
        }
        Ok(())
    }

    /// Stops every daemon (SIGTERM, a clean exit).
    pub fn stop(&mut self) -> anyhow::Result<()> {
        for daemon in self.daemons.drain(..) {
            daemon.process.stop()?;
        }
        Ok(())
    }

    pub fn first(&self) -> &Daemon {
        &self.daemons[0]
    }

    pub fn addresses(&self) -> Vec<SocketAddr> {
        self.daemons.iter().map(|daemon| daemon.process.address).collect()
    }

    /// The SQLite file, when the store is one.
    pub fn sqlite(&self) -> Option<PathBuf> {
        match self.database {
            None => Some(self.dirs[0].path().join("switchboard.db")),
            Some(_) => None,
        }
    }

    /// The largest peak RSS of the daemons, in MiB.
    pub fn peak_rss_mib(&self) -> f64 {
        self.daemons
            .iter()
            .map(|daemon| daemon.process.rss_mib().1)
            .fold(0.0, f64::max)
    }

    /// The smallest current RSS of the daemons, in MiB (at the start: their idle RSS).
    pub fn rss_mib(&self) -> f64 {
        self.daemons
            .iter()
            .map(|daemon| daemon.process.rss_mib().0)
            .fold(f64::INFINITY, f64::min)
    }

    pub fn cpu(&self) -> CpuSample {
        CpuSample {
            at: Instant::now(),
            daemons: self.daemons.iter().map(|daemon| daemon.process.cpu_seconds()).sum(),
            postgres: self
                .database
                .as_ref()
                .map_or(0.0, |(cluster, _)| process_tree_cpu_seconds(cluster.postmaster())),
            generator: process_cpu_seconds("self"),
            machine: MachineTicks::read(),
        }
    }

    /// A count (`SELECT COUNT(*) …`) in the store, read-only.
    pub async fn count(&self, sql: &str) -> anyhow::Result<u64> {
        let count: i64 = match &self.database {
            None => {
                let url = format!("{}?mode=ro", sqlite_url(&self.sqlite().expect("SQLite")));
                let mut connection = sqlx::SqliteConnection::connect(&url).await?;
                let count = sqlx::query_scalar(sql).fetch_one(&mut connection).await?;
                connection.close().await?;
                count
            }
            Some((_, url)) => {
                let mut connection = sqlx::PgConnection::connect(url).await?;
                let count = sqlx::query_scalar(sql).fetch_one(&mut connection).await?;
                connection.close().await?;
                count
            }
        };
        Ok(count as u64)
    }

    /// The store's size on disk: the SQLite file, or the PostgreSQL database (tables,
    /// indexes, TOAST; not the WAL).
    pub async fn store_bytes(&self) -> anyhow::Result<u64> {
        match &self.database {
            None => Ok(std::fs::metadata(self.sqlite().expect("SQLite"))?.len()),
            Some(_) => self.count("SELECT pg_database_size(current_database())").await,
        }
    }

    /// The PostgreSQL database's URL, when the store is one.
    pub fn postgres_url(&self) -> Option<&str> {
        self.database.as_ref().map(|(_, url)| url.as_str())
    }

    /// What PostgreSQL has counted so far; `None` on SQLite. The server's statistics of
    /// a backend reach the counters when its transaction ends, at most a second late,
    /// and when it exits: read them after the daemons stopped for a whole window.
    pub async fn server_counters(&self) -> anyhow::Result<Option<ServerCounters>> {
        let Some((cluster, url)) = &self.database else {
            return Ok(None);
        };
        let mut connection = sqlx::PgConnection::connect(url).await?;
        let (commits, rollbacks, deadlocks): (i64, i64, i64) = sqlx::query_as(
            "SELECT xact_commit, xact_rollback, deadlocks FROM pg_stat_database WHERE datname = current_database()",
        )
        .fetch_one(&mut connection)
        .await?;
        let (wal_bytes, wal_writes, wal_syncs): (i64, i64, i64) =
            sqlx::query_as("SELECT wal_bytes::bigint, wal_write, wal_sync FROM pg_stat_wal")
                .fetch_one(&mut connection)
                .await?;
        connection.close().await?;
        let log = cluster.log();
        Ok(Some(ServerCounters {
            commits,
            rollbacks,
            deadlocks,
            wal_bytes,
            wal_writes,
            wal_syncs,
            serialization_failures: log.matches("could not serialize access").count() as i64,
            log_bytes: log.len(),
        }))
    }

    /// Stops the daemons and drops the PostgreSQL database, so that its autovacuum and
    /// checkpoint writes do not land in the next scenario's figures.
    pub async fn finish(mut self) -> anyhow::Result<()> {
        self.stop()?;
        if let Some((cluster, url)) = &self.database {
            let name = url.rsplit('/').next().context("a database URL")?;
            cluster.psql("postgres", &format!("DROP DATABASE {name}")).await;
            cluster.psql("postgres", "CHECKPOINT").await;
        }
        Ok(())
    }
}

/// The machine's CPU ticks from /proc/stat: what every process used (ours and the other
/// engineers' builds alike), and the time no core had work (idle, or waiting for I/O).
#[derive(Clone, Copy, Default)]
pub struct MachineTicks {
    busy: u64,
    idle: u64,
    iowait: u64,
}

impl MachineTicks {
    fn read() -> MachineTicks {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let fields: Vec<u64> = stat
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .skip(1)
            .filter_map(|field| field.parse().ok())
            .collect();
        let field = |index: usize| fields.get(index).copied().unwrap_or(0);
        // user nice system idle iowait irq softirq steal (guest time is inside user).
        MachineTicks {
            busy: field(0) + field(1) + field(2) + field(5) + field(6) + field(7),
            idle: field(3),
            iowait: field(4),
        }
    }
}

/// CPU time so far, in seconds, for [`CpuFigures::between`].
#[derive(Clone, Copy)]
pub struct CpuSample {
    at: Instant,
    daemons: f64,
    postgres: f64,
    /// This process: the load generator and the callback receiver.
    generator: f64,
    machine: MachineTicks,
}

/// CPU time per message over a window.
pub struct CpuFigures {
    pub messages: u64,
    pub seconds: f64,
    pub daemons: f64,
    pub postgres: f64,
    pub generator: f64,
    /// Everything the machine ran, these processes and everybody else's.
    pub machine_busy: f64,
    pub machine_iowait: f64,
    pub machine_idle: f64,
}

impl CpuFigures {
    pub fn between(before: &CpuSample, after: &CpuSample, messages: u64) -> CpuFigures {
        let ticks = |f: fn(&MachineTicks) -> u64| (f(&after.machine) - f(&before.machine)) as f64 / 100.0;
        CpuFigures {
            messages,
            seconds: after.at.duration_since(before.at).as_secs_f64(),
            daemons: after.daemons - before.daemons,
            postgres: after.postgres - before.postgres,
            generator: after.generator - before.generator,
            machine_busy: ticks(|m| m.busy),
            machine_iowait: ticks(|m| m.iowait),
            machine_idle: ticks(|m| m.idle),
        }
    }

    fn per_message_us(&self, seconds: f64) -> f64 {
        seconds / self.messages.max(1) as f64 * 1e6
    }

    pub fn daemons_us(&self) -> f64 {
        self.per_message_us(self.daemons)
    }

    pub fn postgres_us(&self) -> f64 {
        self.per_message_us(self.postgres)
    }

    /// CPU the machine spent on neither the daemons, PostgreSQL nor the load generator:
    /// other engineers' builds and tests on the shared machine, and the kernel's own.
    pub fn others(&self) -> f64 {
        (self.machine_busy - self.daemons - self.postgres - self.generator).max(0.0)
    }

    pub fn to_json(&self) -> Value {
        let round = |value: f64| (value * 100.0).round() / 100.0;
        json!({
            "messages": self.messages,
            "seconds": round(self.seconds),
            "daemons_cpu_seconds": round(self.daemons),
            "postgres_cpu_seconds": round(self.postgres),
            "load_generator_cpu_seconds": round(self.generator),
            "daemons_us_per_message": round(self.daemons_us()),
            "postgres_us_per_message": round(self.postgres_us()),
            "total_us_per_message": round(self.daemons_us() + self.postgres_us()),
            "machine_busy_cpu_seconds": round(self.machine_busy),
            "machine_other_cpu_seconds": round(self.others()),
            "machine_iowait_seconds": round(self.machine_iowait),
            "machine_idle_seconds": round(self.machine_idle),
        })
    }

    /// One line for the table.
    pub fn summary(&self) -> String {
        format!(
            "daemon {:.0} + postgres {:.0} = {:.0} us/msg; of {:.1} core-s: daemon {:.1}, pg {:.1}, load {:.1}, others {:.1}, iowait {:.1}, idle {:.1}",
            self.daemons_us(),
            self.postgres_us(),
            self.daemons_us() + self.postgres_us(),
            self.seconds * std::thread::available_parallelism().map_or(1, |n| n.get()) as f64,
            self.daemons,
            self.postgres,
            self.generator,
            self.others(),
            self.machine_iowait,
            self.machine_idle,
        )
    }
}

/// PostgreSQL's cumulative counters for a desk's database (WAL: the whole cluster).
#[derive(Clone, Copy)]
pub struct ServerCounters {
    commits: i64,
    rollbacks: i64,
    deadlocks: i64,
    wal_bytes: i64,
    wal_writes: i64,
    wal_syncs: i64,
    /// "could not serialize access" errors in the server's log so far (every 40001 is
    /// logged at ERROR); `log_bytes` is the log's length when counted.
    serialization_failures: i64,
    log_bytes: usize,
}

impl ServerCounters {
    /// What happened between two readings, per message where it says more.
    pub fn between(before: &ServerCounters, after: &ServerCounters, messages: u64) -> Value {
        let per = |count: i64| (count as f64 / messages.max(1) as f64 * 100.0).round() / 100.0;
        let commits = after.commits - before.commits;
        let syncs = after.wal_syncs - before.wal_syncs;
        json!({
            "messages": messages,
            "commits": commits,
            "commits_per_message": per(commits),
            "rollbacks": after.rollbacks - before.rollbacks,
            "serialization_failures_40001": after.serialization_failures - before.serialization_failures,
            "serialization_failures_per_message": per(after.serialization_failures - before.serialization_failures),
            "deadlocks": after.deadlocks - before.deadlocks,
            "wal_bytes_per_message": per(after.wal_bytes - before.wal_bytes).round(),
            "wal_writes": after.wal_writes - before.wal_writes,
            "wal_syncs": syncs,
            "commits_per_wal_sync": (commits as f64 / syncs.max(1) as f64 * 10.0).round() / 10.0,
            "server_log_bytes": after.log_bytes - before.log_bytes,
        })
    }

    /// One line for the table, from [`ServerCounters::between`]'s figures.
    pub fn summary(figures: &Value) -> String {
        format!(
            "{} commits/msg, {} commits per WAL flush, 40001 retries {} ({}/msg), rollbacks {}, {} WAL bytes/msg",
            figures["commits_per_message"],
            figures["commits_per_wal_sync"],
            figures["serialization_failures_40001"],
            figures["serialization_failures_per_message"],
            figures["rollbacks"],
            figures["wal_bytes_per_message"],
        )
    }
}
