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

/// Every `.sql` file of `migrations/{backend}/` is in `versions`, under the version its
/// name starts with: a migration written but never listed would never run.
#[cfg(test)]
pub fn assert_every_file_listed(backend: &str, versions: Versions) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(backend);
    let mut files: Vec<(i64, String)> = std::fs::read_dir(&dir)
        .expect("the migrations folder")
        .map(|entry| entry.expect("a folder entry").path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "sql"))
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let version = name
                .split('_')
                .next()
                .and_then(|number| number.parse().ok())
                .unwrap_or_else(|| panic!("{name} does not start with its version"));
            (version, std::fs::read_to_string(&path).expect("a migration"))
        })
        .collect();
    files.sort();
    let listed: Vec<(i64, String)> = versions
        .iter()
        .map(|&(version, _, sql)| (version, sql.to_owned()))
        .collect();
    let file_versions: Vec<i64> = files.iter().map(|(version, _)| *version).collect();
    let listed_versions: Vec<i64> = listed.iter().map(|(version, _)| *version).collect();
    assert_eq!(file_versions, listed_versions, "migrations/{backend}/ against its list");
    assert_eq!(files, listed, "each listed version embeds its own file");
}
