//! Status updates to the customer, written in the unit of work of the change that causes
//! them (so an update is sent exactly when its change is committed), the follow-ups of a
//! conversation waiting on the customer, and satisfaction answers and opt-outs.
//!
//! Guards, in order: the customer opted out; the event is off for the inbox or team;
//! the same kind went to this conversation within the window. Updates answer changes,
//! never a machine: ingest sends none for automated messages.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use switchboard_connector_core::{CsatQuestion, CsatStyle, StatusUpdate};

use super::{
    AgentVars, ContactVars, ConversationVars, CsatVars, InboxVars, NextOpen, SlaVars, TeamVars, UpdateEvent, UpdateVars,
};
use crate::domain::clocks::{self, ClockChange};
use crate::domain::desk::Desk;
use crate::domain::events::{self, Actor, DomainEvent, MessageNews, StatusReason};
use crate::domain::{DeskError, DeskResult, queues};
use crate::model::clock::ClockKind;
use crate::model::{ActorKind, Direction, MessageKind, Status};
use crate::model::{human_duration, millis};
use crate::store::{ConversationLookup, ConversationPatch, CsatPatch, NewMessage, StoreError, Tx, UpdateTarget};

/// The conversation an update is about, as its templates see it.
pub fn target(tx: &mut dyn Tx, conversation_id: i64) -> DeskResult<UpdateTarget> {
    tx.update_target(conversation_id)?
        .ok_or(DeskError::NotFound("conversation"))
}

/// Queues `event`'s update for the conversation unless a guard holds it back; returns
/// whether it queued one.
pub fn send(tx: &mut dyn Tx, desk: &Desk, target: &UpdateTarget, event: UpdateEvent, now: i64) -> DeskResult<bool> {
    let expires_at = now.saturating_add(millis(desk.updates.settings.expire_after));
    send_expiring(tx, desk, target, event, now, expires_at)
}

