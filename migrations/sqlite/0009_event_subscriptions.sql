-- Event subscriptions for integrations (issue 8).

-- A CRM or ticket system told of the desk's events at its URL, signed with its secret.
CREATE TABLE subscriptions (
    id              INTEGER PRIMARY KEY,
    url             TEXT    NOT NULL,
    -- JSON array of event types.
    events          TEXT    NOT NULL,
    -- The Standard Webhooks secret (`whsec_…`) its deliveries are signed with.
    secret          TEXT    NOT NULL,
    description     TEXT,
    active          INTEGER NOT NULL DEFAULT 1,
    -- Why it was disabled (the receiver answered 410, a delivery failed for good).
    disabled_reason TEXT,
    disabled_at     INTEGER,
    created_by      INTEGER REFERENCES agents (id),
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    deleted_at      INTEGER
);

-- One event for one subscription, its payload frozen when the event happened: the
-- subscription's own outbox, retried on the same schedule as messages (and expiring
-- `outbox.expire_after` after it was created), in order per subscription and conversation.
CREATE TABLE event_deliveries (
    id              INTEGER PRIMARY KEY,
    subscription_id INTEGER NOT NULL REFERENCES subscriptions (id),
    conversation_id INTEGER REFERENCES conversations (id),
    event_type      TEXT    NOT NULL,
    payload         TEXT    NOT NULL,
    status          TEXT    NOT NULL CHECK (status IN ('scheduled', 'in_flight', 'sent', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    lease_until     INTEGER,
    last_error      TEXT,
    receipt         TEXT,
    sent_at         INTEGER,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX event_deliveries_due ON event_deliveries (next_attempt_at, id) WHERE status = 'scheduled';
CREATE INDEX event_deliveries_unsent ON event_deliveries (subscription_id, conversation_id, id)
    WHERE status IN ('scheduled', 'in_flight');
CREATE INDEX event_deliveries_by_subscription ON event_deliveries (subscription_id, id);
