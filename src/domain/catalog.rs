//! The configured teams and inboxes, made to exist in the store at every start.

use crate::domain::{DeskError, DeskResult};
use crate::store::{Catalog, InboxRef, InboxSpec, TeamSpec, Tx};

/// Inserts or renames the configured teams and inboxes by key. Those removed from config
/// stay, inactive, because conversations refer to them. An inbox key keeps its channel:
/// its conversations were had on it.
pub fn sync(tx: &mut dyn Tx, teams: &[TeamSpec], inboxes: &[InboxSpec], now: i64) -> DeskResult<Catalog> {
    tx.deactivate_catalog()?;
    for team in teams {
        tx.upsert_team(team, now)?;
    }
    let mut catalog = Catalog::default();
    for inbox in inboxes {
        let (id, channel) = tx.upsert_inbox(inbox, now)?;
        if channel != inbox.channel {
            return Err(DeskError::Conflict(format!(
                "inbox `{}` holds {channel} conversations and cannot become a {} inbox; give the new channel its own key",
                inbox.key, inbox.channel
            )));
        }
        let reference = InboxRef {
            id,
            key: inbox.key.clone(),
            name: inbox.name.clone(),
            channel: inbox.channel,
        };
        catalog.inboxes.insert(inbox.key.clone(), reference);
    }
    Ok(catalog)
}
