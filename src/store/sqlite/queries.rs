//! [`Queries`] on SQLite, through sqlx's async pool: agents' lists and details, token
//! lookups, and the reads the workers make (the outbox's next due time). Several read
//! connections serve them in parallel with the writer thread; each sees the last
//! committed state.

use std::collections::HashMap;

use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection, SqlitePool};
use switchboard_connector_core::ChannelKind;

use async_trait::async_trait;

use super::{SqliteStore, json_column, vocabulary};
use crate::model::clock::ClockKind;
use crate::model::{
    ActorKind, DeliveryStatus, Direction, MessageKind, Priority, Role, Status, Timestamp, human_duration,
};
use crate::query::{
    Actor, Agent, AgentRef, AssigneeFilter, AttachmentData, AttachmentView, ClockView, ContactRef, ConversationDetail,
    ConversationFilter, ConversationPage, ConversationSummary, CsatPage, CsatView, Cursor, DeliveryPage,
    DeliveryRecord, DeliveryView, EventView, MessagePreview, MessageView, OutboxGauges, Queries, SubscriptionDelivery,
    TeamCounts, TeamRef,
};
use crate::store::{AgentSelector, StoreError, StoreResult, Subscription};

pub async fn message_views(conn: &mut SqliteConnection, scope: MessageScope) -> StoreResult<Vec<MessageView>> {
    let (filter, id) = match scope {
        MessageScope::Conversation(id) => ("m.conversation_id = ?", id),
        MessageScope::Message(id) => ("m.id = ?", id),
    };
    let rows = sqlx::query(&format!(
        "SELECT m.id, m.conversation_id, m.direction, m.kind, m.author_kind, m.author_id, m.text, m.html,
                m.external_id, m.language, m.metadata, m.created_at,
                COALESCE(ag.name, ct.name) AS author_name,
                o.id AS delivery_id, o.status AS delivery_status, o.attempts, o.next_attempt_at, o.last_error,
                o.sent_at
         FROM messages m
         LEFT JOIN agents ag ON m.author_kind = 'agent' AND ag.id = m.author_id
         LEFT JOIN contacts ct ON m.author_kind = 'contact' AND ct.id = m.author_id
         LEFT JOIN outbox o ON o.message_id = m.id
         WHERE {filter} ORDER BY m.id"
    ))
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    let attachment_rows = sqlx::query(&format!(
        "SELECT a.id, a.message_id, a.filename, a.content_type, a.size, a.blob_sha256
         FROM attachments a JOIN messages m ON m.id = a.message_id WHERE {filter} ORDER BY a.id"
    ))
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    let mut attachments: HashMap<i64, Vec<AttachmentView>> = HashMap::new();
    for row in attachment_rows {
        attachments
            .entry(row.try_get("message_id")?)
            .or_default()
            .push(AttachmentView {
                id: row.try_get("id")?,
                filename: row.try_get("filename")?,
                content_type: row.try_get("content_type")?,
                size: row.try_get("size")?,
                sha256: row.try_get("blob_sha256")?,
            });
    }
    rows.iter()
        .map(|row| {
            let id: i64 = row.try_get("id")?;
            let delivery = match row.try_get::<Option<String>, _>("delivery_status")? {
                Some(status) => Some(DeliveryView {
                    id: row.try_get("delivery_id")?,
                    status: vocabulary(DeliveryStatus::parse, &status)?,
                    attempts: row.try_get("attempts")?,
                    next_attempt_at: (status == DeliveryStatus::Scheduled.as_str())
                        .then(|| row.try_get("next_attempt_at").map(Timestamp))
                        .transpose()?,
                    last_error: row.try_get("last_error")?,
                    sent_at: row.try_get::<Option<i64>, _>("sent_at")?.map(Timestamp),
                }),
                None => None,
            };
            Ok(MessageView {
                id,
                conversation_id: row.try_get("conversation_id")?,
                direction: vocabulary(Direction::parse, row.try_get("direction")?)?,
                kind: vocabulary(MessageKind::parse, row.try_get("kind")?)?,
                author: actor(row, "author_kind", "author_id", "author_name")?,
                text: row.try_get("text")?,
                html: row.try_get("html")?,
                external_id: row.try_get("external_id")?,
                language: row.try_get("language")?,
                details: row
                    .try_get::<Option<&str>, _>("metadata")?
                    .map(json_column)
                    .transpose()?
                    .unwrap_or_else(|| serde_json::Value::Object(Default::default())),
                attachments: attachments.remove(&id).unwrap_or_default(),
                delivery,
                created_at: Timestamp(row.try_get("created_at")?),
            })
        })
        .collect()
}

