//! Status updates to the customer, written in the transaction of the change that causes
//! them (so an update is sent exactly when its change is committed), and the follow-ups
//! of a conversation waiting on the customer.
//!
//! Guards, in order: the customer opted out; the event is off for the inbox or team;
//! the same kind went to this conversation within the window. Updates answer changes,
//! never a machine: ingest sends none for automated messages.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Value, json};
use switchboard_connector_core::{ChannelKind, CsatQuestion, StatusUpdate};

use super::desk::{ClockChange, conversation_state, drain_agent_team, update_clocks};
use super::vocabulary;
use super::write::{NewEvent, NewMessage, insert_events, insert_message, insert_outbox};
use crate::domain::desk::{Desk, human_duration, millis};
use crate::domain::updates::{
    AgentVars, ContactVars, ConversationVars, CsatVars, InboxVars, NextOpen, SlaVars, TeamVars, UpdateEvent, UpdateVars,
};
use crate::model::clock::ClockKind;
use crate::model::{ActorKind, Direction, MessageKind, Priority, Status};
use crate::store::{StoreError, StoreResult};

/// What an update needs to know of its conversation.
pub(super) struct Target {
    id: i64,
    inbox_id: i64,
    inbox_key: String,
    inbox_name: String,
    channel: ChannelKind,
    team_key: Option<String>,
    team_name: Option<String>,
    status: Status,
    priority: Priority,
    subject: Option<String>,
    agent: Option<String>,
    contact_name: Option<String>,
    contact_email: Option<String>,
    language: Option<String>,
    /// The customer's IANA zone, when their channel said (`metadata.time_zone`).
    time_zone: Option<String>,
    opted_out: bool,
}

pub(super) fn load(conn: &Connection, id: i64) -> StoreResult<Target> {
    let target = conn
        .prepare_cached(
            "SELECT c.inbox_id, i.key, i.name, i.kind, t.key, t.name, c.status, c.priority, c.subject, a.name,
                    ct.name, ct.email, COALESCE(ct.language, c.language), ct.metadata,
                    ct.updates_opted_out_at IS NOT NULL
             FROM conversations c
             JOIN inboxes i ON i.id = c.inbox_id
             JOIN contacts ct ON ct.id = c.contact_id
             LEFT JOIN teams t ON t.id = c.team_id
             LEFT JOIN agents a ON a.id = c.assignee_id
             WHERE c.id = ?1",
        )?
        .query_row([id], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, String>(3)?,
                row.get::<_, Option<String>>(4)?,
                row.get::<_, Option<String>>(5)?,
                row.get::<_, String>(6)?,
                row.get::<_, String>(7)?,
                row.get::<_, Option<String>>(8)?,
                row.get::<_, Option<String>>(9)?,
                (
                    row.get::<_, Option<String>>(10)?,
                    row.get::<_, Option<String>>(11)?,
                    row.get::<_, Option<String>>(12)?,
                    row.get::<_, String>(13)?,
                    row.get::<_, bool>(14)?,
                ),
            ))
        })
        .optional()?
        .ok_or(StoreError::NotFound("conversation"))?;
    let (inbox_id, inbox_key, inbox_name, kind, team_key, team_name, status, priority, subject, agent, contact) =
        target;
    let (contact_name, contact_email, language, metadata, opted_out) = contact;
    let metadata: Value = serde_json::from_str(&metadata).unwrap_or(Value::Null);
    let time_zone = ["time_zone", "timezone", "tz"]
        .iter()
        .find_map(|key| metadata.get(key).and_then(Value::as_str))
        .map(str::to_owned);
    Ok(Target {
        id,
        inbox_id,
        inbox_key,
        inbox_name,
        channel: vocabulary(ChannelKind::parse, &kind)?,
        team_key,
        team_name,
        status: vocabulary(Status::parse, &status)?,
        priority: vocabulary(Priority::parse, &priority)?,
        subject,
        agent,
        contact_name,
        contact_email,
        language,
        time_zone,
        opted_out,
    })
}

