-- The conversation model. Times are Unix milliseconds (UTC); JSON columns hold text.

CREATE TABLE teams (
    id          INTEGER PRIMARY KEY,
    key         TEXT    NOT NULL UNIQUE,
    name        TEXT    NOT NULL,
    tier        INTEGER NOT NULL DEFAULT 0 CHECK (tier BETWEEN 0 AND 3),
    -- 0 once removed from config: kept because conversations refer to it.
    active      INTEGER NOT NULL DEFAULT 1,
    created_at  INTEGER NOT NULL
);

CREATE TABLE inboxes (
    id          INTEGER PRIMARY KEY,
    key         TEXT    NOT NULL UNIQUE,
    name        TEXT    NOT NULL,
    kind        TEXT    NOT NULL CHECK (kind IN ('webhook', 'email', 'telegram')),
    active      INTEGER NOT NULL DEFAULT 1,
    created_at  INTEGER NOT NULL
);

CREATE TABLE agents (
    id          INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL UNIQUE,
    role        TEXT    NOT NULL CHECK (role IN ('agent', 'supervisor', 'admin')),
    team_id     INTEGER REFERENCES teams (id),
    -- SHA-256 of the bearer token; the token itself is shown once and never stored.
    token_hash  BLOB    NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL
);

CREATE TABLE contacts (
    id          INTEGER PRIMARY KEY,
    name        TEXT,
    email       TEXT,
    language    TEXT,
    value_tier  TEXT,
    flags       TEXT    NOT NULL DEFAULT '[]',
    metadata    TEXT    NOT NULL DEFAULT '{}',
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

-- How a channel names a contact. One contact may hold several (an email address and a
-- Telegram chat); an external id belongs to one contact per inbox.
CREATE TABLE contact_identities (
    id          INTEGER PRIMARY KEY,
    contact_id  INTEGER NOT NULL REFERENCES contacts (id),
    inbox_id    INTEGER NOT NULL REFERENCES inboxes (id),
    channel     TEXT    NOT NULL,
    external_id TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    UNIQUE (inbox_id, external_id)
);
CREATE INDEX contact_identities_contact ON contact_identities (contact_id);

-- The id is the reference customers quote (#42).
CREATE TABLE conversations (
    id                INTEGER PRIMARY KEY,
    inbox_id          INTEGER NOT NULL REFERENCES inboxes (id),
    contact_id        INTEGER NOT NULL REFERENCES contacts (id),
    -- The identity replies go to.
    identity_id       INTEGER NOT NULL REFERENCES contact_identities (id),
    thread_key        TEXT,
    subject           TEXT,
    status            TEXT    NOT NULL CHECK (status IN ('open', 'pending', 'snoozed', 'resolved', 'closed')),
    priority          TEXT    NOT NULL CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
    team_id           INTEGER REFERENCES teams (id),
    tier              INTEGER NOT NULL DEFAULT 0 CHECK (tier BETWEEN 0 AND 3),
    assignee_id       INTEGER REFERENCES agents (id),
    labels            TEXT    NOT NULL DEFAULT '[]',
    language          TEXT,
    transfer_count    INTEGER NOT NULL DEFAULT 0,
    csat_score        INTEGER CHECK (csat_score BETWEEN 1 AND 5),
    last_message_id   INTEGER,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    last_activity_at  INTEGER NOT NULL,
    first_response_at INTEGER,
    resolved_at       INTEGER
);
CREATE INDEX conversations_activity ON conversations (last_activity_at DESC, id DESC);
CREATE INDEX conversations_team ON conversations (team_id, status, last_activity_at DESC, id DESC);
CREATE INDEX conversations_assignee ON conversations (assignee_id, last_activity_at DESC, id DESC);
CREATE INDEX conversations_threading ON conversations (contact_id, inbox_id, status);

CREATE TABLE messages (
    id              INTEGER PRIMARY KEY,
    conversation_id INTEGER NOT NULL REFERENCES conversations (id),
    inbox_id        INTEGER NOT NULL REFERENCES inboxes (id),
    direction       TEXT    NOT NULL CHECK (direction IN ('inbound', 'outbound', 'note')),
    kind            TEXT    NOT NULL CHECK (kind IN ('message', 'reply', 'status_update', 'note')),
    author_kind     TEXT    NOT NULL CHECK (author_kind IN ('contact', 'agent', 'system')),
    author_id       INTEGER,
    text            TEXT    NOT NULL,
    html            TEXT,
    -- The channel's id of an inbound message: the dedupe key with the inbox.
    external_id     TEXT,
    language        TEXT,
    metadata        TEXT,
    created_at      INTEGER NOT NULL
);
CREATE UNIQUE INDEX messages_dedupe ON messages (inbox_id, external_id) WHERE external_id IS NOT NULL;
CREATE INDEX messages_conversation ON messages (conversation_id, id);

-- Attachment bytes, stored once however many messages carry them.
CREATE TABLE blobs (
    sha256      TEXT    PRIMARY KEY,
    size        INTEGER NOT NULL,
    data        BLOB    NOT NULL,
    created_at  INTEGER NOT NULL
);

CREATE TABLE attachments (
    id           INTEGER PRIMARY KEY,
    message_id   INTEGER NOT NULL REFERENCES messages (id),
    blob_sha256  TEXT    NOT NULL REFERENCES blobs (sha256),
    filename     TEXT    NOT NULL,
    content_type TEXT    NOT NULL,
    size         INTEGER NOT NULL
);
CREATE INDEX attachments_message ON attachments (message_id);

-- Every change of a conversation.
CREATE TABLE events (
    id              INTEGER PRIMARY KEY,
    conversation_id INTEGER NOT NULL REFERENCES conversations (id),
    kind            TEXT    NOT NULL,
    actor_kind      TEXT    NOT NULL CHECK (actor_kind IN ('contact', 'agent', 'system')),
    actor_id        INTEGER,
    data            TEXT    NOT NULL DEFAULT '{}',
    created_at      INTEGER NOT NULL
);
CREATE INDEX events_conversation ON events (conversation_id, id);

-- Everything that leaves, written in the transaction that caused it.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    message_id      INTEGER NOT NULL UNIQUE REFERENCES messages (id),
    conversation_id INTEGER NOT NULL REFERENCES conversations (id),
    inbox_id        INTEGER NOT NULL REFERENCES inboxes (id),
    status          TEXT    NOT NULL CHECK (status IN ('scheduled', 'in_flight', 'sent', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    -- An in-flight row whose lease ran out belongs to a sender that died.
    lease_until     INTEGER,
    expires_at      INTEGER NOT NULL,
    last_error      TEXT,
    receipt         TEXT,
    sent_at         INTEGER,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX outbox_due ON outbox (next_attempt_at, id) WHERE status = 'scheduled';
CREATE INDEX outbox_unsent_by_conversation ON outbox (conversation_id, id) WHERE status IN ('scheduled', 'in_flight');
