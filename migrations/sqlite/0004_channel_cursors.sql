-- Where a connector stands in its source, advanced only in the transaction after the
-- messages before it are committed: an IMAP folder's `uidvalidity:last_uid`, a bot's
-- update offset. One row per inbox and cursor name (an IMAP folder).
CREATE TABLE channel_cursors (
    inbox_id    INTEGER NOT NULL REFERENCES inboxes (id),
    name        TEXT    NOT NULL,
    value       TEXT    NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (inbox_id, name)
);
