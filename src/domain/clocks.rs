//! SLA clocks following a conversation's life, and firing the ones that fell due, each
//! in the unit of work of the change that moved them. What a clock does with a change
//! ([`plan`]) is decided on plain values; [`update`] loads and saves around it.

use std::collections::HashSet;
use std::sync::Arc;

use crate::domain::desk::Desk;
use crate::domain::escalation;
use crate::domain::events::{self, Actor, BreachTaken, DomainEvent, SlaFacts};
use crate::domain::{DeskError, DeskResult};
use crate::model::clock::{ClockKind, ClockState, SlaClock};
use crate::model::hours::BusinessHours;
use crate::model::human_duration;
use crate::model::{Priority, Status};
use crate::store::{Conversation, ConversationPatch, Tx};

/// Labels a conversation that outlived `sla.max_open`.
pub const OVERDUE_LABEL: &str = "overdue";

/// A change in a conversation's life that moves its clocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClockChange {
    Created,
    /// A customer message; `reopened` when it made the conversation open again.
    CustomerMessage {
        reopened: bool,
    },
    AgentReply,
    Status {
        from: Status,
        to: Status,
    },
    /// New team or priority: targets and calendars change.
    Retarget {
        old_team: Option<String>,
        old_priority: Priority,
    },
}

/// What a clock plan needs of its conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClockSubject<'a> {
    pub team: Option<&'a str>,
    pub priority: Priority,
    pub status: Status,
    pub answered: bool,
}

