//! [`PeopleTx`] on PostgreSQL: not ported yet (a step of the port, never committed so).

use switchboard_connector_core::ChannelKind;

use super::PgTx;
use crate::model::clock::{ClockKind, SlaClock};
use crate::store::StoreResult;
use crate::store::records::*;
use crate::store::tx::*;

impl PeopleTx for PgTx<'_> {
    #[allow(unused_variables)]
    fn credentials(&mut self, who: &AgentSelector) -> StoreResult<Option<Credentials>> {
        Err(super::not_ported("credentials"))
    }

    #[allow(unused_variables)]
    fn set_sign_in_failures(&mut self, agent_id: i64, failed: i64, locked_until: Option<i64>) -> StoreResult<()> {
        Err(super::not_ported("set_sign_in_failures"))
    }

    #[allow(unused_variables)]
    fn set_password_hash(&mut self, agent_id: i64, hash: &str) -> StoreResult<()> {
        Err(super::not_ported("set_password_hash"))
    }

    #[allow(unused_variables)]
    fn set_agent_active(&mut self, agent_id: i64, active: bool) -> StoreResult<bool> {
        Err(super::not_ported("set_agent_active"))
    }

    #[allow(unused_variables)]
    fn replace_sign_in_link(&mut self, agent_id: i64, token_hash: &[u8], expires_at: i64, now: i64) -> StoreResult<()> {
        Err(super::not_ported("replace_sign_in_link"))
    }

    #[allow(unused_variables)]
    fn sign_in_link(&mut self, token_hash: &[u8]) -> StoreResult<Option<SignInLink>> {
        Err(super::not_ported("sign_in_link"))
    }

    #[allow(unused_variables)]
    fn use_sign_in_link(&mut self, token_hash: &[u8], now: i64) -> StoreResult<()> {
        Err(super::not_ported("use_sign_in_link"))
    }

    #[allow(unused_variables)]
    fn insert_session(&mut self, session: &NewSession<'_>, now: i64) -> StoreResult<()> {
        Err(super::not_ported("insert_session"))
    }

    #[allow(unused_variables)]
    fn delete_session(&mut self, token_hash: &[u8]) -> StoreResult<bool> {
        Err(super::not_ported("delete_session"))
    }

    #[allow(unused_variables)]
    fn delete_agent_sessions(&mut self, agent_id: i64) -> StoreResult<u64> {
        Err(super::not_ported("delete_agent_sessions"))
    }

    #[allow(unused_variables)]
    fn delete_expired_sessions(&mut self, now: i64) -> StoreResult<u64> {
        Err(super::not_ported("delete_expired_sessions"))
    }
}
