//! # Switchboard connector contract
//!
//! The types every channel connector speaks, and nothing that does I/O:
//!
//! - [`InboundMessage`]: what a connector makes of one raw inbound input (an HTTP body,
//!   a MIME message, a Telegram update) in pure code, before the daemon ingests it.
//! - [`OutboundMessage`]: what the daemon's outbox hands a connector to send.
//! - [`SendError`]: the connector's verdict on a failed send, transient (retry later,
//!   maybe after a time the other side named) or permanent (dead letter). Each connector
//!   classifies its own errors in one place; the outbox only reads the verdict.
//! - [`OutboundChannel`]: the sending half, as each connector's sender implements it.
//! - the channel contract ([`Channel`], [`Connector`], [`Capabilities`], [`Hook`],
//!   [`Reader`], [`MessageSender`], [`IngestSink`], [`CursorStore`]): what a channel declares
//!   and provides, and what the daemon hands it.
//! - [`SecretSource`]: where a connector's config validation reads the secrets it names
//!   (`*_env`, `*_file`), injected so validation can run without the process's.
//!
//! A connector crate depends on this crate only; it never touches the store. The daemon
//! acknowledges the source of an inbound message only after the message is committed.

mod contract;

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

pub use contract::*;

use serde::{Deserialize, Serialize};

/// The person (or system) who sent an inbound message, as the channel names them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sender {
    /// The channel's stable id for this sender in this inbox (an app's user id, an email
    /// address, a Telegram chat id). With the inbox it forms the contact identity.
    pub external_id: String,
    pub name: Option<String>,
    pub email: Option<String>,
    /// A phone number the channel gives, digits with an optional leading `+`.
    pub phone: Option<String>,
    /// The channel vouches that `email` is this sender's (a webhook app that verified
    /// it): the desk links the identity to the contact it already knows by that address.
    pub email_verified: bool,
    /// The same for `phone`.
    pub phone_verified: bool,
}

/// An attachment as received, before the store deduplicates it by content hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundAttachment {
    pub filename: String,
    pub content_type: String,
    pub data: Vec<u8>,
}

/// A file an agent attaches to a reply, with its bytes, as the channel sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundAttachment {
    pub filename: String,
    pub content_type: String,
    pub data: Vec<u8>,
}

/// One inbound message, normalized. Built by a connector in pure code.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InboundMessage {
    /// The channel's id for this message; `(inbox, external_id)` is the dedupe key, so a
    /// redelivered message is recognised and stored once.
    pub external_id: String,
    pub sender: Sender,
    /// A thread key the channel gives (the webhook `thread`, an email thread root): the
    /// message joins the sender's open conversation with that key.
    pub thread: Option<String>,
    pub subject: Option<String>,
    pub text: String,
    pub html: Option<String>,
    pub attachments: Vec<InboundAttachment>,
    /// A language tag the channel states (BCP 47, e.g. `de` or `pt-BR`).
    pub language: Option<String>,
    /// Free-form attributes the channel gives about the sender (plan, customer value);
    /// merged into the contact and available to routing rules.
    pub metadata: BTreeMap<String, serde_json::Value>,
    /// What ties this message to an earlier conversation besides `thread` (email).
    pub hints: ThreadHints,
    /// Why the message is machine-made (an auto-reply, a mailing list), when it is: it
    /// is stored, but never acknowledged and never reopens a conversation.
    pub automated: Option<String>,
    /// The machine-made message is an automatic answer to a message (an out-of-office
    /// or vacation notice), not news of its own: it joins the sender's latest
    /// conversation without reopening it, or, when they have none, is filed resolved,
    /// so it never opens a case whose clocks breach. Implies `automated`.
    pub auto_reply: bool,
    /// The message names no sender the desk may answer automatically (an email without
    /// a usable `From`): it is stored for agents, but no acknowledgement or status update
    /// goes to whatever address stands in for the sender.
    pub anonymous: bool,
    /// A delivery report saying one of our messages did not arrive.
    pub bounce: Option<BounceReport>,
    /// The channel id of a message this one is a new version of (a Telegram edit): the
    /// store updates that message instead of adding one, and keeps the earlier text.
    pub edits: Option<String>,
    /// What the channel knows of this message that the conversation does not show (the
    /// full body of a trimmed reply, header ids), kept with the message.
    pub details: BTreeMap<String, serde_json::Value>,
    /// A satisfaction score the channel recognised as such (a Telegram button, a webhook
    /// `csat` body). A reply that is only a digit is recognised by the store instead,
    /// which knows whether a question is open.
    pub csat: Option<CsatAnswer>,
    /// The customer asked to stop (`Some(true)`) or resume (`Some(false)`) automated
    /// status updates: `stop` on Telegram, a keyword or header on email.
    pub opt_out: Option<bool>,
}

