-- The live stream tells events and messages in the order they become visible. An id is
-- drawn when a row is written, not when its transaction commits, so a row can commit
-- after one with a later id; a reader that went by ids alone could pass it for good.
-- Each row keeps the transaction that wrote it: the stream reads only rows whose
-- transaction is older than every one still running, ordered by (tx_id, id).
ALTER TABLE events ADD COLUMN tx_id BIGINT NOT NULL DEFAULT (pg_current_xact_id()::text::BIGINT);
ALTER TABLE messages ADD COLUMN tx_id BIGINT NOT NULL DEFAULT (pg_current_xact_id()::text::BIGINT);
CREATE INDEX events_stream ON events (tx_id, id);
CREATE INDEX messages_stream ON messages (tx_id, id);
