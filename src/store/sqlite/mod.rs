//! The embedded SQLite store.
//!
//! - `writer`: the one thread that writes, committing concurrent writes in groups.
//! - `tx`: the store's [`Tx`] on that thread's connection: units of work run there.
//! - `queries`: the read models, through sqlx's async pool of read connections.
//! - `migrations`: the schema's versions, embedded.
//!
//! WAL journal with `synchronous = FULL`: a commit is on disk before its callers hear
//! back, so a message acknowledged to its sender survives a crash or a power cut. The
//! schema's migrations run through sqlx's migrator at open.

mod error;
mod migrations;
mod queries;
mod tx;
mod writer;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, SqliteConnection, SqlitePool};

use super::*;
pub(in crate::store) use error::database_error_class;
use tx::SqliteTx;
use writer::Writer;

/// Read connections: agents' list and detail queries run on them in parallel.
const READERS: u32 = 4;
/// How long a read waits for a lock another process holds.
pub(super) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

pub struct SqliteStore {
    reader: SqlitePool,
    /// Reports' long reads, through rusqlite.
    blocking: Arc<queries::reports::BlockingReaders>,
    /// Dropped last: its thread finishes queued writes and closes the file cleanly.
    writer: Writer,
}

impl SqliteStore {
    /// Opens (creating when missing) the database at a `sqlite://PATH` URL and runs the
    /// migrations it has not seen yet.
    pub async fn open(url: &str) -> StoreResult<SqliteStore> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|err| StoreError::Invalid {
                field: "storage.url",
                problem: format!("`{url}` is not a SQLite URL: {err}"),
            })?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let path = options.get_filename().to_owned();
        if let Some(folder) = path.parent().filter(|folder| !folder.as_os_str().is_empty()) {
            create_folder(folder)?;
        }
        let mut migrating = SqliteConnection::connect_with(&options).await?;
        migrations::migrator().await?.run(&mut migrating).await?;
        migrating.close().await?;
        let writer = Writer::open(&path)?;
        let reader = SqlitePoolOptions::new()
            .max_connections(READERS)
            .connect_with(options)
            .await?;
        Ok(SqliteStore {
            reader,
            writer,
            blocking: Arc::new(queries::reports::BlockingReaders::new(path.clone())),
        })
    }
}

/// Claims the database at a `sqlite://PATH` URL for one serving daemon, for as long as
/// the returned file is open: a lock on `PATH.serving` beside it. A second daemon on the
/// same file would send what the first has in flight and fire its clocks again (SQLite's
/// daemon assumes it is alone); it is refused with what to do instead. The CLI's
/// commands do not take it: they run beside the daemon. The OS drops the lock when the
/// process dies, so a crash never leaves the desk locked.
pub fn claim_for_serving(url: &str) -> StoreResult<Option<std::fs::File>> {
    let options = SqliteConnectOptions::from_str(url).map_err(|err| StoreError::Invalid {
        field: "storage.url",
        problem: format!("`{url}` is not a SQLite URL: {err}"),
    })?;
    let path = options.get_filename();
    if path.as_os_str().is_empty() || path.as_os_str() == ":memory:" {
        return Ok(None);
    }
    if let Some(folder) = path.parent().filter(|folder| !folder.as_os_str().is_empty()) {
        create_folder(folder)?;
    }
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".serving");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|err| StoreError::transient(format!("cannot open {}: {err}", Path::new(&lock_path).display())))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Invalid {
            field: "storage.url",
            problem: format!(
                "`{}` is served by another switchboard daemon already; SQLite takes one daemon \
                 (stop the other, or put several on PostgreSQL)",
                path.display()
            ),
        }),
        Err(std::fs::TryLockError::Error(err)) => Err(StoreError::transient(format!(
            "cannot lock {}: {err}",
            Path::new(&lock_path).display()
        ))),
    }
}

fn create_folder(folder: &Path) -> StoreResult<()> {
    std::fs::create_dir_all(folder)
        .map_err(|err| StoreError::transient(format!("cannot create the database folder {}: {err}", folder.display())))
}

/// A unit of work as a writer job: run on a [`SqliteTx`] over the writer's connection.
fn job(work: Work) -> impl Fn(&rusqlite::Connection) -> Result<Done, UnitError> + Send + 'static {
    move |conn| work(&mut SqliteTx::new(conn)).map_err(UnitError::Work)
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        queries::ping(&self.reader).await?;
        self.writer
            .write(|conn| {
                conn.execute(
                    "INSERT INTO health_probe (id, writes) VALUES (1, 1)
                     ON CONFLICT (id) DO UPDATE SET writes = writes + 1",
                    [],
                )?;
                Ok::<_, StoreError>(())
            })
            .await
    }

    fn exclusive(&self) -> bool {
        true
    }

    fn watch(&self, _on_change: OnChange, _stop: tokio_util::sync::CancellationToken) {}

    async fn run(&self, work: Work) -> Result<Done, UnitError> {
        self.writer.write(job(work)).await
    }

    async fn run_in_order(&self, works: Units) -> Vec<Result<Done, UnitError>> {
        // `write` queues its job when called, so the jobs reach the writer in this order,
        // commit in the same groups, and the writer works on the first while the next
        // ones are made.
        let pending: Vec<_> = works.map(|work| self.writer.write(job(work))).collect();
        let mut results = Vec::with_capacity(pending.len());
        for result in pending {
            results.push(result.await);
        }
        results
    }

    async fn next_sla_fire(&self) -> StoreResult<Option<i64>> {
        queries::next_sla_fire(&self.reader).await
    }

    async fn channel_cursor(&self, inbox_id: i64, name: &str) -> StoreResult<Option<String>> {
        queries::channel_cursor(&self.reader, inbox_id, name).await
    }

    async fn scrub(&self) -> StoreResult<()> {
        // The search index keeps what a change replaced in older segments until they
        // merge (positions of every trigram: the text could be pieced together again):
        // merged now, so only what stands is indexed; then the WAL, which holds the
        // freed pages' earlier versions.
        self.writer
            .write(|conn| {
                conn.execute_batch(
                    "INSERT INTO message_search (message_search) VALUES ('optimize');
                     INSERT INTO subject_search (subject_search) VALUES ('optimize');
                     INSERT INTO contact_search (contact_search) VALUES ('optimize');",
                )
                .map_err(StoreError::from)
            })
            .await?;
        self.writer.checkpoint().await
    }
}
