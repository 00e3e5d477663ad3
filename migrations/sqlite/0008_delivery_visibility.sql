-- Delivery visibility and control (issue 8).

-- Failed deliveries, newest first, for `GET /api/v1/deliveries?status=failed`. Partial:
-- deliveries that succeed never touch it.
CREATE INDEX outbox_failed ON outbox (id) WHERE status = 'failed';
