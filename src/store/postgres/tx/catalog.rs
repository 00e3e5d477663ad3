//! [`CatalogTx`] on PostgreSQL: not ported yet (a step of the port, never committed so).

use switchboard_connector_core::ChannelKind;

use super::PgTx;
use crate::model::clock::{ClockKind, SlaClock};
use crate::store::StoreResult;
use crate::store::records::*;
use crate::store::tx::*;

impl CatalogTx for PgTx<'_> {
    #[allow(unused_variables)]
    fn deactivate_catalog(&mut self) -> StoreResult<()> {
        Err(super::not_ported("deactivate_catalog"))
    }

    #[allow(unused_variables)]
    fn upsert_team(&mut self, team: &TeamSpec, now: i64) -> StoreResult<()> {
        Err(super::not_ported("upsert_team"))
    }

    #[allow(unused_variables)]
    fn upsert_inbox(&mut self, inbox: &InboxSpec, now: i64) -> StoreResult<(i64, ChannelKind)> {
        Err(super::not_ported("upsert_inbox"))
    }

    #[allow(unused_variables)]
    fn team(&mut self, key: &str) -> StoreResult<Option<TeamRow>> {
        Err(super::not_ported("team"))
    }

    #[allow(unused_variables)]
    fn agent(&mut self, who: &AgentSelector) -> StoreResult<Option<AgentRow>> {
        Err(super::not_ported("agent"))
    }

    #[allow(unused_variables)]
    fn insert_agent(&mut self, agent: &NewAgent, team_id: i64, now: i64) -> StoreResult<i64> {
        Err(super::not_ported("insert_agent"))
    }

    #[allow(unused_variables)]
    fn set_agent_available(&mut self, agent_id: i64, available: bool) -> StoreResult<()> {
        Err(super::not_ported("set_agent_available"))
    }

    #[allow(unused_variables)]
    fn note_assignment(&mut self, agent_id: i64, now: i64) -> StoreResult<()> {
        Err(super::not_ported("note_assignment"))
    }

    #[allow(unused_variables)]
    fn available_agents(&mut self, team_id: i64) -> StoreResult<Vec<AgentLoad>> {
        Err(super::not_ported("available_agents"))
    }

    #[allow(unused_variables)]
    fn supervisors(&mut self, team_id: Option<i64>) -> StoreResult<Vec<String>> {
        Err(super::not_ported("supervisors"))
    }
}
