-- Agents' language skills (issue 22): the languages each reads, as lowercase primary
-- tags joined by commas (`th,en`); empty when none were given. Assignment prefers an
-- agent who reads the conversation's language.
ALTER TABLE agents ADD COLUMN languages TEXT NOT NULL DEFAULT '';

-- A conversation waiting in its queue for a reader of its language has a timer: when it
-- fires, anyone may take it. SQLite cannot change a CHECK in place, so the table (a few
-- rows per waiting conversation) is made again.
CREATE TABLE conversation_timers_new (
    conversation_id INTEGER NOT NULL REFERENCES conversations (id),
    kind            TEXT    NOT NULL CHECK (kind IN ('waiting_reminder', 'auto_close', 'language_wait')),
    fire_at         INTEGER NOT NULL,
    PRIMARY KEY (conversation_id, kind)
) WITHOUT ROWID;
INSERT INTO conversation_timers_new (conversation_id, kind, fire_at)
SELECT conversation_id, kind, fire_at FROM conversation_timers;
DROP TABLE conversation_timers;
ALTER TABLE conversation_timers_new RENAME TO conversation_timers;
CREATE INDEX conversation_timers_due ON conversation_timers (fire_at);
