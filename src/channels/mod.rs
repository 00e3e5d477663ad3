//! The daemon side of the connectors: the registry of channels, each inbox's connector
//! built from its settings, and what the daemon hands every connector (an ingest sink
//! bound to its inbox and a cursor store).
//!
//! - [`registry`]: the channels this daemon speaks, one line each.
//! - [`config`]: `[inboxes.KEY]`, each inbox's channel validated by its connector.
//! - [`sink`]: the [`IngestSink`](switchboard_connector_core::IngestSink) and
//!   [`CursorStore`](switchboard_connector_core::CursorStore) of one inbox.

pub mod config;
pub mod registry;
pub mod sink;

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context;
use switchboard_connector_core::Connector;

use crate::channels::config::InboxSettings;
pub use crate::channels::registry::kind;
use crate::store::{Catalog, InboxRef};

/// One configured inbox at run time: what the store calls it and its connector.
pub struct Inbox {
    pub reference: InboxRef,
    pub settings: InboxSettings,
    pub connector: Arc<dyn Connector>,
}

/// Every configured inbox's connector, by key and by id, built once at start.
#[derive(Default)]
pub struct Channels {
    by_key: HashMap<String, Arc<Inbox>>,
    by_id: HashMap<i64, Arc<Inbox>>,
}

impl Channels {
    pub fn build(inboxes: &[InboxSettings], catalog: &Catalog) -> anyhow::Result<Channels> {
        let mut channels = Channels::default();
        for settings in inboxes {
            let Some(reference) = catalog.inboxes.get(&settings.key) else {
                continue;
            };
            let connector = settings
                .channel
                .build(&settings.key)
                .map_err(|err| anyhow::anyhow!("inboxes.{}.{}.{err}", settings.key, settings.channel.kind()))
                .context("building the inbox's connector")?;
            let inbox = Arc::new(Inbox {
                reference: reference.clone(),
                settings: settings.clone(),
                connector,
            });
            channels.by_id.insert(reference.id, Arc::clone(&inbox));
            channels.by_key.insert(settings.key.clone(), inbox);
        }
        Ok(channels)
    }

    pub fn get(&self, inbox_id: i64) -> Option<&Arc<Inbox>> {
        self.by_id.get(&inbox_id)
    }

    pub fn by_key(&self, key: &str) -> Option<&Arc<Inbox>> {
        self.by_key.get(key)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Inbox>> {
        self.by_id.values()
    }
}
