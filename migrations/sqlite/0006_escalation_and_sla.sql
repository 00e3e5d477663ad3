-- Escalation, assignment and SLA clocks (issue 6).

-- Assignment: agents mark themselves available; capacity NULL means the team's.
ALTER TABLE agents ADD COLUMN available INTEGER NOT NULL DEFAULT 0;
ALTER TABLE agents ADD COLUMN capacity INTEGER;
-- Round-robin hands the next conversation to whoever got one least recently.
ALTER TABLE agents ADD COLUMN last_assigned_at INTEGER;
CREATE INDEX agents_team ON agents (team_id);

-- When the conversation entered its current team's queue (created, escalated,
-- transferred): the queue is served oldest first within a priority.
ALTER TABLE conversations ADD COLUMN queued_at INTEGER;
UPDATE conversations SET queued_at = created_at;
-- The latest escalation (JSON: kind, from, to, summary, reason, by, at), shown first
-- to the team that received it.
ALTER TABLE conversations ADD COLUMN escalation TEXT;
-- The first SLA breach of the conversation, for the teams' dashboard.
ALTER TABLE conversations ADD COLUMN sla_breached_at INTEGER;

-- A team's waiting queue, in the order it is served. Partial, and on columns ingest
-- does not set, so messages arriving cost this index nothing.
CREATE INDEX conversations_waiting ON conversations (
    team_id,
    (CASE priority WHEN 'urgent' THEN 0 WHEN 'high' THEN 1 WHEN 'normal' THEN 2 ELSE 3 END),
    queued_at,
    id
) WHERE status = 'open' AND assignee_id IS NULL;

-- One row per SLA clock of a conversation (see src/sla.rs for the semantics).
CREATE TABLE sla_clocks (
    conversation_id INTEGER NOT NULL REFERENCES conversations (id),
    kind            TEXT    NOT NULL CHECK (kind IN ('first_response', 'next_response', 'resolution', 'max_open')),
    state           TEXT    NOT NULL CHECK (state IN ('running', 'paused', 'met', 'stopped')),
    target_ms       INTEGER NOT NULL,
    warn_ms         INTEGER,
    elapsed_ms      INTEGER NOT NULL DEFAULT 0,
    running_since   INTEGER,
    started_at      INTEGER NOT NULL,
    stopped_at      INTEGER,
    warn_at         INTEGER,
    due_at          INTEGER,
    warned_at       INTEGER,
    breached_at     INTEGER,
    -- The earlier of an unfired warning and an unfired deadline of a running clock: the
    -- scheduler sleeps until the smallest.
    next_fire_at    INTEGER,
    PRIMARY KEY (conversation_id, kind)
);
CREATE INDEX sla_clocks_next_fire ON sla_clocks (next_fire_at) WHERE next_fire_at IS NOT NULL;
