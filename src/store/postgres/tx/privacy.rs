//! A person's data: the export's reads and the erasure's writes. What these delete or
//! overwrite stays in the table's pages as dead row versions until a vacuum reclaims
//! them (and in the WAL and its archive for as long as the operator keeps those):
//! PostgreSQL has no twin of SQLite's `secure_delete`.

use std::collections::HashMap;

use serde_json::Value;

use super::{PgTx, column};
use crate::model::Timestamp;
use crate::store::columns::json_column;
use crate::store::records::*;
use crate::store::tx::*;
use crate::store::{StoreError, StoreResult};

/// A JSON column read for an export: unreadable JSON is handed over as the text it is,
/// because the person is owed what is stored, whatever its shape.
fn json_or_text(text: String) -> Value {
    serde_json::from_str(&text).unwrap_or(Value::String(text))
}

impl PgTx<'_> {
    fn export_messages(&mut self, conversation_id: i64) -> StoreResult<Vec<MessageDump>> {
        let mut messages = self
            .rows(
                sqlx::query(
                    "SELECT id, direction, kind, author_kind, author_id, text, html, external_id, language, metadata,
                            created_at
                     FROM messages WHERE conversation_id = $1 ORDER BY id",
                )
                .bind(conversation_id),
            )?
            .iter()
            .map(|row| {
                Ok(MessageDump {
                    id: column(row, "id")?,
                    direction: column(row, "direction")?,
                    kind: column(row, "kind")?,
                    author_kind: column(row, "author_kind")?,
                    author_id: column(row, "author_id")?,
                    text: column(row, "text")?,
                    html: column(row, "html")?,
                    external_id: column(row, "external_id")?,
                    language: column(row, "language")?,
                    metadata: column::<Option<String>>(row, "metadata")?.map(json_or_text),
                    created_at: Timestamp(column(row, "created_at")?),
                    attachments: Vec::new(),
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        // The conversation's files in one statement rather than one per message: each
        // statement is a round trip to the server here.
        let mut files: HashMap<i64, Vec<AttachmentDump>> = HashMap::new();
        for row in self.rows(
            sqlx::query(
                "SELECT a.message_id, a.id, a.filename, a.content_type, a.size, a.blob_sha256, b.data
                 FROM attachments a JOIN blobs b ON b.sha256 = a.blob_sha256
                 JOIN messages m ON m.id = a.message_id
                 WHERE m.conversation_id = $1 ORDER BY a.id",
            )
            .bind(conversation_id),
        )? {
            files
                .entry(column(&row, "message_id")?)
                .or_default()
                .push(AttachmentDump {
                    id: column(&row, "id")?,
                    filename: column(&row, "filename")?,
                    content_type: column(&row, "content_type")?,
                    size: column(&row, "size")?,
                    sha256: column(&row, "blob_sha256")?,
                    data: column(&row, "data")?,
                });
        }
        for message in &mut messages {
            message.attachments = files.remove(&message.id).unwrap_or_default();
        }
        Ok(messages)
    }

    fn export_events(&mut self, conversation_id: i64) -> StoreResult<Vec<EventDump>> {
        self.rows(
            sqlx::query(
                "SELECT id, kind, actor_kind, actor_id, data, created_at FROM events
                 WHERE conversation_id = $1 ORDER BY id",
            )
            .bind(conversation_id),
        )?
        .iter()
        .map(|row| {
            Ok(EventDump {
                id: column(row, "id")?,
                kind: column(row, "kind")?,
                actor_kind: column(row, "actor_kind")?,
                actor_id: column(row, "actor_id")?,
                data: json_or_text(column(row, "data")?),
                created_at: Timestamp(column(row, "created_at")?),
            })
        })
        .collect()
    }
}

impl PrivacyTx for PgTx<'_> {
    fn contact_export(&mut self, contact_id: i64) -> StoreResult<Option<ContactExport>> {
        let Some(row) = self.row(
            sqlx::query(
                "SELECT id, name, email, language, value_tier, flags, metadata, created_at, updated_at,
                        updates_opted_out_at, erased_at
                 FROM contacts WHERE id = $1",
            )
            .bind(contact_id),
        )?
        else {
            return Ok(None);
        };
        let contact = ContactDump {
            id: column(&row, "id")?,
            name: column(&row, "name")?,
            email: column(&row, "email")?,
            language: column(&row, "language")?,
            value_tier: column(&row, "value_tier")?,
            flags: json_or_text(column(&row, "flags")?),
            metadata: json_or_text(column(&row, "metadata")?),
            created_at: Timestamp(column(&row, "created_at")?),
            updated_at: Timestamp(column(&row, "updated_at")?),
            updates_opted_out_at: column::<Option<i64>>(&row, "updates_opted_out_at")?.map(Timestamp),
            erased_at: column::<Option<i64>>(&row, "erased_at")?.map(Timestamp),
        };
        let identities = self
            .rows(
                sqlx::query(
                    "SELECT ci.id, i.key, ci.channel, ci.external_id, ci.created_at, ci.unreachable_reason
                     FROM contact_identities ci JOIN inboxes i ON i.id = ci.inbox_id
                     WHERE ci.contact_id = $1 ORDER BY ci.id",
                )
                .bind(contact_id),
            )?
            .iter()
            .map(|row| {
                Ok(IdentityDump {
                    id: column(row, "id")?,
                    inbox: column(row, "key")?,
                    channel: column(row, "channel")?,
                    external_id: column(row, "external_id")?,
                    created_at: Timestamp(column(row, "created_at")?),
                    unreachable_reason: column(row, "unreachable_reason")?,
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        let mut conversations = self
            .rows(
                sqlx::query(
                    "SELECT c.id, i.key AS inbox, i.kind AS channel, c.subject, c.thread_key, c.status, c.priority,
                            t.key AS team, c.labels, c.language, c.csat_score, c.csat_comment, c.created_at,
                            c.resolved_at, c.erased_at
                     FROM conversations c JOIN inboxes i ON i.id = c.inbox_id LEFT JOIN teams t ON t.id = c.team_id
                     WHERE c.contact_id = $1 ORDER BY c.id",
                )
                .bind(contact_id),
            )?
            .iter()
            .map(|row| {
                Ok(ConversationDump {
                    id: column(row, "id")?,
                    inbox: column(row, "inbox")?,
                    channel: column(row, "channel")?,
                    subject: column(row, "subject")?,
                    thread_key: column(row, "thread_key")?,
                    status: column(row, "status")?,
                    priority: column(row, "priority")?,
                    team: column(row, "team")?,
                    labels: json_or_text(column(row, "labels")?),
                    language: column(row, "language")?,
                    csat_score: column(row, "csat_score")?,
                    csat_comment: column(row, "csat_comment")?,
                    created_at: Timestamp(column(row, "created_at")?),
                    resolved_at: column::<Option<i64>>(row, "resolved_at")?.map(Timestamp),
                    erased_at: column::<Option<i64>>(row, "erased_at")?.map(Timestamp),
                    messages: Vec::new(),
                    events: Vec::new(),
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        for conversation in &mut conversations {
            conversation.messages = self.export_messages(conversation.id)?;
            conversation.events = self.export_events(conversation.id)?;
        }
        Ok(Some(ContactExport {
            contact,
            identities,
            conversations,
        }))
    }

    fn contact_erased_at(&mut self, contact_id: i64) -> StoreResult<Option<Option<i64>>> {
        self.row(sqlx::query("SELECT erased_at FROM contacts WHERE id = $1").bind(contact_id))?
            .map(|row| column(&row, "erased_at"))
            .transpose()
    }

    fn contact_conversations(&mut self, contact_id: i64) -> StoreResult<Vec<(i64, bool)>> {
        self.rows(
            sqlx::query(
                "SELECT id, erased_at IS NOT NULL AS erased FROM conversations WHERE contact_id = $1 ORDER BY id",
            )
            .bind(contact_id),
        )?
        .iter()
        .map(|row| Ok((column(row, "id")?, column(row, "erased")?)))
        .collect()
    }

    fn conversation_events(&mut self, conversation_id: i64) -> StoreResult<Vec<StoredEvent>> {
        self.rows(
            sqlx::query("SELECT id, kind, data FROM events WHERE conversation_id = $1 ORDER BY id")
                .bind(conversation_id),
        )?
        .iter()
        .map(|row| {
            Ok(StoredEvent {
                id: column(row, "id")?,
                kind: column(row, "kind")?,
                data: json_column(&column::<String>(row, "data")?)?,
            })
        })
        .collect()
    }

    fn set_event_data(&mut self, event_id: i64, data: &Value) -> StoreResult<()> {
        self.execute(
            sqlx::query("UPDATE events SET data = $2 WHERE id = $1")
                .bind(event_id)
                .bind(data.to_string()),
        )?;
        Ok(())
    }

    fn erase_conversation_content(&mut self, conversation_id: i64, now: i64) -> StoreResult<ErasedContent> {
        let event_deliveries_dropped =
            self.execute(sqlx::query("DELETE FROM event_deliveries WHERE conversation_id = $1").bind(conversation_id))?;
        // The channel's reports on what was sent go first: a WhatsApp message id encodes
        // the customer's number.
        self.execute(
            sqlx::query(
                "DELETE FROM delivery_reports
                 WHERE (inbox_id, external_id) IN
                     (SELECT inbox_id, external_id FROM outbox WHERE conversation_id = $1 AND external_id IS NOT NULL)",
            )
            .bind(conversation_id),
        )?;
        // Sent and failed rows go too: receipts and errors can name the address. Only the
        // queued ones count as dropped.
        let outbox = self.row(
            sqlx::query(
                "WITH gone AS (DELETE FROM outbox WHERE conversation_id = $1 RETURNING status)
                 SELECT COUNT(*) FILTER (WHERE status IN ('scheduled', 'in_flight')) AS queued FROM gone",
            )
            .bind(conversation_id),
        )?;
        let queued_dropped: i64 = match outbox {
            Some(row) => column(&row, "queued")?,
            None => 0,
        };
        let hashes: Vec<String> = self
            .rows(
                sqlx::query(
                    "DELETE FROM attachments
                     WHERE message_id IN (SELECT id FROM messages WHERE conversation_id = $1)
                     RETURNING blob_sha256",
                )
                .bind(conversation_id),
            )?
            .iter()
            .map(|row| column(row, "blob_sha256"))
            .collect::<StoreResult<_>>()?;
        let attachments = hashes.len() as u64;
        // A file is stored once by content: its bytes stay while another message holds it.
        if !hashes.is_empty() {
            self.execute(
                sqlx::query(
                    "DELETE FROM blobs b
                     WHERE b.sha256 = ANY($1) AND NOT EXISTS (SELECT 1 FROM attachments a WHERE a.blob_sha256 = b.sha256)",
                )
                .bind(hashes),
            )?;
        }
        let messages = self.execute(
            sqlx::query(
                "UPDATE messages SET text = '', html = NULL, external_id = NULL, language = NULL, metadata = NULL
                 WHERE conversation_id = $1",
            )
            .bind(conversation_id),
        )?;
        self.execute(sqlx::query("DELETE FROM conversation_timers WHERE conversation_id = $1").bind(conversation_id))?;
        self.execute(
            sqlx::query(
                "UPDATE sla_clocks SET state = 'stopped', stopped_at = $2, running_since = NULL, next_fire_at = NULL
                 WHERE conversation_id = $1 AND state IN ('running', 'paused')",
            )
            .bind(conversation_id)
            .bind(now),
        )?;
        self.execute(
            sqlx::query(
                "UPDATE conversations SET subject = NULL, thread_key = NULL, csat_comment = NULL, csat_token = NULL,
                                          escalation = NULL, erased_at = $2
                 WHERE id = $1",
            )
            .bind(conversation_id)
            .bind(now),
        )?;
        Ok(ErasedContent {
            messages,
            attachments,
            queued_dropped: u64::try_from(queued_dropped).unwrap_or(0),
            event_deliveries_dropped,
        })
    }

    fn erase_contact_record(&mut self, contact_id: i64, now: i64) -> StoreResult<u64> {
        self.execute(
            sqlx::query(
                "UPDATE contacts SET name = NULL, email = NULL, value_tier = NULL, flags = '[]', metadata = '{}',
                                     updates_opted_out_at = $2, erased_at = $2, updated_at = $2
                 WHERE id = $1",
            )
            .bind(contact_id)
            .bind(now),
        )?;
        self.execute(
            sqlx::query(
                "UPDATE contact_identities SET external_id = 'erased:' || id, unreachable_reason = NULL,
                                               unreachable_at = NULL
                 WHERE contact_id = $1",
            )
            .bind(contact_id),
        )
    }

    fn insert_privacy_record(&mut self, record: &PrivacyRecord<'_>, now: i64) -> StoreResult<i64> {
        let row = self.row(
            sqlx::query(
                "INSERT INTO privacy_audit (contact_id, action, actor_kind, actor_id, reason, details, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
            )
            .bind(record.contact_id)
            .bind(record.action)
            .bind(record.actor_kind.as_str())
            .bind(record.actor_id)
            .bind(record.reason)
            .bind(record.details.to_string())
            .bind(now),
        )?;
        let row = row.ok_or_else(|| StoreError::fatal("INSERT … RETURNING returned no row"))?;
        column(&row, "id")
    }

    fn retention_due(&mut self, before: i64, limit: u32) -> StoreResult<Vec<(i64, i64)>> {
        // The WHERE and the ORDER BY repeat the partial index `conversations_retention`.
        self.rows(
            sqlx::query(
                "SELECT id, contact_id FROM conversations
                 WHERE status IN ('resolved', 'closed') AND erased_at IS NULL
                   AND COALESCE(resolved_at, updated_at) < $1
                 ORDER BY COALESCE(resolved_at, updated_at), id LIMIT $2",
            )
            .bind(before)
            .bind(i64::from(limit)),
        )?
        .iter()
        .map(|row| Ok((column(row, "id")?, column(row, "contact_id")?)))
        .collect()
    }
}
