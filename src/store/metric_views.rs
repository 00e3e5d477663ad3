//! What `/metrics` reads, with the same SQL on every backend.

use crate::query::{SlaEventCounts, SubscriptionBacklog};

/// Each live subscription's unsent deliveries and the oldest of them. Both subqueries
/// walk the partial index of the unsent deliveries, a subscription's range of it: as long
/// as its backlog, not its history.
pub(in crate::store) const SUBSCRIPTION_BACKLOGS: &str = "SELECT s.id,
        (SELECT COUNT(*) FROM event_deliveries d
         WHERE d.subscription_id = s.id AND d.status IN ('scheduled', 'in_flight')),
        (SELECT o.created_at FROM event_deliveries o WHERE o.id =
            (SELECT MIN(d.id) FROM event_deliveries d
             WHERE d.subscription_id = s.id AND d.status IN ('scheduled', 'in_flight')))
 FROM subscriptions s WHERE s.deleted_at IS NULL ORDER BY s.id";

/// Rows of [`SUBSCRIPTION_BACKLOGS`].
pub(in crate::store) fn backlogs(rows: Vec<(i64, i64, Option<i64>)>) -> Vec<SubscriptionBacklog> {
    rows.into_iter()
        .map(|(subscription_id, pending, oldest_pending_at)| SubscriptionBacklog {
            subscription_id,
            pending: u64::try_from(pending).unwrap_or(0),
            oldest_pending_at,
        })
        .collect()
}

/// Rows of each backend's count of SLA events by team: the team, warnings, breaches.
pub(in crate::store) fn sla_counts(rows: Vec<(String, i64, i64)>) -> Vec<SlaEventCounts> {
    rows.into_iter()
        .map(|(team, warnings, breaches)| SlaEventCounts {
            team,
            warnings: u64::try_from(warnings).unwrap_or(0),
            breaches: u64::try_from(breaches).unwrap_or(0),
        })
        .collect()
}
