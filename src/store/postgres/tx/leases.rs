//! Named leases: an upsert that takes over only a lease that ran out.

use super::PgTx;
use crate::store::StoreResult;
use crate::store::tx::LeaseTx;

impl LeaseTx for PgTx<'_> {
    fn take_lease(&mut self, name: &str, holder: &str, now: i64, until: i64) -> StoreResult<bool> {
        let taken = self.execute(
            sqlx::query(
                "INSERT INTO leases (name, holder, until) VALUES ($1, $2, $4)
                 ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until
                 WHERE leases.holder = excluded.holder OR leases.until < $3",
            )
            .bind(name)
            .bind(holder)
            .bind(now)
            .bind(until),
        )?;
        Ok(taken == 1)
    }

    fn drop_lease(&mut self, name: &str, holder: &str) -> StoreResult<()> {
        self.execute(
            sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
                .bind(name)
                .bind(holder),
        )?;
        Ok(())
    }

    fn clear_leases(&mut self) -> StoreResult<u64> {
        self.execute(sqlx::query("DELETE FROM leases"))
    }
}
