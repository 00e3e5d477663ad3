//! [`Tx`] on SQLite: each operation a cached statement or two on the writer thread's
//! connection, inside the group transaction the writer runs (see `writer.rs`).

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};
use serde_json::Value;
use sha2::{Digest, Sha256};
use switchboard_connector_core::{ChannelKind, OutboundAttachment, OutboundKind, OutboundMessage, StatusUpdate};

use super::{json_column, vocabulary};
use crate::model::clock::{ClockKind, ClockState, SlaClock};
use crate::model::{DeliveryStatus, Direction, MessageKind, Priority, Role, Status, Timestamp};
use crate::store::StoreResult;
use crate::store::records::*;
use crate::store::tx::*;

/// One unit of work on the writer's connection.
pub struct SqliteTx<'c> {
    conn: &'c Connection,
}

impl<'c> SqliteTx<'c> {
    pub fn new(conn: &'c Connection) -> SqliteTx<'c> {
        SqliteTx { conn }
    }
}

fn status_of(text: &str) -> StoreResult<Status> {
    vocabulary(Status::parse, text)
}

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data).iter().map(|byte| format!("{byte:02x}")).collect()
}

fn to_json<T: serde::Serialize>(value: &T, empty: &str) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| empty.into())
}

impl CatalogTx for SqliteTx<'_> {
    fn deactivate_catalog(&mut self) -> StoreResult<()> {
        self.conn.execute("UPDATE teams SET active = 0", [])?;
        self.conn.execute("UPDATE inboxes SET active = 0", [])?;
        Ok(())
    }

    fn upsert_team(&mut self, team: &TeamSpec, now: i64) -> StoreResult<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO teams (key, name, tier, active, created_at) VALUES (?1, ?2, ?3, 1, ?4)
                 ON CONFLICT (key) DO UPDATE SET name = excluded.name, tier = excluded.tier, active = 1",
            )?
            .execute(params![team.key, team.name, team.tier, now])?;
        Ok(())
    }

    fn upsert_inbox(&mut self, inbox: &InboxSpec, now: i64) -> StoreResult<(i64, ChannelKind)> {
        let (id, kind): (i64, String) = self
            .conn
            .prepare_cached(
                "INSERT INTO inboxes (key, name, kind, active, created_at) VALUES (?1, ?2, ?3, 1, ?4)
                 ON CONFLICT (key) DO UPDATE SET name = excluded.name, active = 1
                 RETURNING id, kind",
            )?
            .query_row(params![inbox.key, inbox.name, inbox.channel.as_str(), now], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })?;
        Ok((id, vocabulary(ChannelKind::parse, &kind)?))
    }

    fn team(&mut self, key: &str) -> StoreResult<Option<TeamRow>> {
        Ok(self
            .conn
            .prepare_cached("SELECT id, name FROM teams WHERE key = ?1 AND active = 1")?
            .query_row([key], |row| {
                Ok(TeamRow {
                    id: row.get(0)?,
                    key: key.to_owned(),
                    name: row.get(1)?,
                })
            })
            .optional()?)
    }

    fn agent(&mut self, who: &AgentSelector) -> StoreResult<Option<AgentRow>> {
        const COLUMNS: &str =
            "SELECT a.id, a.name, a.role, a.team_id, t.key FROM agents a LEFT JOIN teams t ON t.id = a.team_id";
        type Row = (i64, String, String, Option<i64>, Option<String>);
        let read = |row: &rusqlite::Row<'_>| -> rusqlite::Result<Row> {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?))
        };
        let row = match who {
            AgentSelector::Id(id) => self
                .conn
                .prepare_cached(&format!("{COLUMNS} WHERE a.id = ?1"))?
                .query_row([id], read)
                .optional()?,
            AgentSelector::Name(name) => self
                .conn
                .prepare_cached(&format!("{COLUMNS} WHERE a.name = ?1"))?
                .query_row([name], read)
                .optional()?,
        };
        row.map(|(id, name, role, team_id, team)| {
            Ok(AgentRow {
                id,
                name,
                role: vocabulary(Role::parse, &role)?,
                team_id,
                team,
            })
        })
        .transpose()
    }

    fn insert_agent(&mut self, agent: &NewAgent, team_id: i64, now: i64) -> StoreResult<i64> {
        Ok(self
            .conn
            .prepare_cached(
                "INSERT INTO agents (name, role, team_id, token_hash, created_at, capacity, available)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING id",
            )?
            .query_row(
                params![
                    agent.name,
                    agent.role.as_str(),
                    team_id,
                    agent.token_hash,
                    now,
                    agent.capacity,
                    agent.available
                ],
                |row| row.get(0),
            )?)
    }

    fn set_agent_available(&mut self, agent_id: i64, available: bool) -> StoreResult<()> {
        self.conn
            .prepare_cached("UPDATE agents SET available = ?1 WHERE id = ?2")?
            .execute(params![available, agent_id])?;
        Ok(())
    }

    fn note_assignment(&mut self, agent_id: i64, now: i64) -> StoreResult<()> {
        self.conn
            .prepare_cached("UPDATE agents SET last_assigned_at = ?1 WHERE id = ?2")?
            .execute(params![now, agent_id])?;
        Ok(())
    }

    fn available_agents(&mut self, team_id: i64) -> StoreResult<Vec<AgentLoad>> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT a.id, a.capacity, a.last_assigned_at,
                        (SELECT COUNT(*) FROM conversations c WHERE c.assignee_id = a.id AND c.status = 'open')
                 FROM agents a WHERE a.team_id = ?1 AND a.available = 1",
            )?
            .query_map([team_id], |row| {
                Ok(AgentLoad {
                    id: row.get(0)?,
                    capacity: row.get(1)?,
                    last_assigned_at: row.get(2)?,
                    load: row.get(3)?,
                })
            })?
            .collect::<Result<_, _>>()?)
    }

    fn supervisors(&mut self, team_id: Option<i64>) -> StoreResult<Vec<String>> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT name FROM agents WHERE team_id = ?1 AND role IN ('supervisor', 'admin') ORDER BY name",
            )?
            .query_map([team_id], |row| row.get(0))?
            .collect::<Result<_, _>>()?)
    }
}

