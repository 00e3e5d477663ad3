-- Reports (issue 20) read a year of a desk in well under a second. Three kinds of facts
-- are kept for them as the desk works, in the same unit of work as what they count.

-- Messages counted per quarter hour and conversation: a report adds up these instead of
-- every message row. A quarter hour, because every time zone's offset is a multiple of
-- fifteen minutes: a report's hours, days and weeks in any zone are whole slots.
-- `slot` is `created_at / 900000`.
CREATE TABLE message_tallies (
    slot            INTEGER NOT NULL,
    conversation_id INTEGER NOT NULL REFERENCES conversations (id),
    -- Customers' messages.
    inbound         INTEGER NOT NULL DEFAULT 0,
    -- Agents' replies.
    outbound        INTEGER NOT NULL DEFAULT 0,
    -- Automated status updates.
    automated       INTEGER NOT NULL DEFAULT 0,
    notes           INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (slot, conversation_id)
) WITHOUT ROWID;
INSERT INTO message_tallies (slot, conversation_id, inbound, outbound, automated, notes)
SELECT created_at / 900000, conversation_id,
       SUM(direction = 'inbound'),
       SUM(direction = 'outbound' AND kind <> 'status_update'),
       SUM(kind = 'status_update'),
       SUM(direction = 'note')
FROM messages GROUP BY 1, 2;

-- Since when the customer waits for an answer: their first message after the last
-- agent's reply (or the conversation's first). A reply turns it into a response.
ALTER TABLE conversations ADD COLUMN awaiting_since INTEGER;

-- Every public reply of an agent that answered a waiting customer: the first of a
-- conversation and each next one, with what the response clock said of it when the SLA
-- policy ran one (`met` in time or `breached`).
CREATE TABLE responses (
    message_id      INTEGER PRIMARY KEY REFERENCES messages (id),
    conversation_id INTEGER NOT NULL REFERENCES conversations (id),
    waited_from     INTEGER NOT NULL,
    answered_at     INTEGER NOT NULL,
    first           INTEGER NOT NULL CHECK (first IN (0, 1)),
    sla             TEXT CHECK (sla IN ('met', 'breached'))
);
-- Holding every column a report reads: a year's responses are read from the index alone.
CREATE INDEX responses_answered ON responses (answered_at, conversation_id, waited_from, first, sla);

-- The responses of the desk's history, from its messages: each agent reply after a
-- customer's message that no earlier reply answered, waiting since the first such
-- message. History holds no clock outcome for them.
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
) WHERE waited_from IS NOT NULL;

-- Conversations whose last customer message has no reply after it wait since then.
UPDATE conversations SET awaiting_since = (
    SELECT MIN(i.created_at) FROM messages i
    WHERE i.conversation_id = conversations.id AND i.direction = 'inbound'
      AND i.id > COALESCE((SELECT MAX(p.id) FROM messages p
                           WHERE p.conversation_id = conversations.id AND p.kind = 'reply'), 0)
);

-- The events reports count, by time: the rest of the log (messages created, routed,
-- assigned) is most of it and no report reads it by time.
CREATE INDEX events_reported ON events (created_at)
    WHERE kind IN ('conversation.status_changed', 'conversation.escalated', 'conversation.transferred',
                   'sla.warning', 'sla.breached');

-- Conversations by when they opened, were resolved, asked and answered: a report of a
-- week finds its conversations without reading the year's.
CREATE INDEX conversations_created ON conversations (created_at);
CREATE INDEX conversations_resolved ON conversations (resolved_at) WHERE resolved_at IS NOT NULL;
CREATE INDEX conversations_csat_asked ON conversations (csat_requested_at) WHERE csat_requested_at IS NOT NULL;
CREATE INDEX conversations_csat_answered ON conversations (csat_answered_at) WHERE csat_answered_at IS NOT NULL;
-- Resolution and max-open clocks that reached their goal, by when (the SLA-met shares).
CREATE INDEX sla_clocks_met ON sla_clocks (stopped_at) WHERE state = 'met';
