//! The embedded SQLite store.
//!
//! WAL journal with `synchronous = FULL`: a commit is on disk before ingest returns, so
//! a message acknowledged to its sender survives a crash or a power cut. All writes go
//! through one connection (`writer`) and take the write lock up front with
//! `BEGIN IMMEDIATE`, so a read-then-write transaction never fails halfway on a lock
//! upgrade; reads use a separate pool and see the last committed state.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::str::FromStr;
use std::sync::RwLock;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous};
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection, SqlitePool};
use switchboard_connector_core::{ChannelKind, InboundMessage, OutboundKind, OutboundMessage};

use super::*;
use crate::model::{ActorKind, DeliveryStatus, Direction, MessageKind, Priority, Role, Status, Timestamp};
use crate::router::RouteInput;
use crate::templates::{AckContact, AckContext, AckConversation, AckInbox};

/// Read connections. Agents' list and detail queries run here in parallel with writes.
const READERS: u32 = 4;
/// How long a statement waits for another process (the CLI) holding the write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

pub struct SqliteStore {
    /// The one write connection: SQLite has one writer at a time anyway, and queueing in
    /// the pool is cheaper than retrying on `SQLITE_BUSY`.
    writer: SqlitePool,
    reader: SqlitePool,
    /// Configured teams by key, `(id, display name)`, set by `sync_catalog`: ingest needs
    /// them for every new conversation and they change only with the config.
    teams: RwLock<HashMap<String, (i64, String)>>,
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
        if let Some(folder) = options
            .get_filename()
            .parent()
            .filter(|folder| !folder.as_os_str().is_empty())
        {
            create_folder(folder)?;
        }
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await?;
        super::migrations::migrator().await?.run(&writer).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(READERS)
            .connect_with(options)
            .await?;
        Ok(SqliteStore {
            writer,
            reader,
            teams: RwLock::new(HashMap::new()),
        })
    }

    fn team(&self, key: &str) -> Option<(i64, String)> {
        self.teams
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(key)
            .cloned()
    }

    async fn load_teams(&self) -> StoreResult<()> {
        let rows = sqlx::query("SELECT id, key, name FROM teams WHERE active = 1")
            .fetch_all(&self.writer)
            .await?;
        let mut teams = HashMap::new();
        for row in rows {
            teams.insert(
                row.try_get::<String, _>("key")?,
                (row.try_get("id")?, row.try_get("name")?),
            );
        }
        *self.teams.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = teams;
        Ok(())
    }

    async fn message_views(&self, conn: &mut SqliteConnection, scope: MessageScope) -> StoreResult<Vec<MessageView>> {
        let (filter, id) = match scope {
            MessageScope::Conversation(id) => ("m.conversation_id = ?", id),
            MessageScope::Message(id) => ("m.id = ?", id),
        };
        let rows = sqlx::query(&format!(
            "SELECT m.id, m.conversation_id, m.direction, m.kind, m.author_kind, m.author_id, m.text, m.html,
                    m.external_id, m.language, m.created_at,
                    COALESCE(ag.name, ct.name) AS author_name,
                    o.status AS delivery_status, o.attempts, o.next_attempt_at, o.last_error, o.sent_at
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
                    attachments: attachments.remove(&id).unwrap_or_default(),
                    delivery,
                    created_at: Timestamp(row.try_get("created_at")?),
                })
            })
            .collect()
    }
}

enum MessageScope {
    Conversation(i64),
    Message(i64),
}

fn create_folder(folder: &Path) -> StoreResult<()> {
    std::fs::create_dir_all(folder)
        .map_err(|err| StoreError::Backend(format!("cannot create the database folder {}: {err}", folder.display())))
}

fn vocabulary<T>(parse: fn(&str) -> Option<T>, text: &str) -> StoreResult<T> {
    parse(text).ok_or_else(|| StoreError::Backend(format!("unexpected value `{text}` in the database")))
}

fn json_column<T: serde::de::DeserializeOwned>(text: &str) -> StoreResult<T> {
    serde_json::from_str(text).map_err(|err| StoreError::Backend(format!("unreadable JSON in the database: {err}")))
}

fn actor(row: &SqliteRow, kind: &str, id: &str, name: &str) -> StoreResult<Actor> {
    Ok(Actor {
        kind: vocabulary(ActorKind::parse, row.try_get(kind)?)?,
        id: row.try_get(id)?,
        name: row.try_get(name)?,
    })
}

