//! The contact read models' rows, the same on every backend: each backend selects these
//! columns (its own SQL around them) into these tuples, and the views are made here once.

use std::collections::BTreeMap;

use serde_json::Value;

use super::StoreResult;
use super::columns::{json_column, status_of, vocabulary};
use crate::domain::contacts::flags_of;
use crate::model::{Priority, Timestamp};
use crate::query::{ContactConversation, ContactSummary, IdentityView};

/// `contacts ct`.
pub(in crate::store) const CONTACT_COLUMNS: &str = "ct.id, ct.name, ct.email, ct.language, ct.time_zone, ct.metadata,
    ct.updates_opted_out_at, ct.created_at, ct.updated_at, ct.merged_into";
pub(in crate::store) type ContactColumns = (
    i64,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    Option<i64>,
    i64,
    i64,
    Option<i64>,
);

/// `contact_identities ci JOIN inboxes i ON i.id = ci.inbox_id`.
pub(in crate::store) const IDENTITY_COLUMNS: &str =
    "ci.id, ci.contact_id, i.key, ci.channel, ci.external_id, ci.unreachable_reason, ci.created_at";
pub(in crate::store) type IdentityColumns = (i64, i64, String, String, String, Option<String>, i64);

/// `conversations c JOIN inboxes i ON i.id = c.inbox_id LEFT JOIN teams t ON t.id = c.team_id`.
pub(in crate::store) const CONVERSATION_COLUMNS: &str =
    "c.id, i.key, i.kind, c.subject, c.status, c.priority, t.key, c.last_activity_at";
pub(in crate::store) type ConversationColumns =
    (i64, String, String, Option<String>, String, String, Option<String>, i64);

/// A contact with its identities (taken from `identities`, which holds those of many
/// contacts), and whom it was merged into.
pub(in crate::store) fn contact_summary(
    columns: ContactColumns,
    identities: &[IdentityColumns],
) -> StoreResult<(ContactSummary, Option<i64>)> {
    let (id, name, email, language, time_zone, metadata, opted_out_at, created_at, updated_at, merged_into) = columns;
    let attributes: BTreeMap<String, Value> = json_column(&metadata)?;
    let mut own = Vec::new();
    for (identity_id, contact_id, inbox, channel, external_id, unreachable, created_at) in identities {
        if *contact_id != id {
            continue;
        }
        own.push(IdentityView {
            id: *identity_id,
            inbox: inbox.clone(),
            channel: vocabulary(crate::channels::kind, channel)?,
            external_id: external_id.clone(),
            unreachable: unreachable.clone(),
            created_at: Timestamp(*created_at),
        });
    }
    let summary = ContactSummary {
        id,
        name,
        email,
        language,
        time_zone,
        flags: flags_of(&attributes),
        attributes: serde_json::to_value(attributes).unwrap_or(Value::Null),
        identities: own,
        updates_stopped_at: opted_out_at.map(Timestamp),
        created_at: Timestamp(created_at),
        updated_at: Timestamp(updated_at),
    };
    Ok((summary, merged_into))
}

pub(in crate::store) fn contact_conversation(columns: ConversationColumns) -> StoreResult<ContactConversation> {
    let (id, inbox, channel, subject, status, priority, team, last_activity_at) = columns;
    Ok(ContactConversation {
        id,
        reference: format!("#{id}"),
        inbox,
        channel: vocabulary(crate::channels::kind, &channel)?,
        subject,
        status: status_of(&status)?,
        priority: vocabulary(Priority::parse, &priority)?,
        team,
        last_activity_at: Timestamp(last_activity_at),
    })
}

/// `%text%` for `LIKE … ESCAPE '\'`, the text's own wildcards taken literally.
pub(in crate::store) fn contains_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for character in text.chars() {
        if matches!(character, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(character);
    }
    pattern.push('%');
    pattern
}

