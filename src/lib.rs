//! # Switchboard
//!
//! An omnichannel message gateway: connectors turn every inbound message into one
//! conversation model, a router queues each conversation for a team, agents answer
//! through one API, and replies leave by the customer's own channel.
//!
//! # Layout
//!
//! - [`domain`]: the desk's rules, written once against the store's [`store::Tx`]:
//!   ingest, threading, agents' actions, clocks, queues, escalation, status updates,
//!   typed events and their reactions, access decisions; [`domain::service::Service`]
//!   runs each as one unit of work.
//! - [`store`]: what the rules and workers ask of a database: [`store::Tx`] (small
//!   operations of one unit of work), [`store::Store`] (runs units of work), classified
//!   [`store::StoreError`]s, the SQLite backend and the suite every backend passes.
//! - [`query`]: the read models and [`query::Queries`], the reads each backend answers.
//! - [`work`]: the workers: one dispatcher loop over the outbox's and the event
//!   subscriptions' leased lanes, per-destination limits and breakers, the SLA scheduler.
//! - [`channels`]: the daemon side of the connectors: senders and pull readers.
//! - [`api`]: HTTP: `/hooks/{inbox}`, `/api/v1`, `/healthz`, `/readyz`, `/metrics`.
//! - [`config`]: the TOML file and `SWITCHBOARD__…` overrides, validated into
//!   [`config::Settings`] before any I/O; every error names its key. Each area's sections
//!   and their validation sit in a `config` module beside its code; `config` assembles.
//! - [`model`]: the values every layer shares: the closed vocabularies stored in the
//!   database and shown in the API, timestamps, business hours, one SLA clock.
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
