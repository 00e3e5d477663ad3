//! The support desk's shape, validated from config: teams as queues (department, tier,
//! escalation path, assignment policy, capacity), their business hours, and the SLA
//! policies that time them. Pure data the store consults inside its transactions. The
//! sections they are validated from are in [`config`].

pub mod config;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::domain::labels::LabelCatalog;
use crate::domain::language::LanguageDetector;
use crate::domain::updates::UpdatePolicy;
use crate::model::clock::{ClockKind, ClockTarget};
use crate::model::hours::BusinessHours;
use crate::model::{Priority, millis};

/// How a team's waiting conversations find an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Assignment {
    /// Agents take conversations themselves (or a supervisor assigns them).
    Manual,
    /// Each next conversation to the available agent with room who was given one
    /// least recently.
    RoundRobin,
    /// To the available agent with the fewest open conversations.
    LeastLoaded,
}

impl Assignment {
    pub const NAMES: &'static str = "manual, round_robin, least_loaded";

    pub fn parse(text: &str) -> Option<Assignment> {
        match text {
            "manual" => Some(Assignment::Manual),
            "round_robin" => Some(Assignment::RoundRobin),
            "least_loaded" => Some(Assignment::LeastLoaded),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Assignment::Manual => "manual",
            Assignment::RoundRobin => "round_robin",
            Assignment::LeastLoaded => "least_loaded",
        }
    }
}

/// What a breach does besides recording `sla.breached`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BreachActions {
    /// Escalate: to `escalate_to` when set, else to the next tier of the department.
    pub escalate: bool,
    pub escalate_to: Option<String>,
    /// One step up (low → normal → high → urgent).
    pub raise_priority: bool,
    /// Name the team's supervisors in the breach event (and, with event subscriptions,
    /// deliver it to them).
    pub notify: bool,
}

#[derive(Debug, Clone)]
pub struct SlaPolicy {
    pub name: String,
    /// The clocks measured around the clock; the others run in the team's business hours.
    pub calendar_time: BTreeSet<ClockKind>,
    /// The warning fires when this share of the target has passed, in thousandths.
    pub warning_permille: Option<u32>,
    /// Targets per clock and priority; a missing one runs no clock.
    pub targets: BTreeMap<(ClockKind, Priority), Duration>,
    pub on_breach: BreachActions,
}

#[derive(Debug, Clone)]
pub struct TeamPolicy {
    pub key: String,
    pub name: String,
    pub department: String,
    pub tier: u8,
    /// Where `{"tier": "next"}` and breach escalations go: `escalate_to` from config, or
    /// the department's team of the lowest tier above this one.
    pub next_tier: Option<String>,
    pub assignment: Assignment,
    /// The most open conversations an agent of this team holds, unless the agent has
    /// their own capacity.
    pub capacity: u32,
    /// How long a conversation in a language waits for an available member who reads
    /// it to have room, before any member with room takes it (calendar time).
    pub language_wait: Duration,
    pub hours: Arc<BusinessHours>,
    pub hours_name: Option<String>,
    pub sla: Option<Arc<SlaPolicy>>,
}

#[derive(Debug, Clone)]
pub struct Desk {
    pub teams: BTreeMap<String, TeamPolicy>,
    /// Detects a message's language when its channel gives none.
    pub languages: LanguageDetector,
    /// Automated status updates to customers.
    pub updates: Arc<UpdatePolicy>,
    /// No conversation stays unresolved longer than this (calendar time).
    pub max_open: Duration,
    /// What the cap's breach does.
    pub max_open_actions: BreachActions,
    /// The labels rules and agents may add.
    pub labels: Arc<LabelCatalog>,
}

impl Desk {
    pub fn team(&self, key: &str) -> Option<&TeamPolicy> {
        self.teams.get(key)
    }

    /// Whether any team runs next-response clocks: when none does, a customer message
    /// that does not reopen its conversation cannot move a clock, and ingest skips them.
    pub fn runs_next_response(&self) -> bool {
        self.teams.values().any(|team| {
            team.sla
                .as_ref()
                .is_some_and(|policy| policy.targets.keys().any(|(kind, _)| *kind == ClockKind::NextResponse))
        })
    }

    /// The target of `kind` for a conversation of `priority` in `team`; `None` when the
    /// team's policy sets none (or the team is gone from config).
    pub fn target(&self, team: Option<&str>, kind: ClockKind, priority: Priority) -> Option<ClockTarget> {
        if kind == ClockKind::MaxOpen {
            return Some(ClockTarget {
                target_ms: millis(self.max_open),
                warn_ms: None,
                calendar: Arc::new(BusinessHours::always()),
            });
        }
        let team = self.team(team?)?;
        let policy = team.sla.as_ref()?;
        let target = millis(*policy.targets.get(&(kind, priority))?);
        Some(ClockTarget {
            target_ms: target,
            warn_ms: policy
                .warning_permille
                .map(|permille| target.saturating_mul(i64::from(permille)) / 1000),
            calendar: if policy.calendar_time.contains(&kind) {
                Arc::new(BusinessHours::always())
            } else {
                Arc::clone(&team.hours)
            },
        })
    }

    /// What a breach of `kind` in `team` does.
    pub fn breach_actions(&self, team: Option<&str>, kind: ClockKind) -> BreachActions {
        if kind == ClockKind::MaxOpen {
            return self.max_open_actions.clone();
        }
        team.and_then(|team| self.team(team))
            .and_then(|team| team.sla.as_ref())
            .map(|policy| policy.on_breach.clone())
            .unwrap_or_default()
    }

    /// A desk with the given teams and no SLA policies: for tests of other parts.
    pub fn plain(teams: &[(&str, &str)]) -> Desk {
        Desk {
            teams: teams
                .iter()
                .map(|(key, name)| {
                    (
                        key.to_string(),
                        TeamPolicy {
                            key: key.to_string(),
                            name: name.to_string(),
                            department: key.to_string(),
                            tier: 0,
                            next_tier: None,
                            assignment: Assignment::Manual,
                            capacity: 10,
                            language_wait: Duration::from_secs(300),
                            hours: Arc::new(BusinessHours::always()),
                            hours_name: None,
                            sla: None,
                        },
                    )
                })
                .collect(),
            languages: LanguageDetector::default(),
            updates: Arc::new(UpdatePolicy::defaults()),
            max_open: Duration::from_secs(30 * 86_400),
            max_open_actions: BreachActions::default(),
            labels: Arc::new(LabelCatalog::default()),
        }
    }
}
