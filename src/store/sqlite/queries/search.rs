//! Conversation search on SQLite: the trigram index (`migrations/sqlite/0016_search.sql`)
//! finds the newest messages and subjects holding every word of three characters or
//! more; shorter words narrow what it found (`store::search_views`).

crate::store::search_views::search_query!(
    sqlx::Sqlite,
    sqlx::SqlitePool,
    messages = "FROM message_search JOIN messages m ON m.id = message_search.rowid
                JOIN conversations c ON c.id = m.conversation_id WHERE message_search MATCH ",
    message_order = " ORDER BY message_search.rowid DESC",
    subjects = "FROM subject_search JOIN conversations c ON c.id = subject_search.rowid WHERE subject_search MATCH ",
    subject_order = " ORDER BY subject_search.rowid DESC",
    indexed_match = true,
    text_like = "LOWER(m.text) LIKE",
    subject_like = "LOWER(c.subject) LIKE"
);
