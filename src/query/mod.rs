//! What agents, admins and integrations are shown: the read models, and [`Queries`], the
//! reads a backend answers them with. Separate from the store's [`Tx`](crate::store::Tx):
//! the rules never read a read model, and a read model can change shape without the
//! rules noticing. Each backend implements [`Queries`] beside its [`Store`](crate::store::Store).

pub mod report_cache;
pub mod reports;
pub mod saved_replies;
pub mod search;

use async_trait::async_trait;
use serde::Serialize;
use serde_json::Value;
use switchboard_connector_core::ChannelKind;

use crate::model::{ActorKind, DeliveryStatus, Direction, MessageKind, Priority, Role, Status, Timestamp};
use crate::store::{AgentSelector, StoreResult, Subscription};
pub use saved_replies::{SavedReplyView, TeamsSeen};

#[derive(Debug, Clone, Serialize)]
pub struct Agent {
    pub id: i64,
    pub name: String,
    pub role: Role,
    /// Their home team: the first of `teams`.
    pub team: Option<String>,
    /// Every team they belong to, the home team first.
    pub teams: Vec<String>,
    /// Whether queues may assign conversations to them.
    pub available: bool,
    /// Their own limit of open conversations; `null`: the team's.
    pub capacity: Option<i64>,
    /// The languages they read (lowercase tags): queues prefer them for conversations
    /// in those languages.
    pub languages: Vec<String>,
    /// Open conversations assigned to them now.
    pub open_conversations: i64,
    /// Deactivated agents keep their history but cannot sign in or use their token.
    pub active: bool,
    /// Whether they have set a password (followed their sign-in link).
    pub has_password: bool,
    pub created_at: Timestamp,
}

/// A console session: whose it is, and the token its state-changing requests repeat.
#[derive(Debug, Clone)]
pub struct SessionView {
    pub agent: Agent,
    pub csrf_token: String,
    pub expires_at: i64,
}

/// Whose conversations a caller may read: decided by the access layer
/// ([`crate::domain::access::visibility`]), applied by every read of conversations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Visibility {
    All,
    /// Their teams' conversations and those assigned to them.
    Teams {
        agent_id: i64,
        teams: Vec<String>,
    },
}

impl Visibility {
    /// Whether it takes in a conversation of `team` (its key) assigned to `assignee`.
    pub fn allows(&self, team: Option<&str>, assignee: Option<i64>) -> bool {
        match self {
            Visibility::All => true,
            Visibility::Teams { agent_id, teams } => {
                assignee == Some(*agent_id) || team.is_some_and(|team| teams.iter().any(|own| own == team))
            }
        }
    }
}

/// Where a conversation's SLA stands, for list filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlaFilter {
    /// A running clock has passed its warning and not yet its deadline.
    AtRisk,
    /// Unresolved, with a breached clock.
    Breached,
}

/// The order of a conversation list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ListOrder {
    /// Newest activity first.
    #[default]
    Newest,
    /// Oldest activity first: who has waited longest.
    Oldest,
}

/// The console's queue tabs, counted for one agent: open conversations.
#[derive(Debug, Clone, Serialize)]
pub struct QueueCounts {
    pub mine: i64,
    pub unassigned: i64,
    /// Their team's; 0 without a team.
    pub team: i64,
    /// Everything they may see.
    pub all: i64,
}

/// A team's queue and members, counted.
#[derive(Debug, Clone)]
pub struct TeamCounts {
    pub key: String,
    pub name: String,
    pub tier: i64,
    /// Open conversations nobody is assigned to: the queue.
    pub waiting: i64,
    /// Open conversations an agent holds.
    pub assigned: i64,
    /// Unresolved conversations (open, pending, snoozed) with an SLA breach.
    pub breached: i64,
    /// Unresolved conversations with a clock past its warning, not yet breached.
    pub at_risk: i64,
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
    /// Empty: every team; else conversations of any of these.
    pub teams: Vec<String>,
    /// Empty: every status.
    pub statuses: Vec<Status>,
    pub assignee: AssigneeFilter,
    pub inbox: Option<String>,
    /// Empty: every priority.
    pub priorities: Vec<Priority>,
    pub label: Option<String>,
    pub channel: Option<ChannelKind>,
    /// One person's conversations.
    pub contact: Option<i64>,
    pub sla: Option<SlaFilter>,
    pub order: ListOrder,
    pub visible_to: Visibility,
}