impl ContactTx for SqliteTx<'_> {
    fn identity(&mut self, inbox_id: i64, external_id: &str) -> StoreResult<Option<ContactRecord>> {
        let row = self
            .conn
            .prepare_cached(
                "SELECT ci.id, c.id, c.name, c.email, c.language, c.metadata, ci.unreachable_reason IS NOT NULL
                 FROM contact_identities ci JOIN contacts c ON c.id = ci.contact_id
                 WHERE ci.inbox_id = ?1 AND ci.external_id = ?2",
            )?
            .query_row(params![inbox_id, external_id], |row| {
                Ok((
                    row.get(0)?,
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                    row.get(4)?,
                    row.get::<_, String>(5)?,
                    row.get(6)?,
                ))
            })
            .optional()?;
        row.map(
            |(identity_id, contact_id, name, email, language, metadata, unreachable)| {
                Ok(ContactRecord {
                    contact_id,
                    identity_id,
                    name,
                    email,
                    language,
                    metadata: json_column(&metadata)?,
                    unreachable,
                })
            },
        )
        .transpose()
    }

    fn contact_of_channel_identity(&mut self, channel: ChannelKind, external_id: &str) -> StoreResult<Option<i64>> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT contact_id FROM contact_identities WHERE channel = ?1 AND external_id = ?2 ORDER BY id LIMIT 1",
            )?
            .query_row(params![channel.as_str(), external_id], |row| row.get(0))
            .optional()?)
    }

    fn insert_contact(&mut self, record: &ContactRecord, now: i64) -> StoreResult<i64> {
        Ok(self
            .conn
            .prepare_cached(
                "INSERT INTO contacts (name, email, language, metadata, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5) RETURNING id",
            )?
            .query_row(
                params![
                    record.name,
                    record.email,
                    record.language,
                    to_json(&record.metadata, "{}"),
                    now
                ],
                |row| row.get(0),
            )?)
    }

    fn insert_identity(&mut self, contact_id: i64, inbox: &InboxRef, external_id: &str, now: i64) -> StoreResult<i64> {
        Ok(self
            .conn
            .prepare_cached(
                "INSERT INTO contact_identities (contact_id, inbox_id, channel, external_id, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id",
            )?
            .query_row(
                params![contact_id, inbox.id, inbox.channel.as_str(), external_id, now],
                |row| row.get(0),
            )?)
    }

    fn update_contact(&mut self, record: &ContactRecord, now: i64) -> StoreResult<()> {
        self.conn
            .prepare_cached(
                "UPDATE contacts SET name = ?1, email = ?2, language = ?3, metadata = ?4, updated_at = ?5 WHERE id = ?6",
            )?
            .execute(params![
                record.name,
                record.email,
                record.language,
                to_json(&record.metadata, "{}"),
                now,
                record.contact_id
            ])?;
        Ok(())
    }

    fn set_reachability(&mut self, identity: IdentityRef<'_>, reason: Option<&str>, now: i64) -> StoreResult<bool> {
        let at = reason.map(|_| now);
        let changed = match identity {
            IdentityRef::Id(id) => self
                .conn
                .prepare_cached(
                    "UPDATE contact_identities SET unreachable_reason = ?1, unreachable_at = ?2 WHERE id = ?3",
                )?
                .execute(params![reason, at, id])?,
            IdentityRef::External { inbox_id, external_id } => self
                .conn
                .prepare_cached(
                    "UPDATE contact_identities SET unreachable_reason = ?1, unreachable_at = ?2
                     WHERE inbox_id = ?3 AND external_id = ?4",
                )?
                .execute(params![reason, at, inbox_id, external_id])?,
            IdentityRef::OfConversation(conversation_id) => self
                .conn
                .prepare_cached(
                    "UPDATE contact_identities SET unreachable_reason = ?1, unreachable_at = ?2
                     WHERE id = (SELECT identity_id FROM conversations WHERE id = ?3)",
                )?
                .execute(params![reason, at, conversation_id])?,
        };
        Ok(changed > 0)
    }

    fn set_updates_opt_out(&mut self, contact_id: i64, opted_out: bool, now: i64) -> StoreResult<bool> {
        let changed = self
            .conn
            .prepare_cached(
                "UPDATE contacts SET updates_opted_out_at = ?1, updated_at = ?2
                 WHERE id = ?3 AND (updates_opted_out_at IS NULL) = ?4",
            )?
            .execute(params![opted_out.then_some(now), now, contact_id, opted_out])?;
        Ok(changed > 0)
    }
}

