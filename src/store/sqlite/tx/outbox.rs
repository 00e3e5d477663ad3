//! The outbox: rows claimed under a lease, and a claimed row as its channel sends it.

use rusqlite::{OptionalExtension, params};
use serde_json::Value;
use switchboard_connector_core::{DeliveryReport, OutboundAttachment, OutboundKind, OutboundMessage, StatusUpdate};

use super::SqliteTx;
use crate::model::{DeliveryStatus, Direction, MessageKind};
use crate::store::StoreResult;
use crate::store::columns::to_json;
use crate::store::columns::vocabulary;
use crate::store::records::*;
use crate::store::tx::*;

impl OutboxTx for SqliteTx<'_> {
    fn insert_outbox(
        &mut self,
        message_id: i64,
        conversation_id: i64,
        inbox_id: i64,
        now: i64,
        expires_at: i64,
    ) -> StoreResult<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO outbox (message_id, conversation_id, inbox_id, status, next_attempt_at, expires_at,
                                     created_at, updated_at)
                 VALUES (?1, ?2, ?3, 'scheduled', ?4, ?5, ?4, ?4)",
            )?
            .execute(params![message_id, conversation_id, inbox_id, now, expires_at])?;
        Ok(())
    }

    /// The budgets apply among the first due rows (four times `limit`), so a claim stays
    /// cheap behind a large backlog.
    fn claim_deliveries(
        &mut self,
        now: i64,
        limit: u32,
        lease: Lease<'_>,
        plan: &ClaimPlan,
    ) -> StoreResult<Vec<Delivery>> {
        let held = to_json(&plan.held, "[]");
        let budgets = to_json(&plan.budgets, "{}");
        let claimed: Vec<i64> = self
            .conn
            .prepare_cached(
                "UPDATE outbox SET status = 'in_flight', attempts = attempts + 1, lease_until = ?1, lease_holder = ?8,
                                   updated_at = ?2
                 WHERE id IN (
                     SELECT id FROM (
                         SELECT id, next_attempt_at,
                                ROW_NUMBER() OVER (PARTITION BY inbox_id ORDER BY next_attempt_at, id) AS turn,
                                COALESCE(json_extract(?5, '$.\"' || inbox_id || '\"'), ?6) AS room
                         FROM (
                             SELECT o.id, o.inbox_id, o.next_attempt_at FROM outbox o
                             WHERE o.status = 'scheduled' AND o.next_attempt_at <= ?2
                               AND o.inbox_id NOT IN (SELECT value FROM json_each(?4))
                               AND NOT EXISTS (
                                   SELECT 1 FROM outbox other
                                   WHERE other.conversation_id = o.conversation_id AND other.id != o.id
                                     -- Repeats the partial index's condition, so SQLite uses it
                                     -- rather than reading every row the outbox ever held.
                                     AND other.status IN ('scheduled', 'in_flight')
                                     AND (other.status = 'in_flight' OR other.id < o.id))
                             ORDER BY o.next_attempt_at, o.id LIMIT ?7))
                     WHERE turn <= room ORDER BY next_attempt_at, id LIMIT ?3)
                 RETURNING id",
            )?
            .query_map(
                params![
                    lease.until,
                    now,
                    limit,
                    held,
                    budgets,
                    plan.cap,
                    limit.saturating_mul(4),
                    lease.holder
                ],
                |row| row.get(0),
            )?
            .collect::<Result<_, _>>()?;
        let mut deliveries = Vec::with_capacity(claimed.len());
        for outbox_id in claimed {
            deliveries.push(self.delivery_of(outbox_id, now)?);
        }
        deliveries.sort_by_key(|delivery| delivery.outbox_id);
        Ok(deliveries)
    }

    fn settle_delivery(&mut self, id: i64, settlement: Settlement<'_>, now: i64) -> StoreResult<Option<OutboxRow>> {
        const RETURNING: &str = "RETURNING id, status, conversation_id, message_id, attempts";
        let read = |row: &rusqlite::Row<'_>| -> rusqlite::Result<(i64, String, i64, i64, i64)> {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?))
        };
        let row = match settlement {
            Settlement::Sent { receipt, external_id } => self
                .conn
                .prepare_cached(&format!(
                    "UPDATE outbox SET status = 'sent', receipt = ?1, sent_at = ?2, last_error = NULL,
                            lease_until = NULL, updated_at = ?2, external_id = ?4
                     WHERE id = ?3 AND status = 'in_flight' {RETURNING}"
                ))?
                .query_row(params![receipt, now, id, external_id], read)
                .optional()?,
            Settlement::Skipped { reason } => self
                .conn
                .prepare_cached(&format!(
                    "UPDATE outbox SET status = 'skipped', last_error = ?1, lease_until = NULL, updated_at = ?2
                     WHERE id = ?3 AND status = 'in_flight' {RETURNING}"
                ))?
                .query_row(params![reason, now, id], read)
                .optional()?,
            Settlement::RetryAt { at, error } => self
                .conn
                .prepare_cached(&format!(
                    "UPDATE outbox SET status = 'scheduled', next_attempt_at = ?1, last_error = ?2, lease_until = NULL,
                            updated_at = ?3
                     WHERE id = ?4 AND status = 'in_flight' {RETURNING}"
                ))?
                .query_row(params![at, error, now, id], read)
                .optional()?,
            Settlement::Failed { error } => self
                .conn
                .prepare_cached(&format!(
                    "UPDATE outbox SET status = 'failed', last_error = ?1, lease_until = NULL, updated_at = ?2
                     WHERE id = ?3 AND status = 'in_flight' {RETURNING}"
                ))?
                .query_row(params![error, now, id], read)
                .optional()?,
            Settlement::Unclaimed { not_before } => self
                .conn
                .prepare_cached(&format!(
                    "UPDATE outbox SET status = 'scheduled', attempts = MAX(attempts - 1, 0),
                            next_attempt_at = MAX(next_attempt_at, ?1), lease_until = NULL, updated_at = ?2
                     WHERE id = ?3 AND status = 'in_flight' {RETURNING}"
                ))?
                .query_row(params![not_before, now, id], read)
                .optional()?,
        };
        row.map(outbox_row).transpose()
    }

    fn fail_delivery(&mut self, id: i64, error: &str, now: i64) -> StoreResult<()> {
        self.conn
            .prepare_cached(
                "UPDATE outbox SET status = 'failed', last_error = ?1, lease_until = NULL, updated_at = ?2 WHERE id = ?3",
            )?
            .execute(params![error, now, id])?;
        Ok(())
    }

    fn last_customer_message_at(&mut self, conversation_id: i64) -> StoreResult<Option<i64>> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT created_at FROM messages
                 WHERE conversation_id = ?1 AND direction = 'inbound' AND author_kind = 'contact'
                 ORDER BY id DESC LIMIT 1",
            )?
            .query_row([conversation_id], |row| row.get(0))
            .optional()?)
    }

    fn record_delivery_report(&mut self, inbox_id: i64, report: &DeliveryReport, now: i64) -> StoreResult<bool> {
        let changed = self
            .conn
            .prepare_cached(
                "INSERT INTO delivery_reports (inbox_id, external_id, state, rank, error, reported_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (inbox_id, external_id) DO UPDATE SET
                    state = excluded.state, rank = excluded.rank, error = excluded.error,
                    reported_at = excluded.reported_at, updated_at = excluded.updated_at
                 WHERE excluded.rank > delivery_reports.rank",
            )?
            .execute(params![
                inbox_id,
                report.external_id,
                report.state.as_str(),
                report_rank(report.state),
                report.error,
                report.at_ms,
                now
            ])?;
        Ok(changed > 0)
    }

    fn set_parts_sent(&mut self, id: i64, parts_sent: u32) -> StoreResult<()> {
        self.conn
            .prepare_cached("UPDATE outbox SET parts_sent = MAX(parts_sent, ?2) WHERE id = ?1")?
            .execute(params![id, parts_sent])?;
        Ok(())
    }

    fn prune_delivery_reports(&mut self, before: i64) -> StoreResult<u64> {
        Ok(self
            .conn
            .prepare_cached(
                "DELETE FROM delivery_reports
                 WHERE updated_at < ?1 AND NOT EXISTS
                     (SELECT 1 FROM outbox o
                      WHERE o.inbox_id = delivery_reports.inbox_id AND o.external_id = delivery_reports.external_id)",
            )?
            .execute([before])? as u64)
    }

    fn reported_failure(&mut self, outbox_id: i64) -> StoreResult<Option<Option<String>>> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT dr.error FROM outbox o
                 JOIN delivery_reports dr ON dr.inbox_id = o.inbox_id AND dr.external_id = o.external_id
                 WHERE o.id = ?1 AND dr.state = 'failed'",
            )?
            .query_row([outbox_id], |row| row.get(0))
            .optional()?)
    }

    fn fail_sent_delivery(
        &mut self,
        inbox_id: i64,
        external_id: &str,
        error: &str,
        now: i64,
    ) -> StoreResult<Option<OutboxRow>> {
        self.conn
            .prepare_cached(
                "UPDATE outbox SET status = 'failed', last_error = ?1, updated_at = ?2
                 WHERE inbox_id = ?3 AND external_id = ?4 AND status = 'sent'
                 RETURNING id, status, conversation_id, message_id, attempts",
            )?
            .query_row(params![error, now, inbox_id, external_id], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?))
            })
            .optional()?
            .map(outbox_row)
            .transpose()
    }

    fn set_sent_message_id(&mut self, outbox_id: i64, external_id: &str) -> StoreResult<()> {
        // OR IGNORE: an id some inbound message already holds must not fail the record of
        // a send that happened; threading then finds that message.
        self.conn
            .prepare_cached(
                "UPDATE OR IGNORE messages SET external_id = ?1
                 WHERE id = (SELECT message_id FROM outbox WHERE id = ?2) AND external_id IS NULL",
            )?
            .execute(params![external_id, outbox_id])?;
        Ok(())
    }

    fn delivery(&mut self, id: i64) -> StoreResult<Option<OutboxRow>> {
        self.conn
            .prepare_cached("SELECT id, status, conversation_id, message_id, attempts FROM outbox WHERE id = ?1")?
            .query_row([id], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?))
            })
            .optional()?
            .map(outbox_row)
            .transpose()
    }

    fn delivery_by_channel_id(&mut self, inbox_id: i64, external_id: &str) -> StoreResult<Option<OutboxRow>> {
        self.conn
            .prepare_cached(
                "SELECT id, status, conversation_id, message_id, attempts FROM outbox
                 WHERE inbox_id = ?1 AND external_id = ?2 ORDER BY id LIMIT 1",
            )?
            .query_row(params![inbox_id, external_id], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?))
            })
            .optional()?
            .map(outbox_row)
            .transpose()
    }

    fn reschedule_delivery(&mut self, id: i64, now: i64, expires_at: i64) -> StoreResult<()> {
        self.conn
            .prepare_cached(
                "UPDATE outbox SET status = 'scheduled', attempts = 0, next_attempt_at = ?1, expires_at = ?2,
                        lease_until = NULL, updated_at = ?1
                 WHERE id = ?3",
            )?
            .execute(params![now, expires_at, id])?;
        Ok(())
    }

    fn next_delivery_after(&mut self, now: i64) -> StoreResult<Option<i64>> {
        // A seek in the due index, whatever the backlog.
        Ok(self
            .conn
            .prepare_cached(
                "SELECT MIN(next_attempt_at) FROM outbox WHERE status = 'scheduled' AND next_attempt_at > ?1",
            )?
            .query_row([now], |row| row.get(0))?)
    }

    fn defer_deliveries(&mut self, inbox_id: i64, until: i64, now: i64) -> StoreResult<u64> {
        Ok(self
            .conn
            .prepare_cached(
                "UPDATE outbox SET next_attempt_at = ?1, updated_at = ?2
                 WHERE status = 'scheduled' AND inbox_id = ?3 AND next_attempt_at < ?1",
            )?
            .execute(params![until, now, inbox_id])? as u64)
    }

    fn release_deliveries(&mut self, expired_before: i64, now: i64) -> StoreResult<u64> {
        self.release_leased("outbox", expired_before, now)
    }

    fn renew_deliveries(&mut self, lease: Lease<'_>) -> StoreResult<u64> {
        self.renew_leased("outbox", lease)
    }

    fn set_channel_cursor(&mut self, inbox_id: i64, name: &str, value: &str, now: i64) -> StoreResult<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO channel_cursors (inbox_id, name, value, updated_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (inbox_id, name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            )?
            .execute(params![inbox_id, name, value, now])?;
        Ok(())
    }
}

