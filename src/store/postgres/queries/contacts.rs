//! Contacts as agents look them up: a search over names, addresses, phone numbers,
//! usernames and channel ids, and one contact's page (`store::contact_views`).

use sqlx::Postgres;

use crate::store::contact_views::contains_pattern;

/// Contacts whose name, address, phone, username or a channel id holds `text`: one
/// `LIKE` each, so that each uses its pg_trgm index
/// (`migrations/postgres/0005_contact_search.sql`).
fn matching(query: &mut QueryBuilder<'_, Postgres>, text: &str) {
    let pattern = contains_pattern(text);
    let lookups = [
        "SELECT id FROM contacts WHERE LOWER(name) LIKE ",
        " UNION SELECT id FROM contacts WHERE LOWER(email) LIKE ",
        " UNION SELECT id FROM contacts WHERE LOWER(metadata::jsonb ->> 'phone') LIKE ",
        " UNION SELECT id FROM contacts WHERE LOWER(metadata::jsonb ->> 'telegram_username') LIKE ",
        " UNION SELECT contact_id FROM contact_identities WHERE LOWER(external_id) LIKE ",
    ];
    for lookup in lookups {
        query.push(lookup).push_bind(pattern.clone()).push(" ESCAPE '\\'");
    }
}

/// Contacts with this email address (case aside) or this phone number, through the
/// indexes on both.
fn same_address(query: &mut QueryBuilder<'_, Postgres>, email: Option<&str>, phone: Option<&str>) {
    query
        .push("SELECT id FROM contacts WHERE email IS NOT NULL AND LOWER(email) = LOWER(")
        .push_bind(email.map(str::to_owned))
        .push(") UNION SELECT id FROM contacts WHERE metadata::jsonb ? 'phone' AND (metadata::jsonb ->> 'phone') = ")
        .push_bind(phone.map(str::to_owned));
}

crate::store::contact_views::contact_queries!(
    sqlx::Postgres,
    sqlx::PgPool,
    sqlx::PgConnection,
    first = "$1",
    matching = matching,
    same_address = same_address
);
