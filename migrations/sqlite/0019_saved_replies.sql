-- Saved replies: texts agents insert into a reply or send as one, found by a shortcut.
-- One belongs to a team (its members use it; supervisors and admins manage it) or to
-- one agent alone (`agent_id`), never both. `bodies` is a JSON object of language tag
-- → text; `fallback` names the body used when neither the contact's language nor the
-- desk's has one. A shortcut is unique within its team or its agent's own.
CREATE TABLE saved_replies (
    id          INTEGER PRIMARY KEY,
    team_id     INTEGER REFERENCES teams (id),
    agent_id    INTEGER REFERENCES agents (id),
    shortcut    TEXT    NOT NULL,
    title       TEXT    NOT NULL,
    bodies      TEXT    NOT NULL,
    fallback    TEXT    NOT NULL,
    created_by  INTEGER NOT NULL REFERENCES agents (id),
    created_at  INTEGER NOT NULL,
    updated_by  INTEGER NOT NULL REFERENCES agents (id),
    updated_at  INTEGER NOT NULL,
    CHECK ((team_id IS NULL) <> (agent_id IS NULL))
);
CREATE UNIQUE INDEX saved_replies_team_shortcut ON saved_replies (team_id, shortcut) WHERE team_id IS NOT NULL;
CREATE UNIQUE INDEX saved_replies_agent_shortcut ON saved_replies (agent_id, shortcut) WHERE agent_id IS NOT NULL;
