-- Work only one daemon may do at a time (reading an IMAP mailbox, polling a Telegram
-- bot): held by `holder` until `until`, renewed while it lives, taken over after.
CREATE TABLE leases (
    name    TEXT    PRIMARY KEY,
    holder  TEXT    NOT NULL,
    until   INTEGER NOT NULL
) WITHOUT ROWID;
