//! Mentions: `@name` in an internal note tells that agent (an `agent.mentioned` event on
//! the conversation, which their stream and console pick up, and a row in their list of
//! unread mentions). Only notes mention: a reply goes to the customer, where `@` is text.

use crate::domain::DeskResult;
use crate::domain::desk::Desk;
use crate::domain::events::{self, Actor, DomainEvent};
use crate::store::{AgentSelector, Tx};

/// The agents `text` mentions, in order of first mention, each once. A mention is `@`
/// at the start or after a character that is not a letter or digit (so an email address
/// mentions nobody), followed by an agent's name (case aside) that ends there: the
/// longest name wins, so `@Ada Lovelace` is Ada Lovelace even when an `Ada` exists.
pub fn mentioned<'a>(text: &str, agents: impl IntoIterator<Item = (i64, &'a str)>) -> Vec<i64> {
    let mut names: Vec<(i64, Vec<char>)> = agents
        .into_iter()
        .map(|(id, name)| (id, name.chars().flat_map(char::to_lowercase).collect()))
        .filter(|(_, name): &(i64, Vec<char>)| !name.is_empty())
        .collect();
    names.sort_by_key(|(_, name)| std::cmp::Reverse(name.len()));
    let lowered: Vec<char> = text.chars().flat_map(char::to_lowercase).collect();
    let mut found = Vec::new();
    for (at, c) in lowered.iter().enumerate() {
        if *c != '@' || (at > 0 && lowered[at - 1].is_alphanumeric()) {
            continue;
        }
        let rest = &lowered[at + 1..];
        let hit = names.iter().find(|(_, name)| {
            rest.starts_with(name) && rest.get(name.len()).is_none_or(|next| !next.is_alphanumeric())
        });
        if let Some((id, _)) = hit
            && !found.contains(id)
        {
            found.push(*id);
        }
    }
    found
}

/// Records that the note `message_id` by `by` mentions `agents` (the author left out):
/// a row each in their unread mentions and an `agent.mentioned` event.
pub fn record(
    tx: &mut dyn Tx,
    desk: &Desk,
    conversation_id: i64,
    message_id: i64,
    by: i64,
    agents: &[i64],
    now: i64,
) -> DeskResult<()> {
    let mut recorded = Vec::new();
    for &agent_id in agents.iter().filter(|agent| **agent != by) {
        let Some(agent) = tx.agent(&AgentSelector::Id(agent_id))? else {
            continue;
        };
        let mention_id = tx.insert_mention(message_id, conversation_id, agent_id, by, now)?;
        recorded.push((
            Actor::agent(by),
            DomainEvent::Mentioned {
                agent_id,
                agent_name: agent.name,
                message_id,
                mention_id,
            },
        ));
    }
    events::record(tx, desk, conversation_id, &recorded, now)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_found_whole_case_aside_the_longest_first_and_once() {
        let agents = [(1, "Ada"), (2, "Ada Lovelace"), (3, "bo"), (4, "Łukasz")];
        assert_eq!(mentioned("@ada can you check?", agents), [1]);
        assert_eq!(
            mentioned("cc @Ada Lovelace, @BO and @ada lovelace again", agents),
            [2, 3]
        );
        assert_eq!(mentioned("(@łukasz) and @bob", agents), [4], "bob is not bo");
        assert!(mentioned("mail ada@example.com or bo@x", agents).is_empty());
        assert!(mentioned("no mention here", agents).is_empty());
        assert_eq!(mentioned("@bo:", agents), [3]);
    }
}
