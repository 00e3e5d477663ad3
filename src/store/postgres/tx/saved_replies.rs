//! Saved replies: a row each, its team by key.

use sqlx::Row;

use super::PgTx;
use crate::store::columns::to_json;
use crate::store::saved_reply_views::{SELECT_SAVED_REPLIES, record, scope_columns};
use crate::store::tx::SavedReplyTx;
use crate::store::{ReplyScope, SavedReply, StoreResult};

impl SavedReplyTx for PgTx<'_> {
    fn saved_reply(&mut self, id: i64) -> StoreResult<Option<SavedReply>> {
        let select = format!("{SELECT_SAVED_REPLIES} WHERE r.id = $1");
        let Some(row) = self.row(sqlx::query(&select).bind(id))? else {
            return Ok(None);
        };
        let columns = (
            row.try_get(0)?,
            row.try_get(1)?,
            row.try_get(2)?,
            row.try_get(3)?,
            row.try_get(4)?,
            row.try_get(5)?,
            row.try_get(6)?,
            row.try_get(7)?,
            row.try_get(8)?,
            row.try_get(9)?,
            row.try_get(10)?,
            row.try_get(11)?,
            row.try_get(12)?,
        );
        record(columns).map(Some)
    }

    fn saved_reply_by_shortcut(&mut self, scope: &ReplyScope, shortcut: &str) -> StoreResult<Option<i64>> {
        let (team, agent) = scope_columns(scope);
        let row = self.row(
            sqlx::query(
                "SELECT r.id FROM saved_replies r
                 WHERE r.shortcut = $1
                   AND (r.team_id = (SELECT id FROM teams WHERE key = $2) OR r.agent_id = $3)",
            )
            .bind(shortcut)
            .bind(team)
            .bind(agent),
        )?;
        Ok(row.map(|row| row.try_get(0)).transpose()?)
    }

    fn insert_saved_reply(&mut self, reply: &SavedReply) -> StoreResult<i64> {
        let (team, agent) = scope_columns(&reply.scope);
        let row = self.one(
            sqlx::query(
                "INSERT INTO saved_replies (team_id, agent_id, shortcut, title, bodies, fallback,
                                            created_by, created_at, updated_by, updated_at)
                 VALUES ((SELECT id FROM teams WHERE key = $1), $2, $3, $4, $5, $6, $7, $8, $9, $10)
                 RETURNING id",
            )
            .bind(team)
            .bind(agent)
            .bind(&reply.shortcut)
            .bind(&reply.title)
            .bind(to_json(&reply.bodies, "{}"))
            .bind(&reply.fallback)
            .bind(reply.created_by)
            .bind(reply.created_at)
            .bind(reply.updated_by)
            .bind(reply.updated_at),
        )?;
        Ok(row.try_get(0)?)
    }

    fn update_saved_reply(&mut self, reply: &SavedReply) -> StoreResult<()> {
        self.execute(
            sqlx::query(
                "UPDATE saved_replies SET shortcut = $2, title = $3, bodies = $4, fallback = $5,
                        updated_by = $6, updated_at = $7
                 WHERE id = $1",
            )
            .bind(reply.id)
            .bind(&reply.shortcut)
            .bind(&reply.title)
            .bind(to_json(&reply.bodies, "{}"))
            .bind(&reply.fallback)
            .bind(reply.updated_by)
            .bind(reply.updated_at),
        )?;
        Ok(())
    }

    fn delete_saved_reply(&mut self, id: i64) -> StoreResult<bool> {
        Ok(self.execute(sqlx::query("DELETE FROM saved_replies WHERE id = $1").bind(id))? == 1)
    }
}