/// The contact queries of one backend: the same statements with its placeholders, and
/// its own ways to find the ids of contacts whose name, address, phone, username or
/// channel id holds a text (`matching`) and of those with an email address or phone
/// number (`same_address`), each through its indexes. A macro because sqlx's query builders, generic over the database, need
/// bounds per bound value longer than the queries themselves.
macro_rules! contact_queries {
    (
        $db:ty,
        $pool:ty,
        $conn:ty,
        first = $first:literal,
        matching = $matching:path,
        same_address = $same_address:path
    ) => {
        use sqlx::QueryBuilder;

        use super::conversations::{Scope, push_scope, scope_of};
        use crate::query::*;
        use crate::store::contact_views::*;
        use crate::store::{StoreError, StoreResult};

        /// Only contacts with a conversation the scope may see.
        fn push_visible(query: &mut QueryBuilder<'_, $db>, scope: &Scope) {
            if let Scope::Of { .. } = scope {
                query.push(" AND EXISTS (SELECT 1 FROM conversations c WHERE c.contact_id = ct.id");
                push_scope(query, scope);
                query.push(")");
            }
        }

        async fn identities_of(conn: &mut $conn, contacts: &[i64]) -> StoreResult<Vec<IdentityColumns>> {
            if contacts.is_empty() {
                return Ok(Vec::new());
            }
            let mut query = QueryBuilder::<$db>::new(format!(
                "SELECT {IDENTITY_COLUMNS} FROM contact_identities ci JOIN inboxes i ON i.id = ci.inbox_id
                 WHERE ci.contact_id IN ("
            ));
            let mut ids = query.separated(", ");
            for id in contacts {
                ids.push_bind(*id);
            }
            query.push(") ORDER BY ci.id");
            Ok(query.build_query_as().fetch_all(&mut *conn).await?)
        }

        pub async fn contacts(
            pool: &$pool,
            search: &ContactSearch,
            after: Option<i64>,
            limit: u32,
        ) -> StoreResult<ContactPage> {
            let mut conn = pool.acquire().await?;
            let scope = scope_of(&mut conn, &search.visible_to).await?;
            let mut query = QueryBuilder::<$db>::new(format!(
                "SELECT {CONTACT_COLUMNS} FROM contacts ct WHERE ct.merged_into IS NULL AND ct.erased_at IS NULL"
            ));
            if let Some(after) = after {
                query.push(" AND ct.id < ").push_bind(after);
            }
            if let Some(text) = &search.text {
                // A username is written with its `@` as often as without.
                let text = text.trim_start_matches('@');
                query.push(" AND ct.id IN (");
                $matching(&mut query, text);
                query.push(")");
            }
            push_visible(&mut query, &scope);
            query
                .push(" ORDER BY ct.id DESC LIMIT ")
                .push_bind(i64::from(limit) + 1);
            let mut rows: Vec<ContactColumns> = query.build_query_as().fetch_all(&mut *conn).await?;
            let more = rows.len() > limit as usize;
            rows.truncate(limit as usize);
            let ids: Vec<i64> = rows.iter().map(|row| row.0).collect();
            let identities = identities_of(&mut conn, &ids).await?;
            let mut contacts = Vec::with_capacity(rows.len());
            for row in rows {
                contacts.push(contact_summary(row, &identities)?.0);
            }
            let next_cursor = more
                .then(|| contacts.last().map(|contact| contact.id.to_string()))
                .flatten();
            Ok(ContactPage {
                contacts,
                next_cursor,
            })
        }

        pub async fn contact(pool: &$pool, id: i64, visible_to: &Visibility) -> StoreResult<ContactDetail> {
            let mut conn = pool.acquire().await?;
            let scope = scope_of(&mut conn, visible_to).await?;
            let row: ContactColumns = sqlx::query_as(&format!(
                "SELECT {CONTACT_COLUMNS} FROM contacts ct WHERE ct.id = {}",
                $first
            ))
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?
            .ok_or(StoreError::NotFound("contact"))?;
            let mut query = QueryBuilder::<$db>::new(format!(
                "SELECT {CONVERSATION_COLUMNS} FROM conversations c JOIN inboxes i ON i.id = c.inbox_id
                 LEFT JOIN teams t ON t.id = c.team_id WHERE c.contact_id = "
            ));
            query.push_bind(id);
            push_scope(&mut query, &scope);
            query.push(" ORDER BY c.last_activity_at DESC, c.id DESC LIMIT 200");
            let conversations: Vec<ConversationColumns> = query.build_query_as().fetch_all(&mut *conn).await?;
            // An agent learns nothing of a person whose conversations are all other teams';
            // a merged contact they see where it went when they may see that one.
            if matches!(scope, Scope::Of { .. }) && conversations.is_empty() {
                let Some(into) = row.9 else {
                    return Err(StoreError::NotFound("contact"));
                };
                let mut query = QueryBuilder::<$db>::new("SELECT c.id FROM conversations c WHERE c.contact_id = ");
                query.push_bind(into);
                push_scope(&mut query, &scope);
                query.push(" LIMIT 1");
                let visible: Option<i64> = query.build_query_scalar().fetch_optional(&mut *conn).await?;
                if visible.is_none() {
                    return Err(StoreError::NotFound("contact"));
                }
            }
            let identities = identities_of(&mut conn, &[id]).await?;
            let (contact, merged_into) = contact_summary(row, &identities)?;
            let phone = contact.attributes.get("phone").map(|phone| match phone {
                serde_json::Value::String(text) => text.clone(),
                other => other.to_string(),
            });
            let mut possible_duplicates = Vec::new();
            if merged_into.is_none() && (contact.email.is_some() || phone.is_some()) {
                let mut query = QueryBuilder::<$db>::new(
                    "SELECT ct.id FROM contacts ct WHERE ct.merged_into IS NULL AND ct.erased_at IS NULL AND ct.id <> ",
                );
                query.push_bind(id).push(" AND ct.id IN (");
                $same_address(&mut query, contact.email.as_deref(), phone.as_deref());
                query.push(")");
                push_visible(&mut query, &scope);
                query.push(" ORDER BY ct.id LIMIT 20");
                possible_duplicates = query.build_query_scalar().fetch_all(&mut *conn).await?;
            }
            let mut listed = Vec::with_capacity(conversations.len());
            for conversation in conversations {
                listed.push(contact_conversation(conversation)?);
            }
            Ok(ContactDetail {
                contact,
                conversations: listed,
                possible_duplicates,
                merged_into,
            })
        }
    };
}
pub(in crate::store) use contact_queries;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_searched_wildcard_is_taken_literally() {
        assert_eq!(contains_pattern("ada"), "%ada%");
        assert_eq!(contains_pattern("100%_a\\b"), "%100\\%\\_a\\\\b%");
    }
}
