//! The schema's versioned migrations, embedded in the binary so it runs with no files
//! beside it; each backend lists its own (`migrations/sqlite/`, `migrations/postgres/`),
//! because their SQL differs. sqlx's `migrate!` macro would embed them too, but its
//! proc-macro builds the database drivers a second time for the host: a minute of every
//! clean build on two cores.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;

use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType};

/// `(version, description, sql)`, in order. Applied migrations must never change:
/// sqlx refuses to start when an applied migration's checksum differs.
pub type Versions = &'static [(i64, &'static str, &'static str)];

#[derive(Debug)]
pub struct Embedded(pub Versions);

impl<'s> MigrationSource<'s> for Embedded {
    fn resolve(self) -> Pin<Box<dyn Future<Output = Result<Vec<Migration>, BoxDynError>> + Send + 's>> {
        Box::pin(async move {
            Ok(self
                .0
                .iter()
                .map(|&(version, description, sql)| {
                    Migration::new(
                        version,
                        Cow::Borrowed(description),
                        MigrationType::Simple,
                        Cow::Borrowed(sql),
                        false,
                    )
                })
                .collect())
        })
    }
}
