//! What agents do to a conversation: reply (it leaves by the customer's channel), write
//! an internal note (it never leaves), change its status, priority, team or owner; and
//! the agents themselves joining the desk.

use serde_json::json;
use switchboard_connector_core::OutboundAttachment;

use crate::domain::clocks::{self, ClockChange};
use crate::domain::desk::Desk;
use crate::domain::events::{self, Actor, AssignReason, DomainEvent, EscalationRecord, MessageNews};
use crate::domain::{DeskError, DeskResult, mentions, queues};
use crate::model::clock::{ClockKind, ClockState};
use crate::model::{ActorKind, Direction, MessageKind, Status};
use crate::store::{AgentSelector, Conversation, ConversationPatch, NewAttachment, NewMessage, NewResponse, Tx};

/// An agent's reply (sent by the conversation's channel) or internal note (never sent).
#[derive(Debug, Clone)]
pub struct NewAgentMessage {
    pub conversation_id: i64,
    pub agent_id: i64,
    pub text: String,
    pub private: bool,
    /// Files sent with a reply (channels that carry files only) or kept with a note.
    pub attachments: Vec<OutboundAttachment>,
    /// The saved reply the text came from and the language of its body: kept with the
    /// message (`details.saved_reply`, and its language), so reports can count uses.
    pub saved_reply: Option<(i64, String)>,
    /// The language of a reply's text when no saved reply tells it: detected by
    /// [`crate::domain::service::Service::add_agent_message`] before its unit of work.
    pub language: Option<String>,
    /// Agents a note mentions (`@name`), already found allowed to read the conversation.
    pub mentions: Vec<i64>,
    pub now: i64,
    pub expires_at: i64,
}

/// A change of a conversation by an agent; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct ConversationChanges {
    pub status: Option<crate::model::Status>,
    pub priority: Option<crate::model::Priority>,
    /// `Some(None)` unassigns.
    pub assignee: Option<Option<AgentSelector>>,
    pub team: Option<String>,
    /// What the receiving team needs to know: required with a change of `team`.
    pub summary: Option<String>,
    pub labels: Option<LabelChanges>,
}

/// Labels an agent adds to and removes from a conversation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelChanges {
    pub add: Vec<String>,
    pub remove: Vec<String>,
}

/// Labels one conversation may carry: enough for any desk's scheme, few enough that a
/// list stays readable.
pub const MAX_LABELS: usize = 20;

impl ConversationChanges {
    pub fn is_empty(&self) -> bool {
        self.status.is_none()
            && self.priority.is_none()
            && self.assignee.is_none()
            && self.team.is_none()
            && self.labels.is_none()
    }
}

