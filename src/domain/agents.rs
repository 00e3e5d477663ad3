//! Agents as admins manage them: created in one or more teams, their teams, role and
//! language skills changed, deactivated (their sessions end and their open conversations go back to the
//! queue), API tokens issued and revoked. Every change is written to the admins' audit
//! log with who made it (`None`: the operator, at the command line).

use serde_json::json;

use crate::domain::desk::Desk;
use crate::domain::events::Actor;
use crate::domain::people::{self, SignInPolicy};
use crate::domain::{DeskError, DeskResult, queues};
use crate::model::Role;
use crate::store::{AgentRow, AgentSelector, AuditEntry, NewAgent, TeamRow, Tx};

/// What an admin changes of an agent; `None` leaves it.
#[derive(Debug, Clone, Default)]
pub struct AgentChanges {
    /// Their teams, home team first.
    pub teams: Option<Vec<String>>,
    pub role: Option<Role>,
    /// The languages they read (tags such as `th`, `pt-BR`); empty for none.
    pub languages: Option<Vec<String>>,
}

/// The most languages one agent is said to read.
pub const MAX_LANGUAGES: usize = 20;

/// Language skills as given (`th`, `pt-BR`) made into what is stored: lowercase tags, in
/// the order given, none twice. A tag is a 2–3 letter primary subtag, then subtags of 1
/// to 8 letters or digits after `-` or `_`.
pub fn language_skills(given: &[String]) -> DeskResult<Vec<String>> {
    let invalid = |problem: String| DeskError::Invalid {
        field: "languages",
        problem,
    };
    if given.len() > MAX_LANGUAGES {
        return Err(invalid(format!("names more than {MAX_LANGUAGES} languages")));
    }
    let mut skills: Vec<String> = Vec::with_capacity(given.len());
    for tag in given {
        let tag = tag.trim().to_ascii_lowercase().replace('_', "-");
        let mut parts = tag.split('-');
        let primary_ok = parts
            .next()
            .is_some_and(|primary| (2..=3).contains(&primary.len()) && primary.chars().all(|c| c.is_ascii_lowercase()));
        let rest_ok =
            parts.all(|part| (1..=8).contains(&part.len()) && part.chars().all(|c| c.is_ascii_alphanumeric()));
        if !primary_ok || !rest_ok {
            return Err(invalid(format!(
                "`{tag}` is not a language tag such as th, en or pt-BR"
            )));
        }
        if skills.contains(&tag) {
            return Err(invalid(format!("names `{tag}` twice")));
        }
        skills.push(tag);
    }
    Ok(skills)
}

/// What a deactivation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deactivation {
    /// Whether the agent was active before.
    pub changed: bool,
    /// Their open conversations, now back in their teams' queues.
    pub returned: Vec<i64>,
}

/// The configured teams named, in order: at least one, none twice.
fn teams_named(tx: &mut dyn Tx, keys: &[String]) -> DeskResult<Vec<TeamRow>> {
    if keys.is_empty() {
        return Err(DeskError::Invalid {
            field: "teams",
            problem: "must name at least one team".into(),
        });
    }
    let mut teams: Vec<TeamRow> = Vec::with_capacity(keys.len());
    for key in keys {
        if teams.iter().any(|team| &team.key == key) {
            return Err(DeskError::Invalid {
                field: "teams",
                problem: format!("names `{key}` twice"),
            });
        }
        let Some(team) = tx.team(key)? else {
            return Err(DeskError::Invalid {
                field: "teams",
                problem: format!("`{key}` is not a configured team"),
            });
        };
        teams.push(team);
    }
    Ok(teams)
}

/// Writes one line of the admins' audit log.
pub(crate) fn audit(
    tx: &mut dyn Tx,
    actor: Option<i64>,
    action: &str,
    target_kind: &str,
    target_id: i64,
    details: serde_json::Value,
    now: i64,
) -> DeskResult<()> {
    let entry = AuditEntry {
        actor_id: actor,
        action,
        target_kind,
        target_id: Some(target_id),
        details,
    };
    tx.insert_admin_audit(&entry, now)?;
    Ok(())
}

fn existing(tx: &mut dyn Tx, agent_id: i64) -> DeskResult<AgentRow> {
    tx.agent(&AgentSelector::Id(agent_id))?
        .ok_or(DeskError::NotFound("agent"))
}

fn keys(teams: &[TeamRow]) -> Vec<&str> {
    teams.iter().map(|team| team.key.as_str()).collect()
}

/// A new agent in configured teams, under a name nobody has; returns their id.
pub fn create(tx: &mut dyn Tx, agent: &NewAgent, actor: Option<i64>, now: i64) -> DeskResult<i64> {
    let agent = &NewAgent {
        languages: language_skills(&agent.languages)?,
        ..agent.clone()
    };
    let teams = teams_named(tx, &agent.teams)?;
    if tx.agent(&AgentSelector::Name(agent.name.clone()))?.is_some() {
        return Err(DeskError::Conflict(format!(
            "an agent named `{}` already exists",
            agent.name
        )));
    }
    let team_ids: Vec<i64> = teams.iter().map(|team| team.id).collect();
    let id = tx.insert_agent(agent, &team_ids, now)?;
    let details = json!({"name": agent.name, "role": agent.role, "teams": keys(&teams), "languages": agent.languages});
    audit(tx, actor, "agent.created", "agent", id, details, now)?;
    Ok(id)
}