impl<'a> ClockSubject<'a> {
    pub fn of(conversation: &'a Conversation) -> ClockSubject<'a> {
        ClockSubject {
            team: conversation.team_key.as_deref(),
            priority: conversation.priority,
            status: conversation.status,
            answered: conversation.first_response_at.is_some(),
        }
    }
}

/// The conversation as the rules need it; `NotFound` when there is none.
pub fn state(tx: &mut dyn Tx, id: i64) -> DeskResult<Conversation> {
    tx.conversation(id)?.ok_or(DeskError::NotFound("conversation"))
}

/// Whether `change` can move any clock without reading them: a customer adding to an
/// unanswered conversation moves none.
pub fn reads_clocks(change: &ClockChange, subject: &ClockSubject<'_>) -> bool {
    match change {
        ClockChange::Created => false,
        ClockChange::CustomerMessage { reopened } => *reopened || subject.answered,
        _ => true,
    }
}

/// The clocks `change` starts or moves, given the conversation's current ones; pure.
pub fn plan(
    desk: &Desk,
    subject: &ClockSubject<'_>,
    clocks: &[SlaClock],
    change: &ClockChange,
    now: i64,
) -> Vec<SlaClock> {
    let (team, priority) = (subject.team, subject.priority);
    let mut changed: Vec<SlaClock> = Vec::new();
    match change {
        ClockChange::Created => {
            for kind in [ClockKind::FirstResponse, ClockKind::Resolution, ClockKind::MaxOpen] {
                if let Some(target) = desk.target(team, kind, priority) {
                    changed.push(SlaClock::start(kind, &target, now));
                }
            }
        }
        ClockChange::CustomerMessage { reopened } => {
            if *reopened {
                for clock in clocks {
                    if reopen_resumes(desk, subject, clock) {
                        let mut clock = clock.clone();
                        clock.resume(now, &calendar_of(desk, team, clock.kind, priority));
                        changed.push(clock);
                    }
                }
            }
            let waiting = clocks.iter().any(|c| {
                c.kind == ClockKind::NextResponse && matches!(c.state, ClockState::Running | ClockState::Paused)
            });
            if subject.answered
                && !waiting
                && let Some(target) = desk.target(team, ClockKind::NextResponse, priority)
            {
                changed.push(SlaClock::start(ClockKind::NextResponse, &target, now));
            }
        }
        ClockChange::AgentReply => {
            for clock in clocks {
                if matches!(clock.kind, ClockKind::FirstResponse | ClockKind::NextResponse)
                    && matches!(clock.state, ClockState::Running | ClockState::Paused)
                {
                    let mut clock = clock.clone();
                    clock.finish(now, &calendar_of(desk, team, clock.kind, priority), true);
                    changed.push(clock);
                }
            }
        }
        ClockChange::Status { from, to } => {
            let ends = matches!(to, Status::Resolved | Status::Closed);
            let was_ended = matches!(from, Status::Resolved | Status::Closed);
            for before in clocks {
                let mut clock = before.clone();
                let calendar = calendar_of(desk, team, clock.kind, priority);
                if ends {
                    // Resolving meets the resolution target and the cap; a response
                    // never given stays unmet.
                    let met = matches!(clock.kind, ClockKind::Resolution | ClockKind::MaxOpen);
                    clock.finish(now, &calendar, met);
                } else {
                    if was_ended && reopen_resumes(desk, subject, &clock) {
                        clock.resume(now, &calendar);
                    }
                    // The cap counts every day the conversation stays unresolved.
                    if *to == Status::Pending && clock.kind != ClockKind::MaxOpen {
                        clock.pause(now, &calendar);
                    } else if clock.state == ClockState::Paused {
                        clock.resume(now, &calendar);
                    }
                }
                if clock != *before {
                    changed.push(clock);
                }
            }
        }
        ClockChange::Retarget { old_team, old_priority } => {
            for clock in clocks {
                let mut clock = clock.clone();
                let old_calendar = calendar_of(desk, old_team.as_deref(), clock.kind, *old_priority);
                match desk.target(team, clock.kind, priority) {
                    Some(target) => clock.retarget(now, &old_calendar, &target),
                    // The new team sets no such target: the clock ends unmet.
                    None => clock.finish(now, &old_calendar, false),
                }
                changed.push(clock);
            }
            // Clocks the old team had no target for but the new one has.
            let open = !matches!(subject.status, Status::Resolved | Status::Closed);
            for kind in [ClockKind::FirstResponse, ClockKind::Resolution] {
                let wanted = open && (kind != ClockKind::FirstResponse || !subject.answered);
                if wanted
                    && !clocks.iter().any(|clock| clock.kind == kind)
                    && let Some(target) = desk.target(team, kind, priority)
                {
                    let mut clock = SlaClock::start(kind, &target, now);
                    if subject.status == Status::Pending {
                        clock.pause(now, &target.calendar);
                    }
                    changed.push(clock);
                }
            }
        }
    }
    changed
}

/// Moves the conversation's clocks for `change`; returns the earliest moment the
/// scheduler must now look at them, so it can be woken when that is sooner than it
/// planned.
pub fn update(
    tx: &mut dyn Tx,
    desk: &Desk,
    conversation: &Conversation,
    change: ClockChange,
    now: i64,
) -> DeskResult<Option<i64>> {
    let subject = ClockSubject::of(conversation);
    let clocks = if reads_clocks(&change, &subject) {
        tx.clocks(conversation.id)?
    } else if matches!(change, ClockChange::CustomerMessage { .. }) {
        // The common case, a customer adding to an unanswered conversation: nothing
        // moves, and no clock is read.
        return Ok(None);
    } else {
        Vec::new()
    };
    let changed = plan(desk, &subject, &clocks, &change, now);
    let mut earliest: Option<i64> = None;
    for clock in &changed {
        tx.save_clock(conversation.id, clock)?;
        if let Some(at) = clock.next_fire_at() {
            earliest = Some(earliest.map_or(at, |e| e.min(at)));
        }
    }
    Ok(earliest)
}

/// The calendar a clock of this conversation is measured in.
fn calendar_of(desk: &Desk, team: Option<&str>, kind: ClockKind, priority: Priority) -> Arc<BusinessHours> {
    desk.target(team, kind, priority)
        .map(|target| target.calendar)
        .unwrap_or_else(|| Arc::new(BusinessHours::always()))
}

/// Which ended clocks a reopened conversation runs again: resolution and the cap keep
/// counting where they stopped; a first response never given is still owed. A clock
/// whose team no longer sets its target (it moved to one without) stays ended.
fn reopen_resumes(desk: &Desk, subject: &ClockSubject<'_>, clock: &SlaClock) -> bool {
    let resumes = match clock.kind {
        ClockKind::Resolution | ClockKind::MaxOpen => clock.state != ClockState::Running,
        ClockKind::FirstResponse => {
            !subject.answered && matches!(clock.state, ClockState::Stopped | ClockState::Paused)
        }
        ClockKind::NextResponse => clock.state == ClockState::Paused,
    };
    resumes && desk.target(subject.team, clock.kind, subject.priority).is_some()
}

/// Moves the clocks to the team and priority the conversation has now, from those it had
/// in `before`.
pub fn retarget(tx: &mut dyn Tx, desk: &Desk, before: &Conversation, now: i64) -> DeskResult<()> {
    let after = state(tx, before.id)?;
    let change = ClockChange::Retarget {
        old_team: before.team_key.clone(),
        old_priority: before.priority,
    };
    update(tx, desk, &after, change, now).map(|_| ())
}

/// What one pass of the SLA scheduler did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FireOutcome {
    /// Clocks looked at (due by the time given).
    pub clocks: u32,
    pub warnings: u32,
    pub breaches: u32,
    /// Follow-ups of conversations waiting on the customer (reminders, automatic closes).
    pub follow_ups: u32,
}