impl ConversationFilter {
    /// Everything `visible_to` may see, newest activity first.
    pub fn visible_to(visible_to: Visibility) -> ConversationFilter {
        ConversationFilter {
            teams: Vec::new(),
            statuses: Vec::new(),
            assignee: AssigneeFilter::Anyone,
            inbox: None,
            priorities: Vec::new(),
            label: None,
            channel: None,
            contact: None,
            sla: None,
            order: ListOrder::Newest,
            visible_to,
        }
    }
}

/// A position in a listing by activity: the last row already seen.
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
    /// What the channel last reported of the sent message (`sent`, `delivered`, `read`,
    /// `failed`), for channels that report (WhatsApp); never moves back.
    pub channel_state: Option<String>,
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
    /// For a channel that carries free-form replies only for a while after the customer
    /// wrote (WhatsApp: 24 hours); set by the API, which knows the time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply_window: Option<ReplyWindow>,
}

impl ConversationDetail {
    /// When the customer last wrote, as the reply window counts: their latest inbound
    /// message.
    pub fn customer_wrote_at(&self) -> Option<i64> {
        self.messages
            .iter()
            .filter(|message| message.direction == Direction::Inbound && message.author.kind == ActorKind::Contact)
            .map(|message| message.created_at.0)
            .max()
    }
}

/// Whether an agent's reply may go now on a channel with a reply window.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ReplyWindow {
    pub open: bool,
    /// When it closes (closed, when past); `null` when the customer never wrote.
    pub closes_at: Option<Timestamp>,
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
    /// Not sent and not owed (a channel that may not carry it now).
    pub skipped: u64,
    /// When the oldest delivery not yet sent nor failed was queued.
    pub oldest_unsent_at: Option<i64>,
}

/// A team's SLA warnings and breaches since the desk began, counted from the event log
/// (events are never deleted, and an erasure keeps their team), for `/metrics`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlaEventCounts {
    /// The team the conversation was in when the clock fired.
    pub team: String,
    pub warnings: u64,
    pub breaches: u64,
}

/// A subscription's deliveries not yet sent nor failed, for `/metrics`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionBacklog {
    pub subscription_id: i64,
    pub pending: u64,
    /// When the oldest of them was queued.
    pub oldest_pending_at: Option<i64>,
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

/// Where one table's part of the stream stands: the last row told, in the order rows
/// become visible to readers. SQLite commits one writer's transactions in id order, so
/// there `tx` is 0 and ids alone order the rows. On PostgreSQL a row can commit after
/// one with a later id, so rows are ordered by the transaction that wrote them first
/// (`tx`, its id) and told only once every older transaction has ended: a position
/// never passes a row that commits later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Mark {
    pub tx: i64,
    pub id: i64,
}

impl Mark {
    fn encode(self) -> String {
        if self.tx == 0 {
            self.id.to_string()
        } else {
            format!("{}.{}", self.tx, self.id)
        }
    }

    fn decode(text: &str) -> Option<Mark> {
        let number = |text: &str| text.parse().ok().filter(|n: &i64| *n >= 0);
        Some(match text.split_once('.') {
            Some((tx, id)) => Mark {
                tx: number(tx)?,
                id: number(id)?,
            },
            None => Mark {
                tx: 0,
                id: number(text)?,
            },
        })
    }
}

/// A place in the live stream: the last event and the last message already told. The
/// two are counted apart because they are two tables; each only grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StreamPosition {
    pub event: Mark,
    pub message: Mark,
}

impl StreamPosition {
    /// As `Last-Event-ID` carries it: `event-message`, each an id (SQLite) or
    /// `transaction.id` (PostgreSQL).
    pub fn encode(self) -> String {
        format!("{}-{}", self.event.encode(), self.message.encode())
    }

    pub fn decode(text: &str) -> Option<StreamPosition> {
        let (event, message) = text.trim().split_once('-')?;
        Some(StreamPosition {
            event: Mark::decode(event)?,
            message: Mark::decode(message)?,
        })
    }

    /// Whether `item` was told already by the time this position was reached.
    pub fn covers(self, item: &StreamItem) -> bool {
        match &item.change {
            StreamChange::Event(_) => item.mark() <= self.event,
            StreamChange::Message(_) => item.mark() <= self.message,
        }
    }

    /// This position, moved past `item`.
    pub fn past(self, item: &StreamItem) -> StreamPosition {
        match &item.change {
            StreamChange::Event(_) => StreamPosition {
                event: self.event.max(item.mark()),
                ..self
            },
            StreamChange::Message(_) => StreamPosition {
                message: self.message.max(item.mark()),
                ..self
            },
        }
    }
}

