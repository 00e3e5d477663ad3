//! The desk's operations as the daemon's callers use them (the HTTP API, the channel
//! readers, the CLI): each runs its rule as one unit of work on the store, with the
//! desk's policies. What a caller reads back afterwards comes from the query layer.

use std::sync::Arc;

use switchboard_connector_core::{DeliveryReport, InboundMessage};

use crate::domain::access::Caller;
use crate::domain::agents::{self, AgentChanges, Deactivation};
use crate::domain::clocks::{self, FireOutcome};
use crate::domain::contacts;
use crate::domain::desk::Desk;
use crate::domain::escalation::{self, Escalation};
use crate::domain::events::Actor;
use crate::domain::ingest::{self, IngestContext, IngestOutcome};
use crate::domain::lifecycle::{self, ConversationChanges, NewAgentMessage};
use crate::domain::people::{self, Refusal, SessionGrant, SignInPolicy};
use crate::domain::privacy::{self, Erasure, RetentionOutcome};
use crate::domain::saved_replies::{self, Rendered};
use crate::domain::updates::send as updates;
use crate::domain::{DeskError, DeskResult, catalog, deliveries, queues};
use crate::store::{
    Catalog, ContactExport, Credentials, IdentityRef, InboxSpec, NewAgent, NewSubscription, Store, Subscription,
    TeamSpec,
};

/// The store and the policies its rules run with.
#[derive(Clone)]
pub struct Service {
    store: Arc<dyn Store>,
    desk: Arc<Desk>,
}

