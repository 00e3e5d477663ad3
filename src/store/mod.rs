//! Storage: what the desk's rules and the workers ask of a database, and its backends.
//!
//! - [`Tx`] (`tx.rs`): the small operations the rules in `domain/` are written against,
//!   all inside one unit of work; [`records`]: the values they exchange.
//! - [`Store`]: runs units of work (one transaction each, whole or not at all), and the
//!   few reads the workers make outside them.
//! - [`StoreError`] (`error.rs`): failures classified: not found, invalid, conflict,
//!   transient, fatal, with the backend's error kept as the cause.
//! - [`sqlite`]: the embedded backend. A PostgreSQL backend is a sibling module that
//!   implements [`Store`], [`Tx`] and [`Queries`](crate::query::Queries), and passes the
//!   conformance suite (`conformance.rs`).
//! - [`config`]: `[storage]`, the URL of the database to open.
//! - [`migrate`]: `switchboard migrate`, a SQLite desk copied whole into PostgreSQL.
//!
//! Nothing here knows the rules or HTTP; callers pass `now` (Unix ms) from their clock
//! rather than the store reading one, so tests drive time.

pub mod config;
#[cfg(test)]
mod conformance;

mod agent_views;
mod columns;
mod contact_views;
mod error;
mod metric_views;
pub mod migrate;
mod migrations;
pub mod postgres;
pub mod records;
mod replay_views;
mod report_views;
mod saved_reply_views;
mod search_views;
pub mod sqlite;
#[cfg(test)]
pub(crate) mod testing;
mod tx;

use std::any::Any;

use async_trait::async_trait;

pub use error::{Cause, StoreError, StoreResult};
pub use records::*;
pub use tx::*;

/// A unit of work's result, erased so [`Store`] can be a trait object; `unit` (on `dyn Store`)
/// gives it its type back.
pub type Done = Box<dyn Any + Send>;

/// A unit of work: run against the backend's [`Tx`], perhaps more than once (a backend
/// may retry it, or replay it alone after its group failed), and applied only if it
/// returns `Ok`.
pub type Work = Box<dyn Fn(&mut dyn Tx) -> Result<Done, Done> + Send>;

/// Units of work, made as they are taken.
pub type Units = Box<dyn Iterator<Item = Work> + Send>;

/// Why a unit of work did not apply.
#[derive(Debug)]
pub enum UnitError {
    /// The work itself refused (its error, erased).
    Work(Done),
    /// The store failed around it (the commit, the connection).
    Store(StoreError),
}

impl From<StoreError> for UnitError {
    fn from(error: StoreError) -> UnitError {
        UnitError::Store(error)
    }
}

/// What a commit changed that another daemon's workers look for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// A send was queued.
    Outbox,
    /// An event delivery was queued.
    Events,
    /// A deadline or a follow-up was set or moved.
    Clocks,
    /// A message or an event consoles show.
    Stream,
}

/// Told of changes: `None` when some may have been missed (a lost connection), so
/// every worker should look again.
pub type OnChange = std::sync::Arc<dyn Fn(Option<Change>) + Send + Sync>;

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Answers when the database can be read and can commit a write (a write reaching the
    /// disk, through the same path the desk's writes take).
    async fn ping(&self) -> StoreResult<()>;
    /// Whether this daemon is the only one on the store (SQLite's claim on its file):
    /// then whatever is in flight at start was left by its own previous run.
    fn exclusive(&self) -> bool;
    /// Calls `on_change` for what every daemon on the store commits, until `stop`. A
    /// store no other daemon writes (SQLite) never calls it: this daemon's own commits
    /// wake its workers directly.
    fn watch(&self, on_change: OnChange, stop: tokio_util::sync::CancellationToken);
    /// Runs `work` as one unit of work: its changes are applied together, and only then
    /// does this return.
    async fn run(&self, work: Work) -> Result<Done, UnitError>;
    /// Runs each unit of work in this order (a message later in the batch sees the one
    /// before it), each applied or not on its own, sharing commits where the backend can:
    /// a connector catching up on a backlog waits for one fsync, not one per message.
    /// The units are taken from `works` one at a time, so what makes the next one (a
    /// language detection) runs while the backend works on those before it.
    async fn run_in_order(&self, works: Units) -> Vec<Result<Done, UnitError>>;
    /// The earliest moment an SLA clock or a follow-up needs the scheduler.
    async fn next_sla_fire(&self) -> StoreResult<Option<i64>>;
    /// Where a connector stands in its source (see migration 0004).
    async fn channel_cursor(&self, inbox_id: i64, name: &str) -> StoreResult<Option<String>>;
    /// Makes what the units of work before this call deleted or overwrote unreadable in
    /// the backend's files (an erasure): SQLite copies the WAL, which holds the pages'
    /// earlier versions, into the database and truncates it.
    async fn scrub(&self) -> StoreResult<()>;
}

/// Opens the store `[storage]` names, migrated: its units of work and its read models.
pub async fn open(
    settings: &config::StorageSettings,
) -> StoreResult<(std::sync::Arc<dyn Store>, std::sync::Arc<dyn crate::query::Queries>)> {
    use std::sync::Arc;
    Ok(match settings.backend {
        config::Backend::Sqlite => {
            let store = Arc::new(sqlite::SqliteStore::open(&settings.url).await?);
            (
                Arc::clone(&store) as Arc<dyn Store>,
                store as Arc<dyn crate::query::Queries>,
            )
        }
        config::Backend::Postgres => {
            let store = Arc::new(postgres::PgStore::open(settings).await?);
            (
                Arc::clone(&store) as Arc<dyn Store>,
                store as Arc<dyn crate::query::Queries>,
            )
        }
    })
}

impl dyn Store {
    /// Runs `work` as one unit of work and gives back its own result or error; a failure
    /// of the store around it arrives as `E::from(StoreError)`.
    pub async fn unit<T, E, F>(&self, work: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: Fn(&mut dyn Tx) -> Result<T, E> + Send + 'static,
    {
        typed(self.run(erase(work)).await)
    }

    /// [`Store::run_in_order`], typed.
    pub async fn units_in_order<T, E, F, I>(&self, works: I) -> Vec<Result<T, E>>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: Fn(&mut dyn Tx) -> Result<T, E> + Send + 'static,
        I: Iterator<Item = F> + Send + 'static,
    {
        let erased: Units = Box::new(works.map(erase));
        self.run_in_order(erased).await.into_iter().map(typed).collect()
    }
}

fn erase<T, E, F>(work: F) -> Work
where
    T: Send + 'static,
    E: Send + 'static,
    F: Fn(&mut dyn Tx) -> Result<T, E> + Send + 'static,
{
    Box::new(move |tx| match work(tx) {
        Ok(done) => Ok(Box::new(done) as Done),
        Err(error) => Err(Box::new(error) as Done),
    })
}

fn typed<T: 'static, E: From<StoreError> + 'static>(result: Result<Done, UnitError>) -> Result<T, E> {
    // The boxes hold exactly what `erase` put in; a backend cannot make other values.
    let mismatch = || {
        E::from(StoreError::fatal(
            "a unit of work answered with a value of another type",
        ))
    };
    match result {
        Ok(done) => done.downcast::<T>().map(|done| *done).map_err(|_| mismatch()),
        Err(UnitError::Work(error)) => Err(error.downcast::<E>().map(|error| *error).unwrap_or_else(|_| mismatch())),
        Err(UnitError::Store(error)) => Err(E::from(error)),
    }
}
