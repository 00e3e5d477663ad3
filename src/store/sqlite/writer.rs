//! The one thread that writes the SQLite file, committing in groups.
//!
//! Every write is a job sent to this thread. The thread takes all jobs waiting (up to
//! [`MAX_BATCH`]), runs each in a savepoint of one `BEGIN IMMEDIATE` transaction (a job
//! that fails rolls back to its savepoint and touches nothing else), commits once, and
//! only then answers each job. A caller therefore hears "done" only when its change is
//! on disk (`synchronous = FULL`), while one fsync serves every job that arrived during
//! the previous commit: the busier the daemon, the bigger the groups.
//!
//! Statements run here, on the thread that owns the connection. sqlx's SQLite driver
//! hands every statement to a worker thread and back, which costs about 50 µs a statement
//! on two cores (see `bench --bin sqlite-drivers`); here one costs 0.4 to 2 µs.

use std::future::Future;
use std::path::Path;
use std::sync::Mutex;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};

use crate::store::{StoreError, StoreResult};

/// The most jobs in one transaction: bounds how long any one commit holds the others.
const MAX_BATCH: usize = 512;
/// Statements the connection keeps prepared; every write statement of the store fits.
const STATEMENT_CACHE: usize = 128;
/// How long a write waits for another process (the CLI) holding the write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// WAL pages (4 KiB each, 16 MiB) after which a commit also copies the WAL into the
/// database. SQLite's default of 1000 checkpoints four times as often; larger costs a
/// longer pause each time. Measured with `switchboard-bench` (see BENCHMARKS.md).
const CHECKPOINT_PAGES: i64 = 4000;

/// One write waiting for a group transaction.
trait Job: Send {
    /// Runs the work, again when the group is retried; says whether it succeeded.
    fn run(&mut self, connection: &Connection) -> bool;
    /// Answers the caller: the work's result once the group committed, else the
    /// group's error.
    fn answer(self: Box<Self>, committed: Result<(), &StoreError>);
}

struct Pending<T, E, F> {
    work: F,
    result: Option<Result<T, E>>,
    reply: tokio::sync::oneshot::Sender<Result<T, E>>,
}

impl<T, E, F> Job for Pending<T, E, F>
where
    T: Send,
    E: From<StoreError> + Send,
    F: Fn(&Connection) -> Result<T, E> + Send,
{
    fn run(&mut self, connection: &Connection) -> bool {
        let result = (self.work)(connection);
        let succeeded = result.is_ok();
        self.result = Some(result);
        succeeded
    }

    fn answer(self: Box<Self>, committed: Result<(), &StoreError>) {
        let outcome = match (committed, self.result) {
            (_, Some(Err(err))) => Err(err),
            (Err(err), _) => Err(E::from(err.clone())),
            (Ok(()), Some(result)) => result,
            (Ok(()), None) => Err(E::from(StoreError::fatal("a write was committed without running"))),
        };
        let _ = self.reply.send(outcome);
    }
}

/// What the writer thread is asked to do.
enum Request {
    Write(Box<dyn Job>),
    /// Copy the WAL into the database and truncate it, between two groups; answered
    /// with the checkpoint's outcome.
    Checkpoint(tokio::sync::oneshot::Sender<StoreResult<()>>),
}

