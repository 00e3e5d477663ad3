//! The values that cross the [`Tx`](super::Tx) boundary: what the rules read from a
//! backend and hand it to write. Plain data in the desk's vocabulary; nothing here names
//! a database type or an HTTP shape.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;
use switchboard_connector_core::{ChannelKind, DeliveryState, OutboundMessage, Receipt};

use crate::model::{ActorKind, DeliveryStatus, Direction, MessageKind, Priority, Role, Status, Timestamp};

/// A configured team, as the store is told about it at start.
#[derive(Debug, Clone)]
pub struct TeamSpec {
    pub key: String,
    pub name: String,
    pub tier: u8,
}

/// A configured inbox, as the store is told about it at start.
#[derive(Debug, Clone)]
pub struct InboxSpec {
    pub key: String,
    pub name: String,
    pub channel: ChannelKind,
}

/// An inbox with its database id, as ingest and the outbox need it.
#[derive(Debug, Clone)]
pub struct InboxRef {
    pub id: i64,
    pub key: String,
    pub name: String,
    pub channel: ChannelKind,
}

/// What syncing the configuration made sure exists: inbox keys to their rows.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub inboxes: HashMap<String, InboxRef>,
}

/// A team row: active teams only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamRow {
    pub id: i64,
    pub key: String,
    pub name: String,
}

/// Who an assignment or a lookup names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentSelector {
    Id(i64),
    Name(String),
}

/// An agent as the rules see them: who they are and where they belong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentRow {
    pub id: i64,
    pub name: String,
    pub role: Role,
    /// Their home team: the first of `team_ids`.
    pub team_id: Option<i64>,
    pub team: Option<String>,
    /// Every team they belong to, the home team first.
    pub teams: Vec<TeamRow>,
    /// The languages they read (lowercase tags), in the order given.
    pub languages: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct NewAgent {
    pub name: String,
    pub role: Role,
    /// The teams they belong to, their home team first; at least one.
    pub teams: Vec<String>,
    /// The hash of their first API token, stored in `agent_tokens` when `first_token`
    /// labels it. `agents.token_hash` keeps it either way (random bytes for an agent made
    /// without a token): the column is no longer read but SQLite cannot drop it.
    pub token_hash: Vec<u8>,
    /// The first token's label; `None`: the agent gets no token.
    pub first_token: Option<String>,
    /// `None`: the team's capacity.
    pub capacity: Option<u32>,
    pub available: bool,
    /// The languages they read (lowercase tags); assignment prefers them for
    /// conversations in those languages.
    pub languages: Vec<String>,
}

/// An available member of a team, with what they hold now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentLoad {
    pub id: i64,
    /// Their own limit; `None`: the team's.
    pub capacity: Option<i64>,
    /// Open conversations assigned to them.
    pub load: i64,
    pub last_assigned_at: Option<i64>,
    /// The languages they read (lowercase tags); empty when none were given.
    pub languages: Vec<String>,
}

/// A conversation in its team's queue, as assignment weighs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    pub id: i64,
    /// The conversation's language, when it has one.
    pub language: Option<String>,
    /// Since when it waits in this queue.
    pub queued_at: i64,
}

/// The contact behind an identity, with what we know of them.
#[derive(Debug, Clone, PartialEq)]
pub struct ContactRecord {
    pub contact_id: i64,
    pub identity_id: i64,
    pub name: Option<String>,
    pub email: Option<String>,
    pub language: Option<String>,
    pub metadata: BTreeMap<String, Value>,
    /// The channel said this identity cannot be reached (a blocked bot).
    pub unreachable: bool,
}

/// A contact as editing and merging need it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredContact {
    /// Its fields; `identity_id` is 0 (a contact has many) and `unreachable` false.
    pub record: ContactRecord,
    pub time_zone: Option<String>,
    pub updates_opted_out: bool,
    pub erased: bool,
    /// The contact it was merged into: this one is only a pointer now.
    pub merged_into: Option<i64>,
}

/// What moving one contact's identities and conversations to another moved.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MovedContact {
    pub identities: u64,
    /// The conversations that changed hands, oldest first.
    pub conversations: Vec<i64>,
}

/// Which identity a reachability change is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityRef<'a> {
    Id(i64),
    /// The sender named `external_id` in the inbox.
    External {
        inbox_id: i64,
        external_id: &'a str,
    },
    /// The identity replies of the conversation go to.
    OfConversation(i64),
}

