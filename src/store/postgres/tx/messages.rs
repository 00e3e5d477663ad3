//! [`MessageTx`] on PostgreSQL: not ported yet (a step of the port, never committed so).

use switchboard_connector_core::ChannelKind;

use super::PgTx;
use crate::model::clock::{ClockKind, SlaClock};
use crate::store::StoreResult;
use crate::store::records::*;
use crate::store::tx::*;

impl MessageTx for PgTx<'_> {
    #[allow(unused_variables)]
    fn message_by_external_id(&mut self, inbox_id: i64, external_id: &str) -> StoreResult<Option<MessageRef>> {
        Err(super::not_ported("message_by_external_id"))
    }

    #[allow(unused_variables)]
    fn message_text(&mut self, id: i64) -> StoreResult<Option<MessageText>> {
        Err(super::not_ported("message_text"))
    }

    #[allow(unused_variables)]
    fn insert_message(&mut self, message: &NewMessage<'_>, now: i64) -> StoreResult<i64> {
        Err(super::not_ported("insert_message"))
    }

    #[allow(unused_variables)]
    fn replace_message_text(&mut self, id: i64, text: &str, metadata: &str) -> StoreResult<()> {
        Err(super::not_ported("replace_message_text"))
    }

    #[allow(unused_variables)]
    fn insert_attachment(&mut self, message_id: i64, file: NewAttachment<'_>, now: i64) -> StoreResult<()> {
        Err(super::not_ported("insert_attachment"))
    }

    #[allow(unused_variables)]
    fn outbound_message(&mut self, message_id: i64, inbox_id: i64) -> StoreResult<Option<OutboundRef>> {
        Err(super::not_ported("outbound_message"))
    }

    #[allow(unused_variables)]
    fn last_inbound_text(&mut self, conversation_id: i64) -> StoreResult<Option<String>> {
        Err(super::not_ported("last_inbound_text"))
    }

    #[allow(unused_variables)]
    fn insert_event(&mut self, event: &EventRow<'_>, now: i64) -> StoreResult<()> {
        Err(super::not_ported("insert_event"))
    }
}
