//! One inbound message, in one unit of work: dropped when its `(inbox, external id)` is
//! known; the contact found or created; a delivery report or an edit applied to what it
//! names; otherwise threaded onto the sender's conversation or routed into a new one,
//! with its events, its clocks, a satisfaction answer or an opt-out, and the
//! acknowledgement. The decisions that need no lookups are functions of plain values
//! below ([`merge_contact`], [`announcement`], [`quiet_stop`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};
use switchboard_connector_core::{BounceReport, IdentityScope, InboundMessage, Sender};

use crate::domain::desk::Desk;
use crate::domain::events::{self, Actor, DomainEvent, MessageNews, StatusReason};
use crate::domain::router::{RouteInput, Router};
use crate::domain::updates::send::{self as updates, csat_conversation, question_open, record_csat, set_opt_out};
use crate::domain::updates::{AfterResolution, UpdateEvent, parse_score};
use crate::domain::{DeskError, DeskResult, clocks, queues, threading};
use crate::model::millis;
use crate::model::{ActorKind, DeliveryStatus, Direction, MessageKind, Status, Timestamp};
use crate::store::{
    ContactRecord, Conversation, ConversationLookup, ConversationPatch, ConversationRef, IdentityRef, InboxRef,
    NewAttachment, NewConversation, NewMessage, Tx,
};