/// The columns of a [`ConversationSummary`]; callers add `WHERE`, `ORDER BY`, `LIMIT`.
const SUMMARY_SELECT: &str = "
    SELECT c.id, i.key AS inbox_key, i.kind AS channel, c.subject, c.thread_key, c.status, c.priority,
           t.key AS team_key, t.name AS team_name, c.tier, a.id AS assignee_id, a.name AS assignee_name,
           c.labels, c.language, c.transfer_count, c.created_at, c.updated_at, c.last_activity_at,
           c.first_response_at,
           ct.id AS contact_id, ct.name AS contact_name, ct.email AS contact_email,
           ct.language AS contact_language, ct.metadata AS contact_metadata, ci.external_id AS contact_external_id,
           lm.id AS last_id, lm.direction AS last_direction, lm.kind AS last_kind,
           SUBSTR(lm.text, 1, 200) AS last_text, lm.created_at AS last_created_at
    FROM conversations c
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
            language: row.try_get("contact_language")?,
            metadata: json_column(row.try_get("contact_metadata")?)?,
        },
        created_at: Timestamp(row.try_get("created_at")?),
        updated_at: Timestamp(row.try_get("updated_at")?),
        last_activity_at: Timestamp(row.try_get("last_activity_at")?),
        first_response_at: row.try_get::<Option<i64>, _>("first_response_at")?.map(Timestamp),
        last_message,
    })
}

/// An event to write with the change that caused it.
struct NewEvent {
    kind: &'static str,
    actor_kind: ActorKind,
    actor_id: Option<i64>,
    data: Value,
}

impl NewEvent {
    fn system(kind: &'static str, data: Value) -> NewEvent {
        NewEvent {
            kind,
            actor_kind: ActorKind::System,
            actor_id: None,
            data,
        }
    }

    fn by_agent(kind: &'static str, agent_id: i64, data: Value) -> NewEvent {
        NewEvent {
            kind,
            actor_kind: ActorKind::Agent,
            actor_id: Some(agent_id),
            data,
        }
    }

    fn by_contact(kind: &'static str, contact_id: i64, data: Value) -> NewEvent {
        NewEvent {
            kind,
            actor_kind: ActorKind::Contact,
            actor_id: Some(contact_id),
            data,
        }
    }
}

async fn insert_events(
    conn: &mut SqliteConnection,
    conversation_id: i64,
    events: &[NewEvent],
    now: i64,
) -> StoreResult<()> {
    if events.is_empty() {
        return Ok(());
    }
    let mut insert = QueryBuilder::<Sqlite>::new(
        "INSERT INTO events (conversation_id, kind, actor_kind, actor_id, data, created_at) ",
    );
    insert.push_values(events, |mut row, event| {
        row.push_bind(conversation_id)
            .push_bind(event.kind)
            .push_bind(event.actor_kind.as_str())
            .push_bind(event.actor_id)
            .push_bind(event.data.to_string())
            .push_bind(now);
    });
    insert.build().execute(conn).await?;
    Ok(())
}

/// A message row to insert.
struct NewMessage<'a> {
    conversation_id: i64,
    inbox_id: i64,
    direction: Direction,
    kind: MessageKind,
    author_kind: ActorKind,
    author_id: Option<i64>,
    text: &'a str,
    html: Option<&'a str>,
    external_id: Option<&'a str>,
    language: Option<&'a str>,
    metadata: Option<String>,
}

async fn insert_message(conn: &mut SqliteConnection, message: NewMessage<'_>, now: i64) -> StoreResult<i64> {
    let id = sqlx::query_scalar(
        "INSERT INTO messages (conversation_id, inbox_id, direction, kind, author_kind, author_id, text, html,
                               external_id, language, metadata, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(message.conversation_id)
    .bind(message.inbox_id)
    .bind(message.direction.as_str())
    .bind(message.kind.as_str())
    .bind(message.author_kind.as_str())
    .bind(message.author_id)
    .bind(message.text)
    .bind(message.html)
    .bind(message.external_id)
    .bind(message.language)
    .bind(message.metadata)
    .bind(now)
    .fetch_one(conn)
    .await?;
    Ok(id)
}

async fn insert_outbox(
    conn: &mut SqliteConnection,
    message_id: i64,
    conversation_id: i64,
    inbox_id: i64,
    now: i64,
    expires_at: i64,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO outbox (message_id, conversation_id, inbox_id, status, next_attempt_at, expires_at, created_at, updated_at)
         VALUES (?, ?, ?, 'scheduled', ?, ?, ?, ?)",
    )
    .bind(message_id)
    .bind(conversation_id)
    .bind(inbox_id)
    .bind(now)
    .bind(expires_at)
    .bind(now)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data).iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The contact behind an inbound message, after merging what the message says of them.
struct ContactRow {
    contact_id: i64,
    identity_id: i64,
    name: Option<String>,
    email: Option<String>,
    language: Option<String>,
    metadata: BTreeMap<String, Value>,
}

