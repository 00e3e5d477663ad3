//! Queues and assignment: a team's waiting conversations go, most urgent and then longest
//! waiting first, to its available agents with room, as the team's policy picks
//! ([`pick`], on plain values).

use crate::domain::DeskResult;
use crate::domain::desk::{Assignment, Desk, TeamPolicy};
use crate::domain::events::{self, Actor, AssignReason, DomainEvent};
use crate::store::{AgentLoad, AgentSelector, ConversationPatch, Tx};

/// The agent the policy gives the next conversation, among the available members:
/// those below their capacity (their own, else the team's). `None`: nobody has room,
/// or the team assigns by hand.
pub fn pick(policy: &TeamPolicy, members: &[AgentLoad]) -> Option<i64> {
    let mut free: Vec<&AgentLoad> = members
        .iter()
        .filter(|agent| agent.load < agent.capacity.unwrap_or(i64::from(policy.capacity)))
        .collect();
    // Never assigned sorts first (None < Some), then the longest ago; ids break ties
    // so the order is the same on every run.
    match policy.assignment {
        Assignment::Manual => None,
        Assignment::RoundRobin => {
            free.sort_by_key(|agent| (agent.last_assigned_at, agent.id));
            free.first().map(|agent| agent.id)
        }
        Assignment::LeastLoaded => {
            free.sort_by_key(|agent| (agent.load, agent.last_assigned_at, agent.id));
            free.first().map(|agent| agent.id)
        }
    }
}

/// Whether `agent_id` is among the members with room.
fn has_room(policy: &TeamPolicy, members: &[AgentLoad], agent_id: i64) -> bool {
    members
        .iter()
        .any(|agent| agent.id == agent_id && agent.load < agent.capacity.unwrap_or(i64::from(policy.capacity)))
}

fn assign(
    tx: &mut dyn Tx,
    desk: &Desk,
    conversation_id: i64,
    agent_id: i64,
    reason: AssignReason,
    now: i64,
) -> DeskResult<()> {
    let assigned = ConversationPatch {
        assignee: Some(Some(agent_id)),
        updated_at: Some(now),
        ..ConversationPatch::default()
    };
    tx.update_conversation(conversation_id, &assigned)?;
    tx.note_assignment(agent_id, now)?;
    let event = DomainEvent::Assigned {
        from: None,
        to: Some(agent_id),
        reason: Some(reason),
    };
    events::record(tx, desk, conversation_id, &[(Actor::SYSTEM, event)], now)?;
    Ok(())
}

/// Assigns a team's waiting conversations while its available agents have room.
/// Returns how many it assigned.
pub fn drain_team(tx: &mut dyn Tx, desk: &Desk, team_id: i64, team_key: &str, now: i64) -> DeskResult<u32> {
    let Some(policy) = desk.team(team_key).filter(|team| team.assignment != Assignment::Manual) else {
        return Ok(0);
    };
    let mut assigned = 0;
    while let Some(conversation_id) = tx.next_waiting(team_id)? {
        let members = tx.available_agents(team_id)?;
        let Some(agent) = pick(policy, &members) else {
            break;
        };
        assign(
            tx,
            desk,
            conversation_id,
            agent,
            AssignReason::Queue(policy.assignment.as_str()),
            now,
        )?;
        assigned += 1;
    }
    Ok(assigned)
}

/// Drains the queues of the teams `agent_id` belongs to (their capacity just freed),
/// home team first.
pub fn drain_agent_team(tx: &mut dyn Tx, desk: &Desk, agent_id: i64, now: i64) -> DeskResult<u32> {
    let Some(agent) = tx.agent(&AgentSelector::Id(agent_id))? else {
        return Ok(0);
    };
    let mut assigned = 0;
    for team in agent.teams {
        assigned += drain_team(tx, desk, team.id, &team.key, now)?;
    }
    Ok(assigned)
}

