//! # Switchboard
//!
//! An omnichannel message gateway: connectors turn every inbound message into one
//! conversation model, a router queues each conversation for a team, agents answer
//! through one API, and replies leave by the customer's own channel.
//!
//! # Layout
//!
//! - [`config`]: the TOML file and `SWITCHBOARD__…` overrides, validated into
//!   [`config::Settings`] before any I/O; every error names its key.
//! - [`model`]: the closed vocabularies (status, priority, direction, role) stored in the
//!   database and shown in the API.
//! - [`store`]: the [`store::Store`] trait and its SQLite backend. Ingest, agent actions
//!   and outbox bookkeeping are each one transaction there.
//! - [`router`]: routing rules (all evaluated, combined) and their explanation, pure, run
//!   by the store inside ingest; [`language`] detects a message's language before it.
//! - [`desk`]: teams as queues (department, tier, assignment, capacity) and SLA policies;
//!   [`hours`]: business hours; [`sla`]: one SLA clock; [`scheduler`]: the task that fires
//!   them; [`explain`]: `route explain`.
//! - [`templates`]: the automated acknowledgement's template.
//! - [`outbox`]: the dispatcher that sends queued messages and retries with backoff.
//! - [`channels`]: the sending half of each configured inbox.
//! - [`email`]: the reading half of each email inbox (IMAP, cursor after commit).
//! - [`telegram`]: the inbound half of each Telegram inbox (long polling or webhook).
//! - [`api`]: HTTP: `/hooks/{inbox}`, `/api/v1`, `/healthz`, `/readyz`.
//! - [`server`]: `serve` wiring and graceful shutdown.
//! - [`auth`], [`clock`]: agent tokens, and the time source (and sleep) tests can replace.

pub mod api;
pub mod auth;
pub mod channels;
pub mod clock;
pub mod config;
pub mod desk;
pub mod destinations;
pub mod email;
pub mod explain;
pub mod hours;
pub mod language;
pub mod model;
pub mod outbox;
pub mod router;
pub mod scheduler;
pub mod server;
pub mod sla;
pub mod store;
pub mod subscriptions;
pub mod telegram;
pub mod updates;
