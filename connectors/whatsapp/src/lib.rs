//! # Switchboard's WhatsApp channel (Cloud API)
//!
//! # Layout
//!
//! - [`config`]: the `[inboxes.<key>.whatsapp]` table, its secrets and templates, and
//!   their validation before any I/O.
//! - [`signature`]: `X-Hub-Signature-256` verification and the subscription handshake.
//! - [`normalize`]: a webhook body as the conversation model takes it (pure): messages,
//!   delivery statuses, and what is ignored.
//! - [`graph`]: the Graph API calls (send, upload, fetch a customer's file); failures as
//!   Meta answered them.
//! - [`inbound`]: [`WhatsappHook`], the hook: handshake, verification, files fetched,
//!   everything committed before the 200.
//! - [`outbound`]: [`WhatsappSender`], texts, files, CSAT lists and templates outside the
//!   24-hour window, and the one classifier of send failures.
//! - `pacing`: Meta's throughput and pair rate limits, kept by waiting.

pub mod config;
pub mod graph;
pub mod inbound;
pub mod normalize;
pub mod outbound;
mod pacing;
pub mod signature;

use std::sync::Arc;
use std::time::Duration;

use switchboard_connector_core::MessageSender;
use switchboard_connector_core::{
    Capabilities, Channel, ChannelKind, ChannelSpec, Connector, CsatStyle, Formats, Hook, IdentityScope, KeyError,
    RateLimits, SecretSource,
};

pub use config::{WhatsappConfig, WhatsappSettings};
pub use inbound::WhatsappHook;
pub use normalize::{BodyError, Item, MediaRef, normalize, normalize_value};
pub use outbound::{WhatsappSender, classify};

/// What WhatsApp can do, as the desk asks it.
pub static SPEC: ChannelSpec = ChannelSpec {
    name: "whatsapp",
    capabilities: Capabilities {
        // A wa_id is the customer's phone number, the same in every business's inbox.
        identity: IdentityScope::Global,
        vouches_for_sender: false,
        files_in: true,
        files_out: true,
        threads_by_ids: false,
        structured_updates: false,
        formats: Formats {
            subject: false,
            html: false,
            markdown_v2: false,
        },
        csat: CsatStyle::Buttons,
        updates_need_address: false,
        reply_window: Some(Duration::from_secs(24 * 60 * 60)),
        limits: RateLimits {
            per_inbox_per_second: Some(80),
            per_recipient_interval: Some(Duration::from_secs(6)),
        },
    },
};

/// The WhatsApp channel, as the daemon registers it.
#[derive(Debug, Clone, Copy)]
pub struct Whatsapp;

impl Channel for Whatsapp {
    type Config = WhatsappConfig;
    type Settings = WhatsappSettings;

    const KIND: ChannelKind = ChannelKind::of(&SPEC);

    fn validate(
        config: &WhatsappConfig,
        _inbox_key: &str,
        secrets: &dyn SecretSource,
    ) -> Result<WhatsappSettings, KeyError> {
        config.validate(secrets)
    }

    fn build(settings: &WhatsappSettings, _inbox_key: &str) -> Result<Arc<dyn Connector>, KeyError> {
        Ok(Arc::new(WhatsappConnector::new(settings)?))
    }
}

/// One WhatsApp inbox: a hook for Meta's webhooks and a sender; no reader, since Meta
/// pushes everything.
#[derive(Debug)]
pub struct WhatsappConnector {
    hook: WhatsappHook,
    sender: WhatsappSender,
}

impl WhatsappConnector {
    pub fn new(settings: &WhatsappSettings) -> Result<WhatsappConnector, KeyError> {
        // The hook's file downloads and the sender's calls share one connection pool.
        let graph = graph::Graph::new(settings).map_err(|problem| KeyError::new("api_base", problem))?;
        Ok(WhatsappConnector {
            hook: WhatsappHook::new(Arc::new(settings.clone()), graph.clone()),
            sender: WhatsappSender::new(settings, graph),
        })
    }
}

impl Connector for WhatsappConnector {
    fn kind(&self) -> ChannelKind {
        Whatsapp::KIND
    }

    fn hook(&self) -> Option<&dyn Hook> {
        Some(&self.hook)
    }

    fn sender(&self) -> &dyn MessageSender {
        &self.sender
    }
}