pub enum MessageScope {
    Conversation(i64),
    Message(i64),
}

fn actor(row: &SqliteRow, kind: &str, id: &str, name: &str) -> StoreResult<Actor> {
    Ok(Actor {
        kind: vocabulary(ActorKind::parse, row.try_get(kind)?)?,
        id: row.try_get(id)?,
        name: row.try_get(name)?,
    })
}

/// The columns of a [`ConversationSummary`], read through [`SUMMARY_JOINS`].
const SUMMARY_COLUMNS: &str = "
    SELECT c.id, i.key AS inbox_key, i.kind AS channel, c.subject, c.thread_key, c.status, c.priority,
           t.key AS team_key, t.name AS team_name, c.tier, a.id AS assignee_id, a.name AS assignee_name,
           c.labels, c.language, c.transfer_count, c.created_at, c.updated_at, c.last_activity_at,
           c.first_response_at, c.queued_at, c.escalation, c.sla_breached_at,
           c.csat_score, c.csat_comment, c.csat_requested_at, c.csat_answered_at,
           ct.updates_opted_out_at AS contact_updates_stopped_at,
           ct.id AS contact_id, ct.name AS contact_name, ct.email AS contact_email,
           ct.language AS contact_language, ct.metadata AS contact_metadata, ci.external_id AS contact_external_id,
           ci.unreachable_reason AS contact_unreachable,
           lm.id AS last_id, lm.direction AS last_direction, lm.kind AS last_kind,
           SUBSTR(lm.text, 1, 200) AS last_text, lm.created_at AS last_created_at";

/// The joins behind [`SUMMARY_COLUMNS`], after `FROM conversations c` (or a page of them).
const SUMMARY_JOINS: &str = "
    JOIN inboxes i ON i.id = c.inbox_id
    JOIN contacts ct ON ct.id = c.contact_id
    JOIN contact_identities ci ON ci.id = c.identity_id
    LEFT JOIN teams t ON t.id = c.team_id
    LEFT JOIN agents a ON a.id = c.assignee_id
    LEFT JOIN messages lm ON lm.id = c.last_message_id";

fn summary(row: &SqliteRow) -> StoreResult<ConversationSummary> {
    let id: i64 = row.try_get("id")?;
    let team = match row.try_get::<Option<String>, _>("team_key")? {
        Some(key) => Some(TeamRef {
            key,
            name: row.try_get("team_name")?,
        }),
        None => None,
    };
    let assignee = match row.try_get::<Option<i64>, _>("assignee_id")? {
        Some(id) => Some(AgentRef {
            id,
            name: row.try_get("assignee_name")?,
        }),
        None => None,
    };
    let last_message = match row.try_get::<Option<i64>, _>("last_id")? {
        Some(id) => Some(MessagePreview {
            id,
            direction: vocabulary(Direction::parse, row.try_get("last_direction")?)?,
            kind: vocabulary(MessageKind::parse, row.try_get("last_kind")?)?,
            text: row.try_get("last_text")?,
            created_at: Timestamp(row.try_get("last_created_at")?),
        }),
        None => None,
    };
    Ok(ConversationSummary {
        id,
        reference: format!("#{id}"),
        inbox: row.try_get("inbox_key")?,
        channel: vocabulary(ChannelKind::parse, row.try_get("channel")?)?,
        subject: row.try_get("subject")?,
        thread: row.try_get("thread_key")?,
        status: vocabulary(Status::parse, row.try_get("status")?)?,
        priority: vocabulary(Priority::parse, row.try_get("priority")?)?,
        team,
        tier: row.try_get("tier")?,
        assignee,
        labels: json_column(row.try_get("labels")?)?,
        language: row.try_get("language")?,
        transfer_count: row.try_get("transfer_count")?,
        contact: ContactRef {
            id: row.try_get("contact_id")?,
            name: row.try_get("contact_name")?,
            email: row.try_get("contact_email")?,
            external_id: row.try_get("contact_external_id")?,
            unreachable: row.try_get("contact_unreachable")?,
            language: row.try_get("contact_language")?,
            metadata: json_column(row.try_get("contact_metadata")?)?,
            updates_stopped_at: row
                .try_get::<Option<i64>, _>("contact_updates_stopped_at")?
                .map(Timestamp),
        },
        created_at: Timestamp(row.try_get("created_at")?),
        updated_at: Timestamp(row.try_get("updated_at")?),
        last_activity_at: Timestamp(row.try_get("last_activity_at")?),
        first_response_at: row.try_get::<Option<i64>, _>("first_response_at")?.map(Timestamp),
        queued_at: row.try_get::<Option<i64>, _>("queued_at")?.map(Timestamp),
        escalation: row
            .try_get::<Option<String>, _>("escalation")?
            .map(|text| json_column(&text))
            .transpose()?,
        sla_breached_at: row.try_get::<Option<i64>, _>("sla_breached_at")?.map(Timestamp),
        csat: match row.try_get::<Option<i64>, _>("csat_requested_at")? {
            None => None,
            Some(requested_at) => Some(CsatView {
                requested_at: Timestamp(requested_at),
                score: row.try_get("csat_score")?,
                comment: row.try_get("csat_comment")?,
                answered_at: row.try_get::<Option<i64>, _>("csat_answered_at")?.map(Timestamp),
            }),
        },
        last_message,
    })
}

