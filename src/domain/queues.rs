//! Queues and assignment: a team's waiting conversations go, most urgent and then longest
//! waiting first, to its available agents with room, as the team's policy picks
//! ([`pick`], on plain values). A conversation in a language goes to an agent who reads
//! it when one has room; when readers are on shift but full, it waits up to the team's
//! `language_wait` for one (a timer the SLA scheduler fires), then anyone with room takes
//! it ([`choose`]). Conversations waiting for a reader do not hold up the ones behind them.

use crate::domain::DeskResult;
use crate::domain::desk::{Assignment, Desk, TeamPolicy};
use crate::domain::events::{self, Actor, AssignReason, DomainEvent};
use crate::model::millis;
use crate::store::{AgentLoad, AgentSelector, Conversation, ConversationPatch, Queued, Tx};

/// The timer of a conversation waiting for a reader of its language: when it fires, its
/// queue is drained again and anyone with room may take it.
pub const LANGUAGE_WAIT: &str = "language_wait";

/// How the conversation's language weighed in its assignment (`language_fit` in the
/// `conversation.assigned` event).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LanguageFit {
    /// The agent reads the conversation's language.
    Reader,
    /// Readers were on shift but full for the team's whole `language_wait`: anyone.
    AfterWait,
    /// No available member reads it: anyone, at once.
    NoReader,
}

impl LanguageFit {
    pub fn as_str(self) -> &'static str {
        match self {
            LanguageFit::Reader => "reader",
            LanguageFit::AfterWait => "after_wait",
            LanguageFit::NoReader => "no_reader",
        }
    }
}

/// What the queue does with one waiting conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// To this agent; how its language weighed, when it has one.
    Assign(i64, Option<LanguageFit>),
    /// It waits for a reader of its language until then.
    Wait(i64),
    /// Nobody has room (or the team assigns by hand).
    Nobody,
}

/// Whether the agent reads `language` (primary subtags compared: `pt` reads `pt-BR`).
pub fn reads(languages: &[String], language: &str) -> bool {
    languages
        .iter()
        .any(|tag| crate::domain::language::same_language(language, tag))
}

/// Whether the agent holds fewer open conversations than their capacity (their own,
/// else the team's).
pub fn has_room_now(policy: &TeamPolicy, agent: &AgentLoad) -> bool {
    agent.load < agent.capacity.unwrap_or(i64::from(policy.capacity))
}

/// The candidate the policy gives the next conversation.
fn first_by_policy<'a>(policy: &TeamPolicy, candidates: impl Iterator<Item = &'a AgentLoad>) -> Option<i64> {
    // Never assigned sorts first (None < Some), then the longest ago; ids break ties
    // so the order is the same on every run.
    match policy.assignment {
        Assignment::Manual => None,
        Assignment::RoundRobin => candidates
            .min_by_key(|agent| (agent.last_assigned_at, agent.id))
            .map(|agent| agent.id),
        Assignment::LeastLoaded => candidates
            .min_by_key(|agent| (agent.load, agent.last_assigned_at, agent.id))
            .map(|agent| agent.id),
    }
}

/// The agent the policy gives the next conversation, among the available members:
/// those below their capacity (their own, else the team's). `None`: nobody has room,
/// or the team assigns by hand.
pub fn pick(policy: &TeamPolicy, members: &[AgentLoad]) -> Option<i64> {
    first_by_policy(policy, members.iter().filter(|agent| has_room_now(policy, agent)))
}

/// Where the queue puts `queued` now, among the available `members`: a reader of its
/// language with room; else anyone with room when nobody on shift reads it or it has
/// waited the team's `language_wait`; else it waits until then.
pub fn choose(policy: &TeamPolicy, members: &[AgentLoad], queued: &Queued, now: i64) -> Choice {
    let Some(anyone) = pick(policy, members) else {
        return Choice::Nobody;
    };
    let Some(language) = queued.language.as_deref().filter(|tag| !tag.is_empty()) else {
        return Choice::Assign(anyone, None);
    };
    let free_readers = members
        .iter()
        .filter(|agent| has_room_now(policy, agent) && reads(&agent.languages, language));
    if let Some(reader) = first_by_policy(policy, free_readers) {
        return Choice::Assign(reader, Some(LanguageFit::Reader));
    }
    if !members.iter().any(|agent| reads(&agent.languages, language)) {
        return Choice::Assign(anyone, Some(LanguageFit::NoReader));
    }
    let until = queued.queued_at.saturating_add(millis(policy.language_wait));
    if now >= until {
        Choice::Assign(anyone, Some(LanguageFit::AfterWait))
    } else {
        Choice::Wait(until)
    }
}

