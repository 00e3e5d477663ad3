//! The conversation model's values, shared by the rules, the store and the API: the
//! closed vocabularies (their names are stored in the database and shown in the API, so
//! renaming one is a migration and an API change), timestamps, and the two calendar
//! values the SLA rules are made of: [`hours`] (business hours) and [`clock`] (one SLA
//! clock's arithmetic).

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub mod clock;
pub mod hours;

macro_rules! vocabulary {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            pub fn parse(text: &str) -> Option<$name> {
                match text { $($text => Some($name::$variant),)+ _ => None }
            }

            /// The accepted names, for error messages.
            pub fn names() -> String {
                $name::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ")
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

vocabulary! {
    /// Where a conversation stands. `pending` waits on the customer; `snoozed` is set
    /// aside by an agent; a customer message on either makes it `open` again.
    Status { Open => "open", Pending => "pending", Snoozed => "snoozed", Resolved => "resolved", Closed => "closed" }
}

impl Status {
    /// A conversation a new customer message can still join.
    pub fn accepts_customer_messages(self) -> bool {
        matches!(self, Status::Open | Status::Pending | Status::Snoozed)
    }
}

vocabulary! {
    /// Orders the queue; declared from least to most urgent so `Ord` sorts by urgency.
    Priority { Low => "low", Normal => "normal", High => "high", Urgent => "urgent" }
}

vocabulary! {
    /// `note` is internal: it never leaves the system.
    Direction { Inbound => "inbound", Outbound => "outbound", Note => "note" }
}

vocabulary! {
    /// What a message is: a customer's `message`, an agent's `reply`, an automated
    /// `status_update`, or an internal `note`.
    MessageKind { Message => "message", Reply => "reply", StatusUpdate => "status_update", Note => "note" }
}

vocabulary! {
    /// Who did something: the customer, an agent, or Switchboard itself.
    ActorKind { Contact => "contact", Agent => "agent", System => "system" }
}

vocabulary! {
    /// What an agent may do. Every role reads and answers conversations; supervisors and
    /// admins get more as later features arrive.
    Role { Agent => "agent", Supervisor => "supervisor", Admin => "admin" }
}

vocabulary! {
    /// Where an outbound message is on its way out.
    DeliveryStatus { Scheduled => "scheduled", InFlight => "in_flight", Sent => "sent", Failed => "failed", Skipped => "skipped" }
}

/// A point in time, Unix milliseconds in storage, RFC 3339 (UTC) on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(pub i64);

/// 9999-12-31T23:59:59.999Z: RFC 3339 has four digits for the year.
const LAST_WRITABLE_MS: i64 = 253_402_300_799_999;

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Clamped, because the formatter fails past year 9999 and serde_json panics on a
        // failing Display: a far-future deadline must not take the response down.
        let millis = u64::try_from(self.0.min(LAST_WRITABLE_MS)).unwrap_or(0);
        let time = std::time::UNIX_EPOCH + std::time::Duration::from_millis(millis);
        serializer.collect_str(&humantime::format_rfc3339_millis(time))
    }
}

/// How customers name a conversation (`#42`): the id, which is what status updates,
/// saved replies and the read models show them.
pub fn reference(conversation_id: i64) -> String {
    format!("#{conversation_id}")
}

/// A duration in Unix-millisecond arithmetic, saturating.
pub fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// A target or a delay as people read it (`1h`, `2days 3h`), to the second: what the
/// API, events, breach summaries and `route explain` show.
pub fn human_duration(ms: i64) -> String {
    humantime::format_duration(Duration::from_secs((ms.max(0) / 1000) as u64)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_serde() {
        for status in Status::ALL {
            assert_eq!(Status::parse(status.as_str()), Some(*status));
            assert_eq!(serde_json::to_value(status).unwrap(), status.as_str());
        }
        assert_eq!(DeliveryStatus::parse("in_flight"), Some(DeliveryStatus::InFlight));
        assert_eq!(Priority::parse("asap"), None);
        assert_eq!(Role::names(), "agent, supervisor, admin");
    }

    #[test]
    fn timestamps_serialize_as_rfc3339_utc() {
        assert_eq!(
            serde_json::to_value(Timestamp(1_614_265_330_123)).unwrap(),
            "2021-02-25T15:02:10.123Z"
        );
    }

    #[test]
    fn times_past_year_9999_are_written_as_its_last_instant() {
        for far in [LAST_WRITABLE_MS + 1, i64::MAX] {
            assert_eq!(
                serde_json::to_value(Timestamp(far)).unwrap(),
                "9999-12-31T23:59:59.999Z"
            );
        }
        assert_eq!(serde_json::to_value(Timestamp(-5)).unwrap(), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn priorities_sort_by_urgency() {
        assert!(
            Priority::Urgent > Priority::High && Priority::High > Priority::Normal && Priority::Normal > Priority::Low
        );
    }
}
