-- As SQLite's 0015: merged contacts keep their id and point at the one they joined; a
-- contact's time zone.
ALTER TABLE contacts ADD COLUMN merged_into BIGINT REFERENCES contacts (id);
ALTER TABLE contacts ADD COLUMN merged_at BIGINT;
ALTER TABLE contacts ADD COLUMN time_zone TEXT;