/// A satisfaction answer: which question, the score 1–5, and an optional comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsatAnswer {
    /// The question's token (Telegram buttons, email links).
    pub token: Option<String>,
    /// The conversation asked about (the webhook, whose sender is trusted by signature).
    pub conversation_id: Option<i64>,
    pub score: u8,
    pub comment: Option<String>,
}

/// The prefix of a CSAT button's callback data: `csat:<token>:<score>`.
const CSAT_CALLBACK_PREFIX: &str = "csat:";

impl CsatAnswer {
    /// Reads a CSAT button's callback data; `None` for any other button.
    pub fn from_callback_data(data: &str) -> Option<CsatAnswer> {
        let (token, score) = data.strip_prefix(CSAT_CALLBACK_PREFIX)?.rsplit_once(':')?;
        let score: u8 = score.parse().ok()?;
        if token.is_empty() || !(1..=5).contains(&score) {
            return None;
        }
        Some(CsatAnswer {
            token: Some(token.to_owned()),
            conversation_id: None,
            score,
            comment: None,
        })
    }
}

/// The threading keys of a channel whose messages name earlier ones (email), strongest
/// first. The store honours them only within the sender's own conversations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ThreadHints {
    /// Channel ids of the messages this one answers, nearest first (In-Reply-To, then
    /// References from the last).
    pub answers: Vec<String>,
    /// Conversations this message names by our own ids (our Message-IDs it answers).
    pub conversations: Vec<i64>,
    /// The conversation reference the sender quotes (`[#42]` in a subject).
    pub reference: Option<i64>,
    /// What the message is about (a normalized subject): it joins the sender's recent
    /// open conversation on the same topic, and a different topic opens a new one even
    /// when the message answers an old one.
    pub topic: Option<String>,
    /// How recent a conversation must be for `topic` alone to join it.
    pub topic_window: Duration,
}

impl ThreadHints {
    pub fn is_empty(&self) -> bool {
        self.answers.is_empty() && self.conversations.is_empty() && self.reference.is_none() && self.topic.is_none()
    }
}

/// A report that messages we sent did not arrive (an email DSN).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BounceReport {
    /// Our message ids (the store's) the report names.
    pub message_ids: Vec<i64>,
    /// A permanent failure marks those messages failed; a delay only gets noted.
    pub permanent: bool,
    /// The remote server's words, for the agent.
    pub reason: String,
}

/// Why a message leaves: an agent's reply or an automated status update. Channels that
/// can show the difference (the webhook `kind` field) do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboundKind {
    Reply,
    StatusUpdate,
}

impl OutboundKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboundKind::Reply => "reply",
            OutboundKind::StatusUpdate => "status_update",
        }
    }
}

/// One message for a connector to send. Internal notes never become one.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboundMessage {
    /// Stable across retries of the same message, so the receiver can deduplicate.
    pub delivery_id: String,
    pub conversation_id: i64,
    pub message_id: i64,
    /// The recipient's external id in this inbox (the contact identity).
    pub recipient: String,
    pub thread: Option<String>,
    pub subject: Option<String>,
    pub text: String,
    pub kind: OutboundKind,
    /// The channel id of the customer's latest message, which this one answers.
    pub in_reply_to: Option<String>,
    /// Channel ids of the conversation's messages so far, oldest first (email References).
    pub references: Vec<String>,
    /// Files the agent attached; only channels that carry files get any (email).
    pub attachments: Vec<OutboundAttachment>,
    /// What an automated status update carries beyond its plain `text`.
    pub update: Option<StatusUpdate>,
    /// Whether a free-form message may go now: always, unless the channel declares a
    /// [`Capabilities::reply_window`] and the customer's last message is older than it.
    /// Outside it, a channel sends a status update by its approved template, or skips it.
    pub window_open: bool,
    /// How many of this message's parts (the messages a send is made of: texts split at
    /// the channel's limit, then files) the channel took in earlier attempts. A sender
    /// plans the same parts every time and starts after these, so a retry never sends
    /// the customer a part twice.
    pub parts_sent: u32,
}

