//! The embedded SQLite store.
//!
//! - `writer`: the one thread that writes, committing concurrent writes in groups.
//! - `tx`: the store's [`Tx`] on that thread's connection: the desk's rules run there.
//! - `read`: every query, through sqlx's async pool of read connections.
//!
//! WAL journal with `synchronous = FULL`: a commit is on disk before its callers hear
//! back, so a message acknowledged to its sender survives a crash or a power cut. The
//! schema's migrations run through sqlx's migrator at open.

mod read;
mod tx;
mod writer;

use std::path::Path;
use std::str::FromStr;
use std::sync::RwLock;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, SqliteConnection, SqlitePool};
use switchboard_connector_core::InboundMessage;

use super::*;
use crate::domain;
use read::MessageScope;
use tx::SqliteTx;
use writer::Writer;

/// Read connections: agents' list and detail queries run on them in parallel.
const READERS: u32 = 4;
/// How long a read waits for a lock another process holds.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

pub struct SqliteStore {
    reader: SqlitePool,
    /// Teams' policies, SLA targets, calendars: set by `sync_catalog` at start.
    desk: RwLock<Arc<Desk>>,
    /// Dropped last: its thread finishes queued writes and closes the file cleanly.
    writer: Writer,
}

impl SqliteStore {
    /// Opens (creating when missing) the database at a `sqlite://PATH` URL and runs the
    /// migrations it has not seen yet.
    pub async fn open(url: &str) -> StoreResult<SqliteStore> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|err| StoreError::Backend(format!("`{url}` is not a SQLite URL: {err}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let path = options.get_filename().to_owned();
        if let Some(folder) = path.parent().filter(|folder| !folder.as_os_str().is_empty()) {
            create_folder(folder)?;
        }
        let mut migrating = SqliteConnection::connect_with(&options).await?;
        super::migrations::migrator().await?.run(&mut migrating).await?;
        migrating.close().await?;
        let writer = Writer::open(&path)?;
        let reader = SqlitePoolOptions::new()
            .max_connections(READERS)
            .connect_with(options)
            .await?;
        Ok(SqliteStore {
            reader,
            desk: RwLock::new(Arc::new(Desk::plain(&[]))),
            writer,
        })
    }
}

impl SqliteStore {
    fn desk(&self) -> Arc<Desk> {
        // A poisoned lock still holds a whole Arc: nothing can be half-written there.
        Arc::clone(&self.desk.read().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }
}

fn create_folder(folder: &Path) -> StoreResult<()> {
    std::fs::create_dir_all(folder)
        .map_err(|err| StoreError::Backend(format!("cannot create the database folder {}: {err}", folder.display())))
}

/// A stored vocabulary name back into its enum; anything else is a corrupt database.
fn vocabulary<T>(parse: fn(&str) -> Option<T>, text: &str) -> StoreResult<T> {
    parse(text).ok_or_else(|| StoreError::Backend(format!("unexpected value `{text}` in the database")))
}

fn json_column<T: serde::de::DeserializeOwned>(text: &str) -> StoreResult<T> {
    serde_json::from_str(text).map_err(|err| StoreError::Backend(format!("unreadable JSON in the database: {err}")))
}

/// Runs a rule in the writer's next group, on a [`SqliteTx`] over its connection.
fn on_writer<T, F>(writer: &Writer, rule: F) -> impl std::future::Future<Output = StoreResult<T>> + use<T, F>
where
    T: Send + 'static,
    F: Fn(&mut SqliteTx<'_>) -> DeskResult<T> + Send + 'static,
{
    writer.write(move |conn| rule(&mut SqliteTx::new(conn)).map_err(StoreError::from))
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        read::ping(&self.reader).await
    }

    async fn sync_catalog(
        &self,
        teams: &[TeamSpec],
        inboxes: &[InboxSpec],
        desk: Arc<Desk>,
        now: i64,
    ) -> StoreResult<Catalog> {
        *self.desk.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = desk;
        let (teams, inboxes) = (teams.to_vec(), inboxes.to_vec());
        on_writer(&self.writer, move |tx| domain::catalog::sync(tx, &teams, &inboxes, now)).await
    }

    async fn ingest(&self, context: IngestContext, message: InboundMessage) -> StoreResult<IngestOutcome> {
        let desk = self.desk();
        let detected = domain::ingest::detect_language(&desk, &message);
        on_writer(&self.writer, move |tx| {
            domain::ingest::ingest(tx, &desk, &context, &message, detected.as_deref())
        })
        .await
    }

    async fn ingest_in_order(&self, batch: Vec<(IngestContext, InboundMessage)>) -> Vec<StoreResult<IngestOutcome>> {
        // `write` queues its job when called, so the jobs reach the writer in batch
        // order and commit in the same groups.
        let pending: Vec<_> = batch
            .into_iter()
            .map(|(context, message)| {
                let desk = self.desk();
                let detected = domain::ingest::detect_language(&desk, &message);
                on_writer(&self.writer, move |tx| {
                    domain::ingest::ingest(tx, &desk, &context, &message, detected.as_deref())
                })
            })
            .collect();
        let mut outcomes = Vec::with_capacity(pending.len());
        for outcome in pending {
            outcomes.push(outcome.await);
        }
        outcomes
    }

    async fn create_agent(&self, agent: NewAgent, now: i64) -> StoreResult<Agent> {
        let id = on_writer(&self.writer, move |tx| domain::lifecycle::create_agent(tx, &agent, now)).await?;
        read::agent(&self.reader, id).await
    }

    async fn agent_by_token_hash(&self, token_hash: &[u8]) -> StoreResult<Option<Agent>> {
        read::agent_by_token_hash(&self.reader, token_hash).await
    }

    async fn list_agents(&self) -> StoreResult<Vec<Agent>> {
        read::list_agents(&self.reader).await
    }

    async fn team_summaries(&self) -> StoreResult<Vec<TeamSummary>> {
        read::team_summaries(&self.reader, &self.desk()).await
    }

    async fn list_conversations(
        &self,
        filter: &ConversationFilter,
        after: Option<Cursor>,
        limit: u32,
    ) -> StoreResult<ConversationPage> {
        read::list_conversations(&self.reader, filter, after, limit).await
    }

    async fn conversation(&self, id: i64) -> StoreResult<ConversationDetail> {
        read::conversation(&self.reader, id).await
    }

    async fn add_agent_message(&self, new: NewAgentMessage) -> StoreResult<MessageView> {
        let desk = self.desk();
        let message_id = on_writer(&self.writer, move |tx| {
            domain::lifecycle::add_agent_message(tx, &desk, &new)
        })
        .await?;
        let mut conn = self.reader.acquire().await?;
        read::message_views(&mut conn, MessageScope::Message(message_id))
            .await?
            .pop()
            .ok_or(StoreError::NotFound("message"))
    }

    async fn update_conversation(
        &self,
        id: i64,
        agent_id: i64,
        changes: &ConversationChanges,
        now: i64,
    ) -> StoreResult<ConversationDetail> {
        let changes = changes.clone();
        let desk = self.desk();
        on_writer(&self.writer, move |tx| {
            domain::lifecycle::update_conversation(tx, &desk, id, agent_id, &changes, now)
        })
        .await?;
        read::conversation(&self.reader, id).await
    }

    async fn attachment(&self, id: i64) -> StoreResult<AttachmentData> {
        read::attachment(&self.reader, id).await
    }

    async fn release_in_flight(&self, now: i64) -> StoreResult<u64> {
        on_writer(&self.writer, move |tx| Ok(tx.release_deliveries(now)?)).await
    }

    async fn claim_deliveries(
        &self,
        now: i64,
        limit: u32,
        lease_until: i64,
        plan: &ClaimPlan,
    ) -> StoreResult<Vec<Delivery>> {
        let plan = plan.clone();
        on_writer(&self.writer, move |tx| {
            Ok(tx.claim_deliveries(now, limit, lease_until, &plan)?)
        })
        .await
    }

    async fn defer_deliveries(&self, inbox_id: i64, until: i64, now: i64) -> StoreResult<u64> {
        on_writer(&self.writer, move |tx| Ok(tx.defer_deliveries(inbox_id, until, now)?)).await
    }

    async fn record_delivery(&self, outbox_id: i64, result: &DeliveryResult, now: i64) -> StoreResult<()> {
        let result = result.clone();
        on_writer(&self.writer, move |tx| {
            domain::deliveries::record(tx, outbox_id, &result, now)
        })
        .await
    }

    async fn next_delivery_due(&self, held: &[i64]) -> StoreResult<Option<i64>> {
        let held = serde_json::to_string(held).unwrap_or_else(|_| "[]".into());
        read::next_delivery_due(&self.reader, &held).await
    }

    async fn mark_unreachable(&self, inbox_id: i64, external_id: &str, reason: &str, now: i64) -> StoreResult<bool> {
        let (external_id, reason) = (external_id.to_owned(), reason.to_owned());
        on_writer(&self.writer, move |tx| {
            let identity = IdentityRef::External {
                inbox_id,
                external_id: &external_id,
            };
            Ok(tx.set_reachability(identity, Some(&reason), now)?)
        })
        .await
    }

    async fn channel_cursor(&self, inbox_id: i64, name: &str) -> StoreResult<Option<String>> {
        read::channel_cursor(&self.reader, inbox_id, name).await
    }

    async fn set_channel_cursor(&self, inbox_id: i64, name: &str, value: &str, now: i64) -> StoreResult<()> {
        let (name, value) = (name.to_owned(), value.to_owned());
        on_writer(&self.writer, move |tx| {
            Ok(tx.set_channel_cursor(inbox_id, &name, &value, now)?)
        })
        .await
    }

    async fn escalate(&self, request: Escalation) -> StoreResult<ConversationDetail> {
        let desk = self.desk();
        let id = request.conversation_id;
        on_writer(&self.writer, move |tx| {
            domain::escalation::escalate(tx, &desk, &request)
        })
        .await?;
        read::conversation(&self.reader, id).await
    }

    async fn set_availability(&self, agent_id: i64, available: bool, now: i64) -> StoreResult<Agent> {
        let desk = self.desk();
        on_writer(&self.writer, move |tx| {
            domain::queues::set_availability(tx, &desk, agent_id, available, now)
        })
        .await?;
        read::agent(&self.reader, agent_id).await
    }

    async fn drain_queues(&self, now: i64) -> StoreResult<u32> {
        let desk = self.desk();
        on_writer(&self.writer, move |tx| domain::queues::drain_all(tx, &desk, now)).await
    }

    async fn next_sla_fire(&self) -> StoreResult<Option<i64>> {
        read::next_sla_fire(&self.reader).await
    }

    async fn fire_sla(&self, now: i64, limit: u32) -> StoreResult<FireOutcome> {
        let desk = self.desk();
        on_writer(&self.writer, move |tx| domain::clocks::fire_due(tx, &desk, now, limit)).await
    }

    async fn list_deliveries(
        &self,
        status: Option<DeliveryStatus>,
        before: Option<i64>,
        limit: u32,
    ) -> StoreResult<DeliveryPage> {
        read::list_deliveries(&self.reader, status, before, limit).await
    }

    async fn retry_delivery(&self, id: i64, agent_id: i64, now: i64, expires_at: i64) -> StoreResult<DeliveryRecord> {
        on_writer(&self.writer, move |tx| {
            domain::deliveries::retry(tx, id, agent_id, now, expires_at)
        })
        .await?;
        read::delivery(&self.reader, id).await
    }

    async fn outbox_gauges(&self) -> StoreResult<OutboxGauges> {
        read::outbox_gauges(&self.reader).await
    }

    async fn create_subscription(&self, new: NewSubscription, now: i64) -> StoreResult<Subscription> {
        on_writer(&self.writer, move |tx| {
            domain::deliveries::create_subscription(tx, &new, now)
        })
        .await
    }

    async fn list_subscriptions(&self) -> StoreResult<Vec<Subscription>> {
        on_writer(&self.writer, |tx| Ok(tx.subscriptions()?)).await
    }

    async fn subscription(&self, id: i64) -> StoreResult<Subscription> {
        on_writer(&self.writer, move |tx| {
            tx.subscription(id)?.ok_or(DeskError::NotFound("subscription"))
        })
        .await
    }

    async fn delete_subscription(&self, id: i64, now: i64) -> StoreResult<()> {
        on_writer(&self.writer, move |tx| {
            domain::deliveries::delete_subscription(tx, id, now)
        })
        .await
    }

    async fn set_subscription_active(&self, id: i64, active: bool, now: i64) -> StoreResult<Subscription> {
        on_writer(&self.writer, move |tx| {
            domain::deliveries::set_subscription_active(tx, id, active, now)
        })
        .await
    }

    async fn ping_subscription(&self, id: i64, now: i64) -> StoreResult<i64> {
        on_writer(&self.writer, move |tx| {
            domain::deliveries::ping_subscription(tx, id, now)
        })
        .await
    }

    async fn subscription_deliveries(&self, id: i64, limit: u32) -> StoreResult<Vec<SubscriptionDelivery>> {
        read::subscription_deliveries(&self.reader, id, limit).await
    }

    async fn release_event_deliveries(&self, now: i64) -> StoreResult<u64> {
        on_writer(&self.writer, move |tx| Ok(tx.release_events(now)?)).await
    }

    async fn claim_event_deliveries(
        &self,
        now: i64,
        limit: u32,
        lease_until: i64,
        held: &[i64],
    ) -> StoreResult<Vec<EventDelivery>> {
        let held = held.to_vec();
        on_writer(&self.writer, move |tx| {
            Ok(tx.claim_events(now, limit, lease_until, &held)?)
        })
        .await
    }

    async fn defer_event_deliveries(&self, subscription_id: i64, until: i64, now: i64) -> StoreResult<()> {
        on_writer(&self.writer, move |tx| {
            Ok(tx.defer_events(subscription_id, until, now)?)
        })
        .await
    }

    async fn record_event_delivery(
        &self,
        id: i64,
        result: DeliveryResult,
        disable: Option<String>,
        now: i64,
    ) -> StoreResult<()> {
        on_writer(&self.writer, move |tx| {
            domain::deliveries::record_event(tx, id, &result, disable.as_deref(), now)
        })
        .await
    }

    async fn next_event_delivery_due(&self, held: &[i64]) -> StoreResult<Option<i64>> {
        let held = serde_json::to_string(held).unwrap_or_else(|_| "[]".into());
        read::next_event_delivery_due(&self.reader, &held).await
    }

    async fn answer_csat(&self, token: &str, score: u8, comment: Option<String>, now: i64) -> StoreResult<CsatPage> {
        let desk = self.desk();
        let token_owned = token.to_owned();
        on_writer(&self.writer, move |tx| {
            let Some(conversation_id) = domain::updates::send::csat_conversation(tx, &token_owned)? else {
                return Err(DeskError::NotFound("question"));
            };
            domain::updates::send::record_csat(tx, &desk, conversation_id, score, comment.as_deref(), "email_link", now)
        })
        .await?;
        self.csat_page(token, now).await
    }

    async fn csat_page(&self, token: &str, now: i64) -> StoreResult<CsatPage> {
        let window = domain::desk::millis(self.desk().updates.settings.csat.answer_window);
        read::csat_page(&self.reader, token, now.saturating_sub(window)).await
    }
}
