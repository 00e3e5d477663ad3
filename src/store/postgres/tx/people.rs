//! Passwords, one-time links and sessions.

use sqlx::postgres::PgRow;

use super::{PgTx, column};
use crate::store::StoreResult;
use crate::store::records::*;
use crate::store::tx::*;

fn credentials_of(row: &PgRow) -> StoreResult<Credentials> {
    Ok(Credentials {
        agent_id: column(row, "id")?,
        active: column(row, "active")?,
        password_hash: column(row, "password_hash")?,
        failed_sign_ins: column(row, "failed_sign_ins")?,
        locked_until: column(row, "locked_until")?,
    })
}

impl PeopleTx for PgTx<'_> {
    fn credentials(&mut self, who: &AgentSelector) -> StoreResult<Option<Credentials>> {
        let row = match who {
            AgentSelector::Id(id) => self.row(
                sqlx::query(
                    "SELECT id, active, password_hash, failed_sign_ins, locked_until FROM agents WHERE id = $1",
                )
                .bind(id),
            )?,
            AgentSelector::Name(name) => self.row(
                sqlx::query(
                    "SELECT id, active, password_hash, failed_sign_ins, locked_until FROM agents WHERE name = $1",
                )
                .bind(name),
            )?,
        };
        row.as_ref().map(credentials_of).transpose()
    }

    fn set_sign_in_failures(&mut self, agent_id: i64, failed: i64, locked_until: Option<i64>) -> StoreResult<()> {
        self.execute(
            sqlx::query("UPDATE agents SET failed_sign_ins = $2, locked_until = $3 WHERE id = $1")
                .bind(agent_id)
                .bind(failed)
                .bind(locked_until),
        )?;
        Ok(())
    }

    fn set_password_hash(&mut self, agent_id: i64, hash: &str) -> StoreResult<()> {
        self.execute(
            sqlx::query("UPDATE agents SET password_hash = $2, failed_sign_ins = 0, locked_until = NULL WHERE id = $1")
                .bind(agent_id)
                .bind(hash),
        )?;
        Ok(())
    }

    fn set_agent_active(&mut self, agent_id: i64, active: bool) -> StoreResult<bool> {
        // An inactive agent is never offered work either.
        let changed = self.execute(
            sqlx::query(
                "UPDATE agents SET active = $2, available = CASE WHEN $2 THEN available ELSE FALSE END
                 WHERE id = $1 AND active <> $2",
            )
            .bind(agent_id)
            .bind(active),
        )?;
        Ok(changed > 0)
    }

    fn replace_sign_in_link(&mut self, agent_id: i64, token_hash: &[u8], expires_at: i64, now: i64) -> StoreResult<()> {
        self.execute(sqlx::query("DELETE FROM sign_in_links WHERE agent_id = $1 AND used_at IS NULL").bind(agent_id))?;
        self.execute(
            sqlx::query(
                "INSERT INTO sign_in_links (token_hash, agent_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(token_hash)
            .bind(agent_id)
            .bind(now)
            .bind(expires_at),
        )?;
        Ok(())
    }

    fn sign_in_link(&mut self, token_hash: &[u8]) -> StoreResult<Option<SignInLink>> {
        let row = self.row(
            sqlx::query("SELECT agent_id, expires_at, used_at FROM sign_in_links WHERE token_hash = $1")
                .bind(token_hash),
        )?;
        row.map(|row| {
            Ok(SignInLink {
                agent_id: column(&row, "agent_id")?,
                expires_at: column(&row, "expires_at")?,
                used_at: column(&row, "used_at")?,
            })
        })
        .transpose()
    }

    fn use_sign_in_link(&mut self, token_hash: &[u8], now: i64) -> StoreResult<()> {
        self.execute(
            sqlx::query("UPDATE sign_in_links SET used_at = $2 WHERE token_hash = $1")
                .bind(token_hash)
                .bind(now),
        )?;
        Ok(())
    }

    fn insert_session(&mut self, session: &NewSession<'_>, now: i64) -> StoreResult<()> {
        self.execute(
            sqlx::query(
                "INSERT INTO sessions (token_hash, agent_id, csrf_token, created_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(session.token_hash)
            .bind(session.agent_id)
            .bind(session.csrf_token)
            .bind(now)
            .bind(session.expires_at),
        )?;
        Ok(())
    }

    fn delete_session(&mut self, token_hash: &[u8]) -> StoreResult<bool> {
        let deleted = self.execute(sqlx::query("DELETE FROM sessions WHERE token_hash = $1").bind(token_hash))?;
        Ok(deleted > 0)
    }

    fn delete_agent_sessions(&mut self, agent_id: i64) -> StoreResult<u64> {
        self.execute(sqlx::query("DELETE FROM sessions WHERE agent_id = $1").bind(agent_id))
    }

    fn delete_expired_sessions(&mut self, now: i64) -> StoreResult<u64> {
        let sessions = self.execute(sqlx::query("DELETE FROM sessions WHERE expires_at <= $1").bind(now))?;
        let links = self.execute(sqlx::query("DELETE FROM sign_in_links WHERE expires_at <= $1").bind(now))?;
        Ok(sessions + links)
    }

    fn insert_agent_token(&mut self, agent_id: i64, token_hash: &[u8], label: &str, now: i64) -> StoreResult<i64> {
        let row = self.one(
            sqlx::query(
                "INSERT INTO agent_tokens (agent_id, token_hash, label, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
            )
            .bind(agent_id)
            .bind(token_hash)
            .bind(label)
            .bind(now),
        )?;
        column(&row, "id")
    }

    fn revoke_agent_token(&mut self, agent_id: i64, token_id: i64, now: i64) -> StoreResult<bool> {
        let revoked = self.execute(
            sqlx::query(
                "UPDATE agent_tokens SET revoked_at = $3 WHERE id = $2 AND agent_id = $1 AND revoked_at IS NULL",
            )
            .bind(agent_id)
            .bind(token_id)
            .bind(now),
        )?;
        Ok(revoked > 0)
    }

    fn open_assigned(&mut self, agent_id: i64) -> StoreResult<Vec<i64>> {
        let rows = self.rows(
            sqlx::query("SELECT id FROM conversations WHERE assignee_id = $1 AND status = 'open' ORDER BY id")
                .bind(agent_id),
        )?;
        rows.iter().map(|row| column(row, "id")).collect()
    }

    fn insert_admin_audit(&mut self, entry: &AuditEntry<'_>, now: i64) -> StoreResult<i64> {
        let row = self.one(
            sqlx::query(
                "INSERT INTO admin_audit (actor_id, action, target_kind, target_id, details, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            )
            .bind(entry.actor_id)
            .bind(entry.action)
            .bind(entry.target_kind)
            .bind(entry.target_id)
            .bind(entry.details.to_string())
            .bind(now),
        )?;
        column(&row, "id")
    }

    fn insert_mention(
        &mut self,
        message_id: i64,
        conversation_id: i64,
        agent_id: i64,
        by: i64,
        now: i64,
    ) -> StoreResult<i64> {
        let row = self.one(
            sqlx::query(
                "INSERT INTO mentions (message_id, conversation_id, agent_id, by_agent_id, created_at)
                 VALUES ($1, $2, $3, $4, $5) RETURNING id",
            )
            .bind(message_id)
            .bind(conversation_id)
            .bind(agent_id)
            .bind(by)
            .bind(now),
        )?;
        column(&row, "id")
    }

    fn mark_mentions_read(&mut self, agent_id: i64, ids: Option<&[i64]>, now: i64) -> StoreResult<u64> {
        match ids {
            None => self.execute(
                sqlx::query("UPDATE mentions SET read_at = $2 WHERE agent_id = $1 AND read_at IS NULL")
                    .bind(agent_id)
                    .bind(now),
            ),
            Some(ids) => self.execute(
                sqlx::query(
                    "UPDATE mentions SET read_at = $3 WHERE agent_id = $1 AND id = ANY($2) AND read_at IS NULL",
                )
                .bind(agent_id)
                .bind(ids)
                .bind(now),
            ),
        }
    }
}
