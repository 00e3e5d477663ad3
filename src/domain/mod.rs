//! The desk's rules: what a support desk decides, apart from how it is stored or served.
//! Every rule that changes something runs inside one unit of work on the store's
//! [`Tx`](crate::store::Tx) and either applies whole or not at all.
//!
//! - [`access`]: who may do what, the one place permission decisions are made.
//! - [`agents`]: agents as admins manage them (teams, role, deactivation, tokens), audited.
//! - [`desk`]: teams as queues (department, tier, assignment, capacity) and SLA policies.
//! - [`router`]: routing rules (all evaluated, combined); [`language`]: detection.
//! - [`events`]: the desk's events as typed values, recorded with their reactions.
//! - [`ingest`]: one inbound message: dedupe, contact, thread, route, acknowledge.
//! - [`threading`]: which conversation a message joins.
//! - [`lifecycle`]: agents' replies, notes and changes of status, priority, team, owner.
//! - [`clocks`]: SLA clocks following a conversation's life, firing, breaches.
//! - [`queues`]: assignment: who takes a waiting conversation.
//! - [`escalation`]: moving a conversation to another team with a summary.
//! - [`updates`]: status updates: events, templates, and the rules that send them.
//! - [`deliveries`]: what a send's outcome does; subscriptions' lifecycle.
//! - [`catalog`]: the configured teams and inboxes made to exist.
//! - [`labels`]: the label catalogue rules and agents add from.
//! - [`mentions`]: `@name` in an internal note telling that agent.
//! - [`contacts`]: agents' edits of a contact, and two contacts merged into one.
//! - [`privacy`]: a contact's export and erasure, and the retention policy.
//! - [`saved_replies`]: team and personal replies by shortcut, a body per language,
//!   placeholders filled for a conversation.
//! - [`service`]: the operations above, each one unit of work, as callers use them.
//! - [`explain`]: `route explain`, a sample message through router and desk.
//! - [`replay`]: `route replay`, recent conversations through the running and a changed
//!   config, compared.

pub mod access;
pub mod agents;
pub mod catalog;
pub mod clocks;
pub mod contacts;
pub mod deliveries;
pub mod desk;
pub mod escalation;
pub mod events;
pub mod explain;
pub mod ingest;
pub mod labels;
pub mod language;
pub mod lifecycle;
pub mod mentions;
pub mod people;
pub mod privacy;
pub mod queues;
pub mod replay;
pub mod router;
pub mod saved_replies;
pub mod service;
pub mod threading;
pub mod updates;

use crate::store::StoreError;

pub type DeskResult<T> = Result<T, DeskError>;

/// Why the desk did not do what it was asked. Everything but [`DeskError::Store`] is the
/// caller's to change; a store failure changed nothing and may pass.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DeskError {
    /// The thing named does not exist.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A value refers to something that does not exist or is not allowed.
    #[error("`{field}` {problem}")]
    Invalid { field: &'static str, problem: String },
    /// The request conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// The access layer says this caller may not.
    #[error("{0}")]
    Forbidden(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}