/// The conversation a stream item is about, as it stands now: what visibility is judged
/// on and what a console's list needs to place it.
#[derive(Debug, Clone, Serialize)]
pub struct StreamConversation {
    pub id: i64,
    pub team: Option<String>,
    pub assignee_id: Option<i64>,
    pub status: Status,
    pub priority: Priority,
}

/// A message as the stream tells it: enough to show a line; the detail has the rest.
#[derive(Debug, Clone, Serialize)]
pub struct StreamMessage {
    pub id: i64,
    pub direction: Direction,
    pub kind: MessageKind,
    pub author: Actor,
    /// The first 500 characters.
    pub text: String,
    pub attachments: i64,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone)]
pub enum StreamChange {
    Event(EventView),
    Message(StreamMessage),
}

#[derive(Debug, Clone)]
pub struct StreamItem {
    pub conversation: StreamConversation,
    pub change: StreamChange,
    /// The transaction that wrote it ([`Mark::tx`]): 0 on SQLite.
    pub tx: i64,
}

impl StreamItem {
    /// Its place in its table's part of the stream.
    pub fn mark(&self) -> Mark {
        let id = match &self.change {
            StreamChange::Event(event) => event.id,
            StreamChange::Message(message) => message.id,
        };
        Mark { tx: self.tx, id }
    }

    /// The two lists, each in stream order, merged in the order things happened (an
    /// event first at the same instant: a conversation's creation before its first
    /// message). Each kind keeps its order, which is what a resumed position relies on.
    pub fn merge_by_time(events: Vec<StreamItem>, messages: Vec<StreamItem>) -> Vec<StreamItem> {
        let at = |item: &StreamItem| match &item.change {
            StreamChange::Event(event) => event.created_at.0,
            StreamChange::Message(message) => message.created_at.0,
        };
        let mut merged = Vec::with_capacity(events.len() + messages.len());
        let mut messages = messages.into_iter().peekable();
        for event in events {
            while let Some(message) = messages.next_if(|message| at(message) < at(&event)) {
                merged.push(message);
            }
            merged.push(event);
        }
        merged.extend(messages);
        merged
    }

    /// The SSE event name: the event's kind, or `message.created`.
    pub fn kind(&self) -> &str {
        match &self.change {
            StreamChange::Event(event) => &event.kind,
            StreamChange::Message(_) => "message.created",
        }
    }
}

/// What a contact search asks: text found in a name, an email address, a phone number,
/// a Telegram username or a channel's id of the person; only contacts the caller may see
/// (an agent: those with a conversation they may read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactSearch {
    /// Lowercased; `None` lists every contact.
    pub text: Option<String>,
    pub visible_to: Visibility,
}

/// One way the person reaches the desk.
#[derive(Debug, Clone, Serialize)]
pub struct IdentityView {
    pub id: i64,
    pub inbox: String,
    pub channel: ChannelKind,
    pub external_id: String,
    /// Why replies by this identity cannot reach them; `null` when they can.
    pub unreachable: Option<String>,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, Serialize)]
pub struct ContactSummary {
    pub id: i64,
    pub name: Option<String>,
    pub email: Option<String>,
    pub language: Option<String>,
    pub time_zone: Option<String>,
    /// The `flags` attribute, as routing rules read it (`vip`, `influencer`, `verified`).
    pub flags: Vec<String>,
    /// Everything webhooks and agents told of them (`flags` included).
    pub attributes: Value,
    pub identities: Vec<IdentityView>,
    pub updates_stopped_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, Serialize)]
pub struct ContactPage {
    pub contacts: Vec<ContactSummary>,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

/// A conversation of the contact's, as their page lists it.
#[derive(Debug, Clone, Serialize)]
pub struct ContactConversation {
    pub id: i64,
    pub reference: String,
    pub inbox: String,
    pub channel: ChannelKind,
    pub subject: Option<String>,
    pub status: Status,
    pub priority: Priority,
    pub team: Option<String>,
    pub last_activity_at: Timestamp,
}

#[derive(Debug, Clone, Serialize)]
pub struct ContactDetail {
    #[serde(flatten)]
    pub contact: ContactSummary,
    /// Newest activity first; an agent sees the ones they may read.
    pub conversations: Vec<ContactConversation>,
    /// Other contacts with the same email address or phone number: likely the same
    /// person, for an agent to merge.
    pub possible_duplicates: Vec<i64>,
    /// Set on a contact merged into another: everything of it is there now.
    pub merged_into: Option<i64>,
}

/// Attachment bytes for download.
#[derive(Debug, Clone)]
pub struct AttachmentData {
    pub filename: String,
    pub content_type: String,
    pub data: Vec<u8>,
    /// Its conversation's team and assignee: who may download it.
    pub team: Option<String>,
    pub assignee_id: Option<i64>,
}

/// A row of the privacy audit trail: who exported or erased which contact, when, why,
/// and how much. Never the person's data.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PrivacyAuditEntry {
    pub id: i64,
    pub contact_id: i64,
    /// `export`, `erase` or `retention`.
    pub action: String,
    pub actor: Value,
    pub reason: Option<String>,
    pub details: Value,
    pub at: Timestamp,
}

