//! [`Queries`] on PostgreSQL, through sqlx's async pool: agents' lists and details, token
//! lookups, and the reads the workers make (the outbox's next due time). Reads take a
//! connection of the pool, outside any unit of work, and see committed state only (every
//! daemon's alike): a statement sees what was committed when it began, and a read whose
//! statements must agree runs them in one `REPEATABLE READ, READ ONLY` transaction.
//!
//! - `conversations`: summaries, details, messages, attachments.
//! - `deliveries`: the outbox, event deliveries, gauges.

mod agents;
mod contacts;
mod conversations;
mod deliveries;
mod replay;
mod reports;
mod search;

use async_trait::async_trait;
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};

use super::PgStore;
pub use conversations::*;
pub use deliveries::*;

use crate::model::{DeliveryStatus, Role, Timestamp};
use crate::query::report_cache::ReportSource;
use crate::query::reports::{Grouping, ReportConversation, ReportRequest, StoredFacts, Timeline};
use crate::query::*;
use crate::store::columns::{languages_of, vocabulary};
use crate::store::{StoreError, StoreResult, Subscription};

pub async fn ping(pool: &PgPool) -> StoreResult<()> {
    sqlx::query("SELECT 1").execute(pool).await?;
    Ok(())
}

pub async fn agent_by_token_hash(pool: &PgPool, token_hash: &[u8]) -> StoreResult<Option<Agent>> {
    let row = sqlx::query(&format!(
        "{AGENT_COLUMNS} WHERE a.id = (SELECT agent_id FROM agent_tokens WHERE token_hash = $1 AND revoked_at IS NULL)
         AND a.active"
    ))
    .bind(token_hash)
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(agent_from_row).transpose()
}

pub async fn session(pool: &PgPool, token_hash: &[u8], now: i64) -> StoreResult<Option<SessionView>> {
    // One statement for every console request: the agent's columns with the session's.
    let columns = AGENT_COLUMNS
        .strip_prefix("SELECT ")
        .expect("AGENT_COLUMNS is a SELECT");
    let row = sqlx::query(&format!(
        "SELECT s.csrf_token, s.expires_at AS session_expires_at, {columns}
         JOIN sessions s ON s.agent_id = a.id
         WHERE s.token_hash = $1 AND s.expires_at > $2 AND a.active"
    ))
    .bind(token_hash)
    .bind(now)
    .fetch_optional(pool)
    .await?;
    row.map(|row| {
        Ok(SessionView {
            agent: agent_from_row(&row)?,
            csrf_token: row.try_get("csrf_token")?,
            expires_at: row.try_get("session_expires_at")?,
        })
    })
    .transpose()
}

pub async fn list_agents(pool: &PgPool) -> StoreResult<Vec<Agent>> {
    // Byte order, as SQLite's `BINARY` sorts, whatever collation the database has.
    let rows = sqlx::query(&format!("{AGENT_COLUMNS} ORDER BY a.name COLLATE \"C\""))
        .fetch_all(pool)
        .await?;
    rows.iter().map(agent_from_row).collect()
}

pub async fn team_counts(pool: &PgPool) -> StoreResult<Vec<TeamCounts>> {
    // Each count is one range of an index: the waiting queue's (its partial index's
    // predicate is the subquery's, so the planner takes it), the team's by status, the
    // members'. A breach is rare, so its scan of the team's unresolved ones is short.
    // Keys in byte order, as on SQLite, whatever collation the database has.
    let rows = sqlx::query(
        "SELECT t.key, t.name, t.tier,
                (SELECT COUNT(*) FROM conversations c
                 WHERE c.team_id = t.id AND c.status = 'open' AND c.assignee_id IS NULL) AS waiting,
                (SELECT COUNT(*) FROM conversations c
                 WHERE c.team_id = t.id AND c.status = 'open' AND c.assignee_id IS NOT NULL) AS assigned,
                (SELECT COUNT(*) FROM conversations c
                 WHERE c.team_id = t.id AND c.status IN ('open', 'pending', 'snoozed')
                   AND c.sla_breached_at IS NOT NULL) AS breached,
                (SELECT COUNT(*) FROM conversations c
                 WHERE c.team_id = t.id AND c.status IN ('open', 'pending', 'snoozed') AND c.sla_breached_at IS NULL
                   AND EXISTS (SELECT 1 FROM sla_clocks k WHERE k.conversation_id = c.id AND k.state = 'running'
                               AND k.warned_at IS NOT NULL AND k.breached_at IS NULL)) AS at_risk,
                (SELECT MIN(c.queued_at) FROM conversations c
                 WHERE c.team_id = t.id AND c.status = 'open' AND c.assignee_id IS NULL) AS oldest_waiting,
                (SELECT COUNT(*) FROM agent_teams m JOIN agents a ON a.id = m.agent_id
                 WHERE m.team_id = t.id AND a.available) AS agents_available,
                (SELECT COUNT(*) FROM agent_teams m WHERE m.team_id = t.id) AS agents
         FROM teams t WHERE t.active ORDER BY t.tier, t.key COLLATE \"C\"",
    )
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(TeamCounts {
                key: row.try_get("key")?,
                name: row.try_get("name")?,
                tier: row.try_get("tier")?,
                waiting: row.try_get("waiting")?,
                assigned: row.try_get("assigned")?,
                breached: row.try_get("breached")?,
                at_risk: row.try_get("at_risk")?,
                oldest_waiting_since: row.try_get::<Option<i64>, _>("oldest_waiting")?.map(Timestamp),
                agents_available: row.try_get("agents_available")?,
                agents: row.try_get("agents")?,
            })
        })
        .collect()
}

