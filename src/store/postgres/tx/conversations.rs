//! Conversations, their queues, follow-up timers and update records.

use serde_json::Value;
use sqlx::postgres::PgRow;
use sqlx::{Postgres, QueryBuilder};

use super::{PgTx, column};
use crate::model::Priority;
use crate::store::columns::{json_column, status_of, to_json, vocabulary};
use crate::store::records::*;
use crate::store::tx::*;
use crate::store::{StoreError, StoreResult};

fn conversation_ref(row: &PgRow) -> StoreResult<ConversationRef> {
    Ok(ConversationRef {
        id: column(row, "id")?,
        status: status_of(&column::<String>(row, "status")?)?,
        topic: column(row, "thread_key")?,
    })
}

impl ConversationTx for PgTx<'_> {
    fn conversation(&mut self, id: i64) -> StoreResult<Option<Conversation>> {
        let Some(row) = self.row(
            sqlx::query(
                "SELECT c.inbox_id, i.kind, c.contact_id, c.status, c.priority,
                        c.team_id, t.key AS team_key, c.tier, c.assignee_id, c.labels, c.transfer_count,
                        c.first_response_at, c.resolved_at, c.sla_breached_at,
                        c.csat_requested_at, c.csat_comment, c.csat_answered_at, c.awaiting_since
                 FROM conversations c JOIN inboxes i ON i.id = c.inbox_id LEFT JOIN teams t ON t.id = c.team_id
                 WHERE c.id = $1",
            )
            .bind(id),
        )?
        else {
            return Ok(None);
        };
        Ok(Some(Conversation {
            id,
            inbox_id: column(&row, "inbox_id")?,
            channel: vocabulary(crate::channels::kind, &column::<String>(&row, "kind")?)?,
            contact_id: column(&row, "contact_id")?,
            status: status_of(&column::<String>(&row, "status")?)?,
            priority: vocabulary(Priority::parse, &column::<String>(&row, "priority")?)?,
            team_id: column(&row, "team_id")?,
            team_key: column(&row, "team_key")?,
            tier: column(&row, "tier")?,
            assignee: column(&row, "assignee_id")?,
            labels: json_column(&column::<String>(&row, "labels")?)?,
            transfer_count: column(&row, "transfer_count")?,
            first_response_at: column(&row, "first_response_at")?,
            resolved_at: column(&row, "resolved_at")?,
            sla_breached_at: column(&row, "sla_breached_at")?,
            csat_requested_at: column(&row, "csat_requested_at")?,
            csat_comment: column(&row, "csat_comment")?,
            csat_answered_at: column(&row, "csat_answered_at")?,
            awaiting_since: column(&row, "awaiting_since")?,
        }))
    }

    fn find_conversation(&mut self, lookup: ConversationLookup<'_>) -> StoreResult<Option<ConversationRef>> {
        let query = match lookup {
            ConversationLookup::ThreadKey {
                contact_id,
                inbox_id,
                key,
            } => sqlx::query(
                "SELECT id, status, thread_key FROM conversations
                 WHERE contact_id = $1 AND inbox_id = $2 AND thread_key = $3 AND status != 'closed'
                 ORDER BY id DESC LIMIT 1",
            )
            .bind(contact_id)
            .bind(inbox_id)
            .bind(key),
            ConversationLookup::OpenUnthreaded { contact_id, inbox_id } => sqlx::query(
                "SELECT id, status, thread_key FROM conversations
                 WHERE contact_id = $1 AND inbox_id = $2 AND thread_key IS NULL
                   AND status IN ('open', 'pending', 'snoozed')
                 ORDER BY last_activity_at DESC, id DESC LIMIT 1",
            )
            .bind(contact_id)
            .bind(inbox_id),
            ConversationLookup::LatestNotClosed { contact_id, inbox_id } => sqlx::query(
                "SELECT id, status, thread_key FROM conversations
                 WHERE contact_id = $1 AND inbox_id = $2 AND status != 'closed'
                 ORDER BY last_activity_at DESC, id DESC LIMIT 1",
            )
            .bind(contact_id)
            .bind(inbox_id),
            ConversationLookup::LatestLive {
                contact_id,
                inbox_id,
                resolved_since,
            } => sqlx::query(
                "SELECT id, status, thread_key FROM conversations
                 WHERE contact_id = $1 AND inbox_id = $2
                   AND (status IN ('open', 'pending', 'snoozed')
                        OR (status = 'resolved' AND resolved_at >= $3))
                 ORDER BY last_activity_at DESC, id DESC LIMIT 1",
            )
            .bind(contact_id)
            .bind(inbox_id)
            .bind(resolved_since),
            ConversationLookup::Own {
                id,
                contact_id,
                inbox_id,
            } => sqlx::query(
                "SELECT id, status, thread_key FROM conversations
                 WHERE id = $1 AND inbox_id = $2 AND contact_id = $3 AND status != 'closed'",
            )
            .bind(id)
            .bind(inbox_id)
            .bind(contact_id),
            ConversationLookup::RecentTopic {
                contact_id,
                inbox_id,
                topic,
                since,
            } => sqlx::query(
                "SELECT id, status, thread_key FROM conversations
                 WHERE contact_id = $1 AND inbox_id = $2 AND thread_key = $3
                   AND status IN ('open', 'pending', 'snoozed') AND last_activity_at >= $4
                 ORDER BY last_activity_at DESC, id DESC LIMIT 1",
            )
            .bind(contact_id)
            .bind(inbox_id)
            .bind(topic)
            .bind(since),
            ConversationLookup::AskedSince { id, since } => sqlx::query(
                "SELECT id, status, thread_key FROM conversations WHERE id = $1 AND csat_requested_at >= $2",
            )
            .bind(id)
            .bind(since),
            ConversationLookup::LatestAsked {
                contact_id,
                inbox_id,
                since,
            } => sqlx::query(
                "SELECT id, status, thread_key FROM conversations
                 WHERE contact_id = $1 AND inbox_id = $2 AND status = 'resolved' AND thread_key IS NULL
                   AND csat_requested_at >= $3
                 ORDER BY csat_requested_at DESC LIMIT 1",
            )
            .bind(contact_id)
            .bind(inbox_id)
            .bind(since),
            ConversationLookup::CsatToken(token) => {
                sqlx::query("SELECT id, status, thread_key FROM conversations WHERE csat_token = $1").bind(token)
            }
        };
        self.row(query)?.as_ref().map(conversation_ref).transpose()
    }

    fn insert_conversation(&mut self, new: &NewConversation<'_>) -> StoreResult<i64> {
        let row = self.row(
            sqlx::query(
                "INSERT INTO conversations (inbox_id, contact_id, identity_id, thread_key, subject, status, priority,
                                            team_id, labels, language, created_at, updated_at, last_activity_at,
                                            tier, queued_at)
                 VALUES ($1, $2, $3, $4, $5, 'open', $6, $7, $8, $9, $10, $10, $10, $11, $10) RETURNING id",
            )
            .bind(new.inbox_id)
            .bind(new.contact_id)
            .bind(new.identity_id)
            .bind(new.thread_key)
            .bind(new.subject)
            .bind(new.priority.as_str())
            .bind(new.team_id)
            .bind(to_json(&new.labels, "[]"))
            .bind(new.language)
            .bind(new.now)
            .bind(new.tier),
        )?;
        // INSERT … RETURNING always answers with the row it inserted.
        let row = row.ok_or_else(|| StoreError::fatal("INSERT … RETURNING returned no row"))?;
        column(&row, "id")
    }

    fn update_conversation(&mut self, id: i64, patch: &ConversationPatch) -> StoreResult<()> {
        let mut update = QueryBuilder::<Postgres>::new("UPDATE conversations SET ");
        let mut first = true;
        // Starts the next `column = ` of the SET list; the caller pushes the value.
        let mut set = |update: &mut QueryBuilder<'_, Postgres>, assignment: &str| {
            if !first {
                update.push(", ");
            }
            first = false;
            update.push(assignment);
        };
        if let Some(status) = patch.status {
            set(&mut update, "status = ");
            update.push_bind(status.as_str());
        }
        if let Some(priority) = patch.priority {
            set(&mut update, "priority = ");
            update.push_bind(priority.as_str());
        }
        if let Some(assignee) = patch.assignee {
            set(&mut update, "assignee_id = ");
            update.push_bind(assignee);
        }
        if let Some(team_id) = patch.team_id {
            set(&mut update, "team_id = ");
            update.push_bind(team_id);
        }
        if let Some(tier) = patch.tier {
            set(&mut update, "tier = ");
            update.push_bind(tier);
        }
        if let Some(count) = patch.transfer_count {
            set(&mut update, "transfer_count = ");
            update.push_bind(count);
        }
        if let Some(labels) = &patch.labels {
            set(&mut update, "labels = ");
            update.push_bind(to_json(labels, "[]"));
        }
        if let Some(resolved_at) = patch.resolved_at {
            set(&mut update, "resolved_at = ");
            update.push_bind(resolved_at);
        }
        if let Some(at) = patch.first_response_at {
            set(&mut update, "first_response_at = ");
            update.push_bind(at);
        }
        if let Some(at) = patch.queued_at {
            set(&mut update, "queued_at = ");
            update.push_bind(at);
        }
        if let Some(escalation) = &patch.escalation {
            set(&mut update, "escalation = ");
            update.push_bind(escalation.to_string());
        }
        if let Some(at) = patch.sla_breached_at {
            set(&mut update, "sla_breached_at = ");
            update.push_bind(at);
        }
        if let Some(at) = patch.updated_at {
            set(&mut update, "updated_at = ");
            update.push_bind(at);
        }
        if let Some(at) = patch.last_activity_at {
            set(&mut update, "last_activity_at = ");
            update.push_bind(at);
        }
        if let Some(identity_id) = patch.identity_id {
            set(&mut update, "identity_id = ");
            update.push_bind(identity_id);
        }
        if let Some(message_id) = patch.last_message_id {
            set(&mut update, "last_message_id = ");
            update.push_bind(message_id);
        }
        if let Some(language) = &patch.language_if_unset {
            set(&mut update, "language = COALESCE(language, ");
            update.push_bind(language.clone());
            update.push(")");
        }
        if let Some(since) = patch.awaiting_since {
            set(&mut update, "awaiting_since = ");
            update.push_bind(since);
        }
        if let Some(since) = patch.awaiting_since_if_unset {
            set(&mut update, "awaiting_since = COALESCE(awaiting_since, ");
            update.push_bind(since);
            update.push(")");
        }
        match &patch.csat {
            None => {}
            Some(CsatPatch::Asked { token, at }) => {
                set(&mut update, "csat_token = ");
                update.push_bind(token.clone());
                set(&mut update, "csat_requested_at = ");
                update.push_bind(*at);
                set(&mut update, "csat_score = NULL");
                set(&mut update, "csat_comment = NULL");
                set(&mut update, "csat_answered_at = NULL");
            }
            Some(CsatPatch::Answered { score, comment, at }) => {
                set(&mut update, "csat_score = ");
                update.push_bind(i64::from(*score));
                set(&mut update, "csat_comment = ");
                update.push_bind(comment.clone());
                set(&mut update, "csat_answered_at = ");
                update.push_bind(*at);
            }
            Some(CsatPatch::Withdrawn) => {
                set(&mut update, "csat_token = NULL");
                set(&mut update, "csat_requested_at = NULL");
            }
        }
        if first {
            return Ok(());
        }
        update.push(" WHERE id = ");
        update.push_bind(id);
        self.execute(update.build())?;
        Ok(())
    }

    fn waiting(&mut self, team_id: i64, limit: u32) -> StoreResult<Vec<Queued>> {
        // The ORDER BY repeats the expression of the partial index `conversations_waiting`
        // as written there, so the planner reads the queue head off the index.
        self.rows(
            sqlx::query(
                "SELECT id, language, COALESCE(queued_at, created_at) AS queued_at FROM conversations
                 WHERE team_id = $1 AND status = 'open' AND assignee_id IS NULL
                 ORDER BY (CASE priority WHEN 'urgent' THEN 0 WHEN 'high' THEN 1 WHEN 'normal' THEN 2 ELSE 3 END),
                          queued_at, id
                 LIMIT $2",
            )
            .bind(team_id)
            .bind(i64::from(limit)),
        )?
        .iter()
        .map(|row| {
            Ok(Queued {
                id: column(row, "id")?,
                language: column(row, "language")?,
                queued_at: column(row, "queued_at")?,
            })
        })
        .collect()
    }

    fn previous_assignee(&mut self, contact_id: i64, except: i64) -> StoreResult<Option<i64>> {
        self.row(
            sqlx::query(
                "SELECT assignee_id FROM conversations
                 WHERE contact_id = $1 AND id <> $2 AND assignee_id IS NOT NULL ORDER BY id DESC LIMIT 1",
            )
            .bind(contact_id)
            .bind(except),
        )?
        .map(|row| column(&row, "assignee_id"))
        .transpose()
    }

    fn update_target(&mut self, id: i64) -> StoreResult<Option<UpdateTarget>> {
        let Some(row) = self.row(
            sqlx::query(
                "SELECT c.inbox_id, i.key AS inbox_key, i.name AS inbox_name, i.kind, t.key AS team_key,
                        t.name AS team_name, c.status, c.priority, c.subject, a.name AS agent,
                        ct.name AS contact_name, ct.email AS contact_email,
                        COALESCE(ct.language, c.language) AS language, ct.metadata,
                        ct.updates_opted_out_at IS NOT NULL AS opted_out
                 FROM conversations c
                 JOIN inboxes i ON i.id = c.inbox_id
                 JOIN contacts ct ON ct.id = c.contact_id
                 LEFT JOIN teams t ON t.id = c.team_id
                 LEFT JOIN agents a ON a.id = c.assignee_id
                 WHERE c.id = $1",
            )
            .bind(id),
        )?
        else {
            return Ok(None);
        };
        let metadata: String = column(&row, "metadata")?;
        Ok(Some(UpdateTarget {
            id,
            inbox_id: column(&row, "inbox_id")?,
            inbox_key: column(&row, "inbox_key")?,
            inbox_name: column(&row, "inbox_name")?,
            channel: vocabulary(crate::channels::kind, &column::<String>(&row, "kind")?)?,
            team_key: column(&row, "team_key")?,
            team_name: column(&row, "team_name")?,
            status: status_of(&column::<String>(&row, "status")?)?,
            priority: vocabulary(Priority::parse, &column::<String>(&row, "priority")?)?,
            subject: column(&row, "subject")?,
            agent: column(&row, "agent")?,
            contact_name: column(&row, "contact_name")?,
            contact_email: column(&row, "contact_email")?,
            language: column(&row, "language")?,
            contact_metadata: serde_json::from_str(&metadata).unwrap_or(Value::Null),
            opted_out: column(&row, "opted_out")?,
        }))
    }

    fn update_sent_at(&mut self, conversation_id: i64, event: &str) -> StoreResult<Option<i64>> {
        self.row(
            sqlx::query("SELECT sent_at FROM status_updates_sent WHERE conversation_id = $1 AND event = $2")
                .bind(conversation_id)
                .bind(event),
        )?
        .map(|row| column(&row, "sent_at"))
        .transpose()
    }

    fn note_update_sent(&mut self, conversation_id: i64, event: &str, now: i64) -> StoreResult<()> {
        self.execute(
            sqlx::query(
                "INSERT INTO status_updates_sent (conversation_id, event, sent_at) VALUES ($1, $2, $3)
                 ON CONFLICT (conversation_id, event) DO UPDATE SET sent_at = EXCLUDED.sent_at",
            )
            .bind(conversation_id)
            .bind(event)
            .bind(now),
        )?;
        Ok(())
    }

    fn set_timer(&mut self, conversation_id: i64, kind: &str, at: i64) -> StoreResult<()> {
        self.execute(
            sqlx::query(
                "INSERT INTO conversation_timers (conversation_id, kind, fire_at) VALUES ($1, $2, $3)
                 ON CONFLICT (conversation_id, kind) DO UPDATE SET fire_at = EXCLUDED.fire_at",
            )
            .bind(conversation_id)
            .bind(kind)
            .bind(at),
        )?;
        Ok(())
    }

    fn clear_timers(&mut self, conversation_id: i64, kind: Option<&str>) -> StoreResult<()> {
        let query = match kind {
            Some(kind) => sqlx::query("DELETE FROM conversation_timers WHERE conversation_id = $1 AND kind = $2")
                .bind(conversation_id)
                .bind(kind),
            None => sqlx::query("DELETE FROM conversation_timers WHERE conversation_id = $1").bind(conversation_id),
        };
        self.execute(query)?;
        Ok(())
    }

    fn due_timers(&mut self, now: i64, limit: u32) -> StoreResult<Vec<(i64, String)>> {
        self.rows(
            sqlx::query(
                "SELECT conversation_id, kind FROM conversation_timers WHERE fire_at <= $1 ORDER BY fire_at LIMIT $2",
            )
            .bind(now)
            .bind(i64::from(limit)),
        )?
        .iter()
        .map(|row| Ok((column(row, "conversation_id")?, column(row, "kind")?)))
        .collect()
    }
}
