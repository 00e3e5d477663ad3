//! Conversation search: what a query asks, what it finds, and the highlighted excerpt of
//! each match. Words are found as parts of text, not as whole tokens, so that Thai (no
//! spaces between words) and any other script are searched alike; a word of fewer than
//! three characters narrows a search but cannot start one (the index is of trigrams).

use serde::Serialize;
use switchboard_connector_core::ChannelKind;

use super::ConversationFilter;
use crate::model::{Direction, MessageKind, Priority, Status, Timestamp};

/// The most words one query may hold.
pub const MAX_TERMS: usize = 10;
/// The longest word, in characters.
pub const MAX_TERM: usize = 100;
/// Characters of text shown around a match.
const EXCERPT: usize = 160;

/// A search: its words, lowercased, and the list's filters.
#[derive(Debug, Clone)]
pub struct SearchRequest {
    pub terms: Vec<String>,
    pub filter: ConversationFilter,
    /// Conversations wanted.
    pub limit: u32,
}

/// Why a query cannot be searched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadQuery(pub String);

/// Splits a query into its words: every one must occur in a message (or in the subject)
/// for it to match.
pub fn terms(query: &str) -> Result<Vec<String>, BadQuery> {
    let mut terms: Vec<String> = Vec::new();
    for word in query.split_whitespace() {
        let word = word.to_lowercase();
        if word.chars().count() > MAX_TERM {
            return Err(BadQuery(format!("has a word longer than {MAX_TERM} characters")));
        }
        if !terms.contains(&word) {
            terms.push(word);
        }
    }
    if terms.len() > MAX_TERMS {
        return Err(BadQuery(format!("has more than {MAX_TERMS} words")));
    }
    if !terms.iter().any(|term| indexed(term)) {
        return Err(BadQuery("needs a word of at least 3 characters".into()));
    }
    Ok(terms)
}

/// Whether the index can find the word itself (else it only filters what others found).
pub fn indexed(term: &str) -> bool {
    term.chars().count() >= 3
}

