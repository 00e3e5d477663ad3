//! SLA clocks.

use rusqlite::params;

use super::SqliteTx;
use crate::model::clock::{ClockKind, ClockState, SlaClock};
use crate::store::StoreResult;
use crate::store::columns::vocabulary;
use crate::store::tx::*;

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
