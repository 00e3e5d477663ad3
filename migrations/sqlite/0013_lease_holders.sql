-- Who holds a row in flight: a daemon renews its own leases while it lives, and rows
-- whose lease ran out (their holder died) go back to the queue. The indexes serve the
-- renewal, a few times a minute.
ALTER TABLE outbox ADD COLUMN lease_holder TEXT;
ALTER TABLE event_deliveries ADD COLUMN lease_holder TEXT;
CREATE INDEX outbox_leases ON outbox (lease_holder) WHERE status = 'in_flight';
CREATE INDEX event_deliveries_leases ON event_deliveries (lease_holder) WHERE status = 'in_flight';
