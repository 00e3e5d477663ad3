//! Teams, inboxes, agents and their load.

use switchboard_connector_core::ChannelKind;

use super::{PgTx, column};
use crate::model::Role;
use crate::store::StoreResult;
use crate::store::columns::{languages_column, languages_of, vocabulary};
use crate::store::records::*;
use crate::store::tx::*;

impl CatalogTx for PgTx<'_> {
    fn deactivate_catalog(&mut self) -> StoreResult<()> {
        self.execute(sqlx::query("UPDATE teams SET active = FALSE"))?;
        self.execute(sqlx::query("UPDATE inboxes SET active = FALSE"))?;
        Ok(())
    }

    fn upsert_team(&mut self, team: &TeamSpec, now: i64) -> StoreResult<()> {
        self.execute(
            sqlx::query(
                "INSERT INTO teams (key, name, tier, active, created_at) VALUES ($1, $2, $3, TRUE, $4)
                 ON CONFLICT (key) DO UPDATE SET name = excluded.name, tier = excluded.tier, active = TRUE",
            )
            .bind(&team.key)
            .bind(&team.name)
            .bind(i64::from(team.tier))
            .bind(now),
        )?;
        Ok(())
    }

    fn upsert_inbox(&mut self, inbox: &InboxSpec, now: i64) -> StoreResult<(i64, ChannelKind)> {
        let row = self.one(
            sqlx::query(
                "INSERT INTO inboxes (key, name, kind, active, created_at) VALUES ($1, $2, $3, TRUE, $4)
                 ON CONFLICT (key) DO UPDATE SET name = excluded.name, active = TRUE
                 RETURNING id, kind",
            )
            .bind(&inbox.key)
            .bind(&inbox.name)
            .bind(inbox.channel.as_str())
            .bind(now),
        )?;
        let kind: String = column(&row, "kind")?;
        Ok((column(&row, "id")?, vocabulary(crate::channels::kind, &kind)?))
    }

    fn team(&mut self, key: &str) -> StoreResult<Option<TeamRow>> {
        let row = self.row(sqlx::query("SELECT id, name FROM teams WHERE key = $1 AND active").bind(key))?;
        row.map(|row| {
            Ok(TeamRow {
                id: column(&row, "id")?,
                key: key.to_owned(),
                name: column(&row, "name")?,
            })
        })
        .transpose()
    }

    fn agent(&mut self, who: &AgentSelector) -> StoreResult<Option<AgentRow>> {
        const COLUMNS: &str = "SELECT a.id, a.name, a.role, a.team_id, t.key AS team, a.languages
             FROM agents a LEFT JOIN teams t ON t.id = a.team_id";
        let row = match who {
            AgentSelector::Id(id) => self.row(sqlx::query(&format!("{COLUMNS} WHERE a.id = $1")).bind(id))?,
            AgentSelector::Name(name) => self.row(sqlx::query(&format!("{COLUMNS} WHERE a.name = $1")).bind(name))?,
        };
        let Some(row) = row else {
            return Ok(None);
        };
        let id: i64 = column(&row, "id")?;
        let team_id: Option<i64> = column(&row, "team_id")?;
        // The home team first, then the others by id.
        let teams = self
            .rows(
                sqlx::query(
                    "SELECT t.id, t.key, t.name FROM agent_teams m JOIN teams t ON t.id = m.team_id
                     WHERE m.agent_id = $1 ORDER BY t.id IS DISTINCT FROM $2, t.id",
                )
                .bind(id)
                .bind(team_id),
            )?
            .iter()
            .map(|row| {
                Ok(TeamRow {
                    id: column(row, "id")?,
                    key: column(row, "key")?,
                    name: column(row, "name")?,
                })
            })
            .collect::<StoreResult<_>>()?;
        let role: String = column(&row, "role")?;
        Ok(Some(AgentRow {
            id,
            name: column(&row, "name")?,
            role: vocabulary(Role::parse, &role)?,
            team_id,
            team: column(&row, "team")?,
            teams,
            languages: languages_of(&column::<String>(&row, "languages")?),
        }))
    }

    fn insert_agent(&mut self, agent: &NewAgent, team_ids: &[i64], now: i64) -> StoreResult<i64> {
        let row = self.one(
            sqlx::query(
                "INSERT INTO agents (name, role, team_id, token_hash, created_at, capacity, available, languages)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
            )
            .bind(&agent.name)
            .bind(agent.role.as_str())
            .bind(team_ids.first())
            .bind(&agent.token_hash)
            .bind(now)
            .bind(agent.capacity.map(i64::from))
            .bind(agent.available)
            .bind(languages_column(&agent.languages)),
        )?;
        let id = column(&row, "id")?;
        self.set_agent_teams(id, team_ids)?;
        if let Some(label) = &agent.first_token {
            self.insert_agent_token(id, &agent.token_hash, label, now)?;
        }
        Ok(id)
    }

    fn set_agent_teams(&mut self, agent_id: i64, team_ids: &[i64]) -> StoreResult<()> {
        self.execute(
            sqlx::query("UPDATE agents SET team_id = $2 WHERE id = $1")
                .bind(agent_id)
                .bind(team_ids.first()),
        )?;
        self.execute(sqlx::query("DELETE FROM agent_teams WHERE agent_id = $1").bind(agent_id))?;
        self.execute(
            sqlx::query(
                "INSERT INTO agent_teams (agent_id, team_id) SELECT $1, UNNEST($2::BIGINT[]) ON CONFLICT DO NOTHING",
            )
            .bind(agent_id)
            .bind(team_ids),
        )?;
        Ok(())
    }

    fn set_agent_role(&mut self, agent_id: i64, role: Role) -> StoreResult<()> {
        self.execute(
            sqlx::query("UPDATE agents SET role = $2 WHERE id = $1")
                .bind(agent_id)
                .bind(role.as_str()),
        )?;
        Ok(())
    }

    fn set_agent_available(&mut self, agent_id: i64, available: bool) -> StoreResult<()> {
        self.execute(
            sqlx::query("UPDATE agents SET available = $1 WHERE id = $2")
                .bind(available)
                .bind(agent_id),
        )?;
        Ok(())
    }

    fn set_agent_languages(&mut self, agent_id: i64, languages: &[String]) -> StoreResult<()> {
        self.execute(
            sqlx::query("UPDATE agents SET languages = $2 WHERE id = $1")
                .bind(agent_id)
                .bind(languages_column(languages)),
        )?;
        Ok(())
    }

    fn note_assignment(&mut self, agent_id: i64, now: i64) -> StoreResult<()> {
        self.execute(
            sqlx::query("UPDATE agents SET last_assigned_at = $1 WHERE id = $2")
                .bind(now)
                .bind(agent_id),
        )?;
        Ok(())
    }

    fn available_agents(&mut self, team_id: i64) -> StoreResult<Vec<AgentLoad>> {
        let rows = self.rows(
            sqlx::query(
                "SELECT a.id, a.capacity, a.last_assigned_at,
                        (SELECT COUNT(*) FROM conversations c WHERE c.assignee_id = a.id AND c.status = 'open') AS load,
                        a.languages
                 FROM agent_teams m JOIN agents a ON a.id = m.agent_id WHERE m.team_id = $1 AND a.available",
            )
            .bind(team_id),
        )?;
        rows.iter()
            .map(|row| {
                Ok(AgentLoad {
                    id: column(row, "id")?,
                    capacity: column(row, "capacity")?,
                    last_assigned_at: column(row, "last_assigned_at")?,
                    load: column(row, "load")?,
                    languages: languages_of(&column::<String>(row, "languages")?),
                })
            })
            .collect()
    }

    fn supervisors(&mut self, team_id: Option<i64>) -> StoreResult<Vec<String>> {
        let rows = self.rows(
            sqlx::query(
                "SELECT a.name FROM agent_teams m JOIN agents a ON a.id = m.agent_id
                 WHERE m.team_id = $1 AND a.role IN ('supervisor', 'admin') ORDER BY a.name",
            )
            .bind(team_id),
        )?;
        rows.iter().map(|row| column(row, "name")).collect()
    }
}
