//! A person's data: the export's reads and the erasure's writes. The writer's connection
//! runs with `secure_delete` (see `writer.rs`), so what these delete or shorten is
//! overwritten in the file, not only unlinked.

use rusqlite::{OptionalExtension, params};
use serde_json::Value;

use super::SqliteTx;
use crate::model::Timestamp;
use crate::store::StoreResult;
use crate::store::columns::json_column;
use crate::store::records::*;
use crate::store::tx::*;

/// A JSON column read for an export: unreadable JSON is handed over as the text it is,
/// because the person is owed what is stored, whatever its shape.
fn json_or_text(text: String) -> Value {
    serde_json::from_str(&text).unwrap_or(Value::String(text))
}

impl SqliteTx<'_> {
    fn export_messages(&mut self, conversation_id: i64) -> StoreResult<Vec<MessageDump>> {
        let mut messages: Vec<MessageDump> = self
            .conn
            .prepare_cached(
                "SELECT id, direction, kind, author_kind, author_id, text, html, external_id, language, metadata,
                        created_at
                 FROM messages WHERE conversation_id = ?1 ORDER BY id",
            )?
            .query_map([conversation_id], |row| {
                Ok(MessageDump {
                    id: row.get(0)?,
                    direction: row.get(1)?,
                    kind: row.get(2)?,
                    author_kind: row.get(3)?,
                    author_id: row.get(4)?,
                    text: row.get(5)?,
                    html: row.get(6)?,
                    external_id: row.get(7)?,
                    language: row.get(8)?,
                    metadata: row.get::<_, Option<String>>(9)?.map(json_or_text),
                    created_at: Timestamp(row.get(10)?),
                    attachments: Vec::new(),
                })
            })?
            .collect::<Result<_, _>>()?;
        let mut files = self.conn.prepare_cached(
            "SELECT a.id, a.filename, a.content_type, a.size, a.blob_sha256, b.data
             FROM attachments a JOIN blobs b ON b.sha256 = a.blob_sha256
             WHERE a.message_id = ?1 ORDER BY a.id",
        )?;
        for message in &mut messages {
            message.attachments = files
                .query_map([message.id], |row| {
                    Ok(AttachmentDump {
                        id: row.get(0)?,
                        filename: row.get(1)?,
                        content_type: row.get(2)?,
                        size: row.get(3)?,
                        sha256: row.get(4)?,
                        data: row.get(5)?,
                    })
                })?
                .collect::<Result<_, _>>()?;
        }
        Ok(messages)
    }

    fn export_events(&mut self, conversation_id: i64) -> StoreResult<Vec<EventDump>> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT id, kind, actor_kind, actor_id, data, created_at FROM events
                 WHERE conversation_id = ?1 ORDER BY id",
            )?
            .query_map([conversation_id], |row| {
                Ok(EventDump {
                    id: row.get(0)?,
                    kind: row.get(1)?,
                    actor_kind: row.get(2)?,
                    actor_id: row.get(3)?,
                    data: json_or_text(row.get(4)?),
                    created_at: Timestamp(row.get(5)?),
                })
            })?
            .collect::<Result<_, _>>()?)
    }
}