/// [`send`], with the moment the update stops being worth sending given.
pub fn send_expiring(
    tx: &mut dyn Tx,
    desk: &Desk,
    target: &UpdateTarget,
    event: UpdateEvent,
    now: i64,
    expires_at: i64,
) -> DeskResult<bool> {
    let policy = &desk.updates;
    if target.opted_out || !policy.sends(event, &target.inbox_key, target.team_key.as_deref()) {
        return Ok(false);
    }
    // An email contact has an address only when a mail's `From` gave it; one known only
    // by a `Sender`, a `Return-Path` or nothing gets no automated mail (see
    // `connectors/email`'s `sender_of`). Agents can still write to them.
    if target.channel.capabilities().updates_need_address && target.contact_email.is_none() {
        return Ok(false);
    }
    // A conversation is opened once: its acknowledgement needs no record of the window,
    // which saves every new conversation a lookup and an index insert.
    let repeatable = !matches!(event, UpdateEvent::Received | UpdateEvent::Greeting);
    if repeatable
        && tx
            .update_sent_at(target.id, event.as_str())?
            .is_some_and(|last| now.saturating_sub(last) < millis(policy.settings.window))
    {
        return Ok(false);
    }
    let team = target.team_key.as_deref().and_then(|key| desk.team(key));
    let next_open = if event == UpdateEvent::OutOfHours {
        let Some(hours) = team.map(|team| &team.hours) else {
            return Ok(false);
        };
        let Some(at) = hours.next_open(now) else {
            return Ok(false);
        };
        // The customer's own zone when their channel told us a valid one.
        let zoned = customer_time_zone(&target.contact_metadata)
            .and_then(|zone| NextOpen::at(at, zone))
            .or_else(|| NextOpen::at(at, hours.time_zone()));
        let Some(next_open) = zoned else {
            return Ok(false);
        };
        Some(next_open)
    } else {
        None
    };
    let question = (event == UpdateEvent::Csat).then(new_question).transpose()?;
    let csat = question.as_ref().map(|question| CsatVars {
        links: match (&policy.settings.csat.public_url, target.channel.capabilities().csat) {
            (Some(base), CsatStyle::Links) => (1..=5)
                .map(|score| format!("{base}/csat/{}?score={score}", question.token))
                .collect(),
            _ => Vec::new(),
        },
    });
    let target_of = |kind| {
        desk.target(target.team_key.as_deref(), kind, target.priority)
            .map(|target| human_duration(target.target_ms))
    };
    let vars = UpdateVars {
        event: event.as_str(),
        channel: target.channel,
        contact: ContactVars {
            name: target.contact_name.clone(),
            email: target.contact_email.clone(),
            language: target.language.clone(),
        },
        conversation: ConversationVars {
            id: target.id,
            reference: crate::model::reference(target.id),
            subject: target.subject.clone(),
            status: target.status.as_str().to_owned(),
            priority: target.priority.as_str().to_owned(),
        },
        team: TeamVars {
            key: target.team_key.clone().unwrap_or_default(),
            name: target
                .team_name
                .clone()
                .or_else(|| target.team_key.clone())
                .unwrap_or_default(),
        },
        agent: target.agent.clone().map(|name| AgentVars { name }),
        sla: SlaVars {
            first_response: target_of(ClockKind::FirstResponse),
            resolution: target_of(ClockKind::Resolution),
        },
        inbox: InboxVars {
            key: target.inbox_key.clone(),
            name: target.inbox_name.clone(),
        },
        next_open: next_open.clone(),
        csat,
    };
    let language = policy.language(event, target.language.as_deref(), &target.inbox_key);
    let rendered = match policy.render(event, &language, &vars) {
        Ok(rendered) => rendered,
        // Every template rendered with samples at start; data the samples did not
        // foresee must not undo the change that caused the update.
        Err(error) => {
            tracing::warn!(conversation_id = target.id, event = event.as_str(), %error, "status update failed to render");
            let failed = DomainEvent::StatusUpdateFailed { event, error };
            events::insert(tx, target.id, &[(Actor::SYSTEM, failed)], now)?;
            return Ok(false);
        }
    };
    // Only a question that goes out replaces the one before, and its answer.
    if let Some(question) = &question {
        let asked = ConversationPatch {
            csat: Some(CsatPatch::Asked {
                token: question.token.clone(),
                at: now,
            }),
            ..ConversationPatch::default()
        };
        tx.update_conversation(target.id, &asked)?;
    }
    let update = StatusUpdate {
        event: event.wire_name().to_owned(),
        subject: rendered.subject,
        html: None,
        markdown_v2: rendered.markdown_v2,
        fields: fields(target, event, &vars, &rendered.language),
        csat: question,
        language: Some(rendered.language.clone()),
    };
    let message = NewMessage {
        conversation_id: target.id,
        inbox_id: target.inbox_id,
        direction: Direction::Outbound,
        kind: MessageKind::StatusUpdate,
        author_kind: ActorKind::System,
        author_id: None,
        text: &rendered.text,
        html: rendered.html.as_deref(),
        external_id: None,
        language: Some(&rendered.language),
        metadata: Some(json!({ "update": update }).to_string()),
    };
    let message_id = tx.insert_message(&message, now)?;
    events::message_created(
        tx,
        &MessageNews {
            conversation_id: target.id,
            message_id,
            direction: message.direction,
            kind: message.kind,
            author: Actor::SYSTEM,
            text: message.text,
            language: message.language,
        },
        now,
    )?;
    tx.insert_outbox(message_id, target.id, target.inbox_id, now, expires_at)?;
    if repeatable {
        tx.note_update_sent(target.id, event.as_str(), now)?;
    }
    Ok(true)
}

/// The customer's IANA zone, when their channel said (`metadata.time_zone`).
fn customer_time_zone(metadata: &Value) -> Option<&str> {
    ["time_zone", "timezone", "tz"]
        .iter()
        .find_map(|key| metadata.get(key).and_then(Value::as_str))
}

