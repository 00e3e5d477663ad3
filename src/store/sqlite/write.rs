//! Every change to the SQLite store. Each function runs on the writer thread inside its
//! own savepoint of a group transaction (see `writer.rs`), so it either applies whole or
//! not at all, and its caller hears back only after the commit.

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use switchboard_connector_core::{
    BounceReport, ChannelKind, InboundMessage, OutboundAttachment, OutboundKind, OutboundMessage, StatusUpdate,
    ThreadHints,
};

use super::desk::{
    ClockChange, ConversationState, assign_new, conversation_state, drain_agent_team, drain_team, update_clocks,
};
use super::subscriptions::fan_out;
use super::updates::{
    csat_conversation, load as load_update_target, question_open, record_csat, record_events, send as send_update,
    send_expiring as send_update_expiring, set_opt_out,
};
use super::{json_column, vocabulary};
use crate::domain::desk::{Desk, millis};
use crate::domain::router::RouteInput;
use crate::domain::updates::{AfterResolution, UpdateEvent, parse_score};
use crate::model::{ActorKind, DeliveryStatus, Direction, MessageKind, Priority, Status, Timestamp};
use crate::store::{
    Agent, AgentSelector, Catalog, ConversationChanges, Delivery, DeliveryResult, InboxRef, InboxSpec, IngestContext,
    IngestOutcome, NewAgent, NewAgentMessage, StoreError, StoreResult, TeamSpec,
};
use crate::work::events::EventType;

/// An event to write with the change that caused it. Events record changes of a
/// conversation's state (created, routed, assigned, transferred, status); a message is
/// its own record and gets no event row: that row's index entry would be one more page
/// written at a random place for every message, the costliest thing ingest does.
pub(super) struct NewEvent {
    pub kind: &'static str,
    pub actor_kind: ActorKind,
    pub actor_id: Option<i64>,
    pub data: Value,
}

impl NewEvent {
    pub fn system(kind: &'static str, data: Value) -> NewEvent {
        NewEvent {
            kind,
            actor_kind: ActorKind::System,
            actor_id: None,
            data,
        }
    }

    pub fn by_agent(kind: &'static str, agent_id: i64, data: Value) -> NewEvent {
        NewEvent {
            kind,
            actor_kind: ActorKind::Agent,
            actor_id: Some(agent_id),
            data,
        }
    }

    fn by_contact(kind: &'static str, contact_id: i64, data: Value) -> NewEvent {
        NewEvent {
            kind,
            actor_kind: ActorKind::Contact,
            actor_id: Some(contact_id),
            data,
        }
    }
}

pub(super) fn insert_events(conn: &Connection, conversation_id: i64, events: &[NewEvent], now: i64) -> StoreResult<()> {
    let mut insert = conn.prepare_cached(
        "INSERT INTO events (conversation_id, kind, actor_kind, actor_id, data, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for event in events {
        insert.execute(params![
            conversation_id,
            event.kind,
            event.actor_kind.as_str(),
            event.actor_id,
            event.data.to_string(),
            now
        ])?;
        // Integrations are told in the same transaction: an event is theirs exactly
        // when it is recorded.
        if let Some(event_type) = EventType::of_conversation_event(event.kind, &event.data) {
            let data = json!({
                "conversation_id": conversation_id,
                "event": event.kind,
                "actor": {"kind": event.actor_kind, "id": event.actor_id},
                "details": event.data,
            });
            fan_out(conn, event_type, Some(conversation_id), data, now)?;
        }
    }
    Ok(())
}

/// A message row to insert.
pub(super) struct NewMessage<'a> {
    pub conversation_id: i64,
    pub inbox_id: i64,
    pub direction: Direction,
    pub kind: MessageKind,
    pub author_kind: ActorKind,
    pub author_id: Option<i64>,
    pub text: &'a str,
    pub html: Option<&'a str>,
    pub external_id: Option<&'a str>,
    pub language: Option<&'a str>,
    pub metadata: Option<String>,
}

pub(super) fn insert_message(conn: &Connection, message: NewMessage<'_>, now: i64) -> StoreResult<i64> {
    // Internal notes are for agents; everything said to or by the customer is news.
    let public = message.kind != MessageKind::Note;
    let news = public.then(|| {
        json!({
            "conversation_id": message.conversation_id,
            "message": {"direction": message.direction, "kind": message.kind,
                        "author": {"kind": message.author_kind, "id": message.author_id},
                        "text": message.text, "language": message.language},
        })
    });
    let id: i64 = conn
        .prepare_cached(
            "INSERT INTO messages (conversation_id, inbox_id, direction, kind, author_kind, author_id, text, html,
                                   external_id, language, metadata, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) RETURNING id",
        )?
        .query_row(
            params![
                message.conversation_id,
                message.inbox_id,
                message.direction.as_str(),
                message.kind.as_str(),
                message.author_kind.as_str(),
                message.author_id,
                message.text,
                message.html,
                message.external_id,
                message.language,
                message.metadata,
                now
            ],
            |row| row.get(0),
        )?;
    if let Some(mut news) = news {
        news["message"]["id"] = json!(id);
        fan_out(
            conn,
            EventType::MessageCreated,
            Some(message.conversation_id),
            news,
            now,
        )?;
    }
    Ok(id)
}

pub(super) fn insert_outbox(
    conn: &Connection,
    message_id: i64,
    conversation_id: i64,
    inbox_id: i64,
    now: i64,
    expires_at: i64,
) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT INTO outbox (message_id, conversation_id, inbox_id, status, next_attempt_at, expires_at, created_at, updated_at)
         VALUES (?1, ?2, ?3, 'scheduled', ?4, ?5, ?4, ?4)",
    )?
    .execute(params![message_id, conversation_id, inbox_id, now, expires_at])?;
    Ok(())
}

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data).iter().map(|byte| format!("{byte:02x}")).collect()
}

pub(super) fn team(conn: &Connection, key: &str) -> StoreResult<Option<(i64, String)>> {
    Ok(conn
        .prepare_cached("SELECT id, name FROM teams WHERE key = ?1 AND active = 1")?
        .query_row([key], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?)
}

pub fn sync_catalog(conn: &Connection, teams: &[TeamSpec], inboxes: &[InboxSpec], now: i64) -> StoreResult<Catalog> {
    conn.execute("UPDATE teams SET active = 0", [])?;
    for team in teams {
        conn.prepare_cached(
            "INSERT INTO teams (key, name, tier, active, created_at) VALUES (?1, ?2, ?3, 1, ?4)
             ON CONFLICT (key) DO UPDATE SET name = excluded.name, tier = excluded.tier, active = 1",
        )?
        .execute(params![team.key, team.name, team.tier, now])?;
    }
    conn.execute("UPDATE inboxes SET active = 0", [])?;
    let mut catalog = Catalog::default();
    for inbox in inboxes {
        let (id, kind): (i64, String) = conn
            .prepare_cached(
                "INSERT INTO inboxes (key, name, kind, active, created_at) VALUES (?1, ?2, ?3, 1, ?4)
                 ON CONFLICT (key) DO UPDATE SET name = excluded.name, active = 1
                 RETURNING id, kind",
            )?
            .query_row(params![inbox.key, inbox.name, inbox.channel.as_str(), now], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })?;
        if kind != inbox.channel.as_str() {
            return Err(StoreError::Conflict(format!(
                "inbox `{}` holds {kind} conversations and cannot become a {} inbox; give the new channel its own key",
                inbox.key, inbox.channel
            )));
        }
        let reference = InboxRef {
            id,
            key: inbox.key.clone(),
            name: inbox.name.clone(),
            channel: inbox.channel,
        };
        catalog.inboxes.insert(inbox.key.clone(), reference);
    }
    Ok(catalog)
}

