//! The PostgreSQL store: several daemons on one database.
//!
//! - `tx`: the store's [`Tx`] on one pooled connection; units of work run there.
//! - `queries`: the read models, on the same pool.
//!
//! A unit of work runs on a blocking thread (`spawn_blocking`) in one `SERIALIZABLE`
//! transaction. The rules were written for SQLite, whose one writer applies units one
//! after another; serializable isolation gives the same guarantee between concurrent
//! units (and daemons): where two would interleave badly, PostgreSQL fails one with a
//! serialization failure, and it runs again from the start on what the other committed.
//! A commit waits for the WAL to reach the disk (`synchronous_commit` as the server
//! has it, `on` by default), so an acknowledged message survives a crash.

mod binary_copy;
mod queries;
mod tx;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool, Postgres};
use tokio::runtime::Handle;

use super::*;
use crate::store::config::StorageSettings;
use tx::PgTx;

/// How long a unit that keeps losing to concurrent ones is run again before the caller
/// hears of the conflict. PostgreSQL lets one of two conflicting transactions commit,
/// so under contention every retry makes progress; on a small database its predicate
/// locks are coarse (whole pages or tables) and conflicts frequent.
const RACE_PATIENCE: Duration = Duration::from_secs(10);

pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connects to the database at a `postgres://` URL and runs the migrations it has
    /// not seen yet. A wrong URL or an unreachable server fails here, naming the key.
    pub async fn open(settings: &StorageSettings) -> StoreResult<PgStore> {
        let options = PgConnectOptions::from_str(&settings.url)
            .map_err(|err| StoreError::Invalid {
                field: "storage.url",
                problem: format!("is not a PostgreSQL URL ({})", err),
            })?
            .application_name("switchboard")
            // Statements are logged by PostgreSQL if the operator wants them; at debug
            // level here they would bury the daemon's own log.
            .log_statements(tracing::log::LevelFilter::Trace)
            .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_secs(1));
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(settings.connect_timeout)
            .connect_with(options)
            .await
            .map_err(|err| StoreError::Invalid {
                field: "storage.url",
                problem: format!("cannot connect: {err}"),
            })?;
        let migrator = sqlx::migrate::Migrator::new(migrations::Embedded(MIGRATIONS)).await?;
        migrator.run(&pool).await?;
        Ok(PgStore { pool })
    }
}

/// The channel the schema's triggers notify (`migrations/postgres/0001_initial.sql`).
const CHANNEL: &str = "switchboard";

