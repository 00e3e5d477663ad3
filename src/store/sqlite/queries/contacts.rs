//! Contacts as agents look them up: a search over names, addresses, phone numbers,
//! usernames and channel ids, and one contact's page (`store::contact_views`).

crate::store::contact_views::contact_queries!(
    sqlx::Sqlite,
    sqlx::SqlitePool,
    sqlx::SqliteConnection,
    first = "?",
    attribute = "CAST(json_extract(ct.metadata, '$.{name}') AS TEXT)"
);
