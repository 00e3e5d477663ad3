//! [`Tx`] on SQLite: each operation a cached statement or two on the writer thread's
//! connection, inside the group transaction the writer runs (see `writer.rs`). One file
//! per group of operations, as the trait groups them.

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

use rusqlite::Connection;

use crate::store::{Lease, StoreResult};

/// One unit of work on the writer's connection.
pub struct SqliteTx<'c> {
    conn: &'c Connection,
}

impl<'c> SqliteTx<'c> {
    pub fn new(conn: &'c Connection) -> SqliteTx<'c> {
        SqliteTx { conn }
    }

    /// Puts back in the queue the rows of `table` (the outbox or event deliveries: they
    /// lease alike) in flight whose lease ran out before `expired_before`.
    fn release_leased(&mut self, table: &'static str, expired_before: i64, now: i64) -> StoreResult<u64> {
        let release = format!(
            "UPDATE {table} SET status = 'scheduled', lease_until = NULL, lease_holder = NULL,
                    next_attempt_at = MIN(next_attempt_at, ?1), updated_at = ?1
             WHERE status = 'in_flight' AND (lease_until IS NULL OR lease_until < ?2)"
        );
        Ok(self.conn.prepare_cached(&release)?.execute([now, expired_before])? as u64)
    }

    /// Extends the leases `lease.holder` holds on rows of `table` in flight.
    fn renew_leased(&mut self, table: &'static str, lease: Lease<'_>) -> StoreResult<u64> {
        let renew = format!("UPDATE {table} SET lease_until = ?1 WHERE status = 'in_flight' AND lease_holder = ?2");
        Ok(self
            .conn
            .prepare_cached(&renew)?
            .execute(rusqlite::params![lease.until, lease.holder])? as u64)
    }
}
