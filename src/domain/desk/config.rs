//! The desk's sections: `[teams.KEY]`, `[business_hours.NAME]`, `[sla_policies.NAME]` and
//! `[sla]`, validated into the [`Desk`]. What the desk needs from other sections (the
//! default team, the languages to detect, the status updates) comes in as plain values.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::config::error::{ConfigError, check_key, duration, positive_duration};
use crate::domain::desk::{Assignment, BreachActions, Desk, SlaPolicy, TeamPolicy};
use crate::domain::labels::LabelCatalog;
use crate::domain::language::LanguageDetector;
use crate::domain::updates::UpdatePolicy;
use crate::model::Priority;
use crate::model::clock::ClockKind;
use crate::model::hours::BusinessHours;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BusinessHoursConfig {
    /// An IANA time zone: `Europe/Berlin`, `Asia/Bangkok`.
    pub time_zone: String,
    /// `mon` … `sun` to `"09:00-18:00"`, `"09:00-12:00, 13:00-17:00"` or `"closed"`; a
    /// day not listed is closed.
    pub week: BTreeMap<String, String>,
    /// Closed local days: `"2026-12-25"` or `"2026-12-24..2026-12-26"`.
    #[serde(default)]
    pub holidays: Vec<String>,
}

/// One duration for every priority, or one per priority (`{ urgent = "30m", high = "1h" }`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum TargetConfig {
    /// `"1h"`: the same target at every priority.
    All(String),
    /// Priority (`low` … `urgent`) to target.
    PerPriority(BTreeMap<String, String>),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlaPolicyConfig {
    /// `business` (the team's business hours) or `calendar` (around the clock).
    #[serde(default = "default_sla_time")]
    pub time: String,
    /// `time` for one clock alone: the first-response clock here, the next two below.
    pub first_response_time: Option<String>,
    /// `time` for the next-response clock alone.
    pub next_response_time: Option<String>,
    /// `time` for the resolution clock alone.
    pub resolution_time: Option<String>,
    /// The share of a target after which `sla.warning` fires, above 0 and below 1; 0 for none.
    #[serde(default = "default_sla_warning")]
    pub warning: f64,
    /// The first-response target; a priority left out of a table gets no clock.
    pub first_response: Option<TargetConfig>,
    /// The next-response target, same forms.
    pub next_response: Option<TargetConfig>,
    /// The resolution target, same forms.
    pub resolution: Option<TargetConfig>,
    /// What a breach does besides its event: `escalate`, `raise_priority`, `notify`.
    #[serde(default = "default_on_breach")]
    pub on_breach: Vec<String>,
    /// The team a breach escalates to; the next tier of the team's department when absent.
    pub escalate_to: Option<String>,
}

fn default_sla_time() -> String {
    "business".into()
}

fn default_sla_warning() -> f64 {
    0.8
}