pub async fn ping(pool: &SqlitePool) -> StoreResult<()> {
    sqlx::query("SELECT 1").execute(pool).await?;
    Ok(())
}

pub async fn agent_by_token_hash(pool: &SqlitePool, token_hash: &[u8]) -> StoreResult<Option<Agent>> {
    let row = sqlx::query(&format!("{AGENT_COLUMNS} WHERE a.token_hash = ?"))
        .bind(token_hash)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(agent_from_row).transpose()
}

pub async fn list_agents(pool: &SqlitePool) -> StoreResult<Vec<Agent>> {
    let rows = sqlx::query(&format!("{AGENT_COLUMNS} ORDER BY a.name"))
        .fetch_all(pool)
        .await?;
    rows.iter().map(agent_from_row).collect()
}

pub async fn team_counts(pool: &SqlitePool) -> StoreResult<Vec<TeamCounts>> {
    // Each count is one range of an index: the waiting queue's, the team's by status,
    // the members'. A breach is rare, so its scan of the team's unresolved ones is short.
    let rows = sqlx::query(
        "SELECT t.key, t.name, t.tier,
                (SELECT COUNT(*) FROM conversations c INDEXED BY conversations_waiting
                 WHERE c.team_id = t.id AND c.status = 'open' AND c.assignee_id IS NULL) AS waiting,
                (SELECT COUNT(*) FROM conversations c
                 WHERE c.team_id = t.id AND c.status = 'open' AND c.assignee_id IS NOT NULL) AS assigned,
                (SELECT COUNT(*) FROM conversations c
                 WHERE c.team_id = t.id AND c.status IN ('open', 'pending', 'snoozed')
                   AND c.sla_breached_at IS NOT NULL) AS breached,
                (SELECT MIN(c.queued_at) FROM conversations c INDEXED BY conversations_waiting
                 WHERE c.team_id = t.id AND c.status = 'open' AND c.assignee_id IS NULL) AS oldest_waiting,
                (SELECT COUNT(*) FROM agents a WHERE a.team_id = t.id AND a.available = 1) AS agents_available,
                (SELECT COUNT(*) FROM agents a WHERE a.team_id = t.id) AS agents
         FROM teams t WHERE t.active = 1 ORDER BY t.tier, t.key",
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
                oldest_waiting_since: row.try_get::<Option<i64>, _>("oldest_waiting")?.map(Timestamp),
                agents_available: row.try_get("agents_available")?,
                agents: row.try_get("agents")?,
            })
        })
        .collect()
}

