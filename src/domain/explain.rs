//! `route explain`: what the router and the desk would do with a message, rule by rule,
//! without storing anything. The API and the CLI share it, so an operator can try a
//! changed config file on sample messages before deploying it.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};
use switchboard_connector_core::ChannelKind;

use crate::domain::desk::{Assignment, Desk, TeamPolicy};
use crate::domain::queues::{self, Choice, LanguageFit};
use crate::domain::router::{RouteInput, Router, RuleTrace};
use crate::model::clock::ClockKind;
use crate::model::human_duration;
use crate::model::{Priority, Timestamp};
use crate::query::Agent;
use crate::store::{AgentLoad, Queued};

/// A sample message: `{"inbox": "shop", "text": "…", "subject"?, "language"?,
/// "metadata"?: {…contact attributes…}, "at"?: "2026-11-27T17:55:00Z"}`.
#[derive(Debug, Clone)]
pub struct Sample {
    pub inbox: String,
    pub channel: ChannelKind,
    pub subject: Option<String>,
    pub text: String,
    pub language: Option<String>,
    pub metadata: BTreeMap<String, Value>,
    /// When the message arrives (deadlines are computed from it); now when absent.
    pub at: Option<i64>,
}

/// A field of the sample and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleError {
    pub field: String,
    pub problem: String,
}

