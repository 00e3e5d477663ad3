//! The channels this daemon speaks: one line each in [`channels!`] below. The line gives
//! the inbox config its `[inboxes.KEY.<name>]` table, the settings enum its arm, and the
//! store and API the channel's name.

use std::sync::Arc;

use serde::de::{DeserializeSeed, Deserializer, Error as _};
use switchboard_connector_core::{Channel, ChannelKind, Connector, KeyError, SecretSource};

macro_rules! channels {
    ($($variant:ident($channel:ty)),+ $(,)?) => {
        /// One inbox's channel table, as written.
        #[derive(Debug, Clone)]
        pub enum ChannelConfig {
            $($variant(Box<<$channel as Channel>::Config>)),+
        }

        /// One inbox's channel, validated.
        #[derive(Debug, Clone)]
        pub enum ChannelSettings {
            $($variant(Box<<$channel as Channel>::Settings>)),+
        }

        /// Every channel this daemon speaks.
        pub const REGISTERED: &[ChannelKind] = &[$(<$channel as Channel>::KIND),+];

        /// The table names, for the error that lists them.
        const NAMES: &[&str] = &[$(<$channel as Channel>::KIND.as_str()),+];

        impl ChannelConfig {
            fn deserialize_named<'de, D: Deserializer<'de>>(name: &str, table: D) -> Result<ChannelConfig, D::Error> {
                $(
                    if name == <$channel as Channel>::KIND.as_str() {
                        let config = serde::Deserialize::deserialize(table)?;
                        return Ok(ChannelConfig::$variant(Box::new(config)));
                    }
                )+
                Err(D::Error::unknown_field(name, NAMES))
            }

            pub fn kind(&self) -> ChannelKind {
                match self {
                    $(ChannelConfig::$variant(_) => <$channel as Channel>::KIND),+
                }
            }

            /// Checks the table and reads the secrets it names; the error's key is
            /// relative to the channel's table.
            pub fn validate(&self, inbox_key: &str, secrets: &dyn SecretSource) -> Result<ChannelSettings, KeyError> {
                match self {
                    $(ChannelConfig::$variant(config) => {
                        <$channel as Channel>::validate(config, inbox_key, secrets)
                            .map(|settings| ChannelSettings::$variant(Box::new(settings)))
                    })+
                }
            }
        }

        impl ChannelSettings {
            pub fn kind(&self) -> ChannelKind {
                match self {
                    $(ChannelSettings::$variant(_) => <$channel as Channel>::KIND),+
                }
            }

            /// The inbox's connector, clients built and nothing connected yet.
            pub fn build(&self, inbox_key: &str) -> Result<Arc<dyn Connector>, KeyError> {
                match self {
                    $(ChannelSettings::$variant(settings) => <$channel as Channel>::build(settings, inbox_key)),+
                }
            }
        }
    };
}

channels! {
    Webhook(switchboard_connector_webhook::Webhook),
    Email(switchboard_connector_email::Email),
    Telegram(switchboard_connector_telegram::Telegram),
    Whatsapp(switchboard_connector_whatsapp::Whatsapp),
}

/// The channel stored or written under `name`.
pub fn kind(name: &str) -> Option<ChannelKind> {
    REGISTERED.iter().copied().find(|kind| kind.as_str() == name)
}

/// The registered channels' names, for an error that lists them: `webhook, email, …`.
pub fn names() -> String {
    NAMES.join(", ")
}

/// Reads the channel table named by its key in the inbox table.
pub struct ChannelTable<'a>(pub &'a str);

impl<'de> DeserializeSeed<'de> for ChannelTable<'_> {
    type Value = ChannelConfig;

    fn deserialize<D: Deserializer<'de>>(self, table: D) -> Result<ChannelConfig, D::Error> {
        ChannelConfig::deserialize_named(self.0, table)
    }
}

/// The shipped channels by name, for tests and benchmarks that need one of each
/// behaviour. The daemon itself asks capabilities, never names.
pub mod known {
    use switchboard_connector_core::{Channel, ChannelKind};

    pub const WEBHOOK: ChannelKind = <switchboard_connector_webhook::Webhook as Channel>::KIND;
    pub const EMAIL: ChannelKind = <switchboard_connector_email::Email as Channel>::KIND;
    pub const TELEGRAM: ChannelKind = <switchboard_connector_telegram::Telegram as Channel>::KIND;
}