impl PrivacyTx for SqliteTx<'_> {
    fn contact_export(&mut self, contact_id: i64) -> StoreResult<Option<ContactExport>> {
        let contact = self
            .conn
            .prepare_cached(
                "SELECT id, name, email, language, value_tier, flags, metadata, created_at, updated_at,
                        updates_opted_out_at, erased_at
                 FROM contacts WHERE id = ?1",
            )?
            .query_row([contact_id], |row| {
                Ok(ContactDump {
                    id: row.get(0)?,
                    name: row.get(1)?,
                    email: row.get(2)?,
                    language: row.get(3)?,
                    value_tier: row.get(4)?,
                    flags: json_or_text(row.get(5)?),
                    metadata: json_or_text(row.get(6)?),
                    created_at: Timestamp(row.get(7)?),
                    updated_at: Timestamp(row.get(8)?),
                    updates_opted_out_at: row.get::<_, Option<i64>>(9)?.map(Timestamp),
                    erased_at: row.get::<_, Option<i64>>(10)?.map(Timestamp),
                })
            })
            .optional()?;
        let Some(contact) = contact else {
            return Ok(None);
        };
        let identities = self
            .conn
            .prepare_cached(
                "SELECT ci.id, i.key, ci.channel, ci.external_id, ci.created_at, ci.unreachable_reason
                 FROM contact_identities ci JOIN inboxes i ON i.id = ci.inbox_id
                 WHERE ci.contact_id = ?1 ORDER BY ci.id",
            )?
            .query_map([contact_id], |row| {
                Ok(IdentityDump {
                    id: row.get(0)?,
                    inbox: row.get(1)?,
                    channel: row.get(2)?,
                    external_id: row.get(3)?,
                    created_at: Timestamp(row.get(4)?),
                    unreachable_reason: row.get(5)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        let mut conversations: Vec<ConversationDump> = self
            .conn
            .prepare_cached(
                "SELECT c.id, i.key, i.kind, c.subject, c.thread_key, c.status, c.priority, t.key, c.labels,
                        c.language, c.csat_score, c.csat_comment, c.created_at, c.resolved_at, c.erased_at
                 FROM conversations c JOIN inboxes i ON i.id = c.inbox_id LEFT JOIN teams t ON t.id = c.team_id
                 WHERE c.contact_id = ?1 ORDER BY c.id",
            )?
            .query_map([contact_id], |row| {
                Ok(ConversationDump {
                    id: row.get(0)?,
                    inbox: row.get(1)?,
                    channel: row.get(2)?,
                    subject: row.get(3)?,
                    thread_key: row.get(4)?,
                    status: row.get(5)?,
                    priority: row.get(6)?,
                    team: row.get(7)?,
                    labels: json_or_text(row.get(8)?),
                    language: row.get(9)?,
                    csat_score: row.get(10)?,
                    csat_comment: row.get(11)?,
                    created_at: Timestamp(row.get(12)?),
                    resolved_at: row.get::<_, Option<i64>>(13)?.map(Timestamp),
                    erased_at: row.get::<_, Option<i64>>(14)?.map(Timestamp),
                    messages: Vec::new(),
                    events: Vec::new(),
                })
            })?
            .collect::<Result<_, _>>()?;
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
        Ok(self
            .conn
            .prepare_cached("SELECT erased_at FROM contacts WHERE id = ?1")?
            .query_row([contact_id], |row| row.get(0))
            .optional()?)
    }

    fn contact_conversations(&mut self, contact_id: i64) -> StoreResult<Vec<(i64, bool)>> {
        Ok(self
            .conn
            .prepare_cached("SELECT id, erased_at IS NOT NULL FROM conversations WHERE contact_id = ?1 ORDER BY id")?
            .query_map([contact_id], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<Result<_, _>>()?)
    }

    fn conversation_events(&mut self, conversation_id: i64) -> StoreResult<Vec<StoredEvent>> {
        let rows: Vec<(i64, String, String)> = self
            .conn
            .prepare_cached("SELECT id, kind, data FROM events WHERE conversation_id = ?1 ORDER BY id")?
            .query_map([conversation_id], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
            .collect::<Result<_, _>>()?;
        rows.into_iter()
            .map(|(id, kind, data)| {
                Ok(StoredEvent {
                    id,
                    kind,
                    data: json_column(&data)?,
                })
            })
            .collect()
    }

    fn set_event_data(&mut self, event_id: i64, data: &Value) -> StoreResult<()> {
        self.conn
            .prepare_cached("UPDATE events SET data = ?2 WHERE id = ?1")?
            .execute(params![event_id, data.to_string()])?;
        Ok(())
    }

    fn erase_conversation_content(&mut self, conversation_id: i64, now: i64) -> StoreResult<ErasedContent> {
        let conn = self.conn;
        let event_deliveries_dropped = conn
            .prepare_cached("DELETE FROM event_deliveries WHERE conversation_id = ?1")?
            .execute([conversation_id])? as u64;
        let queued_dropped = conn
            .prepare_cached("DELETE FROM outbox WHERE conversation_id = ?1 AND status IN ('scheduled', 'in_flight')")?
            .execute([conversation_id])? as u64;
        // The channel's reports on what was sent go first: a WhatsApp message id encodes
        // the customer's number. Then sent and failed rows: receipts and errors can name
        // the address.
        conn.prepare_cached(
            "DELETE FROM delivery_reports
             WHERE (inbox_id, external_id) IN
                 (SELECT inbox_id, external_id FROM outbox WHERE conversation_id = ?1 AND external_id IS NOT NULL)",
        )?
        .execute([conversation_id])?;
        conn.prepare_cached("DELETE FROM outbox WHERE conversation_id = ?1")?
            .execute([conversation_id])?;
        let hashes: Vec<String> = conn
            .prepare_cached(
                "SELECT DISTINCT a.blob_sha256 FROM attachments a JOIN messages m ON m.id = a.message_id
                 WHERE m.conversation_id = ?1",
            )?
            .query_map([conversation_id], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        let attachments = conn
            .prepare_cached(
                "DELETE FROM attachments WHERE message_id IN (SELECT id FROM messages WHERE conversation_id = ?1)",
            )?
            .execute([conversation_id])? as u64;
        // A file is stored once by content: its bytes stay while another message holds it.
        let mut drop_blob = conn.prepare_cached(
            "DELETE FROM blobs WHERE sha256 = ?1 AND NOT EXISTS (SELECT 1 FROM attachments WHERE blob_sha256 = ?1)",
        )?;
        for hash in &hashes {
            drop_blob.execute([hash])?;
        }
        let messages = conn
            .prepare_cached(
                "UPDATE messages SET text = '', html = NULL, external_id = NULL, language = NULL, metadata = NULL
                 WHERE conversation_id = ?1",
            )?
            .execute([conversation_id])? as u64;
        conn.prepare_cached("DELETE FROM conversation_timers WHERE conversation_id = ?1")?
            .execute([conversation_id])?;
        conn.prepare_cached(
            "UPDATE sla_clocks SET state = 'stopped', stopped_at = ?2, running_since = NULL, next_fire_at = NULL
             WHERE conversation_id = ?1 AND state IN ('running', 'paused')",
        )?
        .execute(params![conversation_id, now])?;
        conn.prepare_cached(
            "UPDATE conversations SET subject = NULL, thread_key = NULL, csat_comment = NULL, csat_token = NULL,
                                      escalation = NULL, erased_at = ?2
             WHERE id = ?1",
        )?
        .execute(params![conversation_id, now])?;
        Ok(ErasedContent {
            messages,
            attachments,
            queued_dropped,
            event_deliveries_dropped,
        })
    }

    fn erase_contact_record(&mut self, contact_id: i64, now: i64) -> StoreResult<u64> {
        self.conn
            .prepare_cached(
                "UPDATE contacts SET name = NULL, email = NULL, value_tier = NULL, flags = '[]', metadata = '{}',
                                     updates_opted_out_at = ?2, erased_at = ?2, updated_at = ?2
                 WHERE id = ?1",
            )?
            .execute(params![contact_id, now])?;
        Ok(self
            .conn
            .prepare_cached(
                "UPDATE contact_identities SET external_id = 'erased:' || id, unreachable_reason = NULL,
                                               unreachable_at = NULL
                 WHERE contact_id = ?1",
            )?
            .execute([contact_id])? as u64)
    }

    fn insert_privacy_record(&mut self, record: &PrivacyRecord<'_>, now: i64) -> StoreResult<i64> {
        Ok(self
            .conn
            .prepare_cached(
                "INSERT INTO privacy_audit (contact_id, action, actor_kind, actor_id, reason, details, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING id",
            )?
            .query_row(
                params![
                    record.contact_id,
                    record.action,
                    record.actor_kind.as_str(),
                    record.actor_id,
                    record.reason,
                    record.details.to_string(),
                    now
                ],
                |row| row.get(0),
            )?)
    }

    fn retention_due(&mut self, before: i64, limit: u32) -> StoreResult<Vec<(i64, i64)>> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT id, contact_id FROM conversations
                 WHERE status IN ('resolved', 'closed') AND erased_at IS NULL
                   AND COALESCE(resolved_at, updated_at) < ?1
                 ORDER BY COALESCE(resolved_at, updated_at), id LIMIT ?2",
            )?
            .query_map(params![before, limit], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<Result<_, _>>()?)
    }
}
