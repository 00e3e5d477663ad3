//! [`ClockTx`] on PostgreSQL: not ported yet (a step of the port, never committed so).

use switchboard_connector_core::ChannelKind;

use super::PgTx;
use crate::model::clock::{ClockKind, SlaClock};
use crate::store::StoreResult;
use crate::store::records::*;
use crate::store::tx::*;

impl ClockTx for PgTx<'_> {
    #[allow(unused_variables)]
    fn clocks(&mut self, conversation_id: i64) -> StoreResult<Vec<SlaClock>> {
        Err(super::not_ported("clocks"))
    }

    #[allow(unused_variables)]
    fn save_clock(&mut self, conversation_id: i64, clock: &SlaClock) -> StoreResult<()> {
        Err(super::not_ported("save_clock"))
    }

    #[allow(unused_variables)]
    fn due_clocks(&mut self, now: i64, limit: u32) -> StoreResult<Vec<(i64, ClockKind)>> {
        Err(super::not_ported("due_clocks"))
    }
}