impl Sample {
    /// `inboxes` are the configured inboxes' keys and channel kinds, in config order: the
    /// sample names one of them.
    pub fn parse(object: &Map<String, Value>, inboxes: &[(&str, ChannelKind)]) -> Result<Sample, SampleError> {
        let error = |field: &str, problem: String| SampleError {
            field: field.to_owned(),
            problem,
        };
        const KNOWN: [&str; 6] = ["inbox", "text", "subject", "language", "metadata", "at"];
        if let Some(unknown) = object.keys().find(|key| !KNOWN.contains(&key.as_str())) {
            return Err(error(unknown, format!("is not a field; known: {}", KNOWN.join(", "))));
        }
        let text_of = |field: &str| -> Result<Option<String>, SampleError> {
            match object.get(field) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(text)) => Ok(Some(text.clone())),
                Some(_) => Err(error(field, "must be a string".into())),
            }
        };
        let inbox = text_of("inbox")?.ok_or_else(|| error("inbox", "is required".into()))?;
        let Some(&(_, channel)) = inboxes.iter().find(|(key, _)| *key == inbox) else {
            let known: Vec<&str> = inboxes.iter().map(|(key, _)| *key).collect();
            return Err(error(
                "inbox",
                format!("`{inbox}` is not an inbox; inboxes are: {}", known.join(", ")),
            ));
        };
        let text = text_of("text")?.ok_or_else(|| error("text", "is required".into()))?;
        let metadata = match object.get("metadata") {
            None | Some(Value::Null) => BTreeMap::new(),
            Some(Value::Object(map)) => map.clone().into_iter().collect(),
            Some(_) => return Err(error("metadata", "must be a JSON object".into())),
        };
        let at = text_of("at")?
            .map(|text| {
                humantime::parse_rfc3339_weak(&text)
                    .map_err(|err| {
                        error(
                            "at",
                            format!("is not an RFC 3339 time such as 2026-11-27T17:55:00Z: {err}"),
                        )
                    })
                    .map(|time| {
                        time.duration_since(std::time::UNIX_EPOCH)
                            .map_or(0, |since| since.as_millis() as i64)
                    })
            })
            .transpose()?;
        Ok(Sample {
            inbox,
            channel,
            subject: text_of("subject")?,
            text,
            language: text_of("language")?,
            metadata,
            at,
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    pub evaluated_at: Timestamp,
    pub language: LanguageSeen,
    /// Every rule, in config order.
    pub rules: Vec<RuleTrace>,
    pub decision: Decision,
    pub sla: Option<SlaPlan>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LanguageSeen {
    pub tag: Option<String>,
    /// `message` (the channel said), `detected`, or `null`.
    pub source: Option<&'static str>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    /// The rule that chose the team; `null`: the default team.
    pub team_rule: Option<String>,
    pub matched_rules: Vec<String>,
    pub team: String,
    pub team_name: Option<String>,
    pub department: Option<String>,
    pub tier: u8,
    pub priority: Priority,
    pub labels: Vec<String>,
    pub assignment: Option<&'static str>,
    /// How the team's queue weighs the message's language; `null` for a team that
    /// assigns by hand.
    pub language_assignment: Option<LanguageAssignment>,
    pub escalates_to: Option<String>,
}

/// The language rule of assignment for the sample: a reader of its language with room
/// first; when readers are on shift but full, a wait of the team's `language_wait`,
/// then anyone with room.
#[derive(Debug, Clone, Serialize)]
pub struct LanguageAssignment {
    /// The conversation's language; `null`: none, so the policy's pick alone.
    pub language: Option<String>,
    /// The team's `language_wait`.
    pub wait: String,
    /// Which rule applies with the team's agents as they are now: `reader` (a reader has
    /// room), `wait` (readers are on shift but full: it waits until `wait_until`, then
    /// anyone), `no_reader` (nobody on shift reads it: anyone with room), `no_language`
    /// (the policy's pick), `nobody` (nobody has room: it queues). `null` where the
    /// agents are not read (the command line).
    pub applies: Option<&'static str>,
    pub wait_until: Option<Timestamp>,
    /// The available members who read the language and have room now (by name);
    /// `null` where the agents are not read.
    pub readers_with_room: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SlaPlan {
    pub policy: String,
    pub business_hours: Option<String>,
    pub time_zone: String,
    /// Whether the team's business hours are open at `evaluated_at`.
    pub open_now: bool,
    pub deadlines: Vec<Deadline>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Deadline {
    pub clock: ClockKind,
    /// `business` (the team's hours) or `calendar`.
    pub time: &'static str,
    pub target: String,
    pub warn_at: Option<Timestamp>,
    pub due_at: Timestamp,
}

/// What the router and desk would do with `sample`; with `agents` (the API reads them),
/// also which language rule of assignment applies with the agents as they are now.
pub fn explain(router: &Router, desk: &Desk, sample: &Sample, now: i64, agents: Option<&[Agent]>) -> Explanation {
    let at = sample.at.unwrap_or(now);
    let (language, source) = match &sample.language {
        Some(tag) => (Some(tag.clone()), Some("message")),
        None => match desk.languages.detect(&sample.text) {
            Some(tag) => (Some(tag.to_owned()), Some("detected")),
            None => (None, None),
        },
    };
    let (decision, rules) = router.explain(&RouteInput {
        inbox: &sample.inbox,
        channel: sample.channel,
        subject: sample.subject.as_deref(),
        text: &sample.text,
        language: language.as_deref(),
        metadata: &sample.metadata,
    });
    let team = desk.team(&decision.team);
    let sla = team.and_then(|team| {
        let policy = team.sla.as_ref()?;
        let deadlines = [ClockKind::FirstResponse, ClockKind::Resolution, ClockKind::MaxOpen]
            .into_iter()
            .filter_map(|kind| {
                let target = desk.target(Some(&team.key), kind, decision.priority)?;
                Some(Deadline {
                    clock: kind,
                    time: if target.calendar.is_always() {
                        "calendar"
                    } else {
                        "business"
                    },
                    target: human_duration(target.target_ms),
                    warn_at: target.warn_ms.map(|warn| Timestamp(target.calendar.add(at, warn))),
                    due_at: Timestamp(target.calendar.add(at, target.target_ms)),
                })
            })
            .collect();
        Some(SlaPlan {
            policy: policy.name.clone(),
            business_hours: team.hours_name.clone(),
            time_zone: team.hours.time_zone().to_owned(),
            open_now: team.hours.is_open(at),
            deadlines,
        })
    });
    let language_assignment = team
        .filter(|team| team.assignment != Assignment::Manual)
        .map(|team| language_assignment(team, language.as_deref(), agents, at));
    Explanation {
        evaluated_at: Timestamp(at),
        language: LanguageSeen { tag: language, source },
        rules,
        decision: Decision {
            team_rule: decision.rule,
            matched_rules: decision.matched,
            team_name: team.map(|team| team.name.clone()),
            department: team.map(|team| team.department.clone()),
            tier: team.map_or(0, |team| team.tier),
            assignment: team.map(|team| team.assignment.as_str()),
            language_assignment,
            escalates_to: team.and_then(|team| team.next_tier.clone()),
            team: decision.team,
            priority: decision.priority,
            labels: decision.labels,
        },
        sla,
    }
}

/// The language rule for a conversation in `language` arriving at `at` in `team`, and,
/// given the agents, which part of it applies now.
fn language_assignment(
    team: &TeamPolicy,
    language: Option<&str>,
    agents: Option<&[Agent]>,
    at: i64,
) -> LanguageAssignment {
    let mut rule = LanguageAssignment {
        language: language.map(str::to_owned),
        wait: human_duration(crate::model::millis(team.language_wait)),
        applies: None,
        wait_until: None,
        readers_with_room: None,
    };
    let Some(agents) = agents else {
        return rule;
    };
    let on_shift: Vec<(&Agent, AgentLoad)> = agents
        .iter()
        .filter(|agent| agent.active && agent.available && agent.teams.contains(&team.key))
        .map(|agent| {
            let load = AgentLoad {
                id: agent.id,
                capacity: agent.capacity,
                load: agent.open_conversations,
                last_assigned_at: None,
                languages: agent.languages.clone(),
            };
            (agent, load)
        })
        .collect();
    let members: Vec<AgentLoad> = on_shift.iter().map(|(_, load)| load.clone()).collect();
    rule.readers_with_room = Some(
        on_shift
            .iter()
            .filter(|(_, load)| {
                language.is_some_and(|tag| queues::reads(&load.languages, tag)) && queues::has_room_now(team, load)
            })
            .map(|(agent, _)| agent.name.clone())
            .collect(),
    );
    let queued = Queued {
        id: 0,
        language: language.map(str::to_owned),
        queued_at: at,
    };
    rule.applies = Some(match queues::choose(team, &members, &queued, at) {
        Choice::Nobody => "nobody",
        Choice::Wait(until) => {
            rule.wait_until = Some(Timestamp(until));
            "wait"
        }
        Choice::Assign(_, None) => "no_language",
        Choice::Assign(_, Some(LanguageFit::Reader)) => "reader",
        Choice::Assign(_, Some(LanguageFit::NoReader)) => "no_reader",
        // A wait of zero: anyone at once.
        Choice::Assign(_, Some(LanguageFit::AfterWait)) => "after_wait",
    });
    rule
}

/// The explanation as people read it in a terminal.
pub fn render_text(explanation: &Explanation) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let language = match (&explanation.language.tag, explanation.language.source) {
        (Some(tag), Some(source)) => format!("{tag} ({source})"),
        _ => "unknown".into(),
    };
    let _ = writeln!(out, "language: {language}");
    let _ = writeln!(out, "rules:");
    for rule in &explanation.rules {
        let mark = if rule.matched { "MATCH" } else { "no   " };
        let mut then = Vec::new();
        if let Some(team) = &rule.team {
            then.push(format!("team {team}"));
        }
        if let Some(priority) = rule.priority {
            then.push(format!("priority {priority}"));
        }
        if !rule.labels.is_empty() {
            then.push(format!("labels {}", rule.labels.join(", ")));
        }
        let _ = writeln!(out, "  {mark} {} -> {}", rule.rule, then.join(", "));
        for condition in &rule.conditions {
            let verdict = if condition.matched { "yes" } else { "no " };
            let detail = condition
                .detail
                .as_deref()
                .map(|detail| format!(" (saw: {detail})"))
                .unwrap_or_default();
            let _ = writeln!(out, "        {verdict} {}{detail}", condition.condition);
        }
    }
    let decision = &explanation.decision;
    let _ = writeln!(
        out,
        "decision: team {} (tier {}, {}), priority {}, labels [{}]",
        decision.team,
        decision.tier,
        decision
            .team_rule
            .as_deref()
            .map_or("default team".to_owned(), |rule| format!("rule `{rule}`")),
        decision.priority,
        decision.labels.join(", ")
    );
    if let Some(rule) = &decision.language_assignment {
        let line = match (&rule.language, rule.applies) {
            (None, _) => "no language: the queue's policy picks".to_owned(),
            (Some(tag), None) => format!(
                "an available agent who reads {tag} and has room; when readers are on shift but full, \
                 it waits up to {} for one, then anyone with room takes it",
                rule.wait
            ),
            (Some(tag), Some(applies)) => format!("{tag}: {applies} (wait {})", rule.wait),
        };
        let _ = writeln!(out, "assignment: {}, {line}", decision.assignment.unwrap_or("manual"));
    }
    if let Some(sla) = &explanation.sla {
        let _ = writeln!(
            out,
            "sla: policy {} ({}{}), from {}",
            sla.policy,
            sla.time_zone,
            if sla.open_now { ", open then" } else { ", closed then" },
            serde_json::to_value(explanation.evaluated_at)
                .unwrap_or_default()
                .as_str()
                .unwrap_or_default()
        );
        for deadline in &sla.deadlines {
            let due = serde_json::to_value(deadline.due_at).unwrap_or_default();
            let _ = writeln!(
                out,
                "  {:<15} {:>8} {:<8}  due {}",
                deadline.clock.as_str(),
                deadline.target,
                deadline.time,
                due.as_str().unwrap_or_default()
            );
        }
    } else {
        let _ = writeln!(out, "sla: none for team {}", decision.team);
    }
    out
}