/// What a receiver that shows its own UI (the webhook) gets besides the text:
/// `language` is the language of the text sent (the template's, which may be a fallback),
/// `contact_language` the one the customer reads.
fn fields(target: &UpdateTarget, event: UpdateEvent, vars: &UpdateVars, language: &str) -> Value {
    let mut fields = json!({
        "reference": vars.conversation.reference,
        "status": target.status,
        "priority": target.priority,
        "team": {"key": vars.team.key, "name": vars.team.name},
        "agent": target.agent,
        "language": language,
        "contact_language": target.language,
    });
    if let Some(next_open) = &vars.next_open {
        fields["next_open"] = json!({"at": next_open.at, "time_zone": next_open.time_zone});
    }
    if event == UpdateEvent::Csat {
        fields["csat"] = json!({"min": 1, "max": 5});
    }
    if let Some(sla) = &vars.sla.first_response {
        fields["first_response_target"] = json!(sla);
    }
    fields
}

/// A question with a fresh, unguessable token (144 bits).
fn new_question() -> DeskResult<CsatQuestion> {
    let mut bytes = [0u8; 18];
    getrandom::fill(&mut bytes).map_err(|err| StoreError::transient(format!("no random bytes: {err}")))?;
    Ok(CsatQuestion {
        token: URL_SAFE_NO_PAD.encode(bytes),
    })
}

/// Whether the conversation's satisfaction question can be answered now: it is resolved
/// (a reopened one is being worked on again) and was asked within `csat.answer_window`.
pub fn question_open(tx: &mut dyn Tx, desk: &Desk, conversation_id: i64, now: i64) -> DeskResult<bool> {
    let since = now.saturating_sub(millis(desk.updates.settings.csat.answer_window));
    let asked = tx.find_conversation(ConversationLookup::AskedSince {
        id: conversation_id,
        since,
    })?;
    Ok(asked.is_some_and(|conversation| conversation.status == Status::Resolved))
}

/// The reminder and the automatic close of a conversation that now waits on the
/// customer, as configured.
pub fn schedule_follow_ups(tx: &mut dyn Tx, desk: &Desk, conversation_id: i64, now: i64) -> DeskResult<()> {
    let policy = &desk.updates;
    let timers = [
        (WAITING_REMINDER, policy.settings.waiting_reminder_after),
        (AUTO_CLOSE, policy.settings.auto_close_after),
    ];
    for (kind, after) in timers {
        if let Some(after) = after {
            tx.set_timer(conversation_id, kind, now.saturating_add(millis(after)))?;
        }
    }
    Ok(())
}

const WAITING_REMINDER: &str = "waiting_reminder";
const AUTO_CLOSE: &str = "auto_close";

/// Fires up to `limit` follow-ups due by `now`, and the language waits that ended
/// ([`queues::language_wait_over`], timers of the same table); returns how many fired.
pub fn fire_follow_ups(tx: &mut dyn Tx, desk: &Desk, now: i64, limit: u32) -> DeskResult<u32> {
    let due = tx.due_timers(now, limit)?;
    for (conversation_id, kind) in &due {
        tx.clear_timers(*conversation_id, Some(kind))?;
        let conversation = clocks::state(tx, *conversation_id)?;
        if kind == queues::LANGUAGE_WAIT {
            queues::language_wait_over(tx, desk, &conversation, now)?;
            continue;
        }
        // Scheduled under an earlier configuration that had it: not any more.
        let still_configured = match kind.as_str() {
            AUTO_CLOSE => desk.updates.settings.auto_close_after.is_some(),
            _ => desk.updates.settings.waiting_reminder_after.is_some(),
        };
        if conversation.status != Status::Pending || !still_configured {
            continue;
        }
        if kind == AUTO_CLOSE {
            auto_close(tx, desk, &conversation, now)?;
        } else {
            let target = target(tx, *conversation_id)?;
            send(tx, desk, &target, UpdateEvent::WaitingReminder, now)?;
        }
    }
    Ok(due.len() as u32)
}

