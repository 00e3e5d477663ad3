//! Storage: the [`Store`] trait callers use, the read models it returns, and its
//! backends. Callers never see SQL types, so a PostgreSQL backend can be added beside
//! [`sqlite::SqliteStore`] without touching them.
//!
//! Every method that changes a conversation writes the change, its events and its
//! outbound messages in one transaction. Methods take `now` (Unix ms) from the caller's
//! clock rather than reading one, so tests can drive time.

pub mod migrations;
pub mod records;
pub mod sqlite;
mod tx;

pub use records::*;
pub use tx::*;

use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;
use serde_json::Value;
use switchboard_connector_core::{ChannelKind, InboundMessage};

pub use crate::domain::clocks::FireOutcome;
pub use crate::domain::desk::Desk;
pub use crate::domain::escalation::{Escalation, EscalationTarget};
pub use crate::domain::ingest::{IngestContext, IngestOutcome};
pub use crate::domain::lifecycle::{ConversationChanges, NewAgentMessage};
pub use crate::domain::{DeskError, DeskResult};
use crate::model::{ActorKind, DeliveryStatus, Direction, MessageKind, Priority, Role, Status, Timestamp};

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The thing named does not exist (HTTP 404).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A value refers to something that does not exist or is not allowed (HTTP 422).
    #[error("`{field}` {problem}")]
    Invalid { field: &'static str, problem: String },
    /// The request conflicts with the current state (HTTP 409).
    #[error("{0}")]
    Conflict(String),
    /// The agent may not do this (HTTP 403).
    #[error("{0}")]
    Forbidden(String),
    /// The database failed; the caller may retry.
    #[error("storage failure: {0}")]
    Backend(String),
}

