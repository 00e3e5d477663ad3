-- One connector contract (issue 21). Three changes:
-- 1. `inboxes.kind` names any registered channel: the list of kinds lives with the
--    connectors, not here, so a new channel needs no migration.
-- 2. The outbox keeps the channel's id of a sent message (which its delivery reports
--    name) and a fifth status, `skipped`: not sent and not owed (a status update outside
--    WhatsApp's 24-hour window with no approved template).
-- 3. `delivery_reports`: what the channel said became of a message we sent, kept by the
--    channel's id, its state only ever moving forward.
--
-- SQLite cannot change a CHECK in place. `inboxes` is referenced by most tables, and
-- the foreign keys that would have to be off to make it again cannot be switched inside
-- the migration's transaction; so its CHECK is dropped the way SQLite's ALTER TABLE page
-- describes for removing one: by editing the stored schema. Its rows already satisfy the
-- new rule. The DDL below bumps the schema version, so every connection opened after
-- this migration reads the edited table.
PRAGMA writable_schema = ON;
UPDATE sqlite_schema
SET sql = replace(sql, 'CHECK (kind IN (''webhook'', ''email'', ''telegram''))',
                  'CHECK (kind <> '''' AND kind NOT GLOB ''*[^a-z0-9_]*'')')
WHERE type = 'table' AND name = 'inboxes';
PRAGMA writable_schema = OFF;

-- Nothing refers to the outbox, so it is made again the usual way.
CREATE TABLE outbox_new (
    id              INTEGER PRIMARY KEY,
    message_id      INTEGER NOT NULL UNIQUE REFERENCES messages (id),
    conversation_id INTEGER NOT NULL REFERENCES conversations (id),
    inbox_id        INTEGER NOT NULL REFERENCES inboxes (id),
    status          TEXT    NOT NULL CHECK (status IN ('scheduled', 'in_flight', 'sent', 'failed', 'skipped')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    -- An in-flight row whose lease ran out belongs to a sender that died.
    lease_until     INTEGER,
    expires_at      INTEGER NOT NULL,
    last_error      TEXT,
    receipt         TEXT,
    sent_at         INTEGER,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    lease_holder    TEXT,
    external_id     TEXT
);
INSERT INTO outbox_new (id, message_id, conversation_id, inbox_id, status, attempts, next_attempt_at, lease_until,
                        expires_at, last_error, receipt, sent_at, created_at, updated_at, lease_holder, external_id)
SELECT id, message_id, conversation_id, inbox_id, status, attempts, next_attempt_at, lease_until,
       expires_at, last_error, receipt, sent_at, created_at, updated_at, lease_holder,
       json_extract(receipt, '$.external_id')
FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox_new RENAME TO outbox;
CREATE INDEX outbox_due ON outbox (next_attempt_at, id) WHERE status = 'scheduled';
CREATE INDEX outbox_unsent_by_conversation ON outbox (conversation_id, id) WHERE status IN ('scheduled', 'in_flight');
CREATE INDEX outbox_failed ON outbox (id) WHERE status = 'failed';
CREATE INDEX outbox_leases ON outbox (lease_holder) WHERE status = 'in_flight';
CREATE INDEX outbox_by_channel_id ON outbox (inbox_id, external_id) WHERE external_id IS NOT NULL;

CREATE TABLE delivery_reports (
    inbox_id    INTEGER NOT NULL REFERENCES inboxes (id),
    external_id TEXT    NOT NULL,
    state       TEXT    NOT NULL CHECK (state IN ('sent', 'delivered', 'read', 'failed')),
    -- The state's order (see `store::records::report_rank`): an update applies only when
    -- it is higher.
    rank        INTEGER NOT NULL,
    error       TEXT,
    -- When the channel says it happened.
    reported_at INTEGER,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (inbox_id, external_id)
) WITHOUT ROWID;

