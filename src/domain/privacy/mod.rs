//! A person's data (docs/PRIVACY.md): their export (everything stored about them, as one
//! archive), their erasure (the person gone, their conversations kept as anonymous
//! shells so the desk's figures still count them), and the retention policy that erases
//! finished conversations past an age. Each is one unit of work, recorded in the audit
//! trail; an erasure is announced to subscribers as `contact.erased`.

pub mod archive;
pub mod config;

use serde_json::{Map, Value, json};

use crate::domain::events::{self, Actor, DomainEvent, EventType};
use crate::domain::{DeskError, DeskResult};
use crate::model::{ActorKind, Timestamp};
use crate::store::{ContactExport, ErasedContent, PrivacyRecord, Tx};

/// The longest erasure reason kept: a ticket or request reference, not a letter.
pub const MAX_REASON: usize = 500;

/// What an erasure did, as the API and the CLI report it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Erasure {
    pub contact_id: i64,
    /// Conversations whose content was erased now (earlier erased ones are left).
    pub conversations: Vec<i64>,
    pub identities: u64,
    #[serde(flatten)]
    pub content: ErasedContent,
    /// The audit trail's row.
    pub audit_id: i64,
    pub erased_at: Timestamp,
    /// The store's files were scrubbed after the commit (see `Store::scrub`).
    pub scrubbed: bool,
}

/// What one pass of the retention policy erased.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionOutcome {
    pub conversations: u32,
    /// Contacts left with nothing but erased conversations, erased whole.
    pub contacts: u32,
    pub content: ErasedContent,
}

/// An erasure's reason: required (the audit trail says why), trimmed, bounded. The
/// operator is told to write a reference, not the person's details.
pub fn reason(text: &str) -> DeskResult<String> {
    let text = text.trim();
    if text.is_empty() {
        return Err(DeskError::Invalid {
            field: "reason",
            problem: "is required: say why (a request or ticket reference, no personal data)".into(),
        });
    }
    if text.chars().count() > MAX_REASON {
        return Err(DeskError::Invalid {
            field: "reason",
            problem: format!("is longer than {MAX_REASON} characters"),
        });
    }
    Ok(text.to_owned())
}

/// The keys of an event's data that carry no personal content, by kind. Everything else
/// (thread keys, summaries, comments, errors that quote addresses, matched conditions)
/// goes: a list of what stays, so a key added later is erased until it is judged safe.
fn kept_keys(kind: &str) -> &'static [&'static str] {
    match kind {
        "conversation.created" => &["inbox", "channel"],
        "conversation.routed" => &["rule", "team", "tier", "priority", "labels", "language"],
        "conversation.status_changed" => &["from", "to", "reason", "waited"],
        "conversation.priority_changed" | "conversation.transferred" => &["from", "to"],
        "conversation.assigned" => &["from", "to", "reason"],
        "conversation.escalated" => &["kind", "from", "to", "by", "note_id", "at"],
        "sla.warning" | "sla.breached" => &[
            "clock", "team", "tier", "priority", "target", "time", "due_at", "notified", "actions",
        ],
        "csat.answered" => &["score", "via"],
        "message.edited" => &["message_id"],
        "delivery.failed" => &["message_id", "attempts", "bounce"],
        "delivery.delayed" | "delivery.skipped" => &["message_id"],
        "delivery.retried" => &["message_id", "delivery_id", "attempts_before"],
        "delivery.reported" => &["message_id", "state"],
        "status_update.failed" => &["event"],
        "conversation.erased" => &["cause"],
        _ => &[],
    }
}

/// An event's data with only what says what happened, not what the person said or who
/// they are; marked `"redacted": true`. Escalation's `reason` is an agent's free text,
/// unlike a status change's (a fixed word), so it goes with the summary.
pub fn redact_event(kind: &str, data: &Value) -> Value {
    let mut kept = Map::new();
    if let Value::Object(object) = data {
        for key in kept_keys(kind) {
            if let Some(value) = object.get(*key) {
                kept.insert((*key).to_owned(), value.clone());
            }
        }
    }
    kept.insert("redacted".into(), Value::Bool(true));
    Value::Object(kept)
}

