//! The outbox: rows claimed under a lease, and a claimed row as its channel sends it.

use serde_json::Value;
use sqlx::postgres::PgRow;
use switchboard_connector_core::{DeliveryReport, OutboundAttachment, OutboundKind, OutboundMessage, StatusUpdate};

use super::{PgTx, column};
use crate::model::{DeliveryStatus, Direction, MessageKind};
use crate::store::columns::to_json;
use crate::store::columns::vocabulary;
use crate::store::records::*;
use crate::store::tx::*;
use crate::store::{StoreError, StoreResult};

/// What a settled or looked-at row answers with.
const OUTBOX_ROW: &str = "id, status, conversation_id, message_id, attempts";

impl OutboxTx for PgTx<'_> {
    fn insert_outbox(
        &mut self,
        message_id: i64,
        conversation_id: i64,
        inbox_id: i64,
        now: i64,
        expires_at: i64,
    ) -> StoreResult<()> {
        self.execute(
            sqlx::query(
                "INSERT INTO outbox (message_id, conversation_id, inbox_id, status, next_attempt_at, expires_at,
                                     created_at, updated_at)
                 VALUES ($1, $2, $3, 'scheduled', $4, $5, $4, $4)",
            )
            .bind(message_id)
            .bind(conversation_id)
            .bind(inbox_id)
            .bind(now)
            .bind(expires_at),
        )?;
        Ok(())
    }

    /// The budgets apply among the first due rows (four times `limit`), so a claim stays
    /// cheap behind a large backlog.
    ///
    /// Several daemons claim at once: the candidates are locked `SKIP LOCKED`, so a row
    /// another claimer holds is passed over rather than waited for or taken twice.
    /// PostgreSQL refuses a row lock beside a window function in one `SELECT`, so the
    /// lock is taken in the innermost one and the turns are counted outside it. A
    /// conversation's later message is no candidate while an earlier one waits or is in
    /// flight, even when another claimer holds that earlier one locked: the per
    /// conversation order holds across daemons too.
    fn claim_deliveries(
        &mut self,
        now: i64,
        limit: u32,
        lease: Lease<'_>,
        plan: &ClaimPlan,
    ) -> StoreResult<Vec<Delivery>> {
        let budgets = to_json(&plan.budgets, "{}");
        let claimed = self.rows(
            sqlx::query(
                "UPDATE outbox SET status = 'in_flight', attempts = attempts + 1, lease_until = $1, lease_holder = $8,
                                   updated_at = $2
                 WHERE id IN (
                     SELECT id FROM (
                         SELECT id, next_attempt_at,
                                ROW_NUMBER() OVER (PARTITION BY inbox_id ORDER BY next_attempt_at, id) AS turn,
                                COALESCE(($5::jsonb ->> inbox_id::text)::BIGINT, $6) AS room
                         FROM (
                             SELECT o.id, o.inbox_id, o.next_attempt_at FROM outbox o
                             WHERE o.status = 'scheduled' AND o.next_attempt_at <= $2
                               AND o.inbox_id <> ALL($4)
                               AND NOT EXISTS (
                                   SELECT 1 FROM outbox other
                                   WHERE other.conversation_id = o.conversation_id AND other.id <> o.id
                                     -- Repeats the partial index's condition, so the planner uses
                                     -- it rather than reading every row the outbox ever held.
                                     AND other.status IN ('scheduled', 'in_flight')
                                     AND (other.status = 'in_flight' OR other.id < o.id))
                             ORDER BY o.next_attempt_at, o.id LIMIT $7
                             FOR UPDATE OF o SKIP LOCKED) AS candidates) AS turns
                     WHERE turn <= room ORDER BY next_attempt_at, id LIMIT $3)
                 RETURNING id",
            )
            .bind(lease.until)
            .bind(now)
            .bind(i64::from(limit))
            .bind(&plan.held)
            .bind(budgets)
            .bind(i64::from(plan.cap))
            .bind(i64::from(limit.saturating_mul(4)))
            .bind(lease.holder),
        )?;
        let mut deliveries = Vec::with_capacity(claimed.len());
        for row in claimed {
            let outbox_id: i64 = column(&row, "id")?;
            deliveries.push(self.delivery_of(outbox_id, now)?);
        }
        deliveries.sort_by_key(|delivery| delivery.outbox_id);
        Ok(deliveries)
    }

    fn settle_delivery(&mut self, id: i64, settlement: Settlement<'_>, now: i64) -> StoreResult<Option<OutboxRow>> {
        let row = match settlement {
            Settlement::Sent { receipt, external_id } => self.row(
                sqlx::query(&format!(
                    "UPDATE outbox SET status = 'sent', receipt = $1, sent_at = $2, last_error = NULL,
                            lease_until = NULL, updated_at = $2, external_id = $4
                     WHERE id = $3 AND status = 'in_flight' RETURNING {OUTBOX_ROW}"
                ))
                .bind(receipt)
                .bind(now)
                .bind(id)
                .bind(external_id),
            )?,
            Settlement::Skipped { reason } => self.row(
                sqlx::query(&format!(
                    "UPDATE outbox SET status = 'skipped', last_error = $1, lease_until = NULL, updated_at = $2
                     WHERE id = $3 AND status = 'in_flight' RETURNING {OUTBOX_ROW}"
                ))
                .bind(reason)
                .bind(now)
                .bind(id),
            )?,
            Settlement::RetryAt { at, error } => self.row(
                sqlx::query(&format!(
                    "UPDATE outbox SET status = 'scheduled', next_attempt_at = $1, last_error = $2, lease_until = NULL,
                            updated_at = $3
                     WHERE id = $4 AND status = 'in_flight' RETURNING {OUTBOX_ROW}"
                ))
                .bind(at)
                .bind(error)
                .bind(now)
                .bind(id),
            )?,
            Settlement::Failed { error } => self.row(
                sqlx::query(&format!(
                    "UPDATE outbox SET status = 'failed', last_error = $1, lease_until = NULL, updated_at = $2
                     WHERE id = $3 AND status = 'in_flight' RETURNING {OUTBOX_ROW}"
                ))
                .bind(error)
                .bind(now)
                .bind(id),
            )?,
            Settlement::Unclaimed { not_before } => self.row(
                sqlx::query(&format!(
                    "UPDATE outbox SET status = 'scheduled', attempts = GREATEST(attempts - 1, 0),
                            next_attempt_at = GREATEST(next_attempt_at, $1), lease_until = NULL, updated_at = $2
                     WHERE id = $3 AND status = 'in_flight' RETURNING {OUTBOX_ROW}"
                ))
                .bind(not_before)
                .bind(now)
                .bind(id),
            )?,
        };
        row.as_ref().map(outbox_row).transpose()
    }

    fn fail_delivery(&mut self, id: i64, error: &str, now: i64) -> StoreResult<()> {
        self.execute(
            sqlx::query(
                "UPDATE outbox SET status = 'failed', last_error = $1, lease_until = NULL, updated_at = $2 WHERE id = $3",
            )
            .bind(error)
            .bind(now)
            .bind(id),
        )?;
        Ok(())
    }

    fn last_customer_message_at(&mut self, conversation_id: i64) -> StoreResult<Option<i64>> {
        self.row(
            sqlx::query(
                "SELECT created_at FROM messages
                 WHERE conversation_id = $1 AND direction = 'inbound' AND author_kind = 'contact'
                 ORDER BY id DESC LIMIT 1",
            )
            .bind(conversation_id),
        )?
        .map(|row| column(&row, "created_at"))
        .transpose()
    }

    fn record_delivery_report(&mut self, inbox_id: i64, report: &DeliveryReport, now: i64) -> StoreResult<bool> {
        let changed = self.execute(
            sqlx::query(
                "INSERT INTO delivery_reports (inbox_id, external_id, state, rank, error, reported_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (inbox_id, external_id) DO UPDATE SET
                    state = excluded.state, rank = excluded.rank, error = excluded.error,
                    reported_at = excluded.reported_at, updated_at = excluded.updated_at
                 WHERE excluded.rank > delivery_reports.rank",
            )
            .bind(inbox_id)
            .bind(&report.external_id)
            .bind(report.state.as_str())
            .bind(report_rank(report.state))
            .bind(&report.error)
            .bind(report.at_ms)
            .bind(now),
        )?;
        Ok(changed > 0)
    }

    fn set_parts_sent(&mut self, id: i64, parts_sent: u32) -> StoreResult<()> {
        self.execute(
            sqlx::query("UPDATE outbox SET parts_sent = GREATEST(parts_sent, $2) WHERE id = $1")
                .bind(id)
                .bind(i64::from(parts_sent)),
        )?;
        Ok(())
    }

    fn prune_delivery_reports(&mut self, before: i64) -> StoreResult<u64> {
        self.execute(
            sqlx::query(
                "DELETE FROM delivery_reports dr
                 WHERE dr.updated_at < $1 AND NOT EXISTS
                     (SELECT 1 FROM outbox o WHERE o.inbox_id = dr.inbox_id AND o.external_id = dr.external_id)",
            )
            .bind(before),
        )
    }

    fn reported_failure(&mut self, outbox_id: i64) -> StoreResult<Option<Option<String>>> {
        self.row(
            sqlx::query(
                "SELECT dr.error FROM outbox o
                 JOIN delivery_reports dr ON dr.inbox_id = o.inbox_id AND dr.external_id = o.external_id
                 WHERE o.id = $1 AND dr.state = 'failed'",
            )
            .bind(outbox_id),
        )?
        .map(|row| column(&row, "error"))
        .transpose()
    }

    fn fail_sent_delivery(
        &mut self,
        inbox_id: i64,
        external_id: &str,
        error: &str,
        now: i64,
    ) -> StoreResult<Option<OutboxRow>> {
        self.row(
            sqlx::query(&format!(
                "UPDATE outbox SET status = 'failed', last_error = $1, updated_at = $2
                 WHERE inbox_id = $3 AND external_id = $4 AND status = 'sent' RETURNING {OUTBOX_ROW}"
            ))
            .bind(error)
            .bind(now)
            .bind(inbox_id)
            .bind(external_id),
        )?
        .as_ref()
        .map(outbox_row)
        .transpose()
    }

    fn set_sent_message_id(&mut self, outbox_id: i64, external_id: &str) -> StoreResult<()> {
        // An id some inbound message of the inbox already holds must not fail the record
        // of a send that happened; threading then finds that message. PostgreSQL has no
        // `UPDATE OR IGNORE` and a unique violation would abort the unit, so the row is
        // left alone when the dedupe key is taken. (A concurrent unit taking it meanwhile
        // is a serialization failure, and the unit runs again and sees it.)
        self.execute(
            sqlx::query(
                "UPDATE messages m SET external_id = $1
                 WHERE m.id = (SELECT message_id FROM outbox WHERE id = $2) AND m.external_id IS NULL
                   AND NOT EXISTS (
                       SELECT 1 FROM messages other WHERE other.inbox_id = m.inbox_id AND other.external_id = $1)",
            )
            .bind(external_id)
            .bind(outbox_id),
        )?;
        Ok(())
    }

    fn delivery(&mut self, id: i64) -> StoreResult<Option<OutboxRow>> {
        self.row(sqlx::query(&format!("SELECT {OUTBOX_ROW} FROM outbox WHERE id = $1")).bind(id))?
            .as_ref()
            .map(outbox_row)
            .transpose()
    }

    fn delivery_by_channel_id(&mut self, inbox_id: i64, external_id: &str) -> StoreResult<Option<OutboxRow>> {
        self.row(
            sqlx::query(&format!(
                "SELECT {OUTBOX_ROW} FROM outbox WHERE inbox_id = $1 AND external_id = $2 ORDER BY id LIMIT 1"
            ))
            .bind(inbox_id)
            .bind(external_id),
        )?
        .as_ref()
        .map(outbox_row)
        .transpose()
    }

    fn reschedule_delivery(&mut self, id: i64, now: i64, expires_at: i64) -> StoreResult<()> {
        self.execute(
            sqlx::query(
                "UPDATE outbox SET status = 'scheduled', attempts = 0, next_attempt_at = $1, expires_at = $2,
                        lease_until = NULL, updated_at = $1
                 WHERE id = $3",
            )
            .bind(now)
            .bind(expires_at)
            .bind(id),
        )?;
        Ok(())
    }

    fn next_delivery_after(&mut self, now: i64) -> StoreResult<Option<i64>> {
        // A seek in the due index, whatever the backlog.
        let row = self.row(
            sqlx::query(
                "SELECT MIN(next_attempt_at) AS next FROM outbox WHERE status = 'scheduled' AND next_attempt_at > $1",
            )
            .bind(now),
        )?;
        match row {
            Some(row) => column(&row, "next"),
            None => Ok(None),
        }
    }

    fn defer_deliveries(&mut self, inbox_id: i64, until: i64, now: i64) -> StoreResult<u64> {
        self.execute(
            sqlx::query(
                "UPDATE outbox SET next_attempt_at = $1, updated_at = $2
                 WHERE status = 'scheduled' AND inbox_id = $3 AND next_attempt_at < $1",
            )
            .bind(until)
            .bind(now)
            .bind(inbox_id),
        )
    }

    fn release_deliveries(&mut self, expired_before: i64, now: i64) -> StoreResult<u64> {
        self.release_leased("outbox", expired_before, now)
    }

    fn renew_deliveries(&mut self, lease: Lease<'_>) -> StoreResult<u64> {
        self.renew_leased("outbox", lease)
    }

    fn set_channel_cursor(&mut self, inbox_id: i64, name: &str, value: &str, now: i64) -> StoreResult<()> {
        self.execute(
            sqlx::query(
                "INSERT INTO channel_cursors (inbox_id, name, value, updated_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (inbox_id, name) DO UPDATE SET value = EXCLUDED.value, updated_at = EXCLUDED.updated_at",
            )
            .bind(inbox_id)
            .bind(name)
            .bind(value)
            .bind(now),
        )?;
        Ok(())
    }
}

