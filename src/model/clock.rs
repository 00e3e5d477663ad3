//! SLA clocks, pure: how a clock runs, pauses, stops and fires, given the calendar it is
//! measured in. The store keeps one row per clock and calls these on every change of
//! the conversation; the scheduler fires what falls due.
//!
//! A clock holds the SLA time already used (`elapsed_ms`, measured in its calendar) and,
//! while running, since when it runs. Its deadline is where the calendar says the rest
//! of the target runs out, counted from that moment; its warning likewise for the
//! warning share. Changing the target (a new priority, a new team) keeps the time used
//! and recomputes both; so does pausing and resuming. Warning and breach each fire once
//! per clock (a next-response clock starts afresh with each customer message that
//! follows an agent reply).

use serde::Serialize;

use std::sync::Arc;

use crate::model::hours::BusinessHours;

/// The clocks an SLA policy can run on a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClockKind {
    /// From the conversation's first customer message to the first agent reply.
    FirstResponse,
    /// From a customer message that follows an agent reply to the next agent reply.
    NextResponse,
    /// From the first customer message to resolution.
    Resolution,
    /// The hard cap on how long any conversation stays unresolved (calendar time).
    MaxOpen,
}

impl ClockKind {
    pub const ALL: [ClockKind; 4] = [
        ClockKind::FirstResponse,
        ClockKind::NextResponse,
        ClockKind::Resolution,
        ClockKind::MaxOpen,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ClockKind::FirstResponse => "first_response",
            ClockKind::NextResponse => "next_response",
            ClockKind::Resolution => "resolution",
            ClockKind::MaxOpen => "max_open",
        }
    }

    pub fn parse(text: &str) -> Option<ClockKind> {
        ClockKind::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
}

/// One clock's target as a team measures it.
#[derive(Debug, Clone)]
pub struct ClockTarget {
    pub target_ms: i64,
    pub warn_ms: Option<i64>,
    pub calendar: Arc<BusinessHours>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClockState {
    Running,
    /// Waiting on the customer (status `pending`).
    Paused,
    /// Its goal was reached: the reply sent, the conversation resolved.
    Met,
    /// Ended without its goal (a conversation resolved before any reply).
    Stopped,
}

impl ClockState {
    pub fn as_str(self) -> &'static str {
        match self {
            ClockState::Running => "running",
            ClockState::Paused => "paused",
            ClockState::Met => "met",
            ClockState::Stopped => "stopped",
        }
    }

    pub fn parse(text: &str) -> Option<ClockState> {
        [
            ClockState::Running,
            ClockState::Paused,
            ClockState::Met,
            ClockState::Stopped,
        ]
        .into_iter()
        .find(|state| state.as_str() == text)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlaClock {
    pub kind: ClockKind,
    pub state: ClockState,
    pub target_ms: i64,
    pub warn_ms: Option<i64>,
    /// SLA time used before `running_since`.
    pub elapsed_ms: i64,
    pub running_since: Option<i64>,
    pub started_at: i64,
    pub stopped_at: Option<i64>,
    pub warn_at: Option<i64>,
    pub due_at: Option<i64>,
    pub warned_at: Option<i64>,
    pub breached_at: Option<i64>,
}

/// What firing a clock found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fired {
    pub warning: bool,
    pub breach: bool,
}

impl SlaClock {
    pub fn start(kind: ClockKind, target: &ClockTarget, now: i64) -> SlaClock {
        let mut clock = SlaClock {
            kind,
            state: ClockState::Running,
            target_ms: target.target_ms,
            warn_ms: target.warn_ms,
            elapsed_ms: 0,
            running_since: Some(now),
            started_at: now,
            stopped_at: None,
            warn_at: None,
            due_at: None,
            warned_at: None,
            breached_at: None,
        };
        clock.schedule(&target.calendar);
        clock
    }

