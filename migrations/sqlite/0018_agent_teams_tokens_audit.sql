-- Agents in several teams, several API tokens each, and the admins' audit log (issue 19).

-- Every team an agent belongs to. `agents.team_id` stays their first (home) team, the
-- default of the console's "my team"; it is always one of these rows.
CREATE TABLE agent_teams (
    agent_id    INTEGER NOT NULL REFERENCES agents (id),
    team_id     INTEGER NOT NULL REFERENCES teams (id),
    PRIMARY KEY (agent_id, team_id)
) WITHOUT ROWID;
CREATE INDEX agent_teams_team ON agent_teams (team_id, agent_id);
INSERT INTO agent_teams (agent_id, team_id) SELECT id, team_id FROM agents WHERE team_id IS NOT NULL;

-- API tokens, by SHA-256; an agent may hold several (one per integration) and an admin
-- revokes one without touching the others. `agents.token_hash` is no longer read: it
-- keeps the first token's hash (or random bytes for an agent created without one)
-- because SQLite cannot drop a UNIQUE column in place.
CREATE TABLE agent_tokens (
    id          INTEGER PRIMARY KEY,
    agent_id    INTEGER NOT NULL REFERENCES agents (id),
    token_hash  BLOB    NOT NULL UNIQUE,
    label       TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);
CREATE INDEX agent_tokens_agent ON agent_tokens (agent_id, id);
INSERT INTO agent_tokens (agent_id, token_hash, label, created_at)
    SELECT id, token_hash, 'first', created_at FROM agents;

-- What admins did: agents created, changed, deactivated; tokens and links issued or
-- revoked; subscriptions made or removed. `details` holds the change (never a secret).
CREATE TABLE admin_audit (
    id          INTEGER PRIMARY KEY,
    actor_id    INTEGER REFERENCES agents (id),
    action      TEXT    NOT NULL,
    target_kind TEXT    NOT NULL,
    target_id   INTEGER,
    details     TEXT    NOT NULL DEFAULT '{}',
    created_at  INTEGER NOT NULL
);
CREATE INDEX admin_audit_target ON admin_audit (target_kind, target_id, id);