fn outbox_row(
    (id, status, conversation_id, message_id, attempts): (i64, String, i64, i64, i64),
) -> StoreResult<OutboxRow> {
    Ok(OutboxRow {
        id,
        status: vocabulary(DeliveryStatus::parse, &status)?,
        conversation_id,
        message_id,
        attempts,
    })
}

/// How many ids of earlier messages a References header carries: the first (the thread's
/// root) and the latest ones, as RFC 5322 suggests trimming long threads.
const MAX_REFERENCES: usize = 20;

impl SqliteTx<'_> {
    /// A claimed row as its channel sends it.
    fn delivery_of(&mut self, outbox_id: i64, now: i64) -> StoreResult<Delivery> {
        let (mut delivery, channel) = self
            .conn
            .prepare_cached(
                "SELECT o.id, o.inbox_id, o.attempts, o.expires_at, m.id, m.kind, m.text,
                        c.id, c.thread_key, c.subject, ci.external_id, ci.channel, m.html, m.metadata,
                        o.parts_sent
                 FROM outbox o
                 JOIN messages m ON m.id = o.message_id
                 JOIN conversations c ON c.id = o.conversation_id
                 JOIN contact_identities ci ON ci.id = c.identity_id
                 WHERE o.id = ?1",
            )?
            .query_row([outbox_id], |row| {
                let message_id: i64 = row.get(4)?;
                let kind: String = row.get(5)?;
                let channel: String = row.get(11)?;
                let status_update = kind == MessageKind::StatusUpdate.as_str();
                // An update's rendered parts ride in its metadata; the HTML part has its
                // column.
                let update = if status_update {
                    let metadata: Option<String> = row.get(13)?;
                    metadata
                        .and_then(|text| serde_json::from_str::<Value>(&text).ok())
                        .and_then(|mut value| serde_json::from_value::<StatusUpdate>(value["update"].take()).ok())
                        .map(|mut update| -> rusqlite::Result<StatusUpdate> {
                            update.html = row.get(12)?;
                            Ok(update)
                        })
                        .transpose()?
                } else {
                    None
                };
                let delivery = Delivery {
                    outbox_id: row.get(0)?,
                    inbox_id: row.get(1)?,
                    attempts: row.get::<_, i64>(2)?.try_into().unwrap_or(u32::MAX),
                    expires_at: row.get(3)?,
                    message: OutboundMessage {
                        delivery_id: format!("msg_{message_id}"),
                        conversation_id: row.get(7)?,
                        message_id,
                        recipient: row.get(10)?,
                        thread: row.get(8)?,
                        subject: row.get(9)?,
                        text: row.get(6)?,
                        kind: if status_update {
                            OutboundKind::StatusUpdate
                        } else {
                            OutboundKind::Reply
                        },
                        in_reply_to: None,
                        references: Vec::new(),
                        attachments: Vec::new(),
                        update,
                        window_open: true,
                        parts_sent: row.get::<_, i64>(14)?.try_into().unwrap_or(0),
                    },
                };
                Ok((delivery, channel))
            })?;
        // Email threads by earlier messages' ids, Telegram answers the customer's latest
        // message in groups. A channel that does neither skips the lookups.
        let capabilities = crate::channels::kind(&channel).map(|kind| *kind.capabilities());
        if let Some(capabilities) = capabilities.filter(|capabilities| capabilities.reply_window.is_some()) {
            let wrote_at = self.last_customer_message_at(delivery.message.conversation_id)?;
            delivery.message.window_open = capabilities.window_open(wrote_at, now);
        }
        if capabilities.is_some_and(|capabilities| capabilities.threads_by_ids) {
            self.thread_ids(&mut delivery.message)?;
        }
        if capabilities.is_some_and(|capabilities| capabilities.files_out) {
            delivery.message.attachments = self
                .conn
                .prepare_cached(
                    "SELECT a.filename, a.content_type, b.data FROM attachments a JOIN blobs b ON b.sha256 = a.blob_sha256
                     WHERE a.message_id = ?1 ORDER BY a.id",
                )?
                .query_map([delivery.message.message_id], |row| {
                    Ok(OutboundAttachment {
                        filename: row.get(0)?,
                        content_type: row.get(1)?,
                        data: row.get(2)?,
                    })
                })?
                .collect::<Result<_, _>>()?;
        }
        Ok(delivery)
    }

    /// The channel ids of the conversation's earlier messages, for a channel that threads
    /// by them (email): the customer's latest one is what this message answers.
    fn thread_ids(&mut self, message: &mut OutboundMessage) -> StoreResult<()> {
        let mut latest: Vec<(String, String)> = self
            .conn
            .prepare_cached(
                "SELECT external_id, direction FROM messages
                 WHERE conversation_id = ?1 AND id < ?2 AND external_id IS NOT NULL
                   AND NOT (direction = 'inbound' AND author_kind = 'system')
                 ORDER BY id DESC LIMIT ?3",
            )?
            .query_map(
                params![message.conversation_id, message.message_id, MAX_REFERENCES as i64],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )?
            .collect::<Result<_, _>>()?;
        latest.reverse();
        if latest.len() == MAX_REFERENCES {
            let root: Option<String> = self
                .conn
                .prepare_cached(
                    "SELECT external_id FROM messages WHERE conversation_id = ?1 AND external_id IS NOT NULL
                     ORDER BY id LIMIT 1",
                )?
                .query_row([message.conversation_id], |row| row.get(0))
                .optional()?;
            if let Some(root) = root
                && latest.first().is_none_or(|(first, _)| *first != root)
            {
                latest[0] = (root, Direction::Inbound.as_str().to_owned());
            }
        }
        message.in_reply_to = latest
            .iter()
            .rev()
            .find(|(_, direction)| direction == Direction::Inbound.as_str())
            .map(|(id, _)| id.clone());
        message.references = latest.into_iter().map(|(id, _)| id).collect();
        Ok(())
    }
}