/// Queues `event`'s update for the conversation unless a guard holds it back; returns
/// whether it queued one.
pub(super) fn send(conn: &Connection, desk: &Desk, target: &Target, event: UpdateEvent, now: i64) -> StoreResult<bool> {
    let expires_at = now.saturating_add(millis(desk.updates.settings.expire_after));
    send_expiring(conn, desk, target, event, now, expires_at)
}

/// [`send`], with the moment the update stops being worth sending given.
pub(super) fn send_expiring(
    conn: &Connection,
    desk: &Desk,
    target: &Target,
    event: UpdateEvent,
    now: i64,
    expires_at: i64,
) -> StoreResult<bool> {
    let policy = &desk.updates;
    if target.opted_out || !policy.sends(event, &target.inbox_key, target.team_key.as_deref()) {
        return Ok(false);
    }
    // A conversation is opened once: its acknowledgement needs no record of the window,
    // which saves every new conversation a lookup and an index insert.
    let repeatable = !matches!(event, UpdateEvent::Received | UpdateEvent::Greeting);
    if repeatable {
        let last: Option<i64> = conn
            .prepare_cached("SELECT sent_at FROM status_updates_sent WHERE conversation_id = ?1 AND event = ?2")?
            .query_row(params![target.id, event.as_str()], |row| row.get(0))
            .optional()?;
        if last.is_some_and(|last| now.saturating_sub(last) < millis(policy.settings.window)) {
            return Ok(false);
        }
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
        let zoned = target
            .time_zone
            .as_deref()
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
        links: match (&policy.settings.csat.public_url, target.channel) {
            (Some(base), ChannelKind::Email) => (1..=5)
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
            reference: format!("#{}", target.id),
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
            insert_events(
                conn,
                target.id,
                &[NewEvent::system(
                    "status_update.failed",
                    json!({"event": event.as_str(), "error": error}),
                )],
                now,
            )?;
            return Ok(false);
        }
    };
    // Only a question that goes out replaces the one before, and its answer.
    if let Some(question) = &question {
        conn.prepare_cached(
            "UPDATE conversations SET csat_token = ?1, csat_requested_at = ?2, csat_score = NULL, csat_comment = NULL,
                    csat_answered_at = NULL
             WHERE id = ?3",
        )?
        .execute(params![question.token, now, target.id])?;
    }
    let update = StatusUpdate {
        event: event.wire_name().to_owned(),
        subject: rendered.subject,
        html: None,
        markdown_v2: rendered.markdown_v2,
        fields: fields(target, event, &vars),
        csat: question,
    };
    let message_id = insert_message(
        conn,
        NewMessage {
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
        },
        now,
    )?;
    insert_outbox(conn, message_id, target.id, target.inbox_id, now, expires_at)?;
    if repeatable {
        conn.prepare_cached(
            "INSERT INTO status_updates_sent (conversation_id, event, sent_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (conversation_id, event) DO UPDATE SET sent_at = excluded.sent_at",
        )?
        .execute(params![target.id, event.as_str(), now])?;
    }
    Ok(true)
}

