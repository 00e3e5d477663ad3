//! Conversation search, one set of statements for every backend: each finds the newest
//! matching messages and subjects its own way (SQLite through its trigram index,
//! PostgreSQL by `ILIKE` over pg_trgm's), under the list's filters and the caller's
//! visibility; the matches are grouped into conversations and excerpted here once.

use std::collections::HashMap;

use super::StoreResult;
use super::columns::{status_of, vocabulary};
use crate::model::{Direction, MessageKind, Priority, Timestamp};
use crate::query::search::*;

/// A matching message: id, conversation, direction, kind, text, created at.
pub(in crate::store) type MessageHit = (i64, i64, String, String, String, i64);
/// A matching subject: conversation, subject, last activity.
pub(in crate::store) type SubjectHit = (i64, String, i64);
/// `conversations c` with its inbox, team and contact.
pub(in crate::store) const CONVERSATION_COLUMNS: &str =
    "c.id, c.subject, c.status, c.priority, t.key, i.key, i.kind, ct.id, ct.name, c.last_activity_at";
pub(in crate::store) const CONVERSATION_JOINS: &str = " FROM conversations c JOIN inboxes i ON i.id = c.inbox_id
    LEFT JOIN teams t ON t.id = c.team_id JOIN contacts ct ON ct.id = c.contact_id";
pub(in crate::store) type ConversationRow = (
    i64,
    Option<String>,
    String,
    String,
    Option<String>,
    String,
    String,
    i64,
    Option<String>,
    i64,
);

/// How many matches to read for `limit` conversations: a conversation may match many
/// times, so more than one a conversation, within bounds.
pub(in crate::store) fn hits_wanted(limit: u32) -> i64 {
    (i64::from(limit) * 10).clamp(50, 1_000)
}

/// A conversation to show: its id, its subject's excerpt when that matched, and its
/// newest matching messages.
pub(in crate::store) type Chosen = (i64, Option<Excerpt>, Vec<SearchMatch>);

/// The conversations to show, newest match first, with their newest three matching
/// messages and whether their subject matched.
pub(in crate::store) fn choose(
    terms: &[String],
    messages: Vec<MessageHit>,
    subjects: Vec<SubjectHit>,
    limit: u32,
) -> StoreResult<Vec<Chosen>> {
    let mut when: HashMap<i64, i64> = HashMap::new();
    let mut matches: HashMap<i64, Vec<SearchMatch>> = HashMap::new();
    for (id, conversation, direction, kind, text, created_at) in messages {
        let entry = when.entry(conversation).or_insert(created_at);
        *entry = (*entry).max(created_at);
        let found = matches.entry(conversation).or_default();
        // The index found the words where excerpting may not (a case it folds and we do
        // not): such a match still counts, without marks.
        if found.len() < 3 {
            let excerpt = excerpt(&text, terms).unwrap_or_else(|| Excerpt {
                excerpt: text.chars().take(160).collect(),
                highlights: Vec::new(),
            });
            found.push(SearchMatch {
                message_id: id,
                direction: vocabulary(Direction::parse, &direction)?,
                kind: vocabulary(MessageKind::parse, &kind)?,
                created_at: Timestamp(created_at),
                excerpt,
            });
        }
    }
    let mut subject_of: HashMap<i64, Excerpt> = HashMap::new();
    for (conversation, subject, last_activity_at) in subjects {
        let entry = when.entry(conversation).or_insert(last_activity_at);
        *entry = (*entry).max(last_activity_at);
        if let Some(excerpt) = excerpt(&subject, terms) {
            subject_of.insert(conversation, excerpt);
        }
    }
    let mut order: Vec<(i64, i64)> = when.into_iter().map(|(id, at)| (at, id)).collect();
    order.sort_unstable_by(|a, b| b.cmp(a));
    order.truncate(limit as usize);
    Ok(order
        .into_iter()
        .map(|(_, id)| {
            let mut found = matches.remove(&id).unwrap_or_default();
            found.sort_by_key(|found| std::cmp::Reverse(found.message_id));
            (id, subject_of.remove(&id), found)
        })
        .collect())
}

