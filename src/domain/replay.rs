//! `route replay`: what-if routing. Recent conversations' openings (their first inbound
//! message, as [`crate::query::Queries::routed_openings`] reads them) go through the
//! routing of the running config and of a changed one; the report counts what the
//! change moves (team, priority, labels, the first-response deadline) with examples.
//! Pure code: the caller pages the openings in, nothing is stored.
//!
//! Both sides are replayed, rather than the change compared with what was recorded: the
//! contact's attributes are read as they are now, and the running config may differ
//! from the one that routed a conversation months ago, so only the two replays differ by
//! the change alone. Where the running config's replay disagrees with the recorded
//! decision the conversation is counted as `drifted`, for the operator to judge.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::domain::desk::Desk;
use crate::domain::router::{RouteInput, Router};
use crate::model::clock::ClockKind;
use crate::model::{Priority, Timestamp};
use crate::query::{RoutedDecision, RoutedOpening};

/// A config's routing: its rules and its desk (teams, SLA policies, business hours).
#[derive(Debug, Clone, Copy)]
pub struct Routing<'a> {
    pub router: &'a Router,
    pub desk: &'a Desk,
}

/// What a conversation got (or would get).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub team: String,
    /// The rule that chose the team; `null`: the default team.
    pub rule: Option<String>,
    pub priority: Priority,
    pub labels: Vec<String>,
    /// From the opening, by the team's first-response target for the priority, in the
    /// team's business hours (or calendar time, as its policy says); `null`: no target.
    pub first_response_due: Option<Timestamp>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Example {
    pub conversation_id: i64,
    pub opened_at: Timestamp,
    pub before: Outcome,
    pub after: Outcome,
}