/// Puts the agent's open conversations back in their teams' queues (the agent was
/// deactivated): each keeps its place (`queued_at`), and the queues assign them again at
/// once where someone has room. Returns the conversations returned.
pub fn return_assigned(tx: &mut dyn Tx, desk: &Desk, agent_id: i64, by: Actor, now: i64) -> DeskResult<Vec<i64>> {
    let returned = tx.open_assigned(agent_id)?;
    let mut teams = std::collections::BTreeMap::new();
    for &conversation_id in &returned {
        let Some(conversation) = tx.conversation(conversation_id)? else {
            continue;
        };
        let unassigned = ConversationPatch {
            assignee: Some(None),
            updated_at: Some(now),
            ..ConversationPatch::default()
        };
        tx.update_conversation(conversation_id, &unassigned)?;
        let event = DomainEvent::Assigned {
            from: Some(agent_id),
            to: None,
            reason: Some(AssignReason::Deactivated),
        };
        events::record(tx, desk, conversation_id, &[(by, event)], now)?;
        if let (Some(team_id), Some(key)) = (conversation.team_id, conversation.team_key) {
            teams.insert(team_id, key);
        }
    }
    for (team_id, key) in teams {
        drain_team(tx, desk, team_id, &key, now)?;
    }
    Ok(returned)
}

/// A new conversation of a returning customer goes to the agent who last had one of
/// theirs, if that agent is in the team, available and has room; else to the queue.
pub fn assign_new(
    tx: &mut dyn Tx,
    desk: &Desk,
    conversation_id: i64,
    contact_id: i64,
    team_id: i64,
    team_key: &str,
    now: i64,
) -> DeskResult<()> {
    let Some(policy) = desk.team(team_key).filter(|team| team.assignment != Assignment::Manual) else {
        return Ok(());
    };
    if let Some(previous) = tx.previous_assignee(contact_id, conversation_id)?
        && has_room(policy, &tx.available_agents(team_id)?, previous)
    {
        return assign(
            tx,
            desk,
            conversation_id,
            previous,
            AssignReason::ReturningCustomer,
            now,
        );
    }
    drain_team(tx, desk, team_id, team_key, now).map(|_| ())
}

/// Every automatically assigning team's queue, at start (capacities may have grown).
pub fn drain_all(tx: &mut dyn Tx, desk: &Desk, now: i64) -> DeskResult<u32> {
    let mut assigned = 0;
    for key in desk.teams.keys() {
        if let Some(team) = tx.team(key)? {
            assigned += drain_team(tx, desk, team.id, key, now)?;
        }
    }
    Ok(assigned)
}

/// Marks an agent available (their team's queue is then served) or not.
pub fn set_availability(tx: &mut dyn Tx, desk: &Desk, agent_id: i64, available: bool, now: i64) -> DeskResult<()> {
    tx.set_agent_available(agent_id, available)?;
    if available {
        drain_agent_team(tx, desk, agent_id, now)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(assignment: Assignment, capacity: u32) -> TeamPolicy {
        let mut team = Desk::plain(&[("support", "Support")]).teams.remove("support").unwrap();
        team.assignment = assignment;
        team.capacity = capacity;
        team
    }

    fn member(id: i64, load: i64, last_assigned_at: Option<i64>) -> AgentLoad {
        AgentLoad {
            id,
            capacity: None,
            load,
            last_assigned_at,
        }
    }

    #[test]
    fn round_robin_gives_the_next_to_whoever_waited_longest_never_assigned_first() {
        let members = [member(1, 0, Some(50)), member(2, 3, Some(10)), member(3, 0, None)];
        assert_eq!(pick(&policy(Assignment::RoundRobin, 5), &members), Some(3));
        assert_eq!(pick(&policy(Assignment::RoundRobin, 5), &members[..2]), Some(2));
    }

    #[test]
    fn least_loaded_gives_it_to_the_emptiest_hands_then_the_longest_waiting() {
        let members = [member(1, 2, Some(5)), member(2, 1, Some(50)), member(3, 1, Some(10))];
        assert_eq!(pick(&policy(Assignment::LeastLoaded, 5), &members), Some(3));
    }

    #[test]
    fn nobody_at_capacity_is_picked_and_an_own_capacity_beats_the_teams() {
        let full = [member(1, 2, None), member(2, 2, None)];
        assert_eq!(pick(&policy(Assignment::RoundRobin, 2), &full), None);
        let roomy = AgentLoad {
            capacity: Some(3),
            ..member(2, 2, None)
        };
        assert_eq!(
            pick(&policy(Assignment::RoundRobin, 2), &[member(1, 2, None), roomy]),
            Some(2)
        );
        let tight = AgentLoad {
            capacity: Some(1),
            ..member(3, 1, None)
        };
        assert!(!has_room(&policy(Assignment::RoundRobin, 5), &[tight], 3));
    }

    #[test]
    fn a_manual_team_assigns_nobody() {
        assert_eq!(pick(&policy(Assignment::Manual, 5), &[member(1, 0, None)]), None);
    }
}
