//! [`Tx`] on SQLite: each operation a cached statement or two on the writer thread's
//! connection, inside the group transaction the writer runs (see `writer.rs`). One file
//! per group of operations, as the trait groups them.

mod catalog;
mod clocks;
mod contacts;
mod conversations;
mod messages;
mod outbox;
mod people;
mod privacy;
mod subscriptions;

use rusqlite::Connection;
use sha2::{Digest, Sha256};

use super::vocabulary;
use crate::model::Status;
use crate::store::StoreResult;

/// One unit of work on the writer's connection.
pub struct SqliteTx<'c> {
    conn: &'c Connection,
}

impl<'c> SqliteTx<'c> {
    pub fn new(conn: &'c Connection) -> SqliteTx<'c> {
        SqliteTx { conn }
    }
}

pub(super) fn status_of(text: &str) -> StoreResult<Status> {
    vocabulary(Status::parse, text)
}

pub(super) fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data).iter().map(|byte| format!("{byte:02x}")).collect()
}

pub(super) fn to_json<T: serde::Serialize>(value: &T, empty: &str) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| empty.into())
}
