-- Privacy (issue 16): erasure keeps conversations as anonymous shells, so the desk's
-- figures still count them, and records who exported or erased whom, when and why.

-- When the person's data left the conversation (erasure or the retention policy): its
-- messages, files, events' free text and deliveries are gone, its counts stay.
ALTER TABLE conversations ADD COLUMN erased_at INTEGER;
-- When the contact was erased: name, email, attributes and identities are gone; the row
-- stays because conversations refer to it.
ALTER TABLE contacts ADD COLUMN erased_at INTEGER;

-- The audit trail of exports and erasures. It names the contact by id only: no name,
-- address or message survives here. `details` holds counts.
CREATE TABLE privacy_audit (
    id          INTEGER PRIMARY KEY,
    contact_id  INTEGER NOT NULL REFERENCES contacts (id),
    action      TEXT    NOT NULL CHECK (action IN ('export', 'erase', 'retention')),
    actor_kind  TEXT    NOT NULL CHECK (actor_kind IN ('agent', 'system')),
    actor_id    INTEGER,
    -- Why (an erasure's request reference); operators are told to write no personal data.
    reason      TEXT,
    details     TEXT    NOT NULL DEFAULT '{}',
    created_at  INTEGER NOT NULL
);
CREATE INDEX privacy_audit_contact ON privacy_audit (contact_id, id);

-- The retention sweep's search: finished conversations not yet erased, oldest first.
CREATE INDEX conversations_retention ON conversations (COALESCE(resolved_at, updated_at))
    WHERE status IN ('resolved', 'closed') AND erased_at IS NULL;
