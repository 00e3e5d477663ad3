//! [`Tx`](crate::store::Tx) on PostgreSQL: each operation a statement or two on the
//! unit's connection, inside the `SERIALIZABLE` transaction [`super::run_unit`] opened.
//! The unit runs on a blocking thread and waits for each statement with
//! `Handle::block_on`, so the rules stay synchronous and written once. One file per
//! group of operations, as the trait groups them.
//!
//! A statement that fails aborts a PostgreSQL transaction (unlike SQLite's), so no
//! operation here relies on an error it expects: conflicts are `ON CONFLICT` clauses.

mod catalog;
mod clocks;
mod contacts;
mod conversations;
mod leases;
mod messages;
mod outbox;
mod people;
mod privacy;
mod saved_replies;
mod subscriptions;

use sqlx::PgConnection;
use sqlx::postgres::{PgArguments, PgRow};
use tokio::runtime::Handle;

use crate::store::{Lease, StoreError, StoreResult};

pub type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, PgArguments>;

/// One unit of work on one pooled connection.
pub struct PgTx<'c> {
    conn: &'c mut PgConnection,
    runtime: &'c Handle,
    /// A statement failed: PostgreSQL has aborted the transaction, so it cannot commit
    /// whatever the work answers.
    pub(super) failed: Option<StoreError>,
}

impl<'c> PgTx<'c> {
    pub fn new(conn: &'c mut PgConnection, runtime: &'c Handle) -> PgTx<'c> {
        PgTx {
            conn,
            runtime,
            failed: None,
        }
    }

    /// Runs a statement that returns no rows; says how many rows it changed.
    pub fn execute(&mut self, query: PgQuery<'_>) -> StoreResult<u64> {
        let runtime = self.runtime;
        let outcome = runtime.block_on(query.execute(&mut *self.conn));
        self.settle(outcome).map(|done| done.rows_affected())
    }

    /// Every row the statement returns.
    pub fn rows(&mut self, query: PgQuery<'_>) -> StoreResult<Vec<PgRow>> {
        let runtime = self.runtime;
        let outcome = runtime.block_on(query.fetch_all(&mut *self.conn));
        self.settle(outcome)
    }

    /// The first row the statement returns, if any.
    pub fn row(&mut self, query: PgQuery<'_>) -> StoreResult<Option<PgRow>> {
        let runtime = self.runtime;
        let outcome = runtime.block_on(query.fetch_optional(&mut *self.conn));
        self.settle(outcome)
    }

    /// The one row a statement must return (an `INSERT … RETURNING`).
    pub fn one(&mut self, query: PgQuery<'_>) -> StoreResult<PgRow> {
        self.row(query)?
            .ok_or_else(|| StoreError::fatal("a statement that returns its row returned none"))
    }

    /// Puts back in the queue the rows of `table` (the outbox or event deliveries: they
    /// lease alike) in flight whose lease ran out before `expired_before`.
    fn release_leased(&mut self, table: &'static str, expired_before: i64, now: i64) -> StoreResult<u64> {
        let release = format!(
            "UPDATE {table} SET status = 'scheduled', lease_until = NULL, lease_holder = NULL,
                    next_attempt_at = LEAST(next_attempt_at, $1), updated_at = $1
             WHERE status = 'in_flight' AND (lease_until IS NULL OR lease_until < $2)"
        );
        self.execute(sqlx::query(&release).bind(now).bind(expired_before))
    }

    /// Extends the leases `lease.holder` holds on rows of `table` in flight.
    fn renew_leased(&mut self, table: &'static str, lease: Lease<'_>) -> StoreResult<u64> {
        let renew = format!("UPDATE {table} SET lease_until = $1 WHERE status = 'in_flight' AND lease_holder = $2");
        self.execute(sqlx::query(&renew).bind(lease.until).bind(lease.holder))
    }

    /// Notes a failure: the transaction is aborted from here on.
    fn settle<T>(&mut self, outcome: Result<T, sqlx::Error>) -> StoreResult<T> {
        outcome.map_err(|err| {
            let error = StoreError::from(err);
            self.failed.get_or_insert_with(|| error.clone());
            error
        })
    }
}

/// A column read from a row, its decoding error as the store's.
pub fn column<'r, T>(row: &'r PgRow, name: &str) -> StoreResult<T>
where
    T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    use sqlx::Row;
    Ok(row.try_get(name)?)
}
