//! [`ConversationTx`] on PostgreSQL: not ported yet (a step of the port, never committed so).

use switchboard_connector_core::ChannelKind;

use super::PgTx;
use crate::model::clock::{ClockKind, SlaClock};
use crate::store::StoreResult;
use crate::store::records::*;
use crate::store::tx::*;

impl ConversationTx for PgTx<'_> {
    #[allow(unused_variables)]
    fn conversation(&mut self, id: i64) -> StoreResult<Option<Conversation>> {
        Err(super::not_ported("conversation"))
    }

    #[allow(unused_variables)]
    fn find_conversation(&mut self, lookup: ConversationLookup<'_>) -> StoreResult<Option<ConversationRef>> {
        Err(super::not_ported("find_conversation"))
    }

    #[allow(unused_variables)]
    fn insert_conversation(&mut self, new: &NewConversation<'_>) -> StoreResult<i64> {
        Err(super::not_ported("insert_conversation"))
    }

    #[allow(unused_variables)]
    fn update_conversation(&mut self, id: i64, patch: &ConversationPatch) -> StoreResult<()> {
        Err(super::not_ported("update_conversation"))
    }

    #[allow(unused_variables)]
    fn next_waiting(&mut self, team_id: i64) -> StoreResult<Option<i64>> {
        Err(super::not_ported("next_waiting"))
    }

    #[allow(unused_variables)]
    fn previous_assignee(&mut self, contact_id: i64, except: i64) -> StoreResult<Option<i64>> {
        Err(super::not_ported("previous_assignee"))
    }

    #[allow(unused_variables)]
    fn update_target(&mut self, id: i64) -> StoreResult<Option<UpdateTarget>> {
        Err(super::not_ported("update_target"))
    }

    #[allow(unused_variables)]
    fn update_sent_at(&mut self, conversation_id: i64, event: &str) -> StoreResult<Option<i64>> {
        Err(super::not_ported("update_sent_at"))
    }

    #[allow(unused_variables)]
    fn note_update_sent(&mut self, conversation_id: i64, event: &str, now: i64) -> StoreResult<()> {
        Err(super::not_ported("note_update_sent"))
    }

    #[allow(unused_variables)]
    fn set_timer(&mut self, conversation_id: i64, kind: &str, at: i64) -> StoreResult<()> {
        Err(super::not_ported("set_timer"))
    }

    #[allow(unused_variables)]
    fn clear_timers(&mut self, conversation_id: i64, kind: Option<&str>) -> StoreResult<()> {
        Err(super::not_ported("clear_timers"))
    }

    #[allow(unused_variables)]
    fn due_timers(&mut self, now: i64, limit: u32) -> StoreResult<Vec<(i64, String)>> {
        Err(super::not_ported("due_timers"))
    }
}
