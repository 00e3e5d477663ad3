//! Messages, their files, and conversation events.

use rusqlite::{OptionalExtension, params};

use super::SqliteTx;
use crate::model::{DeliveryStatus, Direction};
use crate::query::reports::SLOT_MS;
use crate::store::StoreResult;
use crate::store::columns::vocabulary;
use crate::store::columns::{RESPONSE_INSERT, TALLY_UPSERT, sha256_hex, tally_of};
use crate::store::records::*;
use crate::store::tx::*;

impl MessageTx for SqliteTx<'_> {
    fn message_by_external_id(&mut self, inbox_id: i64, external_id: &str) -> StoreResult<Option<MessageRef>> {
        let row: Option<(i64, i64, String)> = self
            .conn
            .prepare_cached(
                "SELECT id, conversation_id, direction FROM messages WHERE inbox_id = ?1 AND external_id = ?2",
            )?
            .query_row(params![inbox_id, external_id], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            })
            .optional()?;
        row.map(|(id, conversation_id, direction)| {
            Ok(MessageRef {
                id,
                conversation_id,
                direction: vocabulary(Direction::parse, &direction)?,
            })
        })
        .transpose()
    }

    fn message_text(&mut self, id: i64) -> StoreResult<Option<MessageText>> {
        Ok(self
            .conn
            .prepare_cached("SELECT text, metadata FROM messages WHERE id = ?1")?
            .query_row([id], |row| {
                Ok(MessageText {
                    text: row.get(0)?,
                    metadata: row.get(1)?,
                })
            })
            .optional()?)
    }

    fn insert_message(&mut self, message: &NewMessage<'_>, now: i64) -> StoreResult<i64> {
        let [inbound, outbound, automated, notes] = tally_of(message.direction, message.kind);
        self.conn.prepare_cached(TALLY_UPSERT)?.execute(params![
            now / SLOT_MS,
            message.conversation_id,
            inbound,
            outbound,
            automated,
            notes
        ])?;
        Ok(self
            .conn
            .prepare_cached(
                "INSERT INTO messages (conversation_id, inbox_id, direction, kind, author_kind, author_id, text, html,
                                       external_id, language, metadata, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) RETURNING id",
            )?
            .query_row(
                params![
                    message.conversation_id,
                    message.inbox_id,
                    message.direction.as_str(),
                    message.kind.as_str(),
                    message.author_kind.as_str(),
                    message.author_id,
                    message.text,
                    message.html,
                    message.external_id,
                    message.language,
                    message.metadata,
                    now
                ],
                |row| row.get(0),
            )?)
    }

    fn replace_message_text(&mut self, id: i64, text: &str, metadata: &str) -> StoreResult<()> {
        self.conn
            .prepare_cached("UPDATE messages SET text = ?1, metadata = ?2 WHERE id = ?3")?
            .execute(params![text, metadata, id])?;
        Ok(())
    }

    fn insert_attachment(&mut self, message_id: i64, file: NewAttachment<'_>, now: i64) -> StoreResult<()> {
        let sha256 = sha256_hex(file.data);
        let size = file.data.len() as i64;
        self.conn
            .prepare_cached(
                "INSERT INTO blobs (sha256, size, data, created_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (sha256) DO NOTHING",
            )?
            .execute(params![sha256, size, file.data, now])?;
        self.conn
            .prepare_cached(
                "INSERT INTO attachments (message_id, blob_sha256, filename, content_type, size)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![message_id, sha256, file.filename, file.content_type, size])?;
        Ok(())
    }

    fn outbound_message(&mut self, message_id: i64, inbox_id: i64) -> StoreResult<Option<OutboundRef>> {
        let row: Option<(i64, Option<i64>, Option<String>)> = self
            .conn
            .prepare_cached(
                "SELECT m.conversation_id, o.id, o.status FROM messages m LEFT JOIN outbox o ON o.message_id = m.id
                 WHERE m.id = ?1 AND m.inbox_id = ?2 AND m.direction = 'outbound'",
            )?
            .query_row(params![message_id, inbox_id], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            })
            .optional()?;
        row.map(|(conversation_id, outbox_id, status)| {
            Ok(OutboundRef {
                conversation_id,
                outbox_id,
                status: status
                    .map(|status| vocabulary(DeliveryStatus::parse, &status))
                    .transpose()?,
            })
        })
        .transpose()
    }

    fn last_inbound_text(&mut self, conversation_id: i64) -> StoreResult<Option<String>> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT text FROM messages WHERE conversation_id = ?1 AND direction = 'inbound' ORDER BY id DESC LIMIT 1",
            )?
            .query_row([conversation_id], |row| row.get(0))
            .optional()?)
    }

    fn insert_event(&mut self, event: &EventRow<'_>, now: i64) -> StoreResult<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO events (conversation_id, kind, actor_kind, actor_id, data, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                event.conversation_id,
                event.kind,
                event.actor_kind.as_str(),
                event.actor_id,
                event.data.to_string(),
                now
            ])?;
        Ok(())
    }

    fn insert_response(&mut self, response: &NewResponse) -> StoreResult<()> {
        self.conn.prepare_cached(RESPONSE_INSERT)?.execute(params![
            response.message_id,
            response.conversation_id,
            response.waited_from,
            response.answered_at,
            response.first,
            response.sla()
        ])?;
        Ok(())
    }
}