pub async fn list_conversations(
    pool: &SqlitePool,
    filter: &ConversationFilter,
    after: Option<Cursor>,
    limit: u32,
) -> StoreResult<ConversationPage> {
    let mut conn = pool.acquire().await?;
    // The page is chosen from the conversations table alone and joined afterwards: when
    // the filter leaves a sort to do (an agent's whole history), only ids and times are
    // sorted, not every joined row of the match.
    let mut query = QueryBuilder::<Sqlite>::new(SUMMARY_COLUMNS);
    query.push(" FROM (SELECT c.id FROM conversations c WHERE 1 = 1");
    if let Some(team) = &filter.team {
        let team_id: Option<i64> = sqlx::query_scalar("SELECT id FROM teams WHERE key = ?")
            .bind(team)
            .fetch_optional(&mut *conn)
            .await?;
        let Some(team_id) = team_id else {
            return Err(StoreError::Invalid {
                field: "team",
                problem: format!("`{team}` is not a team"),
            });
        };
        query.push(" AND c.team_id = ").push_bind(team_id);
    }
    if let Some(inbox) = &filter.inbox {
        let inbox_id: Option<i64> = sqlx::query_scalar("SELECT id FROM inboxes WHERE key = ?")
            .bind(inbox)
            .fetch_optional(&mut *conn)
            .await?;
        let Some(inbox_id) = inbox_id else {
            return Err(StoreError::Invalid {
                field: "inbox",
                problem: format!("`{inbox}` is not an inbox"),
            });
        };
        query.push(" AND c.inbox_id = ").push_bind(inbox_id);
    }
    if !filter.statuses.is_empty() {
        query.push(" AND c.status IN (");
        let mut statuses = query.separated(", ");
        for status in &filter.statuses {
            statuses.push_bind(status.as_str());
        }
        query.push(")");
    }
    match &filter.assignee {
        AssigneeFilter::Anyone => {}
        AssigneeFilter::Nobody => {
            query.push(" AND c.assignee_id IS NULL");
        }
        AssigneeFilter::Agent(selector) => {
            let id = resolve_agent(&mut conn, selector).await?;
            query.push(" AND c.assignee_id = ").push_bind(id);
        }
    }
    if let Some(cursor) = after {
        query
            .push(" AND (c.last_activity_at, c.id) < (")
            .push_bind(cursor.last_activity_at)
            .push(", ")
            .push_bind(cursor.id)
            .push(")");
    }
    // One more than asked tells whether there is a next page.
    query
        .push(" ORDER BY c.last_activity_at DESC, c.id DESC LIMIT ")
        .push_bind(i64::from(limit) + 1)
        // CROSS JOIN keeps the page the outer loop: with the limit a bound parameter the
        // planner would otherwise walk every conversation and look each up in the page.
        .push(") page CROSS JOIN conversations c ON c.id = page.id")
        .push(SUMMARY_JOINS)
        .push(" ORDER BY c.last_activity_at DESC, c.id DESC");
    let rows = query.build().fetch_all(&mut *conn).await?;
    let mut conversations = rows.iter().map(summary).collect::<StoreResult<Vec<_>>>()?;
    let next_cursor = if conversations.len() > limit as usize {
        conversations.truncate(limit as usize);
        conversations.last().map(|last| {
            Cursor {
                last_activity_at: last.last_activity_at.0,
                id: last.id,
            }
            .encode()
        })
    } else {
        None
    };
    Ok(ConversationPage {
        conversations,
        next_cursor,
    })
}

pub async fn conversation(pool: &SqlitePool, id: i64) -> StoreResult<ConversationDetail> {
    // One read transaction: the conversation, its messages and its events agree.
    let mut tx = pool.begin().await?;
    // The clocks come as one JSON column of the same row: a statement through sqlx
    // costs about 50 µs here, a fifth of the whole detail.
    let row = sqlx::query(&format!(
        "{SUMMARY_COLUMNS},
                (SELECT json_group_array(json_array(kind, state, target_ms, started_at, warn_at, due_at, warned_at,
                                                    breached_at, stopped_at))
                 FROM sla_clocks WHERE conversation_id = c.id) AS sla
         FROM conversations c {SUMMARY_JOINS} WHERE c.id = ?"
    ))
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(StoreError::NotFound("conversation"))?;
    let conversation = summary(&row)?;
    let messages = message_views(&mut tx, MessageScope::Conversation(id)).await?;
    let events = sqlx::query(
        "SELECT e.id, e.kind, e.actor_kind, e.actor_id, COALESCE(ag.name, ct.name) AS actor_name, e.data, e.created_at
         FROM events e
         LEFT JOIN agents ag ON e.actor_kind = 'agent' AND ag.id = e.actor_id
         LEFT JOIN contacts ct ON e.actor_kind = 'contact' AND ct.id = e.actor_id
         WHERE e.conversation_id = ? ORDER BY e.id",
    )
    .bind(id)
    .fetch_all(&mut *tx)
    .await?
    .iter()
    .map(|row| {
        Ok(EventView {
            id: row.try_get("id")?,
            kind: row.try_get("kind")?,
            actor: actor(row, "actor_kind", "actor_id", "actor_name")?,
            data: json_column(row.try_get("data")?)?,
            created_at: Timestamp(row.try_get("created_at")?),
        })
    })
    .collect::<StoreResult<Vec<_>>>()?;
    let sla = clock_views(row.try_get("sla")?)?;
    tx.commit().await?;
    Ok(ConversationDetail {
        conversation,
        sla,
        messages,
        events,
    })
}