/// A line of the admins' audit log: who (an agent, or `null` for the command line) did
/// what to which record, when; `details` holds the change, never a secret.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdminAuditEntry {
    pub id: i64,
    pub actor_id: Option<i64>,
    pub actor_name: Option<String>,
    /// `agent.created`, `agent.updated`, `agent.deactivated`, `agent.activated`,
    /// `token.issued`, `token.revoked`, `sign_in_link.issued`, `subscription.created`,
    /// `subscription.enabled`, `subscription.disabled`, `subscription.deleted`.
    pub action: String,
    pub target: Value,
    pub details: Value,
    pub at: Timestamp,
}

/// A note that mentions the agent, as their list of mentions shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MentionView {
    pub id: i64,
    pub conversation_id: i64,
    pub message_id: i64,
    /// `{id, name}` of who wrote the note.
    pub by: Value,
    /// The note's first 280 characters.
    pub excerpt: String,
    pub created_at: Timestamp,
    pub read_at: Option<Timestamp>,
}

/// One of an agent's API tokens as listed: never the token, which is shown once.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TokenView {
    pub id: i64,
    pub label: String,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

/// A conversation's opening as routing saw it: its first inbound message, the contact's
/// attributes, and what was decided then (`route replay`, [`crate::domain::replay`]).
#[derive(Debug, Clone, PartialEq)]
pub struct RoutedOpening {
    pub conversation_id: i64,
    pub inbox: String,
    pub channel: ChannelKind,
    pub subject: Option<String>,
    /// The first inbound message's text; `None` when there is none left (an erased
    /// contact's conversation), which is not replayed.
    pub text: Option<String>,
    /// The language routing saw (the `conversation.routed` event's), else the
    /// conversation's.
    pub language: Option<String>,
    /// The contact's attributes (`flags` and `value_tier` among them) as they are now:
    /// the store keeps no history of them.
    pub metadata: std::collections::BTreeMap<String, Value>,
    /// The decision recorded by `conversation.routed`; `None` when the conversation has
    /// none (opened some other way, or erased).
    pub routed: Option<RoutedDecision>,
    pub opened_at: i64,
}

/// What `conversation.routed` recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutedDecision {
    pub rule: Option<String>,
    pub team: String,
    pub priority: Priority,
    pub labels: Vec<String>,
}