pub async fn channel_cursor(pool: &PgPool, inbox_id: i64, name: &str) -> StoreResult<Option<String>> {
    Ok(
        sqlx::query_scalar("SELECT value FROM channel_cursors WHERE inbox_id = $1 AND name = $2")
            .bind(inbox_id)
            .bind(name)
            .fetch_optional(pool)
            .await?,
    )
}

fn agent_from_row(row: &PgRow) -> StoreResult<Agent> {
    Ok(Agent {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        role: vocabulary(Role::parse, row.try_get("role")?)?,
        team: row.try_get("team_key")?,
        teams: row.try_get("team_keys")?,
        available: row.try_get("available")?,
        capacity: row.try_get("capacity")?,
        languages: languages_of(row.try_get("languages")?),
        open_conversations: row.try_get("open_count")?,
        active: row.try_get("active")?,
        has_password: row.try_get("has_password")?,
        created_at: Timestamp(row.try_get("created_at")?),
    })
}

pub async fn agent(pool: &PgPool, id: i64) -> StoreResult<Agent> {
    let row = sqlx::query(&format!("{AGENT_COLUMNS} WHERE a.id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await?
        .ok_or(StoreError::NotFound("agent"))?;
    agent_from_row(&row)
}

const AGENT_COLUMNS: &str = "SELECT a.id, a.name, a.role, t.key AS team_key, a.created_at, a.available, a.capacity,
        a.languages, a.active, a.password_hash IS NOT NULL AS has_password,
        (SELECT COUNT(*) FROM conversations c WHERE c.assignee_id = a.id AND c.status = 'open') AS open_count,
        ARRAY(SELECT mt.key FROM agent_teams m JOIN teams mt ON mt.id = m.team_id WHERE m.agent_id = a.id
              ORDER BY mt.id IS DISTINCT FROM a.team_id, mt.id) AS team_keys
     FROM agents a LEFT JOIN teams t ON t.id = a.team_id";

pub async fn next_sla_fire(pool: &PgPool) -> StoreResult<Option<i64>> {
    // Two index lookups (each MIN reads the first entry of its index). Before
    // PostgreSQL 16 a derived table must have a name.
    Ok(sqlx::query_scalar(
        "SELECT MIN(at) FROM (SELECT MIN(next_fire_at) AS at FROM sla_clocks WHERE next_fire_at IS NOT NULL
                            UNION ALL SELECT MIN(fire_at) FROM conversation_timers) AS fires",
    )
    .fetch_one(pool)
    .await?)
}

/// `asked_since`: the earliest question still open (now less the answer window).
pub async fn csat_page(pool: &PgPool, token: &str, asked_since: i64) -> StoreResult<CsatPage> {
    let row = sqlx::query(
        "SELECT c.id, c.csat_score, c.csat_comment, COALESCE(ct.language, c.language) AS language,
                c.status = 'resolved' AND c.csat_requested_at >= $2 AS open
         FROM conversations c JOIN contacts ct ON ct.id = c.contact_id WHERE c.csat_token = $1",
    )
    .bind(token)
    .bind(asked_since)
    .fetch_optional(pool)
    .await?
    .ok_or(StoreError::NotFound("question"))?;
    Ok(CsatPage {
        conversation_id: row.try_get("id")?,
        score: row.try_get::<Option<i64>, _>("csat_score")?.map(|score| score as u8),
        comment: row.try_get("csat_comment")?,
        language: row.try_get("language")?,
        open: row.try_get("open")?,
    })
}

#[async_trait]
impl ReportSource for PgStore {
    async fn report_timeline(&self, from: i64, to: i64) -> StoreResult<Timeline> {
        self::reports::report_timeline(&self.pool, from, to).await
    }

    async fn report_facts(&self, request: &ReportRequest) -> StoreResult<StoredFacts> {
        self::reports::report_facts(&self.pool, request).await
    }

    async fn report_conversations(
        &self,
        grouping: Option<Grouping>,
        ids: &[i64],
    ) -> StoreResult<Vec<ReportConversation>> {
        self::reports::report_conversations(&self.pool, grouping, ids).await
    }
}

#[async_trait]
impl Queries for PgStore {
    async fn ping(&self) -> StoreResult<()> {
        ping(&self.pool).await
    }

    async fn agent_by_token_hash(&self, token_hash: &[u8]) -> StoreResult<Option<Agent>> {
        agent_by_token_hash(&self.pool, token_hash).await
    }

    async fn agents(&self) -> StoreResult<Vec<Agent>> {
        list_agents(&self.pool).await
    }

    async fn agent(&self, id: i64) -> StoreResult<Agent> {
        agent(&self.pool, id).await
    }

    async fn team_counts(&self) -> StoreResult<Vec<TeamCounts>> {
        team_counts(&self.pool).await
    }

    async fn conversations(
        &self,
        filter: &ConversationFilter,
        after: Option<Cursor>,
        limit: u32,
    ) -> StoreResult<ConversationPage> {
        list_conversations(&self.pool, filter, after, limit).await
    }

    async fn conversation(&self, id: i64) -> StoreResult<ConversationDetail> {
        conversation(&self.pool, id).await
    }

    async fn conversation_owner(&self, id: i64) -> StoreResult<(Option<String>, Option<i64>)> {
        sqlx::query_as(
            "SELECT t.key, c.assignee_id FROM conversations c LEFT JOIN teams t ON t.id = c.team_id WHERE c.id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound("conversation"))
    }

    async fn session(&self, token_hash: &[u8], now: i64) -> StoreResult<Option<SessionView>> {
        session(&self.pool, token_hash, now).await
    }

    async fn label_counts(&self, visible_to: &Visibility) -> StoreResult<Vec<(String, i64)>> {
        conversations::label_counts(&self.pool, visible_to).await
    }

    async fn queue_counts(&self, agent_id: i64, visible_to: &Visibility) -> StoreResult<QueueCounts> {
        queue_counts(&self.pool, agent_id, visible_to).await
    }

    async fn stream_after(&self, after: StreamPosition, limit: u32) -> StoreResult<Vec<StreamItem>> {
        stream_after(&self.pool, after, limit).await
    }

    async fn stream_head(&self) -> StoreResult<StreamPosition> {
        stream_head(&self.pool).await
    }

    async fn contacts(&self, search: &ContactSearch, after: Option<i64>, limit: u32) -> StoreResult<ContactPage> {
        contacts::contacts(&self.pool, search, after, limit).await
    }

    async fn contact(&self, id: i64, visible_to: &Visibility) -> StoreResult<ContactDetail> {
        contacts::contact(&self.pool, id, visible_to).await
    }

    async fn saved_replies(&self, agent_id: i64, teams: &TeamsSeen) -> StoreResult<Vec<SavedReplyView>> {
        use crate::store::saved_reply_views::{SELECT_SAVED_REPLIES, SavedReplyColumns, view};
        let rows: Vec<SavedReplyColumns> = sqlx::query_as(&format!(
            "{SELECT_SAVED_REPLIES} WHERE r.agent_id = $1 OR r.team_id IS NOT NULL"
        ))
        .bind(agent_id)
        .fetch_all(&self.pool)
        .await?;
        // Which teams a caller sees is the access layer's list, not a column to match.
        let mut replies = Vec::with_capacity(rows.len());
        for row in rows {
            let reply = view(row)?;
            if reply.team.as_deref().is_none_or(|team| teams.includes(team)) {
                replies.push(reply);
            }
        }
        Ok(replies)
    }

    async fn saved_reply(&self, id: i64) -> StoreResult<SavedReplyView> {
        use crate::store::saved_reply_views::{SELECT_SAVED_REPLIES, SavedReplyColumns, view};
        let row: Option<SavedReplyColumns> = sqlx::query_as(&format!("{SELECT_SAVED_REPLIES} WHERE r.id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        view(row.ok_or(StoreError::NotFound("saved reply"))?)
    }

    async fn search(
        &self,
        request: &crate::query::search::SearchRequest,
    ) -> StoreResult<crate::query::search::SearchPage> {
        search::search(&self.pool, request).await
    }

    async fn message(&self, id: i64) -> StoreResult<MessageView> {
        let mut conn = self.pool.acquire().await?;
        message_views(&mut conn, MessageScope::Message(id))
            .await?
            .pop()
            .ok_or(StoreError::NotFound("message"))
    }

    async fn attachment(&self, id: i64) -> StoreResult<AttachmentData> {
        attachment(&self.pool, id).await
    }

    async fn deliveries(
        &self,
        status: Option<DeliveryStatus>,
        before: Option<i64>,
        limit: u32,
    ) -> StoreResult<DeliveryPage> {
        list_deliveries(&self.pool, status, before, limit).await
    }

    async fn delivery(&self, id: i64) -> StoreResult<DeliveryRecord> {
        delivery(&self.pool, id).await
    }

    async fn outbox_gauges(&self) -> StoreResult<OutboxGauges> {
        outbox_gauges(&self.pool).await
    }

    async fn sla_event_counts(&self) -> StoreResult<Vec<SlaEventCounts>> {
        sla_event_counts(&self.pool).await
    }

    async fn subscription_backlogs(&self) -> StoreResult<Vec<SubscriptionBacklog>> {
        subscription_backlogs(&self.pool).await
    }

    async fn subscriptions(&self) -> StoreResult<Vec<Subscription>> {
        let rows = sqlx::query(&format!("{SUBSCRIPTION_COLUMNS} WHERE deleted_at IS NULL ORDER BY id"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(subscription).collect()
    }

    async fn subscription(&self, id: i64) -> StoreResult<Subscription> {
        let row = sqlx::query(&format!("{SUBSCRIPTION_COLUMNS} WHERE id = $1 AND deleted_at IS NULL"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound("subscription"))?;
        subscription(&row)
    }

    async fn subscription_deliveries(&self, id: i64, limit: u32) -> StoreResult<Vec<SubscriptionDelivery>> {
        subscription_deliveries(&self.pool, id, limit).await
    }

    async fn csat_page(&self, token: &str, asked_since: i64) -> StoreResult<CsatPage> {
        csat_page(&self.pool, token, asked_since).await
    }

    async fn privacy_audit(
        &self,
        contact_id: Option<i64>,
        before: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<PrivacyAuditEntry>> {
        let rows = sqlx::query(
            "SELECT id, contact_id, action, actor_kind, actor_id, reason, details, created_at FROM privacy_audit
             WHERE ($1::BIGINT IS NULL OR contact_id = $1) AND ($2::BIGINT IS NULL OR id < $2)
             ORDER BY id DESC LIMIT $3",
        )
        .bind(contact_id)
        .bind(before)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let details: String = row.try_get("details")?;
                Ok(PrivacyAuditEntry {
                    id: row.try_get("id")?,
                    contact_id: row.try_get("contact_id")?,
                    action: row.try_get("action")?,
                    actor: serde_json::json!({
                        "kind": row.try_get::<String, _>("actor_kind")?,
                        "id": row.try_get::<Option<i64>, _>("actor_id")?,
                    }),
                    reason: row.try_get("reason")?,
                    details: crate::store::columns::json_column(&details)?,
                    at: Timestamp(row.try_get("created_at")?),
                })
            })
            .collect()
    }

    async fn admin_audit(
        &self,
        agent_id: Option<i64>,
        before: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<AdminAuditEntry>> {
        agents::admin_audit(&self.pool, agent_id, before, limit).await
    }

    async fn mentions(
        &self,
        agent_id: i64,
        visible_to: &Visibility,
        unread_only: bool,
        before: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<MentionView>> {
        agents::mentions(&self.pool, agent_id, visible_to, unread_only, before, limit).await
    }

    async fn unread_mentions(&self, agent_id: i64, visible_to: &Visibility) -> StoreResult<i64> {
        agents::unread_mentions(&self.pool, agent_id, visible_to).await
    }

    async fn agent_tokens(&self, agent_id: i64) -> StoreResult<Vec<TokenView>> {
        agents::agent_tokens(&self.pool, agent_id).await
    }

    async fn routed_openings(&self, since: i64, after: Option<i64>, limit: u32) -> StoreResult<Vec<RoutedOpening>> {
        replay::routed_openings(&self.pool, since, after, limit).await
    }
}
