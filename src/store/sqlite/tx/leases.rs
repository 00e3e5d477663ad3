//! Named leases: an upsert that takes over only a lease that ran out.

use rusqlite::params;

use super::SqliteTx;
use crate::store::StoreResult;
use crate::store::tx::LeaseTx;

impl LeaseTx for SqliteTx<'_> {
    fn take_lease(&mut self, name: &str, holder: &str, now: i64, until: i64) -> StoreResult<bool> {
        let taken = self
            .conn
            .prepare_cached(
                "INSERT INTO leases (name, holder, until) VALUES (?1, ?2, ?4)
                 ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until
                 WHERE leases.holder = excluded.holder OR leases.until < ?3",
            )?
            .execute(params![name, holder, now, until])?;
        Ok(taken == 1)
    }

    fn drop_lease(&mut self, name: &str, holder: &str) -> StoreResult<()> {
        self.conn
            .prepare_cached("DELETE FROM leases WHERE name = ?1 AND holder = ?2")?
            .execute(params![name, holder])?;
        Ok(())
    }

    fn clear_leases(&mut self) -> StoreResult<u64> {
        Ok(self.conn.execute("DELETE FROM leases", [])? as u64)
    }
}