/// Finds the contact by the sender's identity in this inbox, or creates both. What the
/// channel now says of them (name, email, language, attributes) replaces what we had.
async fn find_or_create_contact(
    conn: &mut SqliteConnection,
    context: &IngestContext<'_>,
    message: &InboundMessage,
) -> StoreResult<ContactRow> {
    let sender = &message.sender;
    let existing = sqlx::query(
        "SELECT ci.id AS identity_id, c.id AS contact_id, c.name, c.email, c.language, c.metadata
         FROM contact_identities ci JOIN contacts c ON c.id = ci.contact_id
         WHERE ci.inbox_id = ? AND ci.external_id = ?",
    )
    .bind(context.inbox.id)
    .bind(&sender.external_id)
    .fetch_optional(&mut *conn)
    .await?;

    let Some(row) = existing else {
        let metadata = serde_json::to_string(&message.metadata).unwrap_or_else(|_| "{}".into());
        let contact_id: i64 = sqlx::query_scalar(
            "INSERT INTO contacts (name, email, language, metadata, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(&sender.name)
        .bind(&sender.email)
        .bind(&message.language)
        .bind(metadata)
        .bind(context.now)
        .bind(context.now)
        .fetch_one(&mut *conn)
        .await?;
        let identity_id: i64 = sqlx::query_scalar(
            "INSERT INTO contact_identities (contact_id, inbox_id, channel, external_id, created_at)
             VALUES (?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(contact_id)
        .bind(context.inbox.id)
        .bind(context.inbox.channel.as_str())
        .bind(&sender.external_id)
        .bind(context.now)
        .fetch_one(&mut *conn)
        .await?;
        return Ok(ContactRow {
            contact_id,
            identity_id,
            name: sender.name.clone(),
            email: sender.email.clone(),
            language: message.language.clone(),
            metadata: message.metadata.clone(),
        });
    };

    let mut contact = ContactRow {
        contact_id: row.try_get("contact_id")?,
        identity_id: row.try_get("identity_id")?,
        name: row.try_get("name")?,
        email: row.try_get("email")?,
        language: row.try_get("language")?,
        metadata: json_column(row.try_get("metadata")?)?,
    };
    let mut changed = false;
    for (field, new) in [
        (&mut contact.name, &sender.name),
        (&mut contact.email, &sender.email),
        (&mut contact.language, &message.language),
    ] {
        if new.is_some() && field != new {
            field.clone_from(new);
            changed = true;
        }
    }
    for (key, value) in &message.metadata {
        if contact.metadata.get(key) != Some(value) {
            contact.metadata.insert(key.clone(), value.clone());
            changed = true;
        }
    }
    if changed {
        sqlx::query("UPDATE contacts SET name = ?, email = ?, language = ?, metadata = ?, updated_at = ? WHERE id = ?")
            .bind(&contact.name)
            .bind(&contact.email)
            .bind(&contact.language)
            .bind(serde_json::to_string(&contact.metadata).unwrap_or_else(|_| "{}".into()))
            .bind(context.now)
            .bind(contact.contact_id)
            .execute(&mut *conn)
            .await?;
    }
    Ok(contact)
}

/// The conversation a new message of this contact joins, if any.
///
/// With a thread key: the contact's conversation with that key unless it is closed
/// (a resolved one reopens: the customer continues that thread). Without: the contact's
/// most recently active unresolved conversation in this inbox that has no thread key.
/// Conversations of other contacts are never joined, whatever key they carry.
async fn find_thread(
    conn: &mut SqliteConnection,
    inbox_id: i64,
    contact_id: i64,
    thread: Option<&str>,
) -> StoreResult<Option<(i64, Status)>> {
    let row = match thread {
        Some(key) => {
            sqlx::query(
                "SELECT id, status FROM conversations
                 WHERE contact_id = ? AND inbox_id = ? AND thread_key = ? AND status != 'closed'
                 ORDER BY id DESC LIMIT 1",
            )
            .bind(contact_id)
            .bind(inbox_id)
            .bind(key)
            .fetch_optional(conn)
            .await?
        }
        None => {
            sqlx::query(
                "SELECT id, status FROM conversations
                 WHERE contact_id = ? AND inbox_id = ? AND thread_key IS NULL
                   AND status IN ('open', 'pending', 'snoozed')
                 ORDER BY last_activity_at DESC, id DESC LIMIT 1",
            )
            .bind(contact_id)
            .bind(inbox_id)
            .fetch_optional(conn)
            .await?
        }
    };
    row.map(|row| Ok((row.try_get("id")?, vocabulary(Status::parse, row.try_get("status")?)?)))
        .transpose()
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }

    async fn sync_catalog(&self, teams: &[TeamSpec], inboxes: &[InboxSpec], now: i64) -> StoreResult<Catalog> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query("UPDATE teams SET active = 0").execute(&mut *tx).await?;
        for team in teams {
            sqlx::query(
                "INSERT INTO teams (key, name, active, created_at) VALUES (?, ?, 1, ?)
                 ON CONFLICT (key) DO UPDATE SET name = excluded.name, active = 1",
            )
            .bind(&team.key)
            .bind(&team.name)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query("UPDATE inboxes SET active = 0").execute(&mut *tx).await?;
        let mut catalog = Catalog::default();
        for inbox in inboxes {
            let row = sqlx::query(
                "INSERT INTO inboxes (key, name, kind, active, created_at) VALUES (?, ?, ?, 1, ?)
                 ON CONFLICT (key) DO UPDATE SET name = excluded.name, active = 1
                 RETURNING id, kind",
            )
            .bind(&inbox.key)
            .bind(&inbox.name)
            .bind(inbox.channel.as_str())
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
            let kind: String = row.try_get("kind")?;
            if kind != inbox.channel.as_str() {
                return Err(StoreError::Conflict(format!(
                    "inbox `{}` holds {kind} conversations and cannot become a {} inbox; give the new channel its own key",
                    inbox.key, inbox.channel
                )));
            }
            let reference = InboxRef {
                id: row.try_get("id")?,
                key: inbox.key.clone(),
                name: inbox.name.clone(),
                channel: inbox.channel,
            };
            catalog.inboxes.insert(inbox.key.clone(), reference);
        }
        tx.commit().await?;
        self.load_teams().await?;
        Ok(catalog)
    }

    async fn ingest(&self, context: &IngestContext<'_>, message: &InboundMessage) -> StoreResult<IngestOutcome> {
        let now = context.now;
        let inbox = context.inbox;
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;

        let duplicate = sqlx::query("SELECT id, conversation_id FROM messages WHERE inbox_id = ? AND external_id = ?")
            .bind(inbox.id)
            .bind(&message.external_id)
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(row) = duplicate {
            return Ok(IngestOutcome {
                conversation_id: row.try_get("conversation_id")?,
                message_id: row.try_get("id")?,
                duplicate: true,
                created_conversation: false,
                queued_outbound: false,
            });
        }

        let contact = find_or_create_contact(&mut tx, context, message).await?;
        let language = message.language.as_deref().or(contact.language.as_deref());
        let mut events = Vec::new();
        let existing = find_thread(&mut tx, inbox.id, contact.contact_id, message.thread.as_deref()).await?;
        let (conversation_id, routed) = match existing {
            Some((id, status)) => {
                if status != Status::Open {
                    events.push(NewEvent::by_contact(
                        "conversation.status_changed",
                        contact.contact_id,
                        json!({"from": status, "to": Status::Open, "reason": "customer_message"}),
                    ));
                }
                (id, None)
            }
            None => {
                let decision = context.router.route(&RouteInput {
                    inbox: &inbox.key,
                    channel: inbox.channel,
                    subject: message.subject.as_deref(),
                    text: &message.text,
                    language,
                    metadata: &contact.metadata,
                });
                let team = self.team(&decision.team);
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO conversations (inbox_id, contact_id, identity_id, thread_key, subject, status, priority,
                                                team_id, labels, language, created_at, updated_at, last_activity_at)
                     VALUES (?, ?, ?, ?, ?, 'open', ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                )
                .bind(inbox.id)
                .bind(contact.contact_id)
                .bind(contact.identity_id)
                .bind(&message.thread)
                .bind(&message.subject)
                .bind(decision.priority.as_str())
                .bind(team.as_ref().map(|(id, _)| *id))
                .bind(serde_json::to_string(&decision.labels).unwrap_or_else(|_| "[]".into()))
                .bind(language)
                .bind(now)
                .bind(now)
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
                events.push(NewEvent::by_contact(
                    "conversation.created",
                    contact.contact_id,
                    json!({"inbox": inbox.key, "channel": inbox.channel, "thread": message.thread}),
                ));
                events.push(NewEvent::system(
                    "conversation.routed",
                    json!({"rule": decision.rule, "team": decision.team, "priority": decision.priority, "labels": decision.labels}),
                ));
                (id, Some((decision, team)))
            }
        };

        let metadata =
            (!message.metadata.is_empty()).then(|| serde_json::to_string(&message.metadata).unwrap_or_default());
        let message_id = insert_message(
            &mut tx,
            NewMessage {
                conversation_id,
                inbox_id: inbox.id,
                direction: Direction::Inbound,
                kind: MessageKind::Message,
                author_kind: ActorKind::Contact,
                author_id: Some(contact.contact_id),
                text: &message.text,
                html: message.html.as_deref(),
                external_id: Some(&message.external_id),
                language: message.language.as_deref(),
                metadata,
            },
            now,
        )
        .await?;
        for attachment in &message.attachments {
            let sha256 = sha256_hex(&attachment.data);
            let size = attachment.data.len() as i64;
            sqlx::query("INSERT INTO blobs (sha256, size, data, created_at) VALUES (?, ?, ?, ?) ON CONFLICT (sha256) DO NOTHING")
                .bind(&sha256)
                .bind(size)
                .bind(&attachment.data)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            sqlx::query("INSERT INTO attachments (message_id, blob_sha256, filename, content_type, size) VALUES (?, ?, ?, ?, ?)")
                .bind(message_id)
                .bind(&sha256)
                .bind(&attachment.filename)
                .bind(&attachment.content_type)
                .bind(size)
                .execute(&mut *tx)
                .await?;
        }
        events.push(NewEvent::by_contact(
            "message.created",
            contact.contact_id,
            json!({"message_id": message_id, "direction": Direction::Inbound, "kind": MessageKind::Message}),
        ));

        let mut queued_outbound = false;
        if let (Some((decision, team)), Some(template)) = (&routed, context.acknowledgement) {
            let ack_context = AckContext {
                contact: AckContact {
                    name: contact.name.clone(),
                    email: contact.email.clone(),
                },
                conversation: AckConversation {
                    id: conversation_id,
                    reference: format!("#{conversation_id}"),
                    team: team
                        .as_ref()
                        .map_or_else(|| decision.team.clone(), |(_, name)| name.clone()),
                    priority: decision.priority.to_string(),
                },
                inbox: AckInbox {
                    key: inbox.key.clone(),
                    name: inbox.name.clone(),
                },
            };
            match template.render(&ack_context) {
                Ok(text) => {
                    let ack_id = insert_message(
                        &mut tx,
                        NewMessage {
                            conversation_id,
                            inbox_id: inbox.id,
                            direction: Direction::Outbound,
                            kind: MessageKind::StatusUpdate,
                            author_kind: ActorKind::System,
                            author_id: None,
                            text: &text,
                            html: None,
                            external_id: None,
                            language: None,
                            metadata: None,
                        },
                        now,
                    )
                    .await?;
                    insert_outbox(&mut tx, ack_id, conversation_id, inbox.id, now, context.expires_at).await?;
                    events.push(NewEvent::system(
                        "message.created",
                        json!({"message_id": ack_id, "direction": Direction::Outbound, "kind": MessageKind::StatusUpdate, "template": "acknowledgement"}),
                    ));
                    queued_outbound = true;
                }
                // Validated at start with sample values, so this is data the sample did
                // not foresee; the customer's message must still be taken.
                Err(error) => {
                    tracing::warn!(conversation_id, %error, "acknowledgement template failed to render");
                    events.push(NewEvent::system("acknowledgement.failed", json!({"error": error})));
                }
            }
        }

        sqlx::query(
            "UPDATE conversations SET status = 'open', resolved_at = NULL, last_activity_at = ?, updated_at = ?,
                    last_message_id = ?, language = COALESCE(language, ?)
             WHERE id = ?",
        )
        .bind(now)
        .bind(now)
        .bind(message_id)
        .bind(language)
        .bind(conversation_id)
        .execute(&mut *tx)
        .await?;
        insert_events(&mut tx, conversation_id, &events, now).await?;
        tx.commit().await?;
        Ok(IngestOutcome {
            conversation_id,
            message_id,
            duplicate: false,
            created_conversation: routed.is_some(),
            queued_outbound,
        })
    }

    async fn create_agent(&self, agent: NewAgent, now: i64) -> StoreResult<Agent> {
        let Some((team_id, _)) = self.team(&agent.team) else {
            return Err(StoreError::Invalid {
                field: "team",
                problem: format!("`{}` is not a configured team", agent.team),
            });
        };
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let taken: Option<i64> = sqlx::query_scalar("SELECT id FROM agents WHERE name = ?")
            .bind(&agent.name)
            .fetch_optional(&mut *tx)
            .await?;
        if taken.is_some() {
            return Err(StoreError::Conflict(format!(
                "an agent named `{}` already exists",
                agent.name
            )));
        }
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO agents (name, role, team_id, token_hash, created_at) VALUES (?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(&agent.name)
        .bind(agent.role.as_str())
        .bind(team_id)
        .bind(&agent.token_hash)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Agent {
            id,
            name: agent.name,
            role: agent.role,
            team: Some(agent.team),
            created_at: Timestamp(now),
        })
    }

    async fn agent_by_token_hash(&self, token_hash: &[u8]) -> StoreResult<Option<Agent>> {
        let row = sqlx::query(
            "SELECT a.id, a.name, a.role, t.key AS team_key, a.created_at
             FROM agents a LEFT JOIN teams t ON t.id = a.team_id WHERE a.token_hash = ?",
        )
        .bind(token_hash)
        .fetch_optional(&self.reader)
        .await?;
        row.as_ref().map(agent_from_row).transpose()
    }

    async fn list_agents(&self) -> StoreResult<Vec<Agent>> {
        let rows = sqlx::query(
            "SELECT a.id, a.name, a.role, t.key AS team_key, a.created_at
             FROM agents a LEFT JOIN teams t ON t.id = a.team_id ORDER BY a.name",
        )
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(agent_from_row).collect()
    }

    async fn team_summaries(&self) -> StoreResult<Vec<TeamSummary>> {
        let rows = sqlx::query(
            "SELECT t.key, t.name, t.tier,
                    COUNT(c.id) AS open_conversations,
                    COUNT(c.id) FILTER (WHERE c.assignee_id IS NULL) AS unassigned_conversations
             FROM teams t LEFT JOIN conversations c ON c.team_id = t.id AND c.status = 'open'
             WHERE t.active = 1 GROUP BY t.id ORDER BY t.tier, t.key",
        )
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(TeamSummary {
                    key: row.try_get("key")?,
                    name: row.try_get("name")?,
                    tier: row.try_get("tier")?,
                    open_conversations: row.try_get("open_conversations")?,
                    unassigned_conversations: row.try_get("unassigned_conversations")?,
                })
            })
            .collect()
    }

    async fn list_conversations(
        &self,
        filter: &ConversationFilter,
        after: Option<Cursor>,
        limit: u32,
    ) -> StoreResult<ConversationPage> {
        let mut conn = self.reader.acquire().await?;
        let mut query = QueryBuilder::<Sqlite>::new(SUMMARY_SELECT);
        query.push(" WHERE 1 = 1");
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
            .push_bind(i64::from(limit) + 1);
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

    async fn conversation(&self, id: i64) -> StoreResult<ConversationDetail> {
        // One read transaction: the conversation, its messages and its events agree.
        let mut tx = self.reader.begin().await?;
        let row = sqlx::query(&format!("{SUMMARY_SELECT} WHERE c.id = ?"))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound("conversation"))?;
        let conversation = summary(&row)?;
        let messages = self.message_views(&mut tx, MessageScope::Conversation(id)).await?;
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
        tx.commit().await?;
        Ok(ConversationDetail {
            conversation,
            messages,
            events,
        })
    }

    async fn add_agent_message(&self, new: NewAgentMessage) -> StoreResult<MessageView> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let row = sqlx::query("SELECT status, inbox_id, assignee_id FROM conversations WHERE id = ?")
            .bind(new.conversation_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound("conversation"))?;
        let status = vocabulary(Status::parse, row.try_get("status")?)?;
        let inbox_id: i64 = row.try_get("inbox_id")?;
        let assignee: Option<i64> = row.try_get("assignee_id")?;
        if !new.private && status == Status::Closed {
            return Err(StoreError::Conflict(format!(
                "conversation #{} is closed; reopen it (status open) before replying",
                new.conversation_id
            )));
        }
        let (direction, kind) = if new.private {
            (Direction::Note, MessageKind::Note)
        } else {
            (Direction::Outbound, MessageKind::Reply)
        };
        let message_id = insert_message(
            &mut tx,
            NewMessage {
                conversation_id: new.conversation_id,
                inbox_id,
                direction,
                kind,
                author_kind: ActorKind::Agent,
                author_id: Some(new.agent_id),
                text: &new.text,
                html: None,
                external_id: None,
                language: None,
                metadata: None,
            },
            new.now,
        )
        .await?;
        let mut events = vec![NewEvent::by_agent(
            "message.created",
            new.agent_id,
            json!({"message_id": message_id, "direction": direction, "kind": kind}),
        )];
        if !new.private {
            insert_outbox(
                &mut tx,
                message_id,
                new.conversation_id,
                inbox_id,
                new.now,
                new.expires_at,
            )
            .await?;
            // Whoever answers an unassigned conversation owns it, as in most help desks:
            // the customer's next message then reaches the agent they talked to.
            if assignee.is_none() {
                events.push(NewEvent::by_agent(
                    "conversation.assigned",
                    new.agent_id,
                    json!({"from": null, "to": new.agent_id, "reason": "replied"}),
                ));
            }
        }
        let public = !new.private;
        sqlx::query(
            "UPDATE conversations SET last_activity_at = ?, updated_at = ?, last_message_id = ?,
                    first_response_at = CASE WHEN ? THEN COALESCE(first_response_at, ?) ELSE first_response_at END,
                    assignee_id = CASE WHEN ? THEN COALESCE(assignee_id, ?) ELSE assignee_id END
             WHERE id = ?",
        )
        .bind(new.now)
        .bind(new.now)
        .bind(message_id)
        .bind(public)
        .bind(new.now)
        .bind(public)
        .bind(new.agent_id)
        .bind(new.conversation_id)
        .execute(&mut *tx)
        .await?;
        insert_events(&mut tx, new.conversation_id, &events, new.now).await?;
        tx.commit().await?;
        let mut conn = self.reader.acquire().await?;
        self.message_views(&mut conn, MessageScope::Message(message_id))
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
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let row = sqlx::query(
            "SELECT c.status, c.priority, c.assignee_id, c.team_id, t.key AS team_key, c.transfer_count, c.resolved_at
             FROM conversations c LEFT JOIN teams t ON t.id = c.team_id WHERE c.id = ?",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound("conversation"))?;
        let mut status = vocabulary(Status::parse, row.try_get("status")?)?;
        let mut priority = vocabulary(Priority::parse, row.try_get("priority")?)?;
        let mut assignee: Option<i64> = row.try_get("assignee_id")?;
        let mut team_id: Option<i64> = row.try_get("team_id")?;
        let team_key: Option<String> = row.try_get("team_key")?;
        let mut transfer_count: i64 = row.try_get("transfer_count")?;
        let mut resolved_at: Option<i64> = row.try_get("resolved_at")?;
        let mut events = Vec::new();

        if let Some(new_status) = changes.status
            && new_status != status
        {
            events.push(NewEvent::by_agent(
                "conversation.status_changed",
                agent_id,
                json!({"from": status, "to": new_status}),
            ));
            resolved_at = (new_status == Status::Resolved)
                .then_some(now)
                .or(resolved_at.filter(|_| new_status == Status::Closed));
            status = new_status;
        }
        if let Some(new_priority) = changes.priority
            && new_priority != priority
        {
            events.push(NewEvent::by_agent(
                "conversation.priority_changed",
                agent_id,
                json!({"from": priority, "to": new_priority}),
            ));
            priority = new_priority;
        }
        if let Some(selector) = &changes.assignee {
            let target = match selector {
                None => None,
                Some(selector) => Some(resolve_agent(&mut tx, selector).await?),
            };
            if target != assignee {
                events.push(NewEvent::by_agent(
                    "conversation.assigned",
                    agent_id,
                    json!({"from": assignee, "to": target}),
                ));
                assignee = target;
            }
        }
        if let Some(new_team) = &changes.team {
            let Some((new_team_id, _)) = self.team(new_team) else {
                return Err(StoreError::Invalid {
                    field: "team",
                    problem: format!("`{new_team}` is not a configured team"),
                });
            };
            if team_id != Some(new_team_id) {
                events.push(NewEvent::by_agent(
                    "conversation.transferred",
                    agent_id,
                    json!({"from": team_key, "to": new_team}),
                ));
                team_id = Some(new_team_id);
                transfer_count += 1;
                // The new team's queue decides who works on it, unless this same change
                // names an assignee: an agent of another team keeps no hold on it.
                if changes.assignee.is_none()
                    && let Some(current) = assignee
                {
                    let current_team: Option<i64> = sqlx::query_scalar("SELECT team_id FROM agents WHERE id = ?")
                        .bind(current)
                        .fetch_one(&mut *tx)
                        .await?;
                    if current_team != Some(new_team_id) {
                        events.push(NewEvent::by_agent(
                            "conversation.assigned",
                            agent_id,
                            json!({"from": current, "to": null, "reason": "transferred"}),
                        ));
                        assignee = None;
                    }
                }
            }
        }

        if !events.is_empty() {
            sqlx::query(
                "UPDATE conversations SET status = ?, priority = ?, assignee_id = ?, team_id = ?, transfer_count = ?,
                        resolved_at = ?, updated_at = ?
                 WHERE id = ?",
            )
            .bind(status.as_str())
            .bind(priority.as_str())
            .bind(assignee)
            .bind(team_id)
            .bind(transfer_count)
            .bind(resolved_at)
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            insert_events(&mut tx, id, &events, now).await?;
            tx.commit().await?;
        }
        self.conversation(id).await
    }

    async fn attachment(&self, id: i64) -> StoreResult<AttachmentData> {
        let row = sqlx::query(
            "SELECT a.filename, a.content_type, b.data FROM attachments a JOIN blobs b ON b.sha256 = a.blob_sha256
             WHERE a.id = ?",
        )
        .bind(id)
        .fetch_optional(&self.reader)
        .await?
        .ok_or(StoreError::NotFound("attachment"))?;
        Ok(AttachmentData {
            filename: row.try_get("filename")?,
            content_type: row.try_get("content_type")?,
            data: row.try_get("data")?,
        })
    }

    async fn release_in_flight(&self, now: i64) -> StoreResult<u64> {
        let result = sqlx::query(
            "UPDATE outbox SET status = 'scheduled', lease_until = NULL, next_attempt_at = MIN(next_attempt_at, ?), updated_at = ?
             WHERE status = 'in_flight'",
        )
        .bind(now)
        .bind(now)
        .execute(&self.writer)
        .await?;
        Ok(result.rows_affected())
    }

    async fn claim_deliveries(&self, now: i64, limit: u32, lease_until: i64) -> StoreResult<Vec<Delivery>> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let claimed: Vec<i64> = sqlx::query_scalar(
            "UPDATE outbox SET status = 'in_flight', attempts = attempts + 1, lease_until = ?, updated_at = ?
             WHERE id IN (
                 SELECT o.id FROM outbox o
                 WHERE o.status = 'scheduled' AND o.next_attempt_at <= ?
                   AND NOT EXISTS (
                       SELECT 1 FROM outbox earlier
                       WHERE earlier.conversation_id = o.conversation_id AND earlier.id < o.id
                         AND earlier.status IN ('scheduled', 'in_flight'))
                 ORDER BY o.next_attempt_at, o.id LIMIT ?)
             RETURNING id",
        )
        .bind(lease_until)
        .bind(now)
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        if claimed.is_empty() {
            return Ok(Vec::new());
        }
        let mut query = QueryBuilder::<Sqlite>::new(
            "SELECT o.id AS outbox_id, o.inbox_id, o.attempts, o.expires_at, m.id AS message_id, m.kind, m.text,
                    c.id AS conversation_id, c.thread_key, c.subject, ci.external_id AS recipient
             FROM outbox o
             JOIN messages m ON m.id = o.message_id
             JOIN conversations c ON c.id = o.conversation_id
             JOIN contact_identities ci ON ci.id = c.identity_id
             WHERE o.id IN (",
        );
        let mut ids = query.separated(", ");
        for id in &claimed {
            ids.push_bind(*id);
        }
        query.push(") ORDER BY o.id");
        let rows = query.build().fetch_all(&mut *tx).await?;
        tx.commit().await?;
        rows.iter()
            .map(|row| {
                let message_id: i64 = row.try_get("message_id")?;
                let kind = match vocabulary(MessageKind::parse, row.try_get("kind")?)? {
                    MessageKind::StatusUpdate => OutboundKind::StatusUpdate,
                    _ => OutboundKind::Reply,
                };
                Ok(Delivery {
                    outbox_id: row.try_get("outbox_id")?,
                    inbox_id: row.try_get("inbox_id")?,
                    attempts: row.try_get::<i64, _>("attempts")?.try_into().unwrap_or(u32::MAX),
                    expires_at: row.try_get("expires_at")?,
                    message: OutboundMessage {
                        delivery_id: format!("msg_{message_id}"),
                        conversation_id: row.try_get("conversation_id")?,
                        message_id,
                        recipient: row.try_get("recipient")?,
                        thread: row.try_get("thread_key")?,
                        subject: row.try_get("subject")?,
                        text: row.try_get("text")?,
                        kind,
                    },
                })
            })
            .collect()
    }

    async fn record_delivery(&self, outbox_id: i64, result: &DeliveryResult, now: i64) -> StoreResult<()> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        match result {
            DeliveryResult::Sent(receipt) => {
                let receipt = json!({"external_id": receipt.external_id, "detail": receipt.detail}).to_string();
                sqlx::query(
                    "UPDATE outbox SET status = 'sent', receipt = ?, sent_at = ?, last_error = NULL, lease_until = NULL,
                            updated_at = ?
                     WHERE id = ?",
                )
                .bind(receipt)
                .bind(now)
                .bind(now)
                .bind(outbox_id)
                .execute(&mut *tx)
                .await?;
            }
            DeliveryResult::RetryAt { at, error } => {
                sqlx::query(
                    "UPDATE outbox SET status = 'scheduled', next_attempt_at = ?, last_error = ?, lease_until = NULL,
                            updated_at = ?
                     WHERE id = ?",
                )
                .bind(at)
                .bind(error)
                .bind(now)
                .bind(outbox_id)
                .execute(&mut *tx)
                .await?;
            }
            DeliveryResult::Failed { error } => {
                let row = sqlx::query(
                    "UPDATE outbox SET status = 'failed', last_error = ?, lease_until = NULL, updated_at = ?
                     WHERE id = ? RETURNING conversation_id, message_id, attempts",
                )
                .bind(error)
                .bind(now)
                .bind(outbox_id)
                .fetch_one(&mut *tx)
                .await?;
                let conversation_id: i64 = row.try_get("conversation_id")?;
                let event = NewEvent::system(
                    "delivery.failed",
                    json!({"message_id": row.try_get::<i64, _>("message_id")?, "attempts": row.try_get::<i64, _>("attempts")?, "error": error}),
                );
                insert_events(&mut tx, conversation_id, &[event], now).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn next_delivery_due(&self) -> StoreResult<Option<i64>> {
        // Only rows first in their conversation's line count: one waiting behind an
        // earlier message is due when that message is done, and its completion wakes
        // the dispatcher. Counting it would hide a later retry time behind a past one.
        let due: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(o.next_attempt_at) FROM outbox o
             WHERE o.status = 'scheduled'
               AND NOT EXISTS (
                   SELECT 1 FROM outbox earlier
                   WHERE earlier.conversation_id = o.conversation_id AND earlier.id < o.id
                     AND earlier.status IN ('scheduled', 'in_flight'))",
        )
        .fetch_one(&self.reader)
        .await?;
        Ok(due)
    }
}

/// The id of the agent a selector names; an unknown one is the caller's mistake.
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
        created_at: Timestamp(row.try_get("created_at")?),
    })
}