/// Stores an agent's reply (with its outbox row) or note; returns the message id.
pub fn add_agent_message(tx: &mut dyn Tx, desk: &Desk, new: &NewAgentMessage) -> DeskResult<i64> {
    let conversation = clocks::state(tx, new.conversation_id)?;
    // A file the customer would never get must not look sent.
    if !new.private && !new.attachments.is_empty() && !conversation.channel.capabilities().files_out {
        return Err(DeskError::Invalid {
            field: "attachments",
            problem: format!(
                "the {} channel of conversation #{} does not carry files; send them by link, \
                 or attach them to an internal note",
                conversation.channel, new.conversation_id
            ),
        });
    }
    if !new.private && conversation.status == Status::Closed {
        return Err(DeskError::Conflict(format!(
            "conversation #{} is closed; reopen it (status open) before replying",
            new.conversation_id
        )));
    }
    // The channel carries free-form replies only for a while after the customer wrote
    // (WhatsApp: 24 hours); a reply the channel would refuse is refused here, at once.
    let capabilities = conversation.channel.capabilities();
    if !new.private
        && let Some(window) = capabilities.reply_window
    {
        let wrote_at = tx.last_customer_message_at(new.conversation_id)?;
        if !capabilities.window_open(wrote_at, new.now) {
            return Err(DeskError::Conflict(format!(
                "outside the {channel} reply window: {channel} carries free-form replies only within {} \
                 of the customer's last message, and conversation #{} has none that recent; \
                 the customer must write first (status updates use the inbox's approved templates)",
                humantime::format_duration(window),
                new.conversation_id,
                channel = conversation.channel,
            )));
        }
    }
    // An erased person has no address left here; a reply would fail at the channel.
    if !new.private && matches!(tx.contact_erased_at(conversation.contact_id)?, Some(Some(_))) {
        return Err(DeskError::Conflict(format!(
            "the contact of conversation #{} was erased; a reply cannot reach them",
            new.conversation_id
        )));
    }
    let (direction, kind) = if new.private {
        (Direction::Note, MessageKind::Note)
    } else {
        (Direction::Outbound, MessageKind::Reply)
    };
    let origin = new
        .saved_reply
        .as_ref()
        .map(|(id, language)| json!({"saved_reply": {"id": id, "language": language}}).to_string());
    // The language of the text sent: the saved reply's body, else what its text showed.
    // A note leaves nothing, so it has none.
    let language = match &new.saved_reply {
        _ if new.private => None,
        Some((_, language)) => Some(language.as_str()),
        None => new.language.as_deref(),
    };
    let message = NewMessage {
        conversation_id: new.conversation_id,
        inbox_id: conversation.inbox_id,
        direction,
        kind,
        author_kind: ActorKind::Agent,
        author_id: Some(new.agent_id),
        text: &new.text,
        html: None,
        external_id: None,
        language,
        metadata: origin,
    };
    let message_id = tx.insert_message(&message, new.now)?;
    events::message_created(
        tx,
        &MessageNews {
            conversation_id: new.conversation_id,
            message_id,
            direction,
            kind,
            author: Actor::agent(new.agent_id),
            text: &new.text,
            language,
        },
        new.now,
    )?;
    for file in &new.attachments {
        let file = NewAttachment {
            filename: &file.filename,
            content_type: &file.content_type,
            data: &file.data,
        };
        tx.insert_attachment(message_id, file, new.now)?;
    }
    let public = !new.private;
    let mut recorded = Vec::new();
    let mut touched = ConversationPatch {
        last_activity_at: Some(new.now),
        updated_at: Some(new.now),
        last_message_id: Some(message_id),
        ..ConversationPatch::default()
    };
    if public {
        tx.insert_outbox(
            message_id,
            new.conversation_id,
            conversation.inbox_id,
            new.now,
            new.expires_at,
        )?;
        if conversation.first_response_at.is_none() {
            touched.first_response_at = Some(new.now);
        }
        if let Some(waited_from) = conversation.awaiting_since {
            record_response(tx, &conversation, message_id, waited_from, new.now)?;
            touched.awaiting_since = Some(None);
        }
        // Whoever answers an unassigned conversation owns it, as in most help desks:
        // the customer's next message then reaches the agent they talked to.
        if conversation.assignee.is_none() {
            touched.assignee = Some(Some(new.agent_id));
            recorded.push((
                Actor::agent(new.agent_id),
                DomainEvent::Assigned {
                    from: None,
                    to: Some(new.agent_id),
                    reason: Some(AssignReason::Replied),
                },
            ));
        }
    }
    tx.update_conversation(new.conversation_id, &touched)?;
    events::insert(tx, new.conversation_id, &recorded, new.now)?;
    if new.private && !new.mentions.is_empty() {
        mentions::record(
            tx,
            desk,
            new.conversation_id,
            message_id,
            new.agent_id,
            &new.mentions,
            new.now,
        )?;
    }
    if public {
        // A reply only ends clocks, so the scheduler's plan cannot get earlier.
        let state = clocks::state(tx, new.conversation_id)?;
        clocks::update(tx, desk, &state, ClockChange::AgentReply, new.now)?;
    }
    Ok(message_id)
}

/// A reply that answers a waiting customer is a response: the first of the conversation
/// or a next one, with what its response clock (when the policy runs one) said of it.
fn record_response(
    tx: &mut dyn Tx,
    conversation: &Conversation,
    message_id: i64,
    waited_from: i64,
    now: i64,
) -> DeskResult<()> {
    let first = conversation.first_response_at.is_none();
    let kind = if first {
        ClockKind::FirstResponse
    } else {
        ClockKind::NextResponse
    };
    let sla_breached = tx
        .clocks(conversation.id)?
        .into_iter()
        .find(|clock| clock.kind == kind && matches!(clock.state, ClockState::Running | ClockState::Paused))
        .map(|clock| clock.breached_at.is_some());
    tx.insert_response(&NewResponse {
        message_id,
        conversation_id: conversation.id,
        waited_from,
        answered_at: now,
        first,
        sla_breached,
    })?;
    Ok(())
}

