//! A raw mail as the conversation model takes it: one [`InboundMessage`] with the
//! threading keys the store honours, or a reason to leave it alone.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use switchboard_connector_core::{BounceReport, InboundAttachment, InboundMessage, Sender, ThreadHints};

use crate::config::EmailSettings;
use crate::parse::{ParsedMail, parse};
use crate::thread::{OurMessageId, normalize_subject, reference_tag};

/// What to do with one mail of the folder.
#[derive(Debug, Clone, PartialEq)]
pub enum Disposition {
    Ingest(Box<InboundMessage>),
    /// Not a customer's message (our own mail come back); nothing to store.
    Skip(&'static str),
}

/// The dedupe key of a mail: its Message-ID, or a hash of the bytes when it has none,
/// so the same mail read twice is still recognised.
fn external_id(parsed: Option<&ParsedMail>, raw: &[u8]) -> String {
    match parsed.and_then(|mail| mail.message_id.as_deref()) {
        Some(id) if !id.trim().is_empty() => id.trim().to_owned(),
        _ => {
            let hash: String = Sha256::digest(raw).iter().map(|b| format!("{b:02x}")).collect();
            format!("sha256:{hash}")
        }
    }
}

/// Normalizes one raw mail of `settings`'s inbox.
pub fn disposition(raw: &[u8], settings: &EmailSettings) -> Disposition {
    let parsed = match parse(raw, settings.limits) {
        Ok(parsed) => parsed,
        Err(err) => return Disposition::Ingest(Box::new(unreadable(raw, &err.to_string()))),
    };
    if parsed
        .message_id
        .as_deref()
        .is_some_and(|id| OurMessageId::parse(id, &settings.domain).is_some())
    {
        return Disposition::Skip("our own message");
    }
    Disposition::Ingest(Box::new(inbound(&parsed, raw, settings)))
}

/// A mail over the size limit: the customer wrote, and the conversation must say so,
/// but only its headers are read.
pub fn too_large(headers: &[u8], size: usize, settings: &EmailSettings) -> InboundMessage {
    let mut message = match parse(headers, settings.limits) {
        Ok(parsed) => inbound(&parsed, headers, settings),
        Err(err) => unreadable(headers, &err.to_string()),
    };
    message.text = format!(
        "[This mail is {size} bytes, over this inbox's limit of {} bytes, and was not imported. \
         It is still in the mailbox.]",
        settings.max_message_bytes
    );
    message.html = None;
    message.details.insert("too_large".into(), json!(size));
    message
}

/// A mail mail-parser cannot read still reaches an agent, whole, as an attachment.
fn unreadable(raw: &[u8], error: &str) -> InboundMessage {
    InboundMessage {
        external_id: external_id(None, raw),
        sender: Sender {
            external_id: "unknown-sender".into(),
            name: Some("Unreadable mail".into()),
            email: None,
        },
        text: format!("[This mail could not be read ({error}); the original is attached.]"),
        attachments: vec![InboundAttachment {
            filename: "original.eml".into(),
            content_type: "message/rfc822".into(),
            data: raw.to_vec(),
        }],
        automated: Some("unreadable".into()),
        ..InboundMessage::default()
    }
}

fn inbound(parsed: &ParsedMail, raw: &[u8], settings: &EmailSettings) -> InboundMessage {
    let from = parsed.from.as_ref().or(parsed.reply_to.as_ref());
    let sender = match from {
        Some(mailbox) => Sender {
            external_id: mailbox.address.clone(),
            name: mailbox.name.clone(),
            email: Some(mailbox.address.clone()),
        },
        None => Sender {
            external_id: "unknown-sender".into(),
            name: None,
            email: None,
        },
    };

    // In-Reply-To is what the client says it answers; References, newest last, is the
    // thread behind it. Outlook may rewrite the first, so both count, nearest first.
    let mut answers: Vec<String> = Vec::new();
    for id in parsed.in_reply_to.iter().chain(parsed.references.iter().rev()) {
        if !answers.contains(id) {
            answers.push(id.clone());
        }
    }
    let conversations = answers
        .iter()
        .filter_map(|id| OurMessageId::parse(id, &settings.domain))
        .map(|ours| ours.conversation_id)
        .collect();
    let subject = parsed.subject.as_deref().unwrap_or_default();
    let hints = ThreadHints {
        answers,
        conversations,
        reference: reference_tag(subject),
        topic: Some(normalize_subject(subject)),
        topic_window: settings.thread_window,
    };

    let bounce = parsed.bounce.as_ref().map(|bounce| BounceReport {
        message_ids: bounce
            .original_message_ids
            .iter()
            .chain(&parsed.in_reply_to)
            .chain(&parsed.references)
            .filter_map(|id| OurMessageId::parse(id, &settings.domain))
            .map(|ours| ours.message_id)
            .fold(Vec::new(), |mut ids, id| {
                if !ids.contains(&id) {
                    ids.push(id);
                }
                ids
            }),
        permanent: bounce.permanent,
        reason: bounce
            .diagnostic
            .clone()
            .or_else(|| bounce.status.clone())
            .unwrap_or_else(|| "the receiving server did not say why".into()),
    });

    let mut details = BTreeMap::new();
    if let Some(id) = &parsed.message_id {
        details.insert("message_id".into(), Value::String(id.clone()));
    }
    if parsed.shown_text != parsed.text {
        details.insert("full_text".into(), Value::String(parsed.text.clone()));
    }
    if !parsed.dropped_attachments.is_empty() {
        details.insert(
            "dropped_attachments".into(),
            parsed
                .dropped_attachments
                .iter()
                .map(|(name, size)| json!({"filename": name, "size": size}))
                .collect(),
        );
    }
    if let Some(bounce) = &parsed.bounce {
        details.insert(
            "bounce".into(),
            json!({"permanent": bounce.permanent, "recipients": bounce.recipients, "status": bounce.status}),
        );
    }

    InboundMessage {
        external_id: external_id(Some(parsed), raw),
        sender,
        thread: None,
        subject: parsed.subject.clone(),
        text: parsed.shown_text.clone(),
        html: parsed.html.clone(),
        attachments: parsed
            .attachments
            .iter()
            .map(|attachment| InboundAttachment {
                filename: attachment.filename.clone(),
                content_type: attachment.content_type.clone(),
                data: attachment.data.clone(),
            })
            .collect(),
        language: parsed.language.clone(),
        metadata: BTreeMap::new(),
        hints,
        automated: parsed.automated.as_ref().map(|automated| automated.reason.clone()),
        bounce,
        details,
    }
}