    /// The next moment the scheduler must look at this clock. A breached clock has no
    /// warning left to give.
    pub fn next_fire_at(&self) -> Option<i64> {
        let warn = self
            .warn_at
            .filter(|_| self.warned_at.is_none() && self.breached_at.is_none());
        let due = self.due_at.filter(|_| self.breached_at.is_none());
        match (warn, due) {
            (Some(warn), Some(due)) => Some(warn.min(due)),
            (one, other) => one.or(other),
        }
    }

    fn schedule(&mut self, calendar: &BusinessHours) {
        match (self.state, self.running_since) {
            (ClockState::Running, Some(since)) => {
                let elapsed = self.elapsed_ms;
                let at = |used: i64| {
                    // `add` answers i64::MAX past its horizon (years of business time):
                    // such a deadline never comes, so there is none to keep.
                    Some(calendar.add(since, used.saturating_sub(elapsed))).filter(|at| *at != i64::MAX)
                };
                self.warn_at = self.warn_ms.and_then(at);
                self.due_at = at(self.target_ms);
            }
            _ => {
                self.due_at = None;
                self.warn_at = None;
            }
        }
    }

    /// Adds the running segment up to `now` to the time used.
    fn close_segment(&mut self, now: i64, calendar: &BusinessHours) {
        if let Some(since) = self.running_since.take() {
            self.elapsed_ms = self.elapsed_ms.saturating_add(calendar.elapsed(since, now));
        }
    }

    pub fn pause(&mut self, now: i64, calendar: &BusinessHours) {
        if self.state == ClockState::Running {
            self.close_segment(now, calendar);
            self.state = ClockState::Paused;
            self.schedule(calendar);
        }
    }

    /// Runs again from `now`: after a pause, or after a reopen for a clock that ended.
    pub fn resume(&mut self, now: i64, calendar: &BusinessHours) {
        if self.state != ClockState::Running {
            self.state = ClockState::Running;
            self.running_since = Some(now);
            self.stopped_at = None;
            self.schedule(calendar);
        }
    }

    pub fn finish(&mut self, now: i64, calendar: &BusinessHours, met: bool) {
        if matches!(self.state, ClockState::Running | ClockState::Paused) {
            self.close_segment(now, calendar);
            self.state = if met { ClockState::Met } else { ClockState::Stopped };
            self.stopped_at = Some(now);
            self.schedule(calendar);
        }
    }

    /// A new target and calendar (the conversation changed team or priority): the time
    /// used so far, measured in the old calendar, counts against the new target.
    pub fn retarget(&mut self, now: i64, old_calendar: &BusinessHours, target: &ClockTarget) {
        if self.state == ClockState::Running {
            self.close_segment(now, old_calendar);
            self.running_since = Some(now);
        }
        self.target_ms = target.target_ms;
        self.warn_ms = target.warn_ms;
        self.schedule(&target.calendar);
    }