/// A conversation as the rules need it to decide.
#[derive(Debug, Clone, PartialEq)]
pub struct Conversation {
    pub id: i64,
    pub inbox_id: i64,
    pub channel: ChannelKind,
    pub contact_id: i64,
    pub status: Status,
    pub priority: Priority,
    pub team_id: Option<i64>,
    pub team_key: Option<String>,
    pub tier: i64,
    pub assignee: Option<i64>,
    pub labels: Vec<String>,
    pub transfer_count: i64,
    pub first_response_at: Option<i64>,
    pub resolved_at: Option<i64>,
    pub sla_breached_at: Option<i64>,
    pub csat_requested_at: Option<i64>,
    pub csat_comment: Option<String>,
    pub csat_answered_at: Option<i64>,
    /// Since when the customer waits for an agent's answer (docs/REPORTS.md).
    pub awaiting_since: Option<i64>,
}

impl Conversation {
    /// A conversation just opened by its first message: nobody on it, nothing measured.
    pub fn opened(
        id: i64,
        inbox: &InboxRef,
        contact_id: i64,
        priority: Priority,
        team: Option<&TeamRow>,
    ) -> Conversation {
        Conversation {
            id,
            inbox_id: inbox.id,
            channel: inbox.channel,
            contact_id,
            status: Status::Open,
            priority,
            team_id: team.map(|team| team.id),
            team_key: team.map(|team| team.key.clone()),
            tier: 0,
            assignee: None,
            labels: Vec::new(),
            transfer_count: 0,
            first_response_at: None,
            resolved_at: None,
            sla_breached_at: None,
            csat_requested_at: None,
            csat_comment: None,
            csat_answered_at: None,
            awaiting_since: None,
        }
    }
}

/// A conversation a lookup found: enough to decide where a message goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationRef {
    pub id: i64,
    pub status: Status,
    /// Its thread key (for email, the normalized subject).
    pub topic: Option<String>,
}

/// The ways the rules look a conversation up; each finds at most one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConversationLookup<'a> {
    /// The contact's latest conversation in the inbox with this thread key, not closed.
    ThreadKey {
        contact_id: i64,
        inbox_id: i64,
        key: &'a str,
    },
    /// The contact's most recently active open, pending or snoozed conversation in the
    /// inbox that has no thread key.
    OpenUnthreaded { contact_id: i64, inbox_id: i64 },
    /// The contact's most recently active conversation in the inbox that is not closed.
    LatestNotClosed { contact_id: i64, inbox_id: i64 },
    /// The contact's most recently active conversation in the inbox that is open,
    /// pending or snoozed, or resolved since `resolved_since`.
    LatestLive {
        contact_id: i64,
        inbox_id: i64,
        resolved_since: i64,
    },
    /// Conversation `id`, if it is the contact's in the inbox and not closed.
    Own { id: i64, contact_id: i64, inbox_id: i64 },
    /// The contact's most recently active unresolved conversation on `topic`, active
    /// since `since`.
    RecentTopic {
        contact_id: i64,
        inbox_id: i64,
        topic: &'a str,
        since: i64,
    },
    /// Conversation `id` if its satisfaction question was asked since `since`.
    AskedSince { id: i64, since: i64 },
    /// The contact's resolved, unthreaded conversation in the inbox whose question was
    /// asked last, since `since`.
    LatestAsked { contact_id: i64, inbox_id: i64, since: i64 },
    /// The conversation whose satisfaction question carries this token.
    CsatToken(&'a str),
}

/// A new conversation, routed.
#[derive(Debug, Clone)]
pub struct NewConversation<'a> {
    pub inbox_id: i64,
    pub contact_id: i64,
    pub identity_id: i64,
    pub thread_key: Option<&'a str>,
    pub subject: Option<&'a str>,
    pub priority: Priority,
    pub team_id: Option<i64>,
    pub tier: i64,
    pub labels: &'a [String],
    pub language: Option<&'a str>,
    pub now: i64,
}

