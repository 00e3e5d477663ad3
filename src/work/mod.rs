//! The workers: one dispatcher loop ([`dispatch`]) driving two lanes of leased work, the
//! outbox's messages ([`outbox`]) and the subscriptions' events ([`events`]), with the
//! per-destination limits and breakers they share ([`destinations`]); and the SLA
//! scheduler ([`scheduler`]). Their `[outbox]` and `[subscriptions]` sections are in
//! [`config`].

pub mod config;
pub mod destinations;
pub mod dispatch;
pub mod events;
pub mod leases;
pub mod outbox;
pub mod scheduler;
