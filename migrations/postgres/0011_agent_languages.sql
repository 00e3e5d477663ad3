-- Agents' language skills and the language wait's timer (SQLite's 0023, which explains them).
ALTER TABLE agents ADD COLUMN languages TEXT NOT NULL DEFAULT '';

ALTER TABLE conversation_timers DROP CONSTRAINT conversation_timers_kind_check;
ALTER TABLE conversation_timers ADD CONSTRAINT conversation_timers_kind_check
    CHECK (kind IN ('waiting_reminder', 'auto_close', 'language_wait'));