/// Changes an agent's teams, role or languages. An admin cannot change their own role
/// (nobody would be left to undo a mistake); new teams or languages may hand the agent
/// waiting work at once.
pub fn update(
    tx: &mut dyn Tx,
    desk: &Desk,
    actor: Option<i64>,
    agent_id: i64,
    changes: &AgentChanges,
    now: i64,
) -> DeskResult<()> {
    let before = existing(tx, agent_id)?;
    let mut details = serde_json::Map::new();
    if let Some(role) = changes.role
        && role != before.role
    {
        if actor == Some(agent_id) {
            return Err(DeskError::Conflict(
                "an admin cannot change their own role; ask another admin".into(),
            ));
        }
        tx.set_agent_role(agent_id, role)?;
        details.insert("role".into(), json!({"from": before.role, "to": role}));
    }
    let mut drain = false;
    if let Some(keys_wanted) = &changes.teams {
        let teams = teams_named(tx, keys_wanted)?;
        if keys(&teams) != keys(&before.teams) {
            let team_ids: Vec<i64> = teams.iter().map(|team| team.id).collect();
            tx.set_agent_teams(agent_id, &team_ids)?;
            details.insert("teams".into(), json!({"from": keys(&before.teams), "to": keys(&teams)}));
            drain = true;
        }
    }
    if let Some(given) = &changes.languages {
        let languages = language_skills(given)?;
        if languages != before.languages {
            tx.set_agent_languages(agent_id, &languages)?;
            details.insert("languages".into(), json!({"from": before.languages, "to": languages}));
            drain = true;
        }
    }
    if drain {
        queues::drain_agent_team(tx, desk, agent_id, now)?;
    }
    if !details.is_empty() {
        audit(tx, actor, "agent.updated", "agent", agent_id, details.into(), now)?;
    }
    Ok(())
}

/// Deactivates or reactivates an agent. A deactivated agent's sessions end and their
/// token is refused on the next request (the token's lookup asks for an active agent);
/// their open conversations go back to their teams' queues.
pub fn set_active(
    tx: &mut dyn Tx,
    desk: &Desk,
    actor: Option<i64>,
    agent_id: i64,
    active: bool,
    now: i64,
) -> DeskResult<Deactivation> {
    let changed = people::set_active(tx, agent_id, active)?;
    let returned = if active {
        Vec::new()
    } else {
        let by = actor.map_or(Actor::SYSTEM, Actor::agent);
        queues::return_assigned(tx, desk, agent_id, by, now)?
    };
    if changed {
        let action = if active { "agent.activated" } else { "agent.deactivated" };
        let details = if active {
            json!({})
        } else {
            json!({"returned_to_queue": returned})
        };
        audit(tx, actor, action, "agent", agent_id, details, now)?;
    }
    Ok(Deactivation { changed, returned })
}

/// A new API token for an active agent (stored as its hash); returns its id.
pub fn issue_token(
    tx: &mut dyn Tx,
    actor: Option<i64>,
    agent_id: i64,
    token_hash: &[u8],
    label: &str,
    now: i64,
) -> DeskResult<i64> {
    let credentials = tx
        .credentials(&AgentSelector::Id(agent_id))?
        .ok_or(DeskError::NotFound("agent"))?;
    if !credentials.active {
        return Err(DeskError::Conflict(
            "the agent is deactivated; a token would not let them in".into(),
        ));
    }
    let token_id = tx.insert_agent_token(agent_id, token_hash, label, now)?;
    let details = json!({"token_id": token_id, "label": label});
    audit(tx, actor, "token.issued", "agent", agent_id, details, now)?;
    Ok(token_id)
}

/// Revokes one of the agent's tokens: refused from the next request on.
pub fn revoke_token(tx: &mut dyn Tx, actor: Option<i64>, agent_id: i64, token_id: i64, now: i64) -> DeskResult<()> {
    existing(tx, agent_id)?;
    if !tx.revoke_agent_token(agent_id, token_id, now)? {
        return Err(DeskError::NotFound("token"));
    }
    audit(
        tx,
        actor,
        "token.revoked",
        "agent",
        agent_id,
        json!({"token_id": token_id}),
        now,
    )?;
    Ok(())
}

/// [`people::issue_link`], written to the audit log.
pub fn issue_link(
    tx: &mut dyn Tx,
    policy: &SignInPolicy,
    actor: Option<i64>,
    agent_id: i64,
    token_hash: &[u8],
    now: i64,
) -> DeskResult<i64> {
    let expires_at = people::issue_link(tx, policy, agent_id, token_hash, now)?;
    audit(
        tx,
        actor,
        "sign_in_link.issued",
        "agent",
        agent_id,
        json!({"expires_at": crate::model::Timestamp(expires_at)}),
        now,
    )?;
    Ok(expires_at)
}
