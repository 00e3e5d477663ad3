//! SQLite's errors read as the store's classes: which result codes mean "wait and try
//! again", which a conflict, which a bug. The classes themselves are the store's
//! (`store::error`); only the reading of SQLite's codes lives with the backend.

use crate::store::StoreError;
use crate::store::error::{Cause, Class};

impl From<rusqlite::Error> for Cause {
    fn from(error: rusqlite::Error) -> Cause {
        Cause::of(error)
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> StoreError {
        use rusqlite::ErrorCode;
        let class = match &error {
            rusqlite::Error::SqliteFailure(failure, _) => match failure.code {
                ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::DiskFull
                | ErrorCode::SystemIoFailure
                | ErrorCode::CannotOpen
                | ErrorCode::OutOfMemory
                | ErrorCode::FileLockingProtocolFailed
                | ErrorCode::OperationInterrupted => Class::Transient,
                ErrorCode::ConstraintViolation => Class::Conflict,
                ErrorCode::TooBig => Class::Invalid,
                _ => Class::Fatal,
            },
            rusqlite::Error::ToSqlConversionFailure(_) => Class::Invalid,
            _ => Class::Fatal,
        };
        class.with(error)
    }
}

/// The class of an error sqlx's SQLite driver returned, or `None` when the error came
/// from another database.
pub(in crate::store) fn database_error_class(error: &dyn sqlx::error::DatabaseError) -> Option<Class> {
    error
        .try_downcast_ref::<sqlx::sqlite::SqliteError>()
        .map(|_| sqlite_class(error.code().as_deref()))
}

/// SQLite's result code (primary, or extended with the primary in the low byte).
fn sqlite_class(code: Option<&str>) -> Class {
    match code.and_then(|code| code.parse::<i32>().ok()).map(|code| code & 0xff) {
        // BUSY, LOCKED, NOMEM, INTERRUPT, IOERR, FULL, CANTOPEN, PROTOCOL.
        Some(5 | 6 | 7 | 9 | 10 | 13 | 14 | 15) => Class::Transient,
        Some(18) => Class::Invalid,
        Some(19) => Class::Conflict,
        _ => Class::Fatal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqlite_failure(code: i32) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None)
    }

    #[test]
    fn a_busy_or_full_database_is_transient_and_a_constraint_a_conflict() {
        for code in [
            rusqlite::ffi::SQLITE_BUSY,
            rusqlite::ffi::SQLITE_FULL,
            rusqlite::ffi::SQLITE_IOERR_WRITE,
        ] {
            let error = StoreError::from(sqlite_failure(code));
            assert!(matches!(error, StoreError::Transient(_)), "{code}: {error:?}");
            assert!(error.is_retriable());
        }
        let unique = StoreError::from(sqlite_failure(rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE));
        assert!(matches!(unique, StoreError::Conflict(_)), "{unique:?}");
        let corrupt = StoreError::from(sqlite_failure(rusqlite::ffi::SQLITE_CORRUPT));
        assert!(matches!(corrupt, StoreError::Fatal(_)) && !corrupt.is_retriable());
    }

    #[test]
    fn the_cause_is_kept_for_the_log() {
        let error = StoreError::from(rusqlite::Error::InvalidColumnName("nope".into()));
        assert!(matches!(error, StoreError::Fatal(_)), "{error:?}");
        assert!(
            error
                .cause()
                .and_then(|cause| cause.downcast_ref::<rusqlite::Error>())
                .is_some()
        );
        assert!(error.to_string().contains("nope"), "{error}");
    }

    #[test]
    fn extended_result_codes_are_read_by_their_primary_code() {
        assert!(matches!(sqlite_class(Some("5")), Class::Transient));
        assert!(
            matches!(sqlite_class(Some("2067")), Class::Conflict),
            "SQLITE_CONSTRAINT_UNIQUE"
        );
        assert!(matches!(sqlite_class(Some("11")), Class::Fatal), "SQLITE_CORRUPT");
    }
}