fn audit(
    tx: &mut dyn Tx,
    contact_id: i64,
    action: &str,
    actor: Actor,
    reason: Option<&str>,
    details: &Value,
    now: i64,
) -> DeskResult<i64> {
    // The trail knows agents and the desk itself; a contact never exports or erases.
    let actor_kind = match actor.kind {
        ActorKind::Agent => ActorKind::Agent,
        _ => ActorKind::System,
    };
    Ok(tx.insert_privacy_record(
        &PrivacyRecord {
            contact_id,
            action,
            actor_kind,
            actor_id: actor.id,
            reason,
            details,
        },
        now,
    )?)
}

/// Everything stored about the contact, and the export recorded in the audit trail (who,
/// when, how much). An erased contact's export is refused: there is nothing of them
/// left to hand over, and an empty archive would look like one.
pub fn export(tx: &mut dyn Tx, contact_id: i64, actor: Actor, now: i64) -> DeskResult<ContactExport> {
    refuse_merged(tx, contact_id, "export")?;
    let export = tx.contact_export(contact_id)?.ok_or(DeskError::NotFound("contact"))?;
    if export.contact.erased_at.is_some() {
        return Err(DeskError::Conflict(format!(
            "contact {contact_id} was erased; nothing of them is left to export"
        )));
    }
    let details = json!(archive::counts(&export));
    audit(tx, contact_id, "export", actor, None, &details, now)?;
    Ok(export)
}

/// A merged contact is an empty pointer: the person's data is with the contact it joined.
fn refuse_merged(tx: &mut dyn Tx, contact_id: i64, action: &str) -> DeskResult<()> {
    match tx.contact(contact_id)?.and_then(|contact| contact.merged_into) {
        Some(into) => Err(DeskError::Conflict(format!(
            "contact {contact_id} was merged into {into}; {action} that one"
        ))),
        None => Ok(()),
    }
}

/// Takes the person's content out of one conversation: the store's part
/// ([`crate::store::PrivacyTx::erase_conversation_content`]), the events' data redacted,
/// and an event saying it happened.
pub fn erase_conversation(
    tx: &mut dyn Tx,
    conversation_id: i64,
    actor: Actor,
    retention: bool,
    now: i64,
) -> DeskResult<ErasedContent> {
    for event in tx.conversation_events(conversation_id)? {
        tx.set_event_data(event.id, &redact_event(&event.kind, &event.data))?;
    }
    let erased = tx.erase_conversation_content(conversation_id, now)?;
    events::insert(tx, conversation_id, &[(actor, DomainEvent::Erased { retention })], now)?;
    Ok(erased)
}

/// Erases the contact: every conversation's content, the contact's details and
/// identities; records it in the audit trail and tells subscribers `contact.erased`.
pub fn erase_contact(
    tx: &mut dyn Tx,
    contact_id: i64,
    actor: Actor,
    reason: &str,
    retention: bool,
    now: i64,
) -> DeskResult<Erasure> {
    match tx.contact_erased_at(contact_id)? {
        None => return Err(DeskError::NotFound("contact")),
        Some(Some(_)) => {
            return Err(DeskError::Conflict(format!("contact {contact_id} was erased already")));
        }
        Some(None) => {}
    }
    refuse_merged(tx, contact_id, "erase")?;
    let mut content = ErasedContent::default();
    let mut conversations = Vec::new();
    for (conversation_id, erased) in tx.contact_conversations(contact_id)? {
        if !erased {
            content.add(erase_conversation(tx, conversation_id, actor, retention, now)?);
            conversations.push(conversation_id);
        }
    }
    let identities = tx.erase_contact_record(contact_id, now)?;
    let details = json!({
        "conversations": conversations.len(),
        "identities": identities,
        "erased": content,
    });
    let action = if retention { "retention" } else { "erase" };
    let audit_id = audit(tx, contact_id, action, actor, Some(reason), &details, now)?;
    // Once per person, with no conversation: a receiver drops what it copied of them.
    let news = json!({
        "contact_id": contact_id,
        "conversations": conversations,
        "cause": if retention { "retention" } else { "erasure" },
        "actor": {"kind": actor.kind, "id": actor.id},
    });
    events::fan_out(tx, EventType::ContactErased, None, news, now)?;
    Ok(Erasure {
        contact_id,
        conversations,
        identities,
        content,
        audit_id,
        erased_at: Timestamp(now),
        scrubbed: true,
    })
}

