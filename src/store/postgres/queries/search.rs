//! Conversation search on PostgreSQL: `ILIKE` for every word, which pg_trgm's indexes
//! (`migrations/postgres/0004_search.sql`) answer where the extension could be created
//! (`store::search_views`).

crate::store::search_views::search_query!(
    sqlx::Postgres,
    sqlx::PgPool,
    messages = "FROM messages m JOIN conversations c ON c.id = m.conversation_id WHERE m.kind <> 'status_update'",
    message_order = " ORDER BY m.id DESC",
    subjects = "FROM conversations c WHERE c.subject IS NOT NULL",
    subject_order = " ORDER BY c.id DESC",
    indexed_match = false,
    text_like = "m.text ILIKE",
    subject_like = "c.subject ILIKE"
);
