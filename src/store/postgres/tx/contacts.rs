//! [`ContactTx`] on PostgreSQL: not ported yet (a step of the port, never committed so).

use switchboard_connector_core::ChannelKind;

use super::PgTx;
use crate::model::clock::{ClockKind, SlaClock};
use crate::store::StoreResult;
use crate::store::records::*;
use crate::store::tx::*;

impl ContactTx for PgTx<'_> {
    #[allow(unused_variables)]
    fn identity(&mut self, inbox_id: i64, external_id: &str) -> StoreResult<Option<ContactRecord>> {
        Err(super::not_ported("identity"))
    }

    #[allow(unused_variables)]
    fn contact_of_channel_identity(&mut self, channel: ChannelKind, external_id: &str) -> StoreResult<Option<i64>> {
        Err(super::not_ported("contact_of_channel_identity"))
    }

    #[allow(unused_variables)]
    fn insert_contact(&mut self, record: &ContactRecord, now: i64) -> StoreResult<i64> {
        Err(super::not_ported("insert_contact"))
    }

    #[allow(unused_variables)]
    fn insert_identity(&mut self, contact_id: i64, inbox: &InboxRef, external_id: &str, now: i64) -> StoreResult<i64> {
        Err(super::not_ported("insert_identity"))
    }

    #[allow(unused_variables)]
    fn update_contact(&mut self, record: &ContactRecord, now: i64) -> StoreResult<()> {
        Err(super::not_ported("update_contact"))
    }

    #[allow(unused_variables)]
    fn set_reachability(&mut self, identity: IdentityRef<'_>, reason: Option<&str>, now: i64) -> StoreResult<bool> {
        Err(super::not_ported("set_reachability"))
    }

    #[allow(unused_variables)]
    fn set_updates_opt_out(&mut self, contact_id: i64, opted_out: bool, now: i64) -> StoreResult<bool> {
        Err(super::not_ported("set_updates_opt_out"))
    }
}
