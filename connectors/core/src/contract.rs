//! The channel contract: what a channel declares it can do ([`Capabilities`]), and the
//! parts it provides of a hook handler ([`Hook`]), a reader ([`Reader`]) and a sender
//! ([`MessageSender`]). The daemon hands every channel the same three things, an [`IngestSink`]
//! bound to its inbox, a [`CursorStore`] and the shutdown token; a channel never sees the
//! daemon's store or HTTP state.
//!
//! The traits return boxed futures so the daemon can hold every channel as one
//! `Arc<dyn Connector>`.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::{InboundMessage, OutboundMessage, Receipt, SendError};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The kind of channel an inbox speaks: its connector's name and what it can do. Stored
/// with every inbox and contact identity and shown in the API by name, so the names are
/// part of the wire format. Equal when the names are.
#[derive(Clone, Copy)]
pub struct ChannelKind(&'static ChannelSpec);

/// A connector's declaration, one `static` per connector crate.
#[derive(Debug)]
pub struct ChannelSpec {
    /// Lowercase, `[a-z0-9_]`: the config table's tag and the stored kind.
    pub name: &'static str,
    pub capabilities: Capabilities,
}

impl ChannelKind {
    pub const fn of(spec: &'static ChannelSpec) -> ChannelKind {
        ChannelKind(spec)
    }

    pub const fn as_str(self) -> &'static str {
        self.0.name
    }

    pub fn capabilities(self) -> &'static Capabilities {
        &self.0.capabilities
    }
}

impl PartialEq for ChannelKind {
    fn eq(&self, other: &ChannelKind) -> bool {
        self.0.name == other.0.name
    }
}

impl Eq for ChannelKind {}

impl std::hash::Hash for ChannelKind {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.name.hash(state);
    }
}

impl fmt::Debug for ChannelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.name)
    }
}

impl fmt::Display for ChannelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.name)
    }
}

impl Serialize for ChannelKind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0.name)
    }
}

/// What a channel can do. The desk asks these questions; it never compares kinds, so a
/// new channel gets the behaviour it declares, not email's by accident.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    pub identity: IdentityScope,
    /// The sender can vouch for an email address or phone it gives (a signed app that
    /// verified them): only then does such an identity join a contact known by them.
    pub vouches_for_sender: bool,
    /// Customers' files arrive with their messages.
    pub files_in: bool,
    /// Agents' replies can carry files.
    pub files_out: bool,
    /// Messages name earlier ones by channel ids (email's In-Reply-To and References): the
    /// sender needs the conversation's earlier ids to thread a reply.
    pub threads_by_ids: bool,
    /// Status updates may go out with an empty text: the receiver renders its own UI
    /// from the update's structured fields.
    pub structured_updates: bool,
    pub formats: Formats,
    pub csat: CsatStyle,
    /// Automated status updates may go only to a contact whose address the channel
    /// confirmed (email's `From`); others are left to agents.
    pub updates_need_address: bool,
    /// How long after the customer's last message a free-form message may still be sent
    /// (WhatsApp's 24-hour customer service window); `None` when there is no such rule.
    pub reply_window: Option<Duration>,
    pub limits: RateLimits,
}

impl Capabilities {
    /// Whether a free-form message may leave at `now_ms` when the customer last wrote at
    /// `customer_wrote_at` (Unix milliseconds; `None`: never): always on a channel
    /// without a reply window, else only within the window after that message.
    pub fn window_open(&self, customer_wrote_at: Option<i64>, now_ms: i64) -> bool {
        let Some(window) = self.reply_window else {
            return true;
        };
        let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
        customer_wrote_at.is_some_and(|at| now_ms.saturating_sub(at) < window_ms)
    }
}

/// Whose ids the channel's external ids are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityScope {
    /// One person has the same id in every inbox of the channel (an email address, a
    /// Telegram user id, a phone number): a second inbox's identity joins the contact.
    Global,
    /// Each inbox has its own ids (an app's user ids).
    PerInbox,
}

/// The rendered parts of a status update the channel shows besides plain text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Formats {
    pub subject: bool,
    pub html: bool,
    pub markdown_v2: bool,
}

/// How the channel asks a satisfaction question.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CsatStyle {
    /// Buttons carrying [`crate::CsatQuestion::callback_data`].
    Buttons,
    /// Links to the desk's public CSAT page, one per score.
    Links,
    /// The receiver shows its own question from the structured fields.
    Structured,
}

/// The channel's published sending limits, for operators and the docs: the sender paces
/// itself within them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RateLimits {
    /// Messages per second through one inbox.
    pub per_inbox_per_second: Option<u32>,
    /// The least time between two messages to one recipient.
    pub per_recipient_interval: Option<Duration>,
}