fn outbox_row(row: &PgRow) -> StoreResult<OutboxRow> {
    let status: String = column(row, "status")?;
    Ok(OutboxRow {
        id: column(row, "id")?,
        status: vocabulary(DeliveryStatus::parse, &status)?,
        conversation_id: column(row, "conversation_id")?,
        message_id: column(row, "message_id")?,
        attempts: column(row, "attempts")?,
    })
}

/// How many ids of earlier messages a References header carries: the first (the thread's
/// root) and the latest ones, as RFC 5322 suggests trimming long threads.
const MAX_REFERENCES: usize = 20;

impl PgTx<'_> {
    /// A claimed row as its channel sends it.
    fn delivery_of(&mut self, outbox_id: i64, now: i64) -> StoreResult<Delivery> {
        let row = self
            .row(
                sqlx::query(
                    "SELECT o.id AS outbox_id, o.inbox_id, o.attempts, o.expires_at, m.id AS message_id, m.kind,
                            m.text, c.id AS conversation_id, c.thread_key, c.subject, ci.external_id AS recipient,
                            ci.channel, m.html, m.metadata, o.parts_sent
                     FROM outbox o
                     JOIN messages m ON m.id = o.message_id
                     JOIN conversations c ON c.id = o.conversation_id
                     JOIN contact_identities ci ON ci.id = c.identity_id
                     WHERE o.id = $1",
                )
                .bind(outbox_id),
            )?
            .ok_or_else(|| StoreError::from(sqlx::Error::RowNotFound))?;
        let message_id: i64 = column(&row, "message_id")?;
        let kind: String = column(&row, "kind")?;
        let channel: String = column(&row, "channel")?;
        let status_update = kind == MessageKind::StatusUpdate.as_str();
        // An update's rendered parts ride in its metadata; the HTML part has its column.
        let update = if status_update {
            let metadata: Option<String> = column(&row, "metadata")?;
            match metadata
                .and_then(|text| serde_json::from_str::<Value>(&text).ok())
                .and_then(|mut value| serde_json::from_value::<StatusUpdate>(value["update"].take()).ok())
            {
                Some(mut update) => {
                    update.html = column(&row, "html")?;
                    Some(update)
                }
                None => None,
            }
        } else {
            None
        };
        let mut delivery = Delivery {
            outbox_id: column(&row, "outbox_id")?,
            inbox_id: column(&row, "inbox_id")?,
            attempts: column::<i64>(&row, "attempts")?.try_into().unwrap_or(u32::MAX),
            expires_at: column(&row, "expires_at")?,
            message: OutboundMessage {
                delivery_id: format!("msg_{message_id}"),
                conversation_id: column(&row, "conversation_id")?,
                message_id,
                recipient: column(&row, "recipient")?,
                thread: column(&row, "thread_key")?,
                subject: column(&row, "subject")?,
                text: column(&row, "text")?,
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
                parts_sent: column::<i64>(&row, "parts_sent")?.try_into().unwrap_or(0),
            },
        };
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
                .rows(
                    sqlx::query(
                        "SELECT a.filename, a.content_type, b.data FROM attachments a
                         JOIN blobs b ON b.sha256 = a.blob_sha256
                         WHERE a.message_id = $1 ORDER BY a.id",
                    )
                    .bind(delivery.message.message_id),
                )?
                .iter()
                .map(|row| {
                    Ok(OutboundAttachment {
                        filename: column(row, "filename")?,
                        content_type: column(row, "content_type")?,
                        data: column(row, "data")?,
                    })
                })
                .collect::<StoreResult<_>>()?;
        }
        Ok(delivery)
    }

    /// The channel ids of the conversation's earlier messages, for a channel that threads
    /// by them (email): the customer's latest one is what this message answers.
    fn thread_ids(&mut self, message: &mut OutboundMessage) -> StoreResult<()> {
        let mut latest: Vec<(String, String)> = self
            .rows(
                sqlx::query(
                    "SELECT external_id, direction FROM messages
                     WHERE conversation_id = $1 AND id < $2 AND external_id IS NOT NULL
                       AND NOT (direction = 'inbound' AND author_kind = 'system')
                     ORDER BY id DESC LIMIT $3",
                )
                .bind(message.conversation_id)
                .bind(message.message_id)
                .bind(MAX_REFERENCES as i64),
            )?
            .iter()
            .map(|row| Ok((column(row, "external_id")?, column(row, "direction")?)))
            .collect::<StoreResult<_>>()?;
        latest.reverse();
        if latest.len() == MAX_REFERENCES {
            let root: Option<String> = self
                .row(
                    sqlx::query(
                        "SELECT external_id FROM messages WHERE conversation_id = $1 AND external_id IS NOT NULL
                         ORDER BY id LIMIT 1",
                    )
                    .bind(message.conversation_id),
                )?
                .map(|row| column(&row, "external_id"))
                .transpose()?;
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