/// Whether `agent_id` is among the members with room.
fn has_room(policy: &TeamPolicy, members: &[AgentLoad], agent_id: i64) -> bool {
    members
        .iter()
        .any(|agent| agent.id == agent_id && has_room_now(policy, agent))
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

/// What draining a queue did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Drained {
    pub assigned: u32,
    /// The earliest language wait it left running: the scheduler must look then.
    pub wait_until: Option<i64>,
}

/// How much of a queue's head one read takes after the first, which takes the head
/// alone: most drains assign one conversation or none.
const PAGE: usize = 32;

/// Assigns a team's waiting conversations while its available agents have room;
/// conversations waiting for a reader of their language get their timer and stay.
pub fn drain_team(tx: &mut dyn Tx, desk: &Desk, team_id: i64, team_key: &str, now: i64) -> DeskResult<Drained> {
    let mut drained = Drained::default();
    let Some(policy) = desk.team(team_key).filter(|team| team.assignment != Assignment::Manual) else {
        return Ok(drained);
    };
    // Those left waiting for a reader stay at the queue's head, in order: each read
    // skips them.
    let mut left = 0;
    let mut page = 1;
    let mut members: Option<Vec<AgentLoad>> = None;
    loop {
        let limit = left + page;
        let queue = tx.waiting(team_id, limit as u32)?;
        if queue.len() <= left {
            break;
        }
        if members.is_none() {
            members = Some(tx.available_agents(team_id)?);
        }
        let Some(members) = members.as_mut() else {
            break;
        };
        for queued in &queue[left..] {
            match choose(policy, members, queued, now) {
                Choice::Nobody => return Ok(drained),
                Choice::Wait(until) => {
                    tx.set_timer(queued.id, LANGUAGE_WAIT, until)?;
                    drained.wait_until = Some(drained.wait_until.map_or(until, |at| at.min(until)));
                    left += 1;
                }
                Choice::Assign(agent_id, fit) => {
                    let reason = AssignReason::Queue(policy.assignment.as_str(), fit);
                    assign(tx, desk, queued.id, agent_id, reason, now)?;
                    drained.assigned += 1;
                    // What the store would now say of them: one more open conversation,
                    // given now.
                    if let Some(agent) = members.iter_mut().find(|agent| agent.id == agent_id) {
                        agent.load += 1;
                        agent.last_assigned_at = Some(now);
                    }
                }
            }
        }
        if queue.len() < limit {
            break;
        }
        page = PAGE;
    }
    Ok(drained)
}

/// A conversation's wait for a reader of its language is over: its queue is drained
/// again, and anyone with room may take it (it may have been taken meanwhile).
pub fn language_wait_over(tx: &mut dyn Tx, desk: &Desk, conversation: &Conversation, now: i64) -> DeskResult<()> {
    if conversation.assignee.is_some() || conversation.status != crate::model::Status::Open {
        return Ok(());
    }
    if let (Some(team_id), Some(team_key)) = (conversation.team_id, &conversation.team_key) {
        drain_team(tx, desk, team_id, team_key, now)?;
    }
    Ok(())
}

