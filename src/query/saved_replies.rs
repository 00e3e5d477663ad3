//! Saved replies as agents list them: theirs and their teams', found by shortcut or
//! title. A desk keeps tens to hundreds of them, so a backend reads the caller's whole
//! set and the match and its order are decided here, once for every backend.

use std::collections::BTreeMap;

use serde::Serialize;

use super::AgentRef;
use crate::model::Timestamp;

/// Which teams' saved replies a caller sees (decided by
/// [`crate::domain::access::saved_replies_seen`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TeamsSeen {
    All,
    Only(Vec<String>),
}

impl TeamsSeen {
    pub fn includes(&self, team: &str) -> bool {
        match self {
            TeamsSeen::All => true,
            TeamsSeen::Only(teams) => teams.iter().any(|own| own == team),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SavedReplyScope {
    /// The agent's own: nobody else sees it.
    Personal,
    /// A team's: its members use it, supervisors and admins manage it.
    Team,
}

#[derive(Debug, Clone, Serialize)]
pub struct SavedReplyView {
    pub id: i64,
    pub scope: SavedReplyScope,
    /// The team of a team reply.
    pub team: Option<String>,
    /// The agent a personal reply belongs to.
    pub owner_id: Option<i64>,
    pub shortcut: String,
    pub title: String,
    /// Language tag → text with placeholders.
    pub bodies: BTreeMap<String, String>,
    /// The language used when neither the contact's nor the desk's has a body.
    pub fallback: String,
    pub created_by: AgentRef,
    pub created_at: Timestamp,
    pub updated_by: AgentRef,
    pub updated_at: Timestamp,
}

/// The replies that match `text` (case aside), best first: a shortcut that starts with
/// it, then one that holds it, then a title that holds it; by shortcut within each,
/// personal before team. No text: all of them by shortcut.
pub fn matching(replies: Vec<SavedReplyView>, text: Option<&str>) -> Vec<SavedReplyView> {
    let text = text.map(|text| text.trim().trim_start_matches('/').to_lowercase());
    let mut ranked: Vec<(u8, SavedReplyView)> = replies
        .into_iter()
        .filter_map(|reply| {
            let rank = match text.as_deref() {
                None | Some("") => 0,
                Some(text) if reply.shortcut.starts_with(text) => 0,
                Some(text) if reply.shortcut.contains(text) => 1,
                Some(text) if reply.title.to_lowercase().contains(text) => 2,
                Some(_) => return None,
            };
            Some((rank, reply))
        })
        .collect();
    ranked.sort_by(|(rank_a, a), (rank_b, b)| {
        (rank_a, &a.shortcut, a.scope == SavedReplyScope::Team, a.id).cmp(&(
            rank_b,
            &b.shortcut,
            b.scope == SavedReplyScope::Team,
            b.id,
        ))
    });
    ranked.into_iter().map(|(_, reply)| reply).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(id: i64, scope: SavedReplyScope, shortcut: &str, title: &str) -> SavedReplyView {
        let agent = AgentRef {
            id: 1,
            name: "ada".into(),
        };
        SavedReplyView {
            id,
            scope,
            team: None,
            owner_id: None,
            shortcut: shortcut.into(),
            title: title.into(),
            bodies: BTreeMap::new(),
            fallback: "en".into(),
            created_by: agent.clone(),
            created_at: Timestamp(0),
            updated_by: agent,
            updated_at: Timestamp(0),
        }
    }

    #[test]
    fn a_shortcuts_start_ranks_before_its_middle_and_a_title() {
        use SavedReplyScope::*;
        let replies = vec![
            view(1, Team, "late-refund", "Refund after 30 days"),
            view(2, Team, "refund", "Refund steps"),
            view(3, Personal, "refund", "My refund"),
            view(4, Personal, "thanks", "Thank you (refunded)"),
            view(5, Personal, "hello", "Greeting"),
        ];
        let found: Vec<i64> = matching(replies.clone(), Some("/REF"))
            .iter()
            .map(|reply| reply.id)
            .collect();
        assert_eq!(found, [3, 2, 1, 4]);
        let all: Vec<i64> = matching(replies, None).iter().map(|reply| reply.id).collect();
        assert_eq!(all, [5, 1, 3, 2, 4]);
    }
}
