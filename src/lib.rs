//! # Switchboard
//!
//! An omnichannel message gateway: connectors turn every inbound message into one
//! conversation model, a router queues each conversation for a team, agents answer
//! through one API, and replies leave by the customer's own channel.
//!
//! # Layout
//!
//! - [`domain`]: the desk's rules: routing, teams and SLA policies, business hours,
//!   clocks, status updates.
//! - [`store`]: the [`store::Store`] trait and its SQLite backend. Ingest, agent actions
//!   and outbox bookkeeping are each one transaction there.
//! - [`work`]: the workers: the outbox and event dispatchers, the SLA scheduler.
//! - [`channels`]: the daemon side of the connectors: senders and pull readers.
//! - [`api`]: HTTP: `/hooks/{inbox}`, `/api/v1`, `/healthz`, `/readyz`, `/metrics`.
//! - [`config`]: the TOML file and `SWITCHBOARD__…` overrides, validated into
//!   [`config::Settings`] before any I/O; every error names its key. Each area's sections
//!   and their validation sit in a `config` module beside its code; `config` assembles.
//! - [`model`]: the closed vocabularies (status, priority, direction, role) stored in the
//!   database and shown in the API.
//! - [`server`]: `serve` wiring and graceful shutdown.
//! - [`auth`], [`clock`]: agent tokens, and the time source (and sleep) tests can replace.

pub mod api;
pub mod auth;
pub mod channels;
pub mod clock;
pub mod config;
pub mod domain;
pub mod model;
pub mod query;
pub mod server;
pub mod store;
pub mod work;
