//! Reading and writing column values the same way on every backend: the vocabularies
//! (status, priority, …) stored as their names, JSON stored as text, files named by
//! their SHA-256.

use sha2::{Digest, Sha256};

use super::{StoreError, StoreResult};
use crate::model::Status;

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