/// A change to a conversation's row; `None` leaves a column as it is. A backend writes
/// only the columns given: an index holding a column the statement sets is rewritten
/// whether the value changed or not.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConversationPatch {
    pub status: Option<Status>,
    pub priority: Option<Priority>,
    pub assignee: Option<Option<i64>>,
    pub team_id: Option<Option<i64>>,
    pub tier: Option<i64>,
    pub transfer_count: Option<i64>,
    pub labels: Option<Vec<String>>,
    pub resolved_at: Option<Option<i64>>,
    pub first_response_at: Option<i64>,
    pub queued_at: Option<i64>,
    pub escalation: Option<Value>,
    pub sla_breached_at: Option<i64>,
    pub updated_at: Option<i64>,
    pub last_activity_at: Option<i64>,
    pub last_message_id: Option<i64>,
    /// The identity replies go to: the one that wrote last (one person may write to an
    /// inbox under two ids of an app, linked or merged).
    pub identity_id: Option<i64>,
    /// The language, unless the conversation has one already.
    pub language_if_unset: Option<String>,
    /// Since when the customer waits: set by a reopening, cleared by an answer.
    pub awaiting_since: Option<Option<i64>>,
    /// A customer's message starts a wait unless one is running.
    pub awaiting_since_if_unset: Option<i64>,
    pub csat: Option<CsatPatch>,
}

/// The satisfaction columns of a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CsatPatch {
    /// A new question: its token, when it was asked; any earlier answer cleared.
    Asked { token: String, at: i64 },
    Answered {
        score: u8,
        comment: Option<String>,
        at: i64,
    },
    /// An unanswered question no longer stands.
    Withdrawn,
}

/// A message row to insert.
#[derive(Debug, Clone)]
pub struct NewMessage<'a> {
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

/// A stored message, found by its channel id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRef {
    pub id: i64,
    pub conversation_id: i64,
    pub direction: Direction,
}

/// An inbound message's text and details, for an edit to replace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageText {
    pub text: String,
    pub metadata: Option<String>,
}

/// A file to keep with a message.
#[derive(Debug, Clone, Copy)]
pub struct NewAttachment<'a> {
    pub filename: &'a str,
    pub content_type: &'a str,
    pub data: &'a [u8],
}

/// An event row: a change of a conversation's state, by whom, with its data.
#[derive(Debug, Clone)]
pub struct EventRow<'a> {
    pub conversation_id: i64,
    pub kind: &'a str,
    pub actor_kind: ActorKind,
    pub actor_id: Option<i64>,
    pub data: &'a Value,
}

/// What a status update needs to know of its conversation.
#[derive(Debug, Clone, PartialEq)]
pub struct UpdateTarget {
    pub id: i64,
    pub inbox_id: i64,
    pub inbox_key: String,
    pub inbox_name: String,
    pub channel: ChannelKind,
    pub team_key: Option<String>,
    pub team_name: Option<String>,
    pub status: Status,
    pub priority: Priority,
    pub subject: Option<String>,
    pub agent: Option<String>,
    pub contact_name: Option<String>,
    pub contact_email: Option<String>,
    pub language: Option<String>,
    /// The contact's attributes (the customer's zone is among them when their channel
    /// said).
    pub contact_metadata: Value,
    pub opted_out: bool,
}

/// What a claim may take: destinations to leave out, and those with room for fewer than
/// `cap` sends (others get `cap`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ClaimPlan {
    pub held: Vec<i64>,
    pub budgets: BTreeMap<i64, u32>,
    /// The room of every destination not in `budgets`.
    pub cap: u32,
}

/// An outbound message claimed for sending.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub outbox_id: i64,
    pub inbox_id: i64,
    /// Counting this one.
    pub attempts: u32,
    pub expires_at: i64,
    pub message: OutboundMessage,
}

/// What became of one attempt.
#[derive(Debug, Clone)]
pub enum DeliveryResult {
    Sent(Receipt),
    RetryAt {
        at: i64,
        error: String,
    },
    Failed {
        error: String,
    },
    /// Failed for good because the recipient is gone from the channel: the contact's
    /// identity in this inbox is marked unreachable too.
    Unreachable {
        error: String,
    },
    /// Not sent, and nothing owed: the channel may not carry it now (a status update
    /// outside the customer service window with no approved template).
    Skipped {
        reason: String,
    },
}