/// One pass of the retention policy: up to `limit` finished conversations whose end is
/// before `before` lose their content; a contact left with only erased conversations is
/// erased whole (and announced). Returns what it did; fewer than `limit` conversations
/// means nothing more is due.
pub fn sweep(tx: &mut dyn Tx, before: i64, limit: u32, now: i64) -> DeskResult<RetentionOutcome> {
    let mut outcome = RetentionOutcome::default();
    let due = tx.retention_due(before, limit)?;
    let mut contacts: Vec<i64> = Vec::new();
    for (conversation_id, contact_id) in due {
        outcome
            .content
            .add(erase_conversation(tx, conversation_id, Actor::SYSTEM, true, now)?);
        outcome.conversations += 1;
        if !contacts.contains(&contact_id) {
            contacts.push(contact_id);
        }
    }
    for contact_id in contacts {
        let all_erased = tx.contact_conversations(contact_id)?.iter().all(|(_, erased)| *erased);
        if all_erased && tx.contact_erased_at(contact_id)? == Some(None) {
            erase_contact(tx, contact_id, Actor::SYSTEM, "retention policy", true, now)?;
            outcome.contacts += 1;
        }
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_is_required_trimmed_and_bounded() {
        assert!(matches!(reason("  "), Err(DeskError::Invalid { field: "reason", .. })));
        assert_eq!(reason("  GDPR request #1234 ").unwrap(), "GDPR request #1234");
        assert!(reason(&"x".repeat(MAX_REASON)).is_ok());
        assert!(reason(&"x".repeat(MAX_REASON + 1)).is_err());
    }

    #[test]
    fn redaction_keeps_what_happened_and_drops_what_was_said() {
        let created = json!({"inbox": "shop", "channel": "telegram", "thread": "chat:424242"});
        assert_eq!(
            redact_event("conversation.created", &created),
            json!({"inbox": "shop", "channel": "telegram", "redacted": true})
        );
        let escalated = json!({"kind": "hierarchical", "summary": "Ada Lovelace wants a refund",
                               "reason": "angry about order 77", "to": {"team": "l2"}, "note_id": 9});
        assert_eq!(
            redact_event("conversation.escalated", &escalated),
            json!({"kind": "hierarchical", "to": {"team": "l2"}, "note_id": 9, "redacted": true})
        );
        let csat = json!({"score": 2, "comment": "ada@example.com never got an answer", "via": "button"});
        assert_eq!(
            redact_event("csat.answered", &csat),
            json!({"score": 2, "via": "button", "redacted": true})
        );
        let failed = json!({"message_id": 3, "attempts": 5, "error": "550 ada@example.com: no such user"});
        assert_eq!(
            redact_event("delivery.failed", &failed),
            json!({"message_id": 3, "attempts": 5, "redacted": true})
        );
    }

    #[test]
    fn an_event_kind_not_judged_yet_keeps_nothing() {
        let data = json!({"anything": "ada@example.com"});
        assert_eq!(redact_event("some.future_event", &data), json!({"redacted": true}));
        assert_eq!(
            redact_event("conversation.created", &json!("text")),
            json!({"redacted": true})
        );
    }
}
