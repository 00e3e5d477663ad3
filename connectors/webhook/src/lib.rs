//! # The generic webhook channel
//!
//! A business's own app talks to Switchboard in signed JSON:
//!
//! - `config`: the inbox's settings (`secret`, `callback_url`, limits) and their
//!   validation before any I/O.
//! - `signature`: Standard Webhooks signing and verification, used both ways.
//! - `inbound`: a request body turned into an `InboundMessage`, in pure code.
//! - `outbound`: replies and status updates POSTed to `callback_url`, and the classifier
//!   that tells a retriable failure from a permanent one.
//!
//! The HTTP listener belongs to the daemon: it reads the body, asks this crate to verify
//! and parse it, ingests it, and only then answers the sender.

pub mod channel;
pub mod config;
pub mod inbound;
pub mod outbound;
pub mod signature;

pub use channel::Webhook;
pub use config::{KeyError, WebhookConfig, WebhookSettings};
pub use inbound::{BodyError, BodyLimits, parse_body, parse_body_with};
pub use outbound::WebhookSender;
pub use signature::{Secret, SignedHeaders, Verified, VerifyError, check_headers, verify};