impl Service {
    pub fn new(store: Arc<dyn Store>, desk: Arc<Desk>) -> Service {
        Service { store, desk }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn desk(&self) -> &Arc<Desk> {
        &self.desk
    }

    /// Makes the configured teams and inboxes exist (see [`catalog::sync`]).
    pub async fn sync_catalog(&self, teams: Vec<TeamSpec>, inboxes: Vec<InboxSpec>, now: i64) -> DeskResult<Catalog> {
        self.store
            .unit(move |tx| catalog::sync(tx, &teams, &inboxes, now))
            .await
    }

    /// Stores one inbound message (see [`ingest::ingest`]).
    pub async fn ingest(&self, context: IngestContext, message: InboundMessage) -> DeskResult<IngestOutcome> {
        let desk = Arc::clone(&self.desk);
        let detected = ingest::detect_language(&desk, &message);
        self.store
            .unit(move |tx| ingest::ingest(tx, &desk, &context, &message, detected.as_deref()))
            .await
    }

    /// Ingests several messages, each its own unit of work, in this order (a reply later
    /// in the batch sees the message before it), sharing commits where the store can.
    pub async fn ingest_in_order(&self, batch: Vec<(IngestContext, InboundMessage)>) -> Vec<DeskResult<IngestOutcome>> {
        let desk = Arc::clone(&self.desk);
        // Each language is detected as its unit is taken, while the store works on the
        // ones before.
        let works = batch.into_iter().map(move |(context, message)| {
            let desk = Arc::clone(&desk);
            let detected = ingest::detect_language(&desk, &message);
            move |tx: &mut dyn crate::store::Tx| ingest::ingest(tx, &desk, &context, &message, detected.as_deref())
        });
        self.store.units_in_order(works).await
    }

    /// A new agent, created by `actor` (`None`: the command line); returns their id.
    pub async fn create_agent(&self, agent: NewAgent, actor: Option<i64>, now: i64) -> DeskResult<i64> {
        self.store.unit(move |tx| agents::create(tx, &agent, actor, now)).await
    }

    /// See [`agents::update`].
    pub async fn update_agent(
        &self,
        actor: Option<i64>,
        agent_id: i64,
        changes: AgentChanges,
        now: i64,
    ) -> DeskResult<()> {
        let desk = Arc::clone(&self.desk);
        self.store
            .unit(move |tx| agents::update(tx, &desk, actor, agent_id, &changes, now))
            .await
    }

    /// Marks the agent's unread mentions read (those of `ids`, or all); returns how many.
    pub async fn mark_mentions_read(&self, agent_id: i64, ids: Option<Vec<i64>>, now: i64) -> DeskResult<u64> {
        self.store
            .unit(move |tx| Ok(tx.mark_mentions_read(agent_id, ids.as_deref(), now)?))
            .await
    }

    /// See [`agents::issue_token`].
    pub async fn issue_token(
        &self,
        actor: Option<i64>,
        agent_id: i64,
        token_hash: Vec<u8>,
        label: String,
        now: i64,
    ) -> DeskResult<i64> {
        self.store
            .unit(move |tx| agents::issue_token(tx, actor, agent_id, &token_hash, &label, now))
            .await
    }

    /// See [`agents::revoke_token`].
    pub async fn revoke_token(&self, actor: Option<i64>, agent_id: i64, token_id: i64, now: i64) -> DeskResult<()> {
        self.store
            .unit(move |tx| agents::revoke_token(tx, actor, agent_id, token_id, now))
            .await
    }

    /// See [`people::sign_in_candidate`].
    pub async fn sign_in_candidate(&self, name: String, now: i64) -> DeskResult<Result<Credentials, Refusal>> {
        self.store
            .unit(move |tx| people::sign_in_candidate(tx, &name, now))
            .await
    }

    /// See [`people::finish_sign_in`].
    pub async fn finish_sign_in(
        &self,
        policy: SignInPolicy,
        agent_id: i64,
        verified: bool,
        session: NewSessionSecrets,
        now: i64,
    ) -> DeskResult<Result<i64, Refusal>> {
        self.store
            .unit(move |tx| people::finish_sign_in(tx, &policy, agent_id, verified, &session.grant(), now))
            .await
    }

    /// See [`agents::issue_link`].
    pub async fn issue_sign_in_link(
        &self,
        policy: SignInPolicy,
        actor: Option<i64>,
        agent_id: i64,
        token_hash: Vec<u8>,
        now: i64,
    ) -> DeskResult<i64> {
        self.store
            .unit(move |tx| agents::issue_link(tx, &policy, actor, agent_id, &token_hash, now))
            .await
    }

    /// See [`people::link_holder`].
    pub async fn sign_in_link_holder(&self, link_hash: Vec<u8>, now: i64) -> DeskResult<i64> {
        self.store
            .unit(move |tx| people::link_holder(tx, &link_hash, now))
            .await
    }

    /// See [`people::set_password_with_link`].
    pub async fn set_password_with_link(
        &self,
        policy: SignInPolicy,
        link_hash: Vec<u8>,
        password_hash: String,
        session: NewSessionSecrets,
        now: i64,
    ) -> DeskResult<(i64, i64)> {
        self.store
            .unit(move |tx| {
                people::set_password_with_link(tx, &policy, &link_hash, &password_hash, &session.grant(), now)
            })
            .await
    }

    /// See [`people::replace_password`].
    pub async fn replace_password(
        &self,
        policy: SignInPolicy,
        agent_id: i64,
        password_hash: String,
        session: NewSessionSecrets,
        now: i64,
    ) -> DeskResult<i64> {
        self.store
            .unit(move |tx| people::replace_password(tx, &policy, agent_id, &password_hash, &session.grant(), now))
            .await
    }

    /// Ends one session; says whether it existed.
    pub async fn end_session(&self, token_hash: Vec<u8>) -> DeskResult<bool> {
        self.store.unit(move |tx| Ok(tx.delete_session(&token_hash)?)).await
    }

    /// See [`agents::set_active`].
    pub async fn set_agent_active(
        &self,
        actor: Option<i64>,
        agent_id: i64,
        active: bool,
        now: i64,
    ) -> DeskResult<Deactivation> {
        let desk = Arc::clone(&self.desk);
        self.store
            .unit(move |tx| agents::set_active(tx, &desk, actor, agent_id, active, now))
            .await
    }

    /// An agent's reply or note; returns the message's id.
    /// A public reply's language is detected here, off the store's writer, as ingest
    /// detects a customer's.
    pub async fn add_agent_message(&self, mut new: NewAgentMessage) -> DeskResult<i64> {
        let desk = Arc::clone(&self.desk);
        if !new.private && new.saved_reply.is_none() && new.language.is_none() {
            new.language = desk.languages.detect(&new.text).map(str::to_owned);
        }
        self.store
            .unit(move |tx| lifecycle::add_agent_message(tx, &desk, &new))
            .await
    }

    /// A reply (or note) made of the saved reply `saved_reply` filled for its
    /// conversation, unless `new.text` is given (the agent's edit of it); both in one unit
    /// of work, so the text is filled from what the conversation is when it is stored.
    /// Returns the message's id.
    pub async fn add_saved_reply_message(
        &self,
        caller: Caller,
        saved_reply: i64,
        new: NewAgentMessage,
    ) -> DeskResult<i64> {
        let desk = Arc::clone(&self.desk);
        self.store
            .unit(move |tx| {
                let rendered = saved_replies::render(tx, &desk, &caller, saved_reply, new.conversation_id).map_err(
                    |err| match err {
                        DeskError::NotFound("saved reply") => DeskError::Invalid {
                            field: "saved_reply",
                            problem: format!("#{saved_reply} is not a saved reply you can use"),
                        },
                        other => other,
                    },
                )?;
                let mut new = new.clone();
                if new.text.is_empty() {
                    new.text = rendered.text.trim().to_owned();
                }
                if new.text.is_empty() {
                    return Err(DeskError::Invalid {
                        field: "saved_reply",
                        problem: format!(
                            "#{saved_reply} fills to nothing for conversation #{} (missing: {})",
                            new.conversation_id,
                            rendered.missing.join(", ")
                        ),
                    });
                }
                if new.text.len() > saved_replies::MAX_REPLY {
                    return Err(DeskError::Invalid {
                        field: "saved_reply",
                        problem: format!("#{saved_reply} fills to more than {} bytes", saved_replies::MAX_REPLY),
                    });
                }
                new.saved_reply = Some((saved_reply, rendered.language));
                lifecycle::add_agent_message(tx, &desk, &new)
            })
            .await
    }

    /// A saved reply filled for a conversation as `caller` would send it.
    pub async fn render_saved_reply(&self, caller: Caller, id: i64, conversation_id: i64) -> DeskResult<Rendered> {
        let desk = Arc::clone(&self.desk);
        self.store
            .unit(move |tx| saved_replies::render(tx, &desk, &caller, id, conversation_id))
            .await
    }

    /// Returns the new saved reply's id (see [`saved_replies::create`]).
    pub async fn create_saved_reply(&self, caller: Caller, draft: saved_replies::Draft, now: i64) -> DeskResult<i64> {
        let desk = Arc::clone(&self.desk);
        self.store
            .unit(move |tx| saved_replies::create(tx, &desk, &caller, &draft, now))
            .await
    }

    pub async fn edit_saved_reply(
        &self,
        caller: Caller,
        id: i64,
        changes: saved_replies::Changes,
        now: i64,
    ) -> DeskResult<()> {
        self.store
            .unit(move |tx| saved_replies::edit(tx, &caller, id, &changes, now))
            .await
    }

    pub async fn delete_saved_reply(&self, caller: Caller, id: i64) -> DeskResult<()> {
        self.store.unit(move |tx| saved_replies::delete(tx, &caller, id)).await
    }

    pub async fn update_conversation(
        &self,
        id: i64,
        agent_id: i64,
        changes: ConversationChanges,
        now: i64,
    ) -> DeskResult<()> {
        let desk = Arc::clone(&self.desk);
        self.store
            .unit(move |tx| lifecycle::update_conversation(tx, &desk, id, agent_id, &changes, now))
            .await
    }

    pub async fn escalate(&self, request: Escalation) -> DeskResult<()> {
        let desk = Arc::clone(&self.desk);
        self.store
            .unit(move |tx| escalation::escalate(tx, &desk, &request))
            .await
    }

    /// Marks an agent available (their team's queue is then served) or not.
    pub async fn set_availability(&self, agent_id: i64, available: bool, now: i64) -> DeskResult<()> {
        let desk = Arc::clone(&self.desk);
        self.store
            .unit(move |tx| queues::set_availability(tx, &desk, agent_id, available, now))
            .await
    }

    /// Serves every automatically assigning team's queue; returns how many it assigned.
    pub async fn drain_queues(&self, now: i64) -> DeskResult<u32> {
        let desk = Arc::clone(&self.desk);
        self.store.unit(move |tx| queues::drain_all(tx, &desk, now)).await
    }

    /// Fires up to `limit` clocks and follow-ups due by `now`, with what they do.
    pub async fn fire_sla(&self, now: i64, limit: u32) -> DeskResult<FireOutcome> {
        let desk = Arc::clone(&self.desk);
        self.store.unit(move |tx| clocks::fire_due(tx, &desk, now, limit)).await
    }

    /// Schedules a failed delivery again from now.
    pub async fn retry_delivery(&self, id: i64, agent_id: i64, now: i64, expires_at: i64) -> DeskResult<()> {
        self.store
            .unit(move |tx| deliveries::retry(tx, id, agent_id, now, expires_at))
            .await
    }

    /// The channel says this identity cannot be reached there any more (the customer
    /// blocked the bot). Returns whether such an identity exists.
    pub async fn mark_unreachable(
        &self,
        inbox_id: i64,
        external_id: String,
        reason: String,
        now: i64,
    ) -> DeskResult<bool> {
        self.store
            .unit(move |tx| {
                let identity = IdentityRef::External {
                    inbox_id,
                    external_id: &external_id,
                };
                Ok::<_, DeskError>(tx.set_reachability(identity, Some(&reason), now)?)
            })
            .await
    }

    /// Takes or extends the lease `name` for `holder` (see [`crate::store::LeaseTx`]).
    pub async fn take_lease(&self, name: String, holder: Arc<str>, now: i64, until: i64) -> DeskResult<bool> {
        self.store
            .unit(move |tx| Ok::<_, DeskError>(tx.take_lease(&name, &holder, now, until)?))
            .await
    }

    /// Forgets every lease (see [`crate::store::LeaseTx::clear_leases`]).
    pub async fn clear_leases(&self) -> DeskResult<u64> {
        self.store.unit(|tx| Ok::<_, DeskError>(tx.clear_leases()?)).await
    }

    pub async fn drop_lease(&self, name: String, holder: Arc<str>) -> DeskResult<()> {
        self.store
            .unit(move |tx| Ok::<_, DeskError>(tx.drop_lease(&name, &holder)?))
            .await
    }

    /// Moves a connector's cursor; call only after what came before it is committed.
    /// A channel's report on a message we sent; `true` when it failed the delivery.
    pub async fn delivery_report(&self, inbox_id: i64, report: DeliveryReport, now: i64) -> DeskResult<bool> {
        self.store
            .unit(move |tx| deliveries::report(tx, inbox_id, &report, now))
            .await
    }

    /// Forgets channel reports no recorded send carries, unchanged since `before`;
    /// returns how many went.
    pub async fn prune_delivery_reports(&self, before: i64) -> DeskResult<u64> {
        self.store
            .unit(move |tx| Ok::<_, DeskError>(tx.prune_delivery_reports(before)?))
            .await
    }

    pub async fn set_channel_cursor(&self, inbox_id: i64, name: String, value: String, now: i64) -> DeskResult<()> {
        self.store
            .unit(move |tx| Ok::<_, DeskError>(tx.set_channel_cursor(inbox_id, &name, &value, now)?))
            .await
    }

    pub async fn create_subscription(&self, new: NewSubscription, now: i64) -> DeskResult<Subscription> {
        self.store
            .unit(move |tx| deliveries::create_subscription(tx, &new, now))
            .await
    }

    pub async fn delete_subscription(&self, actor: Option<i64>, id: i64, now: i64) -> DeskResult<()> {
        self.store
            .unit(move |tx| deliveries::delete_subscription(tx, actor, id, now))
            .await
    }

    pub async fn set_subscription_active(
        &self,
        actor: Option<i64>,
        id: i64,
        active: bool,
        now: i64,
    ) -> DeskResult<Subscription> {
        self.store
            .unit(move |tx| deliveries::set_subscription_active(tx, actor, id, active, now))
            .await
    }

    /// Queues a `ping` for the subscription; returns the delivery's id.
    pub async fn ping_subscription(&self, id: i64, now: i64) -> DeskResult<i64> {
        self.store
            .unit(move |tx| deliveries::ping_subscription(tx, id, now))
            .await
    }

    /// Records a satisfaction answer given on the web page a CSAT email links to.
    pub async fn answer_csat(&self, token: String, score: u8, comment: Option<String>, now: i64) -> DeskResult<()> {
        let desk = Arc::clone(&self.desk);
        self.store
            .unit(move |tx| {
                let conversation_id = updates::csat_conversation(tx, &token)?.ok_or(DeskError::NotFound("question"))?;
                updates::record_csat(tx, &desk, conversation_id, score, comment.as_deref(), "email_link", now)
            })
            .await
    }

    /// An agent's corrections to a contact (see [`contacts::edit`]).
    pub async fn edit_contact(&self, contact_id: i64, patch: contacts::ContactPatch, now: i64) -> DeskResult<()> {
        self.store
            .unit(move |tx| contacts::edit(tx, contact_id, &patch, now))
            .await
    }

    /// Makes `from` part of `into` (see [`contacts::merge`]).
    pub async fn merge_contacts(&self, into: i64, from: i64, actor: Actor, now: i64) -> DeskResult<contacts::Merged> {
        self.store
            .unit(move |tx| contacts::merge(tx, into, from, actor, now))
            .await
    }

    /// Everything stored about a contact, the export recorded in the audit trail in the
    /// same unit of work (see [`privacy::export`]).
    pub async fn export_contact(&self, contact_id: i64, actor: Actor, now: i64) -> DeskResult<ContactExport> {
        self.store
            .unit(move |tx| privacy::export(tx, contact_id, actor, now))
            .await
    }

    /// Erases a contact (see [`privacy::erase_contact`]); once committed, has the store
    /// scrub its files so nothing of the person stays readable there.
    pub async fn erase_contact(&self, contact_id: i64, actor: Actor, reason: &str, now: i64) -> DeskResult<Erasure> {
        let reason = privacy::reason(reason)?;
        let mut erasure = self
            .store
            .unit(move |tx| privacy::erase_contact(tx, contact_id, actor, &reason, false, now))
            .await?;
        // The erasure stands either way; a failed scrub is said, not hidden, and the
        // writer's next checkpoint (or the next erasure) finishes it.
        if let Err(err) = self.store.scrub().await {
            tracing::error!(%err, contact_id, "erased, but the WAL could not be truncated yet");
            erasure.scrubbed = false;
        }
        Ok(erasure)
    }

    /// Erases up to `limit` finished conversations that ended before `before` (see
    /// [`privacy::sweep`]), and scrubs the store's files when it erased any.
    pub async fn sweep_retention(&self, before: i64, limit: u32, now: i64) -> DeskResult<RetentionOutcome> {
        let outcome = self
            .store
            .unit(move |tx| privacy::sweep(tx, before, limit, now))
            .await?;
        if outcome.conversations > 0
            && let Err(err) = self.store.scrub().await
        {
            tracing::error!(%err, "retention erased conversations, but the WAL could not be truncated yet");
        }
        Ok(outcome)
    }
}

/// A new session's secrets, as a unit of work takes them.
pub struct NewSessionSecrets {
    pub token_hash: Vec<u8>,
    pub csrf_token: String,
}

impl NewSessionSecrets {
    fn grant(&self) -> SessionGrant<'_> {
        SessionGrant {
            token_hash: &self.token_hash,
            csrf_token: &self.csrf_token,
        }
    }
}
