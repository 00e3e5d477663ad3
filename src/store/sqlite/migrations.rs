//! SQLite's schema versions, embedded (see `store::migrations`).

use sqlx::migrate::Migrator;

use crate::store::migrations::{Embedded, Versions};

/// `(version, description, sql)`, in order. Applied migrations must never change:
/// sqlx refuses to start when an applied migration's checksum differs.
const MIGRATIONS: Versions = &[
    (
        1,
        "initial",
        include_str!("../../../migrations/sqlite/0001_initial.sql"),
    ),
    (
        2,
        "assignee index without activity",
        include_str!("../../../migrations/sqlite/0002_assignee_index_without_activity.sql"),
    ),
    (
        3,
        "assignee index by status",
        include_str!("../../../migrations/sqlite/0003_assignee_index_by_status.sql"),
    ),
    (
        4,
        "channel cursors",
        include_str!("../../../migrations/sqlite/0004_channel_cursors.sql"),
    ),
    (
        5,
        "identity reachability",
        include_str!("../../../migrations/sqlite/0005_identity_reachability.sql"),
    ),
    (
        6,
        "escalation and sla",
        include_str!("../../../migrations/sqlite/0006_escalation_and_sla.sql"),
    ),
    (
        7,
        "status updates and csat",
        include_str!("../../../migrations/sqlite/0007_status_updates_and_csat.sql"),
    ),
    (
        8,
        "delivery visibility",
        include_str!("../../../migrations/sqlite/0008_delivery_visibility.sql"),
    ),
    (
        9,
        "event subscriptions",
        include_str!("../../../migrations/sqlite/0009_event_subscriptions.sql"),
    ),
    (
        10,
        "health probe",
        include_str!("../../../migrations/sqlite/0010_health_probe.sql"),
    ),
    (
        11,
        "privacy",
        include_str!("../../../migrations/sqlite/0011_privacy.sql"),
    ),
    (12, "people", include_str!("../../../migrations/sqlite/0012_people.sql")),
    (
        13,
        "lease holders",
        include_str!("../../../migrations/sqlite/0013_lease_holders.sql"),
    ),
    (14, "leases", include_str!("../../../migrations/sqlite/0014_leases.sql")),
    (
        15,
        "contact merge",
        include_str!("../../../migrations/sqlite/0015_contact_merge.sql"),
    ),
    (16, "search", include_str!("../../../migrations/sqlite/0016_search.sql")),
    (
        17,
        "contact search",
        include_str!("../../../migrations/sqlite/0017_contact_search.sql"),
    ),
    (
        18,
        "agent teams tokens audit",
        include_str!("../../../migrations/sqlite/0018_agent_teams_tokens_audit.sql"),
    ),
    (
        19,
        "saved replies",
        include_str!("../../../migrations/sqlite/0019_saved_replies.sql"),
    ),
    (
        20,
        "mentions",
        include_str!("../../../migrations/sqlite/0020_mentions.sql"),
    ),
    (
        21,
        "sla events by team",
        include_str!("../../../migrations/sqlite/0021_sla_events_by_team.sql"),
    ),
    (
        22,
        "report facts",
        include_str!("../../../migrations/sqlite/0022_report_facts.sql"),
    ),
    (
        23,
        "agent languages",
        include_str!("../../../migrations/sqlite/0023_agent_languages.sql"),
    ),
    (
        24,
        "channel contract",
        include_str!("../../../migrations/sqlite/0024_channel_contract.sql"),
    ),
    (
        25,
        "outbox skipped index",
        include_str!("../../../migrations/sqlite/0025_outbox_skipped_index.sql"),
    ),
    (
        26,
        "outbox parts sent",
        include_str!("../../../migrations/sqlite/0026_outbox_parts_sent.sql"),
    ),
];

pub async fn migrator() -> Result<Migrator, sqlx::migrate::MigrateError> {
    Migrator::new(Embedded(MIGRATIONS)).await
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_migration_file_is_listed() {
        crate::store::migrations::assert_every_file_listed("sqlite", super::MIGRATIONS);
    }
}