/// How a delivery in flight is settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement<'a> {
    Sent {
        receipt: &'a str,
        /// The channel's id for the sent message, which its delivery reports name.
        external_id: Option<&'a str>,
    },
    /// Not sent and not owed (see [`DeliveryResult::Skipped`]).
    Skipped {
        reason: &'a str,
    },
    RetryAt {
        at: i64,
        error: &'a str,
    },
    Failed {
        error: &'a str,
    },
    /// Claimed but never sent: back in the queue, due no earlier than `not_before`, the
    /// claim's attempt not counted.
    Unclaimed {
        not_before: i64,
    },
}

/// An outbox row that an attempt settled, or an agent looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboxRow {
    pub id: i64,
    pub status: DeliveryStatus,
    pub conversation_id: i64,
    pub message_id: i64,
    pub attempts: i64,
}

/// What an outbound message of ours that a report names is, in its inbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundRef {
    pub conversation_id: i64,
    pub outbox_id: Option<i64>,
    pub status: Option<DeliveryStatus>,
}

/// An integration told of the desk's events (`/api/v1/subscriptions`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Subscription {
    pub id: i64,
    pub url: String,
    pub events: Vec<String>,
    /// Shown once, when it is created; listings leave it out.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub secret: String,
    pub description: Option<String>,
    pub active: bool,
    pub disabled_reason: Option<String>,
    pub disabled_at: Option<crate::model::Timestamp>,
    pub created_at: crate::model::Timestamp,
    pub updated_at: crate::model::Timestamp,
}

pub struct NewSubscription {
    pub url: String,
    pub events: Vec<String>,
    pub secret: String,
    pub description: Option<String>,
    pub created_by: i64,
}

/// An active subscription's id and the event types it asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscriber {
    pub id: i64,
    pub events: Vec<String>,
}

/// One event on its way to one subscription, claimed for sending.
#[derive(Debug, Clone)]
pub struct EventDelivery {
    pub id: i64,
    pub subscription_id: i64,
    pub event_type: String,
    pub payload: Vec<u8>,
    /// Counting this one.
    pub attempts: u32,
    pub created_at: i64,
    pub url: String,
    pub secret: String,
}

/// Which of a subscription's waiting events to drop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waiting {
    /// Everything not sent yet (the subscription is gone).
    All,
    /// Queued events but a test `ping`, which was asked for while disabled.
    ExceptPings,
}

/// Everything stored about one contact, as their export hands it over
/// (`domain::privacy`): what the person told us, what we answered and noted, and what
/// happened to their conversations.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ContactExport {
    pub contact: ContactDump,
    pub identities: Vec<IdentityDump>,
    pub conversations: Vec<ConversationDump>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ContactDump {
    pub id: i64,
    pub name: Option<String>,
    pub email: Option<String>,
    pub language: Option<String>,
    pub value_tier: Option<String>,
    pub flags: Value,
    pub metadata: Value,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub updates_opted_out_at: Option<Timestamp>,
    pub erased_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct IdentityDump {
    pub id: i64,
    pub inbox: String,
    pub channel: String,
    pub external_id: String,
    pub created_at: Timestamp,
    pub unreachable_reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ConversationDump {
    pub id: i64,
    pub inbox: String,
    pub channel: String,
    pub subject: Option<String>,
    pub thread_key: Option<String>,
    pub status: String,
    pub priority: String,
    pub team: Option<String>,
    pub labels: Value,
    pub language: Option<String>,
    pub csat_score: Option<i64>,
    pub csat_comment: Option<String>,
    pub created_at: Timestamp,
    pub resolved_at: Option<Timestamp>,
    pub erased_at: Option<Timestamp>,
    pub messages: Vec<MessageDump>,
    pub events: Vec<EventDump>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MessageDump {
    pub id: i64,
    pub direction: String,
    pub kind: String,
    pub author_kind: String,
    pub author_id: Option<i64>,
    pub text: String,
    pub html: Option<String>,
    pub external_id: Option<String>,
    pub language: Option<String>,
    pub metadata: Option<Value>,
    pub created_at: Timestamp,
    pub attachments: Vec<AttachmentDump>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AttachmentDump {
    pub id: i64,
    pub filename: String,
    pub content_type: String,
    pub size: i64,
    pub sha256: String,
    /// The bytes go into the archive beside the JSON, not into it.
    #[serde(skip)]
    pub data: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EventDump {
    pub id: i64,
    pub kind: String,
    pub actor_kind: String,
    pub actor_id: Option<i64>,
    pub data: Value,
    pub created_at: Timestamp,
}

/// A stored event's data, for redaction.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub id: i64,
    pub kind: String,
    pub data: Value,
}

/// What erasing one conversation's content removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ErasedContent {
    /// Messages whose text, HTML, channel id and details were removed.
    pub messages: u64,
    pub attachments: u64,
    /// Outbound messages still queued (or in flight) that will not be sent.
    pub queued_dropped: u64,
    /// Event deliveries to subscribers (sent or not) whose payloads carried the content.
    pub event_deliveries_dropped: u64,
}

impl ErasedContent {
    pub fn add(&mut self, other: ErasedContent) {
        self.messages += other.messages;
        self.attachments += other.attachments;
        self.queued_dropped += other.queued_dropped;
        self.event_deliveries_dropped += other.event_deliveries_dropped;
    }
}

/// A row of the privacy audit trail: who exported or erased which contact, when and
/// why. Never the person's data: the contact by id, counts in `details`.
#[derive(Debug, Clone)]
pub struct PrivacyRecord<'a> {
    pub contact_id: i64,
    /// `export`, `erase` or `retention`.
    pub action: &'a str,
    pub actor_kind: ActorKind,
    pub actor_id: Option<i64>,
    pub reason: Option<&'a str>,
    pub details: &'a Value,
}

/// What signing an agent in needs to know about them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub agent_id: i64,
    pub active: bool,
    /// argon2id in the PHC string format; `None` until they follow their link.
    pub password_hash: Option<String>,
    /// Failed sign-ins in a row.
    pub failed_sign_ins: i64,
    pub locked_until: Option<i64>,
}

/// A one-time link to set a password, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInLink {
    pub agent_id: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSession<'a> {
    pub token_hash: &'a [u8],
    pub agent_id: i64,
    pub csrf_token: &'a str,
    pub expires_at: i64,
}

