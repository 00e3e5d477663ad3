//! The desk's rules: what a support desk decides, apart from how it is stored or served.
//!
//! - [`desk`]: teams as queues (department, tier, assignment, capacity) and SLA policies.
//! - [`router`]: routing rules (all evaluated, combined); [`language`]: detection.
//! - [`updates`]: status updates: events, switches, templates per event and language.
//! - [`explain`]: `route explain`, a sample message through router and desk.

pub mod desk;
pub mod explain;
pub mod language;
pub mod router;
pub mod updates;