pub struct Writer {
    /// Dropped first on close: the thread finishes the queued jobs and ends.
    jobs: Option<mpsc::Sender<Request>>,
    /// Joined on drop, so the connection is closed (and the WAL checkpointed) before
    /// the process exits.
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Writer {
    pub fn open(path: &Path) -> StoreResult<Writer> {
        let connection = Connection::open(path)?;
        connection.busy_timeout(BUSY_TIMEOUT)?;
        connection.pragma_update(None, "journal_mode", "WAL")?;
        connection.pragma_update(None, "synchronous", "FULL")?;
        connection.pragma_update(None, "foreign_keys", "ON")?;
        // An erased person's text must not stay readable in freed cells and pages of the
        // file (docs/PRIVACY.md): SQLite then overwrites what it deletes with zeros.
        connection.pragma_update(None, "secure_delete", "ON")?;
        // The checkpoint runs here, between two groups, when no write is appending to
        // the WAL: so it can copy every frame and the WAL starts over instead of growing.
        // (On a thread of its own it raced the writer and the WAL grew past 1 GiB in
        // ten seconds of load.)
        connection.pragma_update(None, "wal_autocheckpoint", CHECKPOINT_PAGES)?;
        connection.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        let (jobs, queue) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || run(connection, queue))
            .map_err(StoreError::fatal)?;
        Ok(Writer {
            jobs: Some(jobs),
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Queues `work` for the next group transaction, now, and returns a future of its
    /// result once that transaction has committed. An error from `work` undoes only
    /// `work`'s changes. `work` may run twice: when another write of its group fails,
    /// the group is rolled back and run again with each write in a savepoint of its own.
    pub fn write<T, E, F>(&self, work: F) -> impl Future<Output = Result<T, E>> + use<T, E, F>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: Fn(&Connection) -> Result<T, E> + Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job: Box<dyn Job> = Box::new(Pending {
            work,
            result: None,
            reply,
        });
        let queued = self
            .jobs
            .as_ref()
            .is_some_and(|jobs| jobs.send(Request::Write(job)).is_ok());
        async move {
            // Stopping: another daemon, or this one after its restart, takes the write.
            let stopped = || E::from(StoreError::transient("the database writer has stopped"));
            if !queued {
                return Err(stopped());
            }
            answer.await.map_err(|_| stopped())?
        }
    }
}

impl Writer {
    /// Copies the WAL into the database file and truncates it, after the writes queued
    /// before this call commit. The WAL holds earlier versions of pages: after an
    /// erasure they would still carry the person's data until SQLite reused them.
    pub async fn checkpoint(&self) -> StoreResult<()> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let queued = self
            .jobs
            .as_ref()
            .is_some_and(|jobs| jobs.send(Request::Checkpoint(reply)).is_ok());
        let stopped = || StoreError::transient("the database writer has stopped");
        if !queued {
            return Err(stopped());
        }
        answer.await.map_err(|_| stopped())?
    }
}

/// A full checkpoint that truncates the WAL. Readers still on an older snapshot keep
/// frames alive (SQLite answers busy, not an error): tried again while the busy
/// timeout lasts.
fn truncate_wal(connection: &Connection) -> StoreResult<()> {
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    loop {
        let busy: i64 = connection.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| row.get(0))?;
        if busy == 0 {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            return Err(StoreError::transient(
                "the WAL could not be truncated: readers held it for the whole busy timeout",
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(thread) = self
            .thread
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
        {
            let _ = thread.join();
        }
    }
}

fn run(mut connection: Connection, queue: mpsc::Receiver<Request>) {
    while let Ok(first) = queue.recv() {
        let mut batch = match first {
            Request::Write(job) => vec![job],
            Request::Checkpoint(reply) => {
                let _ = reply.send(truncate_wal(&connection));
                continue;
            }
        };
        // A checkpoint asked for while the group gathers runs right after its commit, so
        // it covers every write queued before it.
        let mut checkpoint = None;
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(Request::Write(job)) => batch.push(job),
                Ok(Request::Checkpoint(reply)) => {
                    checkpoint = Some(reply);
                    break;
                }
                Err(_) => break,
            }
        }
        // Most groups succeed whole: run them without savepoints, which cost a copy of
        // every page a write touches. Only a group with a failing write pays for them.
        let committed = match commit_optimistically(&mut connection, &mut batch) {
            Ok(true) => Ok(()),
            Ok(false) => commit_with_savepoints(&mut connection, &mut batch),
            Err(err) => Err(err),
        };
        if let Err(err) = &committed {
            tracing::error!(%err, writes = batch.len(), "a write transaction failed; none of its writes were applied");
        }
        for job in batch {
            job.answer(committed.as_ref().map(|_| ()));
        }
        if let Some(reply) = checkpoint {
            let _ = reply.send(truncate_wal(&connection));
        }
    }
    // Closing checkpoints the WAL only when no other connection is open, and the read
    // pool's may still be: merge it here, so the database file alone is whole after a
    // clean stop (a backup of it, or its size, tells the truth).
    if let Err(err) = connection.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())) {
        tracing::warn!(%err, "the final WAL checkpoint failed; the next start replays the WAL");
    }
}

/// Runs every write in one transaction and commits when all succeed; rolls back and
/// says `false` when one failed.
fn commit_optimistically(connection: &mut Connection, batch: &mut [Box<dyn Job>]) -> StoreResult<bool> {
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for job in batch.iter_mut() {
        if !job.run(&transaction) {
            transaction.rollback()?;
            return Ok(false);
        }
    }
    transaction.commit()?;
    Ok(true)
}

