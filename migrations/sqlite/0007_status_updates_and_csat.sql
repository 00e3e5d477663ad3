-- Automated status updates and satisfaction (issue 7).

-- The customer asked for no automated updates (`stop`): agents' replies still go out.
ALTER TABLE contacts ADD COLUMN updates_opted_out_at INTEGER;

-- The satisfaction question asked on resolution, and its answer. The token names the
-- question in Telegram buttons and email links, so it is unguessable and unique.
ALTER TABLE conversations ADD COLUMN csat_token TEXT;
ALTER TABLE conversations ADD COLUMN csat_requested_at INTEGER;
ALTER TABLE conversations ADD COLUMN csat_comment TEXT;
ALTER TABLE conversations ADD COLUMN csat_answered_at INTEGER;
CREATE UNIQUE INDEX conversations_csat_token ON conversations (csat_token) WHERE csat_token IS NOT NULL;

-- When each kind of update last went to a conversation: at most one per window.
CREATE TABLE status_updates_sent (
    conversation_id INTEGER NOT NULL REFERENCES conversations (id),
    event           TEXT    NOT NULL,
    sent_at         INTEGER NOT NULL,
    PRIMARY KEY (conversation_id, event)
) WITHOUT ROWID;

-- Follow-ups of a conversation waiting on the customer (pending): the reminder and the
-- automatic close. Removed when it stops waiting; the scheduler fires them.
CREATE TABLE conversation_timers (
    conversation_id INTEGER NOT NULL REFERENCES conversations (id),
    kind            TEXT    NOT NULL CHECK (kind IN ('waiting_reminder', 'auto_close')),
    fire_at         INTEGER NOT NULL,
    PRIMARY KEY (conversation_id, kind)
) WITHOUT ROWID;
CREATE INDEX conversation_timers_due ON conversation_timers (fire_at);
