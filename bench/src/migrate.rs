//! Migrate: the scale scenario's desk (a million messages by default) seeded on SQLite,
//! moved to a fresh database of the run's PostgreSQL cluster by the real
//! `switchboard migrate`, timed from the command's start to its exit, its per-table counts
//! checked; then a daemon started on the migrated desk and queried with the scale
//! scenario's list and detail requests, with the token of the agent made on SQLite.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use serde_json::{Value, json};

use crate::daemon::{Daemon, sqlite_url};
use crate::desk::{Desk, Postgres, Store};
use crate::load::{self, LoadResult};
use crate::report::load_json;
use crate::scale::{AGENTS, MESSAGES_PER_CONVERSATION, check_seed, detail_paths, list_paths, seed};
use crate::workloads::QueueQueries;

/// `(table, rows, seconds)`.
pub type Tables = Vec<(String, u64, f64)>;

pub struct MigrateFigures {
    pub messages: u64,
    pub conversations: u64,
    /// The SQLite file migrated, in bytes.
    pub source_bytes: u64,
    /// `(table, rows, seconds)` as `switchboard migrate` printed them (read = in PostgreSQL).
    pub tables: Tables,
    /// Every table's rows.
    pub rows: u64,
    /// `switchboard migrate` from its start to its exit (opening both sides, the copy, the
    /// commit, the ANALYZE after it).
    pub seconds: f64,
    /// The command's own figure: from its first check to the commit.
    pub copy_seconds: f64,
    /// Of that, building the secondary indexes and checking the foreign keys after the copy.
    pub checked_seconds: f64,
    pub list: LoadResult,
    pub detail: LoadResult,
    pub peak_rss_mib: f64,
}

impl MigrateFigures {
    pub fn rows_per_second(&self) -> f64 {
        self.rows as f64 / self.seconds
    }

    pub fn to_json(&self) -> Value {
        json!({
            "messages": self.messages,
            "conversations": self.conversations,
            "source_bytes": self.source_bytes,
            "tables": self
                .tables
                .iter()
                .map(|(table, rows, seconds)| json!({"table": table, "rows": rows, "seconds": seconds}))
                .collect::<Vec<_>>(),
            "rows": self.rows,
            "seconds": self.seconds,
            "copy_seconds": self.copy_seconds,
            "checked_seconds": self.checked_seconds,
            "rows_per_second": self.rows_per_second().round(),
            "list": load_json(&self.list),
            "detail": load_json(&self.detail),
            "peak_rss_mib": self.peak_rss_mib,
        })
    }

    /// The report's rows: the migration, then the queries on the migrated desk.
    pub fn lines(&self) -> Vec<String> {
        let mut lines = vec![format!(
            "{:<34} {} rows ({} messages, {:.0} MiB of SQLite) in {:.1} s: {:.0} rows/s (copy and commit {:.1} s, \
             of which indexes and foreign keys {:.1} s)",
            "migrate: SQLite to PostgreSQL",
            self.rows,
            self.messages,
            self.source_bytes as f64 / 1024.0 / 1024.0,
            self.seconds,
            self.rows_per_second(),
            self.copy_seconds,
            self.checked_seconds
        )];
        for (name, load) in [
            ("migrated: list queries", &self.list),
            ("migrated: detail queries", &self.detail),
        ] {
            lines.push(crate::report::row(name, load, self.peak_rss_mib));
        }
        lines
    }
}

