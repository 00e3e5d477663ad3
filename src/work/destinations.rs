//! What a dispatcher knows of each destination it sends to (an inbox's callback URL,
//! SMTP relay or bot; a subscription's URL): sends in flight, and a circuit breaker.
//!
//! A destination has at most `cap` sends in flight, so a slow one cannot take every slot;
//! a claim may take up to `cap` more for it, waiting to start as slots free, so a finished
//! send's slot is refilled without a round trip to the store.
//! After `failures` consecutive transient failures it is paused: nothing is sent there
//! until the pause ends, then one probe at a time. A delivered probe closes the breaker;
//! a failed probe pauses it again for twice as long, up to [`MAX_PAUSE`]. Failures of
//! sends that were already in flight when the breaker opened do not lengthen the pause.
//! The state is in memory: a restart starts every breaker closed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use switchboard_connector_core::SendError;

use crate::model::millis;
use crate::store::ClaimPlan;

/// The longest a paused destination waits for its next probe.
pub const MAX_PAUSE: Duration = Duration::from_secs(600);

#[derive(Debug)]
pub struct Destinations {
    state: Mutex<HashMap<i64, Destination>>,
    cap: u32,
    failures: u32,
    pause: Duration,
}

#[derive(Debug, Default, Clone, Copy)]
struct Destination {
    in_flight: u32,
    failures: u32,
    pauses: u32,
    paused_until: Option<i64>,
}

/// How a send ended, for the breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendOutcome {
    Delivered,
    /// The destination was down, slow or limiting us.
    Unavailable,
    /// The destination answered, about this message (refused it, no such recipient).
    Answered,
}

impl SendOutcome {
    /// What a connector's answer says of its destination.
    pub fn of<T>(sent: &Result<T, SendError>) -> SendOutcome {
        match sent {
            Ok(_) => SendOutcome::Delivered,
            Err(error) if error.is_transient() => SendOutcome::Unavailable,
            Err(_) => SendOutcome::Answered,
        }
    }
}

/// A send in flight; dropping it (however the send ended, a panic included) frees its
/// destination's slot.
#[derive(Debug)]
pub struct InFlight {
    destinations: Arc<Destinations>,
    key: i64,
    started_at: i64,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut state = self.destinations.lock();
        if let Some(destination) = state.get_mut(&self.key) {
            destination.in_flight = destination.in_flight.saturating_sub(1);
        }
    }
}

/// A destination's state, for `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DestinationView {
    pub key: i64,
    pub in_flight: u32,
    pub consecutive_failures: u32,
    /// Paused (or probing) since the breaker opened; `None` while closed.
    pub paused_until: Option<i64>,
}

impl Destinations {
    pub fn new(cap: u32, failures: u32, pause: Duration) -> Destinations {
        Destinations {
            state: Mutex::new(HashMap::new()),
            cap: cap.max(1),
            failures: failures.max(1),
            pause,
        }
    }