/// An automated status update, rendered from the desk's templates for the channel it
/// leaves by. Each channel uses the parts it can show and ignores the rest.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StatusUpdate {
    /// What happened: `received`, `out_of_hours`, `assigned`, `escalated`,
    /// `waiting_reminder`, `resolved`, `auto_closed`, `csat.requested`, `greeting`.
    pub event: String,
    /// The email subject, without the conversation tag the channel adds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The email HTML part; channels without one build it from the text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
    /// Telegram MarkdownV2 with every variable escaped; plain `text` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub markdown_v2: Option<String>,
    /// Structured fields for channels whose receiver shows its own UI (webhook).
    #[serde(default)]
    pub fields: serde_json::Value,
    /// A satisfaction question: the channel offers the scores 1–5 its own way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csat: Option<CsatQuestion>,
    /// The language the update was written in (a template's primary tag, e.g. `de`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
}

/// A satisfaction question the customer answers with a score from 1 to 5.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CsatQuestion {
    /// Unguessable: it names the conversation in button data and public links.
    pub token: String,
}

impl CsatQuestion {
    /// A button's callback data for `score` (at most 64 bytes, as Telegram requires).
    pub fn callback_data(&self, score: u8) -> String {
        format!("{CSAT_CALLBACK_PREFIX}{}:{score}", self.token)
    }
}

/// What the channel said when it accepted a message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Receipt {
    /// The channel's id for the sent message, when it gives one.
    pub external_id: Option<String>,
    /// A short human-readable note on the acceptance (e.g. `HTTP 202`).
    pub detail: String,
    /// An id the customer's answers will quote to name this message (an email
    /// Message-ID), when the channel has one: kept with the message for threading.
    pub thread_id: Option<String>,
}

/// A failed send, classified by the connector.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Worth retrying: the other side was down, slow, or limiting us.
    #[error("transient: {reason}")]
    Transient {
        reason: String,
        /// How long the other side asked us to wait, when it said.
        retry_after: Option<Duration>,
    },
    /// Retrying cannot help (rejected payload, unknown recipient).
    #[error("permanent: {reason}")]
    Permanent { reason: String },
    /// The recipient cannot be reached on this channel any more (they blocked the bot,
    /// the chat is gone): this message fails, and the contact's identity is marked so
    /// agents know before they write again.
    #[error("unreachable: {reason}")]
    Unreachable { reason: String },
    /// The channel may not carry this message now and nothing is owed (a status update
    /// outside the customer service window with no approved template): nothing was sent,
    /// and the reason is recorded; not a failure to retry.
    #[error("skipped: {reason}")]
    Skipped { reason: String },
    /// `error`, after the channel took the first `parts_sent` parts of the send (counted
    /// from the message's start, earlier attempts included): see [`SendError::after_parts`].
    #[error("{error} (after {parts_sent} part(s) went)")]
    PartlySent { parts_sent: u32, error: Box<SendError> },
}

impl SendError {
    pub fn transient(reason: impl Into<String>) -> SendError {
        SendError::Transient {
            reason: reason.into(),
            retry_after: None,
        }
    }

    pub fn permanent(reason: impl Into<String>) -> SendError {
        SendError::Permanent { reason: reason.into() }
    }

    /// This error, after the channel took the first `parts_sent` parts of the message:
    /// the outbox keeps the count, and the next attempt starts after them.
    #[must_use]
    pub fn after_parts(self, parts_sent: u32) -> SendError {
        match self {
            _ if parts_sent == 0 => self,
            SendError::PartlySent { error, .. } => SendError::PartlySent { parts_sent, error },
            error => SendError::PartlySent {
                parts_sent,
                error: Box::new(error),
            },
        }
    }

    /// Whether it is worth retrying, whatever went before it.
    pub fn is_transient(&self) -> bool {
        match self {
            SendError::Transient { .. } => true,
            SendError::PartlySent { error, .. } => error.is_transient(),
            SendError::Permanent { .. } | SendError::Unreachable { .. } | SendError::Skipped { .. } => false,
        }
    }

