//! SLA clocks.

use super::{PgTx, column};
use crate::model::clock::{ClockKind, ClockState, SlaClock};
use crate::store::StoreResult;
use crate::store::columns::vocabulary;
use crate::store::tx::*;

impl ClockTx for PgTx<'_> {
    fn clocks(&mut self, conversation_id: i64) -> StoreResult<Vec<SlaClock>> {
        let rows = self.rows(
            sqlx::query(
                "SELECT kind, state, target_ms, warn_ms, elapsed_ms, running_since, started_at, stopped_at, warn_at,
                        due_at, warned_at, breached_at
                 FROM sla_clocks WHERE conversation_id = $1",
            )
            .bind(conversation_id),
        )?;
        rows.iter()
            .map(|row| {
                Ok(SlaClock {
                    kind: vocabulary(ClockKind::parse, &column::<String>(row, "kind")?)?,
                    state: vocabulary(ClockState::parse, &column::<String>(row, "state")?)?,
                    target_ms: column(row, "target_ms")?,
                    warn_ms: column(row, "warn_ms")?,
                    elapsed_ms: column(row, "elapsed_ms")?,
                    running_since: column(row, "running_since")?,
                    started_at: column(row, "started_at")?,
                    stopped_at: column(row, "stopped_at")?,
                    warn_at: column(row, "warn_at")?,
                    due_at: column(row, "due_at")?,
                    warned_at: column(row, "warned_at")?,
                    breached_at: column(row, "breached_at")?,
                })
            })
            .collect()
    }

    fn save_clock(&mut self, conversation_id: i64, clock: &SlaClock) -> StoreResult<()> {
        self.execute(
            sqlx::query(
                "INSERT INTO sla_clocks (conversation_id, kind, state, target_ms, warn_ms, elapsed_ms, running_since,
                                         started_at, stopped_at, warn_at, due_at, warned_at, breached_at, next_fire_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
                 ON CONFLICT (conversation_id, kind) DO UPDATE SET
                     state = EXCLUDED.state, target_ms = EXCLUDED.target_ms, warn_ms = EXCLUDED.warn_ms,
                     elapsed_ms = EXCLUDED.elapsed_ms, running_since = EXCLUDED.running_since,
                     started_at = EXCLUDED.started_at, stopped_at = EXCLUDED.stopped_at, warn_at = EXCLUDED.warn_at,
                     due_at = EXCLUDED.due_at, warned_at = EXCLUDED.warned_at, breached_at = EXCLUDED.breached_at,
                     next_fire_at = EXCLUDED.next_fire_at",
            )
            .bind(conversation_id)
            .bind(clock.kind.as_str())
            .bind(clock.state.as_str())
            .bind(clock.target_ms)
            .bind(clock.warn_ms)
            .bind(clock.elapsed_ms)
            .bind(clock.running_since)
            .bind(clock.started_at)
            .bind(clock.stopped_at)
            .bind(clock.warn_at)
            .bind(clock.due_at)
            .bind(clock.warned_at)
            .bind(clock.breached_at)
            .bind(clock.next_fire_at()),
        )?;
        Ok(())
    }

    fn due_clocks(&mut self, now: i64, limit: u32) -> StoreResult<Vec<(i64, ClockKind)>> {
        let rows = self.rows(
            sqlx::query(
                "SELECT conversation_id, kind FROM sla_clocks
                 WHERE next_fire_at IS NOT NULL AND next_fire_at <= $1 ORDER BY next_fire_at LIMIT $2",
            )
            .bind(now)
            .bind(i64::from(limit)),
        )?;
        rows.iter()
            .map(|row| {
                Ok((
                    column(row, "conversation_id")?,
                    vocabulary(ClockKind::parse, &column::<String>(row, "kind")?)?,
                ))
            })
            .collect()
    }
}