/// One configured inbox's connector, built at start from its validated settings.
pub trait Connector: Send + Sync {
    fn kind(&self) -> ChannelKind;

    /// The handler of `/hooks/{inbox}`, when the channel takes hooks.
    fn hook(&self) -> Option<&dyn Hook> {
        None
    }

    /// The loop that pulls or registers, when the channel has one.
    fn reader(&self) -> Option<&dyn Reader> {
        None
    }

    fn sender(&self) -> &dyn MessageSender;
}

/// The sending half: one message, and the channel's verdict on a failure.
pub trait MessageSender: Send + Sync {
    fn send<'a>(&'a self, message: &'a OutboundMessage) -> BoxFuture<'a, Result<Receipt, SendError>>;
}

/// What a hook request looks like before its body is read.
#[derive(Debug)]
pub struct HookHead<'a> {
    pub method: &'a http::Method,
    /// The raw query string, without `?`.
    pub query: Option<&'a str>,
    pub headers: &'a http::HeaderMap,
    /// The daemon's clock, in Unix milliseconds.
    pub now_ms: i64,
}

/// The channel's answer to a hook request: a status and a body.
#[derive(Debug, Clone, PartialEq)]
pub struct HookReply {
    pub status: u16,
    pub body: HookBody,
}

#[derive(Debug, Clone, PartialEq)]
pub enum HookBody {
    Json(serde_json::Value),
    /// `text/plain` (a verification challenge echoed back).
    Text(String),
}

impl HookReply {
    pub fn json(status: u16, body: serde_json::Value) -> HookReply {
        HookReply {
            status,
            body: HookBody::Json(body),
        }
    }
}

/// A refused hook request: the status, a stable code and what the caller should change.
/// Nothing was stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct HookError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

impl HookError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> HookError {
        HookError {
            status,
            code,
            message: message.into(),
        }
    }
}

/// The handler of a channel's hook. The daemon checks its own rate limits, calls
/// [`Hook::admit`] with the head, reads at most the body size it returns within its
/// timeout, then calls [`Hook::handle`].
pub trait Hook: Send + Sync {
    /// Everything the head can tell, before a byte of the body is read (a missing
    /// signature, a wrong content type, a declared length over the limit). Returns the
    /// largest body to read; `Ok(0)` for a request answered from the head alone.
    fn admit(&self, head: &HookHead<'_>) -> Result<usize, HookError>;

    /// The request with its body. Answers only after what it carries is committed
    /// through `sink`: a 2xx is the channel's acknowledgement.
    fn handle<'a>(
        &'a self,
        head: &'a HookHead<'a>,
        body: &'a [u8],
        sink: &'a dyn IngestSink,
    ) -> BoxFuture<'a, Result<HookReply, HookError>>;
}

/// A channel's loop: it pulls (with a cursor) or registers itself, until shutdown.
pub trait Reader: Send + Sync {
    /// One daemon at a time may run it (a mailbox, a bot's `getUpdates`): the daemon
    /// runs it under a lease. Otherwise every daemon runs it.
    fn exclusive(&self) -> bool;

    /// Runs until `context.shutdown` is cancelled, retrying whatever fails.
    fn run<'a>(&'a self, context: ReaderContext<'a>) -> BoxFuture<'a, ()>;
}

/// What the daemon hands a reader.
pub struct ReaderContext<'a> {
    pub sink: &'a dyn IngestSink,
    pub cursors: &'a dyn CursorStore,
    pub shutdown: CancellationToken,
}

/// Extra instructions with an inbound message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IngestOptions {
    /// The customer started the conversation with the channel's start command: greet them.
    pub greeting: bool,
}

/// What became of an ingested message, once committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Ingested {
    pub conversation_id: i64,
    pub message_id: i64,
    /// The message was stored before (a redelivery): nothing changed.
    pub duplicate: bool,
}

/// Why the sink could not take something. Nothing was stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SinkError {
    /// The message breaks a rule of the desk (a field too long): sending it again will
    /// not help.
    #[error("{field}: {problem}")]
    Invalid { field: String, problem: String },
    /// The store is busy or down: try again later (a hook answers 503).
    #[error("try again later: {0}")]
    Unavailable(String),
    /// The store failed in a way retrying will not mend until an operator looks.
    #[error("the store failed: {0}")]
    Failed(String),
}

/// What a hook answers when the sink refused: the same codes for every channel.
impl From<SinkError> for HookError {
    fn from(err: SinkError) -> HookError {
        match err {
            SinkError::Invalid { field, problem } => {
                HookError::new(422, "invalid_field", format!("`{field}` {problem}"))
            }
            SinkError::Unavailable(_) => HookError::new(
                503,
                "storage_unavailable",
                "storage is unavailable; nothing was changed, try again",
            ),
            SinkError::Failed(_) => HookError::new(
                500,
                "storage_failure",
                "the store failed; nothing was changed, and retrying will not help until an operator looks",
            ),
        }
    }
}