pub(in crate::store) fn conversation_of(row: ConversationRow) -> StoreResult<SearchConversation> {
    let (id, subject, status, priority, team, inbox, channel, contact_id, contact_name, last_activity_at) = row;
    Ok(SearchConversation {
        id,
        reference: format!("#{id}"),
        subject,
        status: status_of(&status)?,
        priority: vocabulary(Priority::parse, &priority)?,
        team,
        inbox,
        channel: vocabulary(crate::channels::kind, &channel)?,
        contact: SearchContact {
            id: contact_id,
            name: contact_name,
        },
        last_activity_at: Timestamp(last_activity_at),
    })
}

/// The search of one backend. `messages` and `subjects` are the `FROM … WHERE` of each
/// search up to its first condition; `indexed_match` says whether that condition is an
/// index match of the indexed words (then it is bound first, and only shorter words are
/// `like`d), else every word is; `*_order` orders the newest first.
macro_rules! search_query {
    (
        $db:ty,
        $pool:ty,
        messages = $messages:literal,
        message_order = $message_order:literal,
        subjects = $subjects:literal,
        subject_order = $subject_order:literal,
        indexed_match = $indexed:expr,
        text_like = $text_like:literal,
        subject_like = $subject_like:literal
    ) => {
        use sqlx::QueryBuilder;

        use super::conversations::push_filter;
        use crate::query::search::*;
        use crate::store::StoreResult;
        use crate::store::contact_views::contains_pattern;
        use crate::store::search_views::*;

        /// The words each match must hold: the index found the indexed ones already.
        fn push_words(query: &mut QueryBuilder<'_, $db>, terms: &[String], like: &str) {
            for term in terms {
                if $indexed && indexed(term) {
                    continue;
                }
                query
                    .push(format!(" AND {like} "))
                    .push_bind(contains_pattern(term))
                    .push(" ESCAPE '\\'");
            }
        }

        pub async fn search(pool: &$pool, request: &SearchRequest) -> StoreResult<SearchPage> {
            let mut conn = pool.acquire().await?;
            let hits = hits_wanted(request.limit);
            let mut query = QueryBuilder::<$db>::new(concat!(
                "SELECT m.id, m.conversation_id, m.direction, m.kind, m.text, m.created_at ",
                $messages
            ));
            if $indexed {
                query.push_bind(fts5_query(&request.terms));
            }
            push_words(&mut query, &request.terms, $text_like);
            push_filter(&mut conn, &mut query, &request.filter).await?;
            query.push($message_order).push(" LIMIT ").push_bind(hits);
            let messages: Vec<MessageHit> = query.build_query_as().fetch_all(&mut *conn).await?;

            let mut query = QueryBuilder::<$db>::new(concat!("SELECT c.id, c.subject, c.last_activity_at ", $subjects));
            if $indexed {
                query.push_bind(fts5_query(&request.terms));
            }
            push_words(&mut query, &request.terms, $subject_like);
            push_filter(&mut conn, &mut query, &request.filter).await?;
            query.push($subject_order).push(" LIMIT ").push_bind(hits);
            let subjects: Vec<SubjectHit> = query.build_query_as().fetch_all(&mut *conn).await?;

            let chosen = choose(&request.terms, messages, subjects, request.limit)?;
            if chosen.is_empty() {
                return Ok(SearchPage { results: Vec::new() });
            }
            let mut query = QueryBuilder::<$db>::new(format!("SELECT {CONVERSATION_COLUMNS}{CONVERSATION_JOINS}"));
            query.push(" WHERE c.id IN (");
            let mut ids = query.separated(", ");
            for (id, _, _) in &chosen {
                ids.push_bind(*id);
            }
            query.push(")");
            let rows: Vec<ConversationRow> = query.build_query_as().fetch_all(&mut *conn).await?;
            let mut rows: std::collections::HashMap<i64, ConversationRow> =
                rows.into_iter().map(|row| (row.0, row)).collect();
            let mut results = Vec::with_capacity(chosen.len());
            for (id, subject, matches) in chosen {
                if let Some(row) = rows.remove(&id) {
                    results.push(SearchResult {
                        conversation: conversation_of(row)?,
                        subject,
                        matches,
                    });
                }
            }
            Ok(SearchPage { results })
        }
    };
}
pub(in crate::store) use search_query;
