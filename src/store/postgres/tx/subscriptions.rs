//! [`SubscriptionTx`] on PostgreSQL: not ported yet (a step of the port, never committed so).

use switchboard_connector_core::ChannelKind;

use super::PgTx;
use crate::model::clock::{ClockKind, SlaClock};
use crate::store::StoreResult;
use crate::store::records::*;
use crate::store::tx::*;

impl SubscriptionTx for PgTx<'_> {
    #[allow(unused_variables)]
    fn subscribers(&mut self) -> StoreResult<Vec<Subscriber>> {
        Err(super::not_ported("subscribers"))
    }

    #[allow(unused_variables)]
    fn queue_event(
        &mut self,
        subscription_id: i64,
        conversation_id: Option<i64>,
        event_type: &str,
        payload: &str,
        now: i64,
    ) -> StoreResult<i64> {
        Err(super::not_ported("queue_event"))
    }

    #[allow(unused_variables)]
    fn insert_subscription(&mut self, new: &NewSubscription, now: i64) -> StoreResult<i64> {
        Err(super::not_ported("insert_subscription"))
    }

    #[allow(unused_variables)]
    fn subscription(&mut self, id: i64) -> StoreResult<Option<Subscription>> {
        Err(super::not_ported("subscription"))
    }

    #[allow(unused_variables)]
    fn delete_subscription(&mut self, id: i64, now: i64) -> StoreResult<()> {
        Err(super::not_ported("delete_subscription"))
    }

    #[allow(unused_variables)]
    fn set_subscription_active(&mut self, id: i64, active: bool, reason: Option<&str>, now: i64) -> StoreResult<()> {
        Err(super::not_ported("set_subscription_active"))
    }

    #[allow(unused_variables)]
    fn disable_subscription(&mut self, id: i64, reason: &str, now: i64) -> StoreResult<bool> {
        Err(super::not_ported("disable_subscription"))
    }

    #[allow(unused_variables)]
    fn drop_waiting_events(&mut self, subscription_id: i64, which: Waiting, error: &str, now: i64) -> StoreResult<()> {
        Err(super::not_ported("drop_waiting_events"))
    }

    #[allow(unused_variables)]
    fn claim_events(
        &mut self,
        now: i64,
        limit: u32,
        lease_until: i64,
        held: &[i64],
    ) -> StoreResult<Vec<EventDelivery>> {
        Err(super::not_ported("claim_events"))
    }

    #[allow(unused_variables)]
    fn settle_event(&mut self, id: i64, settlement: Settlement<'_>, now: i64) -> StoreResult<Option<i64>> {
        Err(super::not_ported("settle_event"))
    }

    #[allow(unused_variables)]
    fn event_subscription(&mut self, id: i64) -> StoreResult<Option<i64>> {
        Err(super::not_ported("event_subscription"))
    }

    #[allow(unused_variables)]
    fn defer_events(&mut self, subscription_id: i64, until: i64, now: i64) -> StoreResult<()> {
        Err(super::not_ported("defer_events"))
    }

    #[allow(unused_variables)]
    fn next_event_after(&mut self, now: i64) -> StoreResult<Option<i64>> {
        Err(super::not_ported("next_event_after"))
    }

    #[allow(unused_variables)]
    fn release_events(&mut self, now: i64) -> StoreResult<u64> {
        Err(super::not_ported("release_events"))
    }
}