/// The reads the API and the CLI make. Each answers from committed state; a detail reads
/// its conversation, messages and events in one read transaction, so they agree.
#[async_trait]
pub trait Queries: report_cache::ReportSource + Send + Sync + 'static {
    /// Answers when the database can serve a query.
    async fn ping(&self) -> StoreResult<()>;
    /// The active agent the token belongs to.
    async fn agent_by_token_hash(&self, token_hash: &[u8]) -> StoreResult<Option<Agent>>;
    /// An unexpired session of an active agent.
    async fn session(&self, token_hash: &[u8], now: i64) -> StoreResult<Option<SessionView>>;
    /// Open conversations the caller may see, counted by label (labels on none left out).
    async fn label_counts(&self, visible_to: &Visibility) -> StoreResult<Vec<(String, i64)>>;
    async fn queue_counts(&self, agent_id: i64, visible_to: &Visibility) -> StoreResult<QueueCounts>;
    /// What happened after `after`, oldest first, at most `limit` of each kind.
    async fn stream_after(&self, after: StreamPosition, limit: u32) -> StoreResult<Vec<StreamItem>>;
    /// Where the stream ends now.
    async fn stream_head(&self) -> StoreResult<StreamPosition>;
    async fn agents(&self) -> StoreResult<Vec<Agent>>;
    async fn agent(&self, id: i64) -> StoreResult<Agent>;
    /// Each active team's queue and members, counted.
    async fn team_counts(&self) -> StoreResult<Vec<TeamCounts>>;
    async fn conversations(
        &self,
        filter: &ConversationFilter,
        after: Option<Cursor>,
        limit: u32,
    ) -> StoreResult<ConversationPage>;
    async fn conversation(&self, id: i64) -> StoreResult<ConversationDetail>;
    /// Whose the conversation is (its team's key, its assignee): what access to it is
    /// judged on, without reading its messages.
    async fn conversation_owner(&self, id: i64) -> StoreResult<(Option<String>, Option<i64>)>;
    async fn message(&self, id: i64) -> StoreResult<MessageView>;
    async fn attachment(&self, id: i64) -> StoreResult<AttachmentData>;
    /// Deliveries newest first, of one status or all; `before`: the last id already seen.
    async fn deliveries(
        &self,
        status: Option<DeliveryStatus>,
        before: Option<i64>,
        limit: u32,
    ) -> StoreResult<DeliveryPage>;
    async fn delivery(&self, id: i64) -> StoreResult<DeliveryRecord>;
    async fn outbox_gauges(&self) -> StoreResult<OutboxGauges>;
    /// Each team's SLA warnings and breaches ever recorded, by team key; teams without
    /// any are absent. Walks an index of the SLA events only.
    async fn sla_event_counts(&self) -> StoreResult<Vec<SlaEventCounts>>;
    /// Every subscription not deleted (active or not), by id, with its backlog.
    async fn subscription_backlogs(&self) -> StoreResult<Vec<SubscriptionBacklog>>;
    async fn subscriptions(&self) -> StoreResult<Vec<Subscription>>;
    async fn subscription(&self, id: i64) -> StoreResult<Subscription>;
    async fn subscription_deliveries(&self, id: i64, limit: u32) -> StoreResult<Vec<SubscriptionDelivery>>;
    /// What the page for a CSAT token shows; a question asked before `asked_since` is
    /// closed. `NotFound` for an unknown token.
    async fn csat_page(&self, token: &str, asked_since: i64) -> StoreResult<CsatPage>;
    /// The privacy audit trail newest first, of one contact or all; `before`: the last id
    /// already seen.
    async fn privacy_audit(
        &self,
        contact_id: Option<i64>,
        before: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<PrivacyAuditEntry>>;
    /// The admins' audit log newest first, of one target agent or all; `before`: the last
    /// id already seen.
    async fn admin_audit(
        &self,
        agent_id: Option<i64>,
        before: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<AdminAuditEntry>>;
    /// The agent's mentions newest first, in conversations they may see; `before`: the
    /// last id already seen.
    async fn mentions(
        &self,
        agent_id: i64,
        visible_to: &Visibility,
        unread_only: bool,
        before: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<MentionView>>;
    async fn unread_mentions(&self, agent_id: i64, visible_to: &Visibility) -> StoreResult<i64>;
    /// The agent's API tokens, oldest first, revoked ones included.
    async fn agent_tokens(&self, agent_id: i64) -> StoreResult<Vec<TokenView>>;
    /// Newest first; `after`: the last id of the previous page.
    async fn contacts(&self, search: &ContactSearch, after: Option<i64>, limit: u32) -> StoreResult<ContactPage>;
    /// `NotFound` when there is none, or the caller may see none of its conversations.
    async fn contact(&self, id: i64, visible_to: &Visibility) -> StoreResult<ContactDetail>;
    async fn search(&self, request: &search::SearchRequest) -> StoreResult<search::SearchPage>;
    /// The personal saved replies of `agent_id` and those of the teams `teams` names, in
    /// no order ([`saved_replies::matching`] finds and orders them).
    async fn saved_replies(&self, agent_id: i64, teams: &TeamsSeen) -> StoreResult<Vec<SavedReplyView>>;
    /// `NotFound` when there is none; who may see it is the caller's to judge.
    async fn saved_reply(&self, id: i64) -> StoreResult<SavedReplyView>;
    /// Conversations opened at or after `since`, by id, those after `after` (the last id
    /// of the previous page), at most `limit`: a desk is read in pages, never whole.
    async fn routed_openings(&self, since: i64, after: Option<i64>, limit: u32) -> StoreResult<Vec<RoutedOpening>>;
}

/// Openings read per page by [`replay`].
pub const REPLAY_PAGE: u32 = 500;

/// Every conversation opened since `since` through `replay`, a page at a time, and its
/// report (`route replay`; stores nothing).
pub async fn replay(
    queries: &dyn Queries,
    since: i64,
    mut replay: crate::domain::replay::Replay<'_>,
) -> StoreResult<crate::domain::replay::ReplayReport> {
    let mut after = None;
    loop {
        let page = queries.routed_openings(since, after, REPLAY_PAGE).await?;
        for opening in &page {
            replay.add(opening);
        }
        match page.last() {
            Some(last) if page.len() == REPLAY_PAGE as usize => after = Some(last.conversation_id),
            _ => return Ok(replay.finish()),
        }
    }
}
