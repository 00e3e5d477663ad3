//! [`PrivacyTx`] on PostgreSQL: not ported yet (a step of the port, never committed so).

use switchboard_connector_core::ChannelKind;

use super::PgTx;
use crate::model::clock::{ClockKind, SlaClock};
use crate::store::StoreResult;
use crate::store::records::*;
use crate::store::tx::*;

impl PrivacyTx for PgTx<'_> {
    #[allow(unused_variables)]
    fn contact_export(&mut self, contact_id: i64) -> StoreResult<Option<ContactExport>> {
        Err(super::not_ported("contact_export"))
    }

    #[allow(unused_variables)]
    fn contact_erased_at(&mut self, contact_id: i64) -> StoreResult<Option<Option<i64>>> {
        Err(super::not_ported("contact_erased_at"))
    }

    #[allow(unused_variables)]
    fn contact_conversations(&mut self, contact_id: i64) -> StoreResult<Vec<(i64, bool)>> {
        Err(super::not_ported("contact_conversations"))
    }

    #[allow(unused_variables)]
    fn conversation_events(&mut self, conversation_id: i64) -> StoreResult<Vec<StoredEvent>> {
        Err(super::not_ported("conversation_events"))
    }

    #[allow(unused_variables)]
    fn set_event_data(&mut self, event_id: i64, data: &serde_json::Value) -> StoreResult<()> {
        Err(super::not_ported("set_event_data"))
    }

    #[allow(unused_variables)]
    fn erase_conversation_content(&mut self, conversation_id: i64, now: i64) -> StoreResult<ErasedContent> {
        Err(super::not_ported("erase_conversation_content"))
    }

    #[allow(unused_variables)]
    fn erase_contact_record(&mut self, contact_id: i64, now: i64) -> StoreResult<u64> {
        Err(super::not_ported("erase_contact_record"))
    }

    #[allow(unused_variables)]
    fn insert_privacy_record(&mut self, record: &PrivacyRecord<'_>, now: i64) -> StoreResult<i64> {
        Err(super::not_ported("insert_privacy_record"))
    }

    #[allow(unused_variables)]
    fn retention_due(&mut self, before: i64, limit: u32) -> StoreResult<Vec<(i64, i64)>> {
        Err(super::not_ported("retention_due"))
    }
}