/// The id of the agent a selector names; an unknown one is the caller's mistake.
fn resolve_agent(tx: &mut dyn Tx, selector: &AgentSelector) -> DeskResult<i64> {
    let problem = match selector {
        AgentSelector::Id(id) => format!("no agent has id {id}"),
        AgentSelector::Name(name) => format!("no agent is named `{name}`"),
    };
    tx.agent(selector)?.map(|agent| agent.id).ok_or(DeskError::Invalid {
        field: "assignee",
        problem,
    })
}

/// An agent's change of status, priority, owner or team, with what follows: events and
/// the updates they call for, a transfer's place at the back of the new queue, clocks
/// paused, resumed, ended or retargeted, and queues served where room was freed.
pub fn update_conversation(
    tx: &mut dyn Tx,
    desk: &Desk,
    id: i64,
    agent_id: i64,
    changes: &ConversationChanges,
    now: i64,
) -> DeskResult<()> {
    let before = clocks::state(tx, id)?;
    let by = Actor::agent(agent_id);
    let mut recorded = Vec::new();
    let mut patch = ConversationPatch::default();
    let (mut status, mut assignee, mut team_id) = (before.status, before.assignee, before.team_id);

    if let Some(new_status) = changes.status
        && new_status != status
    {
        recorded.push((
            by,
            DomainEvent::StatusChanged {
                from: status,
                to: new_status,
                reason: None,
            },
        ));
        patch.resolved_at = Some(
            (new_status == Status::Resolved)
                .then_some(now)
                .or(before.resolved_at.filter(|_| new_status == Status::Closed)),
        );
        patch.status = Some(new_status);
        status = new_status;
    }
    if let Some(new_priority) = changes.priority
        && new_priority != before.priority
    {
        recorded.push((
            by,
            DomainEvent::PriorityChanged {
                from: before.priority,
                to: new_priority,
            },
        ));
        patch.priority = Some(new_priority);
    }
    if let Some(selector) = &changes.assignee {
        let target = selector
            .as_ref()
            .map(|selector| resolve_agent(tx, selector))
            .transpose()?;
        if target != assignee {
            recorded.push((
                by,
                DomainEvent::Assigned {
                    from: assignee,
                    to: target,
                    reason: None,
                },
            ));
            assignee = target;
        }
    }
    if let Some(new_team) = &changes.team {
        let Some(team) = tx.team(new_team)? else {
            return Err(DeskError::Invalid {
                field: "team",
                problem: format!("`{new_team}` is not a configured team"),
            });
        };
        if team_id != Some(team.id) {
            // Like an escalation: the receiving team reads why first, and the customer
            // is not asked again.
            let Some(summary) = changes.summary.as_deref().filter(|summary| !summary.trim().is_empty()) else {
                return Err(DeskError::Invalid {
                    field: "summary",
                    problem: "is required with `team`: tell the receiving team what happened and what is needed".into(),
                });
            };
            let note_id = tx.insert_message(
                &NewMessage {
                    conversation_id: id,
                    inbox_id: before.inbox_id,
                    direction: Direction::Note,
                    kind: MessageKind::Note,
                    author_kind: ActorKind::Agent,
                    author_id: Some(agent_id),
                    text: summary,
                    html: None,
                    external_id: None,
                    language: None,
                    metadata: Some(json!({"transfer": {"to": new_team}}).to_string()),
                },
                now,
            )?;
            let desk_team = desk.team(new_team);
            let record = EscalationRecord {
                hierarchical: false,
                transfer: true,
                from_team: before.team_key.clone(),
                from_tier: before.tier,
                to_team: new_team.clone(),
                to_tier: desk_team.map_or(0, |team| i64::from(team.tier)),
                to_name: team.name.clone(),
                summary: summary.to_owned(),
                reason: None,
                by: Some(agent_id),
                note_id,
                at: now,
            };
            patch.escalation = Some(record.to_json());
            patch.last_message_id = Some(note_id);
            patch.last_activity_at = Some(now);
            recorded.push((
                by,
                DomainEvent::Transferred {
                    from: before.team_key.clone(),
                    to: new_team.clone(),
                    summary: summary.to_owned(),
                    note_id,
                },
            ));
            team_id = Some(team.id);
            patch.transfer_count = Some(before.transfer_count + 1);
            // The new team's queue decides who works on it, unless this same change
            // names an assignee: an agent of another team keeps no hold on it.
            if changes.assignee.is_none()
                && let Some(current) = assignee
                && tx
                    .agent(&AgentSelector::Id(current))?
                    .is_none_or(|agent| agent.teams.iter().all(|member_of| member_of.id != team.id))
            {
                recorded.push((
                    by,
                    DomainEvent::Assigned {
                        from: Some(current),
                        to: None,
                        reason: Some(AssignReason::Transferred),
                    },
                ));
                assignee = None;
            }
        }
    }
    if let Some(labels) = &changes.labels {
        let current = tx.conversation(id)?.ok_or(DeskError::NotFound("conversation"))?.labels;
        let mut next: Vec<String> = current
            .iter()
            .filter(|label| !labels.remove.contains(label))
            .cloned()
            .collect();
        for label in &labels.add {
            // Labels added before the catalogue closed may stay; new ones come from it.
            if !current.contains(label) {
                desk.labels.check(label).map_err(|problem| DeskError::Invalid {
                    field: "labels.add",
                    problem,
                })?;
            }
            if !next.contains(label) {
                next.push(label.clone());
            }
        }
        if next.len() > MAX_LABELS {
            return Err(DeskError::Invalid {
                field: "labels",
                problem: format!(
                    "would leave {} labels; a conversation carries at most {MAX_LABELS}",
                    next.len()
                ),
            });
        }
        if next != current {
            let added = next.iter().filter(|label| !current.contains(label)).cloned().collect();
            let removed = current.iter().filter(|label| !next.contains(label)).cloned().collect();
            recorded.push((by, DomainEvent::LabelsChanged { added, removed }));
            patch.labels = Some(next);
        }
    }
    if recorded.is_empty() {
        return Ok(());
    }
    if assignee != before.assignee {
        patch.assignee = Some(assignee);
    }
    if team_id != before.team_id {
        patch.team_id = Some(team_id);
    }
    patch.updated_at = Some(now);
    tx.update_conversation(id, &patch)?;
    events::record(tx, desk, id, &recorded, now)?;

    let after = clocks::state(tx, id)?;
    let waiting = |status: Status, assignee: Option<i64>| status == Status::Open && assignee.is_none();
    if team_id != before.team_id {
        // A transfer puts it at the back of the new team's queue, at that team's tier.
        let tier = after
            .team_key
            .as_deref()
            .and_then(|key| desk.team(key))
            .map_or(0, |team| i64::from(team.tier));
        let queued = ConversationPatch {
            queued_at: Some(now),
            tier: Some(tier),
            ..ConversationPatch::default()
        };
        tx.update_conversation(id, &queued)?;
    } else if waiting(status, assignee) && !waiting(before.status, before.assignee) {
        // Back in the queue (unassigned, or reopened with nobody on it): it waits from
        // now, behind what already waited.
        let queued = ConversationPatch {
            queued_at: Some(now),
            ..ConversationPatch::default()
        };
        tx.update_conversation(id, &queued)?;
    }
    if status != before.status {
        let change = ClockChange::Status {
            from: before.status,
            to: status,
        };
        clocks::update(tx, desk, &after, change, now)?;
    }
    if team_id != before.team_id || after.priority != before.priority {
        let change = ClockChange::Retarget {
            old_team: before.team_key.clone(),
            old_priority: before.priority,
        };
        clocks::update(tx, desk, &after, change, now)?;
    }
    // Whatever freed room or queued work: the conversation's team, the team it left,
    // and the team of the agent it left.
    let mut teams = vec![
        (team_id, after.team_key.clone()),
        (before.team_id, before.team_key.clone()),
    ];
    teams.dedup();
    for (team_id, key) in teams {
        if let (Some(team_id), Some(key)) = (team_id, key) {
            queues::drain_team(tx, desk, team_id, &key, now)?;
        }
    }
    if let Some(previous) = before.assignee
        && (assignee != before.assignee || status != before.status)
    {
        queues::drain_agent_team(tx, desk, previous, now)?;
    }
    Ok(())
}