/// Hands every notification on [`CHANNEL`] to `on_change` until `stop`. After the
/// connection was lost (notifications meanwhile are gone), or a notification it does
/// not know, every worker is told to look again.
async fn listen(pool: PgPool, on_change: OnChange, stop: tokio_util::sync::CancellationToken) {
    let mut listener = loop {
        let connected = async {
            let mut listener = sqlx::postgres::PgListener::connect_with(&pool).await?;
            listener.listen(CHANNEL).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        tokio::select! {
            () = stop.cancelled() => return,
            connected = connected => match connected {
                Ok(listener) => break listener,
                Err(error) => {
                    tracing::warn!(%error, "cannot listen for other daemons' changes; trying again");
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            },
        }
    };
    loop {
        let received = tokio::select! {
            () = stop.cancelled() => return,
            received = listener.try_recv() => received,
        };
        match received {
            Ok(Some(notification)) => on_change(match notification.payload() {
                "outbox" => Some(Change::Outbox),
                "events" => Some(Change::Events),
                "clocks" => Some(Change::Clocks),
                "stream" => Some(Change::Stream),
                _ => None,
            }),
            // The connection was lost; the next call connects again.
            Ok(None) => on_change(None),
            Err(error) => {
                tracing::warn!(%error, "listening for other daemons' changes failed; trying again");
                on_change(None);
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    }
}

/// PostgreSQL's schema versions (see `store::migrations`).
const MIGRATIONS: migrations::Versions = &[
    (
        1,
        "initial",
        include_str!("../../../migrations/postgres/0001_initial.sql"),
    ),
    (
        2,
        "stream order",
        include_str!("../../../migrations/postgres/0002_stream_order.sql"),
    ),
    (
        3,
        "contact merge",
        include_str!("../../../migrations/postgres/0003_contact_merge.sql"),
    ),
    (
        4,
        "search",
        include_str!("../../../migrations/postgres/0004_search.sql"),
    ),
    (
        5,
        "contact search",
        include_str!("../../../migrations/postgres/0005_contact_search.sql"),
    ),
    (
        6,
        "agent teams tokens audit",
        include_str!("../../../migrations/postgres/0006_agent_teams_tokens_audit.sql"),
    ),
    (
        7,
        "saved replies",
        include_str!("../../../migrations/postgres/0007_saved_replies.sql"),
    ),
    (
        8,
        "mentions",
        include_str!("../../../migrations/postgres/0008_mentions.sql"),
    ),
    (
        9,
        "sla events by team",
        include_str!("../../../migrations/postgres/0009_sla_events_by_team.sql"),
    ),
    (
        10,
        "report facts",
        include_str!("../../../migrations/postgres/0010_report_facts.sql"),
    ),
    (
        11,
        "agent languages",
        include_str!("../../../migrations/postgres/0011_agent_languages.sql"),
    ),
    (
        12,
        "channel contract",
        include_str!("../../../migrations/postgres/0012_channel_contract.sql"),
    ),
    (
        13,
        "outbox skipped index",
        include_str!("../../../migrations/postgres/0013_outbox_skipped_index.sql"),
    ),
    (
        14,
        "outbox parts sent",
        include_str!("../../../migrations/postgres/0014_outbox_parts_sent.sql"),
    ),
];

/// A connection that is put back into the pool only once its transaction is over: if a
/// unit of work panics mid-transaction, the connection is closed instead, and the
/// server rolls the transaction back.
struct Held {
    conn: Option<PoolConnection<Postgres>>,
    clean: bool,
}

impl Drop for Held {
    fn drop(&mut self) {
        if !self.clean
            && let Some(conn) = self.conn.take()
        {
            drop(conn.detach());
        }
    }
}

/// Whether a failure means "another transaction got there first; run again".
fn lost_race(error: &StoreError) -> bool {
    let Some(cause) = error.cause() else {
        return false;
    };
    cause
        .downcast_ref::<sqlx::Error>()
        .and_then(|err| err.as_database_error())
        .and_then(|err| err.code())
        .is_some_and(|code| matches!(code.as_ref(), "40001" | "40P01"))
}

fn statement(runtime: &Handle, conn: &mut sqlx::PgConnection, sql: &'static str) -> StoreResult<()> {
    runtime.block_on(sqlx::query(sql).execute(conn))?;
    Ok(())
}

/// Runs one unit of work in its own transaction on this (blocking) thread, again from
/// the start when it lost a race to a concurrent one.
fn run_unit(runtime: &Handle, pool: &PgPool, work: &Work) -> Result<Done, UnitError> {
    let mut held = Held {
        conn: Some(runtime.block_on(pool.acquire()).map_err(StoreError::from)?),
        clean: false,
    };
    let conn = held.conn.as_mut().expect("held until dropped");
    let started = std::time::Instant::now();
    let mut attempt: u32 = 0;
    let outcome = loop {
        attempt += 1;
        let patient = started.elapsed() < RACE_PATIENCE;
        statement(runtime, conn, "BEGIN ISOLATION LEVEL SERIALIZABLE")?;
        let mut tx = PgTx::new(conn, runtime);
        let outcome = work(&mut tx);
        let failed = tx.failed.take();
        let retry = failed.as_ref().is_some_and(lost_race) && patient;
        match (outcome, failed) {
            (Ok(done), None) => match statement(runtime, conn, "COMMIT") {
                Ok(()) => break Ok(done),
                Err(error) if lost_race(&error) && patient => {}
                Err(error) => break Err(UnitError::Store(error)),
            },
            (outcome, failed) => {
                statement(runtime, conn, "ROLLBACK")?;
                if retry {
                    // fall through to run again
                } else if let Err(refused) = outcome {
                    break Err(UnitError::Work(refused));
                } else if let Some(error) = failed {
                    // The work went on past a failed statement; PostgreSQL would have
                    // rolled back its commit without a word.
                    break Err(UnitError::Store(error));
                }
            }
        }
        // Losers of a race back off, at random and longer each time (up to 50 ms), so
        // they do not collide again.
        let ceiling = (200u64 << attempt.min(8)).min(50_000);
        std::thread::sleep(Duration::from_micros(fastrand::u64(ceiling / 2..=ceiling)));
    };
    held.clean = true;
    outcome
}

#[async_trait]
impl Store for PgStore {
    async fn ping(&self) -> StoreResult<()> {
        // A write committed, as the desk's writes are: a full disk or a read-only
        // standby fails here.
        sqlx::query(
            "INSERT INTO health_probe (id, writes) VALUES (1, 1)
             ON CONFLICT (id) DO UPDATE SET writes = health_probe.writes + 1",
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    fn exclusive(&self) -> bool {
        false
    }

    fn watch(&self, on_change: OnChange, stop: tokio_util::sync::CancellationToken) {
        tokio::spawn(listen(self.pool.clone(), on_change, stop));
    }

    async fn run(&self, work: Work) -> Result<Done, UnitError> {
        let pool = self.pool.clone();
        let runtime = Handle::current();
        tokio::task::spawn_blocking(move || run_unit(&runtime, &pool, &work))
            .await
            .unwrap_or_else(|panicked| {
                Err(UnitError::Store(StoreError::fatal(format!(
                    "a unit of work panicked: {panicked}"
                ))))
            })
    }

    async fn run_in_order(&self, works: Units) -> Vec<Result<Done, UnitError>> {
        // One after another, each committed before the next starts: a later message of
        // the batch sees the one before it.
        let pool = self.pool.clone();
        let runtime = Handle::current();
        tokio::task::spawn_blocking(move || works.map(|work| run_unit(&runtime, &pool, &work)).collect())
            .await
            .unwrap_or_else(|panicked| {
                vec![Err(UnitError::Store(StoreError::fatal(format!(
                    "a unit of work panicked: {panicked}"
                ))))]
            })
    }

    async fn next_sla_fire(&self) -> StoreResult<Option<i64>> {
        queries::next_sla_fire(&self.pool).await
    }

    async fn channel_cursor(&self, inbox_id: i64, name: &str) -> StoreResult<Option<String>> {
        queries::channel_cursor(&self.pool, inbox_id, name).await
    }

    async fn scrub(&self) -> StoreResult<()> {
        // Deleted and overwritten rows stay in their pages until vacuumed; VACUUM makes
        // their space free for reuse. (The WAL and the operator's backups keep earlier
        // versions until they are recycled: see docs/PRIVACY.md.)
        for table in [
            "messages",
            "attachments",
            "blobs",
            "contacts",
            "contact_identities",
            "conversations",
            "events",
        ] {
            sqlx::query(&format!("VACUUM {table}")).execute(&self.pool).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_migration_file_is_listed() {
        crate::store::migrations::assert_every_file_listed("postgres", super::MIGRATIONS);
    }
}
