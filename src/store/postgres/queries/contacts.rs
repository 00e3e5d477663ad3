//! Contacts as agents look them up: a search over names, addresses, phone numbers,
//! usernames and channel ids, and one contact's page (`store::contact_views`).

crate::store::contact_views::contact_queries!(
    sqlx::Postgres,
    sqlx::PgPool,
    sqlx::PgConnection,
    first = "$1",
    attribute = "(ct.metadata::jsonb ->> '{name}')"
);