/// Resolves a conversation the customer left waiting, as the desk.
fn auto_close(tx: &mut dyn Tx, desk: &Desk, conversation: &crate::store::Conversation, now: i64) -> DeskResult<()> {
    // No question follows an automatic close; one left unanswered from an earlier
    // resolution is withdrawn, so a digit now is not taken for its answer.
    let closed = ConversationPatch {
        status: Some(Status::Resolved),
        resolved_at: Some(Some(now)),
        updated_at: Some(now),
        csat: conversation.csat_answered_at.is_none().then_some(CsatPatch::Withdrawn),
        ..ConversationPatch::default()
    };
    tx.update_conversation(conversation.id, &closed)?;
    let after = millis(desk.updates.settings.auto_close_after.unwrap_or_default());
    let event = DomainEvent::StatusChanged {
        from: Status::Pending,
        to: Status::Resolved,
        reason: Some(StatusReason::AutoClose {
            waited: human_duration(after),
        }),
    };
    events::record(tx, desk, conversation.id, &[(Actor::SYSTEM, event)], now)?;
    let state = clocks::state(tx, conversation.id)?;
    let change = ClockChange::Status {
        from: Status::Pending,
        to: Status::Resolved,
    };
    clocks::update(tx, desk, &state, change, now)?;
    if let Some(agent) = state.assignee {
        queues::drain_agent_team(tx, desk, agent, now)?;
    }
    Ok(())
}

/// Records a satisfaction answer on the conversation that asked; `Invalid` when it
/// asked nothing (or the window to answer has passed).
pub fn record_csat(
    tx: &mut dyn Tx,
    desk: &Desk,
    conversation_id: i64,
    score: u8,
    comment: Option<&str>,
    via: &str,
    now: i64,
) -> DeskResult<()> {
    if !question_open(tx, desk, conversation_id, now)? {
        return Err(DeskError::Invalid {
            field: "csat",
            problem: "the conversation has no open satisfaction question".into(),
        });
    }
    if !(1..=5).contains(&score) {
        return Err(DeskError::Invalid {
            field: "csat.score",
            problem: "must be a whole number from 1 to 5".into(),
        });
    }
    let comment = comment.map(str::trim).filter(|comment| !comment.is_empty());
    // An answer without a comment keeps one given before (a button, then a line).
    let kept = match comment {
        Some(comment) => Some(comment.to_owned()),
        None => clocks::state(tx, conversation_id)?.csat_comment,
    };
    let answered = ConversationPatch {
        csat: Some(CsatPatch::Answered {
            score,
            comment: kept,
            at: now,
        }),
        updated_at: Some(now),
        ..ConversationPatch::default()
    };
    tx.update_conversation(conversation_id, &answered)?;
    let event = DomainEvent::CsatAnswered {
        score,
        comment: comment.map(str::to_owned),
        via: via.to_owned(),
    };
    events::insert(tx, conversation_id, &[(Actor::SYSTEM, event)], now)
}

/// The conversation a CSAT token names.
pub fn csat_conversation(tx: &mut dyn Tx, token: &str) -> DeskResult<Option<i64>> {
    Ok(tx
        .find_conversation(ConversationLookup::CsatToken(token))?
        .map(|conversation| conversation.id))
}

/// The customer asked to stop or resume automated updates.
pub fn set_opt_out(
    tx: &mut dyn Tx,
    contact_id: i64,
    conversation_id: i64,
    opted_out: bool,
    now: i64,
) -> DeskResult<()> {
    if tx.set_updates_opt_out(contact_id, opted_out, now)? {
        let event = if opted_out {
            DomainEvent::UpdatesStopped
        } else {
            DomainEvent::UpdatesResumed
        };
        events::insert(tx, conversation_id, &[(Actor::SYSTEM, event)], now)?;
    }
    Ok(())
}
