-- Finding a person (SQLite's 0017): each thing an agent may know of them searched by
-- `LIKE` on its lowercase form, one pg_trgm index each where the extension exists; and
-- a contact's likely duplicates, the same address or phone number.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
        EXECUTE 'CREATE INDEX contacts_name_search ON contacts USING gin (LOWER(name) gin_trgm_ops)';
        EXECUTE 'CREATE INDEX contacts_email_search ON contacts USING gin (LOWER(email) gin_trgm_ops)';
        EXECUTE 'CREATE INDEX contacts_phone_search ON contacts USING gin (LOWER(metadata::jsonb ->> ''phone'') gin_trgm_ops)';
        EXECUTE 'CREATE INDEX contacts_username_search ON contacts
                 USING gin (LOWER(metadata::jsonb ->> ''telegram_username'') gin_trgm_ops)';
        EXECUTE 'CREATE INDEX contact_identities_search ON contact_identities USING gin (LOWER(external_id) gin_trgm_ops)';
    END IF;
END
$$;
CREATE INDEX contacts_email ON contacts (LOWER(email)) WHERE email IS NOT NULL;
CREATE INDEX contacts_phone ON contacts ((metadata::jsonb ->> 'phone')) WHERE metadata::jsonb ? 'phone';