/// A channel's report on a message we sent: the states move forward only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    Sent,
    Delivered,
    Read,
    Failed,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Sent => "sent",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Read => "read",
            DeliveryState::Failed => "failed",
        }
    }

    pub fn parse(name: &str) -> Option<DeliveryState> {
        [
            DeliveryState::Sent,
            DeliveryState::Delivered,
            DeliveryState::Read,
            DeliveryState::Failed,
        ]
        .into_iter()
        .find(|state| state.as_str() == name)
    }
}

/// One delivery report: which of our messages (the channel's id from its [`Receipt`]),
/// what state, and for a failure what the channel said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryReport {
    pub external_id: String,
    pub state: DeliveryState,
    pub error: Option<String>,
    /// When the channel says it happened, in Unix milliseconds.
    pub at_ms: Option<i64>,
}

/// Where a channel puts what arrives, bound to its inbox. Each call commits before it
/// returns; only then may the channel acknowledge its source.
pub trait IngestSink: Send + Sync {
    fn ingest(&self, message: InboundMessage, options: IngestOptions) -> BoxFuture<'_, Result<Ingested, SinkError>>;

    /// Several messages in their order, committed together when the store can (a batch
    /// of mails): one result each, in the same order.
    fn ingest_batch(&self, messages: Vec<InboundMessage>) -> BoxFuture<'_, Vec<Result<Ingested, SinkError>>> {
        Box::pin(async move {
            let mut results = Vec::with_capacity(messages.len());
            for message in messages {
                results.push(self.ingest(message, IngestOptions::default()).await);
            }
            results
        })
    }

    /// The daemon's clock, in Unix milliseconds (tests drive it).
    fn now_ms(&self) -> i64;

    /// The recipient blocked the channel (a Telegram bot) or is gone.
    fn unreachable(&self, external_id: String, reason: String) -> BoxFuture<'_, Result<(), SinkError>>;

    /// What became of messages we sent; states arrive in any order and never move back.
    fn delivery_report(&self, report: DeliveryReport) -> BoxFuture<'_, Result<(), SinkError>>;

    /// A reader is connected (until the guard drops) and has just heard from its source:
    /// the daemon's `/metrics` and `/readyz` show it.
    fn reader_connected(&self) -> Option<Box<dyn Send + Sync>> {
        None
    }

    fn reader_polled(&self) {}
}

/// A channel's named positions (an IMAP folder's last UID, a bot's update offset),
/// kept per inbox by the daemon.
pub trait CursorStore: Send + Sync {
    fn get<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<String>, SinkError>>;
    fn set<'a>(&'a self, name: &'a str, value: String) -> BoxFuture<'a, Result<(), SinkError>>;
}

/// A config key a connector refused, relative to its table (`imap.port`), and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {problem}")]
pub struct KeyError {
    pub key: String,
    pub problem: String,
}

impl KeyError {
    pub fn new(key: impl Into<String>, problem: impl Into<String>) -> KeyError {
        KeyError {
            key: key.into(),
            problem: problem.into(),
        }
    }
}

/// A channel as the daemon registers it: its config table (`[inboxes.KEY.<name>]`),
/// validated before any I/O into settings, from which the inbox's connector is built.
pub trait Channel: 'static {
    /// The table's contents, as written; unknown keys are refused.
    type Config: serde::de::DeserializeOwned + fmt::Debug + Clone + Send + Sync;
    type Settings: fmt::Debug + Clone + Send + Sync;

    const KIND: ChannelKind;

    /// Pure: checks the table and reads the secrets it names. `inbox_key` is the inbox's
    /// key, for channels whose settings derive from it.
    fn validate(
        config: &Self::Config,
        inbox_key: &str,
        secrets: &dyn crate::SecretSource,
    ) -> Result<Self::Settings, KeyError>;

    /// The inbox's connector: clients built, nothing connected yet.
    fn build(settings: &Self::Settings, inbox_key: &str) -> Result<std::sync::Arc<dyn Connector>, KeyError>;
}

/// Every connector's typed sender is a [`MessageSender`] the daemon can hold behind `dyn`.
impl<T: crate::OutboundChannel + Send + Sync> MessageSender for T {
    fn send<'a>(&'a self, message: &'a OutboundMessage) -> BoxFuture<'a, Result<Receipt, SendError>> {
        Box::pin(crate::OutboundChannel::send(self, message))
    }
}