/// Fires up to `limit` clocks and up to `limit` follow-ups due by `now`, each in this
/// unit of work with what its breach does, so a breach acts exactly once even if the
/// daemon stops right after.
pub fn fire_due(tx: &mut dyn Tx, desk: &Desk, now: i64, limit: u32) -> DeskResult<FireOutcome> {
    let due = tx.due_clocks(now, limit)?;
    let mut outcome = FireOutcome {
        clocks: due.len() as u32,
        follow_ups: crate::domain::updates::send::fire_follow_ups(tx, desk, now, limit)?,
        ..FireOutcome::default()
    };
    // Two clocks of one conversation found breached together (after the daemon was
    // down) are one lapse to the customer: one escalation, not a jump of two tiers.
    let mut escalated = HashSet::new();
    for (conversation_id, kind) in due {
        let Some(mut clock) = tx.clocks(conversation_id)?.into_iter().find(|clock| clock.kind == kind) else {
            continue;
        };
        let conversation = state(tx, conversation_id)?;
        let fired = clock.fire(now);
        tx.save_clock(conversation_id, &clock)?;
        let team = conversation.team_key.as_deref();
        let facts = SlaFacts {
            clock: kind,
            team: conversation.team_key.clone(),
            tier: conversation.tier,
            priority: conversation.priority,
            target: human_duration(clock.target_ms),
            calendar_time: calendar_of(desk, team, kind, conversation.priority).is_always(),
            due_at: clock.due_at,
        };
        if fired.warning {
            outcome.warnings += 1;
            events::insert(
                tx,
                conversation_id,
                &[(Actor::SYSTEM, DomainEvent::SlaWarning(facts.clone()))],
                now,
            )?;
        }
        if fired.breach {
            outcome.breaches += 1;
            let may_escalate = !escalated.contains(&conversation_id);
            if breach(tx, desk, &conversation, &clock, facts, may_escalate, now)? {
                escalated.insert(conversation_id);
            }
        }
    }
    Ok(outcome)
}

