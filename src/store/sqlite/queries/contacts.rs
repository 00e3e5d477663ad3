//! Contacts as agents look them up: a search over names, addresses, phone numbers,
//! usernames and channel ids, and one contact's page (`store::contact_views`).

use sqlx::Sqlite;

/// Contacts whose terms hold `text`, through the trigram index
/// (`migrations/sqlite/0017_contact_search.sql`).
fn matching(query: &mut QueryBuilder<'_, Sqlite>, text: &str) {
    query
        .push("SELECT rowid FROM contact_search WHERE contact_search MATCH ")
        .push_bind(format!("\"{}\"", text.replace('"', "\"\"")));
}

/// Contacts with this email address (case aside) or this phone number, through the
/// indexes on both.
fn same_address(query: &mut QueryBuilder<'_, Sqlite>, email: Option<&str>, phone: Option<&str>) {
    query
        .push("SELECT id FROM contacts WHERE email IS NOT NULL AND LOWER(email) = LOWER(")
        .push_bind(email.map(str::to_owned))
        .push(
            ") UNION SELECT id FROM contacts WHERE json_extract(metadata, '$.phone') IS NOT NULL
                 AND CAST(json_extract(metadata, '$.phone') AS TEXT) = ",
        )
        .push_bind(phone.map(str::to_owned));
}

crate::store::contact_views::contact_queries!(
    sqlx::Sqlite,
    sqlx::SqlitePool,
    sqlx::SqliteConnection,
    first = "?",
    matching = matching,
    same_address = same_address
);