pub async fn run(
    binary: &Path,
    postgres: &Postgres,
    messages: u64,
    duration: Duration,
) -> anyhow::Result<MigrateFigures> {
    let conversations = (messages / MESSAGES_PER_CONVERSATION).max(1);
    let messages = conversations * MESSAGES_PER_CONVERSATION;
    // Every seeded reply is already delivered: nothing is sent to this address.
    let callback = "http://127.0.0.1:9/unused";
    let mut desk = Desk::start(binary, Store::Sqlite, postgres, callback, "").await?;
    let token = desk.first().agent("bench", "support")?;
    desk.stop()?;
    let database = desk.sqlite().context("the desk is on SQLite")?;
    let seeding = database.clone();
    tokio::task::spawn_blocking(move || seed(&seeding, conversations)).await??;
    let source_bytes = std::fs::metadata(&database)?.len();

    let cluster = postgres.cluster().await;
    let url = cluster.fresh_database().await;
    let started = Instant::now();
    let output = Command::new(binary)
        .args(["migrate", "--from", &sqlite_url(&database), "--to", &url])
        .output()
        .context("running switchboard migrate")?;
    let seconds = started.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "switchboard migrate failed: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let (tables, copy_seconds, checked_seconds) = printed(&stdout)?;
    let rows = tables.iter().map(|(_, rows, _)| rows).sum();
    let messages_copied = tables
        .iter()
        .find(|(table, _, _)| table == "messages")
        .map(|(_, rows, _)| *rows);
    ensure!(
        messages_copied == Some(messages),
        "migrate copied {messages_copied:?} messages of {messages}: {stdout}"
    );

    let dir = tempfile::tempdir()?;
    let daemon = Daemon::start_at(binary, dir.path(), &url, callback, "").await?;
    let address = daemon.process.address;
    let host = address.to_string();
    let list_paths = list_paths(conversations);
    check_seed(address, &host, &token, &list_paths, conversations).await?;
    let list = load::run(
        address,
        AGENTS,
        duration,
        Arc::new(QueueQueries {
            host: host.clone(),
            token: token.clone(),
            paths: list_paths,
        }),
    )
    .await;
    let detail = load::run(
        address,
        AGENTS,
        duration,
        Arc::new(QueueQueries {
            host,
            token,
            paths: detail_paths(conversations),
        }),
    )
    .await;
    let peak_rss_mib = daemon.process.rss_mib().1;
    daemon.process.stop()?;
    // Its autovacuum and checkpoint writes stay out of the next scenario's figures.
    let name = url.rsplit('/').next().context("a database URL")?;
    cluster.psql("postgres", &format!("DROP DATABASE {name}")).await;
    cluster.psql("postgres", "CHECKPOINT").await;
    Ok(MigrateFigures {
        messages,
        conversations,
        source_bytes,
        tables,
        rows,
        seconds,
        copy_seconds,
        checked_seconds,
        list,
        detail,
        peak_rss_mib,
    })
}

/// The tables' rows, the copy's seconds and the seconds of its indexes and foreign keys
/// from migrate's output, each table's rows read checked equal to its rows in PostgreSQL
/// (migrate checks too; this is the benchmark not taking its word).
fn printed(stdout: &str) -> anyhow::Result<(Tables, f64, f64)> {
    let mut tables = Vec::new();
    let mut copy_seconds = None;
    let mut checked_seconds = None;
    for line in stdout.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words[..] {
            [table, read, "read", stored, "in", "PostgreSQL", seconds, "s"] => {
                ensure!(read == stored, "{table}: {read} rows read, {stored} in PostgreSQL");
                tables.push((table.to_owned(), read.parse()?, seconds.parse()?));
            }
            ["migrated", ..] => {
                // "migrated N rows of M tables in S s (…; indexes built and foreign keys
                // checked in C s); …": the numbers after the first and the last "in".
                let after = |at: Option<usize>| {
                    at.and_then(|at| words.get(at + 1))
                        .and_then(|seconds| seconds.parse().ok())
                };
                copy_seconds = after(words.iter().position(|word| *word == "in"));
                checked_seconds = after(words.iter().rposition(|word| *word == "in"));
            }
            _ => bail!("unexpected line from switchboard migrate: {line:?}"),
        }
    }
    let closing = "no closing line with the times from switchboard migrate";
    Ok((
        tables,
        copy_seconds.context(closing)?,
        checked_seconds.context(closing)?,
    ))
}
