-- A channel identity the customer can no longer be reached at (they blocked the bot,
-- left the chat): set when a send fails that way or the channel reports it, cleared by
-- their next message. Shown on the conversation's contact.
ALTER TABLE contact_identities ADD COLUMN unreachable_reason TEXT;
ALTER TABLE contact_identities ADD COLUMN unreachable_at INTEGER;
-- Identities of one person across inboxes of a channel with global ids (a Telegram user
-- writing to two bots, one address mailing two support inboxes).
CREATE INDEX contact_identities_channel_external ON contact_identities (channel, external_id);
