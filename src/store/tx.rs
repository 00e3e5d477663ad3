//! [`Tx`]: the small operations the desk's rules are written against, all inside one
//! unit of work. A backend implements them over its transaction; the rules (in
//! `domain/`) decide, these only find, load and save. Each operation is one statement or
//! two on SQLite, so the rules pay no more than before they moved above the store.
//!
//! Grouped by what they touch; [`Tx`] is all of them.

use switchboard_connector_core::{ChannelKind, DeliveryReport};

use super::StoreResult;
use super::records::*;
use crate::model::Role;
use crate::model::clock::{ClockKind, SlaClock};

/// Teams, inboxes, agents and their queues.
pub trait CatalogTx {
    /// Marks every team and inbox inactive; the upserts that follow make the configured
    /// ones active again (removed ones stay, because conversations refer to them).
    fn deactivate_catalog(&mut self) -> StoreResult<()>;
    fn upsert_team(&mut self, team: &TeamSpec, now: i64) -> StoreResult<()>;
    /// Inserts or renames the inbox; returns its id and the channel it was created with.
    fn upsert_inbox(&mut self, inbox: &InboxSpec, now: i64) -> StoreResult<(i64, ChannelKind)>;
    /// An active team.
    fn team(&mut self, key: &str) -> StoreResult<Option<TeamRow>>;
    fn agent(&mut self, who: &AgentSelector) -> StoreResult<Option<AgentRow>>;
    /// A new agent in `team_ids` (home team first); returns their id.
    fn insert_agent(&mut self, agent: &NewAgent, team_ids: &[i64], now: i64) -> StoreResult<i64>;
    /// Replaces the agent's teams; the first becomes their home team.
    fn set_agent_teams(&mut self, agent_id: i64, team_ids: &[i64]) -> StoreResult<()>;
    fn set_agent_role(&mut self, agent_id: i64, role: Role) -> StoreResult<()>;
    fn set_agent_available(&mut self, agent_id: i64, available: bool) -> StoreResult<()>;
    /// Replaces the languages the agent reads.
    fn set_agent_languages(&mut self, agent_id: i64, languages: &[String]) -> StoreResult<()>;
    /// When round-robin last gave the agent a conversation.
    fn note_assignment(&mut self, agent_id: i64, now: i64) -> StoreResult<()>;
    /// The team's members marked available, with their load.
    fn available_agents(&mut self, team_id: i64) -> StoreResult<Vec<AgentLoad>>;
    /// Names of the team's supervisors and admins, sorted.
    fn supervisors(&mut self, team_id: Option<i64>) -> StoreResult<Vec<String>>;
}