/// What a receiver that shows its own UI (the webhook) gets besides the text.
fn fields(target: &Target, event: UpdateEvent, vars: &UpdateVars) -> Value {
    let mut fields = json!({
        "reference": vars.conversation.reference,
        "status": target.status,
        "priority": target.priority,
        "team": {"key": vars.team.key, "name": vars.team.name},
        "agent": target.agent,
        "language": target.language,
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
fn new_question() -> StoreResult<CsatQuestion> {
    let mut bytes = [0u8; 18];
    getrandom::fill(&mut bytes).map_err(|err| StoreError::Backend(format!("no random bytes: {err}")))?;
    Ok(CsatQuestion {
        token: URL_SAFE_NO_PAD.encode(bytes),
    })
}

/// Whether the conversation's satisfaction question can be answered now: it is resolved
/// (a reopened one is being worked on again) and was asked within `csat.answer_window`.
pub(super) fn question_open(conn: &Connection, desk: &Desk, conversation_id: i64, now: i64) -> StoreResult<bool> {
    let since = now.saturating_sub(millis(desk.updates.settings.csat.answer_window));
    Ok(conn
        .prepare_cached(
            "SELECT 1 FROM conversations WHERE id = ?1 AND status = 'resolved' AND csat_requested_at >= ?2",
        )?
        .query_row(params![conversation_id, since], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Writes the events of a change and the updates and follow-ups they call for.
/// Returns whether an update was queued.
pub(super) fn record_events(
    conn: &Connection,
    desk: &Desk,
    conversation_id: i64,
    events: &[NewEvent],
    now: i64,
) -> StoreResult<bool> {
    insert_events(conn, conversation_id, events, now)?;
    let mut wanted = Vec::new();
    for event in events {
        match event.kind {
            // Whoever replies to an unassigned conversation takes it: the reply itself
            // is the news.
            "conversation.assigned" if !event.data["to"].is_null() && event.data["reason"] != "replied" => {
                wanted.push(UpdateEvent::Assigned)
            }
            "conversation.escalated" | "conversation.transferred" => wanted.push(UpdateEvent::Escalated),
            "conversation.status_changed" => {
                let (from, to) = (event.data["from"].as_str(), event.data["to"].as_str());
                if from == Some(Status::Pending.as_str()) {
                    conn.prepare_cached("DELETE FROM conversation_timers WHERE conversation_id = ?1")?
                        .execute([conversation_id])?;
                }
                if to == Some(Status::Pending.as_str()) {
                    schedule_follow_ups(conn, desk, conversation_id, now)?;
                }
                if to == Some(Status::Resolved.as_str()) {
                    if event.data["reason"] == "auto_close" {
                        wanted.push(UpdateEvent::AutoClosed);
                    } else {
                        wanted.extend([UpdateEvent::Resolved, UpdateEvent::Csat]);
                    }
                }
            }
            _ => {}
        }
    }
    if wanted.is_empty() {
        return Ok(false);
    }
    let target = load(conn, conversation_id)?;
    let mut queued = false;
    for event in wanted {
        queued |= send(conn, desk, &target, event, now)?;
    }
    Ok(queued)
}

fn schedule_follow_ups(conn: &Connection, desk: &Desk, conversation_id: i64, now: i64) -> StoreResult<()> {
    let policy = &desk.updates;
    let timers = [
        ("waiting_reminder", policy.settings.waiting_reminder_after),
        ("auto_close", policy.settings.auto_close_after),
    ];
    for (kind, after) in timers {
        let Some(after) = after else { continue };
        let at = now.saturating_add(millis(after));
        conn.prepare_cached(
            "INSERT INTO conversation_timers (conversation_id, kind, fire_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (conversation_id, kind) DO UPDATE SET fire_at = excluded.fire_at",
        )?
        .execute(params![conversation_id, kind, at])?;
    }
    Ok(())
}

/// Fires up to `limit` follow-ups due by `now`; returns how many fired.
pub(super) fn fire_follow_ups(conn: &Connection, desk: &Desk, now: i64, limit: u32) -> StoreResult<u32> {
    let due: Vec<(i64, String)> = conn
        .prepare_cached(
            "SELECT conversation_id, kind FROM conversation_timers WHERE fire_at <= ?1 ORDER BY fire_at LIMIT ?2",
        )?
        .query_map(params![now, limit], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<_, _>>()?;
    for (conversation_id, kind) in &due {
        conn.prepare_cached("DELETE FROM conversation_timers WHERE conversation_id = ?1 AND kind = ?2")?
            .execute(params![conversation_id, kind])?;
        let state = conversation_state(conn, *conversation_id)?;
        // Scheduled under an earlier configuration that had it: not any more.
        let still_configured = match kind.as_str() {
            "auto_close" => desk.updates.settings.auto_close_after.is_some(),
            _ => desk.updates.settings.waiting_reminder_after.is_some(),
        };
        if state.status != Status::Pending || !still_configured {
            continue;
        }
        if kind == "auto_close" {
            auto_close(conn, desk, *conversation_id, now)?;
        } else {
            let target = load(conn, *conversation_id)?;
            send(conn, desk, &target, UpdateEvent::WaitingReminder, now)?;
        }
    }
    Ok(due.len() as u32)
}

/// Resolves a conversation the customer left waiting, as the desk.
fn auto_close(conn: &Connection, desk: &Desk, conversation_id: i64, now: i64) -> StoreResult<()> {
    // No question follows an automatic close; one left unanswered from an earlier
    // resolution is withdrawn, so a digit now is not taken for its answer.
    conn.prepare_cached(
        "UPDATE conversations SET status = 'resolved', resolved_at = ?1, updated_at = ?1,
                csat_token = CASE WHEN csat_answered_at IS NULL THEN NULL ELSE csat_token END,
                csat_requested_at = CASE WHEN csat_answered_at IS NULL THEN NULL ELSE csat_requested_at END
         WHERE id = ?2",
    )?
    .execute(params![now, conversation_id])?;
    let after = millis(desk.updates.settings.auto_close_after.unwrap_or_default());
    record_events(
        conn,
        desk,
        conversation_id,
        &[NewEvent::system(
            "conversation.status_changed",
            json!({"from": Status::Pending, "to": Status::Resolved, "reason": "auto_close",
                   "waited": human_duration(after)}),
        )],
        now,
    )?;
    let state = conversation_state(conn, conversation_id)?;
    update_clocks(
        conn,
        desk,
        &state,
        ClockChange::Status {
            from: Status::Pending,
            to: Status::Resolved,
        },
        now,
    )?;
    if let Some(agent) = state.assignee {
        drain_agent_team(conn, desk, agent, now)?;
    }
    Ok(())
}

/// Records a satisfaction answer on the conversation that asked; `Invalid` when it
/// asked nothing (or the window to answer has passed).
pub(super) fn record_csat(
    conn: &Connection,
    desk: &Desk,
    conversation_id: i64,
    score: u8,
    comment: Option<&str>,
    via: &str,
    now: i64,
) -> StoreResult<()> {
    if !question_open(conn, desk, conversation_id, now)? {
        return Err(StoreError::Invalid {
            field: "csat",
            problem: "the conversation has no open satisfaction question".into(),
        });
    }
    if !(1..=5).contains(&score) {
        return Err(StoreError::Invalid {
            field: "csat.score",
            problem: "must be a whole number from 1 to 5".into(),
        });
    }
    let comment = comment.map(str::trim).filter(|comment| !comment.is_empty());
    conn.prepare_cached(
        "UPDATE conversations SET csat_score = ?1, csat_comment = COALESCE(?2, csat_comment), csat_answered_at = ?3,
                updated_at = ?3
         WHERE id = ?4",
    )?
    .execute(params![score, comment, now, conversation_id])?;
    insert_events(
        conn,
        conversation_id,
        &[NewEvent::system(
            "csat.answered",
            json!({"score": score, "comment": comment, "via": via}),
        )],
        now,
    )
}

/// The conversation a CSAT token names.
pub(super) fn csat_conversation(conn: &Connection, token: &str) -> StoreResult<Option<i64>> {
    Ok(conn
        .prepare_cached("SELECT id FROM conversations WHERE csat_token = ?1")?
        .query_row([token], |row| row.get(0))
        .optional()?)
}

/// The customer asked to stop or resume automated updates.
pub(super) fn set_opt_out(
    conn: &Connection,
    contact_id: i64,
    conversation_id: i64,
    opted_out: bool,
    now: i64,
) -> StoreResult<()> {
    let changed = conn
        .prepare_cached(
            "UPDATE contacts SET updates_opted_out_at = ?1, updated_at = ?2
             WHERE id = ?3 AND (updates_opted_out_at IS NULL) = ?4",
        )?
        .execute(params![opted_out.then_some(now), now, contact_id, opted_out])?;
    if changed > 0 {
        let kind = if opted_out {
            "contact.updates_stopped"
        } else {
            "contact.updates_resumed"
        };
        insert_events(conn, conversation_id, &[NewEvent::system(kind, json!({}))], now)?;
    }
    Ok(())
}