/// Records a breach and does what the policy says; returns whether it escalated.
fn breach(
    tx: &mut dyn Tx,
    desk: &Desk,
    conversation: &Conversation,
    clock: &SlaClock,
    facts: SlaFacts,
    may_escalate: bool,
    now: i64,
) -> DeskResult<bool> {
    let team = conversation.team_key.as_deref();
    let actions = desk.breach_actions(team, clock.kind);
    if conversation.sla_breached_at.is_none() {
        let breached = ConversationPatch {
            sla_breached_at: Some(now),
            ..ConversationPatch::default()
        };
        tx.update_conversation(conversation.id, &breached)?;
    }
    let notified = if actions.notify {
        Some(tx.supervisors(conversation.team_id)?)
    } else {
        None
    };
    let escalate_to = if actions.escalate && may_escalate {
        actions
            .escalate_to
            .clone()
            .or_else(|| {
                team.and_then(|team| desk.team(team))
                    .and_then(|team| team.next_tier.clone())
            })
            .filter(|target| Some(target.as_str()) != team)
    } else {
        None
    };
    let taken = BreachTaken {
        notified,
        escalate_to: escalate_to.clone(),
        raise_priority: actions.raise_priority,
        label: (clock.kind == ClockKind::MaxOpen).then_some(OVERDUE_LABEL),
    };
    events::insert(
        tx,
        conversation.id,
        &[(Actor::SYSTEM, DomainEvent::SlaBreached(facts, taken))],
        now,
    )?;
    if clock.kind == ClockKind::MaxOpen && !conversation.labels.iter().any(|l| l == OVERDUE_LABEL) {
        let mut labels = conversation.labels.clone();
        labels.push(OVERDUE_LABEL.to_owned());
        let labelled = ConversationPatch {
            labels: Some(labels),
            ..ConversationPatch::default()
        };
        tx.update_conversation(conversation.id, &labelled)?;
    }
    if actions.raise_priority && conversation.priority < Priority::Urgent {
        let raised = Priority::ALL[(conversation.priority as usize + 1).min(Priority::ALL.len() - 1)];
        set_priority(tx, desk, conversation, raised, None, now)?;
    }
    let Some(target) = escalate_to else {
        return Ok(false);
    };
    // Raising the priority may have changed it since `conversation` was read.
    let current = state(tx, conversation.id)?;
    let summary = breach_summary(tx, &current, clock, now)?;
    let reason = format!("sla_breach:{}", clock.kind.as_str());
    escalation::move_to_team(tx, desk, &current, &target, &summary, Some(&reason), None, now)?;
    Ok(true)
}

/// What the receiving team reads first when the clock, not a person, escalated.
fn breach_summary(tx: &mut dyn Tx, conversation: &Conversation, clock: &SlaClock, now: i64) -> DeskResult<String> {
    let last_customer = tx.last_inbound_text(conversation.id)?;
    let overdue_by = human_duration(now.saturating_sub(clock.due_at.unwrap_or(now)));
    let mut summary = format!(
        "Escalated automatically: the {} SLA ({} target) was breached in team {} (tier {}), {} after it was due. \
         Priority {}.",
        clock.kind.as_str().replace('_', " "),
        human_duration(clock.target_ms),
        conversation.team_key.as_deref().unwrap_or("-"),
        conversation.tier,
        overdue_by,
        conversation.priority,
    );
    if let Some(text) = last_customer {
        let excerpt: String = text.chars().take(280).collect();
        let ellipsis = if excerpt.len() < text.len() { "…" } else { "" };
        summary.push_str(&format!(" The customer's last message: \"{excerpt}{ellipsis}\""));
    }
    Ok(summary)
}

/// A new priority, by an agent or by the desk, with the clocks retargeted.
pub fn set_priority(
    tx: &mut dyn Tx,
    desk: &Desk,
    conversation: &Conversation,
    priority: Priority,
    agent_id: Option<i64>,
    now: i64,
) -> DeskResult<()> {
    let changed = ConversationPatch {
        priority: Some(priority),
        updated_at: Some(now),
        ..ConversationPatch::default()
    };
    tx.update_conversation(conversation.id, &changed)?;
    let event = DomainEvent::PriorityChanged {
        from: conversation.priority,
        to: priority,
    };
    events::insert(tx, conversation.id, &[(Actor::agent_or_system(agent_id), event)], now)?;
    retarget(tx, desk, conversation, now)
}
