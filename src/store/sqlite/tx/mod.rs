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
mod subscriptions;

use rusqlite::Connection;

/// One unit of work on the writer's connection.
pub struct SqliteTx<'c> {
    conn: &'c Connection,
}

impl<'c> SqliteTx<'c> {
    pub fn new(conn: &'c Connection) -> SqliteTx<'c> {
        SqliteTx { conn }
    }
}
