//! `[inboxes.KEY]`: the configured channel endpoints, each validated by its connector
//! into the settings the senders and readers here are built from.

use std::collections::BTreeMap;

use serde::Deserialize;
use switchboard_connector_core::{ChannelKind, SecretSource};
use switchboard_connector_email::{EmailConfig, EmailSettings};
use switchboard_connector_telegram::{TelegramConfig, TelegramSettings};
use switchboard_connector_webhook::{WebhookConfig, WebhookSettings};

use crate::config::error::{ConfigError, check_key};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboxConfig {
    /// The name agents see; the key when absent.
    pub name: Option<String>,
    /// Update events this inbox does not send (see `updates.events`).
    #[serde(default)]
    pub updates_off: Vec<String>,
    /// The language of updates to contacts whose own language has no template.
    pub language: Option<String>,
    /// The channel: exactly one of these tables. `[inboxes.KEY.webhook]`: signed HTTP
    /// in, a callback out.
    pub webhook: Option<WebhookConfig>,
    /// `[inboxes.KEY.email]`: IMAP in, SMTP out.
    pub email: Option<EmailConfig>,
    /// `[inboxes.KEY.telegram]`: a bot, by long polling or webhook.
    pub telegram: Option<TelegramConfig>,
}

#[derive(Debug, Clone)]
pub struct InboxSettings {
    pub key: String,
    pub name: String,
    pub channel: ChannelSettings,
}

#[derive(Debug, Clone)]
pub enum ChannelSettings {
    Webhook(WebhookSettings),
    Email(Box<EmailSettings>),
    Telegram(Box<TelegramChannel>),
}

/// A Telegram inbox's settings.
#[derive(Debug, Clone)]
pub struct TelegramChannel {
    pub settings: TelegramSettings,
}

impl ChannelSettings {
    pub fn kind(&self) -> ChannelKind {
        match self {
            ChannelSettings::Webhook(_) => ChannelKind::Webhook,
            ChannelSettings::Email(_) => ChannelKind::Email,
            ChannelSettings::Telegram(_) => ChannelKind::Telegram,
        }
    }
}

/// `[inboxes.KEY]`, each with exactly one channel table, validated by its connector (the
/// email and Telegram ones read the secrets they name from `secrets`).
pub fn validate_inboxes(
    inboxes: &BTreeMap<String, InboxConfig>,
    secrets: &dyn SecretSource,
) -> Result<Vec<InboxSettings>, ConfigError> {
    let mut settings = Vec::new();
    for (key, inbox) in inboxes {
        check_key("inboxes", key)?;
        let at = |table: &str, field: &str| format!("inboxes.{key}.{table}.{field}");
        let channel = match (&inbox.webhook, &inbox.email, &inbox.telegram) {
            (Some(webhook), None, None) => ChannelSettings::Webhook(
                webhook
                    .validate()
                    .map_err(|err| ConfigError::new(at("webhook", &err.key), err.problem))?,
            ),
            (None, Some(email), None) => ChannelSettings::Email(Box::new(
                email
                    .validate(secrets)
                    .map_err(|err| ConfigError::new(at("email", &err.key), err.problem))?,
            )),
            (None, None, Some(telegram)) => {
                let settings = telegram
                    .validate(key, secrets)
                    .map_err(|err| ConfigError::new(at("telegram", &err.key), err.problem))?;
                if settings.greeting.is_some() {
                    return Err(ConfigError::new(
                        at("telegram", "greeting"),
                        "moved: write it as [updates.templates.greeting.LANGUAGE] text = \"…\"",
                    ));
                }
                ChannelSettings::Telegram(Box::new(TelegramChannel { settings }))
            }
            (None, None, None) => {
                return Err(ConfigError::new(
                    format!("inboxes.{key}"),
                    "name the channel with a table: [inboxes.KEY.webhook], [inboxes.KEY.email] or [inboxes.KEY.telegram]",
                ));
            }
            _ => {
                return Err(ConfigError::new(
                    format!("inboxes.{key}"),
                    "an inbox speaks one channel: keep one of [inboxes.KEY.webhook], [inboxes.KEY.email], [inboxes.KEY.telegram]",
                ));
            }
        };
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