/// Conversations moved from one value to another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Move {
    pub from: String,
    pub to: String,
    pub count: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct TeamChanges {
    pub changed: u64,
    /// Most moved first.
    pub moves: Vec<Move>,
    pub examples: Vec<Example>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct PriorityChanges {
    pub changed: u64,
    pub moves: Vec<Move>,
    pub examples: Vec<Example>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct LabelChanges {
    pub changed: u64,
    /// Each label the change would add, with the conversations it would add it to.
    pub added: BTreeMap<String, u64>,
    pub removed: BTreeMap<String, u64>,
    pub examples: Vec<Example>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct DeadlineChanges {
    pub changed: u64,
    /// Due sooner than now, or later.
    pub earlier: u64,
    pub later: u64,
    /// A target where there was none, or none where there was one.
    pub gained: u64,
    pub lost: u64,
    pub examples: Vec<Example>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Drift {
    /// Conversations the running config routes differently from what was recorded when
    /// they were opened (a config changed since, or the contact's attributes did).
    pub count: u64,
    /// `before`: what was recorded; `after`: the running config's replay.
    pub examples: Vec<Example>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReplayReport {
    pub since: Timestamp,
    /// Conversations opened since then and replayed.
    pub replayed: u64,
    /// Opened since then but not replayable: no routing recorded, or erased.
    pub skipped: u64,
    /// Replayed conversations the change moves in any way.
    pub changed: u64,
    pub team: TeamChanges,
    pub priority: PriorityChanges,
    pub labels: LabelChanges,
    pub first_response_due: DeadlineChanges,
    pub drift: Drift,
}

/// The comparison, one opening at a time.
pub struct Replay<'a> {
    before: Routing<'a>,
    after: Routing<'a>,
    examples: usize,
    report: ReplayReport,
    team_moves: BTreeMap<(String, String), u64>,
    priority_moves: BTreeMap<(Priority, Priority), u64>,
}

impl<'a> Replay<'a> {
    /// `before`: the running config; `after`: the changed one; up to `examples` of each
    /// kind of change.
    pub fn new(before: Routing<'a>, after: Routing<'a>, since: i64, examples: usize) -> Replay<'a> {
        Replay {
            before,
            after,
            examples,
            report: ReplayReport {
                since: Timestamp(since),
                replayed: 0,
                skipped: 0,
                changed: 0,
                team: TeamChanges::default(),
                priority: PriorityChanges::default(),
                labels: LabelChanges::default(),
                first_response_due: DeadlineChanges::default(),
                drift: Drift::default(),
            },
            team_moves: BTreeMap::new(),
            priority_moves: BTreeMap::new(),
        }
    }

    pub fn add(&mut self, opening: &RoutedOpening) {
        let (Some(text), Some(recorded)) = (&opening.text, &opening.routed) else {
            self.report.skipped += 1;
            return;
        };
        let input = RouteInput {
            inbox: &opening.inbox,
            channel: opening.channel,
            subject: opening.subject.as_deref(),
            text,
            language: opening.language.as_deref(),
            metadata: &opening.metadata,
        };
        let before = outcome(self.before, &input, opening.opened_at);
        let after = outcome(self.after, &input, opening.opened_at);
        let report = &mut self.report;
        report.replayed += 1;
        let example = |before: &Outcome, after: &Outcome| Example {
            conversation_id: opening.conversation_id,
            opened_at: Timestamp(opening.opened_at),
            before: before.clone(),
            after: after.clone(),
        };
        let limit = self.examples;
        let keep = |examples: &mut Vec<Example>, made: &dyn Fn() -> Example| {
            if examples.len() < limit {
                examples.push(made());
            }
        };

        let was = recorded_outcome(self.before, recorded, opening.opened_at);
        if (&was.team, was.priority, &was.labels) != (&before.team, before.priority, &before.labels) {
            report.drift.count += 1;
            keep(&mut report.drift.examples, &|| example(&was, &before));
        }
        if before == after {
            return;
        }
        report.changed += 1;
        if before.team != after.team {
            report.team.changed += 1;
            *self
                .team_moves
                .entry((before.team.clone(), after.team.clone()))
                .or_default() += 1;
            keep(&mut report.team.examples, &|| example(&before, &after));
        }
        if before.priority != after.priority {
            report.priority.changed += 1;
            *self
                .priority_moves
                .entry((before.priority, after.priority))
                .or_default() += 1;
            keep(&mut report.priority.examples, &|| example(&before, &after));
        }
        let added: Vec<&String> = after.labels.iter().filter(|l| !before.labels.contains(l)).collect();
        let removed: Vec<&String> = before.labels.iter().filter(|l| !after.labels.contains(l)).collect();
        if !added.is_empty() || !removed.is_empty() {
            report.labels.changed += 1;
            for label in added {
                *report.labels.added.entry(label.clone()).or_default() += 1;
            }
            for label in removed {
                *report.labels.removed.entry(label.clone()).or_default() += 1;
            }
            keep(&mut report.labels.examples, &|| example(&before, &after));
        }
        if before.first_response_due != after.first_response_due {
            let due = &mut report.first_response_due;
            due.changed += 1;
            match (before.first_response_due, after.first_response_due) {
                (Some(was), Some(will)) if will < was => due.earlier += 1,
                (Some(_), Some(_)) => due.later += 1,
                (None, _) => due.gained += 1,
                (_, None) => due.lost += 1,
            }
            keep(&mut due.examples, &|| example(&before, &after));
        }
    }

    pub fn finish(self) -> ReplayReport {
        let mut report = self.report;
        report.team.moves = most_first(
            self.team_moves
                .into_iter()
                .map(|((from, to), count)| Move { from, to, count }),
        );
        report.priority.moves = most_first(self.priority_moves.into_iter().map(|((from, to), count)| Move {
            from: from.to_string(),
            to: to.to_string(),
            count,
        }));
        report
    }
}

fn most_first(moves: impl Iterator<Item = Move>) -> Vec<Move> {
    let mut moves: Vec<Move> = moves.collect();
    // Stable: equal counts stay in key order.
    moves.sort_by_key(|moved| std::cmp::Reverse(moved.count));
    moves
}

fn outcome(routing: Routing<'_>, input: &RouteInput<'_>, opened_at: i64) -> Outcome {
    let decision = routing.router.route(input);
    Outcome {
        first_response_due: first_response_due(routing.desk, &decision.team, decision.priority, opened_at),
        team: decision.team,
        rule: decision.rule,
        priority: decision.priority,
        labels: decision.labels,
    }
}

fn recorded_outcome(routing: Routing<'_>, recorded: &RoutedDecision, opened_at: i64) -> Outcome {
    Outcome {
        team: recorded.team.clone(),
        rule: recorded.rule.clone(),
        priority: recorded.priority,
        labels: recorded.labels.clone(),
        first_response_due: first_response_due(routing.desk, &recorded.team, recorded.priority, opened_at),
    }
}

/// When the first response falls due for a conversation opened at `opened_at`, as the
/// SLA clocks compute it (see `route explain`).
fn first_response_due(desk: &Desk, team: &str, priority: Priority, opened_at: i64) -> Option<Timestamp> {
    let target = desk.target(Some(team), ClockKind::FirstResponse, priority)?;
    Some(Timestamp(target.calendar.add(opened_at, target.target_ms)))
}

/// `--since` / `"since"`: a duration back from `now` (`7d`, `36h`) or an RFC 3339 time.
pub fn parse_since(text: &str, now: i64) -> Result<i64, String> {
    if let Ok(duration) = humantime::parse_duration(text.trim()) {
        let back = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        return Ok(now.saturating_sub(back));
    }
    humantime::parse_rfc3339_weak(text.trim())
        .map(|time| {
            time.duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |since| since.as_millis() as i64)
        })
        .map_err(|_| {
            format!("`{text}` is neither a duration such as 7d or 36h nor a time such as 2026-11-27T17:55:00Z")
        })
}

/// The report as people read it in a terminal.
pub fn render_text(report: &ReplayReport) -> String {
    let mut out = String::new();
    let time = |at: Timestamp| {
        serde_json::to_value(at)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
    };
    let _ = writeln!(
        out,
        "replayed {} conversations opened since {} ({} skipped: no routing recorded, or erased)",
        report.replayed,
        time(report.since).unwrap_or_default(),
        report.skipped
    );
    let _ = writeln!(out, "changed: {}", report.changed);
    let _ = writeln!(out, "team: {} would move", report.team.changed);
    for moved in &report.team.moves {
        let _ = writeln!(out, "  {} -> {}: {}", moved.from, moved.to, moved.count);
    }
    let _ = writeln!(out, "priority: {} would change", report.priority.changed);
    for moved in &report.priority.moves {
        let _ = writeln!(out, "  {} -> {}: {}", moved.from, moved.to, moved.count);
    }
    let _ = writeln!(out, "labels: {} would change", report.labels.changed);
    for (label, count) in &report.labels.added {
        let _ = writeln!(out, "  + {label}: {count}");
    }
    for (label, count) in &report.labels.removed {
        let _ = writeln!(out, "  - {label}: {count}");
    }
    let due = &report.first_response_due;
    let _ = writeln!(
        out,
        "first response due: {} would move ({} earlier, {} later, {} gain a target, {} lose theirs)",
        due.changed, due.earlier, due.later, due.gained, due.lost
    );
    let shown = |out: &mut String, title: &str, examples: &[Example]| {
        if examples.is_empty() {
            return;
        }
        let _ = writeln!(out, "examples ({title}):");
        for example in examples {
            let side = |outcome: &Outcome| {
                format!(
                    "{} {} [{}] by {}, due {}",
                    outcome.team,
                    outcome.priority,
                    outcome.labels.join(", "),
                    outcome
                        .rule
                        .as_deref()
                        .map_or("default team".to_owned(), |rule| format!("rule `{rule}`")),
                    outcome
                        .first_response_due
                        .and_then(time)
                        .unwrap_or_else(|| "-".to_owned())
                )
            };
            let _ = writeln!(
                out,
                "  #{}: {} -> {}",
                example.conversation_id,
                side(&example.before),
                side(&example.after)
            );
        }
    };
    shown(&mut out, "team", &report.team.examples);
    shown(&mut out, "priority", &report.priority.examples);
    shown(&mut out, "labels", &report.labels.examples);
    shown(&mut out, "first response due", &due.examples);
    if report.drift.count > 0 {
        let _ = writeln!(
            out,
            "drift: the running config routes {} of them differently from what was recorded \
             (a config or the contact's attributes changed since)",
            report.drift.count
        );
        shown(&mut out, "drift, recorded -> running config", &report.drift.examples);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use switchboard_connector_core::ProcessSecrets;

    use super::*;
    use crate::config::{Settings, from_toml};

    const SHIPPED: &str = include_str!("../../config/switchboard.toml");
    /// Saturday 2026-11-28 10:00 UTC: the office (Berlin, weekdays) is closed.
    const SATURDAY: i64 = 1_795_860_000_000;

    fn settings(text: &str) -> Settings {
        from_toml(text, &ProcessSecrets).unwrap()
    }

    fn routing(settings: &Settings) -> Routing<'_> {
        Routing {
            router: &settings.router,
            desk: &settings.desk,
        }
    }

    fn opening(id: i64, text: &str, team: &str, priority: Priority, labels: &[&str]) -> RoutedOpening {
        RoutedOpening {
            conversation_id: id,
            inbox: "shop".into(),
            channel: crate::channels::registry::known::WEBHOOK,
            subject: None,
            text: Some(text.into()),
            language: Some("en".into()),
            metadata: BTreeMap::new(),
            routed: Some(RoutedDecision {
                rule: None,
                team: team.into(),
                priority,
                labels: labels.iter().map(|label| label.to_string()).collect(),
            }),
            opened_at: SATURDAY,
        }
    }

    fn openings() -> Vec<RoutedOpening> {
        vec![
            opening(1, "I want a refund", "billing", Priority::High, &["billing"]),
            opening(
                2,
                "the shop is down, outage!",
                "technical",
                Priority::Urgent,
                &["outage"],
            ),
            opening(3, "where is my parcel?", "support", Priority::Normal, &[]),
            opening(
                4,
                "refund please, charged twice",
                "billing",
                Priority::High,
                &["billing"],
            ),
        ]
    }

    fn replay(before: &Settings, after: &Settings, openings: &[RoutedOpening], examples: usize) -> ReplayReport {
        let mut replay = Replay::new(routing(before), routing(after), SATURDAY - 1, examples);
        for opening in openings {
            replay.add(opening);
        }
        replay.finish()
    }

    fn ids(examples: &[Example]) -> Vec<i64> {
        examples.iter().map(|example| example.conversation_id).collect()
    }

    #[test]
    fn the_same_config_moves_nothing() {
        let current = settings(SHIPPED);
        let report = replay(&current, &current, &openings(), 5);
        assert_eq!((report.replayed, report.changed, report.drift.count), (4, 0, 0));
        assert!(report.team.moves.is_empty() && report.first_response_due.examples.is_empty());
    }

    #[test]
    fn a_rule_given_another_team_moves_exactly_the_conversations_it_catches() {
        let current = settings(SHIPPED);
        let changed = settings(&SHIPPED.replace(
            r#"then = { team = "billing", priority = "high", labels = ["billing"] }"#,
            r#"then = { team = "support-l2", priority = "high", labels = ["billing"] }"#,
        ));
        let report = replay(&current, &changed, &openings(), 5);
        assert_eq!(report.changed, 2);
        assert_eq!(report.team.changed, 2);
        assert_eq!(ids(&report.team.examples), [1, 4]);
        assert_eq!(
            report.team.moves,
            [Move {
                from: "billing".into(),
                to: "support-l2".into(),
                count: 2
            }]
        );
        let example = &report.team.examples[0];
        assert_eq!(example.before.rule.as_deref(), Some("billing"));
        assert_eq!(example.after.rule.as_deref(), Some("billing"));
        assert_eq!((report.priority.changed, report.labels.changed), (0, 0));
        // Both teams keep office hours under the standard policy: the deadline stays.
        assert_eq!(report.first_response_due.changed, 0);
    }

    #[test]
    fn a_deadline_moves_with_the_team_s_policy_and_hours() {
        let current = settings(SHIPPED);
        // Outages to the office-hours support team: urgent there is 30 business minutes
        // (from Monday 09:00 Berlin) instead of 15 calendar minutes.
        let changed = settings(&SHIPPED.replace(
            r#"then = { team = "technical", priority = "urgent", labels = ["outage"] }"#,
            r#"then = { team = "support", priority = "urgent", labels = ["outage"] }"#,
        ));
        let report = replay(&current, &changed, &openings(), 5);
        assert_eq!(ids(&report.team.examples), [2]);
        let due = &report.first_response_due;
        assert_eq!((due.changed, due.later, due.earlier), (1, 1, 0));
        let example = &due.examples[0];
        assert_eq!(
            example.before.first_response_due,
            Some(Timestamp(SATURDAY + 15 * 60_000))
        );
        // Monday 2026-11-30 09:30 Berlin (UTC+1) = 08:30 UTC.
        let monday = SATURDAY + 2 * 86_400_000 - 90 * 60_000;
        assert_eq!(example.after.first_response_due, Some(Timestamp(monday)));
    }

    #[test]
    fn a_changed_keyword_changes_priority_and_labels_and_counts_them() {
        let current = settings(SHIPPED);
        // "parcel" now a delivery problem: high priority and the `delivery` label.
        let changed = settings(&SHIPPED.replace(r#""never arrived","#, r#""parcel", "never arrived","#));
        let report = replay(&current, &changed, &openings(), 5);
        assert_eq!((report.changed, report.team.changed), (1, 0));
        assert_eq!(ids(&report.priority.examples), [3]);
        assert_eq!(
            report.priority.moves,
            [Move {
                from: "normal".into(),
                to: "high".into(),
                count: 1
            }]
        );
        assert_eq!(report.labels.added, BTreeMap::from([("delivery".to_owned(), 1)]));
        assert!(report.labels.removed.is_empty());
        assert_eq!(report.first_response_due.earlier, 1, "high is due sooner than normal");
    }

    #[test]
    fn examples_are_capped_but_counts_are_not() {
        let current = settings(SHIPPED);
        let changed = settings(&SHIPPED.replace(
            r#"then = { team = "billing", priority = "high", labels = ["billing"] }"#,
            r#"then = { team = "support", priority = "high", labels = ["billing"] }"#,
        ));
        let report = replay(&current, &changed, &openings(), 1);
        assert_eq!((report.team.changed, report.team.examples.len()), (2, 1));
    }

    #[test]
    fn a_recorded_decision_the_running_config_disagrees_with_is_drift_not_change() {
        let current = settings(SHIPPED);
        let mut openings = openings();
        openings[2].routed.as_mut().unwrap().team = "technical".into();
        let report = replay(&current, &current, &openings, 5);
        assert_eq!((report.changed, report.drift.count), (0, 1));
        let example = &report.drift.examples[0];
        assert_eq!(
            (example.before.team.as_str(), example.after.team.as_str()),
            ("technical", "support")
        );
    }

    #[test]
    fn an_erased_or_unrouted_conversation_is_skipped() {
        let current = settings(SHIPPED);
        let mut openings = openings();
        openings[0].text = None;
        openings[1].routed = None;
        let report = replay(&current, &current, &openings, 5);
        assert_eq!((report.replayed, report.skipped), (2, 2));
    }

    #[test]
    fn since_is_a_duration_back_or_a_time() {
        assert_eq!(parse_since("7d", SATURDAY), Ok(SATURDAY - 7 * 86_400_000));
        assert_eq!(parse_since("2026-11-28T10:00:00Z", 0), Ok(SATURDAY));
        assert!(parse_since("last week", SATURDAY).unwrap_err().contains("7d"));
    }

    #[test]
    fn the_text_report_names_the_moves_and_examples() {
        let current = settings(SHIPPED);
        let changed = settings(&SHIPPED.replace(
            r#"then = { team = "billing", priority = "high", labels = ["billing"] }"#,
            r#"then = { team = "support", priority = "high", labels = ["billing"] }"#,
        ));
        let text = render_text(&replay(&current, &changed, &openings(), 5));
        assert!(text.contains("team: 2 would move"), "{text}");
        assert!(text.contains("  billing -> support: 2"), "{text}");
        assert!(text.contains("#4: billing high [billing] by rule `billing`"), "{text}");
    }
}
