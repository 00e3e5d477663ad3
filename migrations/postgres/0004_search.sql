-- Conversation search (SQLite's 0016): `ILIKE '%word%'` over messages (automated status
-- updates aside) and subjects finds a word inside text with no spaces between words
-- (Thai) and in any script. pg_trgm's GIN indexes make that fast; the extension is
-- trusted (a database owner may create it since PostgreSQL 13), but where it cannot be
-- created search still works, scanning.
DO $$
BEGIN
    CREATE EXTENSION IF NOT EXISTS pg_trgm;
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'pg_trgm is not available (%): conversation search will scan messages', SQLERRM;
END
$$;
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
        EXECUTE 'CREATE INDEX messages_search ON messages USING gin (text gin_trgm_ops) WHERE kind <> ''status_update''';
        EXECUTE 'CREATE INDEX conversations_subject_search ON conversations USING gin (subject gin_trgm_ops)';
    END IF;
END
$$;