/// A conversation's clocks from their JSON column, in the order of [`ClockKind::ALL`].
fn clock_views(json: &str) -> StoreResult<Vec<ClockView>> {
    type Row = (
        String,
        String,
        i64,
        i64,
        Option<i64>,
        Option<i64>,
        Option<i64>,
        Option<i64>,
        Option<i64>,
    );
    let rows: Vec<Row> = json_column(json)?;
    let mut views: Vec<(usize, ClockView)> = rows
        .into_iter()
        .map(|(kind, state, target, started, warn, due, warned, breached, stopped)| {
            let order = ClockKind::ALL
                .iter()
                .position(|known| known.as_str() == kind)
                .unwrap_or(ClockKind::ALL.len());
            let view = ClockView {
                kind,
                state,
                target: human_duration(target),
                started_at: Timestamp(started),
                warn_at: warn.map(Timestamp),
                due_at: due.map(Timestamp),
                warned_at: warned.map(Timestamp),
                breached_at: breached.map(Timestamp),
                stopped_at: stopped.map(Timestamp),
            };
            (order, view)
        })
        .collect();
    views.sort_by_key(|(order, _)| *order);
    Ok(views.into_iter().map(|(_, view)| view).collect())
}

pub async fn attachment(pool: &SqlitePool, id: i64) -> StoreResult<AttachmentData> {
    let row = sqlx::query(
        "SELECT a.filename, a.content_type, b.data FROM attachments a JOIN blobs b ON b.sha256 = a.blob_sha256
         WHERE a.id = ?",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?
    .ok_or(StoreError::NotFound("attachment"))?;
    Ok(AttachmentData {
        filename: row.try_get("filename")?,
        content_type: row.try_get("content_type")?,
        data: row.try_get("data")?,
    })
}

pub async fn next_delivery_due(pool: &SqlitePool, held: &str) -> StoreResult<Option<i64>> {
    // Only rows first in their conversation's line count: one waiting behind an
    // earlier message is due when that message is done, and its completion wakes
    // the dispatcher. Counting it would hide a later retry time behind a past one.
    let due: Option<i64> = sqlx::query_scalar(
        "SELECT MIN(o.next_attempt_at) FROM outbox o
         WHERE o.status = 'scheduled' AND o.inbox_id NOT IN (SELECT value FROM json_each(?1))
           AND NOT EXISTS (
               SELECT 1 FROM outbox other
               WHERE other.conversation_id = o.conversation_id AND other.id != o.id
                 AND other.status IN ('scheduled', 'in_flight')
                 AND (other.status = 'in_flight' OR other.id < o.id))",
    )
    .bind(held)
    .fetch_one(pool)
    .await?;
    Ok(due)
}

pub async fn channel_cursor(pool: &SqlitePool, inbox_id: i64, name: &str) -> StoreResult<Option<String>> {
    Ok(
        sqlx::query_scalar("SELECT value FROM channel_cursors WHERE inbox_id = ?1 AND name = ?2")
            .bind(inbox_id)
            .bind(name)
            .fetch_optional(pool)
            .await?,
    )
}

async fn resolve_agent(conn: &mut SqliteConnection, selector: &AgentSelector) -> StoreResult<i64> {
    let (found, problem) = match selector {
        AgentSelector::Id(id) => (
            sqlx::query_scalar("SELECT id FROM agents WHERE id = ?")
                .bind(*id)
                .fetch_optional(&mut *conn)
                .await?,
            format!("no agent has id {id}"),
        ),
        AgentSelector::Name(name) => (
            sqlx::query_scalar("SELECT id FROM agents WHERE name = ?")
                .bind(name)
                .fetch_optional(&mut *conn)
                .await?,
            format!("no agent is named `{name}`"),
        ),
    };
    found.ok_or(StoreError::Invalid {
        field: "assignee",
        problem,
    })
}

fn agent_from_row(row: &SqliteRow) -> StoreResult<Agent> {
    Ok(Agent {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        role: vocabulary(Role::parse, row.try_get("role")?)?,
        team: row.try_get("team_key")?,
        available: row.try_get("available")?,
        capacity: row.try_get("capacity")?,
        open_conversations: row.try_get("open_count")?,
        created_at: Timestamp(row.try_get("created_at")?),
    })
}

pub async fn agent(pool: &SqlitePool, id: i64) -> StoreResult<Agent> {
    let row = sqlx::query(&format!("{AGENT_COLUMNS} WHERE a.id = ?"))
        .bind(id)
        .fetch_optional(pool)
        .await?
        .ok_or(StoreError::NotFound("agent"))?;
    agent_from_row(&row)
}

const AGENT_COLUMNS: &str = "SELECT a.id, a.name, a.role, t.key AS team_key, a.created_at, a.available, a.capacity,
        (SELECT COUNT(*) FROM conversations c WHERE c.assignee_id = a.id AND c.status = 'open') AS open_count
     FROM agents a LEFT JOIN teams t ON t.id = a.team_id";

pub async fn next_sla_fire(pool: &SqlitePool) -> StoreResult<Option<i64>> {
    // Two index lookups (each MIN reads the first entry of its index).
    Ok(sqlx::query_scalar(
        "SELECT MIN(at) FROM (SELECT MIN(next_fire_at) AS at FROM sla_clocks WHERE next_fire_at IS NOT NULL
                            UNION ALL SELECT MIN(fire_at) FROM conversation_timers)",
    )
    .fetch_one(pool)
    .await?)
}

