//! Teams, inboxes, agents and their load.

use rusqlite::{OptionalExtension, params};
use switchboard_connector_core::ChannelKind;

use super::SqliteTx;
use crate::model::Role;
use crate::store::StoreResult;
use crate::store::columns::{languages_column, languages_of, vocabulary};
use crate::store::records::*;
use crate::store::tx::*;

impl CatalogTx for SqliteTx<'_> {
    fn deactivate_catalog(&mut self) -> StoreResult<()> {
        self.conn.execute("UPDATE teams SET active = 0", [])?;
        self.conn.execute("UPDATE inboxes SET active = 0", [])?;
        Ok(())
    }

    fn upsert_team(&mut self, team: &TeamSpec, now: i64) -> StoreResult<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO teams (key, name, tier, active, created_at) VALUES (?1, ?2, ?3, 1, ?4)
                 ON CONFLICT (key) DO UPDATE SET name = excluded.name, tier = excluded.tier, active = 1",
            )?
            .execute(params![team.key, team.name, team.tier, now])?;
        Ok(())
    }

    fn upsert_inbox(&mut self, inbox: &InboxSpec, now: i64) -> StoreResult<(i64, ChannelKind)> {
        let (id, kind): (i64, String) = self
            .conn
            .prepare_cached(
                "INSERT INTO inboxes (key, name, kind, active, created_at) VALUES (?1, ?2, ?3, 1, ?4)
                 ON CONFLICT (key) DO UPDATE SET name = excluded.name, active = 1
                 RETURNING id, kind",
            )?
            .query_row(params![inbox.key, inbox.name, inbox.channel.as_str(), now], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })?;
        Ok((id, vocabulary(crate::channels::kind, &kind)?))
    }

    fn team(&mut self, key: &str) -> StoreResult<Option<TeamRow>> {
        Ok(self
            .conn
            .prepare_cached("SELECT id, name FROM teams WHERE key = ?1 AND active = 1")?
            .query_row([key], |row| {
                Ok(TeamRow {
                    id: row.get(0)?,
                    key: key.to_owned(),
                    name: row.get(1)?,
                })
            })
            .optional()?)
    }

    fn agent(&mut self, who: &AgentSelector) -> StoreResult<Option<AgentRow>> {
        const COLUMNS: &str = "SELECT a.id, a.name, a.role, a.team_id, t.key, a.languages
             FROM agents a LEFT JOIN teams t ON t.id = a.team_id";
        type Row = ((i64, String, String), (Option<i64>, Option<String>, String));
        let read = |row: &rusqlite::Row<'_>| -> rusqlite::Result<Row> {
            Ok((
                (row.get(0)?, row.get(1)?, row.get(2)?),
                (row.get(3)?, row.get(4)?, row.get(5)?),
            ))
        };
        let row = match who {
            AgentSelector::Id(id) => self
                .conn
                .prepare_cached(&format!("{COLUMNS} WHERE a.id = ?1"))?
                .query_row([id], read)
                .optional()?,
            AgentSelector::Name(name) => self
                .conn
                .prepare_cached(&format!("{COLUMNS} WHERE a.name = ?1"))?
                .query_row([name], read)
                .optional()?,
        };
        let Some(((id, name, role), (team_id, team, languages))) = row else {
            return Ok(None);
        };
        let teams = self
            .conn
            .prepare_cached(
                "SELECT t.id, t.key, t.name FROM agent_teams m JOIN teams t ON t.id = m.team_id
                 WHERE m.agent_id = ?1 ORDER BY t.id IS NOT ?2, t.id",
            )?
            .query_map(params![id, team_id], |row| {
                Ok(TeamRow {
                    id: row.get(0)?,
                    key: row.get(1)?,
                    name: row.get(2)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(Some(AgentRow {
            id,
            name,
            role: vocabulary(Role::parse, &role)?,
            team_id,
            team,
            teams,
            languages: languages_of(&languages),
        }))
    }

    fn insert_agent(&mut self, agent: &NewAgent, team_ids: &[i64], now: i64) -> StoreResult<i64> {
        let id: i64 = self
            .conn
            .prepare_cached(
                "INSERT INTO agents (name, role, team_id, token_hash, created_at, capacity, available, languages)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) RETURNING id",
            )?
            .query_row(
                params![
                    agent.name,
                    agent.role.as_str(),
                    team_ids.first(),
                    agent.token_hash,
                    now,
                    agent.capacity,
                    agent.available,
                    languages_column(&agent.languages)
                ],
                |row| row.get(0),
            )?;
        self.set_agent_teams(id, team_ids)?;
        if let Some(label) = &agent.first_token {
            self.insert_agent_token(id, &agent.token_hash, label, now)?;
        }
        Ok(id)
    }

    fn set_agent_teams(&mut self, agent_id: i64, team_ids: &[i64]) -> StoreResult<()> {
        self.conn
            .prepare_cached("UPDATE agents SET team_id = ?2 WHERE id = ?1")?
            .execute(params![agent_id, team_ids.first()])?;
        self.conn
            .prepare_cached("DELETE FROM agent_teams WHERE agent_id = ?1")?
            .execute([agent_id])?;
        let mut insert = self
            .conn
            .prepare_cached("INSERT OR IGNORE INTO agent_teams (agent_id, team_id) VALUES (?1, ?2)")?;
        for team_id in team_ids {
            insert.execute(params![agent_id, team_id])?;
        }
        Ok(())
    }

    fn set_agent_role(&mut self, agent_id: i64, role: Role) -> StoreResult<()> {
        self.conn
            .prepare_cached("UPDATE agents SET role = ?2 WHERE id = ?1")?
            .execute(params![agent_id, role.as_str()])?;
        Ok(())
    }

    fn set_agent_available(&mut self, agent_id: i64, available: bool) -> StoreResult<()> {
        self.conn
            .prepare_cached("UPDATE agents SET available = ?1 WHERE id = ?2")?
            .execute(params![available, agent_id])?;
        Ok(())
    }

    fn set_agent_languages(&mut self, agent_id: i64, languages: &[String]) -> StoreResult<()> {
        self.conn
            .prepare_cached("UPDATE agents SET languages = ?2 WHERE id = ?1")?
            .execute(params![agent_id, languages_column(languages)])?;
        Ok(())
    }

    fn note_assignment(&mut self, agent_id: i64, now: i64) -> StoreResult<()> {
        self.conn
            .prepare_cached("UPDATE agents SET last_assigned_at = ?1 WHERE id = ?2")?
            .execute(params![now, agent_id])?;
        Ok(())
    }

    fn available_agents(&mut self, team_id: i64) -> StoreResult<Vec<AgentLoad>> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT a.id, a.capacity, a.last_assigned_at,
                        (SELECT COUNT(*) FROM conversations c WHERE c.assignee_id = a.id AND c.status = 'open'),
                        a.languages
                 FROM agent_teams m JOIN agents a ON a.id = m.agent_id WHERE m.team_id = ?1 AND a.available = 1",
            )?
            .query_map([team_id], |row| {
                Ok(AgentLoad {
                    id: row.get(0)?,
                    capacity: row.get(1)?,
                    last_assigned_at: row.get(2)?,
                    load: row.get(3)?,
                    languages: languages_of(&row.get::<_, String>(4)?),
                })
            })?
            .collect::<Result<_, _>>()?)
    }

    fn supervisors(&mut self, team_id: Option<i64>) -> StoreResult<Vec<String>> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT a.name FROM agent_teams m JOIN agents a ON a.id = m.agent_id
                 WHERE m.team_id = ?1 AND a.role IN ('supervisor', 'admin') ORDER BY a.name",
            )?
            .query_map([team_id], |row| row.get(0))?
            .collect::<Result<_, _>>()?)
    }
}