    /// The state survives a panic elsewhere: every update leaves it consistent.
    fn lock(&self) -> MutexGuard<'_, HashMap<i64, Destination>> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn cap(&self) -> u32 {
        self.cap
    }

    /// What the next claim may take for each destination: room for `cap` sends in
    /// flight and `cap` more waiting, less what it has of both (`waiting`: claimed items
    /// not started yet, by destination); one probe when its pause is over; nothing while
    /// it is paused.
    pub fn plan(&self, now: i64, waiting: &HashMap<i64, u32>) -> ClaimPlan {
        let state = self.lock();
        let ahead = self.cap.saturating_mul(2);
        let mut plan = ClaimPlan {
            cap: ahead,
            ..ClaimPlan::default()
        };
        let mut keys: Vec<i64> = state.keys().copied().collect();
        keys.extend(waiting.keys().filter(|key| !state.contains_key(key)));
        for key in keys {
            let destination = state.get(&key).copied().unwrap_or_default();
            let taken = destination.in_flight + waiting.get(&key).copied().unwrap_or(0);
            let room = match destination.paused_until {
                Some(until) if now < until => 0,
                Some(_) => 1u32.saturating_sub(taken),
                None => ahead.saturating_sub(taken),
            };
            if room == 0 {
                plan.held.push(key);
            } else if room < ahead {
                plan.budgets.insert(key, room);
            }
        }
        plan.held.sort_unstable();
        plan
    }

    /// Starts a send to `key` if it has room now: fewer than `cap` in flight, or, its
    /// pause over, no probe in flight. `None` while it is paused or full.
    pub fn try_start(self: &Arc<Self>, key: i64, now: i64) -> Option<InFlight> {
        let mut state = self.lock();
        let destination = state.entry(key).or_default();
        let room = match destination.paused_until {
            Some(until) if now < until => false,
            Some(_) => destination.in_flight == 0,
            None => destination.in_flight < self.cap,
        };
        if !room {
            return None;
        }
        destination.in_flight += 1;
        Some(InFlight {
            destinations: Arc::clone(self),
            key,
            started_at: now,
        })
    }

    /// Until when `key` is paused, if it is at `now`.
    pub fn paused_until(&self, key: i64, now: i64) -> Option<i64> {
        self.lock()
            .get(&key)
            .and_then(|destination| destination.paused_until)
            .filter(|until| now < *until)
    }

    /// The earliest end of a pause after `now`.
    pub fn next_resume(&self, now: i64) -> Option<i64> {
        self.lock()
            .values()
            .filter_map(|destination| destination.paused_until)
            .filter(|until| *until > now)
            .min()
    }

    /// Records how a send ended; returns the end of the pause when this outcome opened
    /// the breaker or lengthened it.
    pub fn finished(&self, send: &InFlight, outcome: SendOutcome, now: i64) -> Option<i64> {
        let mut state = self.lock();
        let destination = state.entry(send.key).or_default();
        match outcome {
            SendOutcome::Delivered => {
                *destination = Destination {
                    in_flight: destination.in_flight,
                    ..Destination::default()
                };
                None
            }
            SendOutcome::Answered => None,
            SendOutcome::Unavailable => match destination.paused_until {
                // A probe failed: twice as long.
                Some(until) if send.started_at >= until => {
                    destination.pauses += 1;
                    let wait = self
                        .pause
                        .checked_mul(1 << destination.pauses.min(16))
                        .unwrap_or(MAX_PAUSE)
                        .min(MAX_PAUSE);
                    let until = now.saturating_add(millis(wait));
                    destination.paused_until = Some(until);
                    Some(until)
                }
                // In flight before the breaker opened: it says nothing new.
                Some(_) => None,
                None => {
                    destination.failures += 1;
                    if destination.failures < self.failures {
                        return None;
                    }
                    let until = now.saturating_add(millis(self.pause.min(MAX_PAUSE)));
                    destination.paused_until = Some(until);
                    Some(until)
                }
            },
        }
    }

    pub fn views(&self) -> Vec<DestinationView> {
        let mut views: Vec<DestinationView> = self
            .lock()
            .iter()
            .map(|(key, destination)| DestinationView {
                key: *key,
                in_flight: destination.in_flight,
                consecutive_failures: destination.failures,
                paused_until: destination.paused_until,
            })
            .collect();
        views.sort_by_key(|view| view.key);
        views
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    const SECOND: i64 = 1000;

    fn nothing_waiting() -> HashMap<i64, u32> {
        HashMap::new()
    }

    #[test]
    fn a_failing_destination_is_paused_then_probed_once_and_a_success_closes_it() {
        let destinations = Arc::new(Destinations::new(8, 3, Duration::from_secs(30)));
        let start = |now| destinations.try_start(1, now).expect("room to send");
        let fail = |now| {
            let send = start(now);
            destinations.finished(&send, SendOutcome::Unavailable, now)
        };
        // Three sends in flight together when the destination goes down.
        let late = start(0);
        assert_eq!(fail(0), None);
        assert_eq!(fail(0), None);
        // A refusal about one message says nothing of the destination.
        let refused = start(0);
        assert_eq!(destinations.finished(&refused, SendOutcome::Answered, 0), None);
        drop(refused);
        assert_eq!(fail(0), Some(30 * SECOND));
        // The one still in flight fails after the breaker opened: the pause stays 30 s.
        assert_eq!(destinations.finished(&late, SendOutcome::Unavailable, 10), None);
        drop(late);
        assert_eq!(destinations.plan(1000, &nothing_waiting()).held, vec![1], "paused");
        assert!(destinations.try_start(1, 1000).is_none(), "nothing starts while paused");
        assert_eq!(destinations.paused_until(1, 1000), Some(30 * SECOND));
        assert_eq!(destinations.next_resume(1000), Some(30 * SECOND));
        // The pause over: room for one probe.
        assert_eq!(
            destinations.plan(30 * SECOND, &nothing_waiting()).budgets,
            BTreeMap::from([(1, 1)])
        );
        let probe = start(30 * SECOND);
        assert!(destinations.try_start(1, 30 * SECOND).is_none(), "one probe at a time");
        assert_eq!(
            destinations.plan(30 * SECOND, &nothing_waiting()).held,
            vec![1],
            "probing"
        );
        assert_eq!(
            destinations.finished(&probe, SendOutcome::Unavailable, 31 * SECOND),
            Some(91 * SECOND),
            "a failed probe: twice as long"
        );
        drop(probe);
        let probe = start(91 * SECOND);
        assert_eq!(destinations.finished(&probe, SendOutcome::Delivered, 92 * SECOND), None);
        drop(probe);
        let plan = destinations.plan(92 * SECOND, &nothing_waiting());
        assert!(plan.held.is_empty() && plan.budgets.is_empty(), "closed again");
        let view = destinations.views()[0];
        assert_eq!(
            (view.in_flight, view.consecutive_failures, view.paused_until),
            (0, 0, None)
        );
    }

    #[test]
    fn a_destination_sends_at_most_its_share_and_claims_one_share_ahead() {
        let destinations = Arc::new(Destinations::new(2, 5, Duration::from_secs(30)));
        let first = destinations.try_start(7, 0).unwrap();
        let second = destinations.try_start(7, 0).unwrap();
        assert!(destinations.try_start(7, 0).is_none(), "two in flight is its share");
        // Two in flight: room to claim two more, to start as these finish.
        assert_eq!(
            destinations.plan(0, &nothing_waiting()).budgets,
            BTreeMap::from([(7, 2)])
        );
        let waiting = HashMap::from([(7, 1), (9, 4)]);
        let plan = destinations.plan(0, &waiting);
        assert_eq!(plan.budgets, BTreeMap::from([(7, 1)]));
        assert_eq!(
            plan.held,
            vec![9],
            "a destination with a full share waiting takes no more"
        );
        // However a send ends, a panic included, its slot comes back.
        drop(first);
        drop(second);
        let plan = destinations.plan(0, &nothing_waiting());
        assert!(plan.held.is_empty() && plan.budgets.is_empty());
        assert_eq!(plan.cap, 4);
    }
}
