//! Escalation: a conversation moved to another team (functional: the expertise it needs;
//! hierarchical: the next tier of its department) with a summary the receiving team
//! reads first, by an agent or by a breached SLA clock.

use serde_json::json;

use crate::domain::access::{self, Caller};
use crate::domain::desk::Desk;
use crate::domain::events::{self, Actor, AssignReason, DomainEvent, EscalationRecord};
use crate::domain::{DeskError, DeskResult, clocks, queues};
use crate::model::{ActorKind, Direction, MessageKind, Status};
use crate::store::{AgentSelector, Conversation, ConversationPatch, NewMessage, Tx};

/// Where an escalation goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EscalationTarget {
    /// A named team (functional escalation, or hierarchical if it is a higher tier of
    /// the same department).
    Team(String),
    /// The next tier of the current team's department (or its `escalate_to`).
    NextTier,
}

/// An agent's request to escalate.
#[derive(Debug, Clone)]
pub struct Escalation {
    pub conversation_id: i64,
    pub agent: Caller,
    pub to: EscalationTarget,
    pub summary: String,
    pub reason: Option<String>,
    pub now: i64,
}

/// An agent's escalation: checks who may, resolves the target, then moves it.
pub fn escalate(tx: &mut dyn Tx, desk: &Desk, request: &Escalation) -> DeskResult<()> {
    let Escalation {
        conversation_id,
        agent,
        to: target,
        summary,
        reason,
        now,
    } = request;
    let (conversation_id, now) = (*conversation_id, *now);
    let conversation = clocks::state(tx, conversation_id)?;
    access::may_escalate(agent, &conversation)?;
    if matches!(conversation.status, Status::Resolved | Status::Closed) {
        return Err(DeskError::Conflict(format!(
            "conversation #{conversation_id} is {}; reopen it before escalating",
            conversation.status
        )));
    }
    let current = conversation.team_key.as_deref().and_then(|key| desk.team(key));
    let to = match target {
        EscalationTarget::NextTier => current.and_then(|team| team.next_tier.clone()).ok_or_else(|| {
            DeskError::Conflict(format!(
                "team `{}` has no higher tier to escalate to; name a team instead",
                conversation.team_key.as_deref().unwrap_or("-")
            ))
        })?,
        EscalationTarget::Team(key) => {
            if desk.team(key).is_none() || tx.team(key)?.is_none() {
                return Err(DeskError::Invalid {
                    field: "to.team",
                    problem: format!("`{key}` is not a configured team"),
                });
            }
            if conversation.team_key.as_deref() == Some(key) {
                return Err(DeskError::Conflict(format!(
                    "conversation #{conversation_id} is already in team `{key}`"
                )));
            }
            key.clone()
        }
    };
    move_to_team(
        tx,
        desk,
        &conversation,
        &to,
        summary,
        reason.as_deref(),
        Some(agent.id),
        now,
    )
}

/// Moves a conversation to another team's queue with a summary the receiving team
/// reads first: the note, the event, the count of transfers, new SLA targets, and
/// whoever of the new team is free.
#[allow(clippy::too_many_arguments)]
pub fn move_to_team(
    tx: &mut dyn Tx,
    desk: &Desk,
    conversation: &Conversation,
    to: &str,
    summary: &str,
    reason: Option<&str>,
    agent_id: Option<i64>,
    now: i64,
) -> DeskResult<()> {
    let team = tx.team(to)?.ok_or_else(|| DeskError::Invalid {
        field: "to.team",
        problem: format!("`{to}` is not a configured team"),
    })?;
    let from_policy = conversation.team_key.as_deref().and_then(|key| desk.team(key));
    let to_policy = desk.team(to);
    let to_tier = to_policy.map_or(0, |team| i64::from(team.tier));
    let hierarchical = match (from_policy, to_policy) {
        (Some(from), Some(to)) => from.department == to.department && to.tier > from.tier,
        _ => false,
    };
    let actor = Actor::agent_or_system(agent_id);
    let note_id = tx.insert_message(
        &NewMessage {
            conversation_id: conversation.id,
            inbox_id: conversation.inbox_id,
            direction: Direction::Note,
            kind: MessageKind::Note,
            author_kind: if agent_id.is_some() {
                ActorKind::Agent
            } else {
                ActorKind::System
            },
            author_id: agent_id,
            text: summary,
            html: None,
            external_id: None,
            language: None,
            metadata: Some(
                json!({"escalation": {"kind": if hierarchical { "hierarchical" } else { "functional" }, "to": to}})
                    .to_string(),
            ),
        },
        now,
    )?;
    let record = EscalationRecord {
        hierarchical,
        transfer: false,
        from_team: conversation.team_key.clone(),
        from_tier: conversation.tier,
        to_team: to.to_owned(),
        to_tier,
        to_name: team.name.clone(),
        summary: summary.to_owned(),
        reason: reason.map(str::to_owned),
        by: agent_id,
        note_id,
        at: now,
    };
    // The assignee stays only if they belong to the new team.
    let keeps_assignee = match conversation.assignee {
        Some(agent) => tx
            .agent(&AgentSelector::Id(agent))?
            .is_some_and(|agent| agent.teams.iter().any(|member_of| member_of.id == team.id)),
        None => false,
    };
    let assignee = conversation.assignee.filter(|_| keeps_assignee);
    let moved = ConversationPatch {
        team_id: Some(Some(team.id)),
        tier: Some(to_tier),
        transfer_count: Some(conversation.transfer_count + 1),
        queued_at: Some(now),
        escalation: Some(record.to_json()),
        assignee: Some(assignee),
        updated_at: Some(now),
        last_message_id: Some(note_id),
        last_activity_at: Some(now),
        ..ConversationPatch::default()
    };
    tx.update_conversation(conversation.id, &moved)?;
    let mut recorded = vec![(actor, DomainEvent::Escalated(record))];
    if conversation.assignee.is_some() && assignee.is_none() {
        recorded.push((
            actor,
            DomainEvent::Assigned {
                from: conversation.assignee,
                to: None,
                reason: Some(AssignReason::Escalated),
            },
        ));
    }
    events::record(tx, desk, conversation.id, &recorded, now)?;
    clocks::retarget(tx, desk, conversation, now)?;
    queues::drain_team(tx, desk, team.id, to, now)?;
    if let Some(freed) = conversation.assignee.filter(|_| assignee.is_none()) {
        queues::drain_agent_team(tx, desk, freed, now)?;
    }
    Ok(())
}
