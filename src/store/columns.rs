//! Reading and writing column values the same way on every backend: the vocabularies
//! (status, priority, …) stored as their names, JSON stored as text, files named by
//! their SHA-256.

use sha2::{Digest, Sha256};

use super::{StoreError, StoreResult};
use crate::model::{Direction, MessageKind, Status};

/// A stored vocabulary name back into its enum; anything else is a corrupt database.
pub(in crate::store) fn vocabulary<T>(parse: fn(&str) -> Option<T>, text: &str) -> StoreResult<T> {
    parse(text).ok_or_else(|| StoreError::fatal(format!("unexpected value `{text}` in the database")))
}

pub(in crate::store) fn json_column<T: serde::de::DeserializeOwned>(text: &str) -> StoreResult<T> {
    serde_json::from_str(text).map_err(|err| StoreError::fatal(format!("unreadable JSON in the database: {err}")))
}

pub(in crate::store) fn status_of(text: &str) -> StoreResult<Status> {
    vocabulary(Status::parse, text)
}

pub(in crate::store) fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data).iter().map(|byte| format!("{byte:02x}")).collect()
}

pub(in crate::store) fn to_json<T: serde::Serialize>(value: &T, empty: &str) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| empty.into())
}

/// An agent's languages as `agents.languages` keeps them: tags joined by commas.
pub(in crate::store) fn languages_column(languages: &[String]) -> String {
    languages.join(",")
}

/// `agents.languages` back into its tags; empty when none were given.
pub(in crate::store) fn languages_of(text: &str) -> Vec<String> {
    text.split(',')
        .filter(|tag| !tag.is_empty())
        .map(str::to_owned)
        .collect()
}

/// How a new message adds to its quarter hour's `message_tallies` row: customers'
/// messages, agents' replies, automated updates, notes (docs/REPORTS.md's counts).
pub(in crate::store) fn tally_of(direction: Direction, kind: MessageKind) -> [i64; 4] {
    match (direction, kind) {
        (Direction::Inbound, _) => [1, 0, 0, 0],
        (_, MessageKind::StatusUpdate) => [0, 0, 1, 0],
        (Direction::Outbound, _) => [0, 1, 0, 0],
        (Direction::Note, _) => [0, 0, 0, 1],
    }
}

/// Adds one message to its tally: the same statement on both backends (`$n` reads as a
/// numbered parameter in SQLite too).
pub(in crate::store) const TALLY_UPSERT: &str =
    "INSERT INTO message_tallies (slot, conversation_id, inbound, outbound, automated, notes)
     VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT (slot, conversation_id) DO UPDATE SET
         inbound = message_tallies.inbound + excluded.inbound,
         outbound = message_tallies.outbound + excluded.outbound,
         automated = message_tallies.automated + excluded.automated,
         notes = message_tallies.notes + excluded.notes";

/// Records a response: the same statement on both backends.
pub(in crate::store) const RESPONSE_INSERT: &str =
    "INSERT INTO responses (message_id, conversation_id, waited_from, answered_at, first, sla)
     VALUES ($1, $2, $3, $4, $5, $6)";
