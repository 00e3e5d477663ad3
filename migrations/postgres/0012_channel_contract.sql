-- One connector contract (issue 21): `inboxes.kind` names any registered channel (the
-- list lives with the connectors); the outbox keeps the channel's id of a sent message
-- and a fifth status, `skipped` (not sent, not owed); `delivery_reports` keeps what the
-- channel said became of a message we sent, its state only ever moving forward.
ALTER TABLE inboxes DROP CONSTRAINT inboxes_kind_check;
ALTER TABLE inboxes ADD CONSTRAINT inboxes_kind_check CHECK (kind ~ '^[a-z0-9_]+$');

ALTER TABLE outbox DROP CONSTRAINT outbox_status_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_status_check
    CHECK (status IN ('scheduled', 'in_flight', 'sent', 'failed', 'skipped'));
ALTER TABLE outbox ADD COLUMN external_id TEXT;
UPDATE outbox SET external_id = receipt::jsonb ->> 'external_id' WHERE receipt IS NOT NULL;
CREATE INDEX outbox_by_channel_id ON outbox (inbox_id, external_id) WHERE external_id IS NOT NULL;

CREATE TABLE delivery_reports (
    inbox_id    BIGINT NOT NULL REFERENCES inboxes (id),
    external_id TEXT   NOT NULL,
    state       TEXT   NOT NULL CHECK (state IN ('sent', 'delivered', 'read', 'failed')),
    rank        BIGINT NOT NULL,
    error       TEXT,
    reported_at BIGINT,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (inbox_id, external_id)
);
