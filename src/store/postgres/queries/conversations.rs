//! Conversations as agents see them: pages of summaries, a detail with its messages,
//! events and clocks, attachments.

use std::collections::HashMap;

use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder, Row};

use crate::model::clock::ClockKind;
use crate::model::{ActorKind, DeliveryStatus, Direction, MessageKind, Priority, Status, Timestamp, human_duration};
use crate::query::*;
use crate::store::columns::{json_column, vocabulary};
use crate::store::{AgentSelector, StoreError, StoreResult};

pub async fn message_views(conn: &mut PgConnection, scope: MessageScope) -> StoreResult<Vec<MessageView>> {
    let (filter, id) = match scope {
        MessageScope::Conversation(id) => ("m.conversation_id = $1", id),
        MessageScope::Message(id) => ("m.id = $1", id),
    };
    let rows = sqlx::query(&format!(
        "SELECT m.id, m.conversation_id, m.direction, m.kind, m.author_kind, m.author_id, m.text, m.html,
                m.external_id, m.language, m.metadata, m.created_at,
                COALESCE(ag.name, ct.name) AS author_name,
                o.id AS delivery_id, o.status AS delivery_status, o.attempts, o.next_attempt_at, o.last_error,
                o.sent_at, dr.state AS channel_state
         FROM messages m
         LEFT JOIN agents ag ON m.author_kind = 'agent' AND ag.id = m.author_id
         LEFT JOIN contacts ct ON m.author_kind = 'contact' AND ct.id = m.author_id
         LEFT JOIN outbox o ON o.message_id = m.id
         LEFT JOIN delivery_reports dr ON dr.inbox_id = o.inbox_id AND dr.external_id = o.external_id
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
                    channel_state: row.try_get("channel_state")?,
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

fn actor(row: &PgRow, kind: &str, id: &str, name: &str) -> StoreResult<Actor> {
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

fn summary(row: &PgRow) -> StoreResult<ConversationSummary> {
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
        channel: vocabulary(crate::channels::kind, row.try_get("channel")?)?,
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

/// Limits a query on `conversations c` to what the list filter and its caller's
/// visibility allow.
pub(super) async fn push_filter(
    conn: &mut PgConnection,
    query: &mut QueryBuilder<'_, Postgres>,
    filter: &ConversationFilter,
) -> StoreResult<()> {
    if !filter.teams.is_empty() {
        let mut team_ids = Vec::with_capacity(filter.teams.len());
        for team in &filter.teams {
            let team_id: Option<i64> = sqlx::query_scalar("SELECT id FROM teams WHERE key = $1")
                .bind(team)
                .fetch_optional(&mut *conn)
                .await?;
            let Some(team_id) = team_id else {
                return Err(StoreError::Invalid {
                    field: "team",
                    problem: format!("`{team}` is not a team"),
                });
            };
            team_ids.push(team_id);
        }
        query.push(" AND c.team_id IN (");
        let mut ids = query.separated(", ");
        for team_id in team_ids {
            ids.push_bind(team_id);
        }
        query.push(")");
    }
    if let Some(inbox) = &filter.inbox {
        let inbox_id: Option<i64> = sqlx::query_scalar("SELECT id FROM inboxes WHERE key = $1")
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
            let id = resolve_agent(conn, selector).await?;
            query.push(" AND c.assignee_id = ").push_bind(id);
        }
    }
    if !filter.priorities.is_empty() {
        query.push(" AND c.priority IN (");
        let mut priorities = query.separated(", ");
        for priority in &filter.priorities {
            priorities.push_bind(priority.as_str());
        }
        query.push(")");
    }
    if let Some(label) = &filter.label {
        // Containment of a one-string array matches string elements only, as SQLite's
        // `json_each(..).value = ?` does (a number 5 is not the label "5").
        query
            .push(" AND c.labels::jsonb @> jsonb_build_array(")
            .push_bind(label.clone())
            .push("::text)");
    }
    if let Some(contact) = filter.contact {
        query.push(" AND c.contact_id = ").push_bind(contact);
    }
    if let Some(channel) = filter.channel {
        query
            .push(" AND c.inbox_id IN (SELECT id FROM inboxes WHERE kind = ")
            .push_bind(channel.as_str())
            .push(")");
    }
    match filter.sla {
        None => {}
        Some(SlaFilter::Breached) => {
            query.push(" AND c.sla_breached_at IS NOT NULL AND c.status IN ('open', 'pending', 'snoozed')");
        }
        Some(SlaFilter::AtRisk) => {
            query.push(
                " AND EXISTS (SELECT 1 FROM sla_clocks k WHERE k.conversation_id = c.id AND k.state = 'running'
                   AND k.warned_at IS NOT NULL AND k.breached_at IS NULL)",
            );
        }
    }
    let scope = scope_of(conn, &filter.visible_to).await?;
    push_scope(query, &scope);
    Ok(())
}

pub async fn list_conversations(
    pool: &PgPool,
    filter: &ConversationFilter,
    after: Option<Cursor>,
    limit: u32,
) -> StoreResult<ConversationPage> {
    let mut conn = pool.acquire().await?;
    // The page is chosen from the conversations table alone and joined afterwards: when
    // the filter leaves a sort to do (an agent's whole history), only ids and times are
    // sorted, not every joined row of the match.
    let mut query = QueryBuilder::<Postgres>::new(SUMMARY_COLUMNS);
    query.push(" FROM (SELECT c.id FROM conversations c WHERE 1 = 1");
    push_filter(&mut conn, &mut query, filter).await?;
    let (compare, order) = match filter.order {
        ListOrder::Newest => ("<", " ORDER BY c.last_activity_at DESC, c.id DESC"),
        ListOrder::Oldest => (">", " ORDER BY c.last_activity_at ASC, c.id ASC"),
    };
    if let Some(cursor) = after {
        query
            .push(format!(" AND (c.last_activity_at, c.id) {compare} ("))
            .push_bind(cursor.last_activity_at)
            .push(", ")
            .push_bind(cursor.id)
            .push(")");
    }
    // One more than asked tells whether there is a next page.
    query
        .push(order)
        .push(" LIMIT ")
        .push_bind(i64::from(limit) + 1)
        // A plain join: PostgreSQL plans the page first by itself (SQLite needed a CROSS
        // JOIN to keep the page the outer loop, which PostgreSQL rejects with ON).
        .push(") page JOIN conversations c ON c.id = page.id")
        .push(SUMMARY_JOINS)
        .push(order);
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

pub async fn conversation(pool: &PgPool, id: i64) -> StoreResult<ConversationDetail> {
    // One read transaction: the conversation, its messages and its events agree. Each
    // statement of a READ COMMITTED transaction takes its own snapshot; REPEATABLE READ
    // gives them one, as SQLite's read transaction does.
    let mut tx = pool
        .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .await?;
    // The clocks come as one JSON column of the same row: each statement is a round
    // trip to the server. json_agg of no rows is NULL where SQLite's json_group_array
    // gives `[]`.
    let row = sqlx::query(&format!(
        "{SUMMARY_COLUMNS},
                (SELECT COALESCE(json_agg(json_build_array(kind, state, target_ms, started_at, warn_at, due_at,
                                                           warned_at, breached_at, stopped_at))::text, '[]')
                 FROM sla_clocks WHERE conversation_id = c.id) AS sla
         FROM conversations c {SUMMARY_JOINS} WHERE c.id = $1"
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
         WHERE e.conversation_id = $1 ORDER BY e.id",
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
        reply_window: None,
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

pub async fn attachment(pool: &PgPool, id: i64) -> StoreResult<AttachmentData> {
    let row = sqlx::query(
        "SELECT a.filename, a.content_type, b.data, t.key AS team_key, c.assignee_id
         FROM attachments a JOIN blobs b ON b.sha256 = a.blob_sha256
         JOIN messages m ON m.id = a.message_id JOIN conversations c ON c.id = m.conversation_id
         LEFT JOIN teams t ON t.id = c.team_id
         WHERE a.id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?
    .ok_or(StoreError::NotFound("attachment"))?;
    Ok(AttachmentData {
        filename: row.try_get("filename")?,
        content_type: row.try_get("content_type")?,
        data: row.try_get("data")?,
        team: row.try_get("team_key")?,
        assignee_id: row.try_get("assignee_id")?,
    })
}

/// [`Visibility`] with the teams' keys looked up once, for the queries it limits.
pub(super) enum Scope {
    All,
    Of { agent_id: i64, team_ids: Vec<i64> },
}

pub(super) async fn scope_of(conn: &mut PgConnection, visible_to: &Visibility) -> StoreResult<Scope> {
    let Visibility::Teams { agent_id, teams } = visible_to else {
        return Ok(Scope::All);
    };
    let team_ids = if teams.is_empty() {
        Vec::new()
    } else {
        sqlx::query_scalar("SELECT id FROM teams WHERE key = ANY($1)")
            .bind(teams)
            .fetch_all(&mut *conn)
            .await?
    };
    Ok(Scope::Of {
        agent_id: *agent_id,
        team_ids,
    })
}

/// Limits a query on `conversations c` to what the scope may see.
pub(super) fn push_scope(query: &mut QueryBuilder<'_, Postgres>, scope: &Scope) {
    let Scope::Of { agent_id, team_ids } = scope else {
        return;
    };
    query.push(" AND (c.assignee_id = ").push_bind(*agent_id);
    if !team_ids.is_empty() {
        query.push(" OR c.team_id IN (");
        let mut ids = query.separated(", ");
        for team_id in team_ids {
            ids.push_bind(*team_id);
        }
        query.push(")");
    }
    query.push(")");
}

/// Open conversations the caller may see, counted by label.
pub async fn label_counts(pool: &PgPool, visible_to: &Visibility) -> StoreResult<Vec<(String, i64)>> {
    let mut conn = pool.acquire().await?;
    let scope = scope_of(&mut conn, visible_to).await?;
    let mut query = QueryBuilder::<Postgres>::new(
        "SELECT j.value, COUNT(*) FROM conversations c CROSS JOIN LATERAL jsonb_array_elements_text(c.labels::jsonb) AS j(value)
         WHERE c.status = 'open'",
    );
    push_scope(&mut query, &scope);
    query.push(" GROUP BY j.value");
    Ok(query.build_query_as().fetch_all(&mut *conn).await?)
}

pub async fn queue_counts(pool: &PgPool, agent_id: i64, visible_to: &Visibility) -> StoreResult<QueueCounts> {
    let mut conn = pool.acquire().await?;
    let scope = scope_of(&mut conn, visible_to).await?;

    let mut count = async |extra: &str, bind: Option<i64>, after: &str| -> StoreResult<i64> {
        let mut query = QueryBuilder::<Postgres>::new("SELECT COUNT(*) FROM conversations c WHERE c.status = 'open'");
        query.push(extra);
        if let Some(bind) = bind {
            query.push_bind(bind);
        }
        query.push(after);
        push_scope(&mut query, &scope);
        Ok(query.build_query_scalar::<i64>().fetch_one(&mut *conn).await?)
    };
    let mine = count(" AND c.assignee_id = ", Some(agent_id), "").await?;
    let unassigned = count(" AND c.assignee_id IS NULL", None, "").await?;
    let team = count(
        " AND c.team_id IN (SELECT m.team_id FROM agent_teams m WHERE m.agent_id = ",
        Some(agent_id),
        ")",
    )
    .await?;
    let all = count("", None, "").await?;
    Ok(QueueCounts {
        mine,
        unassigned,
        team,
        all,
    })
}

/// The stream's conversation columns, after `JOIN conversations c`.
const STREAM_CONVERSATION: &str = "c.id AS c_id, t.key AS c_team, c.assignee_id AS c_assignee, c.status AS c_status,
    c.priority AS c_priority";

/// The joins behind [`STREAM_CONVERSATION`] and the name of who made the row, for the
/// table `alias` whose `{who}_kind` and `{who}_id` columns name them.
fn stream_joins(alias: &str, who: &str) -> String {
    format!(
        "JOIN conversations c ON c.id = {alias}.conversation_id
         LEFT JOIN teams t ON t.id = c.team_id
         LEFT JOIN agents ag ON {alias}.{who}_kind = 'agent' AND ag.id = {alias}.{who}_id
         LEFT JOIN contacts ct ON {alias}.{who}_kind = 'contact' AND ct.id = {alias}.{who}_id"
    )
}

fn stream_conversation(row: &PgRow) -> StoreResult<StreamConversation> {
    Ok(StreamConversation {
        id: row.try_get("c_id")?,
        team: row.try_get("c_team")?,
        assignee_id: row.try_get("c_assignee")?,
        status: vocabulary(Status::parse, row.try_get("c_status")?)?,
        priority: vocabulary(Priority::parse, row.try_get("c_priority")?)?,
    })
}

pub async fn stream_after(pool: &PgPool, after: StreamPosition, limit: u32) -> StoreResult<Vec<StreamItem>> {
    // One read transaction, so the two tables are read at the same commit: REPEATABLE
    // READ, as READ COMMITTED would give each statement its own snapshot.
    let mut tx = pool
        .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .await?;
    let horizon = horizon(&mut tx).await?;
    let events = sqlx::query(&format!(
        "SELECT e.tx_id, e.id, e.kind, e.actor_kind, e.actor_id, COALESCE(ag.name, ct.name) AS actor_name, e.data,
                e.created_at, {STREAM_CONVERSATION}
         FROM events e {joins}
         WHERE (e.tx_id, e.id) > ($1, $2) AND e.tx_id < $3 ORDER BY e.tx_id, e.id LIMIT $4",
        joins = stream_joins("e", "actor")
    ))
    .bind(after.event.tx)
    .bind(after.event.id)
    .bind(horizon)
    .bind(i64::from(limit))
    .fetch_all(&mut *tx)
    .await?;
    let messages = sqlx::query(&format!(
        "SELECT m.tx_id, m.id, m.direction, m.kind, m.author_kind, m.author_id,
                COALESCE(ag.name, ct.name) AS author_name, SUBSTR(m.text, 1, 500) AS text, m.created_at,
                (SELECT COUNT(*) FROM attachments a WHERE a.message_id = m.id) AS attachments,
                {STREAM_CONVERSATION}
         FROM messages m {joins}
         WHERE (m.tx_id, m.id) > ($1, $2) AND m.tx_id < $3 ORDER BY m.tx_id, m.id LIMIT $4",
        joins = stream_joins("m", "author")
    ))
    .bind(after.message.tx)
    .bind(after.message.id)
    .bind(horizon)
    .bind(i64::from(limit))
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    let mut told_events = Vec::with_capacity(events.len());
    for row in &events {
        told_events.push(StreamItem {
            conversation: stream_conversation(row)?,
            change: StreamChange::Event(EventView {
                id: row.try_get("id")?,
                kind: row.try_get("kind")?,
                actor: actor(row, "actor_kind", "actor_id", "actor_name")?,
                data: json_column(row.try_get("data")?)?,
                created_at: Timestamp(row.try_get("created_at")?),
            }),
            tx: row.try_get("tx_id")?,
        });
    }
    let mut told_messages = Vec::with_capacity(messages.len());
    for row in &messages {
        told_messages.push(StreamItem {
            conversation: stream_conversation(row)?,
            change: StreamChange::Message(StreamMessage {
                id: row.try_get("id")?,
                direction: vocabulary(Direction::parse, row.try_get("direction")?)?,
                kind: vocabulary(MessageKind::parse, row.try_get("kind")?)?,
                author: actor(row, "author_kind", "author_id", "author_name")?,
                text: row.try_get("text")?,
                attachments: row.try_get("attachments")?,
                created_at: Timestamp(row.try_get("created_at")?),
            }),
            tx: row.try_get("tx_id")?,
        });
    }
    Ok(StreamItem::merge_by_time(told_events, told_messages))
}

/// The oldest transaction still running when the read's snapshot was taken: every row
/// written by an older one is final (committed and seen, or rolled back), so the stream
/// tells rows below it only, in [`Mark`] order, and never passes one that commits later.
async fn horizon(tx: &mut PgConnection) -> StoreResult<i64> {
    Ok(
        sqlx::query_scalar("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::BIGINT")
            .fetch_one(&mut *tx)
            .await?,
    )
}

pub async fn stream_head(pool: &PgPool) -> StoreResult<StreamPosition> {
    let mut tx = pool
        .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .await?;
    let horizon = horizon(&mut tx).await?;
    let (event_tx, event, message_tx, message): (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT COALESCE(e.tx_id, 0), COALESCE(e.id, 0), COALESCE(m.tx_id, 0), COALESCE(m.id, 0)
         FROM (SELECT 1) one
         LEFT JOIN LATERAL (SELECT tx_id, id FROM events WHERE tx_id < $1 ORDER BY tx_id DESC, id DESC LIMIT 1) e
                ON TRUE
         LEFT JOIN LATERAL (SELECT tx_id, id FROM messages WHERE tx_id < $1 ORDER BY tx_id DESC, id DESC LIMIT 1) m
                ON TRUE",
    )
    .bind(horizon)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(StreamPosition {
        event: Mark {
            tx: event_tx,
            id: event,
        },
        message: Mark {
            tx: message_tx,
            id: message,
        },
    })
}

async fn resolve_agent(conn: &mut PgConnection, selector: &AgentSelector) -> StoreResult<i64> {
    let (found, problem) = match selector {
        AgentSelector::Id(id) => (
            sqlx::query_scalar("SELECT id FROM agents WHERE id = $1")
                .bind(*id)
                .fetch_optional(&mut *conn)
                .await?,
            format!("no agent has id {id}"),
        ),
        AgentSelector::Name(name) => (
            sqlx::query_scalar("SELECT id FROM agents WHERE name = $1")
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