    /// Records a warning or a breach whose time has come, each once. A breach found due
    /// together with its warning (the daemon was down past both, or a new priority cut
    /// the target short) is the breach alone: `warned_at` stays empty, as no warning was
    /// given, and none follows (see [`SlaClock::next_fire_at`]).
    pub fn fire(&mut self, now: i64) -> Fired {
        let mut fired = Fired::default();
        if self.breached_at.is_none() && self.due_at.is_some_and(|at| at <= now) {
            self.breached_at = Some(now);
            fired.breach = true;
        } else if self.breached_at.is_none() && self.warned_at.is_none() && self.warn_at.is_some_and(|at| at <= now) {
            self.warned_at = Some(now);
            fired.warning = true;
        }
        fired
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use super::*;

    const MIN: i64 = 60_000;
    const HOUR: i64 = 60 * MIN;

    fn target(target_ms: i64, calendar: BusinessHours) -> ClockTarget {
        ClockTarget {
            target_ms,
            warn_ms: Some(target_ms * 8 / 10),
            calendar: Arc::new(calendar),
        }
    }

    #[test]
    fn a_clock_fires_its_warning_then_its_breach_once_each() {
        let target = target(HOUR, BusinessHours::always());
        let mut clock = SlaClock::start(ClockKind::FirstResponse, &target, 0);
        assert_eq!((clock.warn_at, clock.due_at), (Some(48 * MIN), Some(HOUR)));
        assert_eq!(clock.next_fire_at(), Some(48 * MIN));
        assert_eq!(clock.fire(47 * MIN), Fired::default());
        assert_eq!(
            clock.fire(48 * MIN),
            Fired {
                warning: true,
                breach: false
            }
        );
        assert_eq!(clock.next_fire_at(), Some(HOUR));
        assert_eq!(
            clock.fire(HOUR),
            Fired {
                warning: false,
                breach: true
            }
        );
        assert_eq!(clock.fire(2 * HOUR), Fired::default());
        assert_eq!(clock.next_fire_at(), None);
    }

    #[test]
    fn a_breach_found_with_its_warning_due_is_the_breach_alone_and_no_warning_follows() {
        let target = target(HOUR, BusinessHours::always());
        let mut clock = SlaClock::start(ClockKind::FirstResponse, &target, 0);
        assert_eq!(
            clock.fire(2 * HOUR),
            Fired {
                warning: false,
                breach: true
            }
        );
        assert_eq!((clock.warned_at, clock.breached_at), (None, Some(2 * HOUR)));
        assert_eq!(clock.next_fire_at(), None);
        assert_eq!(clock.fire(3 * HOUR), Fired::default());
        assert_eq!(clock.warned_at, None);
    }

    #[test]
    fn pausing_keeps_the_time_used_and_moves_the_deadline() {
        let target = target(HOUR, BusinessHours::always());
        let mut clock = SlaClock::start(ClockKind::Resolution, &target, 0);
        clock.pause(20 * MIN, &target.calendar);
        assert_eq!(
            (clock.elapsed_ms, clock.due_at, clock.next_fire_at()),
            (20 * MIN, None, None)
        );
        clock.resume(5 * HOUR, &target.calendar);
        assert_eq!(clock.due_at, Some(5 * HOUR + 40 * MIN));
        clock.finish(5 * HOUR + 10 * MIN, &target.calendar, true);
        assert_eq!(
            (clock.state, clock.elapsed_ms, clock.next_fire_at()),
            (ClockState::Met, 30 * MIN, None)
        );
    }

    #[test]
    fn a_new_target_counts_the_time_already_used() {
        let old = target(4 * HOUR, BusinessHours::always());
        let mut clock = SlaClock::start(ClockKind::FirstResponse, &old, 0);
        let urgent = target(HOUR, BusinessHours::always());
        clock.retarget(30 * MIN, &old.calendar, &urgent);
        assert_eq!(clock.due_at, Some(HOUR));
        // Already past the new target: due at once.
        clock.retarget(2 * HOUR, &urgent.calendar, &target(30 * MIN, BusinessHours::always()));
        assert_eq!(clock.due_at, Some(2 * HOUR));
        assert!(clock.fire(2 * HOUR).breach);
    }

    #[test]
    fn a_deadline_past_the_calendars_horizon_is_none() {
        let week = BTreeMap::from([("mon".to_string(), "09:00-10:00".to_string())]);
        let hourly = BusinessHours::new("UTC", &week, &[]).unwrap();
        // A year of business time at an hour a week: far beyond the calendar's horizon.
        let clock = SlaClock::start(ClockKind::Resolution, &target(366 * 24 * HOUR, hourly), 0);
        assert_eq!((clock.due_at, clock.warn_at, clock.next_fire_at()), (None, None, None));
    }

    #[test]
    fn business_time_skips_the_weekend() {
        let week: BTreeMap<String, String> = ["mon", "tue", "wed", "thu", "fri"]
            .iter()
            .map(|day| (day.to_string(), "09:00-18:00".to_string()))
            .collect();
        let office = BusinessHours::new("UTC", &week, &[]).unwrap();
        // Friday 2026-11-27 17:55 UTC.
        let friday = 1_795_802_100_000;
        let clock = SlaClock::start(ClockKind::FirstResponse, &target(HOUR, office), friday);
        // Monday 2026-11-30 09:55 UTC.
        assert_eq!(clock.due_at, Some(friday + 2 * 86_400_000 + 16 * HOUR));
    }
}