/// What ingest needs besides the message: pure policies it runs inside the unit of work.
/// Owned, so the work can move to the thread that writes.
pub struct IngestContext {
    pub inbox: InboxRef,
    pub router: Arc<Router>,
    /// The message is Telegram's `/start`: a conversation it opens is greeted rather
    /// than acknowledged.
    pub greeting: bool,
    pub now: i64,
    /// When an outbound message queued now stops being worth sending.
    pub expires_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct IngestOutcome {
    pub conversation_id: i64,
    pub message_id: i64,
    pub duplicate: bool,
    /// Whether ingest opened a new conversation.
    #[serde(skip)]
    pub created_conversation: bool,
    /// Whether ingest may have queued an outbound message (so the outbox should look).
    #[serde(skip)]
    pub queued_outbound: bool,
    /// The earliest SLA moment this message scheduled (so the scheduler can wake sooner).
    #[serde(skip)]
    pub next_sla_fire: Option<i64>,
}

impl IngestOutcome {
    /// A message that changed no conversation's state: a duplicate, a report, an edit.
    fn quiet(conversation_id: i64, message_id: i64, duplicate: bool) -> IngestOutcome {
        IngestOutcome {
            conversation_id,
            message_id,
            duplicate,
            created_conversation: false,
            queued_outbound: false,
            next_sla_fire: None,
        }
    }
}

/// The language of a message whose channel gave none, detected before the unit of work:
/// detection costs microseconds the one writer should not pay.
pub fn detect_language(desk: &Desk, message: &InboundMessage) -> Option<String> {
    if message.language.is_none() && message.automated.is_none() && message.bounce.is_none() {
        desk.languages.detect(&message.text).map(str::to_owned)
    } else {
        None
    }
}

/// Whether a language detected from `text` stands for the message of a contact whose
/// language is `known`: a short chat line ("si grazie, va bene") says too little to move a
/// known Italian customer to Spanish, so there the contact's language is kept.
fn keeps_detection(known: Option<&str>, detected: &str, text: &str) -> bool {
    let Some(known) = known else { return true };
    use crate::domain::language::{same_language, short_line};
    same_language(known, detected) || !short_line(text)
}

/// `detected`: the language detected from the text when the channel gave none. It is the
/// message's language, and the contact's when they have none yet; it never replaces a
/// language the channel gave, nor, on a short chat line, the contact's known one.
pub fn ingest(
    tx: &mut dyn Tx,
    desk: &Desk,
    context: &IngestContext,
    message: &InboundMessage,
    detected: Option<&str>,
) -> DeskResult<IngestOutcome> {
    let now = context.now;
    let inbox = &context.inbox;

    if let Some(known) = tx.message_by_external_id(inbox.id, &message.external_id)? {
        return Ok(IngestOutcome::quiet(known.conversation_id, known.id, true));
    }
    if let Some(bounce) = &message.bounce
        && let Some(outcome) = ingest_bounce(tx, context, message, bounce)?
    {
        return Ok(outcome);
    }
    if let Some(original) = &message.edits
        && let Some(outcome) = apply_edit(tx, context, message, original)?
    {
        return Ok(outcome);
    }

    let contact = find_or_create_contact(tx, context, message, detected)?;
    let detected = detected.filter(|tag| keeps_detection(contact.language.as_deref(), tag, &message.text));
    let stated = message.language.as_deref().or(detected);
    let language = stated.or(contact.language.as_deref());
    let mut existing = if message.hints.is_empty() {
        threading::by_key(tx, inbox.id, contact.contact_id, message.thread.as_deref())?
    } else {
        threading::by_hints(tx, inbox.id, contact.contact_id, &message.hints, now)?
    };
    // Machines (an out-of-office answer to our "resolved" mail) do not reopen.
    let automated = message.automated.is_some() || message.bounce.is_some() || message.auto_reply;
    // An out-of-office notice is about a case of the sender's, never news of its own:
    // the one it answers even under a subject of its own ("Out of office"), else, when
    // it names nothing, their latest; it joins without reopening it.
    if message.auto_reply && existing.is_none() {
        existing = threading::answered(tx, inbox.id, contact.contact_id, &message.hints)?;
    }
    if message.auto_reply && existing.is_none() {
        existing = tx.find_conversation(ConversationLookup::LatestLive {
            contact_id: contact.contact_id,
            inbox_id: inbox.id,
            resolved_since: now.saturating_sub(millis(message.hints.topic_window)),
        })?;
    }
    // With none to join it is filed resolved: agents can read it, but no clock runs for
    // a message nobody has to answer.
    let filed = message.auto_reply && existing.is_none();
    // A satisfaction score: a button or a webhook answer names its question; a reply
    // that is only a digit answers the customer's latest question still open.
    let mut csat = None;
    // A message that joins without reopening, acknowledging or moving clocks: a score
    // button whose question is gone, or a bare "stop".
    let mut quiet = false;
    if let Some(answer) = &message.csat {
        let named = match (&answer.token, answer.conversation_id) {
            (Some(token), _) => csat_conversation(tx, token)?,
            (None, Some(id)) => Some(id),
            (None, None) => None,
        };
        let candidate = match named {
            Some(id) => threading::own(tx, id, inbox.id, contact.contact_id)?,
            None => None,
        };
        let open = match &candidate {
            Some(candidate) => question_open(tx, desk, candidate.id, now)?,
            None => false,
        };
        match (candidate, answer.token.is_some()) {
            (Some(candidate), _) if open => {
                existing = Some(candidate);
                csat = Some((answer.score, answer.comment.clone()));
            }
            // A button pressed after its question expired, was replaced or its
            // conversation reopened: kept with the conversation, changing nothing. An
            // error here would stop the inbox, which reads its updates in order.
            (Some(candidate), true) => {
                existing = Some(candidate);
                quiet = true;
            }
            (None, true) => quiet = true,
            // A webhook answer names its conversation outright: a wrong one is the
            // sender's mistake.
            (Some(_), false) => {
                return Err(DeskError::Invalid {
                    field: "csat",
                    problem: "the conversation has no open satisfaction question".into(),
                });
            }
            (None, false) => {
                return Err(DeskError::Invalid {
                    field: "csat.conversation_id",
                    problem: "is not a conversation of this sender in this inbox".into(),
                });
            }
        }
    } else if !automated
        // Telegram's `/start` opens a new conversation; it answers no question.
        && !context.greeting
        // A mail that does not say who wrote it scores nobody's conversation.
        && !message.anonymous
        && let Some(asked) = awaiting_csat(tx, desk, inbox.id, contact.contact_id, existing.as_ref(), message, now)?
    {
        let resolved = ConversationRef {
            id: asked,
            status: Status::Resolved,
            topic: None,
        };
        match parse_score(&message.text) {
            Some((score, comment)) => {
                existing = Some(resolved);
                csat = Some((score, comment));
            }
            None => match desk.updates.settings.csat.after_resolution {
                AfterResolution::Reopen => existing = Some(resolved),
                AfterResolution::NewConversation => existing = None,
            },
        }
    }
    quiet |= quiet_stop(message);
    if quiet && existing.is_none() && !automated {
        existing = tx.find_conversation(ConversationLookup::LatestNotClosed {
            contact_id: contact.contact_id,
            inbox_id: inbox.id,
        })?;
    }
    let reopens =
        !automated && csat.is_none() && !quiet && existing.as_ref().is_some_and(|found| found.status != Status::Open);
    let mut recorded = Vec::new();
    let (conversation_id, routed) = match &existing {
        Some(found) => {
            if reopens {
                recorded.push((
                    Actor::contact(contact.contact_id),
                    DomainEvent::StatusChanged {
                        from: found.status,
                        to: Status::Open,
                        reason: Some(StatusReason::CustomerMessage),
                    },
                ));
            }
            (found.id, None)
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
            let team = tx.team(&decision.team)?;
            let tier = desk.team(&decision.team).map_or(0, |team| i64::from(team.tier));
            let id = tx.insert_conversation(&NewConversation {
                inbox_id: inbox.id,
                contact_id: contact.contact_id,
                identity_id: contact.identity_id,
                thread_key: message.thread.as_deref().or(message.hints.topic.as_deref()),
                subject: message.subject.as_deref(),
                priority: decision.priority,
                team_id: team.as_ref().map(|team| team.id),
                tier,
                labels: &decision.labels,
                language,
                now,
            })?;
            recorded.push((
                Actor::contact(contact.contact_id),
                DomainEvent::Created {
                    inbox: inbox.key.clone(),
                    channel: inbox.channel,
                    thread: message.thread.clone(),
                },
            ));
            recorded.push((
                Actor::SYSTEM,
                DomainEvent::Routed {
                    rule: decision.rule.clone(),
                    matched: decision.matched.clone(),
                    team: decision.team.clone(),
                    tier,
                    priority: decision.priority,
                    labels: decision.labels.clone(),
                    language: language.map(str::to_owned),
                },
            ));
            if filed {
                recorded.push((
                    Actor::SYSTEM,
                    DomainEvent::StatusChanged {
                        from: Status::Open,
                        to: Status::Resolved,
                        reason: Some(StatusReason::AutoReply),
                    },
                ));
                let resolved = ConversationPatch {
                    status: Some(Status::Resolved),
                    resolved_at: Some(Some(now)),
                    ..ConversationPatch::default()
                };
                tx.update_conversation(id, &resolved)?;
            }
            (id, Some((decision, team)))
        }
    };

    // The conversation's events first: an integration hears of a new conversation
    // before its first message.
    let mut queued_outbound = events::record(tx, desk, conversation_id, &recorded, now)?;
    let inbound = NewMessage {
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
    };
    let message_id = insert_inbound(tx, &inbound, Actor::contact(contact.contact_id), message, now)?;

    let mut touched = ConversationPatch {
        last_activity_at: Some(now),
        updated_at: Some(now),
        last_message_id: Some(message_id),
        language_if_unset: language.map(str::to_owned),
        // Replies go where the person wrote last.
        identity_id: Some(contact.identity_id),
        // A person waits for an answer from their first message no reply has answered
        // yet: what starts the response clocks starts the reports' response times.
        awaiting_since_if_unset: (!automated && csat.is_none() && !quiet && !filed).then_some(now),
        ..ConversationPatch::default()
    };
    if reopens {
        // Status apart from the touch: SQLite rewrites the entries of every index
        // holding a column a statement sets, changed or not, and status is in three.
        // A reopening waits from now: a wait the resolution ended is not this one.
        let reopened = ConversationPatch {
            status: Some(Status::Open),
            resolved_at: Some(None),
            awaiting_since: Some(Some(now)),
            ..ConversationPatch::default()
        };
        tx.update_conversation(conversation_id, &reopened)?;
    }
    tx.update_conversation(conversation_id, &std::mem::take(&mut touched))?;
    if let Some(opt_out) = message.opt_out
        && !automated
    {
        set_opt_out(tx, contact.contact_id, conversation_id, opt_out, now)?;
    }
    if let Some((score, comment)) = &csat {
        record_csat(
            tx,
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
    let routed_team = routed.as_ref().map(|(decision, _)| decision.team.as_str());
    let announce = announcement(Announce {
        automated,
        anonymous: message.anonymous,
        answered: csat.is_some(),
        quiet,
        routed: routed_team.is_some(),
        greeting: context.greeting,
        team_closed: routed_team.is_some_and(team_closed),
        out_of_hours_on: routed_team
            .is_some_and(|team| desk.updates.sends(UpdateEvent::OutOfHours, &inbox.key, Some(team))),
    });
    if let Some(event) = announce {
        let target = updates::target(tx, conversation_id)?;
        let mut sent = updates::send_expiring(tx, desk, &target, event, now, context.expires_at)?;
        // A team with no opening ahead (or a zone that cannot be told) still acknowledges.
        if !sent && event == UpdateEvent::OutOfHours {
            sent = updates::send_expiring(tx, desk, &target, UpdateEvent::Received, now, context.expires_at)?;
        }
        queued_outbound |= sent;
    }
    let reopened_state = if reopens {
        Some(clocks::state(tx, conversation_id)?)
    } else {
        None
    };
    if let Some(state) = &reopened_state
        && state.team_key.as_deref().is_some_and(team_closed)
    {
        let target = updates::target(tx, conversation_id)?;
        queued_outbound |= updates::send(tx, desk, &target, UpdateEvent::OutOfHours, now)?;
    }

    let next_sla_fire = match &routed {
        // Filed resolved: no clock and no place in the queue.
        Some(_) if filed => None,
        Some((decision, team)) => {
            let mut created = Conversation::opened(conversation_id, inbox, contact.contact_id, decision.priority, None);
            // The routed team, even one no longer in the store (the clocks follow its policy).
            created.team_id = team.as_ref().map(|team| team.id);
            created.team_key = Some(decision.team.clone());
            let next = clocks::update(tx, desk, &created, clocks::ClockChange::Created, now)?;
            let wait = match team {
                Some(team) => queues::assign_new(
                    tx,
                    desk,
                    conversation_id,
                    contact.contact_id,
                    team.id,
                    &decision.team,
                    now,
                )?,
                None => None,
            };
            earliest(next, wait)
        }
        None if automated || csat.is_some() || quiet || (!reopens && !desk.runs_next_response()) => None,
        None => {
            let state = match reopened_state {
                Some(state) => state,
                None => clocks::state(tx, conversation_id)?,
            };
            let change = clocks::ClockChange::CustomerMessage { reopened: reopens };
            let next = clocks::update(tx, desk, &state, change, now)?;
            let mut wait_until = None;
            // A reopened conversation nobody holds joins its team's queue, from now.
            if reopens
                && state.assignee.is_none()
                && let (Some(team_id), Some(team_key)) = (state.team_id, &state.team_key)
            {
                let queued = ConversationPatch {
                    queued_at: Some(now),
                    ..ConversationPatch::default()
                };
                tx.update_conversation(conversation_id, &queued)?;
                let drained = queues::drain_team(tx, desk, team_id, team_key, now)?;
                wait_until = drained.wait_until;
            }
            earliest(next, wait_until)
        }
    };
    Ok(IngestOutcome {
        conversation_id,
        message_id,
        duplicate: false,
        created_conversation: routed.is_some(),
        // Assigning a new or reopened conversation may queue an `assigned` update deep
        // in the queue's code: waking the outbox for nothing costs one lookup.
        queued_outbound: queued_outbound || (routed.is_some() && !filed) || reopens,
        next_sla_fire,
    })
}

/// The sooner of two moments the scheduler must look, either maybe none.
fn earliest(one: Option<i64>, other: Option<i64>) -> Option<i64> {
    match (one, other) {
        (Some(one), Some(other)) => Some(one.min(other)),
        (one, other) => one.or(other),
    }
}

/// What decides a new or joined conversation's acknowledgement.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Announce {
    /// The message is a machine's.
    pub automated: bool,
    /// The message names no sender that may be answered automatically.
    pub anonymous: bool,
    /// The message answered a satisfaction question.
    pub answered: bool,
    /// A bare stop, or a score whose question is gone.
    pub quiet: bool,
    /// The message opened a new conversation.
    pub routed: bool,
    /// Telegram's `/start`.
    pub greeting: bool,
    /// The new conversation's team is closed now.
    pub team_closed: bool,
    /// The out-of-hours update is on for this inbox and team.
    pub out_of_hours_on: bool,
}

/// The update a new conversation opens with, if any.
pub fn announcement(facts: Announce) -> Option<UpdateEvent> {
    if facts.automated || facts.anonymous || facts.answered || facts.quiet || !facts.routed {
        None
    } else if facts.greeting {
        Some(UpdateEvent::Greeting)
    } else if facts.team_closed && facts.out_of_hours_on {
        Some(UpdateEvent::OutOfHours)
    } else {
        Some(UpdateEvent::Received)
    }
}

/// A bare "stop" (or the mail a List-Unsubscribe button sends) is not a case for the
/// queue. One that says more ("stop\nI was charged twice") is a message like any other.
pub fn quiet_stop(message: &InboundMessage) -> bool {
    let single_line = message.text.lines().filter(|line| !line.trim().is_empty()).count() <= 1;
    message.opt_out == Some(true) && single_line
}

/// Stores an inbound message with its files, and tells integrations.
fn insert_inbound(
    tx: &mut dyn Tx,
    inbound: &NewMessage<'_>,
    author: Actor,
    message: &InboundMessage,
    now: i64,
) -> DeskResult<i64> {
    let message_id = tx.insert_message(inbound, now)?;
    events::message_created(
        tx,
        &MessageNews {
            conversation_id: inbound.conversation_id,
            message_id,
            direction: inbound.direction,
            kind: inbound.kind,
            author,
            text: inbound.text,
            language: inbound.language,
        },
        now,
    )?;
    for file in &message.attachments {
        let file = NewAttachment {
            filename: &file.filename,
            content_type: &file.content_type,
            data: &file.data,
        };
        tx.insert_attachment(message_id, file, now)?;
    }
    Ok(message_id)
}

/// The resolved conversation whose satisfaction question a reply may answer: the one
/// the message threads into, or for a channel without threads (a private chat) the
/// sender's latest one asked within `csat.answer_window`.
fn awaiting_csat(
    tx: &mut dyn Tx,
    desk: &Desk,
    inbox_id: i64,
    contact_id: i64,
    existing: Option<&ConversationRef>,
    message: &InboundMessage,
    now: i64,
) -> DeskResult<Option<i64>> {
    let window = millis(desk.updates.settings.csat.answer_window);
    let since = now.saturating_sub(window);
    let lookup = match existing {
        Some(found) if found.status == Status::Resolved => ConversationLookup::AskedSince { id: found.id, since },
        Some(_) => return Ok(None),
        None if message.thread.is_some() || !message.hints.is_empty() => return Ok(None),
        None => ConversationLookup::LatestAsked {
            contact_id,
            inbox_id,
            since,
        },
    };
    Ok(tx.find_conversation(lookup)?.map(|found| found.id))
}

/// The most a contact's attributes may weigh, as JSON. Each message's are bounded by its
/// channel; this bounds what many messages add up to, since every list page and
/// routing decision carries them.
pub const MAX_CONTACT_METADATA_BYTES: usize = 64 * 1024;

/// Merges what the message says of its sender into what we had: name, email and
/// language replace ours when given, a detected language fills a gap (it never replaces
/// one the channel gave), attributes are added or replaced one by one, except one that
/// would take the contact's attributes past [`MAX_CONTACT_METADATA_BYTES`] (left out;
/// the message itself keeps it). Returns whether anything changed.
pub fn merge_contact(contact: &mut ContactRecord, message: &InboundMessage, detected: Option<&str>) -> bool {
    let sender = &message.sender;
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
    if contact.language.is_none()
        && let Some(detected) = detected
    {
        contact.language = Some(detected.to_owned());
        changed = true;
    }
    let weight = |key: &str, value: &serde_json::Value| key.len() + value.to_string().len() + 4;
    let mut total: usize = contact.metadata.iter().map(|(key, value)| weight(key, value)).sum();
    for (key, value) in &message.metadata {
        if contact.metadata.get(key) == Some(value) {
            continue;
        }
        let replaced = contact.metadata.get(key).map_or(0, |old| weight(key, old));
        let after = total - replaced + weight(key, value);
        if after > MAX_CONTACT_METADATA_BYTES {
            continue;
        }
        total = after;
        contact.metadata.insert(key.clone(), value.clone());
        changed = true;
    }
    if let Some(phone) = &message.sender.phone {
        let phone = Value::String(phone.clone());
        if contact.metadata.get(PHONE) != Some(&phone) {
            contact.metadata.insert(PHONE.into(), phone);
            changed = true;
        }
    }
    changed
}

/// Finds the contact by the sender's identity in this inbox, or creates both.
fn find_or_create_contact(
    tx: &mut dyn Tx,
    context: &IngestContext,
    message: &InboundMessage,
    detected: Option<&str>,
) -> DeskResult<ContactRecord> {
    let sender = &message.sender;
    let inbox = &context.inbox;
    let Some(mut contact) = tx.identity(inbox.id, &sender.external_id)? else {
        let mut contact = ContactRecord {
            contact_id: 0,
            identity_id: 0,
            name: sender.name.clone(),
            email: sender.email.clone(),
            language: message.language.clone().or_else(|| detected.map(str::to_owned)),
            metadata: message.metadata.clone(),
            unreachable: false,
        };
        if let Some(phone) = &sender.phone {
            contact.metadata.insert(PHONE.into(), Value::String(phone.clone()));
        }
        // Email addresses and Telegram user ids name one person whatever inbox they
        // write to: a second inbox's identity joins the contact the first one made.
        // An app's ids are its own, so there it stays one contact per inbox, unless the
        // app vouches for an address we already know a person by.
        let capabilities = inbox.channel.capabilities();
        let known = match capabilities.identity {
            IdentityScope::Global => tx.contact_of_channel_identity(inbox.channel, &sender.external_id)?,
            IdentityScope::PerInbox if capabilities.vouches_for_sender => verified_contact(tx, sender)?,
            IdentityScope::PerInbox => None,
        };
        contact.contact_id = match known {
            Some(id) => id,
            None => tx.insert_contact(&contact, context.now)?,
        };
        contact.identity_id = tx.insert_identity(contact.contact_id, inbox, &sender.external_id, context.now)?;
        return Ok(contact);
    };
    if contact.unreachable {
        // They wrote again: whatever blocked the channel is over.
        tx.set_reachability(IdentityRef::Id(contact.identity_id), None, context.now)?;
        contact.unreachable = false;
    }
    if merge_contact(&mut contact, message, detected) {
        tx.update_contact(&contact, context.now)?;
    }
    Ok(contact)
}

/// The attribute a contact's phone number is kept in: contact search and likely
/// duplicates read it there (migration 0017).
const PHONE: &str = "phone";

/// The contact a sender's verified email address or phone number names, when exactly
/// one does: several would be a guess, which an agent confirms instead (the contact
/// page's likely duplicates).
fn verified_contact(tx: &mut dyn Tx, sender: &Sender) -> DeskResult<Option<i64>> {
    let email = sender.email.as_deref().filter(|_| sender.email_verified);
    let phone = sender.phone.as_deref().filter(|_| sender.phone_verified);
    if email.is_none() && phone.is_none() {
        return Ok(None);
    }
    Ok(match tx.contacts_with_address(email, phone)?.as_slice() {
        [only] => Some(*only),
        _ => None,
    })
}

/// A delivery report on our own messages: it joins the conversation of the message it
/// reports on (whoever sent the report), and a permanent failure marks that message
/// failed with the remote server's reason. `None` when it names none of ours.
fn ingest_bounce(
    tx: &mut dyn Tx,
    context: &IngestContext,
    message: &InboundMessage,
    bounce: &BounceReport,
) -> DeskResult<Option<IngestOutcome>> {
    let now = context.now;
    let mut conversation_id = None;
    let mut recorded = Vec::new();
    for &bounced_id in &bounce.message_ids {
        let Some(bounced) = tx.outbound_message(bounced_id, context.inbox.id)? else {
            continue;
        };
        conversation_id.get_or_insert(bounced.conversation_id);
        if conversation_id != Some(bounced.conversation_id) {
            continue;
        }
        let error = format!("bounced: {}", bounce.reason);
        if bounce.permanent
            && let Some(outbox_id) = bounced.outbox_id
            && bounced.status != Some(DeliveryStatus::Failed)
        {
            tx.fail_delivery(outbox_id, &error, now)?;
            recorded.push((
                Actor::SYSTEM,
                DomainEvent::DeliveryFailed {
                    message_id: bounced_id,
                    attempts: None,
                    error,
                },
            ));
        } else if !bounce.permanent {
            recorded.push((
                Actor::SYSTEM,
                DomainEvent::DeliveryDelayed {
                    message_id: bounced_id,
                    reason: bounce.reason.clone(),
                },
            ));
        }
    }
    let Some(conversation_id) = conversation_id else {
        return Ok(None);
    };
    let report = NewMessage {
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
    };
    let message_id = insert_inbound(tx, &report, Actor::SYSTEM, message, now)?;
    events::insert(tx, conversation_id, &recorded, now)?;
    Ok(Some(IngestOutcome::quiet(conversation_id, message_id, false)))
}

/// A new version of a message we have (a Telegram edit): the text is replaced, the
/// earlier one kept in the message's details under `edits`, with a `message.edited`
/// event. `None` when the original is unknown (it predates the inbox): then the edit is
/// stored as a message of its own.
fn apply_edit(
    tx: &mut dyn Tx,
    context: &IngestContext,
    message: &InboundMessage,
    original: &str,
) -> DeskResult<Option<IngestOutcome>> {
    let Some(found) = tx
        .message_by_external_id(context.inbox.id, original)?
        .filter(|found| found.direction == Direction::Inbound)
    else {
        return Ok(None);
    };
    let Some(stored) = tx.message_text(found.id)? else {
        return Ok(None);
    };
    // The same edit delivered again changes nothing.
    if stored.text == message.text {
        return Ok(Some(IngestOutcome::quiet(found.conversation_id, found.id, true)));
    }
    let mut details: BTreeMap<String, Value> = match stored.metadata.as_deref() {
        Some(text) => serde_json::from_str(text).unwrap_or_default(),
        None => BTreeMap::new(),
    };
    let mut edits = match details.remove("edits") {
        Some(Value::Array(edits)) => edits,
        _ => Vec::new(),
    };
    edits.push(json!({"text": stored.text, "replaced_at": Timestamp(context.now)}));
    details.extend(message.details.clone());
    details.insert("edits".into(), Value::Array(edits));
    tx.replace_message_text(
        found.id,
        &message.text,
        &serde_json::to_string(&details).unwrap_or_default(),
    )?;
    let touched = ConversationPatch {
        updated_at: Some(context.now),
        ..ConversationPatch::default()
    };
    tx.update_conversation(found.conversation_id, &touched)?;
    let edited = DomainEvent::MessageEdited { message_id: found.id };
    events::insert(tx, found.conversation_id, &[(Actor::SYSTEM, edited)], context.now)?;
    Ok(Some(IngestOutcome::quiet(found.conversation_id, found.id, false)))
}

/// What the messages row keeps besides the text: the channel's details, or the
/// sender's attributes as given with this message.
fn message_details(message: &InboundMessage) -> Option<String> {
    if !message.details.is_empty() {
        return serde_json::to_string(&message.details).ok();
    }
    (!message.metadata.is_empty()).then(|| serde_json::to_string(&message.metadata).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_connector_core::Sender;

    fn message(text: &str) -> InboundMessage {
        InboundMessage {
            external_id: "m1".into(),
            sender: Sender {
                external_id: "ada".into(),
                ..Sender::default()
            },
            text: text.into(),
            ..InboundMessage::default()
        }
    }

    fn known_contact() -> ContactRecord {
        ContactRecord {
            contact_id: 1,
            identity_id: 1,
            name: Some("Ada".into()),
            email: None,
            language: Some("de".into()),
            metadata: BTreeMap::from([("plan".to_owned(), json!("pro"))]),
            unreachable: false,
        }
    }

    #[test]
    fn a_detected_language_fills_a_gap_but_never_replaces_one_the_channel_gave() {
        let mut contact = known_contact();
        assert!(!merge_contact(&mut contact, &message("hola"), Some("es")));
        assert_eq!(contact.language.as_deref(), Some("de"));
        contact.language = None;
        assert!(merge_contact(&mut contact, &message("hola"), Some("es")));
        assert_eq!(contact.language.as_deref(), Some("es"));
        let mut stated = message("hello");
        stated.language = Some("en".into());
        assert!(merge_contact(&mut contact, &stated, None));
        assert_eq!(contact.language.as_deref(), Some("en"));
    }

    #[test]
    fn a_short_line_keeps_a_known_contacts_language_and_a_sentence_may_change_it() {
        let short = "si, gracias mil";
        let sentence = "Buenos días, mi paquete todavía no ha llegado a casa";
        assert!(!keeps_detection(Some("it"), "es", short));
        assert!(
            keeps_detection(Some("it-IT"), "it", short),
            "the same language, regional or not"
        );
        assert!(keeps_detection(None, "es", short), "nothing known to keep");
        assert!(keeps_detection(Some("it"), "es", sentence));
    }

    #[test]
    fn attributes_the_message_gives_are_added_and_an_unchanged_sender_writes_nothing() {
        let mut contact = known_contact();
        let mut vip = message("hi");
        vip.metadata.insert("tier".into(), json!("vip"));
        assert!(merge_contact(&mut contact, &vip, None));
        assert_eq!(contact.metadata["plan"], json!("pro"));
        assert_eq!(contact.metadata["tier"], json!("vip"));
        assert!(!merge_contact(&mut contact, &vip, None), "nothing new the second time");
    }

    #[test]
    fn attributes_stop_growing_at_the_contact_limit_and_known_ones_still_change() {
        let mut contact = known_contact();
        for n in 0..10 {
            let mut bulky = message("hi");
            bulky.metadata.insert(format!("k{n}"), json!("x".repeat(15_000)));
            merge_contact(&mut contact, &bulky, None);
        }
        let weight = serde_json::to_string(&contact.metadata).unwrap().len();
        assert!(weight <= MAX_CONTACT_METADATA_BYTES, "{weight} bytes");
        assert!(contact.metadata.contains_key("k3") && !contact.metadata.contains_key("k9"));
        let mut update = message("hi");
        update.metadata.insert("plan".into(), json!("enterprise"));
        assert!(merge_contact(&mut contact, &update, None));
        assert_eq!(contact.metadata["plan"], json!("enterprise"));
    }

    #[test]
    fn a_new_conversation_is_acknowledged_greeted_or_told_when_the_team_is_back() {
        let new = Announce {
            routed: true,
            ..Announce::default()
        };
        assert_eq!(announcement(new), Some(UpdateEvent::Received));
        let start = Announce { greeting: true, ..new };
        assert_eq!(announcement(start), Some(UpdateEvent::Greeting));
        let closed = Announce {
            team_closed: true,
            out_of_hours_on: true,
            ..new
        };
        assert_eq!(announcement(closed), Some(UpdateEvent::OutOfHours));
        let closed_but_off = Announce {
            team_closed: true,
            ..new
        };
        assert_eq!(announcement(closed_but_off), Some(UpdateEvent::Received));
    }

    #[test]
    fn machines_senders_without_address_answers_and_joined_conversations_get_no_acknowledgement() {
        let new = Announce {
            routed: true,
            ..Announce::default()
        };
        for silent in [
            Announce { automated: true, ..new },
            Announce { anonymous: true, ..new },
            Announce { answered: true, ..new },
            Announce { quiet: true, ..new },
            Announce::default(),
        ] {
            assert_eq!(announcement(silent), None, "{silent:?}");
        }
    }

    #[test]
    fn only_a_bare_stop_is_quiet() {
        let mut stop = message("stop");
        stop.opt_out = Some(true);
        assert!(quiet_stop(&stop));
        let mut more = message("stop\nI was charged twice");
        more.opt_out = Some(true);
        assert!(!quiet_stop(&more));
        assert!(
            !quiet_stop(&message("stop")),
            "not an opt-out unless the channel says so"
        );
    }
}
