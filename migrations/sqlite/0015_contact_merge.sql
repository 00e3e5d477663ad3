-- A contact merged into another keeps its id, so links to it still resolve, but nothing
-- of it stays: its identities and conversations belong to the contact it was merged into.
-- The time zone is an agent's note of where the person lives (shown beside times).
ALTER TABLE contacts ADD COLUMN merged_into INTEGER REFERENCES contacts (id);
ALTER TABLE contacts ADD COLUMN merged_at INTEGER;
ALTER TABLE contacts ADD COLUMN time_zone TEXT;