/// `asked_since`: the earliest question still open (now less the answer window).
pub async fn csat_page(pool: &SqlitePool, token: &str, asked_since: i64) -> StoreResult<CsatPage> {
    let row = sqlx::query(
        "SELECT c.id, c.csat_score, c.csat_comment, COALESCE(ct.language, c.language) AS language,
                c.status = 'resolved' AND c.csat_requested_at >= ?2 AS open
         FROM conversations c JOIN contacts ct ON ct.id = c.contact_id WHERE c.csat_token = ?1",
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

const DELIVERY_COLUMNS: &str = "SELECT o.id, o.message_id, o.conversation_id, i.key AS inbox, i.kind AS channel,
        m.kind, o.status, o.attempts, o.next_attempt_at, o.expires_at, o.last_error, o.receipt, o.sent_at,
        o.created_at, o.updated_at
     FROM outbox o JOIN inboxes i ON i.id = o.inbox_id JOIN messages m ON m.id = o.message_id";

fn delivery_record(row: &SqliteRow) -> StoreResult<DeliveryRecord> {
    let status = vocabulary(DeliveryStatus::parse, row.try_get("status")?)?;
    Ok(DeliveryRecord {
        id: row.try_get("id")?,
        message_id: row.try_get("message_id")?,
        conversation_id: row.try_get("conversation_id")?,
        inbox: row.try_get("inbox")?,
        channel: vocabulary(ChannelKind::parse, row.try_get("channel")?)?,
        kind: vocabulary(MessageKind::parse, row.try_get("kind")?)?,
        status,
        attempts: row.try_get("attempts")?,
        next_attempt_at: (status == DeliveryStatus::Scheduled)
            .then(|| row.try_get("next_attempt_at").map(Timestamp))
            .transpose()?,
        expires_at: Timestamp(row.try_get("expires_at")?),
        last_error: row.try_get("last_error")?,
        receipt: row
            .try_get::<Option<String>, _>("receipt")?
            .map(|text| json_column(&text))
            .transpose()?,
        sent_at: row.try_get::<Option<i64>, _>("sent_at")?.map(Timestamp),
        created_at: Timestamp(row.try_get("created_at")?),
        updated_at: Timestamp(row.try_get("updated_at")?),
    })
}

pub async fn list_deliveries(
    pool: &SqlitePool,
    status: Option<DeliveryStatus>,
    before: Option<i64>,
    limit: u32,
) -> StoreResult<DeliveryPage> {
    let mut query = QueryBuilder::<Sqlite>::new(DELIVERY_COLUMNS);
    query.push(" WHERE o.id < ").push_bind(before.unwrap_or(i64::MAX));
    if let Some(status) = status {
        query.push(" AND o.status = ").push_bind(status.as_str());
    }
    // One more than asked: whether a next page exists.
    query.push(" ORDER BY o.id DESC LIMIT ").push_bind(i64::from(limit) + 1);
    let rows = query.build().fetch_all(pool).await?;
    let mut deliveries = rows.iter().map(delivery_record).collect::<StoreResult<Vec<_>>>()?;
    let next_cursor = (deliveries.len() > limit as usize).then(|| {
        deliveries.truncate(limit as usize);
        deliveries.last().map(|last| last.id.to_string())
    });
    Ok(DeliveryPage {
        deliveries,
        next_cursor: next_cursor.flatten(),
    })
}

pub async fn delivery(pool: &SqlitePool, id: i64) -> StoreResult<DeliveryRecord> {
    let row = sqlx::query(&format!("{DELIVERY_COLUMNS} WHERE o.id = ?1"))
        .bind(id)
        .fetch_optional(pool)
        .await?
        .ok_or(StoreError::NotFound("delivery"))?;
    delivery_record(&row)
}

pub async fn outbox_gauges(pool: &SqlitePool) -> StoreResult<OutboxGauges> {
    // Each count walks an index: the unsent rows' and the failed rows' are partial (a
    // backlog's size); the whole table's is one pass over its smallest index.
    let unsent: Vec<(String, i64)> = sqlx::query_as(
        "SELECT status, COUNT(*) FROM outbox WHERE status IN ('scheduled', 'in_flight') GROUP BY status",
    )
    .fetch_all(pool)
    .await?;
    let failed: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE status = 'failed'")
        .fetch_one(pool)
        .await?;
    let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox")
        .fetch_one(pool)
        .await?;
    let oldest_unsent_at: Option<i64> = sqlx::query_scalar(
        "SELECT created_at FROM outbox WHERE id = (SELECT MIN(id) FROM outbox WHERE status IN ('scheduled', 'in_flight'))",
    )
    .fetch_optional(pool)
    .await?;
    let count = |status: &str| unsent.iter().find(|(s, _)| s == status).map_or(0, |(_, n)| *n);
    let (scheduled, in_flight) = (count("scheduled"), count("in_flight"));
    let unsigned = |n: i64| u64::try_from(n).unwrap_or(0);
    Ok(OutboxGauges {
        scheduled: unsigned(scheduled),
        in_flight: unsigned(in_flight),
        failed: unsigned(failed),
        sent: unsigned(total - scheduled - in_flight - failed),
        oldest_unsent_at,
    })
}

/// When the next claimable event delivery is due: rows waiting behind an earlier one, or
/// for a held or disabled subscription, do not count (each would make the dispatcher
/// spin).
pub async fn next_event_delivery_due(pool: &SqlitePool, held: &str) -> StoreResult<Option<i64>> {
    Ok(sqlx::query_scalar(&format!(
        "SELECT MIN(d.next_attempt_at) FROM event_deliveries d JOIN subscriptions s ON s.id = d.subscription_id
         WHERE {}",
        super::tx::CLAIMABLE_EVENTS.replace("?held", "?1")
    ))
    .bind(held)
    .fetch_one(pool)
    .await?)
}

/// A subscription's deliveries, newest first.
pub async fn subscription_deliveries(pool: &SqlitePool, id: i64, limit: u32) -> StoreResult<Vec<SubscriptionDelivery>> {
    let exists: Option<i64> = sqlx::query_scalar("SELECT id FROM subscriptions WHERE id = ?1 AND deleted_at IS NULL")
        .bind(id)
        .fetch_optional(pool)
        .await?;
    if exists.is_none() {
        return Err(StoreError::NotFound("subscription"));
    }
    let rows = sqlx::query(
        "SELECT id, event_type, conversation_id, status, attempts, next_attempt_at, last_error, sent_at, created_at
         FROM event_deliveries WHERE subscription_id = ?1 ORDER BY id DESC LIMIT ?2",
    )
    .bind(id)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            let status = DeliveryStatus::parse(row.try_get("status")?).unwrap_or(DeliveryStatus::Failed);
            Ok(SubscriptionDelivery {
                id: row.try_get("id")?,
                event_type: row.try_get("event_type")?,
                conversation_id: row.try_get("conversation_id")?,
                status,
                attempts: row.try_get("attempts")?,
                next_attempt_at: (status == DeliveryStatus::Scheduled)
                    .then(|| row.try_get("next_attempt_at").map(Timestamp))
                    .transpose()?,
                last_error: row.try_get("last_error")?,
                sent_at: row.try_get::<Option<i64>, _>("sent_at")?.map(Timestamp),
                created_at: Timestamp(row.try_get("created_at")?),
            })
        })
        .collect()
}