/// The contact behind an inbound message, after merging what the message says of them.
struct ContactRow {
    contact_id: i64,
    identity_id: i64,
    name: Option<String>,
    email: Option<String>,
    language: Option<String>,
    metadata: BTreeMap<String, Value>,
}

/// Finds the contact by the sender's identity in this inbox, or creates both. What the
/// channel now says of them (name, email, language, attributes) replaces what we had.
fn find_or_create_contact(
    conn: &Connection,
    context: &IngestContext,
    message: &InboundMessage,
    detected: Option<&str>,
) -> StoreResult<ContactRow> {
    let language = message.language.clone().or_else(|| detected.map(str::to_owned));
    let sender = &message.sender;
    let existing = conn
        .prepare_cached(
            "SELECT ci.id, c.id, c.name, c.email, c.language, c.metadata, ci.unreachable_reason IS NOT NULL
             FROM contact_identities ci JOIN contacts c ON c.id = ci.contact_id
             WHERE ci.inbox_id = ?1 AND ci.external_id = ?2",
        )?
        .query_row(params![context.inbox.id, sender.external_id], |row| {
            Ok((
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
                row.get(4)?,
                row.get::<_, String>(5)?,
                row.get::<_, bool>(6)?,
            ))
        })
        .optional()?;

    let Some((identity_id, contact_id, name, email, stored_language, metadata, unreachable)) = existing else {
        // Email addresses and Telegram user ids name one person whatever inbox they
        // write to: a second inbox's identity joins the contact the first one made.
        // A webhook id is the app's own, so there it stays one contact per inbox.
        let known_contact: Option<i64> =
            if context.inbox.channel == ChannelKind::Webhook {
                None
            } else {
                conn.prepare_cached(
                "SELECT contact_id FROM contact_identities WHERE channel = ?1 AND external_id = ?2 ORDER BY id LIMIT 1",
            )?
            .query_row(params![context.inbox.channel.as_str(), sender.external_id], |row| row.get(0))
            .optional()?
            };
        let metadata = serde_json::to_string(&message.metadata).unwrap_or_else(|_| "{}".into());
        let contact_id: i64 = match known_contact {
            Some(id) => id,
            None => conn
                .prepare_cached(
                    "INSERT INTO contacts (name, email, language, metadata, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?5) RETURNING id",
                )?
                .query_row(
                    params![sender.name, sender.email, language, metadata, context.now],
                    |row| row.get(0),
                )?,
        };
        let identity_id: i64 = conn
            .prepare_cached(
                "INSERT INTO contact_identities (contact_id, inbox_id, channel, external_id, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id",
            )?
            .query_row(
                params![
                    contact_id,
                    context.inbox.id,
                    context.inbox.channel.as_str(),
                    sender.external_id,
                    context.now
                ],
                |row| row.get(0),
            )?;
        return Ok(ContactRow {
            contact_id,
            identity_id,
            name: sender.name.clone(),
            email: sender.email.clone(),
            language,
            metadata: message.metadata.clone(),
        });
    };

    if unreachable {
        // They wrote again: whatever blocked the channel is over.
        conn.prepare_cached(
            "UPDATE contact_identities SET unreachable_reason = NULL, unreachable_at = NULL WHERE id = ?1",
        )?
        .execute([identity_id])?;
    }
    let mut contact = ContactRow {
        contact_id,
        identity_id,
        name,
        email,
        language: stored_language,
        metadata: json_column(&metadata)?,
    };
    let mut changed = false;
    for (field, new) in [
        (&mut contact.name, &sender.name),
        (&mut contact.email, &sender.email),
        (&mut contact.language, &message.language),
    ] {
        if new.is_some() && field != new {
            field.clone_from(new);
            changed = true;
        }
    }
    // A detected language fills a gap; it never replaces one the channel gave.
    if contact.language.is_none() && language.is_some() {
        contact.language = language;
        changed = true;
    }
    for (key, value) in &message.metadata {
        if contact.metadata.get(key) != Some(value) {
            contact.metadata.insert(key.clone(), value.clone());
            changed = true;
        }
    }
    if changed {
        conn.prepare_cached(
            "UPDATE contacts SET name = ?1, email = ?2, language = ?3, metadata = ?4, updated_at = ?5 WHERE id = ?6",
        )?
        .execute(params![
            contact.name,
            contact.email,
            contact.language,
            serde_json::to_string(&contact.metadata).unwrap_or_else(|_| "{}".into()),
            context.now,
            contact.contact_id
        ])?;
    }
    Ok(contact)
}

