//! The schema's versioned migrations, embedded in the binary so it runs with no files
//! beside it. sqlx's `migrate!` macro would do the same, but its proc-macro builds the
//! SQLite driver a second time for the host: a minute of every clean build on two cores.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;

use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};

/// `(version, description, sql)`, in order. Applied migrations must never change:
/// sqlx refuses to start when an applied migration's checksum differs.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "initial", include_str!("../../../migrations/0001_initial.sql")),
    (
        2,
        "assignee index without activity",
        include_str!("../../../migrations/0002_assignee_index_without_activity.sql"),
    ),
    (
        3,
        "assignee index by status",
        include_str!("../../../migrations/0003_assignee_index_by_status.sql"),
    ),
    (
        4,
        "channel cursors",
        include_str!("../../../migrations/0004_channel_cursors.sql"),
    ),
    (
        5,
        "identity reachability",
        include_str!("../../../migrations/0005_identity_reachability.sql"),
    ),
    (
        6,
        "escalation and sla",
        include_str!("../../../migrations/0006_escalation_and_sla.sql"),
    ),
    (
        7,
        "status updates and csat",
        include_str!("../../../migrations/0007_status_updates_and_csat.sql"),
    ),
    (
        8,
        "delivery visibility",
        include_str!("../../../migrations/0008_delivery_visibility.sql"),
    ),
    (
        9,
        "event subscriptions",
        include_str!("../../../migrations/0009_event_subscriptions.sql"),
    ),
    (
        10,
        "health probe",
        include_str!("../../../migrations/0010_health_probe.sql"),
    ),
    (11, "privacy", include_str!("../../../migrations/0011_privacy.sql")),
    (12, "people", include_str!("../../../migrations/0012_people.sql")),
];

#[derive(Debug)]
struct Embedded;

impl<'s> MigrationSource<'s> for Embedded {
    fn resolve(self) -> Pin<Box<dyn Future<Output = Result<Vec<Migration>, BoxDynError>> + Send + 's>> {
        Box::pin(async {
            Ok(MIGRATIONS
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

pub async fn migrator() -> Result<Migrator, sqlx::migrate::MigrateError> {
    Migrator::new(Embedded).await
}
