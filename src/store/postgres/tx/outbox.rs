//! [`OutboxTx`] on PostgreSQL: not ported yet (a step of the port, never committed so).

use switchboard_connector_core::ChannelKind;

use super::PgTx;
use crate::model::clock::{ClockKind, SlaClock};
use crate::store::StoreResult;
use crate::store::records::*;
use crate::store::tx::*;

impl OutboxTx for PgTx<'_> {
    #[allow(unused_variables)]
    fn insert_outbox(
        &mut self,
        message_id: i64,
        conversation_id: i64,
        inbox_id: i64,
        now: i64,
        expires_at: i64,
    ) -> StoreResult<()> {
        Err(super::not_ported("insert_outbox"))
    }

    #[allow(unused_variables)]
    fn claim_deliveries(
        &mut self,
        now: i64,
        limit: u32,
        lease_until: i64,
        plan: &ClaimPlan,
    ) -> StoreResult<Vec<Delivery>> {
        Err(super::not_ported("claim_deliveries"))
    }

    #[allow(unused_variables)]
    fn settle_delivery(&mut self, id: i64, settlement: Settlement<'_>, now: i64) -> StoreResult<Option<OutboxRow>> {
        Err(super::not_ported("settle_delivery"))
    }

    #[allow(unused_variables)]
    fn fail_delivery(&mut self, id: i64, error: &str, now: i64) -> StoreResult<()> {
        Err(super::not_ported("fail_delivery"))
    }

    #[allow(unused_variables)]
    fn set_sent_message_id(&mut self, outbox_id: i64, external_id: &str) -> StoreResult<()> {
        Err(super::not_ported("set_sent_message_id"))
    }

    #[allow(unused_variables)]
    fn delivery(&mut self, id: i64) -> StoreResult<Option<OutboxRow>> {
        Err(super::not_ported("delivery"))
    }

    #[allow(unused_variables)]
    fn reschedule_delivery(&mut self, id: i64, now: i64, expires_at: i64) -> StoreResult<()> {
        Err(super::not_ported("reschedule_delivery"))
    }

    #[allow(unused_variables)]
    fn next_delivery_after(&mut self, now: i64) -> StoreResult<Option<i64>> {
        Err(super::not_ported("next_delivery_after"))
    }

    #[allow(unused_variables)]
    fn defer_deliveries(&mut self, inbox_id: i64, until: i64, now: i64) -> StoreResult<u64> {
        Err(super::not_ported("defer_deliveries"))
    }

    #[allow(unused_variables)]
    fn release_deliveries(&mut self, now: i64) -> StoreResult<u64> {
        Err(super::not_ported("release_deliveries"))
    }

    #[allow(unused_variables)]
    fn set_channel_cursor(&mut self, inbox_id: i64, name: &str, value: &str, now: i64) -> StoreResult<()> {
        Err(super::not_ported("set_channel_cursor"))
    }
}
