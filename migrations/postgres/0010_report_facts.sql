-- Report facts (SQLite's 0021, which explains them).
CREATE TABLE message_tallies (
    slot            BIGINT NOT NULL,
    conversation_id BIGINT NOT NULL REFERENCES conversations (id),
    inbound         BIGINT NOT NULL DEFAULT 0,
    outbound        BIGINT NOT NULL DEFAULT 0,
    automated       BIGINT NOT NULL DEFAULT 0,
    notes           BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (slot, conversation_id)
);
INSERT INTO message_tallies (slot, conversation_id, inbound, outbound, automated, notes)
SELECT created_at / 900000, conversation_id,
       COUNT(*) FILTER (WHERE direction = 'inbound'),
       COUNT(*) FILTER (WHERE direction = 'outbound' AND kind <> 'status_update'),
       COUNT(*) FILTER (WHERE kind = 'status_update'),
       COUNT(*) FILTER (WHERE direction = 'note')
FROM messages GROUP BY 1, 2;

ALTER TABLE conversations ADD COLUMN awaiting_since BIGINT;

CREATE TABLE responses (
    message_id      BIGINT PRIMARY KEY REFERENCES messages (id),
    conversation_id BIGINT NOT NULL REFERENCES conversations (id),
    waited_from     BIGINT NOT NULL,
    answered_at     BIGINT NOT NULL,
    first           BOOLEAN NOT NULL,
    sla             TEXT CHECK (sla IN ('met', 'breached'))
);
-- Holding every column a report reads: a year's responses are read from the index alone.
CREATE INDEX responses_answered ON responses (answered_at, conversation_id, waited_from, first, sla);

INSERT INTO responses (message_id, conversation_id, waited_from, answered_at, first, sla)
SELECT id, conversation_id, waited_from, created_at, previous IS NULL, NULL
FROM (
    SELECT r.id, r.conversation_id, r.created_at,
           (SELECT MAX(p.id) FROM messages p
            WHERE p.conversation_id = r.conversation_id AND p.kind = 'reply' AND p.id < r.id) AS previous,
           (SELECT MIN(i.created_at) FROM messages i
            WHERE i.conversation_id = r.conversation_id AND i.direction = 'inbound' AND i.id < r.id
              AND i.id > COALESCE((SELECT MAX(p.id) FROM messages p
                                   WHERE p.conversation_id = r.conversation_id AND p.kind = 'reply'
                                     AND p.id < r.id), 0)) AS waited_from
    FROM messages r WHERE r.kind = 'reply'
) history WHERE waited_from IS NOT NULL;

UPDATE conversations SET awaiting_since = (
    SELECT MIN(i.created_at) FROM messages i
    WHERE i.conversation_id = conversations.id AND i.direction = 'inbound'
      AND i.id > COALESCE((SELECT MAX(p.id) FROM messages p
                           WHERE p.conversation_id = conversations.id AND p.kind = 'reply'), 0)
);

CREATE INDEX events_reported ON events (created_at)
    WHERE kind IN ('conversation.status_changed', 'conversation.escalated', 'conversation.transferred',
                   'sla.warning', 'sla.breached');
CREATE INDEX conversations_created ON conversations (created_at);
CREATE INDEX conversations_resolved ON conversations (resolved_at) WHERE resolved_at IS NOT NULL;
CREATE INDEX conversations_csat_asked ON conversations (csat_requested_at) WHERE csat_requested_at IS NOT NULL;
CREATE INDEX conversations_csat_answered ON conversations (csat_answered_at) WHERE csat_answered_at IS NOT NULL;
-- Resolution and max-open clocks that reached their goal, by when (the SLA-met shares).
CREATE INDEX sla_clocks_met ON sla_clocks (stopped_at) WHERE state = 'met';