fn default_on_breach() -> Vec<String> {
    vec!["escalate".into(), "notify".into()]
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlaConfig {
    /// No conversation stays unresolved longer than this (calendar time): it is then
    /// escalated and labelled `overdue`.
    #[serde(default = "default_max_open")]
    pub max_open: String,
}

fn default_max_open() -> String {
    "30days".into()
}

impl Default for SlaConfig {
    fn default() -> SlaConfig {
        SlaConfig {
            max_open: default_max_open(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamConfig {
    /// The name agents see.
    pub name: String,
    /// Teams of one department escalate among themselves by tier; the key when absent.
    pub department: Option<String>,
    /// 0 (first line) to 3.
    #[serde(default)]
    pub tier: u8,
    /// The team `{"tier": "next"}` escalates to; the department's next tier when absent.
    pub escalate_to: Option<String>,
    /// `manual`, `round_robin` or `least_loaded`.
    #[serde(default = "default_assignment")]
    pub assignment: String,
    /// The most open conversations each agent holds (an agent's own capacity wins).
    #[serde(default = "default_capacity")]
    pub capacity: u32,
    /// How long a conversation in a language waits in the queue for an available agent
    /// who reads it, when such an agent is on shift but has no room; then anyone with
    /// room takes it. `"0s"`: a reader when one has room, else anyone at once.
    #[serde(default = "default_language_wait")]
    pub language_wait: String,
    /// A `[business_hours.NAME]`; around the clock when absent.
    pub business_hours: Option<String>,
    /// A `[sla_policies.NAME]`; no SLA clocks but the `sla.max_open` cap when absent.
    pub sla: Option<String>,
    /// Update events this team's conversations do not send (see `updates.events`).
    #[serde(default)]
    pub updates_off: Vec<String>,
}

fn default_assignment() -> String {
    "manual".into()
}

fn default_capacity() -> u32 {
    10
}

fn default_language_wait() -> String {
    "5m".into()
}

/// The longest `teams.KEY.language_wait`: past a working day, a conversation is better
/// answered by anyone.
const MAX_LANGUAGE_WAIT: Duration = Duration::from_secs(24 * 3600);

/// A team as the catalog makes it exist: its key and the name agents see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamSettings {
    pub key: String,
    pub name: String,
}

/// `[teams.KEY]` as the catalog needs them (key and name), and `routing.default_team` among them.
pub fn validate_teams(
    teams: &BTreeMap<String, TeamConfig>,
    default_team: &str,
) -> Result<Vec<TeamSettings>, ConfigError> {
    if teams.is_empty() {
        return Err(ConfigError::new(
            "teams",
            "define at least one team, e.g. [teams.support] name = \"Support\"",
        ));
    }
    let mut settings = Vec::new();
    for (key, team) in teams {
        check_key("teams", key)?;
        if team.name.trim().is_empty() {
            return Err(ConfigError::new(format!("teams.{key}.name"), "must not be empty"));
        }
        settings.push(TeamSettings {
            key: key.clone(),
            name: team.name.trim().to_owned(),
        });
    }
    if !teams.contains_key(default_team) {
        return Err(ConfigError::new(
            "routing.default_team",
            format!("`{}` is not a team; teams are: {}", default_team, team_keys(teams)),
        ));
    }
    Ok(settings)
}

/// The desk: `[business_hours.NAME]`, `[sla_policies.NAME]`, the teams' queues and
/// policies, `[sla]`, and the languages detection chooses among
/// (`routing.detect_languages`), with the validated status updates.
pub fn validate_desk(
    teams: &BTreeMap<String, TeamConfig>,
    business_hours: &BTreeMap<String, BusinessHoursConfig>,
    sla_policies: &BTreeMap<String, SlaPolicyConfig>,
    sla: &SlaConfig,
    detect_languages: &[String],
    updates: UpdatePolicy,
    labels: LabelCatalog,
) -> Result<Desk, ConfigError> {
    let mut calendars = BTreeMap::new();
    for (name, hours) in business_hours {
        let calendar = BusinessHours::new(&hours.time_zone, &hours.week, &hours.holidays)
            .map_err(|err| ConfigError::new(format!("business_hours.{name}.{}", err.key), err.problem))?;
        calendars.insert(name.clone(), Arc::new(calendar));
    }
    let mut policies = BTreeMap::new();
    for (name, policy) in sla_policies {
        policies.insert(name.clone(), Arc::new(validate_sla_policy(name, policy, teams)?));
    }
    let mut team_policies = BTreeMap::new();
    for (key, team) in teams {
        let at = |field: &str| format!("teams.{key}.{field}");
        if team.tier > 3 {
            return Err(ConfigError::new(at("tier"), "must be 0, 1, 2 or 3"));
        }
        let assignment = Assignment::parse(&team.assignment).ok_or_else(|| {
            ConfigError::new(
                at("assignment"),
                format!("`{}` is not one of {}", team.assignment, Assignment::NAMES),
            )
        })?;
        if team.capacity > 10_000 {
            return Err(ConfigError::new(at("capacity"), "must be at most 10000"));
        }
        let language_wait = duration(&at("language_wait"), &team.language_wait)?;
        if language_wait > MAX_LANGUAGE_WAIT {
            return Err(ConfigError::new(
                at("language_wait"),
                "must be at most 24h (`0s`: no wait, anyone with room when no reader has any)",
            ));
        }
        let hours = match &team.business_hours {
            None => Arc::new(BusinessHours::always()),
            Some(name) => Arc::clone(calendars.get(name).ok_or_else(|| {
                ConfigError::new(
                    at("business_hours"),
                    format!("`{name}` is not a [business_hours.NAME] table"),
                )
            })?),
        };
        let sla = match &team.sla {
            None => None,
            Some(name) => Some(Arc::clone(policies.get(name).ok_or_else(|| {
                ConfigError::new(at("sla"), format!("`{name}` is not a [sla_policies.NAME] table"))
            })?)),
        };
        if let Some(target) = &team.escalate_to
            && (!teams.contains_key(target) || target == key)
        {
            return Err(ConfigError::new(
                at("escalate_to"),
                format!("`{target}` is not another team; teams are: {}", team_keys(teams)),
            ));
        }
        let department = team.department.clone().unwrap_or_else(|| key.clone());
        let next_tier = team.escalate_to.clone().or_else(|| {
            teams
                .iter()
                .filter(|(other_key, other)| {
                    other.department.as_deref().unwrap_or(other_key) == department && other.tier > team.tier
                })
                .min_by_key(|(other_key, other)| (other.tier, other_key.as_str()))
                .map(|(other_key, _)| other_key.clone())
        });
        team_policies.insert(
            key.clone(),
            TeamPolicy {
                key: key.clone(),
                name: team.name.trim().to_owned(),
                department,
                tier: team.tier,
                next_tier,
                assignment,
                capacity: team.capacity,
                language_wait,
                hours,
                hours_name: team.business_hours.clone(),
                sla,
            },
        );
    }
    let max_open = duration("sla.max_open", &sla.max_open)?;
    if max_open < Duration::from_secs(3600) || max_open > Duration::from_secs(10 * 366 * 86_400) {
        return Err(ConfigError::new(
            "sla.max_open",
            "must be at least 1h and at most 10 years",
        ));
    }
    let languages = LanguageDetector::only(detect_languages).map_err(|tag| {
        let index = detect_languages
            .iter()
            .position(|given| given.trim().eq_ignore_ascii_case(&tag))
            .unwrap_or(0);
        ConfigError::new(
            format!("routing.detect_languages[{index}]"),
            format!("`{tag}` is not a language detection knows; use ISO 639-1 tags such as en, de, th, ar"),
        )
    })?;
    Ok(Desk {
        teams: team_policies,
        languages,
        updates: Arc::new(updates),
        max_open,
        max_open_actions: BreachActions {
            escalate: true,
            escalate_to: None,
            raise_priority: false,
            notify: true,
        },
        labels: Arc::new(labels),
    })
}

fn validate_sla_policy(
    name: &str,
    policy: &SlaPolicyConfig,
    teams: &BTreeMap<String, TeamConfig>,
) -> Result<SlaPolicy, ConfigError> {
    let at = |field: &str| format!("sla_policies.{name}.{field}");
    let calendar = |key: &str, text: &str| match text {
        "business" => Ok(false),
        "calendar" => Ok(true),
        other => Err(ConfigError::new(
            at(key),
            format!("`{other}` is not `business` or `calendar`"),
        )),
    };
    let all_calendar = calendar("time", &policy.time)?;
    let mut calendar_time = BTreeSet::new();
    for (kind, key, over) in [
        (
            ClockKind::FirstResponse,
            "first_response_time",
            &policy.first_response_time,
        ),
        (
            ClockKind::NextResponse,
            "next_response_time",
            &policy.next_response_time,
        ),
        (ClockKind::Resolution, "resolution_time", &policy.resolution_time),
    ] {
        let around_the_clock = match over {
            Some(text) => calendar(key, text)?,
            None => all_calendar,
        };
        if around_the_clock {
            calendar_time.insert(kind);
        }
    }
    if !(0.0..1.0).contains(&policy.warning) {
        return Err(ConfigError::new(
            at("warning"),
            "must be a share of the target above 0 and below 1 (0.8 warns at 80%), or 0 for no warning",
        ));
    }
    let mut targets = BTreeMap::new();
    for (kind, target) in [
        (ClockKind::FirstResponse, &policy.first_response),
        (ClockKind::NextResponse, &policy.next_response),
        (ClockKind::Resolution, &policy.resolution),
    ] {
        let key = at(kind.as_str());
        match target {
            None => {}
            Some(TargetConfig::All(text)) => {
                let value = positive_duration(&key, text)?;
                for priority in Priority::ALL {
                    targets.insert((kind, *priority), value);
                }
            }
            Some(TargetConfig::PerPriority(map)) => {
                for (priority, text) in map {
                    let parsed = Priority::parse(priority).ok_or_else(|| {
                        ConfigError::new(
                            format!("{key}.{priority}"),
                            format!("is not a priority; use {}", Priority::names()),
                        )
                    })?;
                    targets.insert((kind, parsed), positive_duration(&format!("{key}.{priority}"), text)?);
                }
            }
        }
    }
    let mut on_breach = BreachActions::default();
    for (i, action) in policy.on_breach.iter().enumerate() {
        match action.as_str() {
            "escalate" => on_breach.escalate = true,
            "raise_priority" => on_breach.raise_priority = true,
            "notify" => on_breach.notify = true,
            other => {
                return Err(ConfigError::new(
                    at(&format!("on_breach[{i}]")),
                    format!("`{other}` is not escalate, raise_priority or notify"),
                ));
            }
        }
    }
    if let Some(target) = &policy.escalate_to {
        if !teams.contains_key(target) {
            return Err(ConfigError::new(
                at("escalate_to"),
                format!("`{target}` is not a team; teams are: {}", team_keys(teams)),
            ));
        }
        on_breach.escalate_to = Some(target.clone());
    }
    Ok(SlaPolicy {
        name: name.to_owned(),
        calendar_time,
        warning_permille: (policy.warning > 0.0).then(|| (policy.warning * 1000.0).round() as u32),
        targets,
        on_breach,
    })
}

/// The team keys, for messages that list them.
fn team_keys(teams: &BTreeMap<String, TeamConfig>) -> String {
    teams.keys().map(String::as_str).collect::<Vec<_>>().join(", ")
}