/// Work claimed by a daemon: who holds it, and until when unless renewed. A daemon
/// renews what it holds while it lives; what a dead one held is taken over once its
/// lease has run out.
#[derive(Debug, Clone, Copy)]
pub struct Lease<'a> {
    /// The daemon's name for this run (`work::dispatch::holder_name`).
    pub holder: &'a str,
    pub until: i64,
}

/// One line of the admins' audit log: who did what to which record. `details` holds the
/// change, never a secret.
#[derive(Debug, Clone)]
pub struct AuditEntry<'a> {
    pub actor_id: Option<i64>,
    pub action: &'a str,
    pub target_kind: &'a str,
    pub target_id: Option<i64>,
    pub details: serde_json::Value,
}

/// Whose a saved reply is: a team's (by key), or one agent's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyScope {
    Team(String),
    Personal(i64),
}

/// A saved reply as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedReply {
    /// Ignored on insert.
    pub id: i64,
    pub scope: ReplyScope,
    /// Unique within its scope.
    pub shortcut: String,
    pub title: String,
    /// Language tag → text with placeholders.
    pub bodies: BTreeMap<String, String>,
    /// A key of `bodies`: the text used when neither the contact's language nor the
    /// desk's has one.
    pub fallback: String,
    pub created_by: i64,
    pub created_at: i64,
    pub updated_by: i64,
    pub updated_at: i64,
}

/// An agent's public reply to a customer who was waiting since `waited_from`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewResponse {
    pub message_id: i64,
    pub conversation_id: i64,
    pub waited_from: i64,
    pub answered_at: i64,
    /// The conversation's first response (else a next one).
    pub first: bool,
    /// What the response clock said when one ran: `Some(true)` breached, `Some(false)` met in time.
    pub sla_breached: Option<bool>,
}

impl NewResponse {
    /// The `responses.sla` column.
    pub fn sla(&self) -> Option<&'static str> {
        self.sla_breached
            .map(|breached| if breached { "breached" } else { "met" })
    }
}

/// A delivery report's state as a number that only grows (sent, delivered, read, then
/// failed): a report arriving late never moves a message back.
pub fn report_rank(state: DeliveryState) -> i64 {
    match state {
        DeliveryState::Sent => 1,
        DeliveryState::Delivered => 2,
        DeliveryState::Read => 3,
        DeliveryState::Failed => 4,
    }
}