// Until callers speak the desk's errors: the old trait answers in the store's.
impl From<DeskError> for StoreError {
    fn from(err: DeskError) -> StoreError {
        match err {
            DeskError::NotFound(what) => StoreError::NotFound(what),
            DeskError::Invalid { field, problem } => StoreError::Invalid { field, problem },
            DeskError::Conflict(message) => StoreError::Conflict(message),
            DeskError::Forbidden(message) => StoreError::Forbidden(message),
            DeskError::Store(err) => err,
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> StoreError {
        StoreError::Backend(err.to_string())
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(err: rusqlite::Error) -> StoreError {
        StoreError::Backend(err.to_string())
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(err: sqlx::migrate::MigrateError) -> StoreError {
        StoreError::Backend(format!("migration failed: {err}"))
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Agent {
    pub id: i64,
    pub name: String,
    pub role: Role,
    pub team: Option<String>,
    /// Whether queues may assign conversations to them.
    pub available: bool,
    /// Their own limit of open conversations; `null`: the team's.
    pub capacity: Option<i64>,
    /// Open conversations assigned to them now.
    pub open_conversations: i64,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, Serialize)]
pub struct TeamSummary {
    pub key: String,
    pub name: String,
    pub department: String,
    pub tier: i64,
    pub assignment: &'static str,
    /// Where `{"tier": "next"}` goes.
    pub escalates_to: Option<String>,
    /// Open conversations nobody is assigned to: the queue.
    pub waiting: i64,
    /// Open conversations an agent holds.
    pub assigned: i64,
    /// Unresolved conversations (open, pending, snoozed) with an SLA breach.
    pub breached: i64,
    /// When the longest-waiting conversation of the queue entered it.
    pub oldest_waiting_since: Option<Timestamp>,
    /// Members marked available, and all members.
    pub agents_available: i64,
    pub agents: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AssigneeFilter {
    Anyone,
    Nobody,
    /// An agent that must exist (HTTP 422 otherwise).
    Agent(AgentSelector),
}

#[derive(Debug, Clone)]
pub struct ConversationFilter {
    pub team: Option<String>,
    /// Empty: every status.
    pub statuses: Vec<Status>,
    pub assignee: AssigneeFilter,
    pub inbox: Option<String>,
}

/// A position in the newest-activity-first listing: the last row already seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub last_activity_at: i64,
    pub id: i64,
}

impl Cursor {
    pub fn encode(self) -> String {
        format!("{}.{}", self.last_activity_at, self.id)
    }

    pub fn decode(text: &str) -> Option<Cursor> {
        let (activity, id) = text.split_once('.')?;
        Some(Cursor {
            last_activity_at: activity.parse().ok()?,
            id: id.parse().ok()?,
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct TeamRef {
    pub key: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct AgentRef {
    pub id: i64,
    pub name: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ContactRef {
    pub id: i64,
    pub name: Option<String>,
    pub email: Option<String>,
    /// The contact's id in this conversation's inbox.
    pub external_id: String,
    /// Why replies in this inbox cannot reach them (they blocked the bot), since their
    /// last message; `null` when they can be reached.
    pub unreachable: Option<String>,
    pub language: Option<String>,
    pub metadata: Value,
    /// Since when the customer wants no automated status updates (`stop`).
    pub updates_stopped_at: Option<Timestamp>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MessagePreview {
    pub id: i64,
    pub direction: Direction,
    pub kind: MessageKind,
    pub text: String,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConversationSummary {
    pub id: i64,
    pub reference: String,
    pub inbox: String,
    pub channel: ChannelKind,
    pub subject: Option<String>,
    pub thread: Option<String>,
    pub status: Status,
    pub priority: Priority,
    pub team: Option<TeamRef>,
    pub tier: i64,
    pub assignee: Option<AgentRef>,
    pub labels: Vec<String>,
    pub language: Option<String>,
    pub transfer_count: i64,
    pub contact: ContactRef,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub last_activity_at: Timestamp,
    pub first_response_at: Option<Timestamp>,
    /// When it entered its current team's queue.
    pub queued_at: Option<Timestamp>,
    /// The latest escalation, shown first to the team that received it: kind
    /// (functional or hierarchical), from, to, summary, reason, by, at.
    pub escalation: Option<Value>,
    pub sla_breached_at: Option<Timestamp>,
    /// The satisfaction question of the latest resolution and its answer.
    pub csat: Option<CsatView>,
    pub last_message: Option<MessagePreview>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CsatView {
    pub requested_at: Timestamp,
    pub score: Option<i64>,
    pub comment: Option<String>,
    pub answered_at: Option<Timestamp>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConversationPage {
    pub conversations: Vec<ConversationSummary>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Actor {
    pub kind: ActorKind,
    pub id: Option<i64>,
    pub name: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AttachmentView {
    pub id: i64,
    pub filename: String,
    pub content_type: String,
    pub size: i64,
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeliveryView {
    /// The delivery's id (`POST /api/v1/deliveries/{id}/retry`).
    pub id: i64,
    pub status: DeliveryStatus,
    pub attempts: i64,
    pub next_attempt_at: Option<Timestamp>,
    pub last_error: Option<String>,
    pub sent_at: Option<Timestamp>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MessageView {
    pub id: i64,
    pub conversation_id: i64,
    pub direction: Direction,
    pub kind: MessageKind,
    pub author: Actor,
    pub text: String,
    pub html: Option<String>,
    pub external_id: Option<String>,
    pub language: Option<String>,
    /// What the channel told about the message beyond its text (email: the Message-ID,
    /// the full text of a trimmed reply, dropped attachments, a bounce's report; webhook:
    /// the sender's attributes as sent with it). `{}` when nothing.
    pub details: Value,
    pub attachments: Vec<AttachmentView>,
    /// For outbound messages: where they are on their way out.
    pub delivery: Option<DeliveryView>,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, Serialize)]
pub struct EventView {
    pub id: i64,
    pub kind: String,
    pub actor: Actor,
    pub data: Value,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConversationDetail {
    #[serde(flatten)]
    pub conversation: ConversationSummary,
    /// Its SLA clocks.
    pub sla: Vec<ClockView>,
    pub messages: Vec<MessageView>,
    pub events: Vec<EventView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClockView {
    pub kind: String,
    pub state: String,
    /// The target, e.g. `1h`.
    pub target: String,
    pub started_at: Timestamp,
    /// Set while running.
    pub warn_at: Option<Timestamp>,
    pub due_at: Option<Timestamp>,
    pub warned_at: Option<Timestamp>,
    pub breached_at: Option<Timestamp>,
    pub stopped_at: Option<Timestamp>,
}

/// One outbound delivery, as `GET /api/v1/deliveries` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryRecord {
    pub id: i64,
    pub message_id: i64,
    pub conversation_id: i64,
    pub inbox: String,
    pub channel: ChannelKind,
    /// `reply` or `status_update`.
    pub kind: MessageKind,
    pub status: DeliveryStatus,
    pub attempts: i64,
    pub next_attempt_at: Option<Timestamp>,
    pub expires_at: Timestamp,
    pub last_error: Option<String>,
    pub receipt: Option<Value>,
    pub sent_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeliveryPage {
    pub deliveries: Vec<DeliveryRecord>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// The outbox at a glance, for `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboxGauges {
    pub scheduled: u64,
    pub in_flight: u64,
    pub sent: u64,
    pub failed: u64,
    /// When the oldest delivery not yet sent nor failed was queued.
    pub oldest_unsent_at: Option<i64>,
}

/// A subscription's delivery, as its listing shows it.
#[derive(Debug, Clone, Serialize)]
pub struct SubscriptionDelivery {
    pub id: i64,
    pub event_type: String,
    pub conversation_id: Option<i64>,
    pub status: DeliveryStatus,
    pub attempts: i64,
    pub next_attempt_at: Option<Timestamp>,
    pub last_error: Option<String>,
    pub sent_at: Option<Timestamp>,
    pub created_at: Timestamp,
}

/// The satisfaction page of one conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CsatPage {
    pub conversation_id: i64,
    pub score: Option<u8>,
    pub comment: Option<String>,
    /// The contact's language, for the page's words.
    pub language: Option<String>,
    /// Whether an answer is taken now: the conversation is resolved and the question
    /// within `csat.answer_window`.
    pub open: bool,
}

/// Attachment bytes for download.
#[derive(Debug, Clone)]
pub struct AttachmentData {
    pub filename: String,
    pub content_type: String,
    pub data: Vec<u8>,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Answers when the database can serve a query.
    async fn ping(&self) -> StoreResult<()>;

    /// Makes the configured teams and inboxes exist (inserted or renamed by key) and
    /// returns the inboxes with their ids. Teams and inboxes removed from config stay in
    /// the database, because conversations refer to them. The desk (teams' policies, SLA
    /// targets) is what every later write that moves clocks or queues consults.
    async fn sync_catalog(
        &self,
        teams: &[TeamSpec],
        inboxes: &[InboxSpec],
        desk: Arc<Desk>,
        now: i64,
    ) -> StoreResult<Catalog>;

    /// Stores one inbound message, in one transaction: dedupe, contact, threading,
    /// routing of a new conversation, the message, its events, and the acknowledgement.
    async fn ingest(&self, context: IngestContext, message: InboundMessage) -> StoreResult<IngestOutcome>;

    /// Ingests several messages, each in its own transaction but in this order (a reply
    /// later in the batch sees the message before it), sharing commits where the
    /// backend can: a connector catching up on a backlog (an IMAP batch) waits for one
    /// fsync, not one per message.
    async fn ingest_in_order(&self, batch: Vec<(IngestContext, InboundMessage)>) -> Vec<StoreResult<IngestOutcome>>;

    async fn create_agent(&self, agent: NewAgent, now: i64) -> StoreResult<Agent>;
    async fn agent_by_token_hash(&self, token_hash: &[u8]) -> StoreResult<Option<Agent>>;
    async fn list_agents(&self) -> StoreResult<Vec<Agent>>;

    async fn team_summaries(&self) -> StoreResult<Vec<TeamSummary>>;
    async fn list_conversations(
        &self,
        filter: &ConversationFilter,
        after: Option<Cursor>,
        limit: u32,
    ) -> StoreResult<ConversationPage>;
    async fn conversation(&self, id: i64) -> StoreResult<ConversationDetail>;
    async fn add_agent_message(&self, message: NewAgentMessage) -> StoreResult<MessageView>;
    async fn update_conversation(
        &self,
        id: i64,
        agent_id: i64,
        changes: &ConversationChanges,
        now: i64,
    ) -> StoreResult<ConversationDetail>;
    async fn attachment(&self, id: i64) -> StoreResult<AttachmentData>;

    /// Puts deliveries left in flight by a previous run back in the queue.
    async fn release_in_flight(&self, now: i64) -> StoreResult<u64>;
    /// Claims up to `limit` due deliveries, oldest first, at most one per conversation
    /// at a time so a conversation's messages leave in order.
    /// Takes no rows of the inboxes the plan holds (paused or busy destinations), and
    /// at most each inbox's room.
    async fn claim_deliveries(
        &self,
        now: i64,
        limit: u32,
        lease_until: i64,
        plan: &ClaimPlan,
    ) -> StoreResult<Vec<Delivery>>;
    /// Moves an inbox's queued messages to `until` at the earliest (its destination is
    /// paused).
    async fn defer_deliveries(&self, inbox_id: i64, until: i64, now: i64) -> StoreResult<u64>;
    async fn record_delivery(&self, outbox_id: i64, result: &DeliveryResult, now: i64) -> StoreResult<()>;
    /// When the next claimable delivery falls due: rows waiting behind an earlier
    /// message of their conversation do not count.
    async fn next_delivery_due(&self, held: &[i64]) -> StoreResult<Option<i64>>;

    /// The channel says this identity cannot be reached there any more (the customer
    /// blocked the bot). Returns whether such an identity exists.
    async fn mark_unreachable(&self, inbox_id: i64, external_id: &str, reason: &str, now: i64) -> StoreResult<bool>;

    /// Where a connector stands in its source (see migration 0004).
    async fn channel_cursor(&self, inbox_id: i64, name: &str) -> StoreResult<Option<String>>;
    /// Moves the cursor; call only after what came before it is committed.
    async fn set_channel_cursor(&self, inbox_id: i64, name: &str, value: &str, now: i64) -> StoreResult<()>;

    /// Moves a conversation to another team with a summary (kept as an internal note),
    /// counting the transfer; only members of its team and supervisors may.
    async fn escalate(&self, escalation: Escalation) -> StoreResult<ConversationDetail>;
    /// Marks an agent available (their team's queue is then served) or not.
    async fn set_availability(&self, agent_id: i64, available: bool, now: i64) -> StoreResult<Agent>;
    /// Serves every automatically assigning team's queue; returns how many it assigned.
    async fn drain_queues(&self, now: i64) -> StoreResult<u32>;
    /// The earliest moment an SLA clock or a follow-up needs the scheduler.
    async fn next_sla_fire(&self) -> StoreResult<Option<i64>>;
    /// Fires up to `limit` SLA warnings and breaches and up to `limit` follow-ups due by
    /// `now`, with their actions.
    async fn fire_sla(&self, now: i64, limit: u32) -> StoreResult<FireOutcome>;

    /// Deliveries newest first, of one status or all; `before`: the last id already seen.
    async fn list_deliveries(
        &self,
        status: Option<DeliveryStatus>,
        before: Option<i64>,
        limit: u32,
    ) -> StoreResult<DeliveryPage>;
    /// Schedules a failed delivery again from now, its retry schedule from the start and
    /// a new expiry; `Conflict` unless it failed.
    async fn retry_delivery(&self, id: i64, agent_id: i64, now: i64, expires_at: i64) -> StoreResult<DeliveryRecord>;
    async fn outbox_gauges(&self) -> StoreResult<OutboxGauges>;

    async fn create_subscription(&self, new: NewSubscription, now: i64) -> StoreResult<Subscription>;
    async fn list_subscriptions(&self) -> StoreResult<Vec<Subscription>>;
    async fn subscription(&self, id: i64) -> StoreResult<Subscription>;
    async fn delete_subscription(&self, id: i64, now: i64) -> StoreResult<()>;
    async fn set_subscription_active(&self, id: i64, active: bool, now: i64) -> StoreResult<Subscription>;
    /// Queues a `ping` event for the subscription (sent even while it is disabled);
    /// returns the delivery's id.
    async fn ping_subscription(&self, id: i64, now: i64) -> StoreResult<i64>;
    async fn subscription_deliveries(&self, id: i64, limit: u32) -> StoreResult<Vec<SubscriptionDelivery>>;
    async fn release_event_deliveries(&self, now: i64) -> StoreResult<u64>;
    /// `held`: subscriptions paused or at their concurrency.
    async fn claim_event_deliveries(
        &self,
        now: i64,
        limit: u32,
        lease_until: i64,
        held: &[i64],
    ) -> StoreResult<Vec<EventDelivery>>;
    /// Moves a paused subscription's queued events to `until` at the earliest.
    async fn defer_event_deliveries(&self, subscription_id: i64, until: i64, now: i64) -> StoreResult<()>;
    /// Records an attempt's outcome, and disables the subscription when told why.
    async fn record_event_delivery(
        &self,
        id: i64,
        result: DeliveryResult,
        disable: Option<String>,
        now: i64,
    ) -> StoreResult<()>;
    async fn next_event_delivery_due(&self, held: &[i64]) -> StoreResult<Option<i64>>;

    /// Records a satisfaction answer given on the web page a CSAT email links to.
    async fn answer_csat(&self, token: &str, score: u8, comment: Option<String>, now: i64) -> StoreResult<CsatPage>;
    /// What the page for a CSAT token shows at `now`; `NotFound` for an unknown token.
    async fn csat_page(&self, token: &str, now: i64) -> StoreResult<CsatPage>;
}
