//! Who may do what: the one place permission decisions are made. The API asks before it
//! acts on a caller's behalf; the rules ask where the answer depends on what the unit of
//! work finds (the conversation's team). Pure: a caller and what they act on, in; a
//! refusal naming what would allow it, out.

use crate::domain::{DeskError, DeskResult};
use crate::model::Role;
use crate::query::{TeamsSeen, Visibility};
use crate::store::{Conversation, ReplyScope};

/// Whose conversations agents and supervisors see (`agents.visibility`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VisibilityPolicy {
    /// Their teams' and those assigned to them; admins see all.
    #[default]
    Team,
    /// Everyone sees every conversation.
    All,
}

/// The agent a request acts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub id: i64,
    pub role: Role,
    /// Their teams' keys, the home team first.
    pub teams: Vec<String>,
    pub policy: VisibilityPolicy,
}

/// Agents and supervisors see their teams' conversations and those assigned to them;
/// admins see every team's (`agents.visibility = "all"`: everyone does). The list, the
/// detail, search, attachments, contacts, the stream and the console all ask here, so an
/// agent sees the same conversations whichever they use.
pub fn visibility(caller: &Caller) -> Visibility {
    if caller.policy == VisibilityPolicy::All || caller.role == Role::Admin {
        return Visibility::All;
    }
    Visibility::Teams {
        agent_id: caller.id,
        teams: caller.teams.clone(),
    }
}

/// Whether the caller may read a conversation of `team` assigned to `assignee`.
pub fn may_read(caller: &Caller, team: Option<&str>, assignee: Option<i64>) -> bool {
    visibility(caller).allows(team, assignee)
}

/// [`may_read`], refused with what would allow it. The refusal is `NotFound`: an agent
/// learns nothing of other teams' conversations, not even that the number is taken.
pub fn check_read(caller: &Caller, team: Option<&str>, assignee: Option<i64>) -> DeskResult<()> {
    if may_read(caller, team, assignee) {
        return Ok(());
    }
    Err(DeskError::NotFound("conversation"))
}

/// Deactivating agents and issuing sign-in links: admins only.
pub fn may_manage_agents(caller: &Caller) -> DeskResult<()> {
    if caller.role == Role::Admin {
        return Ok(());
    }
    Err(DeskError::Forbidden("only admins manage agents".into()))
}

/// The supervisors' view (every agent's availability and load): supervisors and admins.
pub fn may_supervise(caller: &Caller) -> DeskResult<()> {
    if caller.role != Role::Agent {
        return Ok(());
    }
    Err(DeskError::Forbidden(
        "only supervisors and admins see every agent".into(),
    ))
}

/// What-if routing reads the whole desk's recent conversations (their counts and
/// examples cross every team): those who see every conversation, so admins, and
/// supervisors when `agents.visibility = "all"`.
pub fn may_replay_routing(caller: &Caller) -> DeskResult<()> {
    if caller.role != Role::Agent && visibility(caller) == Visibility::All {
        return Ok(());
    }
    Err(DeskError::Forbidden(
        "replaying routing reads every team's conversations: admins (and supervisors when agents see all teams)".into(),
    ))
}

/// Escalating takes a member of the conversation's team, or a supervisor or admin.
pub fn may_escalate(caller: &Caller, conversation: &Conversation) -> DeskResult<()> {
    let member = conversation
        .team_key
        .as_ref()
        .is_some_and(|team| caller.teams.contains(team));
    if member || caller.role != Role::Agent {
        return Ok(());
    }
    Err(DeskError::Forbidden(format!(
        "only members of team `{}` or supervisors may escalate conversation #{}",
        conversation.team_key.as_deref().unwrap_or("-"),
        conversation.id
    )))
}

/// Agents set their own availability; supervisors and admins anyone's (an agent who left
/// without signing off).
pub fn may_set_others_availability(caller: &Caller) -> DeskResult<()> {
    if caller.role != Role::Agent {
        return Ok(());
    }
    Err(DeskError::Forbidden(
        "only supervisors and admins may set another agent's availability; use `me` for your own".into(),
    ))
}

/// Event subscriptions send the desk's data to other systems: admins only.
pub fn may_manage_subscriptions(caller: &Caller) -> DeskResult<()> {
    if caller.role == Role::Admin {
        return Ok(());
    }
    Err(DeskError::Forbidden("only admins manage subscriptions".into()))
}

/// A person's whole record leaves the desk (export) or is destroyed (erasure): admins
/// only, like the subscriptions that send data elsewhere.
pub fn may_handle_personal_data(caller: &Caller) -> DeskResult<()> {
    if caller.role == Role::Admin {
        return Ok(());
    }
    Err(DeskError::Forbidden(
        "only admins export or erase a contact's data".into(),
    ))
}

