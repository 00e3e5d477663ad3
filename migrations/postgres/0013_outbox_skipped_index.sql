-- `/metrics` counts the outbox's deliveries by status. `skipped` (0012) had no index of
-- its own, so its rows were counted as sent; a partial index keeps its count a walk over
-- the skipped rows alone, like the failed ones' (rare: status updates WhatsApp would not
-- carry and had no template for).
CREATE INDEX outbox_skipped ON outbox (id) WHERE status = 'skipped';