/// People at the console: passwords, one-time links, sessions, deactivation.
pub trait PeopleTx {
    fn credentials(&mut self, who: &AgentSelector) -> StoreResult<Option<Credentials>>;
    fn set_sign_in_failures(&mut self, agent_id: i64, failed: i64, locked_until: Option<i64>) -> StoreResult<()>;
    fn set_password_hash(&mut self, agent_id: i64, hash: &str) -> StoreResult<()>;
    /// Says whether that changed anything.
    fn set_agent_active(&mut self, agent_id: i64, active: bool) -> StoreResult<bool>;
    /// Stores a new link and drops the agent's unused ones.
    fn replace_sign_in_link(&mut self, agent_id: i64, token_hash: &[u8], expires_at: i64, now: i64) -> StoreResult<()>;
    fn sign_in_link(&mut self, token_hash: &[u8]) -> StoreResult<Option<SignInLink>>;
    fn use_sign_in_link(&mut self, token_hash: &[u8], now: i64) -> StoreResult<()>;
    fn insert_session(&mut self, session: &NewSession<'_>, now: i64) -> StoreResult<()>;
    /// Says whether there was such a session.
    fn delete_session(&mut self, token_hash: &[u8]) -> StoreResult<bool>;
    /// Ends every session of the agent; returns how many there were.
    fn delete_agent_sessions(&mut self, agent_id: i64) -> StoreResult<u64>;
    /// Forgets sessions and links past their expiry; returns how many.
    fn delete_expired_sessions(&mut self, now: i64) -> StoreResult<u64>;
    /// A new API token for the agent; returns its id.
    fn insert_agent_token(&mut self, agent_id: i64, token_hash: &[u8], label: &str, now: i64) -> StoreResult<i64>;
    /// Revokes one of the agent's tokens; says whether it was theirs and still valid.
    fn revoke_agent_token(&mut self, agent_id: i64, token_id: i64, now: i64) -> StoreResult<bool>;
    /// The open conversations assigned to the agent, oldest first.
    fn open_assigned(&mut self, agent_id: i64) -> StoreResult<Vec<i64>>;
    fn insert_admin_audit(&mut self, entry: &AuditEntry<'_>, now: i64) -> StoreResult<i64>;
    /// `agent_id` was mentioned by `by` in the note `message_id`.
    fn insert_mention(
        &mut self,
        message_id: i64,
        conversation_id: i64,
        agent_id: i64,
        by: i64,
        now: i64,
    ) -> StoreResult<i64>;
    /// Marks the agent's unread mentions read: those of `ids`, or all when `None`;
    /// returns how many.
    fn mark_mentions_read(&mut self, agent_id: i64, ids: Option<&[i64]>, now: i64) -> StoreResult<u64>;
}

/// Contacts and their channel identities.
pub trait ContactTx {
    fn identity(&mut self, inbox_id: i64, external_id: &str) -> StoreResult<Option<ContactRecord>>;
    /// The contact of the oldest identity with this id on this channel, in any inbox.
    fn contact_of_channel_identity(&mut self, channel: ChannelKind, external_id: &str) -> StoreResult<Option<i64>>;
    /// Contacts (not merged away, not erased) with this email address (case aside) or
    /// this phone number, oldest first, at most two: enough to tell one from several.
    fn contacts_with_address(&mut self, email: Option<&str>, phone: Option<&str>) -> StoreResult<Vec<i64>>;
    /// A new contact from `record` (its ids are ignored); returns the contact id.
    fn insert_contact(&mut self, record: &ContactRecord, now: i64) -> StoreResult<i64>;
    fn insert_identity(&mut self, contact_id: i64, inbox: &InboxRef, external_id: &str, now: i64) -> StoreResult<i64>;
    /// Saves name, email, language and attributes.
    fn update_contact(&mut self, record: &ContactRecord, now: i64) -> StoreResult<()>;
    /// Marks an identity unreachable with the reason, or reachable (`None`); says
    /// whether such an identity exists.
    fn set_reachability(&mut self, identity: IdentityRef<'_>, reason: Option<&str>, now: i64) -> StoreResult<bool>;
    /// Stops or resumes automated updates; says whether that changed anything.
    fn set_updates_opt_out(&mut self, contact_id: i64, opted_out: bool, now: i64) -> StoreResult<bool>;
    fn contact(&mut self, id: i64) -> StoreResult<Option<StoredContact>>;
    fn set_contact_time_zone(&mut self, id: i64, time_zone: Option<&str>, now: i64) -> StoreResult<()>;
    /// Gives `into` the identities and conversations of `from` (and the authorship of
    /// the messages and events `from` made in them), and leaves `from` an empty record
    /// pointing at `into`, as do contacts merged into `from` before.
    fn move_contact(&mut self, from: i64, into: i64, now: i64) -> StoreResult<MovedContact>;
}

/// Conversations and what hangs on them: queues, timers, update records.
pub trait ConversationTx {
    fn conversation(&mut self, id: i64) -> StoreResult<Option<Conversation>>;
    fn find_conversation(&mut self, lookup: ConversationLookup<'_>) -> StoreResult<Option<ConversationRef>>;
    fn insert_conversation(&mut self, new: &NewConversation<'_>) -> StoreResult<i64>;
    fn update_conversation(&mut self, id: i64, patch: &ConversationPatch) -> StoreResult<()>;
    /// The head of the team's queue, at most `limit`: its open, unassigned
    /// conversations, most urgent and then longest waiting first.
    fn waiting(&mut self, team_id: i64, limit: u32) -> StoreResult<Vec<Queued>>;
    /// Who held the contact's latest conversation other than `except` that had someone.
    fn previous_assignee(&mut self, contact_id: i64, except: i64) -> StoreResult<Option<i64>>;
    fn update_target(&mut self, id: i64) -> StoreResult<Option<UpdateTarget>>;
    /// When an update of `event` last went to the conversation.
    fn update_sent_at(&mut self, conversation_id: i64, event: &str) -> StoreResult<Option<i64>>;
    fn note_update_sent(&mut self, conversation_id: i64, event: &str, now: i64) -> StoreResult<()>;
    /// Sets (or moves) a follow-up timer of the conversation.
    fn set_timer(&mut self, conversation_id: i64, kind: &str, at: i64) -> StoreResult<()>;
    /// Drops the conversation's timer of `kind`, or all its timers.
    fn clear_timers(&mut self, conversation_id: i64, kind: Option<&str>) -> StoreResult<()>;
    /// Timers due by `now`, earliest first: `(conversation, kind)`.
    fn due_timers(&mut self, now: i64, limit: u32) -> StoreResult<Vec<(i64, String)>>;
}

/// Messages, their files, and the events of a conversation.
pub trait MessageTx {
    fn message_by_external_id(&mut self, inbox_id: i64, external_id: &str) -> StoreResult<Option<MessageRef>>;
    fn message_text(&mut self, id: i64) -> StoreResult<Option<MessageText>>;
    fn insert_message(&mut self, message: &NewMessage<'_>, now: i64) -> StoreResult<i64>;
    fn replace_message_text(&mut self, id: i64, text: &str, metadata: &str) -> StoreResult<()>;
    /// Stores the bytes once per content hash, and the attachment for the message.
    fn insert_attachment(&mut self, message_id: i64, file: NewAttachment<'_>, now: i64) -> StoreResult<()>;
    /// Our outbound message `message_id` in the inbox, and its delivery.
    fn outbound_message(&mut self, message_id: i64, inbox_id: i64) -> StoreResult<Option<OutboundRef>>;
    /// The text of the conversation's latest inbound message.
    fn last_inbound_text(&mut self, conversation_id: i64) -> StoreResult<Option<String>>;
    fn insert_event(&mut self, event: &EventRow<'_>, now: i64) -> StoreResult<()>;
    /// An agent's reply answered a waiting customer (the reports' response times).
    fn insert_response(&mut self, response: &NewResponse) -> StoreResult<()>;
}

/// SLA clocks.
pub trait ClockTx {
    fn clocks(&mut self, conversation_id: i64) -> StoreResult<Vec<SlaClock>>;
    /// Inserts or replaces the clock of its kind, with when the scheduler must look.
    fn save_clock(&mut self, conversation_id: i64, clock: &SlaClock) -> StoreResult<()>;
    /// Clocks whose warning or breach is due by `now`, earliest first.
    fn due_clocks(&mut self, now: i64, limit: u32) -> StoreResult<Vec<(i64, ClockKind)>>;
}

/// The outbox: messages on their way out, claimed under a lease.
pub trait OutboxTx {
    fn insert_outbox(
        &mut self,
        message_id: i64,
        conversation_id: i64,
        inbox_id: i64,
        now: i64,
        expires_at: i64,
    ) -> StoreResult<()>;
    /// Claims up to `limit` due rows, oldest first, at most one per conversation at a
    /// time (a conversation's messages leave in order), within the plan's room per
    /// inbox; each under `lease`.
    fn claim_deliveries(
        &mut self,
        now: i64,
        limit: u32,
        lease: Lease<'_>,
        plan: &ClaimPlan,
    ) -> StoreResult<Vec<Delivery>>;
    /// Settles a row still in flight; `None` when it was settled meanwhile.
    fn settle_delivery(&mut self, id: i64, settlement: Settlement<'_>, now: i64) -> StoreResult<Option<OutboxRow>>;
    /// Fails a row whatever its state but failed (a bounce's verdict).
    fn fail_delivery(&mut self, id: i64, error: &str, now: i64) -> StoreResult<()>;
    /// When the customer last wrote in the conversation (a channel's reply window runs
    /// from then); `None` when they never did.
    fn last_customer_message_at(&mut self, conversation_id: i64) -> StoreResult<Option<i64>>;
    /// Keeps a channel's report on a message we sent, moving its state forward only;
    /// `true` when the state advanced. The report may name a message whose send is not
    /// recorded yet: it waits here for the outbox row that will carry its id.
    fn record_delivery_report(&mut self, inbox_id: i64, report: &DeliveryReport, now: i64) -> StoreResult<bool>;
    /// Keeps how many parts of row `id`'s message the channel took: its next attempt
    /// starts after them.
    fn set_parts_sent(&mut self, id: i64, parts_sent: u32) -> StoreResult<()>;
    /// Forgets reports that no recorded send carries and that have not changed since
    /// `before`: a message another tool sent from the same number, or one erased since.
    /// Returns how many went.
    fn prune_delivery_reports(&mut self, before: i64) -> StoreResult<u64>;
    /// The channel's failure report on outbox row `outbox_id`, found by the id its send
    /// recorded: `Some(error)` when a `failed` report came before the send's own record
    /// (the report's error, `None` when it gave none); `None` when there is no such report.
    fn reported_failure(&mut self, outbox_id: i64) -> StoreResult<Option<Option<String>>>;
    /// Fails the sent row of `inbox_id` the channel knows as `external_id` (a report
    /// that the message did not arrive); `None` when there is no such sent row.
    fn fail_sent_delivery(
        &mut self,
        inbox_id: i64,
        external_id: &str,
        error: &str,
        now: i64,
    ) -> StoreResult<Option<OutboxRow>>;
    /// Keeps the channel's id of a sent message, unless some message holds it already.
    fn set_sent_message_id(&mut self, outbox_id: i64, external_id: &str) -> StoreResult<()>;
    fn delivery(&mut self, id: i64) -> StoreResult<Option<OutboxRow>>;
    /// The row of `inbox_id` whose send the channel knows as `external_id`, if recorded.
    fn delivery_by_channel_id(&mut self, inbox_id: i64, external_id: &str) -> StoreResult<Option<OutboxRow>>;
    /// Due now again, attempts from zero, a new expiry.
    fn reschedule_delivery(&mut self, id: i64, now: i64, expires_at: i64) -> StoreResult<()>;
    /// When the first queued row falls due after `now`. Rows due already were claimed,
    /// or wait for something that wakes the dispatcher (an earlier message of their
    /// conversation finishing, their destination's room or pause).
    fn next_delivery_after(&mut self, now: i64) -> StoreResult<Option<i64>>;
    /// Moves the inbox's queued rows to `until` at the earliest.
    fn defer_deliveries(&mut self, inbox_id: i64, until: i64, now: i64) -> StoreResult<u64>;
    /// Puts back in the queue the rows in flight whose lease ran out before
    /// `expired_before`: their holder died. `i64::MAX` releases every row in flight (a
    /// daemon alone on its store, at start).
    fn release_deliveries(&mut self, expired_before: i64, now: i64) -> StoreResult<u64>;
    /// Extends every lease on rows in flight that `lease.holder` holds to `lease.until`.
    fn renew_deliveries(&mut self, lease: Lease<'_>) -> StoreResult<u64>;
    /// Where a connector stands in its source.
    fn set_channel_cursor(&mut self, inbox_id: i64, name: &str, value: &str, now: i64) -> StoreResult<()>;
}

/// Event subscriptions and their deliveries.
pub trait SubscriptionTx {
    fn subscribers(&mut self) -> StoreResult<Vec<Subscriber>>;
    fn queue_event(
        &mut self,
        subscription_id: i64,
        conversation_id: Option<i64>,
        event_type: &str,
        payload: &str,
        now: i64,
    ) -> StoreResult<i64>;
    fn insert_subscription(&mut self, new: &NewSubscription, now: i64) -> StoreResult<i64>;
    /// A subscription not deleted.
    fn subscription(&mut self, id: i64) -> StoreResult<Option<Subscription>>;
    fn delete_subscription(&mut self, id: i64, now: i64) -> StoreResult<()>;
    /// Enables, or disables with the reason.
    fn set_subscription_active(&mut self, id: i64, active: bool, reason: Option<&str>, now: i64) -> StoreResult<()>;
    /// Disables an active subscription with the reason; says whether it was active.
    fn disable_subscription(&mut self, id: i64, reason: &str, now: i64) -> StoreResult<bool>;
    /// Fails the subscription's waiting events with `error`.
    fn drop_waiting_events(&mut self, subscription_id: i64, which: Waiting, error: &str, now: i64) -> StoreResult<()>;
    fn claim_events(&mut self, now: i64, limit: u32, lease: Lease<'_>, held: &[i64])
    -> StoreResult<Vec<EventDelivery>>;
    /// Settles a delivery still in flight; returns its subscription.
    fn settle_event(&mut self, id: i64, settlement: Settlement<'_>, now: i64) -> StoreResult<Option<i64>>;
    fn event_subscription(&mut self, id: i64) -> StoreResult<Option<i64>>;
    fn defer_events(&mut self, subscription_id: i64, until: i64, now: i64) -> StoreResult<()>;
    /// [`OutboxTx::next_delivery_after`] for event deliveries.
    fn next_event_after(&mut self, now: i64) -> StoreResult<Option<i64>>;
    /// [`OutboxTx::release_deliveries`] for event deliveries.
    fn release_events(&mut self, expired_before: i64, now: i64) -> StoreResult<u64>;
    /// [`OutboxTx::renew_deliveries`] for event deliveries.
    fn renew_events(&mut self, lease: Lease<'_>) -> StoreResult<u64>;
}

/// A person's data: handed over whole, or erased while their conversations stay counted.
pub trait PrivacyTx {
    /// Everything stored about the contact, attachments with their bytes; `None`: no
    /// such contact.
    fn contact_export(&mut self, contact_id: i64) -> StoreResult<Option<ContactExport>>;
    /// `None`: no such contact; `Some(None)`: not erased; `Some(Some(at))`: erased then.
    fn contact_erased_at(&mut self, contact_id: i64) -> StoreResult<Option<Option<i64>>>;
    /// The contact's conversations, oldest first: `(id, erased)`.
    fn contact_conversations(&mut self, contact_id: i64) -> StoreResult<Vec<(i64, bool)>>;
    fn conversation_events(&mut self, conversation_id: i64) -> StoreResult<Vec<StoredEvent>>;
    fn set_event_data(&mut self, event_id: i64, data: &serde_json::Value) -> StoreResult<()>;
    /// Takes the person's content out of a conversation and keeps its shell (status,
    /// team, priority, times, clocks, CSAT score): messages' text, HTML, channel ids
    /// and details emptied; attachments removed (a file's bytes when no other message
    /// holds them); its outbox rows and event deliveries dropped; subject, thread key,
    /// CSAT comment and escalation summary cleared; follow-ups dropped, clocks stopped.
    /// Events' data is the rules' to redact ([`PrivacyTx::set_event_data`]).
    fn erase_conversation_content(&mut self, conversation_id: i64, now: i64) -> StoreResult<ErasedContent>;
    /// Blanks the contact (name, email, tier, flags, attributes), opts them out of
    /// automated updates (nothing is sent to nobody), and replaces each identity's
    /// channel id by `erased:<identity id>`, so no channel finds the person here again;
    /// returns how many identities there were.
    fn erase_contact_record(&mut self, contact_id: i64, now: i64) -> StoreResult<u64>;
    fn insert_privacy_record(&mut self, record: &PrivacyRecord<'_>, now: i64) -> StoreResult<i64>;
    /// Resolved or closed conversations not erased whose end (resolution, else last
    /// change) is before `before`, oldest first: `(conversation, contact)`.
    fn retention_due(&mut self, before: i64, limit: u32) -> StoreResult<Vec<(i64, i64)>>;
}

/// Named leases: work one daemon at a time does (a mailbox's reader).
pub trait LeaseTx {
    /// Takes the lease `name` for `holder` until `until`, or extends it, unless another
    /// holder has it past `now`; says whether `holder` has it now.
    fn take_lease(&mut self, name: &str, holder: &str, now: i64, until: i64) -> StoreResult<bool>;
    /// Gives the lease up, if `holder` has it, so that another may take it at once.
    fn drop_lease(&mut self, name: &str, holder: &str) -> StoreResult<()>;
    /// Forgets every lease: for a daemon alone on its store, whose previous run left them.
    fn clear_leases(&mut self) -> StoreResult<u64>;
}

/// Saved replies of teams and agents.
pub trait SavedReplyTx {
    fn saved_reply(&mut self, id: i64) -> StoreResult<Option<SavedReply>>;
    /// The saved reply of `scope` with this shortcut.
    fn saved_reply_by_shortcut(&mut self, scope: &ReplyScope, shortcut: &str) -> StoreResult<Option<i64>>;
    /// Stores a new one (its team must exist); returns its id.
    fn insert_saved_reply(&mut self, reply: &SavedReply) -> StoreResult<i64>;
    /// Saves its shortcut, title, bodies, fallback, and who changed it when; the scope
    /// and the creation stay.
    fn update_saved_reply(&mut self, reply: &SavedReply) -> StoreResult<()>;
    /// Says whether there was such a reply.
    fn delete_saved_reply(&mut self, id: i64) -> StoreResult<bool>;
}

/// One unit of work: everything the rules do to the store, applied whole or not at all.
pub trait Tx:
    CatalogTx
    + PeopleTx
    + ContactTx
    + ConversationTx
    + MessageTx
    + ClockTx
    + OutboxTx
    + SubscriptionTx
    + PrivacyTx
    + LeaseTx
    + SavedReplyTx
{
}

impl<
    T: CatalogTx
        + PeopleTx
        + ContactTx
        + ConversationTx
        + MessageTx
        + ClockTx
        + OutboxTx
        + SubscriptionTx
        + PrivacyTx
        + LeaseTx
        + SavedReplyTx,
> Tx for T
{
}
