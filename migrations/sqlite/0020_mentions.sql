-- Mentions (issue 19): `@name` in an internal note tells that agent. One row per agent
-- mentioned in a note; `read_at` is set when they have seen it. What was written stays in
-- the message: a mention holds no text of its own, so an erasure leaves nothing here.
CREATE TABLE mentions (
    id               INTEGER PRIMARY KEY,
    message_id       INTEGER NOT NULL REFERENCES messages (id),
    conversation_id  INTEGER NOT NULL REFERENCES conversations (id),
    agent_id         INTEGER NOT NULL REFERENCES agents (id),
    by_agent_id      INTEGER NOT NULL REFERENCES agents (id),
    created_at       INTEGER NOT NULL,
    read_at          INTEGER
);
CREATE INDEX mentions_agent ON mentions (agent_id, id);
CREATE INDEX mentions_unread ON mentions (agent_id, id) WHERE read_at IS NULL;
