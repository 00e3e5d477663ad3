//! Saved replies' rows, the same on every backend: each backend selects these columns
//! (with its own placeholders) into this tuple, and the record and the view are made
//! here once.

use std::collections::BTreeMap;

use super::columns::json_column;
use super::{ReplyScope, SavedReply, StoreError, StoreResult};
use crate::model::Timestamp;
use crate::query::saved_replies::SavedReplyScope;
use crate::query::{AgentRef, SavedReplyView};

/// A saved reply with its team's key and the names of who created and last changed it.
pub(in crate::store) const SELECT_SAVED_REPLIES: &str =
    "SELECT r.id, t.key, r.agent_id, r.shortcut, r.title, r.bodies, r.fallback,
            r.created_by, cb.name, r.created_at, r.updated_by, ub.name, r.updated_at
     FROM saved_replies r
     LEFT JOIN teams t ON t.id = r.team_id
     JOIN agents cb ON cb.id = r.created_by
     JOIN agents ub ON ub.id = r.updated_by";

pub(in crate::store) type SavedReplyColumns = (
    i64,
    Option<String>,
    Option<i64>,
    String,
    String,
    String,
    String,
    i64,
    String,
    i64,
    i64,
    String,
    i64,
);

fn scope(team: Option<String>, agent: Option<i64>) -> StoreResult<ReplyScope> {
    match (team, agent) {
        (Some(team), None) => Ok(ReplyScope::Team(team)),
        (None, Some(agent)) => Ok(ReplyScope::Personal(agent)),
        _ => Err(StoreError::fatal("a saved reply is neither a team's nor an agent's")),
    }
}

pub(in crate::store) fn record(columns: SavedReplyColumns) -> StoreResult<SavedReply> {
    let (id, team, agent, shortcut, title, bodies, fallback, created_by, _, created_at, updated_by, _, updated_at) =
        columns;
    Ok(SavedReply {
        id,
        scope: scope(team, agent)?,
        shortcut,
        title,
        bodies: json_column::<BTreeMap<String, String>>(&bodies)?,
        fallback,
        created_by,
        created_at,
        updated_by,
        updated_at,
    })
}

pub(in crate::store) fn view(columns: SavedReplyColumns) -> StoreResult<SavedReplyView> {
    let (creator, updater) = ((columns.7, columns.8.clone()), (columns.10, columns.11.clone()));
    let reply = record(columns)?;
    let (scope, team, owner_id) = match reply.scope {
        ReplyScope::Team(team) => (SavedReplyScope::Team, Some(team), None),
        ReplyScope::Personal(agent) => (SavedReplyScope::Personal, None, Some(agent)),
    };
    Ok(SavedReplyView {
        id: reply.id,
        scope,
        team,
        owner_id,
        shortcut: reply.shortcut,
        title: reply.title,
        bodies: reply.bodies,
        fallback: reply.fallback,
        created_by: AgentRef {
            id: creator.0,
            name: creator.1,
        },
        created_at: Timestamp(reply.created_at),
        updated_by: AgentRef {
            id: updater.0,
            name: updater.1,
        },
        updated_at: Timestamp(reply.updated_at),
    })
}

/// The team's key and the agent of a scope, as the two columns hold them.
pub(in crate::store) fn scope_columns(scope: &ReplyScope) -> (Option<&str>, Option<i64>) {
    match scope {
        ReplyScope::Team(team) => (Some(team.as_str()), None),
        ReplyScope::Personal(agent) => (None, Some(*agent)),
    }
}
