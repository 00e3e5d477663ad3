//! The daemon side of the connectors: the sending half of each configured inbox (one
//! closed enum over the connectors), and the readers of the inboxes that pull.
//!
//! - [`config`]: `[inboxes.KEY]`, each inbox's channel validated by its connector.
//! - [`email`]: the reading half of each email inbox (IMAP, cursor after commit).
//! - [`telegram`]: the inbound half of each Telegram inbox (long polling or webhook).

pub mod config;
pub mod email;
pub mod telegram;

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context;
use switchboard_connector_core::{OutboundChannel, OutboundMessage, Receipt, SendError};
use switchboard_connector_email::SmtpSender;
use switchboard_connector_telegram::TelegramSender;
use switchboard_connector_webhook::WebhookSender;

use crate::channels::config::{ChannelSettings, InboxSettings};
use crate::channels::telegram::TelegramInbox;
use crate::store::Catalog;

#[derive(Debug, Clone)]
pub enum ChannelSender {
    Webhook(WebhookSender),
    Email(Box<SmtpSender>),
    Telegram(TelegramSender),
}

impl ChannelSender {
    pub async fn send(&self, message: &OutboundMessage) -> Result<Receipt, SendError> {
        match self {
            ChannelSender::Webhook(sender) => sender.send(message).await,
            ChannelSender::Email(sender) => sender.send(message).await,
            ChannelSender::Telegram(sender) => sender.send(message).await,
        }
    }
}

/// Senders by inbox id, built once at start.
#[derive(Debug, Default)]
pub struct Channels {
    senders: HashMap<i64, ChannelSender>,
}

impl Channels {
    /// `telegram` gives each Telegram inbox's bot: the reader and the sender share one
    /// bot and its connection pool.
    pub fn build(
        inboxes: &[InboxSettings],
        catalog: &Catalog,
        telegram: &HashMap<String, Arc<TelegramInbox>>,
    ) -> anyhow::Result<Channels> {
        // Redirects are not followed: a moved callback is a configuration problem for
        // the operator, not something to chase with a signed body.
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .context("building the HTTP client for callbacks")?;
        let mut senders = HashMap::new();
        for inbox in inboxes {
            let Some(reference) = catalog.inboxes.get(&inbox.key) else {
                continue;
            };
            let sender = match &inbox.channel {
                ChannelSettings::Webhook(settings) => {
                    ChannelSender::Webhook(WebhookSender::new(client.clone(), settings.clone()))
                }
                ChannelSettings::Telegram(channel) => {
                    let Some(runtime) = telegram.get(&inbox.key) else {
                        continue;
                    };
                    ChannelSender::Telegram(TelegramSender::new(runtime.bot.clone(), channel.settings.limits))
                }
                ChannelSettings::Email(settings) => ChannelSender::Email(Box::new(
                    SmtpSender::new(settings).map_err(|err| anyhow::anyhow!("inboxes.{}.email.{err}", inbox.key))?,
                )),
            };
            senders.insert(reference.id, sender);
        }
        Ok(Channels { senders })
    }

    pub fn get(&self, inbox_id: i64) -> Option<&ChannelSender> {
        self.senders.get(&inbox_id)
    }
}
