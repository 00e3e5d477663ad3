//! Messages, their files, and conversation events.

use super::{PgTx, column};
use crate::model::{DeliveryStatus, Direction};
use crate::query::reports::SLOT_MS;
use crate::store::StoreResult;
use crate::store::columns::vocabulary;
use crate::store::columns::{RESPONSE_INSERT, TALLY_UPSERT, sha256_hex, tally_of};
use crate::store::records::*;
use crate::store::tx::*;

impl MessageTx for PgTx<'_> {
    fn message_by_external_id(&mut self, inbox_id: i64, external_id: &str) -> StoreResult<Option<MessageRef>> {
        let row = self.row(
            sqlx::query("SELECT id, conversation_id, direction FROM messages WHERE inbox_id = $1 AND external_id = $2")
                .bind(inbox_id)
                .bind(external_id),
        )?;
        row.map(|row| {
            Ok(MessageRef {
                id: column(&row, "id")?,
                conversation_id: column(&row, "conversation_id")?,
                direction: vocabulary(Direction::parse, &column::<String>(&row, "direction")?)?,
            })
        })
        .transpose()
    }

    fn message_text(&mut self, id: i64) -> StoreResult<Option<MessageText>> {
        let row = self.row(sqlx::query("SELECT text, metadata FROM messages WHERE id = $1").bind(id))?;
        row.map(|row| {
            Ok(MessageText {
                text: column(&row, "text")?,
                metadata: column(&row, "metadata")?,
            })
        })
        .transpose()
    }

    fn insert_message(&mut self, message: &NewMessage<'_>, now: i64) -> StoreResult<i64> {
        // No ON CONFLICT: a known (inbox, external id) is a conflict, as on SQLite, and the
        // unit that meets it is abandoned whole. Ingest looks the id up first; a concurrent
        // twin that slips past that fails with 40001 under SERIALIZABLE and is run again.
        let row = self.one(
            sqlx::query(
                "INSERT INTO messages (conversation_id, inbox_id, direction, kind, author_kind, author_id, text, html,
                                       external_id, language, metadata, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
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
            .bind(message.metadata.as_deref())
            .bind(now),
        )?;
        let [inbound, outbound, automated, notes] = tally_of(message.direction, message.kind);
        self.execute(
            sqlx::query(TALLY_UPSERT)
                .bind(now / SLOT_MS)
                .bind(message.conversation_id)
                .bind(inbound)
                .bind(outbound)
                .bind(automated)
                .bind(notes),
        )?;
        column(&row, "id")
    }

    fn replace_message_text(&mut self, id: i64, text: &str, metadata: &str) -> StoreResult<()> {
        self.execute(
            sqlx::query("UPDATE messages SET text = $1, metadata = $2 WHERE id = $3")
                .bind(text)
                .bind(metadata)
                .bind(id),
        )?;
        Ok(())
    }

    fn insert_attachment(&mut self, message_id: i64, file: NewAttachment<'_>, now: i64) -> StoreResult<()> {
        let sha256 = sha256_hex(file.data);
        let size = file.data.len() as i64;
        self.execute(
            sqlx::query(
                "INSERT INTO blobs (sha256, size, data, created_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (sha256) DO NOTHING",
            )
            .bind(&sha256)
            .bind(size)
            .bind(file.data)
            .bind(now),
        )?;
        self.execute(
            sqlx::query(
                "INSERT INTO attachments (message_id, blob_sha256, filename, content_type, size)
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(message_id)
            .bind(&sha256)
            .bind(file.filename)
            .bind(file.content_type)
            .bind(size),
        )?;
        Ok(())
    }

    fn outbound_message(&mut self, message_id: i64, inbox_id: i64) -> StoreResult<Option<OutboundRef>> {
        let row = self.row(
            sqlx::query(
                "SELECT m.conversation_id, o.id AS outbox_id, o.status
                 FROM messages m LEFT JOIN outbox o ON o.message_id = m.id
                 WHERE m.id = $1 AND m.inbox_id = $2 AND m.direction = 'outbound'",
            )
            .bind(message_id)
            .bind(inbox_id),
        )?;
        row.map(|row| {
            Ok(OutboundRef {
                conversation_id: column(&row, "conversation_id")?,
                outbox_id: column(&row, "outbox_id")?,
                status: column::<Option<String>>(&row, "status")?
                    .map(|status| vocabulary(DeliveryStatus::parse, &status))
                    .transpose()?,
            })
        })
        .transpose()
    }

    fn last_inbound_text(&mut self, conversation_id: i64) -> StoreResult<Option<String>> {
        let row = self.row(
            sqlx::query(
                "SELECT text FROM messages WHERE conversation_id = $1 AND direction = 'inbound' ORDER BY id DESC LIMIT 1",
            )
            .bind(conversation_id),
        )?;
        row.map(|row| column(&row, "text")).transpose()
    }

    fn insert_event(&mut self, event: &EventRow<'_>, now: i64) -> StoreResult<()> {
        self.execute(
            sqlx::query(
                "INSERT INTO events (conversation_id, kind, actor_kind, actor_id, data, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(event.conversation_id)
            .bind(event.kind)
            .bind(event.actor_kind.as_str())
            .bind(event.actor_id)
            .bind(event.data.to_string())
            .bind(now),
        )?;
        Ok(())
    }

    fn insert_response(&mut self, response: &NewResponse) -> StoreResult<()> {
        self.execute(
            sqlx::query(RESPONSE_INSERT)
                .bind(response.message_id)
                .bind(response.conversation_id)
                .bind(response.waited_from)
                .bind(response.answered_at)
                .bind(response.first)
                .bind(response.sla()),
        )?;
        Ok(())
    }
}
