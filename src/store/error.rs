//! What a store says when it cannot do what it was asked, classified so the caller knows
//! what to do next: change the request, read again and retry, wait and retry, or stop.
//! The backend's own error is kept as the cause (for the log, and `source()`), never
//! flattened into a string.

use std::error::Error;
use std::fmt;
use std::sync::Arc;

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The record named does not exist.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The request names something the store does not hold or cannot take; the caller
    /// changes it.
    #[error("`{field}` {problem}")]
    Invalid { field: &'static str, problem: String },
    /// Another write got there first (a uniqueness or integrity rule held it back):
    /// read again, then decide.
    #[error("conflicting write: {0}")]
    Conflict(Cause),
    /// The database is busy, locked, full, unreachable or stopping: nothing changed, and
    /// the same request may succeed later.
    #[error("storage unavailable: {0}")]
    Transient(Cause),
    /// Unreadable data, a schema that does not match, or a bug: retrying will not help.
    #[error("storage failure: {0}")]
    Fatal(Cause),
}

impl StoreError {
    pub fn transient(cause: impl Into<Cause>) -> StoreError {
        StoreError::Transient(cause.into())
    }

    pub fn fatal(cause: impl Into<Cause>) -> StoreError {
        StoreError::Fatal(cause.into())
    }

    /// The backend's error behind a conflict, a transient or a fatal failure.
    pub fn cause(&self) -> Option<&(dyn Error + Send + Sync + 'static)> {
        match self {
            StoreError::Conflict(cause) | StoreError::Transient(cause) | StoreError::Fatal(cause) => Some(cause.get()),
            StoreError::NotFound(_) | StoreError::Invalid { .. } => None,
        }
    }

    /// Whether the same request may succeed if tried again.
    pub fn is_retriable(&self) -> bool {
        matches!(self, StoreError::Transient(_) | StoreError::Conflict(_))
    }
}

/// The backend's error behind a [`StoreError`]: shared, so a group commit's failure can
/// be answered to every write of the group.
#[derive(Clone)]
pub struct Cause(Arc<dyn Error + Send + Sync>);

impl Cause {
    pub fn get(&self) -> &(dyn Error + Send + Sync + 'static) {
        &*self.0
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Cause {
    pub(in crate::store) fn of<E: Error + Send + Sync + 'static>(error: E) -> Cause {
        Cause(Arc::new(error))
    }
}

/// The errors a backend's causes come from.
macro_rules! causes {
    ($($error:ty),+) => {
        $(impl From<$error> for Cause {
            fn from(error: $error) -> Cause {
                Cause::of(error)
            }
        })+
    };
}

causes!(sqlx::Error, sqlx::migrate::MigrateError, std::io::Error);

/// A cause that is only words (the store's own findings, not a driver's error).
#[derive(Debug)]
pub struct Described(pub String);

impl fmt::Display for Described {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Error for Described {}

impl From<String> for Cause {
    fn from(text: String) -> Cause {
        Cause::of(Described(text))
    }
}

impl From<&str> for Cause {
    fn from(text: &str) -> Cause {
        Cause::of(Described(text.to_owned()))
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> StoreError {
        let class = match &error {
            sqlx::Error::Database(database) => match database.kind() {
                sqlx::error::ErrorKind::UniqueViolation
                | sqlx::error::ErrorKind::ForeignKeyViolation
                | sqlx::error::ErrorKind::NotNullViolation
                | sqlx::error::ErrorKind::CheckViolation => Class::Conflict,
                _ => crate::store::sqlite::database_error_class(database.as_ref())
                    .unwrap_or_else(|| sqlstate_class(database.code().as_deref())),
            },
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => Class::Transient,
            _ => Class::Fatal,
        };
        class.with(error)
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(error: sqlx::migrate::MigrateError) -> StoreError {
        StoreError::Fatal(error.into())
    }
}

pub(in crate::store) enum Class {
    Conflict,
    Transient,
    Invalid,
    Fatal,
}

impl Class {
    pub(in crate::store) fn with<E: Into<Cause> + std::fmt::Display>(self, error: E) -> StoreError {
        match self {
            Class::Conflict => StoreError::Conflict(error.into()),
            Class::Transient => StoreError::Transient(error.into()),
            Class::Invalid => StoreError::Invalid {
                field: "value",
                problem: format!("cannot be stored: {error}"),
            },
            Class::Fatal => StoreError::Fatal(error.into()),
        }
    }
}

/// A SQLSTATE (PostgreSQL's): a serialization failure or deadlock lost to another
/// transaction and may be run again; connection exceptions, insufficient resources and
/// operator intervention (a shutdown) pass; integrity violations conflict.
fn sqlstate_class(code: Option<&str>) -> Class {
    match code {
        Some("40001" | "40P01") => Class::Conflict,
        Some(code) if code.starts_with("08") || code.starts_with("53") || code.starts_with("57") => Class::Transient,
        Some(code) if code.starts_with("23") => Class::Conflict,
        Some(code) if code.starts_with("22") => Class::Invalid,
        _ => Class::Fatal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgresql_sqlstates_are_classified() {
        assert!(matches!(sqlstate_class(Some("40001")), Class::Conflict));
        assert!(matches!(sqlstate_class(Some("08006")), Class::Transient));
        assert!(matches!(sqlstate_class(Some("23505")), Class::Conflict));
        assert!(matches!(sqlstate_class(Some("42P01")), Class::Fatal));
    }
}