/// Drains the queues of the teams `agent_id` belongs to (their capacity just freed),
/// home team first.
pub fn drain_agent_team(tx: &mut dyn Tx, desk: &Desk, agent_id: i64, now: i64) -> DeskResult<u32> {
    let Some(agent) = tx.agent(&AgentSelector::Id(agent_id))? else {
        return Ok(0);
    };
    let mut assigned = 0;
    for team in agent.teams {
        assigned += drain_team(tx, desk, team.id, &team.key, now)?.assigned;
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
/// Returns when the queue must be looked at again for a language wait it started.
pub fn assign_new(
    tx: &mut dyn Tx,
    desk: &Desk,
    conversation_id: i64,
    contact_id: i64,
    team_id: i64,
    team_key: &str,
    now: i64,
) -> DeskResult<Option<i64>> {
    let Some(policy) = desk.team(team_key).filter(|team| team.assignment != Assignment::Manual) else {
        return Ok(None);
    };
    if let Some(previous) = tx.previous_assignee(contact_id, conversation_id)?
        && has_room(policy, &tx.available_agents(team_id)?, previous)
    {
        assign(
            tx,
            desk,
            conversation_id,
            previous,
            AssignReason::ReturningCustomer,
            now,
        )?;
        return Ok(None);
    }
    Ok(drain_team(tx, desk, team_id, team_key, now)?.wait_until)
}

/// Every automatically assigning team's queue, at start (capacities may have grown).
pub fn drain_all(tx: &mut dyn Tx, desk: &Desk, now: i64) -> DeskResult<u32> {
    let mut assigned = 0;
    for key in desk.teams.keys() {
        if let Some(team) = tx.team(key)? {
            assigned += drain_team(tx, desk, team.id, key, now)?.assigned;
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
            languages: Vec::new(),
        }
    }

    fn reader(id: i64, load: i64, languages: &[&str]) -> AgentLoad {
        AgentLoad {
            languages: languages.iter().map(|tag| tag.to_string()).collect(),
            ..member(id, load, None)
        }
    }

    const MINUTE: i64 = 60_000;

    fn queued(language: Option<&str>, queued_at: i64) -> Queued {
        Queued {
            id: 1,
            language: language.map(str::to_owned),
            queued_at,
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

    #[test]
    fn a_reader_with_room_is_preferred_to_whoever_is_next() {
        let team = policy(Assignment::RoundRobin, 2);
        let members = [
            reader(1, 0, &["en"]),
            reader(2, 1, &["ar"]),
            reader(3, 0, &["th", "en"]),
        ];
        let thai = queued(Some("th"), 0);
        assert_eq!(
            choose(&team, &members, &thai, 0),
            Choice::Assign(3, Some(LanguageFit::Reader))
        );
        // Subtags aside: `pt` reads `pt-BR`, in any case.
        let tags = |tags: &[&str]| tags.iter().map(|tag| tag.to_string()).collect::<Vec<_>>();
        assert!(reads(&tags(&["pt"]), "pt-BR") && reads(&tags(&["PT-br"]), "pt"));
        assert!(!reads(&tags(&["pt"]), "") && !reads(&tags(&[]), "pt"));
        // No language: the policy's pick.
        assert_eq!(choose(&team, &members, &queued(None, 0), 0), Choice::Assign(1, None));
    }

    #[test]
    fn a_full_reader_is_waited_for_until_the_teams_language_wait_then_anyone_takes_it() {
        let team = policy(Assignment::RoundRobin, 2);
        let wait = millis(team.language_wait);
        let members = [reader(1, 0, &["en"]), reader(2, 2, &["th"])];
        let thai = queued(Some("th"), 10 * MINUTE);
        assert_eq!(
            choose(&team, &members, &thai, 10 * MINUTE),
            Choice::Wait(10 * MINUTE + wait)
        );
        assert_eq!(
            choose(&team, &members, &thai, 10 * MINUTE + wait),
            Choice::Assign(1, Some(LanguageFit::AfterWait))
        );
        // Nobody on shift reads it: anyone, at once.
        let arabic = queued(Some("ar"), 10 * MINUTE);
        assert_eq!(
            choose(&team, &members, &arabic, 10 * MINUTE),
            Choice::Assign(1, Some(LanguageFit::NoReader))
        );
        // Nobody with room at all: nobody, whatever the language.
        let full = [reader(1, 2, &["en"]), reader(2, 2, &["th"])];
        assert_eq!(choose(&team, &full, &thai, 10 * MINUTE + wait), Choice::Nobody);
        // No wait configured: a reader when one has room, else anyone at once.
        let mut eager = policy(Assignment::LeastLoaded, 2);
        eager.language_wait = std::time::Duration::ZERO;
        assert_eq!(
            choose(&eager, &members, &thai, 10 * MINUTE),
            Choice::Assign(1, Some(LanguageFit::AfterWait))
        );
    }
}
