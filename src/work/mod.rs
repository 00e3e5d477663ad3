//! The workers: the outbox dispatcher, the event dispatcher, the SLA scheduler, and the
//! per-destination limits the dispatchers share.

pub mod destinations;
pub mod events;
pub mod outbox;
pub mod scheduler;