/// Runs every write in a savepoint of its own, so a failing one leaves no trace, and
/// commits the rest.
fn commit_with_savepoints(connection: &mut Connection, batch: &mut [Box<dyn Job>]) -> StoreResult<()> {
    let mut transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for job in batch.iter_mut() {
        let mut savepoint = transaction.savepoint()?;
        if !job.run(&savepoint) {
            savepoint.rollback()?;
        }
        savepoint.commit()?;
    }
    transaction.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(path: &Path) -> Vec<String> {
        let connection = Connection::open(path).unwrap();
        let mut select = connection.prepare("SELECT v FROM t ORDER BY rowid").unwrap();
        select
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    fn insert(value: &'static str) -> impl Fn(&Connection) -> StoreResult<()> {
        move |connection| {
            connection.execute("INSERT INTO t (v) VALUES (?1)", [value])?;
            Ok(())
        }
    }

    /// A writer with table `t`, and a write holding it busy until `release` is sent, so
    /// the writes queued meanwhile form one group.
    async fn held_writer() -> (
        tempfile::TempDir,
        Writer,
        mpsc::Sender<()>,
        impl Future<Output = StoreResult<()>>,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let writer = Writer::open(&dir.path().join("w.db")).unwrap();
        writer
            .write(|connection| Ok::<_, StoreError>(connection.execute_batch("CREATE TABLE t (v TEXT)")?))
            .await
            .unwrap();
        let (release, released) = mpsc::channel::<()>();
        let (started, holding) = mpsc::channel::<()>();
        let (released, started) = (Mutex::new(released), Mutex::new(started));
        let hold = writer.write(move |_| {
            let _ = started.lock().unwrap().send(());
            let _ = released.lock().unwrap().recv();
            Ok(())
        });
        holding.recv().unwrap();
        (dir, writer, release, hold)
    }

    #[tokio::test]
    async fn a_group_of_writes_commits_together_in_order() {
        let (dir, writer, release, hold) = held_writer().await;
        let writes = [
            writer.write(insert("a")),
            writer.write(insert("b")),
            writer.write(insert("c")),
        ];
        release.send(()).unwrap();
        hold.await.unwrap();
        for write in writes {
            write.await.unwrap();
        }
        assert_eq!(rows(&dir.path().join("w.db")), ["a", "b", "c"]);
    }

    #[tokio::test]
    async fn a_failing_write_leaves_no_trace_and_the_rest_of_its_group_commits() {
        let (dir, writer, release, hold) = held_writer().await;
        let first = writer.write(insert("a"));
        // Writes a row, then fails: its row must not survive.
        let failing = writer.write(|connection| {
            connection.execute("INSERT INTO t (v) VALUES ('half-done')", [])?;
            Err::<(), _>(StoreError::NotFound("refused"))
        });
        let last = writer.write(insert("c"));
        release.send(()).unwrap();
        hold.await.unwrap();
        assert!(first.await.is_ok());
        assert!(matches!(failing.await, Err(StoreError::NotFound("refused"))));
        assert!(last.await.is_ok());
        assert_eq!(rows(&dir.path().join("w.db")), ["a", "c"]);
    }

    #[tokio::test]
    async fn a_clean_stop_leaves_the_wal_merged_while_readers_are_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let writer = Writer::open(&path).unwrap();
        writer
            .write(|conn| {
                Ok::<_, StoreError>(conn.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1), (2);")?)
            })
            .await
            .unwrap();
        let reader = Connection::open(&path).unwrap();
        let rows: i64 = reader
            .query_row("SELECT count(*) FROM t", [], |row| row.get(0))
            .unwrap();
        assert_eq!(rows, 2);
        drop(writer);
        let wal = std::fs::metadata(dir.path().join("w.db-wal")).map_or(0, |m| m.len());
        assert_eq!(wal, 0, "the WAL is merged into the database file");
        drop(reader);
    }

    #[tokio::test]
    async fn writes_after_close_fail_instead_of_hanging() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = Writer::open(&dir.path().join("w.db")).unwrap();
        writer.jobs.take();
        assert!(matches!(
            writer.write(|_| Ok::<_, StoreError>(())).await,
            Err(StoreError::Transient(_))
        ));
    }
}
