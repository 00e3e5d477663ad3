-- A send made of several messages (a long text split at the channel's limit, then the
-- agent's files) can fail part-way; the parts the channel took are counted here, and the
-- next attempt starts after them, so the customer never gets a part twice.
ALTER TABLE outbox ADD COLUMN parts_sent INTEGER NOT NULL DEFAULT 0;
