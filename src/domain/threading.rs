//! Which conversation an inbound message joins. Only ever one of the sender's own:
//! another contact's conversation is never joined, whatever key or header points at it.

use switchboard_connector_core::ThreadHints;

use crate::domain::DeskResult;
use crate::model::millis;
use crate::store::{ConversationLookup, ConversationRef, Tx};

/// The conversation a new message of this contact joins, if any.
///
/// With a thread key: the contact's conversation with that key unless it is closed
/// (a resolved one reopens: the customer continues that thread). Without: the contact's
/// most recently active unresolved conversation in this inbox that has no thread key.
pub fn by_key(
    tx: &mut dyn Tx,
    inbox_id: i64,
    contact_id: i64,
    thread: Option<&str>,
) -> DeskResult<Option<ConversationRef>> {
    let lookup = match thread {
        Some(key) => ConversationLookup::ThreadKey {
            contact_id,
            inbox_id,
            key,
        },
        None => ConversationLookup::OpenUnthreaded { contact_id, inbox_id },
    };
    Ok(tx.find_conversation(lookup)?)
}

/// Conversation `id` if it belongs to this contact in this inbox and is not closed.
pub fn own(tx: &mut dyn Tx, id: i64, inbox_id: i64, contact_id: i64) -> DeskResult<Option<ConversationRef>> {
    Ok(tx.find_conversation(ConversationLookup::Own {
        id,
        contact_id,
        inbox_id,
    })?)
}

/// What the hints say, once the conversations they name are looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HintsVerdict {
    Join(ConversationRef),
    /// An answer that changed the topic: a new conversation.
    New,
    /// Nothing named decides: look for a recent one on the same topic.
    ByTopic,
}

/// Threading by a channel's hints (email), in order of strength:
///
/// 1. the message answers one of ours or an earlier message of the conversation, and
///    stays on its topic (or quotes its tag);
/// 2. the `[#N]` tag, whatever the message answers (Outlook rewrites In-Reply-To);
/// 3. an answer that changed the topic opens a new conversation;
/// 4. otherwise a recent open conversation on the same topic.
///
/// `answered` and `tagged` are the sender's own conversations the hints named.
pub fn judge_hints(
    topic: Option<&str>,
    answered: Option<ConversationRef>,
    tagged: Option<ConversationRef>,
) -> HintsVerdict {
    // An added word or a dropped `[EXTERNAL]` marker is the same topic; a subject that
    // shares nothing with the conversation's is a new one.
    let same_topic = |candidate: &ConversationRef| match (topic, candidate.topic.as_deref()) {
        (Some(new), Some(old)) if !new.is_empty() && !old.is_empty() => new.contains(old) || old.contains(new),
        _ => true,
    };
    if let Some(candidate) = &answered
        && (same_topic(candidate) || tagged.as_ref().is_some_and(|tag| tag.id == candidate.id))
    {
        return HintsVerdict::Join(candidate.clone());
    }
    if let Some(candidate) = tagged {
        return HintsVerdict::Join(candidate);
    }
    if answered.is_some() {
        return HintsVerdict::New;
    }
    HintsVerdict::ByTopic
}

/// [`judge_hints`] with the lookups it needs.
pub fn by_hints(
    tx: &mut dyn Tx,
    inbox_id: i64,
    contact_id: i64,
    hints: &ThreadHints,
    now: i64,
) -> DeskResult<Option<ConversationRef>> {
    let answered = answered(tx, inbox_id, contact_id, hints)?;
    let tagged = match hints.reference {
        Some(id) => own(tx, id, inbox_id, contact_id)?,
        None => None,
    };
    match judge_hints(hints.topic.as_deref(), answered, tagged) {
        HintsVerdict::Join(conversation) => Ok(Some(conversation)),
        HintsVerdict::New => Ok(None),
        HintsVerdict::ByTopic => {
            let Some(topic) = hints.topic.as_deref().filter(|topic| !topic.is_empty()) else {
                return Ok(None);
            };
            Ok(tx.find_conversation(ConversationLookup::RecentTopic {
                contact_id,
                inbox_id,
                topic,
                since: now.saturating_sub(millis(hints.topic_window)),
            })?)
        }
    }
}

/// The sender's own conversation that the message answers by our ids or an earlier
/// message's channel id, nearest first, whatever its topic.
pub fn answered(
    tx: &mut dyn Tx,
    inbox_id: i64,
    contact_id: i64,
    hints: &ThreadHints,
) -> DeskResult<Option<ConversationRef>> {
    for &id in &hints.conversations {
        if let Some(found) = own(tx, id, inbox_id, contact_id)? {
            return Ok(Some(found));
        }
    }
    for external_id in &hints.answers {
        let Some(message) = tx.message_by_external_id(inbox_id, external_id)? else {
            continue;
        };
        if let Some(found) = own(tx, message.conversation_id, inbox_id, contact_id)? {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Status;

    fn on(id: i64, topic: &str) -> ConversationRef {
        ConversationRef {
            id,
            status: Status::Open,
            topic: Some(topic.into()),
        }
    }

    #[test]
    fn an_answer_on_the_same_topic_joins_its_conversation() {
        let verdict = judge_hints(Some("invoice 42 wrong"), Some(on(7, "invoice 42")), None);
        assert_eq!(verdict, HintsVerdict::Join(on(7, "invoice 42")));
    }

    #[test]
    fn an_answer_that_changed_the_topic_opens_a_new_conversation_unless_it_quotes_the_tag() {
        assert_eq!(
            judge_hints(Some("new order"), Some(on(7, "invoice 42")), None),
            HintsVerdict::New
        );
        assert_eq!(
            judge_hints(Some("new order"), Some(on(7, "invoice 42")), Some(on(7, "invoice 42"))),
            HintsVerdict::Join(on(7, "invoice 42"))
        );
    }

    #[test]
    fn the_tag_wins_over_an_answer_to_another_conversation() {
        assert_eq!(
            judge_hints(Some("new order"), Some(on(7, "invoice 42")), Some(on(9, "refund"))),
            HintsVerdict::Join(on(9, "refund"))
        );
    }

    #[test]
    fn with_nothing_named_the_topic_decides() {
        assert_eq!(judge_hints(Some("invoice"), None, None), HintsVerdict::ByTopic);
    }
}
