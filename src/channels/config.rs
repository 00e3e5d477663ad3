//! `[inboxes.KEY]`: the configured channel endpoints, each validated by its connector
//! into the settings the connectors here are built from.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{Deserializer, Error as _, MapAccess, Visitor};
use switchboard_connector_core::SecretSource;

pub use crate::channels::registry::{ChannelConfig, ChannelSettings};
use crate::channels::registry::{ChannelTable, REGISTERED, kind};
use crate::config::error::{ConfigError, check_key};

/// An inbox: what agents see of it, and its channel, named by its one table
/// (`[inboxes.KEY.webhook]`, `[inboxes.KEY.email]`, …).
#[derive(Debug, Clone)]
pub struct InboxConfig {
    /// The name agents see; the key when absent.
    pub name: Option<String>,
    /// Update events this inbox does not send (see `updates.events`).
    pub updates_off: Vec<String>,
    /// The language of updates to contacts whose own language has no template.
    pub language: Option<String>,
    /// The channel; `None` only while reading, refused by validation.
    pub channel: Option<ChannelConfig>,
}

impl<'de> Deserialize<'de> for InboxConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<InboxConfig, D::Error> {
        deserializer.deserialize_map(InboxVisitor)
    }
}

struct InboxVisitor;

/// The keys an inbox table takes: its own, then one per channel.
const TABLES: [&str; 3 + REGISTERED.len()] = {
    let mut tables = [""; 3 + REGISTERED.len()];
    tables[0] = "name";
    tables[1] = "updates_off";
    tables[2] = "language";
    let mut index = 0;
    while index < REGISTERED.len() {
        tables[3 + index] = REGISTERED[index].as_str();
        index += 1;
    }
    tables
};

impl<'de> Visitor<'de> for InboxVisitor {
    type Value = InboxConfig;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an inbox table with `name`, `updates_off`, `language` and one channel table")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<InboxConfig, A::Error> {
        let mut inbox = InboxConfig {
            name: None,
            updates_off: Vec::new(),
            language: None,
            channel: None,
        };
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "name" => inbox.name = map.next_value()?,
                "updates_off" => inbox.updates_off = map.next_value()?,
                "language" => inbox.language = map.next_value()?,
                channel => {
                    if kind(channel).is_none() {
                        return Err(A::Error::unknown_field(channel, &TABLES));
                    }
                    if let Some(first) = &inbox.channel {
                        return Err(A::Error::custom(format!(
                            "an inbox speaks one channel: keep one of [inboxes.KEY.{}] and [inboxes.KEY.{channel}]",
                            first.kind()
                        )));
                    }
                    inbox.channel = Some(map.next_value_seed(ChannelTable(channel))?);
                }
            }
        }
        Ok(inbox)
    }
}

#[derive(Debug, Clone)]
pub struct InboxSettings {
    pub key: String,
    pub name: String,
    pub channel: ChannelSettings,
}

/// `[inboxes.KEY]`, each with exactly one channel table, validated by its connector
/// (reading the secrets it names from `secrets`).
pub fn validate_inboxes(
    inboxes: &BTreeMap<String, InboxConfig>,
    secrets: &dyn SecretSource,
) -> Result<Vec<InboxSettings>, ConfigError> {
    let mut settings = Vec::new();
    for (key, inbox) in inboxes {
        check_key("inboxes", key)?;
        let Some(config) = &inbox.channel else {
            let tables: Vec<String> = REGISTERED.iter().map(|kind| format!("[inboxes.KEY.{kind}]")).collect();
            return Err(ConfigError::new(
                format!("inboxes.{key}"),
                format!("name the channel with a table: {}", tables.join(", ")),
            ));
        };
        let channel = config
            .validate(key, secrets)
            .map_err(|err| ConfigError::new(format!("inboxes.{key}.{}.{}", config.kind(), err.key), err.problem))?;
        let name = inbox
            .name
            .as_deref()
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .unwrap_or(key);
        settings.push(InboxSettings {
            key: key.clone(),
            name: name.to_owned(),
            channel,
        });
    }
    Ok(settings)
}