impl ConversationTx for SqliteTx<'_> {
    fn conversation(&mut self, id: i64) -> StoreResult<Option<Conversation>> {
        type Row = (
            (i64, String, i64, String, String),
            (Option<i64>, Option<String>, i64, Option<i64>, String, i64),
            (Option<i64>, Option<i64>, Option<i64>),
            (Option<i64>, Option<String>, Option<i64>),
        );
        let row: Option<Row> = self
            .conn
            .prepare_cached(
                "SELECT c.inbox_id, i.kind, c.contact_id, c.status, c.priority,
                        c.team_id, t.key, c.tier, c.assignee_id, c.labels, c.transfer_count,
                        c.first_response_at, c.resolved_at, c.sla_breached_at,
                        c.csat_requested_at, c.csat_comment, c.csat_answered_at
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
                    (row.get(14)?, row.get(15)?, row.get(16)?),
                ))
            })
            .optional()?;
        let Some((
            (inbox_id, channel, contact_id, status, priority),
            (team_id, team_key, tier, assignee, labels, transfer_count),
            (first_response_at, resolved_at, sla_breached_at),
            (csat_requested_at, csat_comment, csat_answered_at),
        )) = row
        else {
            return Ok(None);
        };
        Ok(Some(Conversation {
            id,
            inbox_id,
            channel: vocabulary(ChannelKind::parse, &channel)?,
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
        if let Some(message_id) = patch.last_message_id {
            set("last_message_id = ?", int(Some(message_id)));
        }
        if let Some(language) = &patch.language_if_unset {
            set("language = COALESCE(language, ?)", text(Some(language)));
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

    fn next_waiting(&mut self, team_id: i64) -> StoreResult<Option<i64>> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT id FROM conversations INDEXED BY conversations_waiting
                 WHERE team_id = ?1 AND status = 'open' AND assignee_id IS NULL
                 ORDER BY (CASE priority WHEN 'urgent' THEN 0 WHEN 'high' THEN 1 WHEN 'normal' THEN 2 ELSE 3 END),
                          queued_at, id
                 LIMIT 1",
            )?
            .query_row([team_id], |row| row.get(0))
            .optional()?)
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
            channel: vocabulary(ChannelKind::parse, &kind)?,
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
}

impl ClockTx for SqliteTx<'_> {
    fn clocks(&mut self, conversation_id: i64) -> StoreResult<Vec<SlaClock>> {
        let mut statement = self.conn.prepare_cached(
            "SELECT kind, state, target_ms, warn_ms, elapsed_ms, running_since, started_at, stopped_at, warn_at,
                    due_at, warned_at, breached_at
             FROM sla_clocks WHERE conversation_id = ?1",
        )?;
        let rows = statement.query_map([conversation_id], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                SlaClock {
                    kind: ClockKind::FirstResponse,
                    state: ClockState::Running,
                    target_ms: row.get(2)?,
                    warn_ms: row.get(3)?,
                    elapsed_ms: row.get(4)?,
                    running_since: row.get(5)?,
                    started_at: row.get(6)?,
                    stopped_at: row.get(7)?,
                    warn_at: row.get(8)?,
                    due_at: row.get(9)?,
                    warned_at: row.get(10)?,
                    breached_at: row.get(11)?,
                },
            ))
        })?;
        let mut clocks = Vec::new();
        for row in rows {
            let (kind, state, mut clock) = row?;
            clock.kind = vocabulary(ClockKind::parse, &kind)?;
            clock.state = vocabulary(ClockState::parse, &state)?;
            clocks.push(clock);
        }
        Ok(clocks)
    }

    fn save_clock(&mut self, conversation_id: i64, clock: &SlaClock) -> StoreResult<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO sla_clocks (conversation_id, kind, state, target_ms, warn_ms, elapsed_ms, running_since,
                                         started_at, stopped_at, warn_at, due_at, warned_at, breached_at, next_fire_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
                 ON CONFLICT (conversation_id, kind) DO UPDATE SET
                     state = excluded.state, target_ms = excluded.target_ms, warn_ms = excluded.warn_ms,
                     elapsed_ms = excluded.elapsed_ms, running_since = excluded.running_since,
                     started_at = excluded.started_at, stopped_at = excluded.stopped_at, warn_at = excluded.warn_at,
                     due_at = excluded.due_at, warned_at = excluded.warned_at, breached_at = excluded.breached_at,
                     next_fire_at = excluded.next_fire_at",
            )?
            .execute(params![
                conversation_id,
                clock.kind.as_str(),
                clock.state.as_str(),
                clock.target_ms,
                clock.warn_ms,
                clock.elapsed_ms,
                clock.running_since,
                clock.started_at,
                clock.stopped_at,
                clock.warn_at,
                clock.due_at,
                clock.warned_at,
                clock.breached_at,
                clock.next_fire_at(),
            ])?;
        Ok(())
    }

    fn due_clocks(&mut self, now: i64, limit: u32) -> StoreResult<Vec<(i64, ClockKind)>> {
        let due: Vec<(i64, String)> = self
            .conn
            .prepare_cached(
                "SELECT conversation_id, kind FROM sla_clocks
                 WHERE next_fire_at IS NOT NULL AND next_fire_at <= ?1 ORDER BY next_fire_at LIMIT ?2",
            )?
            .query_map(params![now, limit], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<Result<_, _>>()?;
        due.into_iter()
            .map(|(conversation, kind)| Ok((conversation, vocabulary(ClockKind::parse, &kind)?)))
            .collect()
    }
}

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
        lease_until: i64,
        plan: &ClaimPlan,
    ) -> StoreResult<Vec<Delivery>> {
        let held = to_json(&plan.held, "[]");
        let budgets = to_json(&plan.budgets, "{}");
        let claimed: Vec<i64> = self
            .conn
            .prepare_cached(
                "UPDATE outbox SET status = 'in_flight', attempts = attempts + 1, lease_until = ?1, updated_at = ?2
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
                    lease_until,
                    now,
                    limit,
                    held,
                    budgets,
                    plan.cap,
                    limit.saturating_mul(4)
                ],
                |row| row.get(0),
            )?
            .collect::<Result<_, _>>()?;
        let mut deliveries = Vec::with_capacity(claimed.len());
        for outbox_id in claimed {
            deliveries.push(self.delivery_of(outbox_id)?);
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
            Settlement::Sent { receipt } => self
                .conn
                .prepare_cached(&format!(
                    "UPDATE outbox SET status = 'sent', receipt = ?1, sent_at = ?2, last_error = NULL,
                            lease_until = NULL, updated_at = ?2
                     WHERE id = ?3 AND status = 'in_flight' {RETURNING}"
                ))?
                .query_row(params![receipt, now, id], read)
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

    fn defer_deliveries(&mut self, inbox_id: i64, until: i64, now: i64) -> StoreResult<u64> {
        Ok(self
            .conn
            .prepare_cached(
                "UPDATE outbox SET next_attempt_at = ?1, updated_at = ?2
                 WHERE status = 'scheduled' AND inbox_id = ?3 AND next_attempt_at < ?1",
            )?
            .execute(params![until, now, inbox_id])? as u64)
    }

    fn release_deliveries(&mut self, now: i64) -> StoreResult<u64> {
        Ok(self.conn.execute(
            "UPDATE outbox SET status = 'scheduled', lease_until = NULL, next_attempt_at = MIN(next_attempt_at, ?1),
                    updated_at = ?1
             WHERE status = 'in_flight'",
            [now],
        )? as u64)
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
    fn delivery_of(&mut self, outbox_id: i64) -> StoreResult<Delivery> {
        let (mut delivery, channel) = self
            .conn
            .prepare_cached(
                "SELECT o.id, o.inbox_id, o.attempts, o.expires_at, m.id, m.kind, m.text,
                        c.id, c.thread_key, c.subject, ci.external_id, ci.channel, m.html, m.metadata
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
                    },
                };
                Ok((delivery, channel))
            })?;
        // Email threads by earlier messages' ids, Telegram answers the customer's latest
        // message in groups; both carry files. The webhook skips the lookups.
        if channel != ChannelKind::Webhook.as_str() {
            self.thread_ids(&mut delivery.message)?;
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

const SUBSCRIPTION_COLUMNS: &str = "SELECT id, url, events, secret, description, active, disabled_reason, disabled_at,
        created_at, updated_at FROM subscriptions";

fn subscription_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Subscription> {
    let events: String = row.get(2)?;
    Ok(Subscription {
        id: row.get(0)?,
        url: row.get(1)?,
        events: serde_json::from_str(&events).unwrap_or_default(),
        secret: row.get(3)?,
        description: row.get(4)?,
        active: row.get(5)?,
        disabled_reason: row.get(6)?,
        disabled_at: row.get::<_, Option<i64>>(7)?.map(Timestamp),
        created_at: Timestamp(row.get(8)?),
        updated_at: Timestamp(row.get(9)?),
    })
}

/// Which event deliveries may go: of an active subscription (a test event goes to any),
/// not held (`?held`: a JSON array of subscription ids paused or at their concurrency),
/// and first in their subscription's line for their conversation.
pub(super) const CLAIMABLE_EVENTS: &str = "d.status = 'scheduled'
    AND d.subscription_id NOT IN (SELECT value FROM json_each(?held))
    AND (s.active = 1 OR d.event_type = 'ping') AND s.deleted_at IS NULL
    AND NOT EXISTS (
        SELECT 1 FROM event_deliveries earlier
        WHERE earlier.subscription_id = d.subscription_id AND earlier.conversation_id IS d.conversation_id
          AND earlier.id < d.id AND earlier.status IN ('scheduled', 'in_flight'))";

impl SubscriptionTx for SqliteTx<'_> {
    fn subscribers(&mut self) -> StoreResult<Vec<Subscriber>> {
        let rows: Vec<(i64, String)> = self
            .conn
            .prepare_cached("SELECT id, events FROM subscriptions WHERE active = 1")?
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<Result<_, _>>()?;
        Ok(rows
            .into_iter()
            .map(|(id, events)| Subscriber {
                id,
                events: serde_json::from_str(&events).unwrap_or_default(),
            })
            .collect())
    }

    fn queue_event(
        &mut self,
        subscription_id: i64,
        conversation_id: Option<i64>,
        event_type: &str,
        payload: &str,
        now: i64,
    ) -> StoreResult<i64> {
        Ok(self
            .conn
            .prepare_cached(
                "INSERT INTO event_deliveries (subscription_id, conversation_id, event_type, payload, status,
                                               next_attempt_at, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, 'scheduled', ?5, ?5, ?5) RETURNING id",
            )?
            .query_row(
                params![subscription_id, conversation_id, event_type, payload, now],
                |row| row.get(0),
            )?)
    }

    fn insert_subscription(&mut self, new: &NewSubscription, now: i64) -> StoreResult<i64> {
        Ok(self
            .conn
            .prepare_cached(
                "INSERT INTO subscriptions (url, events, secret, description, created_by, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6) RETURNING id",
            )?
            .query_row(
                params![
                    new.url,
                    to_json(&new.events, "[]"),
                    new.secret,
                    new.description,
                    new.created_by,
                    now
                ],
                |row| row.get(0),
            )?)
    }

    fn subscription(&mut self, id: i64) -> StoreResult<Option<Subscription>> {
        Ok(self
            .conn
            .prepare_cached(&format!("{SUBSCRIPTION_COLUMNS} WHERE id = ?1 AND deleted_at IS NULL"))?
            .query_row([id], subscription_from_row)
            .optional()?)
    }

    fn subscriptions(&mut self) -> StoreResult<Vec<Subscription>> {
        Ok(self
            .conn
            .prepare_cached(&format!("{SUBSCRIPTION_COLUMNS} WHERE deleted_at IS NULL ORDER BY id"))?
            .query_map([], subscription_from_row)?
            .collect::<Result<_, _>>()?)
    }

    fn delete_subscription(&mut self, id: i64, now: i64) -> StoreResult<()> {
        self.conn
            .prepare_cached("UPDATE subscriptions SET deleted_at = ?1, active = 0, updated_at = ?1 WHERE id = ?2")?
            .execute(params![now, id])?;
        Ok(())
    }

    fn set_subscription_active(&mut self, id: i64, active: bool, reason: Option<&str>, now: i64) -> StoreResult<()> {
        self.conn
            .prepare_cached(
                "UPDATE subscriptions SET active = ?1, disabled_reason = ?2, disabled_at = ?3, updated_at = ?4
                 WHERE id = ?5",
            )?
            .execute(params![
                active,
                reason.filter(|_| !active),
                (!active).then_some(now),
                now,
                id
            ])?;
        Ok(())
    }

    fn disable_subscription(&mut self, id: i64, reason: &str, now: i64) -> StoreResult<bool> {
        let disabled = self
            .conn
            .prepare_cached(
                "UPDATE subscriptions SET active = 0, disabled_reason = ?1, disabled_at = ?2, updated_at = ?2
                 WHERE id = ?3 AND active = 1",
            )?
            .execute(params![reason, now, id])?;
        Ok(disabled > 0)
    }

    fn drop_waiting_events(&mut self, subscription_id: i64, which: Waiting, error: &str, now: i64) -> StoreResult<()> {
        let statement = match which {
            Waiting::All => {
                "UPDATE event_deliveries SET status = 'failed', last_error = ?1, updated_at = ?2
                 WHERE subscription_id = ?3 AND status IN ('scheduled', 'in_flight')"
            }
            Waiting::ExceptPings => {
                "UPDATE event_deliveries SET status = 'failed', last_error = ?1, updated_at = ?2
                 WHERE subscription_id = ?3 AND status = 'scheduled' AND event_type != 'ping'"
            }
        };
        self.conn
            .prepare_cached(statement)?
            .execute(params![error, now, subscription_id])?;
        Ok(())
    }

    fn claim_events(
        &mut self,
        now: i64,
        limit: u32,
        lease_until: i64,
        held: &[i64],
    ) -> StoreResult<Vec<EventDelivery>> {
        let held = to_json(&held, "[]");
        let claimed: Vec<i64> = self
            .conn
            .prepare_cached(&format!(
                "UPDATE event_deliveries SET status = 'in_flight', attempts = attempts + 1, lease_until = ?1,
                        updated_at = ?2
                 WHERE id IN (
                     SELECT d.id FROM event_deliveries d JOIN subscriptions s ON s.id = d.subscription_id
                     WHERE d.next_attempt_at <= ?2 AND {}
                     ORDER BY d.next_attempt_at, d.id LIMIT ?3)
                 RETURNING id",
                CLAIMABLE_EVENTS.replace("?held", "?4")
            ))?
            .query_map(params![lease_until, now, limit, held], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        let mut select = self.conn.prepare_cached(
            "SELECT d.id, d.subscription_id, d.event_type, d.payload, d.attempts, d.created_at, s.url, s.secret
             FROM event_deliveries d JOIN subscriptions s ON s.id = d.subscription_id WHERE d.id = ?1",
        )?;
        let mut deliveries = Vec::with_capacity(claimed.len());
        for id in claimed {
            deliveries.push(select.query_row([id], |row| {
                Ok(EventDelivery {
                    id: row.get(0)?,
                    subscription_id: row.get(1)?,
                    event_type: row.get(2)?,
                    payload: row.get::<_, String>(3)?.into_bytes(),
                    attempts: row.get::<_, i64>(4)?.try_into().unwrap_or(u32::MAX),
                    created_at: row.get(5)?,
                    url: row.get(6)?,
                    secret: row.get(7)?,
                })
            })?);
        }
        deliveries.sort_by_key(|delivery| delivery.id);
        Ok(deliveries)
    }

    fn settle_event(&mut self, id: i64, settlement: Settlement<'_>, now: i64) -> StoreResult<Option<i64>> {
        let row = match settlement {
            Settlement::Sent { receipt } => self
                .conn
                .prepare_cached(
                    "UPDATE event_deliveries SET status = 'sent', sent_at = ?1, receipt = ?2, last_error = NULL,
                            lease_until = NULL, updated_at = ?1
                     WHERE id = ?3 AND status = 'in_flight' RETURNING subscription_id",
                )?
                .query_row(params![now, receipt, id], |row| row.get(0))
                .optional()?,
            Settlement::RetryAt { at, error } => self
                .conn
                .prepare_cached(
                    "UPDATE event_deliveries SET status = 'scheduled', next_attempt_at = ?1, last_error = ?2,
                            lease_until = NULL, updated_at = ?3
                     WHERE id = ?4 AND status = 'in_flight' RETURNING subscription_id",
                )?
                .query_row(params![at, error, now, id], |row| row.get(0))
                .optional()?,
            Settlement::Failed { error } => self
                .conn
                .prepare_cached(
                    "UPDATE event_deliveries SET status = 'failed', last_error = ?1, lease_until = NULL, updated_at = ?2
                     WHERE id = ?3 AND status = 'in_flight' RETURNING subscription_id",
                )?
                .query_row(params![error, now, id], |row| row.get(0))
                .optional()?,
        };
        Ok(row)
    }

    fn event_subscription(&mut self, id: i64) -> StoreResult<Option<i64>> {
        Ok(self
            .conn
            .prepare_cached("SELECT subscription_id FROM event_deliveries WHERE id = ?1")?
            .query_row([id], |row| row.get(0))
            .optional()?)
    }

    fn defer_events(&mut self, subscription_id: i64, until: i64, now: i64) -> StoreResult<()> {
        self.conn
            .prepare_cached(
                "UPDATE event_deliveries SET next_attempt_at = ?1, updated_at = ?2
                 WHERE subscription_id = ?3 AND status = 'scheduled' AND next_attempt_at < ?1",
            )?
            .execute(params![until, now, subscription_id])?;
        Ok(())
    }

    fn release_events(&mut self, now: i64) -> StoreResult<u64> {
        Ok(self.conn.execute(
            "UPDATE event_deliveries SET status = 'scheduled', lease_until = NULL,
                    next_attempt_at = MIN(next_attempt_at, ?1), updated_at = ?1
             WHERE status = 'in_flight'",
            [now],
        )? as u64)
    }
}