/// The conversation a new message of this contact joins, if any.
///
/// With a thread key: the contact's conversation with that key unless it is closed
/// (a resolved one reopens: the customer continues that thread). Without: the contact's
/// most recently active unresolved conversation in this inbox that has no thread key.
/// Conversations of other contacts are never joined, whatever key they carry.
fn find_thread(
    conn: &Connection,
    inbox_id: i64,
    contact_id: i64,
    thread: Option<&str>,
) -> StoreResult<Option<(i64, Status)>> {
    let row: Option<(i64, String)> = match thread {
        Some(key) => conn
            .prepare_cached(
                "SELECT id, status FROM conversations
                 WHERE contact_id = ?1 AND inbox_id = ?2 AND thread_key = ?3 AND status != 'closed'
                 ORDER BY id DESC LIMIT 1",
            )?
            .query_row(params![contact_id, inbox_id, key], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()?,
        None => conn
            .prepare_cached(
                "SELECT id, status FROM conversations
                 WHERE contact_id = ?1 AND inbox_id = ?2 AND thread_key IS NULL
                   AND status IN ('open', 'pending', 'snoozed')
                 ORDER BY last_activity_at DESC, id DESC LIMIT 1",
            )?
            .query_row(params![contact_id, inbox_id], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()?,
    };
    row.map(|(id, status)| Ok((id, vocabulary(Status::parse, &status)?)))
        .transpose()
}

/// The resolved conversation whose satisfaction question a reply may answer: the one
/// the message threads into, or for a channel without threads (a private chat) the
/// sender's latest one asked within `csat.answer_window`.
fn awaiting_csat(
    conn: &Connection,
    desk: &Desk,
    inbox_id: i64,
    contact_id: i64,
    existing: Option<(i64, Status)>,
    message: &InboundMessage,
    now: i64,
) -> StoreResult<Option<i64>> {
    let window = millis(desk.updates.settings.csat.answer_window);
    let since = now.saturating_sub(window);
    match existing {
        Some((id, Status::Resolved)) => Ok(conn
            .prepare_cached("SELECT id FROM conversations WHERE id = ?1 AND csat_requested_at >= ?2")?
            .query_row(params![id, since], |row| row.get(0))
            .optional()?),
        Some(_) => Ok(None),
        None if message.thread.is_some() || !message.hints.is_empty() => Ok(None),
        None => Ok(conn
            .prepare_cached(
                "SELECT id FROM conversations
                 WHERE contact_id = ?1 AND inbox_id = ?2 AND status = 'resolved' AND thread_key IS NULL
                   AND csat_requested_at >= ?3
                 ORDER BY csat_requested_at DESC LIMIT 1",
            )?
            .query_row(params![contact_id, inbox_id, since], |row| row.get(0))
            .optional()?),
    }
}

/// The contact's most recent conversation in this inbox that is not closed.
fn latest_conversation(conn: &Connection, inbox_id: i64, contact_id: i64) -> StoreResult<Option<(i64, Status)>> {
    let row: Option<(i64, String)> = conn
        .prepare_cached(
            "SELECT id, status FROM conversations
             WHERE contact_id = ?1 AND inbox_id = ?2 AND status != 'closed'
             ORDER BY last_activity_at DESC, id DESC LIMIT 1",
        )?
        .query_row(params![contact_id, inbox_id], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    row.map(|(id, status)| Ok((id, vocabulary(Status::parse, &status)?)))
        .transpose()
}

/// A conversation of the sender that a threading key pointed at.
struct Candidate {
    id: i64,
    status: Status,
    topic: Option<String>,
}

/// Conversation `id` if it belongs to this contact in this inbox and is not closed.
fn own_conversation(conn: &Connection, id: i64, inbox_id: i64, contact_id: i64) -> StoreResult<Option<Candidate>> {
    let row: Option<(String, Option<String>)> = conn
        .prepare_cached(
            "SELECT status, thread_key FROM conversations
             WHERE id = ?1 AND inbox_id = ?2 AND contact_id = ?3 AND status != 'closed'",
        )?
        .query_row(params![id, inbox_id, contact_id], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    row.map(|(status, topic)| {
        Ok(Candidate {
            id,
            status: vocabulary(Status::parse, &status)?,
            topic,
        })
    })
    .transpose()
}

/// Threading by a channel's hints (email), in order of strength, only ever within the
/// sender's own conversations, so a reply from somebody else to a shared thread (a
/// newsletter) never lands in another person's conversation:
///
/// 1. the message answers one of ours or an earlier message of the conversation, and
///    stays on its topic (or quotes its tag);
/// 2. the `[#N]` tag, whatever the message answers (Outlook rewrites In-Reply-To);
/// 3. an answer that changed the topic opens a new conversation;
/// 4. otherwise a recent open conversation on the same topic.
fn thread_by_hints(
    conn: &Connection,
    inbox_id: i64,
    contact_id: i64,
    hints: &ThreadHints,
    now: i64,
) -> StoreResult<Option<(i64, Status)>> {
    let mut answered = None;
    for &id in &hints.conversations {
        answered = own_conversation(conn, id, inbox_id, contact_id)?;
        if answered.is_some() {
            break;
        }
    }
    if answered.is_none() {
        let mut lookup =
            conn.prepare_cached("SELECT conversation_id FROM messages WHERE inbox_id = ?1 AND external_id = ?2")?;
        for external_id in &hints.answers {
            let Some(id) = lookup
                .query_row(params![inbox_id, external_id], |row| row.get::<_, i64>(0))
                .optional()?
            else {
                continue;
            };
            answered = own_conversation(conn, id, inbox_id, contact_id)?;
            if answered.is_some() {
                break;
            }
        }
    }
    let tagged = match hints.reference {
        Some(id) => own_conversation(conn, id, inbox_id, contact_id)?,
        None => None,
    };
    // An added word or a dropped `[EXTERNAL]` marker is the same topic; a subject that
    // shares nothing with the conversation's is a new one.
    let same_topic = |candidate: &Candidate| match (hints.topic.as_deref(), candidate.topic.as_deref()) {
        (Some(new), Some(old)) if !new.is_empty() && !old.is_empty() => new.contains(old) || old.contains(new),
        _ => true,
    };
    if let Some(candidate) = &answered
        && (same_topic(candidate) || tagged.as_ref().is_some_and(|tag| tag.id == candidate.id))
    {
        return Ok(Some((candidate.id, candidate.status)));
    }
    if let Some(candidate) = tagged {
        return Ok(Some((candidate.id, candidate.status)));
    }
    if answered.is_some() {
        return Ok(None);
    }
    let Some(topic) = hints.topic.as_deref().filter(|topic| !topic.is_empty()) else {
        return Ok(None);
    };
    let window = millis(hints.topic_window);
    let row: Option<(i64, String)> = conn
        .prepare_cached(
            "SELECT id, status FROM conversations
             WHERE contact_id = ?1 AND inbox_id = ?2 AND thread_key = ?3
               AND status IN ('open', 'pending', 'snoozed') AND last_activity_at >= ?4
             ORDER BY last_activity_at DESC, id DESC LIMIT 1",
        )?
        .query_row(
            params![contact_id, inbox_id, topic, now.saturating_sub(window)],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    row.map(|(id, status)| Ok((id, vocabulary(Status::parse, &status)?)))
        .transpose()
}

/// A delivery report on our own messages: it joins the conversation of the message it
/// reports on (whoever sent the report), and a permanent failure marks that message
/// failed with the remote server's reason. `None` when it names none of ours.
fn ingest_bounce(
    conn: &Connection,
    context: &IngestContext,
    message: &InboundMessage,
    bounce: &BounceReport,
) -> StoreResult<Option<IngestOutcome>> {
    let now = context.now;
    let mut conversation_id = None;
    let mut events = Vec::new();
    for &bounced_id in &bounce.message_ids {
        let row: Option<(i64, Option<i64>, Option<String>)> = conn
            .prepare_cached(
                "SELECT m.conversation_id, o.id, o.status FROM messages m LEFT JOIN outbox o ON o.message_id = m.id
                 WHERE m.id = ?1 AND m.inbox_id = ?2 AND m.direction = 'outbound'",
            )?
            .query_row(params![bounced_id, context.inbox.id], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            })
            .optional()?;
        let Some((conversation, outbox_id, status)) = row else {
            continue;
        };
        conversation_id.get_or_insert(conversation);
        if conversation_id != Some(conversation) {
            continue;
        }
        let error = format!("bounced: {}", bounce.reason);
        if bounce.permanent
            && let Some(outbox_id) = outbox_id
            && status.as_deref() != Some("failed")
        {
            conn.prepare_cached(
                "UPDATE outbox SET status = 'failed', last_error = ?1, lease_until = NULL, updated_at = ?2 WHERE id = ?3",
            )?
            .execute(params![error, now, outbox_id])?;
            events.push(NewEvent::system(
                "delivery.failed",
                json!({"message_id": bounced_id, "error": error, "bounce": true}),
            ));
        } else if !bounce.permanent {
            events.push(NewEvent::system(
                "delivery.delayed",
                json!({"message_id": bounced_id, "reason": bounce.reason}),
            ));
        }
    }
    let Some(conversation_id) = conversation_id else {
        return Ok(None);
    };
    let message_id = insert_message(
        conn,
        NewMessage {
            conversation_id,
            inbox_id: context.inbox.id,
            direction: Direction::Inbound,
            kind: MessageKind::Message,
            author_kind: ActorKind::System,
            author_id: None,
            text: &message.text,
            html: message.html.as_deref(),
            external_id: Some(&message.external_id),
            language: None,
            metadata: message_details(message),
        },
        now,
    )?;
    insert_attachments(conn, message_id, inbound_files(message), now)?;
    insert_events(conn, conversation_id, &events, now)?;
    Ok(Some(IngestOutcome {
        conversation_id,
        message_id,
        duplicate: false,
        created_conversation: false,
        queued_outbound: false,
        next_sla_fire: None,
    }))
}

/// A new version of a message we have (a Telegram edit): the text is replaced, the
/// earlier one kept in the message's details under `edits`, with a `message.edited`
/// event. `None` when the original is unknown (it predates the inbox): then the edit is
/// stored as a message of its own.
fn apply_edit(
    conn: &Connection,
    context: &IngestContext,
    message: &InboundMessage,
    original: &str,
) -> StoreResult<Option<IngestOutcome>> {
    let row: Option<(i64, i64, String, Option<String>)> = conn
        .prepare_cached(
            "SELECT id, conversation_id, text, metadata FROM messages
             WHERE inbox_id = ?1 AND external_id = ?2 AND direction = 'inbound'",
        )?
        .query_row(params![context.inbox.id, original], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })
        .optional()?;
    let Some((message_id, conversation_id, text, metadata)) = row else {
        return Ok(None);
    };
    let outcome = |duplicate| IngestOutcome {
        conversation_id,
        message_id,
        duplicate,
        created_conversation: false,
        queued_outbound: false,
        next_sla_fire: None,
    };
    // The same edit delivered again changes nothing.
    if text == message.text {
        return Ok(Some(outcome(true)));
    }
    let mut details: BTreeMap<String, Value> = match metadata.as_deref() {
        Some(text) => json_column(text)?,
        None => BTreeMap::new(),
    };
    let mut edits = match details.remove("edits") {
        Some(Value::Array(edits)) => edits,
        _ => Vec::new(),
    };
    edits.push(json!({"text": text, "replaced_at": Timestamp(context.now)}));
    details.extend(message.details.clone());
    details.insert("edits".into(), Value::Array(edits));
    conn.prepare_cached("UPDATE messages SET text = ?1, metadata = ?2 WHERE id = ?3")?
        .execute(params![
            message.text,
            serde_json::to_string(&details).unwrap_or_default(),
            message_id
        ])?;
    conn.prepare_cached("UPDATE conversations SET updated_at = ?1 WHERE id = ?2")?
        .execute(params![context.now, conversation_id])?;
    insert_events(
        conn,
        conversation_id,
        &[NewEvent::system("message.edited", json!({"message_id": message_id}))],
        context.now,
    )?;
    Ok(Some(outcome(false)))
}

/// What the messages row keeps besides the text: the channel's details, or the
/// sender's attributes as given with this message.
fn message_details(message: &InboundMessage) -> Option<String> {
    if !message.details.is_empty() {
        return serde_json::to_string(&message.details).ok();
    }
    (!message.metadata.is_empty()).then(|| serde_json::to_string(&message.metadata).unwrap_or_default())
}

/// Attachment bytes go in once per content hash, however many messages carry them.
/// Files are `(filename, content type, bytes)`.
fn insert_attachments<'a>(
    conn: &Connection,
    message_id: i64,
    files: impl IntoIterator<Item = (&'a str, &'a str, &'a [u8])>,
    now: i64,
) -> StoreResult<()> {
    for (filename, content_type, data) in files {
        let sha256 = sha256_hex(data);
        let size = data.len() as i64;
        conn.prepare_cached(
            "INSERT INTO blobs (sha256, size, data, created_at) VALUES (?1, ?2, ?3, ?4) ON CONFLICT (sha256) DO NOTHING",
        )?
        .execute(params![sha256, size, data, now])?;
        conn.prepare_cached(
            "INSERT INTO attachments (message_id, blob_sha256, filename, content_type, size) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![message_id, sha256, filename, content_type, size])?;
    }
    Ok(())
}

fn inbound_files(message: &InboundMessage) -> impl Iterator<Item = (&str, &str, &[u8])> {
    message
        .attachments
        .iter()
        .map(|a| (a.filename.as_str(), a.content_type.as_str(), a.data.as_slice()))
}

/// The channel says a contact cannot be reached there any more (they blocked the bot).
pub fn mark_unreachable(
    conn: &Connection,
    inbox_id: i64,
    external_id: &str,
    reason: &str,
    now: i64,
) -> StoreResult<bool> {
    let changed = conn
        .prepare_cached(
            "UPDATE contact_identities SET unreachable_reason = ?1, unreachable_at = ?2
             WHERE inbox_id = ?3 AND external_id = ?4",
        )?
        .execute(params![reason, now, inbox_id, external_id])?;
    Ok(changed > 0)
}

pub fn set_channel_cursor(conn: &Connection, inbox_id: i64, name: &str, value: &str, now: i64) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT INTO channel_cursors (inbox_id, name, value, updated_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (inbox_id, name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
    )?
    .execute(params![inbox_id, name, value, now])?;
    Ok(())
}

/// `detected`: the language detected from the text when the channel gave none. It is the
/// message's language, and the contact's when they have none yet; it never replaces a
/// language the channel gave.
pub fn ingest(
    conn: &Connection,
    desk: &Desk,
    context: &IngestContext,
    message: &InboundMessage,
    detected: Option<&str>,
) -> StoreResult<IngestOutcome> {
    let now = context.now;
    let inbox = &context.inbox;

    let duplicate = conn
        .prepare_cached("SELECT id, conversation_id FROM messages WHERE inbox_id = ?1 AND external_id = ?2")?
        .query_row(params![inbox.id, message.external_id], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .optional()?;
    if let Some((message_id, conversation_id)) = duplicate {
        return Ok(IngestOutcome {
            conversation_id,
            message_id,
            duplicate: true,
            created_conversation: false,
            queued_outbound: false,
            next_sla_fire: None,
        });
    }

    if let Some(bounce) = &message.bounce
        && let Some(outcome) = ingest_bounce(conn, context, message, bounce)?
    {
        return Ok(outcome);
    }
    if let Some(original) = &message.edits
        && let Some(outcome) = apply_edit(conn, context, message, original)?
    {
        return Ok(outcome);
    }

    let contact = find_or_create_contact(conn, context, message, detected)?;
    let stated = message.language.as_deref().or(detected);
    let language = stated.or(contact.language.as_deref());
    let mut events = Vec::new();
    let mut existing = if message.hints.is_empty() {
        find_thread(conn, inbox.id, contact.contact_id, message.thread.as_deref())?
    } else {
        thread_by_hints(conn, inbox.id, contact.contact_id, &message.hints, now)?
    };
    // Machines (an out-of-office answer to our "resolved" mail) do not reopen.
    let automated = message.automated.is_some() || message.bounce.is_some();
    // A satisfaction score: a button or a webhook answer names its question; a reply
    // that is only a digit answers the customer's latest question still open.
    let mut csat = None;
    // A message that joins without reopening, acknowledging or moving clocks: a score
    // button whose question is gone, or a bare "stop".
    let mut quiet = false;
    if let Some(answer) = &message.csat {
        let named = match (&answer.token, answer.conversation_id) {
            (Some(token), _) => csat_conversation(conn, token)?,
            (None, Some(id)) => Some(id),
            (None, None) => None,
        };
        let candidate = named
            .map(|id| own_conversation(conn, id, inbox.id, contact.contact_id))
            .transpose()?
            .flatten();
        let open = match &candidate {
            Some(candidate) => question_open(conn, desk, candidate.id, now)?,
            None => false,
        };
        match (candidate, answer.token.is_some()) {
            (Some(candidate), _) if open => {
                existing = Some((candidate.id, candidate.status));
                csat = Some((answer.score, answer.comment.clone()));
            }
            // A button pressed after its question expired, was replaced or its
            // conversation reopened: kept with the conversation, changing nothing. An
            // error here would stop the inbox, which reads its updates in order.
            (Some(candidate), true) => {
                existing = Some((candidate.id, candidate.status));
                quiet = true;
            }
            (None, true) => quiet = true,
            // A webhook answer names its conversation outright: a wrong one is the
            // sender's mistake.
            (Some(_), false) => {
                return Err(StoreError::Invalid {
                    field: "csat",
                    problem: "the conversation has no open satisfaction question".into(),
                });
            }
            (None, false) => {
                return Err(StoreError::Invalid {
                    field: "csat.conversation_id",
                    problem: "is not a conversation of this sender in this inbox".into(),
                });
            }
        }
    } else if !automated
        // Telegram's `/start` opens a new conversation; it answers no question.
        && !context.greeting
        && let Some(asked) = awaiting_csat(conn, desk, inbox.id, contact.contact_id, existing, message, now)?
    {
        match parse_score(&message.text) {
            Some((score, comment)) => {
                existing = Some((asked, Status::Resolved));
                csat = Some((score, comment));
            }
            None => match desk.updates.settings.csat.after_resolution {
                AfterResolution::Reopen => existing = Some((asked, Status::Resolved)),
                AfterResolution::NewConversation => existing = None,
            },
        }
    }
    // A bare "stop" (or the mail a List-Unsubscribe button sends) is not a case for the
    // queue. One that says more ("stop\nI was charged twice") is a message like any other.
    let single_line = message.text.lines().filter(|line| !line.trim().is_empty()).count() <= 1;
    quiet |= message.opt_out == Some(true) && single_line;
    if quiet && existing.is_none() && !automated {
        existing = latest_conversation(conn, inbox.id, contact.contact_id)?;
    }
    let reopens = !automated && csat.is_none() && !quiet && existing.is_some_and(|(_, status)| status != Status::Open);
    let (conversation_id, routed) = match existing {
        Some((id, status)) => {
            if reopens {
                events.push(NewEvent::by_contact(
                    "conversation.status_changed",
                    contact.contact_id,
                    json!({"from": status, "to": Status::Open, "reason": "customer_message"}),
                ));
            }
            (id, None)
        }
        None => {
            let decision = context.router.route(&RouteInput {
                inbox: &inbox.key,
                channel: inbox.channel,
                subject: message.subject.as_deref(),
                text: &message.text,
                language,
                metadata: &contact.metadata,
            });
            let team = team(conn, &decision.team)?;
            let tier = desk.team(&decision.team).map_or(0, |team| team.tier);
            let id: i64 = conn
                .prepare_cached(
                    "INSERT INTO conversations (inbox_id, contact_id, identity_id, thread_key, subject, status, priority,
                                                team_id, labels, language, created_at, updated_at, last_activity_at,
                                                tier, queued_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, 'open', ?6, ?7, ?8, ?9, ?10, ?10, ?10, ?11, ?10) RETURNING id",
                )?
                .query_row(
                    params![
                        inbox.id,
                        contact.contact_id,
                        contact.identity_id,
                        message.thread.as_deref().or(message.hints.topic.as_deref()),
                        message.subject,
                        decision.priority.as_str(),
                        team.as_ref().map(|(id, _)| *id),
                        serde_json::to_string(&decision.labels).unwrap_or_else(|_| "[]".into()),
                        language,
                        now,
                        tier
                    ],
                    |row| row.get(0),
                )?;
            events.push(NewEvent::by_contact(
                "conversation.created",
                contact.contact_id,
                json!({"inbox": inbox.key, "channel": inbox.channel, "thread": message.thread}),
            ));
            events.push(NewEvent::system(
                "conversation.routed",
                json!({"rule": decision.rule, "matched": decision.matched, "team": decision.team, "tier": tier,
                       "priority": decision.priority, "labels": decision.labels, "language": language}),
            ));
            (id, Some((decision, team)))
        }
    };

    // The conversation's events first: an integration hears of a new conversation
    // before its first message.
    let mut queued_outbound = record_events(conn, desk, conversation_id, &events, now)?;
    let message_id = insert_message(
        conn,
        NewMessage {
            conversation_id,
            inbox_id: inbox.id,
            direction: Direction::Inbound,
            kind: MessageKind::Message,
            author_kind: ActorKind::Contact,
            author_id: Some(contact.contact_id),
            text: &message.text,
            html: message.html.as_deref(),
            external_id: Some(&message.external_id),
            language: stated,
            metadata: message_details(message),
        },
        now,
    )?;
    insert_attachments(conn, message_id, inbound_files(message), now)?;

    if reopens {
        conn.prepare_cached("UPDATE conversations SET status = 'open', resolved_at = NULL WHERE id = ?1")?
            .execute([conversation_id])?;
    }
    // Status stays out of this statement: SQLite rewrites the entries of every index
    // holding a column the statement sets, changed or not, and status is in three.
    conn.prepare_cached(
        "UPDATE conversations SET last_activity_at = ?1, updated_at = ?1, last_message_id = ?2,
                language = COALESCE(language, ?3)
         WHERE id = ?4",
    )?
    .execute(params![now, message_id, language, conversation_id])?;
    if let Some(opt_out) = message.opt_out
        && !automated
    {
        set_opt_out(conn, contact.contact_id, conversation_id, opt_out, now)?;
    }
    if let Some((score, comment)) = &csat {
        record_csat(
            conn,
            desk,
            conversation_id,
            *score,
            comment.as_deref(),
            inbox.channel.as_str(),
            now,
        )?;
    }

    // Customers hear that their message arrived (or when the team is back) when it
    // opens a conversation, and when the team is closed as they reopen one.
    let team_closed = |team_key: &str| desk.team(team_key).is_some_and(|team| !team.hours.is_open(now));
    let announce = if automated || csat.is_some() || quiet {
        None
    } else if let Some((decision, _)) = &routed {
        Some(if context.greeting {
            UpdateEvent::Greeting
        } else if team_closed(&decision.team)
            && desk
                .updates
                .sends(UpdateEvent::OutOfHours, &inbox.key, Some(&decision.team))
        {
            UpdateEvent::OutOfHours
        } else {
            UpdateEvent::Received
        })
    } else {
        None
    };
    if let Some(event) = announce {
        let target = load_update_target(conn, conversation_id)?;
        let mut sent = send_update_expiring(conn, desk, &target, event, now, context.expires_at)?;
        // A team with no opening ahead (or a zone that cannot be told) still acknowledges.
        if !sent && event == UpdateEvent::OutOfHours {
            sent = send_update_expiring(conn, desk, &target, UpdateEvent::Received, now, context.expires_at)?;
        }
        queued_outbound |= sent;
    }
    if reopens
        && let Some(team_key) = conversation_state(conn, conversation_id)?.team_key
        && team_closed(&team_key)
    {
        let target = load_update_target(conn, conversation_id)?;
        queued_outbound |= send_update(conn, desk, &target, UpdateEvent::OutOfHours, now)?;
    }

    let next_sla_fire = match &routed {
        Some((decision, team)) => {
            let state = ConversationState {
                id: conversation_id,
                team_id: team.as_ref().map(|(id, _)| *id),
                team_key: Some(decision.team.clone()),
                tier: 0,
                status: Status::Open,
                priority: decision.priority,
                assignee: None,
                first_response_at: None,
                labels: Vec::new(),
            };
            let next = update_clocks(conn, desk, &state, ClockChange::Created, now)?;
            if let Some((team_id, _)) = team {
                assign_new(
                    conn,
                    desk,
                    conversation_id,
                    contact.contact_id,
                    *team_id,
                    &decision.team,
                    now,
                )?;
            }
            next
        }
        None if automated || csat.is_some() || quiet || (!reopens && !desk.runs_next_response()) => None,
        None => {
            let state = conversation_state(conn, conversation_id)?;
            let next = update_clocks(
                conn,
                desk,
                &state,
                ClockChange::CustomerMessage { reopened: reopens },
                now,
            )?;
            // A reopened conversation nobody holds joins its team's queue, from now.
            if reopens
                && state.assignee.is_none()
                && let (Some(team_id), Some(team_key)) = (state.team_id, &state.team_key)
            {
                conn.prepare_cached("UPDATE conversations SET queued_at = ?1 WHERE id = ?2")?
                    .execute(params![now, conversation_id])?;
                drain_team(conn, desk, team_id, team_key, now)?;
            }
            next
        }
    };
    Ok(IngestOutcome {
        conversation_id,
        message_id,
        duplicate: false,
        created_conversation: routed.is_some(),
        // Assigning a new or reopened conversation may queue an `assigned` update deep
        // in the queue's code: waking the outbox for nothing costs one lookup.
        queued_outbound: queued_outbound || routed.is_some() || reopens,
        next_sla_fire,
    })
}

pub fn create_agent(conn: &Connection, agent: &NewAgent, now: i64) -> StoreResult<Agent> {
    let Some((team_id, _)) = team(conn, &agent.team)? else {
        return Err(StoreError::Invalid {
            field: "team",
            problem: format!("`{}` is not a configured team", agent.team),
        });
    };
    let taken = conn
        .prepare_cached("SELECT 1 FROM agents WHERE name = ?1")?
        .exists([&agent.name])?;
    if taken {
        return Err(StoreError::Conflict(format!(
            "an agent named `{}` already exists",
            agent.name
        )));
    }
    let id: i64 = conn
        .prepare_cached(
            "INSERT INTO agents (name, role, team_id, token_hash, created_at, capacity, available)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING id",
        )?
        .query_row(
            params![
                agent.name,
                agent.role.as_str(),
                team_id,
                agent.token_hash,
                now,
                agent.capacity,
                agent.available
            ],
            |row| row.get(0),
        )?;
    Ok(Agent {
        id,
        name: agent.name.clone(),
        role: agent.role,
        team: Some(agent.team.clone()),
        available: agent.available,
        capacity: agent.capacity.map(i64::from),
        open_conversations: 0,
        created_at: Timestamp(now),
    })
}

/// Stores an agent's reply (with its outbox row) or note; returns the message id.
pub fn add_agent_message(conn: &Connection, desk: &Desk, new: &NewAgentMessage) -> StoreResult<i64> {
    let (status, inbox_id, assignee, channel): (String, i64, Option<i64>, String) = conn
        .prepare_cached(
            "SELECT c.status, c.inbox_id, c.assignee_id, i.kind FROM conversations c JOIN inboxes i ON i.id = c.inbox_id
             WHERE c.id = ?1",
        )?
        .query_row([new.conversation_id], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })
        .optional()?
        .ok_or(StoreError::NotFound("conversation"))?;
    // A file the customer would never get must not look sent.
    if !new.private && !new.attachments.is_empty() && channel == ChannelKind::Webhook.as_str() {
        return Err(StoreError::Invalid {
            field: "attachments",
            problem: format!(
                "the {channel} channel of conversation #{} does not carry files; send them by link, \
                 or attach them to an internal note",
                new.conversation_id
            ),
        });
    }
    if !new.private && vocabulary(Status::parse, &status)? == Status::Closed {
        return Err(StoreError::Conflict(format!(
            "conversation #{} is closed; reopen it (status open) before replying",
            new.conversation_id
        )));
    }
    let (direction, kind) = if new.private {
        (Direction::Note, MessageKind::Note)
    } else {
        (Direction::Outbound, MessageKind::Reply)
    };
    let message_id = insert_message(
        conn,
        NewMessage {
            conversation_id: new.conversation_id,
            inbox_id,
            direction,
            kind,
            author_kind: ActorKind::Agent,
            author_id: Some(new.agent_id),
            text: &new.text,
            html: None,
            external_id: None,
            language: None,
            metadata: None,
        },
        new.now,
    )?;
    let files = new
        .attachments
        .iter()
        .map(|a| (a.filename.as_str(), a.content_type.as_str(), a.data.as_slice()));
    insert_attachments(conn, message_id, files, new.now)?;
    let mut events = Vec::new();
    let public = !new.private;
    if public {
        insert_outbox(conn, message_id, new.conversation_id, inbox_id, new.now, new.expires_at)?;
        // Whoever answers an unassigned conversation owns it, as in most help desks:
        // the customer's next message then reaches the agent they talked to.
        if assignee.is_none() {
            events.push(NewEvent::by_agent(
                "conversation.assigned",
                new.agent_id,
                json!({"from": null, "to": new.agent_id, "reason": "replied"}),
            ));
        }
    }
    conn.prepare_cached(
        "UPDATE conversations SET last_activity_at = ?1, updated_at = ?1, last_message_id = ?2,
                first_response_at = CASE WHEN ?3 THEN COALESCE(first_response_at, ?1) ELSE first_response_at END,
                assignee_id = CASE WHEN ?3 THEN COALESCE(assignee_id, ?4) ELSE assignee_id END
         WHERE id = ?5",
    )?
    .execute(params![new.now, message_id, public, new.agent_id, new.conversation_id])?;
    insert_events(conn, new.conversation_id, &events, new.now)?;
    if public {
        // A reply only ends clocks, so the scheduler's plan cannot get earlier.
        let state = conversation_state(conn, new.conversation_id)?;
        update_clocks(conn, desk, &state, ClockChange::AgentReply, new.now)?;
    }
    Ok(message_id)
}

/// The id of the agent a selector names; an unknown one is the caller's mistake.
fn resolve_agent(conn: &Connection, selector: &AgentSelector) -> StoreResult<i64> {
    let (found, problem) = match selector {
        AgentSelector::Id(id) => (
            conn.prepare_cached("SELECT id FROM agents WHERE id = ?1")?
                .query_row([id], |row| row.get(0))
                .optional()?,
            format!("no agent has id {id}"),
        ),
        AgentSelector::Name(name) => (
            conn.prepare_cached("SELECT id FROM agents WHERE name = ?1")?
                .query_row([name], |row| row.get(0))
                .optional()?,
            format!("no agent is named `{name}`"),
        ),
    };
    found.ok_or(StoreError::Invalid {
        field: "assignee",
        problem,
    })
}

pub fn update_conversation(
    conn: &Connection,
    desk: &Desk,
    id: i64,
    agent_id: i64,
    changes: &ConversationChanges,
    now: i64,
) -> StoreResult<()> {
    type Row = (
        String,
        String,
        Option<i64>,
        Option<i64>,
        Option<String>,
        i64,
        Option<i64>,
    );
    let (status, priority, mut assignee, mut team_id, team_key, mut transfer_count, mut resolved_at): Row = conn
        .prepare_cached(
            "SELECT c.status, c.priority, c.assignee_id, c.team_id, t.key, c.transfer_count, c.resolved_at
             FROM conversations c LEFT JOIN teams t ON t.id = c.team_id WHERE c.id = ?1",
        )?
        .query_row([id], |row| {
            Ok((
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
                row.get(4)?,
                row.get(5)?,
                row.get(6)?,
            ))
        })
        .optional()?
        .ok_or(StoreError::NotFound("conversation"))?;
    let mut status = vocabulary(Status::parse, &status)?;
    let mut priority = vocabulary(Priority::parse, &priority)?;
    let mut events = Vec::new();
    let (old_status, old_priority, old_team, old_team_key, old_assignee) =
        (status, priority, team_id, team_key.clone(), assignee);

    if let Some(new_status) = changes.status
        && new_status != status
    {
        events.push(NewEvent::by_agent(
            "conversation.status_changed",
            agent_id,
            json!({"from": status, "to": new_status}),
        ));
        resolved_at = (new_status == Status::Resolved)
            .then_some(now)
            .or(resolved_at.filter(|_| new_status == Status::Closed));
        status = new_status;
    }
    if let Some(new_priority) = changes.priority
        && new_priority != priority
    {
        events.push(NewEvent::by_agent(
            "conversation.priority_changed",
            agent_id,
            json!({"from": priority, "to": new_priority}),
        ));
        priority = new_priority;
    }
    if let Some(selector) = &changes.assignee {
        let target = selector
            .as_ref()
            .map(|selector| resolve_agent(conn, selector))
            .transpose()?;
        if target != assignee {
            events.push(NewEvent::by_agent(
                "conversation.assigned",
                agent_id,
                json!({"from": assignee, "to": target}),
            ));
            assignee = target;
        }
    }
    if let Some(new_team) = &changes.team {
        let Some((new_team_id, _)) = team(conn, new_team)? else {
            return Err(StoreError::Invalid {
                field: "team",
                problem: format!("`{new_team}` is not a configured team"),
            });
        };
        if team_id != Some(new_team_id) {
            events.push(NewEvent::by_agent(
                "conversation.transferred",
                agent_id,
                json!({"from": team_key, "to": new_team}),
            ));
            team_id = Some(new_team_id);
            transfer_count += 1;
            // The new team's queue decides who works on it, unless this same change
            // names an assignee: an agent of another team keeps no hold on it.
            if changes.assignee.is_none()
                && let Some(current) = assignee
            {
                let current_team: Option<i64> = conn
                    .prepare_cached("SELECT team_id FROM agents WHERE id = ?1")?
                    .query_row([current], |row| row.get(0))?;
                if current_team != Some(new_team_id) {
                    events.push(NewEvent::by_agent(
                        "conversation.assigned",
                        agent_id,
                        json!({"from": current, "to": null, "reason": "transferred"}),
                    ));
                    assignee = None;
                }
            }
        }
    }
    if events.is_empty() {
        return Ok(());
    }
    conn.prepare_cached(
        "UPDATE conversations SET status = ?1, priority = ?2, assignee_id = ?3, team_id = ?4, transfer_count = ?5,
                resolved_at = ?6, updated_at = ?7
         WHERE id = ?8",
    )?
    .execute(params![
        status.as_str(),
        priority.as_str(),
        assignee,
        team_id,
        transfer_count,
        resolved_at,
        now,
        id
    ])?;
    record_events(conn, desk, id, &events, now)?;

    let state = conversation_state(conn, id)?;
    let waiting = |status: Status, assignee: Option<i64>| status == Status::Open && assignee.is_none();
    if team_id != old_team {
        // A transfer puts it at the back of the new team's queue, at that team's tier.
        let tier = state
            .team_key
            .as_deref()
            .and_then(|key| desk.team(key))
            .map_or(0, |team| team.tier);
        conn.prepare_cached("UPDATE conversations SET queued_at = ?1, tier = ?2 WHERE id = ?3")?
            .execute(params![now, tier, id])?;
    } else if waiting(status, assignee) && !waiting(old_status, old_assignee) {
        // Back in the queue (unassigned, or reopened with nobody on it): it waits from now,
        // behind what already waited.
        conn.prepare_cached("UPDATE conversations SET queued_at = ?1 WHERE id = ?2")?
            .execute(params![now, id])?;
    }
    if status != old_status {
        update_clocks(
            conn,
            desk,
            &state,
            ClockChange::Status {
                from: old_status,
                to: status,
            },
            now,
        )?;
    }
    if team_id != old_team || priority != old_priority {
        let change = ClockChange::Retarget {
            old_team: old_team_key.clone(),
            old_priority,
        };
        update_clocks(conn, desk, &state, change, now)?;
    }
    // Whatever freed room or queued work: the conversation's team, the team it left,
    // and the team of the agent it left.
    let mut teams = vec![(team_id, state.team_key.clone()), (old_team, old_team_key)];
    teams.dedup();
    for (team_id, key) in teams {
        if let (Some(team_id), Some(key)) = (team_id, key) {
            drain_team(conn, desk, team_id, &key, now)?;
        }
    }
    if let Some(previous) = old_assignee
        && (assignee != old_assignee || status != old_status)
    {
        drain_agent_team(conn, desk, previous, now)?;
    }
    Ok(())
}

pub fn release_in_flight(conn: &Connection, now: i64) -> StoreResult<u64> {
    let released = conn.execute(
        "UPDATE outbox SET status = 'scheduled', lease_until = NULL, next_attempt_at = MIN(next_attempt_at, ?1), updated_at = ?1
         WHERE status = 'in_flight'",
        [now],
    )?;
    Ok(released as u64)
}

/// `held`: a JSON array of inbox ids whose rows wait (their destination is paused or
/// busy); `budgets`: a JSON object of inbox id to how many it may take now, `cap` for the
/// others. The budgets apply among the first due rows (four times `limit`), so a claim
/// stays cheap behind a large backlog.
pub fn claim_deliveries(
    conn: &Connection,
    now: i64,
    limit: u32,
    lease_until: i64,
    held: &str,
    budgets: &str,
    cap: u32,
) -> StoreResult<Vec<Delivery>> {
    let claimed: Vec<i64> = conn
        .prepare_cached(
            "UPDATE outbox SET status = 'in_flight', attempts = attempts + 1, lease_until = ?1, updated_at = ?2
             WHERE id IN (
                 SELECT id FROM (
                     SELECT id, next_attempt_at,
                            ROW_NUMBER() OVER (PARTITION BY inbox_id ORDER BY next_attempt_at, id) AS turn,
                            COALESCE(json_extract(?5, '$.\"' || inbox_id || '\"'), ?6) AS room
                     FROM (
                         SELECT o.id, o.inbox_id, o.next_attempt_at FROM outbox o
                         WHERE o.status = 'scheduled' AND o.next_attempt_at <= ?2
                           AND o.inbox_id NOT IN (SELECT value FROM json_each(?4))
                           AND NOT EXISTS (
                               SELECT 1 FROM outbox other
                               WHERE other.conversation_id = o.conversation_id AND other.id != o.id
                                 -- Repeats the partial index's condition, so SQLite uses it
                                 -- rather than reading every row the outbox ever held.
                                 AND other.status IN ('scheduled', 'in_flight')
                                 AND (other.status = 'in_flight' OR other.id < o.id))
                         ORDER BY o.next_attempt_at, o.id LIMIT ?7))
                 WHERE turn <= room ORDER BY next_attempt_at, id LIMIT ?3)
             RETURNING id",
        )?
        .query_map(
            params![lease_until, now, limit, held, budgets, cap, limit.saturating_mul(4)],
            |row| row.get(0),
        )?
        .collect::<Result<_, _>>()?;
    let mut select = conn.prepare_cached(
        "SELECT o.id, o.inbox_id, o.attempts, o.expires_at, m.id, m.kind, m.text,
                c.id, c.thread_key, c.subject, ci.external_id, ci.channel, m.html, m.metadata
         FROM outbox o
         JOIN messages m ON m.id = o.message_id
         JOIN conversations c ON c.id = o.conversation_id
         JOIN contact_identities ci ON ci.id = c.identity_id
         WHERE o.id = ?1",
    )?;
    let mut deliveries = Vec::with_capacity(claimed.len());
    for outbox_id in claimed {
        let delivery = select.query_row([outbox_id], |row| {
            let message_id: i64 = row.get(4)?;
            let kind: String = row.get(5)?;
            let channel: String = row.get(11)?;
            let status_update = kind == MessageKind::StatusUpdate.as_str();
            // An update's rendered parts ride in its metadata; the HTML part has its column.
            let update = if status_update {
                let metadata: Option<String> = row.get(13)?;
                metadata
                    .and_then(|text| serde_json::from_str::<Value>(&text).ok())
                    .and_then(|mut value| serde_json::from_value::<StatusUpdate>(value["update"].take()).ok())
                    .map(|mut update| -> rusqlite::Result<StatusUpdate> {
                        update.html = row.get(12)?;
                        Ok(update)
                    })
                    .transpose()?
            } else {
                None
            };
            let delivery = Delivery {
                outbox_id: row.get(0)?,
                inbox_id: row.get(1)?,
                attempts: row.get::<_, i64>(2)?.try_into().unwrap_or(u32::MAX),
                expires_at: row.get(3)?,
                message: OutboundMessage {
                    delivery_id: format!("msg_{message_id}"),
                    conversation_id: row.get(7)?,
                    message_id,
                    recipient: row.get(10)?,
                    thread: row.get(8)?,
                    subject: row.get(9)?,
                    text: row.get(6)?,
                    kind: if status_update {
                        OutboundKind::StatusUpdate
                    } else {
                        OutboundKind::Reply
                    },
                    in_reply_to: None,
                    references: Vec::new(),
                    attachments: Vec::new(),
                    update,
                },
            };
            Ok((delivery, channel))
        })?;
        let (mut delivery, channel) = delivery;
        // Email threads by earlier messages' ids, Telegram answers the customer's latest
        // message in groups; both carry files. The webhook skips the lookups.
        if channel != ChannelKind::Webhook.as_str() {
            thread_ids(conn, &mut delivery.message)?;
            delivery.message.attachments = conn
                .prepare_cached(
                    "SELECT a.filename, a.content_type, b.data FROM attachments a JOIN blobs b ON b.sha256 = a.blob_sha256
                     WHERE a.message_id = ?1 ORDER BY a.id",
                )?
                .query_map([delivery.message.message_id], |row| {
                    Ok(OutboundAttachment {
                        filename: row.get(0)?,
                        content_type: row.get(1)?,
                        data: row.get(2)?,
                    })
                })?
                .collect::<Result<_, _>>()?;
        }
        deliveries.push(delivery);
    }
    deliveries.sort_by_key(|delivery| delivery.outbox_id);
    Ok(deliveries)
}

fn receipt_thread_id(result: &DeliveryResult) -> Option<String> {
    match result {
        DeliveryResult::Sent(receipt) => receipt.thread_id.clone(),
        _ => None,
    }
}

/// How many ids of earlier messages a References header carries: the first (the thread's
/// root) and the latest ones, as RFC 5322 suggests trimming long threads.
const MAX_REFERENCES: usize = 20;

/// The channel ids of the conversation's earlier messages, for a channel that threads by
/// them (email): the customer's latest one is what this message answers.
fn thread_ids(conn: &Connection, message: &mut OutboundMessage) -> StoreResult<()> {
    let mut latest: Vec<(String, String)> = conn
        .prepare_cached(
            "SELECT external_id, direction FROM messages
             WHERE conversation_id = ?1 AND id < ?2 AND external_id IS NOT NULL
               AND NOT (direction = 'inbound' AND author_kind = 'system')
             ORDER BY id DESC LIMIT ?3",
        )?
        .query_map(
            params![message.conversation_id, message.message_id, MAX_REFERENCES as i64],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?
        .collect::<Result<_, _>>()?;
    latest.reverse();
    if latest.len() == MAX_REFERENCES {
        let root: Option<String> = conn
            .prepare_cached(
                "SELECT external_id FROM messages WHERE conversation_id = ?1 AND external_id IS NOT NULL
                 ORDER BY id LIMIT 1",
            )?
            .query_row([message.conversation_id], |row| row.get(0))
            .optional()?;
        if let Some(root) = root
            && latest.first().is_none_or(|(first, _)| *first != root)
        {
            latest[0] = (root, Direction::Inbound.as_str().to_owned());
        }
    }
    message.in_reply_to = latest
        .iter()
        .rev()
        .find(|(_, direction)| direction == Direction::Inbound.as_str())
        .map(|(id, _)| id.clone());
    message.references = latest.into_iter().map(|(id, _)| id).collect();
    Ok(())
}

pub fn record_delivery(conn: &Connection, outbox_id: i64, result: &DeliveryResult, now: i64) -> StoreResult<()> {
    match result {
        DeliveryResult::Sent(receipt) => {
            let receipt = json!({"external_id": receipt.external_id, "detail": receipt.detail}).to_string();
            let recorded = conn.prepare_cached(
                "UPDATE outbox SET status = 'sent', receipt = ?1, sent_at = ?2, last_error = NULL, lease_until = NULL,
                        updated_at = ?2
                 WHERE id = ?3 AND status = 'in_flight'",
            )?
            .execute(params![receipt, now, outbox_id])?;
            // A row no longer in flight was settled meanwhile (a bounce that arrived
            // before the send's own record): that word stands.
            if recorded == 0 {
                return Ok(());
            }
            if let Some(thread_id) = &receipt_thread_id(result) {
                // OR IGNORE: an id some inbound message already holds must not fail the
                // record of a send that happened; threading then finds that message.
                conn.prepare_cached(
                    "UPDATE OR IGNORE messages SET external_id = ?1
                     WHERE id = (SELECT message_id FROM outbox WHERE id = ?2) AND external_id IS NULL",
                )?
                .execute(params![thread_id, outbox_id])?;
            }
        }
        DeliveryResult::RetryAt { at, error } => {
            conn.prepare_cached(
                "UPDATE outbox SET status = 'scheduled', next_attempt_at = ?1, last_error = ?2, lease_until = NULL,
                        updated_at = ?3
                 WHERE id = ?4 AND status = 'in_flight'",
            )?
            .execute(params![at, error, now, outbox_id])?;
        }
        DeliveryResult::Failed { error } | DeliveryResult::Unreachable { error } => {
            let settled: Option<(i64, i64, i64)> = conn
                .prepare_cached(
                    "UPDATE outbox SET status = 'failed', last_error = ?1, lease_until = NULL, updated_at = ?2
                     WHERE id = ?3 AND status = 'in_flight' RETURNING conversation_id, message_id, attempts",
                )?
                .query_row(params![error, now, outbox_id], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                })
                .optional()?;
            let Some((conversation_id, message_id, attempts)) = settled else {
                return Ok(());
            };
            let event = NewEvent::system(
                "delivery.failed",
                json!({"message_id": message_id, "attempts": attempts, "error": error}),
            );
            insert_events(conn, conversation_id, &[event], now)?;
            if matches!(result, DeliveryResult::Unreachable { .. }) {
                conn.prepare_cached(
                    "UPDATE contact_identities SET unreachable_reason = ?1, unreachable_at = ?2
                     WHERE id = (SELECT identity_id FROM conversations WHERE id = ?3)",
                )?
                .execute(params![error, now, conversation_id])?;
            }
        }
    }
    Ok(())
}

/// A paused destination's queued messages wait out the pause.
pub fn defer_deliveries(conn: &Connection, inbox_id: i64, until: i64, now: i64) -> StoreResult<u64> {
    Ok(conn
        .prepare_cached(
            "UPDATE outbox SET next_attempt_at = ?1, updated_at = ?2
             WHERE status = 'scheduled' AND inbox_id = ?3 AND next_attempt_at < ?1",
        )?
        .execute(params![until, now, inbox_id])? as u64)
}

/// Schedules a failed delivery again: due now, its retry schedule from the start (the
/// attempt count restarts), a new expiry; `Conflict` unless it failed.
pub fn retry_delivery(conn: &Connection, id: i64, agent_id: i64, now: i64, expires_at: i64) -> StoreResult<()> {
    let row: Option<(String, i64, i64, i64)> = conn
        .prepare_cached("SELECT status, conversation_id, message_id, attempts FROM outbox WHERE id = ?1")?
        .query_row([id], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)))
        .optional()?;
    let Some((status, conversation_id, message_id, attempts)) = row else {
        return Err(StoreError::NotFound("delivery"));
    };
    if status != DeliveryStatus::Failed.as_str() {
        return Err(StoreError::Conflict(format!(
            "delivery {id} is {status}; only a failed delivery can be retried"
        )));
    }
    conn.prepare_cached(
        "UPDATE outbox SET status = 'scheduled', attempts = 0, next_attempt_at = ?1, expires_at = ?2, lease_until = NULL,
                updated_at = ?1
         WHERE id = ?3",
    )?
    .execute(params![now, expires_at, id])?;
    insert_events(
        conn,
        conversation_id,
        &[NewEvent::by_agent(
            "delivery.retried",
            agent_id,
            json!({"message_id": message_id, "delivery_id": id, "attempts_before": attempts}),
        )],
        now,
    )
}
