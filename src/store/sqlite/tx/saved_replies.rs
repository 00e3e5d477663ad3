//! Saved replies: a row each, its team by key.

use rusqlite::{OptionalExtension, params};

use super::SqliteTx;
use crate::store::columns::to_json;
use crate::store::saved_reply_views::{SELECT_SAVED_REPLIES, SavedReplyColumns, record, scope_columns};
use crate::store::tx::SavedReplyTx;
use crate::store::{ReplyScope, SavedReply, StoreResult};

impl SavedReplyTx for SqliteTx<'_> {
    fn saved_reply(&mut self, id: i64) -> StoreResult<Option<SavedReply>> {
        let columns: Option<SavedReplyColumns> = self
            .conn
            .prepare_cached(&format!("{SELECT_SAVED_REPLIES} WHERE r.id = ?1"))?
            .query_row([id], |row| {
                Ok((
                    row.get(0)?,
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                    row.get(4)?,
                    row.get(5)?,
                    row.get(6)?,
                    row.get(7)?,
                    row.get(8)?,
                    row.get(9)?,
                    row.get(10)?,
                    row.get(11)?,
                    row.get(12)?,
                ))
            })
            .optional()?;
        columns.map(record).transpose()
    }

    fn saved_reply_by_shortcut(&mut self, scope: &ReplyScope, shortcut: &str) -> StoreResult<Option<i64>> {
        let (team, agent) = scope_columns(scope);
        Ok(self
            .conn
            .prepare_cached(
                "SELECT r.id FROM saved_replies r
                 WHERE r.shortcut = ?1
                   AND (r.team_id = (SELECT id FROM teams WHERE key = ?2) OR r.agent_id = ?3)",
            )?
            .query_row(params![shortcut, team, agent], |row| row.get(0))
            .optional()?)
    }

    fn insert_saved_reply(&mut self, reply: &SavedReply) -> StoreResult<i64> {
        let (team, agent) = scope_columns(&reply.scope);
        self.conn
            .prepare_cached(
                "INSERT INTO saved_replies (team_id, agent_id, shortcut, title, bodies, fallback,
                                            created_by, created_at, updated_by, updated_at)
                 VALUES ((SELECT id FROM teams WHERE key = ?1), ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?
            .execute(params![
                team,
                agent,
                reply.shortcut,
                reply.title,
                to_json(&reply.bodies, "{}"),
                reply.fallback,
                reply.created_by,
                reply.created_at,
                reply.updated_by,
                reply.updated_at,
            ])?;
        Ok(self.conn.last_insert_rowid())
    }

    fn update_saved_reply(&mut self, reply: &SavedReply) -> StoreResult<()> {
        self.conn
            .prepare_cached(
                "UPDATE saved_replies SET shortcut = ?2, title = ?3, bodies = ?4, fallback = ?5,
                        updated_by = ?6, updated_at = ?7
                 WHERE id = ?1",
            )?
            .execute(params![
                reply.id,
                reply.shortcut,
                reply.title,
                to_json(&reply.bodies, "{}"),
                reply.fallback,
                reply.updated_by,
                reply.updated_at,
            ])?;
        Ok(())
    }

    fn delete_saved_reply(&mut self, id: i64) -> StoreResult<bool> {
        Ok(self
            .conn
            .prepare_cached("DELETE FROM saved_replies WHERE id = ?1")?
            .execute([id])?
            == 1)
    }
}