const SUBSCRIPTION_COLUMNS: &str = "SELECT id, url, events, secret, description, active, disabled_reason, disabled_at,
        created_at, updated_at FROM subscriptions";

fn subscription(row: &SqliteRow) -> StoreResult<Subscription> {
    Ok(Subscription {
        id: row.try_get("id")?,
        url: row.try_get("url")?,
        events: json_column(row.try_get("events")?)?,
        secret: row.try_get("secret")?,
        description: row.try_get("description")?,
        active: row.try_get("active")?,
        disabled_reason: row.try_get("disabled_reason")?,
        disabled_at: row.try_get::<Option<i64>, _>("disabled_at")?.map(Timestamp),
        created_at: Timestamp(row.try_get("created_at")?),
        updated_at: Timestamp(row.try_get("updated_at")?),
    })
}

#[async_trait]
impl Queries for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        ping(&self.reader).await
    }

    async fn agent_by_token_hash(&self, token_hash: &[u8]) -> StoreResult<Option<Agent>> {
        agent_by_token_hash(&self.reader, token_hash).await
    }

    async fn agents(&self) -> StoreResult<Vec<Agent>> {
        list_agents(&self.reader).await
    }

    async fn agent(&self, id: i64) -> StoreResult<Agent> {
        agent(&self.reader, id).await
    }

    async fn team_counts(&self) -> StoreResult<Vec<TeamCounts>> {
        team_counts(&self.reader).await
    }

    async fn conversations(
        &self,
        filter: &ConversationFilter,
        after: Option<Cursor>,
        limit: u32,
    ) -> StoreResult<ConversationPage> {
        list_conversations(&self.reader, filter, after, limit).await
    }

    async fn conversation(&self, id: i64) -> StoreResult<ConversationDetail> {
        conversation(&self.reader, id).await
    }

    async fn message(&self, id: i64) -> StoreResult<MessageView> {
        let mut conn = self.reader.acquire().await?;
        message_views(&mut conn, MessageScope::Message(id))
            .await?
            .pop()
            .ok_or(StoreError::NotFound("message"))
    }

    async fn attachment(&self, id: i64) -> StoreResult<AttachmentData> {
        attachment(&self.reader, id).await
    }

    async fn deliveries(
        &self,
        status: Option<DeliveryStatus>,
        before: Option<i64>,
        limit: u32,
    ) -> StoreResult<DeliveryPage> {
        list_deliveries(&self.reader, status, before, limit).await
    }

    async fn delivery(&self, id: i64) -> StoreResult<DeliveryRecord> {
        delivery(&self.reader, id).await
    }

    async fn outbox_gauges(&self) -> StoreResult<OutboxGauges> {
        outbox_gauges(&self.reader).await
    }

    async fn subscriptions(&self) -> StoreResult<Vec<Subscription>> {
        let rows = sqlx::query(&format!("{SUBSCRIPTION_COLUMNS} WHERE deleted_at IS NULL ORDER BY id"))
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(subscription).collect()
    }

    async fn subscription(&self, id: i64) -> StoreResult<Subscription> {
        let row = sqlx::query(&format!("{SUBSCRIPTION_COLUMNS} WHERE id = ?1 AND deleted_at IS NULL"))
            .bind(id)
            .fetch_optional(&self.reader)
            .await?
            .ok_or(StoreError::NotFound("subscription"))?;
        subscription(&row)
    }

    async fn subscription_deliveries(&self, id: i64, limit: u32) -> StoreResult<Vec<SubscriptionDelivery>> {
        subscription_deliveries(&self.reader, id, limit).await
    }

    async fn csat_page(&self, token: &str, asked_since: i64) -> StoreResult<CsatPage> {
        csat_page(&self.reader, token, asked_since).await
    }
}