    /// How many parts went before the error (0 when none is recorded), and the error.
    pub fn split_progress(self) -> (u32, SendError) {
        match self {
            SendError::PartlySent { parts_sent, error } => (parts_sent, *error),
            error => (0, error),
        }
    }
}

/// The sending half of a connector.
pub trait OutboundChannel {
    fn send(&self, message: &OutboundMessage) -> impl Future<Output = Result<Receipt, SendError>> + Send;
}

/// Where config validation reads the secrets a config names: environment variables
/// (`password_env`, `token_env`) and files (`password_file`, `ca_file`, `token_file`).
/// The daemon passes [`ProcessSecrets`]; tests and the config fuzz target pass their
/// own, so validating a config text need not touch the process's environment or disk.
pub trait SecretSource {
    fn var(&self, name: &str) -> Option<String>;
    fn read_file(&self, path: &str) -> std::io::Result<Vec<u8>>;
}

/// The process's environment and the filesystem.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessSecrets;

impl SecretSource for ProcessSecrets {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }

    fn read_file(&self, path: &str) -> std::io::Result<Vec<u8>> {
        std::fs::read(path)
    }
}

/// A function giving variables, with files read from the filesystem: what unit tests of
/// a connector's config pass (`&|name| …`).
impl<F: Fn(&str) -> Option<String>> SecretSource for F {
    fn var(&self, name: &str) -> Option<String> {
        self(name)
    }

    fn read_file(&self, path: &str) -> std::io::Result<Vec<u8>> {
        std::fs::read(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partial_send_keeps_one_count_over_the_error_under_it() {
        let flood = SendError::transient("429");
        assert!(
            matches!(flood.clone().after_parts(0), SendError::Transient { .. }),
            "no parts, no wrapper"
        );
        let partly = flood.after_parts(1).after_parts(3);
        assert_eq!(partly.to_string(), "transient: 429 (after 3 part(s) went)");
        assert!(partly.is_transient());
        let (parts_sent, error) = partly.split_progress();
        assert_eq!((parts_sent, error), (3, SendError::transient("429")));
        assert!(!SendError::permanent("400").after_parts(2).is_transient());
    }

    #[test]
    fn the_reply_window_is_open_only_within_its_length_of_the_customers_last_message() {
        static CHAT: ChannelSpec = ChannelSpec {
            name: "chat",
            capabilities: Capabilities {
                identity: IdentityScope::Global,
                vouches_for_sender: false,
                files_in: true,
                files_out: true,
                threads_by_ids: false,
                structured_updates: false,
                formats: Formats {
                    subject: false,
                    html: false,
                    markdown_v2: false,
                },
                csat: CsatStyle::Buttons,
                updates_need_address: false,
                reply_window: Some(Duration::from_secs(24 * 60 * 60)),
                limits: RateLimits {
                    per_inbox_per_second: None,
                    per_recipient_interval: None,
                },
            },
        };
        let windowed = ChannelKind::of(&CHAT).capabilities();
        let day = 24 * 60 * 60 * 1000;
        assert!(windowed.window_open(Some(1_000), 1_000 + day - 1));
        assert!(!windowed.window_open(Some(1_000), 1_000 + day));
        assert!(!windowed.window_open(None, 1_000), "a customer who never wrote");
        let unlimited = Capabilities {
            reply_window: None,
            ..*windowed
        };
        assert!(unlimited.window_open(None, i64::MAX));
    }

    #[test]
    fn csat_callback_data_round_trips_and_refuses_other_buttons() {
        let question = CsatQuestion {
            token: "Zm9vYmFyYmF6cXV4".into(),
        };
        let data = question.callback_data(4);
        assert!(data.len() <= 64);
        let answer = CsatAnswer::from_callback_data(&data).unwrap();
        assert_eq!((answer.token.as_deref(), answer.score), (Some("Zm9vYmFyYmF6cXV4"), 4));
        for other in ["order:42", "csat:tok:6", "csat:tok:0", "csat::3", "csat:tok:x"] {
            assert_eq!(CsatAnswer::from_callback_data(other), None, "{other}");
        }
    }
}
