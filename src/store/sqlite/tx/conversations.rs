//! Conversations, their queues, follow-up timers and update records.

use rusqlite::types::Value as SqlValue;
use rusqlite::{OptionalExtension, params, params_from_iter};
use serde_json::Value;

use super::SqliteTx;
use crate::model::Priority;
use crate::store::StoreResult;
use crate::store::columns::{json_column, vocabulary};
use crate::store::columns::{status_of, to_json};
use crate::store::records::*;
use crate::store::tx::*;

impl ConversationTx for SqliteTx<'_> {
    fn conversation(&mut self, id: i64) -> StoreResult<Option<Conversation>> {
        type Row = (
            (i64, String, i64, String, String),
            (Option<i64>, Option<String>, i64, Option<i64>, String, i64),
            (Option<i64>, Option<i64>, Option<i64>),
            (Option<i64>, Option<String>, Option<i64>, Option<i64>),
        );
        let row: Option<Row> = self
            .conn
            .prepare_cached(
                "SELECT c.inbox_id, i.kind, c.contact_id, c.status, c.priority,
                        c.team_id, t.key, c.tier, c.assignee_id, c.labels, c.transfer_count,
                        c.first_response_at, c.resolved_at, c.sla_breached_at,
                        c.csat_requested_at, c.csat_comment, c.csat_answered_at, c.awaiting_since
                 FROM conversations c JOIN inboxes i ON i.id = c.inbox_id LEFT JOIN teams t ON t.id = c.team_id
                 WHERE c.id = ?1",
            )?
            .query_row([id], |row| {
                Ok((
                    (row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?),
                    (
                        row.get(5)?,
                        row.get(6)?,
                        row.get(7)?,
                        row.get(8)?,
                        row.get(9)?,
                        row.get(10)?,
                    ),
                    (row.get(11)?, row.get(12)?, row.get(13)?),
                    (row.get(14)?, row.get(15)?, row.get(16)?, row.get(17)?),
                ))
            })
            .optional()?;
        let Some((
            (inbox_id, channel, contact_id, status, priority),
            (team_id, team_key, tier, assignee, labels, transfer_count),
            (first_response_at, resolved_at, sla_breached_at),
            (csat_requested_at, csat_comment, csat_answered_at, awaiting_since),
        )) = row
        else {
            return Ok(None);
        };
        Ok(Some(Conversation {
            id,
            inbox_id,
            channel: vocabulary(crate::channels::kind, &channel)?,
            contact_id,
            status: status_of(&status)?,
            priority: vocabulary(Priority::parse, &priority)?,
            team_id,
            team_key,
            tier,
            assignee,
            labels: json_column(&labels)?,
            transfer_count,
            first_response_at,
            resolved_at,
            sla_breached_at,
            csat_requested_at,
            csat_comment,
            csat_answered_at,
            awaiting_since,
        }))
    }

    fn find_conversation(&mut self, lookup: ConversationLookup<'_>) -> StoreResult<Option<ConversationRef>> {
        let read = |row: &rusqlite::Row<'_>| -> rusqlite::Result<(i64, String, Option<String>)> {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        };
        let row = match lookup {
            ConversationLookup::ThreadKey {
                contact_id,
                inbox_id,
                key,
            } => self
                .conn
                .prepare_cached(
                    "SELECT id, status, thread_key FROM conversations
                     WHERE contact_id = ?1 AND inbox_id = ?2 AND thread_key = ?3 AND status != 'closed'
                     ORDER BY id DESC LIMIT 1",
                )?
                .query_row(params![contact_id, inbox_id, key], read)
                .optional()?,
            ConversationLookup::OpenUnthreaded { contact_id, inbox_id } => self
                .conn
                .prepare_cached(
                    "SELECT id, status, thread_key FROM conversations
                     WHERE contact_id = ?1 AND inbox_id = ?2 AND thread_key IS NULL
                       AND status IN ('open', 'pending', 'snoozed')
                     ORDER BY last_activity_at DESC, id DESC LIMIT 1",
                )?
                .query_row(params![contact_id, inbox_id], read)
                .optional()?,
            ConversationLookup::LatestNotClosed { contact_id, inbox_id } => self
                .conn
                .prepare_cached(
                    "SELECT id, status, thread_key FROM conversations
                     WHERE contact_id = ?1 AND inbox_id = ?2 AND status != 'closed'
                     ORDER BY last_activity_at DESC, id DESC LIMIT 1",
                )?
                .query_row(params![contact_id, inbox_id], read)
                .optional()?,
            ConversationLookup::LatestLive {
                contact_id,
                inbox_id,
                resolved_since,
            } => self
                .conn
                .prepare_cached(
                    "SELECT id, status, thread_key FROM conversations
                     WHERE contact_id = ?1 AND inbox_id = ?2
                       AND (status IN ('open', 'pending', 'snoozed')
                            OR (status = 'resolved' AND resolved_at >= ?3))
                     ORDER BY last_activity_at DESC, id DESC LIMIT 1",
                )?
                .query_row(params![contact_id, inbox_id, resolved_since], read)
                .optional()?,
            ConversationLookup::Own {
                id,
                contact_id,
                inbox_id,
            } => self
                .conn
                .prepare_cached(
                    "SELECT id, status, thread_key FROM conversations
                     WHERE id = ?1 AND inbox_id = ?2 AND contact_id = ?3 AND status != 'closed'",
                )?
                .query_row(params![id, inbox_id, contact_id], read)
                .optional()?,
            ConversationLookup::RecentTopic {
                contact_id,
                inbox_id,
                topic,
                since,
            } => self
                .conn
                .prepare_cached(
                    "SELECT id, status, thread_key FROM conversations
                     WHERE contact_id = ?1 AND inbox_id = ?2 AND thread_key = ?3
                       AND status IN ('open', 'pending', 'snoozed') AND last_activity_at >= ?4
                     ORDER BY last_activity_at DESC, id DESC LIMIT 1",
                )?
                .query_row(params![contact_id, inbox_id, topic, since], read)
                .optional()?,
            ConversationLookup::AskedSince { id, since } => self
                .conn
                .prepare_cached(
                    "SELECT id, status, thread_key FROM conversations WHERE id = ?1 AND csat_requested_at >= ?2",
                )?
                .query_row(params![id, since], read)
                .optional()?,
            ConversationLookup::LatestAsked {
                contact_id,
                inbox_id,
                since,
            } => self
                .conn
                .prepare_cached(
                    "SELECT id, status, thread_key FROM conversations
                     WHERE contact_id = ?1 AND inbox_id = ?2 AND status = 'resolved' AND thread_key IS NULL
                       AND csat_requested_at >= ?3
                     ORDER BY csat_requested_at DESC LIMIT 1",
                )?
                .query_row(params![contact_id, inbox_id, since], read)
                .optional()?,
            ConversationLookup::CsatToken(token) => self
                .conn
                .prepare_cached("SELECT id, status, thread_key FROM conversations WHERE csat_token = ?1")?
                .query_row([token], read)
                .optional()?,
        };
        row.map(|(id, status, topic)| {
            Ok(ConversationRef {
                id,
                status: status_of(&status)?,
                topic,
            })
        })
        .transpose()
    }

    fn insert_conversation(&mut self, new: &NewConversation<'_>) -> StoreResult<i64> {
        Ok(self
            .conn
            .prepare_cached(
                "INSERT INTO conversations (inbox_id, contact_id, identity_id, thread_key, subject, status, priority,
                                            team_id, labels, language, created_at, updated_at, last_activity_at,
                                            tier, queued_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'open', ?6, ?7, ?8, ?9, ?10, ?10, ?10, ?11, ?10) RETURNING id",
            )?
            .query_row(
                params![
                    new.inbox_id,
                    new.contact_id,
                    new.identity_id,
                    new.thread_key,
                    new.subject,
                    new.priority.as_str(),
                    new.team_id,
                    to_json(&new.labels, "[]"),
                    new.language,
                    new.now,
                    new.tier
                ],
                |row| row.get(0),
            )?)
    }

    fn update_conversation(&mut self, id: i64, patch: &ConversationPatch) -> StoreResult<()> {
        let mut sets: Vec<&'static str> = Vec::new();
        let mut values: Vec<SqlValue> = Vec::new();
        let mut set = |column: &'static str, value: SqlValue| {
            sets.push(column);
            values.push(value);
        };
        let int = |value: Option<i64>| value.map_or(SqlValue::Null, SqlValue::Integer);
        let text = |value: Option<&str>| value.map_or(SqlValue::Null, |text| SqlValue::Text(text.to_owned()));
        if let Some(status) = patch.status {
            set("status = ?", text(Some(status.as_str())));
        }
        if let Some(priority) = patch.priority {
            set("priority = ?", text(Some(priority.as_str())));
        }
        if let Some(assignee) = patch.assignee {
            set("assignee_id = ?", int(assignee));
        }
        if let Some(team_id) = patch.team_id {
            set("team_id = ?", int(team_id));
        }
        if let Some(tier) = patch.tier {
            set("tier = ?", int(Some(tier)));
        }
        if let Some(count) = patch.transfer_count {
            set("transfer_count = ?", int(Some(count)));
        }
        if let Some(labels) = &patch.labels {
            set("labels = ?", text(Some(&to_json(labels, "[]"))));
        }
        if let Some(resolved_at) = patch.resolved_at {
            set("resolved_at = ?", int(resolved_at));
        }
        if let Some(at) = patch.first_response_at {
            set("first_response_at = ?", int(Some(at)));
        }
        if let Some(at) = patch.queued_at {
            set("queued_at = ?", int(Some(at)));
        }
        if let Some(escalation) = &patch.escalation {
            set("escalation = ?", text(Some(&escalation.to_string())));
        }
        if let Some(at) = patch.sla_breached_at {
            set("sla_breached_at = ?", int(Some(at)));
        }
        if let Some(at) = patch.updated_at {
            set("updated_at = ?", int(Some(at)));
        }
        if let Some(at) = patch.last_activity_at {
            set("last_activity_at = ?", int(Some(at)));
        }
        if let Some(identity_id) = patch.identity_id {
            set("identity_id = ?", int(Some(identity_id)));
        }
        if let Some(message_id) = patch.last_message_id {
            set("last_message_id = ?", int(Some(message_id)));
        }
        if let Some(language) = &patch.language_if_unset {
            set("language = COALESCE(language, ?)", text(Some(language)));
        }
        if let Some(since) = patch.awaiting_since {
            set("awaiting_since = ?", int(since));
        }
        if let Some(since) = patch.awaiting_since_if_unset {
            set("awaiting_since = COALESCE(awaiting_since, ?)", int(Some(since)));
        }
        match &patch.csat {
            None => {}
            Some(CsatPatch::Asked { token, at }) => {
                set("csat_token = ?", text(Some(token)));
                set("csat_requested_at = ?", int(Some(*at)));
                set("csat_score = ?", SqlValue::Null);
                set("csat_comment = ?", SqlValue::Null);
                set("csat_answered_at = ?", SqlValue::Null);
            }
            Some(CsatPatch::Answered { score, comment, at }) => {
                set("csat_score = ?", int(Some(i64::from(*score))));
                set("csat_comment = ?", text(comment.as_deref()));
                set("csat_answered_at = ?", int(Some(*at)));
            }
            Some(CsatPatch::Withdrawn) => {
                set("csat_token = ?", SqlValue::Null);
                set("csat_requested_at = ?", SqlValue::Null);
            }
        }
        if sets.is_empty() {
            return Ok(());
        }
        values.push(SqlValue::Integer(id));
        let sql = format!("UPDATE conversations SET {} WHERE id = ?", sets.join(", "));
        self.conn.prepare_cached(&sql)?.execute(params_from_iter(values))?;
        Ok(())
    }

    fn waiting(&mut self, team_id: i64, limit: u32) -> StoreResult<Vec<Queued>> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT id, language, COALESCE(queued_at, created_at) FROM conversations INDEXED BY conversations_waiting
                 WHERE team_id = ?1 AND status = 'open' AND assignee_id IS NULL
                 ORDER BY (CASE priority WHEN 'urgent' THEN 0 WHEN 'high' THEN 1 WHEN 'normal' THEN 2 ELSE 3 END),
                          queued_at, id
                 LIMIT ?2",
            )?
            .query_map(params![team_id, limit], |row| {
                Ok(Queued {
                    id: row.get(0)?,
                    language: row.get(1)?,
                    queued_at: row.get(2)?,
                })
            })?
            .collect::<Result<_, _>>()?)
    }

    fn previous_assignee(&mut self, contact_id: i64, except: i64) -> StoreResult<Option<i64>> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT assignee_id FROM conversations
                 WHERE contact_id = ?1 AND id <> ?2 AND assignee_id IS NOT NULL ORDER BY id DESC LIMIT 1",
            )?
            .query_row(params![contact_id, except], |row| row.get(0))
            .optional()?)
    }

    fn update_target(&mut self, id: i64) -> StoreResult<Option<UpdateTarget>> {
        type Row = (
            (i64, String, String, String, Option<String>, Option<String>),
            (String, String, Option<String>, Option<String>),
            (Option<String>, Option<String>, Option<String>, String, bool),
        );
        let row: Option<Row> = self
            .conn
            .prepare_cached(
                "SELECT c.inbox_id, i.key, i.name, i.kind, t.key, t.name, c.status, c.priority, c.subject, a.name,
                        ct.name, ct.email, COALESCE(ct.language, c.language), ct.metadata,
                        ct.updates_opted_out_at IS NOT NULL
                 FROM conversations c
                 JOIN inboxes i ON i.id = c.inbox_id
                 JOIN contacts ct ON ct.id = c.contact_id
                 LEFT JOIN teams t ON t.id = c.team_id
                 LEFT JOIN agents a ON a.id = c.assignee_id
                 WHERE c.id = ?1",
            )?
            .query_row([id], |row| {
                Ok((
                    (
                        row.get(0)?,
                        row.get(1)?,
                        row.get(2)?,
                        row.get(3)?,
                        row.get(4)?,
                        row.get(5)?,
                    ),
                    (row.get(6)?, row.get(7)?, row.get(8)?, row.get(9)?),
                    (row.get(10)?, row.get(11)?, row.get(12)?, row.get(13)?, row.get(14)?),
                ))
            })
            .optional()?;
        let Some((
            (inbox_id, inbox_key, inbox_name, kind, team_key, team_name),
            (status, priority, subject, agent),
            (contact_name, contact_email, language, metadata, opted_out),
        )) = row
        else {
            return Ok(None);
        };
        Ok(Some(UpdateTarget {
            id,
            inbox_id,
            inbox_key,
            inbox_name,
            channel: vocabulary(crate::channels::kind, &kind)?,
            team_key,
            team_name,
            status: status_of(&status)?,
            priority: vocabulary(Priority::parse, &priority)?,
            subject,
            agent,
            contact_name,
            contact_email,
            language,
            contact_metadata: serde_json::from_str(&metadata).unwrap_or(Value::Null),
            opted_out,
        }))
    }

    fn update_sent_at(&mut self, conversation_id: i64, event: &str) -> StoreResult<Option<i64>> {
        Ok(self
            .conn
            .prepare_cached("SELECT sent_at FROM status_updates_sent WHERE conversation_id = ?1 AND event = ?2")?
            .query_row(params![conversation_id, event], |row| row.get(0))
            .optional()?)
    }

    fn note_update_sent(&mut self, conversation_id: i64, event: &str, now: i64) -> StoreResult<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO status_updates_sent (conversation_id, event, sent_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (conversation_id, event) DO UPDATE SET sent_at = excluded.sent_at",
            )?
            .execute(params![conversation_id, event, now])?;
        Ok(())
    }

    fn set_timer(&mut self, conversation_id: i64, kind: &str, at: i64) -> StoreResult<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO conversation_timers (conversation_id, kind, fire_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (conversation_id, kind) DO UPDATE SET fire_at = excluded.fire_at",
            )?
            .execute(params![conversation_id, kind, at])?;
        Ok(())
    }

    fn clear_timers(&mut self, conversation_id: i64, kind: Option<&str>) -> StoreResult<()> {
        match kind {
            Some(kind) => self
                .conn
                .prepare_cached("DELETE FROM conversation_timers WHERE conversation_id = ?1 AND kind = ?2")?
                .execute(params![conversation_id, kind])?,
            None => self
                .conn
                .prepare_cached("DELETE FROM conversation_timers WHERE conversation_id = ?1")?
                .execute([conversation_id])?,
        };
        Ok(())
    }

    fn due_timers(&mut self, now: i64, limit: u32) -> StoreResult<Vec<(i64, String)>> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT conversation_id, kind FROM conversation_timers WHERE fire_at <= ?1 ORDER BY fire_at LIMIT ?2",
            )?
            .query_map(params![now, limit], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<Result<_, _>>()?)
    }
}
