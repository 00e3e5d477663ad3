//! `/metrics` for operators beyond the outbox: the queue and SLA per team, read from the
//! store at each scrape.

use std::fmt::Write;

use crate::query::TeamCounts;

/// A team gauge's value, from the team's counts and the time now.
type TeamValue = fn(&TeamCounts, i64) -> String;

/// The queue and SLA gauges of each active team, in the Prometheus text format.
pub fn render_teams(text: &mut String, teams: &[TeamCounts], now_ms: i64) {
    let families: [(&str, &str, TeamValue); 4] = [
        (
            "switchboard_queue_waiting",
            "Open conversations nobody is assigned to, per team.",
            |team, _| team.waiting.to_string(),
        ),
        (
            "switchboard_queue_oldest_waiting_seconds",
            "How long the longest-waiting conversation of a team's queue has waited; 0 when none waits.",
            |team, now| {
                let age = team
                    .oldest_waiting_since
                    .map_or(0.0, |since| (now - since.0).max(0) as f64 / 1000.0);
                format!("{age:.3}")
            },
        ),
        (
            "switchboard_sla_at_risk",
            "Unresolved conversations with an SLA clock past its warning, not yet breached, per team.",
            |team, _| team.at_risk.to_string(),
        ),
        (
            "switchboard_sla_breached_open",
            "Unresolved conversations with an SLA breach, per team.",
            |team, _| team.breached.to_string(),
        ),
    ];
    for (name, help, value) in families {
        let _ = write!(text, "# HELP {name} {help}\n# TYPE {name} gauge\n");
        for team in teams {
            let _ = writeln!(text, "{name}{{team=\"{}\"}} {}", team.key, value(team, now_ms));
        }
    }
}