/// SQLite's FTS5 query for the indexed words, each a quoted string (a part of the text).
pub fn fts5_query(terms: &[String]) -> String {
    terms
        .iter()
        .filter(|term| indexed(term))
        .map(|term| format!("\"{}\"", term.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(" AND ")
}

#[derive(Debug, Clone, Serialize)]
pub struct SearchConversation {
    pub id: i64,
    pub reference: String,
    pub subject: Option<String>,
    pub status: Status,
    pub priority: Priority,
    pub team: Option<String>,
    pub inbox: String,
    pub channel: ChannelKind,
    pub contact: SearchContact,
    pub last_activity_at: Timestamp,
}

#[derive(Debug, Clone, Serialize)]
pub struct SearchContact {
    pub id: i64,
    pub name: Option<String>,
}

/// Text around what matched, and where in it each word is: `[start, end)` in characters
/// of `excerpt`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Excerpt {
    pub excerpt: String,
    pub highlights: Vec<[usize; 2]>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SearchMatch {
    pub message_id: i64,
    pub direction: Direction,
    /// `note` for an internal note.
    pub kind: MessageKind,
    pub created_at: Timestamp,
    #[serde(flatten)]
    pub excerpt: Excerpt,
}

#[derive(Debug, Clone, Serialize)]
pub struct SearchResult {
    pub conversation: SearchConversation,
    /// The subject, when it matched.
    pub subject: Option<Excerpt>,
    /// Its newest matching messages, newest first (at most three).
    pub matches: Vec<SearchMatch>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SearchPage {
    /// The conversations with the newest matches first.
    pub results: Vec<SearchResult>,
}

/// The excerpt of `text` around the first place a word occurs, with every occurrence of
/// every word in it marked (case aside). `None` when no word occurs.
pub fn excerpt(text: &str, terms: &[String]) -> Option<Excerpt> {
    let chars: Vec<char> = text.chars().collect();
    let folded: Vec<char> = chars.iter().map(|c| fold(*c)).collect();
    let mut found: Vec<[usize; 2]> = Vec::new();
    for term in terms {
        let term: Vec<char> = term.chars().map(fold).collect();
        if term.is_empty() || term.len() > folded.len() {
            continue;
        }
        for start in 0..=folded.len() - term.len() {
            if folded[start..start + term.len()] == term[..] {
                found.push([start, start + term.len()]);
            }
        }
    }
    if found.is_empty() {
        return None;
    }
    found.sort_unstable();
    // Overlapping marks become one.
    let mut marks: Vec<[usize; 2]> = Vec::new();
    for [start, end] in found {
        match marks.last_mut() {
            Some(last) if start <= last[1] => last[1] = last[1].max(end),
            _ => marks.push([start, end]),
        }
    }
    let first = marks[0][0];
    let from = first.saturating_sub(EXCERPT / 4);
    let to = (from + EXCERPT).min(chars.len());
    let from = to.saturating_sub(EXCERPT).min(from);
    let lead = usize::from(from > 0);
    let mut excerpt: String = if lead == 1 { "…".into() } else { String::new() };
    excerpt.extend(&chars[from..to]);
    if to < chars.len() {
        excerpt.push('…');
    }
    let highlights = marks
        .into_iter()
        .filter(|[start, end]| *start >= from && *end <= to)
        .map(|[start, end]| [start - from + lead, end - from + lead])
        .collect();
    Some(Excerpt { excerpt, highlights })
}

/// One character as matching compares it: lowercase, when that is one character.
fn fold(c: char) -> char {
    let mut lower = c.to_lowercase();
    match (lower.next(), lower.next()) {
        (Some(one), None) => one,
        _ => c,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_needs_one_word_the_index_can_find() {
        assert_eq!(terms("  Rimborso  rimborso ordine ").unwrap(), ["rimborso", "ordine"]);
        assert_eq!(
            terms("ไป ยกเลิก").unwrap(),
            ["ไป", "ยกเลิก"],
            "a short word narrows a longer one"
        );
        assert!(terms("ไป").is_err());
        assert!(terms("").is_err());
        assert!(terms(&"a ".repeat(11)).is_err());
        assert!(terms(&"x".repeat(101)).is_err());
        assert_eq!(
            fts5_query(&terms("say \"hi\" ok order").unwrap()),
            r#""say" AND """hi""" AND "order""#
        );
    }

    #[test]
    fn an_excerpt_marks_every_word_where_it_occurs_in_any_script() {
        let thai = "สวัสดีครับ ผมต้องการยกเลิกคำสั่งซื้อของผม";
        let found = excerpt(thai, &["ยกเลิก".into()]).unwrap();
        let [start, end] = found.highlights[0];
        let marked: String = found.excerpt.chars().skip(start).take(end - start).collect();
        assert_eq!(marked, "ยกเลิก");

        let italian = "Il pacco non è ancora arrivato, perché il corriere è in ritardo";
        let found = excerpt(italian, &["perché".into(), "PACCO".to_lowercase()]).unwrap();
        let marked: Vec<String> = found
            .highlights
            .iter()
            .map(|[s, e]| found.excerpt.chars().skip(*s).take(e - s).collect())
            .collect();
        assert_eq!(marked, ["pacco", "perché"]);
        assert!(excerpt(italian, &["rimborso".into()]).is_none());
    }

    #[test]
    fn a_long_text_is_cut_around_the_first_match_with_the_marks_moved_along() {
        let text = format!("{}needle{}", "a".repeat(500), "b".repeat(500));
        let found = excerpt(&text, &["needle".into()]).unwrap();
        assert!(found.excerpt.starts_with('…') && found.excerpt.ends_with('…'));
        let [start, end] = found.highlights[0];
        let marked: String = found.excerpt.chars().skip(start).take(end - start).collect();
        assert_eq!(marked, "needle");
        assert!(found.excerpt.chars().count() <= EXCERPT + 2);
    }
}