/// Whose saved replies a caller sees: their own personal ones, and those of the teams
/// whose conversations they see (their teams; every team for admins, or for everyone
/// under `agents.visibility = "all"`). Another agent's personal replies are theirs
/// alone, whatever the role.
pub fn saved_replies_seen(caller: &Caller) -> TeamsSeen {
    match visibility(caller) {
        Visibility::All => TeamsSeen::All,
        Visibility::Teams { teams, .. } => TeamsSeen::Only(teams),
    }
}

pub fn may_see_saved_reply(caller: &Caller, scope: &ReplyScope) -> bool {
    match scope {
        ReplyScope::Personal(owner) => *owner == caller.id,
        ReplyScope::Team(team) => saved_replies_seen(caller).includes(team),
    }
}

/// An agent keeps their own saved replies; a team's are its supervisors' and admins'
/// to write, because every member sends them.
pub fn may_manage_saved_reply(caller: &Caller, scope: &ReplyScope) -> DeskResult<()> {
    match scope {
        ReplyScope::Personal(owner) if *owner == caller.id => Ok(()),
        ReplyScope::Personal(_) => Err(DeskError::NotFound("saved reply")),
        ReplyScope::Team(team) if caller.role != Role::Agent => {
            if saved_replies_seen(caller).includes(team) {
                Ok(())
            } else {
                Err(DeskError::Forbidden(format!(
                    "team `{team}` is not one of yours; supervisors manage their own teams' saved replies"
                )))
            }
        }
        ReplyScope::Team(team) => Err(DeskError::Forbidden(format!(
            "only supervisors and admins manage team `{team}`'s saved replies; keep your own without `team`"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Priority;
    use crate::store::{InboxRef, TeamRow};

    fn caller(role: Role, team: &str) -> Caller {
        Caller {
            id: 1,
            role,
            teams: vec![team.into()],
            policy: VisibilityPolicy::Team,
        }
    }

    fn conversation_of(team: &str) -> Conversation {
        let inbox = InboxRef {
            id: 1,
            key: "shop".into(),
            name: "Shop".into(),
            channel: crate::channels::registry::known::WEBHOOK,
        };
        let team = TeamRow {
            id: 1,
            key: team.into(),
            name: team.into(),
        };
        Conversation::opened(42, &inbox, 1, Priority::Normal, Some(&team))
    }

    #[test]
    fn an_agent_escalates_only_their_own_teams_conversations_and_supervisors_any() {
        let billing = conversation_of("billing");
        assert!(may_escalate(&caller(Role::Agent, "billing"), &billing).is_ok());
        let refused = may_escalate(&caller(Role::Agent, "support"), &billing).unwrap_err();
        assert!(
            matches!(&refused, DeskError::Forbidden(message) if message.contains("team `billing`")),
            "{refused}"
        );
        assert!(may_escalate(&caller(Role::Supervisor, "support"), &billing).is_ok());
    }

    #[test]
    fn personal_saved_replies_are_their_owners_alone_and_team_ones_their_leads_to_manage() {
        let ada = caller(Role::Agent, "billing");
        let lead = Caller {
            id: 2,
            ..caller(Role::Supervisor, "support")
        };
        let own = ReplyScope::Personal(ada.id);
        let billing = ReplyScope::Team("billing".into());
        let technical = ReplyScope::Team("technical".into());
        assert!(may_see_saved_reply(&ada, &own) && may_manage_saved_reply(&ada, &own).is_ok());
        assert!(!may_see_saved_reply(&lead, &own), "not even a supervisor");
        assert!(matches!(
            may_manage_saved_reply(&lead, &own),
            Err(DeskError::NotFound(_))
        ));
        assert!(may_see_saved_reply(&ada, &billing) && !may_see_saved_reply(&ada, &technical));
        assert!(matches!(
            may_manage_saved_reply(&ada, &billing),
            Err(DeskError::Forbidden(_))
        ));
        // A supervisor leads their own teams' replies; an admin every team's.
        let support = ReplyScope::Team("support".into());
        assert!(may_see_saved_reply(&lead, &support) && may_manage_saved_reply(&lead, &support).is_ok());
        assert!(!may_see_saved_reply(&lead, &technical));
        assert!(matches!(
            may_manage_saved_reply(&lead, &technical),
            Err(DeskError::Forbidden(_))
        ));
        let admin = caller(Role::Admin, "support");
        assert!(may_see_saved_reply(&admin, &technical) && may_manage_saved_reply(&admin, &technical).is_ok());
    }

    #[test]
    fn only_admins_manage_subscriptions_and_only_leads_set_others_availability() {
        assert!(may_manage_subscriptions(&caller(Role::Admin, "support")).is_ok());
        assert!(may_manage_subscriptions(&caller(Role::Supervisor, "support")).is_err());
        assert!(may_set_others_availability(&caller(Role::Agent, "support")).is_err());
        assert!(may_set_others_availability(&caller(Role::Supervisor, "support")).is_ok());
    }
}
