//! People at the console: signing in with a password, setting it through a one-time
//! link, sessions and their end. The password hashing itself (slow on purpose) happens
//! before or after these units, never inside one: a unit holds the store's writer.

use crate::domain::{DeskError, DeskResult};
use crate::store::{AgentSelector, Credentials, NewSession, Tx};

/// How sign-ins are limited and how long what they hand out lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignInPolicy {
    /// Failed sign-ins in a row that lock the agent out.
    pub max_failures: i64,
    pub lockout_ms: i64,
    pub session_ms: i64,
    pub link_ms: i64,
}

/// Why a sign-in was refused. Unknown names, wrong passwords, deactivated agents and
/// agents without a password all read the same to the caller, so names cannot be probed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Wrong,
    /// Too many failures; try again at this instant.
    LockedUntil(i64),
}

/// A new session's secrets, made by the caller (random) and stored hashed.
pub struct SessionGrant<'a> {
    pub token_hash: &'a [u8],
    pub csrf_token: &'a str,
}

/// The agent's credentials if a sign-in may be tried now; a lock still running refuses
/// before any password is checked.
pub fn sign_in_candidate(tx: &mut dyn Tx, name: &str, now: i64) -> DeskResult<Result<Credentials, Refusal>> {
    let Some(credentials) = tx.credentials(&AgentSelector::Name(name.to_owned()))? else {
        return Ok(Err(Refusal::Wrong));
    };
    if let Some(until) = credentials.locked_until.filter(|until| *until > now) {
        return Ok(Err(Refusal::LockedUntil(until)));
    }
    Ok(Ok(credentials))
}

/// Records a checked password: a session when it was right, a failure (and a lock after
/// too many) when not. Returns the session's expiry.
pub fn finish_sign_in(
    tx: &mut dyn Tx,
    policy: &SignInPolicy,
    agent_id: i64,
    verified: bool,
    grant: &SessionGrant<'_>,
    now: i64,
) -> DeskResult<Result<i64, Refusal>> {
    let Some(credentials) = tx.credentials(&AgentSelector::Id(agent_id))? else {
        return Ok(Err(Refusal::Wrong));
    };
    if let Some(until) = credentials.locked_until.filter(|until| *until > now) {
        return Ok(Err(Refusal::LockedUntil(until)));
    }
    if !verified || !credentials.active {
        // A lock that ran out starts the count again.
        let before = if credentials.locked_until.is_some() {
            0
        } else {
            credentials.failed_sign_ins
        };
        let failed = before + 1;
        if failed >= policy.max_failures {
            let until = now + policy.lockout_ms;
            tx.set_sign_in_failures(agent_id, 0, Some(until))?;
            return Ok(Err(Refusal::LockedUntil(until)));
        }
        tx.set_sign_in_failures(agent_id, failed, None)?;
        return Ok(Err(Refusal::Wrong));
    }
    tx.set_sign_in_failures(agent_id, 0, None)?;
    tx.delete_expired_sessions(now)?;
    Ok(Ok(begin_session(tx, policy, agent_id, grant, now)?))
}

/// A new session of `policy`'s lifetime; returns its expiry.
fn begin_session(
    tx: &mut dyn Tx,
    policy: &SignInPolicy,
    agent_id: i64,
    grant: &SessionGrant<'_>,
    now: i64,
) -> DeskResult<i64> {
    let expires_at = now + policy.session_ms;
    let session = NewSession {
        token_hash: grant.token_hash,
        agent_id,
        csrf_token: grant.csrf_token,
        expires_at,
    };
    tx.insert_session(&session, now)?;
    Ok(expires_at)
}

/// A new one-time link for the agent (their earlier unused ones stop working); returns
/// its expiry.
pub fn issue_link(
    tx: &mut dyn Tx,
    policy: &SignInPolicy,
    agent_id: i64,
    token_hash: &[u8],
    now: i64,
) -> DeskResult<i64> {
    let Some(credentials) = tx.credentials(&AgentSelector::Id(agent_id))? else {
        return Err(DeskError::NotFound("agent"));
    };
    if !credentials.active {
        return Err(DeskError::Conflict(
            "the agent is deactivated; a sign-in link would not let them in".into(),
        ));
    }
    let expires_at = now + policy.link_ms;
    tx.replace_sign_in_link(agent_id, token_hash, expires_at, now)?;
    Ok(expires_at)
}

/// The agent a one-time link would let set a password, if it still may.
pub fn link_holder(tx: &mut dyn Tx, link_hash: &[u8], now: i64) -> DeskResult<i64> {
    let refused = || DeskError::Invalid {
        field: "token",
        problem: "is not a valid sign-in link: it was used, replaced or has expired; ask an admin for a new one".into(),
    };
    let link = tx.sign_in_link(link_hash)?.ok_or_else(refused)?;
    if link.used_at.is_some() || link.expires_at <= now {
        return Err(refused());
    }
    match tx.credentials(&AgentSelector::Id(link.agent_id))? {
        Some(credentials) if credentials.active => Ok(link.agent_id),
        _ => Err(refused()),
    }
}

/// Sets a password through a one-time link: the link is spent, every other session of
/// the agent ends, and a new one begins. Returns the agent and the session's expiry.
pub fn set_password_with_link(
    tx: &mut dyn Tx,
    policy: &SignInPolicy,
    link_hash: &[u8],
    password_hash: &str,
    grant: &SessionGrant<'_>,
    now: i64,
) -> DeskResult<(i64, i64)> {
    let agent_id = link_holder(tx, link_hash, now)?;
    tx.use_sign_in_link(link_hash, now)?;
    let expires_at = replace_password(tx, policy, agent_id, password_hash, grant, now)?;
    Ok((agent_id, expires_at))
}

/// A new password: every session of the agent ends (a stolen cookie with it), and the
/// one making the change gets a new session. Returns its expiry.
pub fn replace_password(
    tx: &mut dyn Tx,
    policy: &SignInPolicy,
    agent_id: i64,
    password_hash: &str,
    grant: &SessionGrant<'_>,
    now: i64,
) -> DeskResult<i64> {
    tx.set_password_hash(agent_id, password_hash)?;
    tx.delete_agent_sessions(agent_id)?;
    begin_session(tx, policy, agent_id, grant, now)
}

/// Deactivates or reactivates an agent. Deactivation ends their sessions (their token
/// stops working with it, see the queries) and makes them unavailable; conversations
/// they hold stay assigned for a supervisor to hand on. Says whether anything changed.
pub fn set_active(tx: &mut dyn Tx, agent_id: i64, active: bool) -> DeskResult<bool> {
    if tx.credentials(&AgentSelector::Id(agent_id))?.is_none() {
        return Err(DeskError::NotFound("agent"));
    }
    let changed = tx.set_agent_active(agent_id, active)?;
    if !active {
        tx.delete_agent_sessions(agent_id)?;
    }
    Ok(changed)
}
