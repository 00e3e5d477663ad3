//! Passwords, one-time links and sessions.

use rusqlite::{OptionalExtension, params};

use super::SqliteTx;
use crate::store::StoreResult;
use crate::store::records::*;
use crate::store::tx::*;

impl PeopleTx for SqliteTx<'_> {
    fn credentials(&mut self, who: &AgentSelector) -> StoreResult<Option<Credentials>> {
        const COLUMNS: &str = "SELECT id, active, password_hash, failed_sign_ins, locked_until FROM agents";
        let read = |row: &rusqlite::Row<'_>| {
            Ok(Credentials {
                agent_id: row.get(0)?,
                active: row.get(1)?,
                password_hash: row.get(2)?,
                failed_sign_ins: row.get(3)?,
                locked_until: row.get(4)?,
            })
        };
        Ok(match who {
            AgentSelector::Id(id) => self
                .conn
                .prepare_cached(&format!("{COLUMNS} WHERE id = ?1"))?
                .query_row([id], read)
                .optional()?,
            AgentSelector::Name(name) => self
                .conn
                .prepare_cached(&format!("{COLUMNS} WHERE name = ?1"))?
                .query_row([name], read)
                .optional()?,
        })
    }

    fn set_sign_in_failures(&mut self, agent_id: i64, failed: i64, locked_until: Option<i64>) -> StoreResult<()> {
        self.conn
            .prepare_cached("UPDATE agents SET failed_sign_ins = ?2, locked_until = ?3 WHERE id = ?1")?
            .execute(params![agent_id, failed, locked_until])?;
        Ok(())
    }

    fn set_password_hash(&mut self, agent_id: i64, hash: &str) -> StoreResult<()> {
        self.conn
            .prepare_cached(
                "UPDATE agents SET password_hash = ?2, failed_sign_ins = 0, locked_until = NULL WHERE id = ?1",
            )?
            .execute(params![agent_id, hash])?;
        Ok(())
    }

    fn set_agent_active(&mut self, agent_id: i64, active: bool) -> StoreResult<bool> {
        // An inactive agent is never offered work either.
        let changed = self
            .conn
            .prepare_cached(
                "UPDATE agents SET active = ?2, available = CASE WHEN ?2 THEN available ELSE 0 END
                 WHERE id = ?1 AND active != ?2",
            )?
            .execute(params![agent_id, active])?;
        Ok(changed > 0)
    }

    fn replace_sign_in_link(&mut self, agent_id: i64, token_hash: &[u8], expires_at: i64, now: i64) -> StoreResult<()> {
        self.conn
            .prepare_cached("DELETE FROM sign_in_links WHERE agent_id = ?1 AND used_at IS NULL")?
            .execute([agent_id])?;
        self.conn
            .prepare_cached(
                "INSERT INTO sign_in_links (token_hash, agent_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![token_hash, agent_id, now, expires_at])?;
        Ok(())
    }

    fn sign_in_link(&mut self, token_hash: &[u8]) -> StoreResult<Option<SignInLink>> {
        Ok(self
            .conn
            .prepare_cached("SELECT agent_id, expires_at, used_at FROM sign_in_links WHERE token_hash = ?1")?
            .query_row([token_hash], |row| {
                Ok(SignInLink {
                    agent_id: row.get(0)?,
                    expires_at: row.get(1)?,
                    used_at: row.get(2)?,
                })
            })
            .optional()?)
    }

    fn use_sign_in_link(&mut self, token_hash: &[u8], now: i64) -> StoreResult<()> {
        self.conn
            .prepare_cached("UPDATE sign_in_links SET used_at = ?2 WHERE token_hash = ?1")?
            .execute(params![token_hash, now])?;
        Ok(())
    }

    fn insert_session(&mut self, session: &NewSession<'_>, now: i64) -> StoreResult<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO sessions (token_hash, agent_id, csrf_token, created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                session.token_hash,
                session.agent_id,
                session.csrf_token,
                now,
                session.expires_at
            ])?;
        Ok(())
    }

    fn delete_session(&mut self, token_hash: &[u8]) -> StoreResult<bool> {
        let deleted = self
            .conn
            .prepare_cached("DELETE FROM sessions WHERE token_hash = ?1")?
            .execute([token_hash])?;
        Ok(deleted > 0)
    }

    fn delete_agent_sessions(&mut self, agent_id: i64) -> StoreResult<u64> {
        let deleted = self
            .conn
            .prepare_cached("DELETE FROM sessions WHERE agent_id = ?1")?
            .execute([agent_id])?;
        Ok(deleted as u64)
    }

    fn delete_expired_sessions(&mut self, now: i64) -> StoreResult<u64> {
        let sessions = self
            .conn
            .prepare_cached("DELETE FROM sessions WHERE expires_at <= ?1")?
            .execute([now])?;
        let links = self
            .conn
            .prepare_cached("DELETE FROM sign_in_links WHERE expires_at <= ?1")?
            .execute([now])?;
        Ok((sessions + links) as u64)
    }

    fn insert_agent_token(&mut self, agent_id: i64, token_hash: &[u8], label: &str, now: i64) -> StoreResult<i64> {
        Ok(self
            .conn
            .prepare_cached(
                "INSERT INTO agent_tokens (agent_id, token_hash, label, created_at) VALUES (?1, ?2, ?3, ?4) RETURNING id",
            )?
            .query_row(params![agent_id, token_hash, label, now], |row| row.get(0))?)
    }

    fn revoke_agent_token(&mut self, agent_id: i64, token_id: i64, now: i64) -> StoreResult<bool> {
        let revoked = self
            .conn
            .prepare_cached(
                "UPDATE agent_tokens SET revoked_at = ?3 WHERE id = ?2 AND agent_id = ?1 AND revoked_at IS NULL",
            )?
            .execute(params![agent_id, token_id, now])?;
        Ok(revoked > 0)
    }

    fn open_assigned(&mut self, agent_id: i64) -> StoreResult<Vec<i64>> {
        Ok(self
            .conn
            .prepare_cached("SELECT id FROM conversations WHERE assignee_id = ?1 AND status = 'open' ORDER BY id")?
            .query_map([agent_id], |row| row.get(0))?
            .collect::<Result<_, _>>()?)
    }

    fn insert_admin_audit(&mut self, entry: &AuditEntry<'_>, now: i64) -> StoreResult<i64> {
        Ok(self
            .conn
            .prepare_cached(
                "INSERT INTO admin_audit (actor_id, action, target_kind, target_id, details, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id",
            )?
            .query_row(
                params![
                    entry.actor_id,
                    entry.action,
                    entry.target_kind,
                    entry.target_id,
                    entry.details.to_string(),
                    now
                ],
                |row| row.get(0),
            )?)
    }

    fn insert_mention(
        &mut self,
        message_id: i64,
        conversation_id: i64,
        agent_id: i64,
        by: i64,
        now: i64,
    ) -> StoreResult<i64> {
        Ok(self
            .conn
            .prepare_cached(
                "INSERT INTO mentions (message_id, conversation_id, agent_id, by_agent_id, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id",
            )?
            .query_row(params![message_id, conversation_id, agent_id, by, now], |row| {
                row.get(0)
            })?)
    }

    fn mark_mentions_read(&mut self, agent_id: i64, ids: Option<&[i64]>, now: i64) -> StoreResult<u64> {
        let marked = match ids {
            None => self
                .conn
                .prepare_cached("UPDATE mentions SET read_at = ?2 WHERE agent_id = ?1 AND read_at IS NULL")?
                .execute(params![agent_id, now])?,
            Some(ids) => {
                let mut update = self.conn.prepare_cached(
                    "UPDATE mentions SET read_at = ?3 WHERE agent_id = ?1 AND id = ?2 AND read_at IS NULL",
                )?;
                let mut marked = 0;
                for id in ids {
                    marked += update.execute(params![agent_id, id, now])?;
                }
                marked
            }
        };
        Ok(marked as u64)
    }
}
