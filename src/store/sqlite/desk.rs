//! The desk's writes: SLA clocks following a conversation's life, escalation, queue
//! assignment, and firing the clocks that fell due. Each runs inside the transaction of
//! the change that caused it (see `write.rs`), on the writer thread.

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Value, json};

use super::updates::{fire_follow_ups, record_events};
use super::vocabulary;
use super::write::{NewEvent, NewMessage, insert_events, insert_message, team};
use crate::domain::desk::{Assignment, Desk, TeamPolicy, human_duration};
use crate::model::clock::ClockKind;
use crate::model::clock::{ClockState, SlaClock};
use crate::model::hours::BusinessHours;
use crate::model::{ActorKind, Direction, MessageKind, Priority, Role, Status, Timestamp};
use crate::store::{Escalation, EscalationTarget, FireOutcome, StoreError, StoreResult};

/// What the desk needs to know of a conversation.
pub(super) struct ConversationState {
    pub id: i64,
    pub team_id: Option<i64>,
    pub team_key: Option<String>,
    pub tier: i64,
    pub status: Status,
    pub priority: Priority,
    pub assignee: Option<i64>,
    pub first_response_at: Option<i64>,
    pub labels: Vec<String>,
}

pub(super) fn conversation_state(conn: &Connection, id: i64) -> StoreResult<ConversationState> {
    let row = conn
        .prepare_cached(
            "SELECT c.team_id, t.key, c.tier, c.status, c.priority, c.assignee_id, c.first_response_at, c.labels
             FROM conversations c LEFT JOIN teams t ON t.id = c.team_id WHERE c.id = ?1",
        )?
        .query_row([id], |row| {
            Ok((
                row.get::<_, Option<i64>>(0)?,
                row.get::<_, Option<String>>(1)?,
                row.get::<_, i64>(2)?,
                row.get::<_, String>(3)?,
                row.get::<_, String>(4)?,
                row.get::<_, Option<i64>>(5)?,
                row.get::<_, Option<i64>>(6)?,
                row.get::<_, String>(7)?,
            ))
        })
        .optional()?
        .ok_or(StoreError::NotFound("conversation"))?;
    Ok(ConversationState {
        id,
        team_id: row.0,
        team_key: row.1,
        tier: row.2,
        status: vocabulary(Status::parse, &row.3)?,
        priority: vocabulary(Priority::parse, &row.4)?,
        assignee: row.5,
        first_response_at: row.6,
        labels: super::json_column(&row.7)?,
    })
}

// ---------------------------------------------------------------- SLA clocks

/// A change in a conversation's life that moves its clocks.
pub(super) enum ClockChange {
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

fn load_clocks(conn: &Connection, conversation_id: i64) -> StoreResult<Vec<SlaClock>> {
    let mut statement = conn.prepare_cached(
        "SELECT kind, state, target_ms, warn_ms, elapsed_ms, running_since, started_at, stopped_at, warn_at, due_at,
                warned_at, breached_at
         FROM sla_clocks WHERE conversation_id = ?1",
    )?;
    let rows = statement.query_map([conversation_id], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, String>(1)?,
            SlaClock {
                kind: ClockKind::FirstResponse,
                state: ClockState::Running,
                target_ms: row.get(2)?,
                warn_ms: row.get(3)?,
                elapsed_ms: row.get(4)?,
                running_since: row.get(5)?,
                started_at: row.get(6)?,
                stopped_at: row.get(7)?,
                warn_at: row.get(8)?,
                due_at: row.get(9)?,
                warned_at: row.get(10)?,
                breached_at: row.get(11)?,
            },
        ))
    })?;
    let mut clocks = Vec::new();
    for row in rows {
        let (kind, state, mut clock) = row?;
        clock.kind = vocabulary(ClockKind::parse, &kind)?;
        clock.state = vocabulary(ClockState::parse, &state)?;
        clocks.push(clock);
    }
    Ok(clocks)
}

fn save_clock(conn: &Connection, conversation_id: i64, clock: &SlaClock) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT INTO sla_clocks (conversation_id, kind, state, target_ms, warn_ms, elapsed_ms, running_since, started_at,
                                 stopped_at, warn_at, due_at, warned_at, breached_at, next_fire_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
         ON CONFLICT (conversation_id, kind) DO UPDATE SET
             state = excluded.state, target_ms = excluded.target_ms, warn_ms = excluded.warn_ms,
             elapsed_ms = excluded.elapsed_ms, running_since = excluded.running_since,
             started_at = excluded.started_at, stopped_at = excluded.stopped_at, warn_at = excluded.warn_at,
             due_at = excluded.due_at, warned_at = excluded.warned_at, breached_at = excluded.breached_at,
             next_fire_at = excluded.next_fire_at",
    )?
    .execute(params![
        conversation_id,
        clock.kind.as_str(),
        clock.state.as_str(),
        clock.target_ms,
        clock.warn_ms,
        clock.elapsed_ms,
        clock.running_since,
        clock.started_at,
        clock.stopped_at,
        clock.warn_at,
        clock.due_at,
        clock.warned_at,
        clock.breached_at,
        clock.next_fire_at(),
    ])?;
    Ok(())
}

/// The calendar a clock of this conversation is measured in.
fn calendar_of(desk: &Desk, team: Option<&str>, kind: ClockKind, priority: Priority) -> std::sync::Arc<BusinessHours> {
    desk.target(team, kind, priority)
        .map(|target| target.calendar)
        .unwrap_or_else(|| std::sync::Arc::new(BusinessHours::always()))
}

/// Moves the conversation's clocks for `change`; returns the earliest moment the
/// scheduler must now look at them, so it can be woken when that is sooner than it
/// planned.
pub(super) fn update_clocks(
    conn: &Connection,
    desk: &Desk,
    conversation: &ConversationState,
    change: ClockChange,
    now: i64,
) -> StoreResult<Option<i64>> {
    let team = conversation.team_key.as_deref();
    let priority = conversation.priority;
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
            let answered = conversation.first_response_at.is_some();
            if !reopened && !answered {
                // The common case, a customer adding to an unanswered conversation:
                // nothing moves, and no clock is read.
                return Ok(None);
            }
            let mut clocks = load_clocks(conn, conversation.id)?;
            if reopened {
                for clock in &mut clocks {
                    if reopen_resumes(desk, conversation, clock) {
                        clock.resume(now, &calendar_of(desk, team, clock.kind, priority));
                        changed.push(clock.clone());
                    }
                }
            }
            let waiting = clocks.iter().any(|c| {
                c.kind == ClockKind::NextResponse && matches!(c.state, ClockState::Running | ClockState::Paused)
            });
            if answered
                && !waiting
                && let Some(target) = desk.target(team, ClockKind::NextResponse, priority)
            {
                changed.push(SlaClock::start(ClockKind::NextResponse, &target, now));
            }
        }
        ClockChange::AgentReply => {
            for mut clock in load_clocks(conn, conversation.id)? {
                if matches!(clock.kind, ClockKind::FirstResponse | ClockKind::NextResponse)
                    && matches!(clock.state, ClockState::Running | ClockState::Paused)
                {
                    clock.finish(now, &calendar_of(desk, team, clock.kind, priority), true);
                    changed.push(clock);
                }
            }
        }
        ClockChange::Status { from, to } => {
            let ends = matches!(to, Status::Resolved | Status::Closed);
            let was_ended = matches!(from, Status::Resolved | Status::Closed);
            for mut clock in load_clocks(conn, conversation.id)? {
                let calendar = calendar_of(desk, team, clock.kind, priority);
                let before = clock.clone();
                if ends {
                    // Resolving meets the resolution target and the cap; a response
                    // never given stays unmet.
                    let met = matches!(clock.kind, ClockKind::Resolution | ClockKind::MaxOpen);
                    clock.finish(now, &calendar, met);
                } else {
                    if was_ended && reopen_resumes(desk, conversation, &clock) {
                        clock.resume(now, &calendar);
                    }
                    // The cap counts every day the conversation stays unresolved.
                    if to == Status::Pending && clock.kind != ClockKind::MaxOpen {
                        clock.pause(now, &calendar);
                    } else if clock.state == ClockState::Paused {
                        clock.resume(now, &calendar);
                    }
                }
                if clock != before {
                    changed.push(clock);
                }
            }
        }
        ClockChange::Retarget { old_team, old_priority } => {
            let clocks = load_clocks(conn, conversation.id)?;
            for mut clock in clocks.iter().cloned() {
                let old_calendar = calendar_of(desk, old_team.as_deref(), clock.kind, old_priority);
                match desk.target(team, clock.kind, priority) {
                    Some(target) => clock.retarget(now, &old_calendar, &target),
                    // The new team sets no such target: the clock ends unmet.
                    None => clock.finish(now, &old_calendar, false),
                }
                changed.push(clock);
            }
            // Clocks the old team had no target for but the new one has.
            let open = !matches!(conversation.status, Status::Resolved | Status::Closed);
            for kind in [ClockKind::FirstResponse, ClockKind::Resolution] {
                let wanted = open && (kind != ClockKind::FirstResponse || conversation.first_response_at.is_none());
                if wanted
                    && !clocks.iter().any(|clock| clock.kind == kind)
                    && let Some(target) = desk.target(team, kind, priority)
                {
                    let mut clock = SlaClock::start(kind, &target, now);
                    if conversation.status == Status::Pending {
                        clock.pause(now, &target.calendar);
                    }
                    changed.push(clock);
                }
            }
        }
    }
    let mut earliest: Option<i64> = None;
    for clock in &changed {
        save_clock(conn, conversation.id, clock)?;
        if let Some(at) = clock.next_fire_at() {
            earliest = Some(earliest.map_or(at, |e| e.min(at)));
        }
    }
    Ok(earliest)
}

/// Which ended clocks a reopened conversation runs again: resolution and the cap keep
/// counting where they stopped; a first response never given is still owed. A clock
/// whose team no longer sets its target (it moved to one without) stays ended.
fn reopen_resumes(desk: &Desk, conversation: &ConversationState, clock: &SlaClock) -> bool {
    let resumes = match clock.kind {
        ClockKind::Resolution | ClockKind::MaxOpen => clock.state != ClockState::Running,
        ClockKind::FirstResponse => {
            conversation.first_response_at.is_none() && matches!(clock.state, ClockState::Stopped | ClockState::Paused)
        }
        ClockKind::NextResponse => clock.state == ClockState::Paused,
    };
    resumes
        && desk
            .target(conversation.team_key.as_deref(), clock.kind, conversation.priority)
            .is_some()
}

/// Fires up to `limit` clocks due by `now`, each in this transaction with what its
/// breach does, so a breach acts exactly once even if the daemon stops right after.
pub(super) fn fire_due(conn: &Connection, desk: &Desk, now: i64, limit: u32) -> StoreResult<FireOutcome> {
    let due: Vec<(i64, String)> = conn
        .prepare_cached(
            "SELECT conversation_id, kind FROM sla_clocks
             WHERE next_fire_at IS NOT NULL AND next_fire_at <= ?1 ORDER BY next_fire_at LIMIT ?2",
        )?
        .query_map(params![now, limit], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut outcome = FireOutcome {
        clocks: due.len() as u32,
        follow_ups: fire_follow_ups(conn, desk, now, limit)?,
        ..FireOutcome::default()
    };
    // Two clocks of one conversation found breached together (after the daemon was
    // down) are one lapse to the customer: one escalation, not a jump of two tiers.
    let mut escalated = std::collections::HashSet::new();
    for (conversation_id, kind) in due {
        let kind = vocabulary(ClockKind::parse, &kind)?;
        let Some(mut clock) = load_clocks(conn, conversation_id)?
            .into_iter()
            .find(|clock| clock.kind == kind)
        else {
            continue;
        };
        let conversation = conversation_state(conn, conversation_id)?;
        let fired = clock.fire(now);
        save_clock(conn, conversation_id, &clock)?;
        let team = conversation.team_key.as_deref();
        let details = json!({
            "clock": kind,
            "team": team,
            "tier": conversation.tier,
            "priority": conversation.priority,
            "target": human_duration(clock.target_ms),
            "time": if calendar_of(desk, team, kind, conversation.priority).is_always() { "calendar" } else { "business" },
            "due_at": clock.due_at.map(Timestamp),
        });
        if fired.warning && !fired.breach {
            outcome.warnings += 1;
            insert_events(
                conn,
                conversation_id,
                &[NewEvent::system("sla.warning", details.clone())],
                now,
            )?;
        }
        if fired.breach {
            outcome.breaches += 1;
            let may_escalate = !escalated.contains(&conversation_id);
            if breach(conn, desk, &conversation, &clock, details, may_escalate, now)? {
                escalated.insert(conversation_id);
            }
        }
    }
    Ok(outcome)
}

/// Records a breach and does what the policy says; returns whether it escalated.
fn breach(
    conn: &Connection,
    desk: &Desk,
    conversation: &ConversationState,
    clock: &SlaClock,
    mut details: Value,
    may_escalate: bool,
    now: i64,
) -> StoreResult<bool> {
    let team = conversation.team_key.as_deref();
    let actions = desk.breach_actions(team, clock.kind);
    conn.prepare_cached("UPDATE conversations SET sla_breached_at = COALESCE(sla_breached_at, ?1) WHERE id = ?2")?
        .execute(params![now, conversation.id])?;
    if actions.notify {
        let supervisors: Vec<String> = conn
            .prepare_cached(
                "SELECT name FROM agents WHERE team_id = ?1 AND role IN ('supervisor', 'admin') ORDER BY name",
            )?
            .query_map([conversation.team_id], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        details["notified"] = json!(supervisors);
    }
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
    details["actions"] = json!({
        "escalate_to": escalate_to,
        "raise_priority": actions.raise_priority,
        "label": (clock.kind == ClockKind::MaxOpen).then_some(OVERDUE_LABEL),
    });
    insert_events(conn, conversation.id, &[NewEvent::system("sla.breached", details)], now)?;

    if clock.kind == ClockKind::MaxOpen && !conversation.labels.iter().any(|l| l == OVERDUE_LABEL) {
        let mut labels = conversation.labels.clone();
        labels.push(OVERDUE_LABEL.to_owned());
        conn.prepare_cached("UPDATE conversations SET labels = ?1 WHERE id = ?2")?
            .execute(params![
                serde_json::to_string(&labels).unwrap_or_else(|_| "[]".into()),
                conversation.id
            ])?;
    }
    if actions.raise_priority && conversation.priority < Priority::Urgent {
        let raised = Priority::ALL[(conversation.priority as usize + 1).min(Priority::ALL.len() - 1)];
        set_priority(conn, desk, conversation, raised, None, now)?;
    }
    let Some(target) = escalate_to else {
        return Ok(false);
    };
    // Raising the priority may have changed it since `conversation` was read.
    let current = conversation_state(conn, conversation.id)?;
    let summary = breach_summary(conn, &current, clock, now)?;
    let reason = format!("sla_breach:{}", clock.kind.as_str());
    move_to_team(conn, desk, &current, &target, &summary, Some(&reason), None, now)?;
    Ok(true)
}

/// Labels a conversation that outlived `sla.max_open`.
pub const OVERDUE_LABEL: &str = "overdue";

/// What the receiving team reads first when the clock, not a person, escalated.
fn breach_summary(
    conn: &Connection,
    conversation: &ConversationState,
    clock: &SlaClock,
    now: i64,
) -> StoreResult<String> {
    let last_customer: Option<String> = conn
        .prepare_cached(
            "SELECT text FROM messages WHERE conversation_id = ?1 AND direction = 'inbound' ORDER BY id DESC LIMIT 1",
        )?
        .query_row([conversation.id], |row| row.get(0))
        .optional()?;
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

pub(super) fn set_priority(
    conn: &Connection,
    desk: &Desk,
    conversation: &ConversationState,
    priority: Priority,
    agent_id: Option<i64>,
    now: i64,
) -> StoreResult<()> {
    conn.prepare_cached("UPDATE conversations SET priority = ?1, updated_at = ?2 WHERE id = ?3")?
        .execute(params![priority.as_str(), now, conversation.id])?;
    let data = json!({"from": conversation.priority, "to": priority});
    let event = match agent_id {
        Some(agent) => NewEvent::by_agent("conversation.priority_changed", agent, data),
        None => NewEvent::system("conversation.priority_changed", data),
    };
    insert_events(conn, conversation.id, &[event], now)?;
    retarget_clocks(conn, desk, conversation, now)
}

/// Moves the clocks to the team and priority the conversation has now, from those it had
/// in `before`.
fn retarget_clocks(conn: &Connection, desk: &Desk, before: &ConversationState, now: i64) -> StoreResult<()> {
    let after = conversation_state(conn, before.id)?;
    let change = ClockChange::Retarget {
        old_team: before.team_key.clone(),
        old_priority: before.priority,
    };
    update_clocks(conn, desk, &after, change, now).map(|_| ())
}

// ---------------------------------------------------------------- escalation

/// An agent's escalation: checks who may, resolves the target, then moves it.
pub(super) fn escalate(conn: &Connection, desk: &Desk, request: &Escalation) -> StoreResult<()> {
    let Escalation {
        conversation_id,
        agent,
        to: target,
        summary,
        reason,
        now,
    } = request;
    let (conversation_id, now) = (*conversation_id, *now);
    let conversation = conversation_state(conn, conversation_id)?;
    let member = agent.team.is_some() && agent.team == conversation.team_key;
    if !member && agent.role == Role::Agent {
        return Err(StoreError::Forbidden(format!(
            "only members of team `{}` or supervisors may escalate conversation #{conversation_id}",
            conversation.team_key.as_deref().unwrap_or("-")
        )));
    }
    if matches!(conversation.status, Status::Resolved | Status::Closed) {
        return Err(StoreError::Conflict(format!(
            "conversation #{conversation_id} is {}; reopen it before escalating",
            conversation.status
        )));
    }
    let current = conversation.team_key.as_deref().and_then(|key| desk.team(key));
    let to = match target {
        EscalationTarget::NextTier => current.and_then(|team| team.next_tier.clone()).ok_or_else(|| {
            StoreError::Conflict(format!(
                "team `{}` has no higher tier to escalate to; name a team instead",
                conversation.team_key.as_deref().unwrap_or("-")
            ))
        })?,
        EscalationTarget::Team(key) => {
            if desk.team(key).is_none() || team(conn, key)?.is_none() {
                return Err(StoreError::Invalid {
                    field: "to.team",
                    problem: format!("`{key}` is not a configured team"),
                });
            }
            if conversation.team_key.as_deref() == Some(key) {
                return Err(StoreError::Conflict(format!(
                    "conversation #{conversation_id} is already in team `{key}`"
                )));
            }
            key.clone()
        }
    };
    move_to_team(
        conn,
        desk,
        &conversation,
        &to,
        summary,
        reason.as_deref(),
        Some(agent.id),
        now,
    )
}

/// Moves a conversation to another team's queue with a summary the receiving team
/// reads first: the note, the event, the count of transfers, new SLA targets, and
/// whoever of the new team is free.
#[allow(clippy::too_many_arguments)]
fn move_to_team(
    conn: &Connection,
    desk: &Desk,
    conversation: &ConversationState,
    to: &str,
    summary: &str,
    reason: Option<&str>,
    agent_id: Option<i64>,
    now: i64,
) -> StoreResult<()> {
    let (to_id, to_name) = team(conn, to)?.ok_or(StoreError::Invalid {
        field: "to.team",
        problem: format!("`{to}` is not a configured team"),
    })?;
    let from_policy = conversation.team_key.as_deref().and_then(|key| desk.team(key));
    let to_policy = desk.team(to);
    let to_tier = to_policy.map_or(0, |team| i64::from(team.tier));
    let hierarchical = match (from_policy, to_policy) {
        (Some(from), Some(to)) => from.department == to.department && to.tier > from.tier,
        _ => false,
    };
    let kind = if hierarchical { "hierarchical" } else { "functional" };
    let (actor_kind, author_id) = match agent_id {
        Some(agent) => (ActorKind::Agent, Some(agent)),
        None => (ActorKind::System, None),
    };
    let note_id = insert_message(
        conn,
        NewMessage {
            conversation_id: conversation.id,
            inbox_id: conn
                .prepare_cached("SELECT inbox_id FROM conversations WHERE id = ?1")?
                .query_row([conversation.id], |row| row.get(0))?,
            direction: Direction::Note,
            kind: MessageKind::Note,
            author_kind: actor_kind,
            author_id,
            text: summary,
            html: None,
            external_id: None,
            language: None,
            metadata: Some(json!({"escalation": {"kind": kind, "to": to}}).to_string()),
        },
        now,
    )?;
    let by = match agent_id {
        Some(agent) => json!({"kind": "agent", "id": agent}),
        None => json!({"kind": "system"}),
    };
    let record = json!({
        "kind": kind,
        "from": {"team": conversation.team_key, "tier": conversation.tier},
        "to": {"team": to, "tier": to_tier, "name": to_name},
        "summary": summary,
        "reason": reason,
        "by": by,
        "note_id": note_id,
        "at": Timestamp(now),
    });
    // The assignee stays only if they belong to the new team.
    let keeps_assignee = match conversation.assignee {
        Some(agent) => {
            conn.prepare_cached("SELECT team_id FROM agents WHERE id = ?1")?
                .query_row([agent], |row| row.get::<_, Option<i64>>(0))?
                == Some(to_id)
        }
        None => false,
    };
    let assignee = conversation.assignee.filter(|_| keeps_assignee);
    conn.prepare_cached(
        "UPDATE conversations SET team_id = ?1, tier = ?2, transfer_count = transfer_count + 1, queued_at = ?3,
                escalation = ?4, assignee_id = ?5, updated_at = ?3, last_message_id = ?6, last_activity_at = ?3
         WHERE id = ?7",
    )?
    .execute(params![
        to_id,
        to_tier,
        now,
        record.to_string(),
        assignee,
        note_id,
        conversation.id
    ])?;
    let mut events = vec![NewEvent {
        kind: "conversation.escalated",
        actor_kind,
        actor_id: author_id,
        data: record,
    }];
    if conversation.assignee.is_some() && assignee.is_none() {
        events.push(NewEvent {
            kind: "conversation.assigned",
            actor_kind,
            actor_id: author_id,
            data: json!({"from": conversation.assignee, "to": null, "reason": "escalated"}),
        });
    }
    record_events(conn, desk, conversation.id, &events, now)?;
    retarget_clocks(conn, desk, conversation, now)?;
    drain_team(conn, desk, to_id, to, now)?;
    if let Some(freed) = conversation.assignee.filter(|_| assignee.is_none()) {
        drain_agent_team(conn, desk, freed, now)?;
    }
    Ok(())
}

// ---------------------------------------------------------------- assignment

/// An agent who can take one more conversation of a team, as its policy picks.
struct Candidate {
    id: i64,
    load: i64,
    last_assigned_at: Option<i64>,
}

fn candidates(conn: &Connection, team_id: i64, capacity: u32) -> StoreResult<Vec<Candidate>> {
    let mut statement = conn.prepare_cached(
        "SELECT a.id, COALESCE(a.capacity, ?2), a.last_assigned_at,
                (SELECT COUNT(*) FROM conversations c WHERE c.assignee_id = a.id AND c.status = 'open')
         FROM agents a WHERE a.team_id = ?1 AND a.available = 1",
    )?;
    let rows = statement.query_map(params![team_id, capacity], |row| {
        Ok((
            Candidate {
                id: row.get(0)?,
                last_assigned_at: row.get(2)?,
                load: row.get(3)?,
            },
            row.get::<_, i64>(1)?,
        ))
    })?;
    let mut free = Vec::new();
    for row in rows {
        let (candidate, capacity) = row?;
        if candidate.load < capacity {
            free.push(candidate);
        }
    }
    Ok(free)
}

fn pick(policy: &TeamPolicy, mut free: Vec<Candidate>) -> Option<i64> {
    // Never assigned sorts first (None < Some), then the longest ago; ids break ties
    // so the order is the same on every run.
    match policy.assignment {
        Assignment::Manual => None,
        Assignment::RoundRobin => {
            free.sort_by_key(|c| (c.last_assigned_at, c.id));
            free.first().map(|c| c.id)
        }
        Assignment::LeastLoaded => {
            free.sort_by_key(|c| (c.load, c.last_assigned_at, c.id));
            free.first().map(|c| c.id)
        }
    }
}

fn assign(
    conn: &Connection,
    desk: &Desk,
    conversation_id: i64,
    agent_id: i64,
    reason: &str,
    now: i64,
) -> StoreResult<()> {
    conn.prepare_cached("UPDATE conversations SET assignee_id = ?1, updated_at = ?2 WHERE id = ?3")?
        .execute(params![agent_id, now, conversation_id])?;
    conn.prepare_cached("UPDATE agents SET last_assigned_at = ?1 WHERE id = ?2")?
        .execute(params![now, agent_id])?;
    record_events(
        conn,
        desk,
        conversation_id,
        &[NewEvent::system(
            "conversation.assigned",
            json!({"from": null, "to": agent_id, "reason": reason}),
        )],
        now,
    )?;
    Ok(())
}

/// Assigns a team's waiting conversations, most urgent and then longest waiting first,
/// while its available agents have room. Returns how many it assigned.
pub(super) fn drain_team(conn: &Connection, desk: &Desk, team_id: i64, team_key: &str, now: i64) -> StoreResult<u32> {
    let Some(policy) = desk.team(team_key).filter(|team| team.assignment != Assignment::Manual) else {
        return Ok(0);
    };
    let mut assigned = 0;
    loop {
        let waiting: Option<i64> = conn
            .prepare_cached(
                "SELECT id FROM conversations INDEXED BY conversations_waiting
                 WHERE team_id = ?1 AND status = 'open' AND assignee_id IS NULL
                 ORDER BY (CASE priority WHEN 'urgent' THEN 0 WHEN 'high' THEN 1 WHEN 'normal' THEN 2 ELSE 3 END),
                          queued_at, id
                 LIMIT 1",
            )?
            .query_row([team_id], |row| row.get(0))
            .optional()?;
        let Some(conversation_id) = waiting else {
            return Ok(assigned);
        };
        let Some(agent) = pick(policy, candidates(conn, team_id, policy.capacity)?) else {
            return Ok(assigned);
        };
        assign(conn, desk, conversation_id, agent, policy.assignment.as_str(), now)?;
        assigned += 1;
    }
}

/// Drains the queue of the team `agent_id` belongs to (their capacity just freed).
pub(super) fn drain_agent_team(conn: &Connection, desk: &Desk, agent_id: i64, now: i64) -> StoreResult<u32> {
    let team: Option<(i64, String)> = conn
        .prepare_cached("SELECT t.id, t.key FROM agents a JOIN teams t ON t.id = a.team_id WHERE a.id = ?1")?
        .query_row([agent_id], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    match team {
        Some((id, key)) => drain_team(conn, desk, id, &key, now),
        None => Ok(0),
    }
}

/// A new conversation of a returning customer goes to the agent who last had one of
/// theirs, if that agent is in the team, available and has room; else to the queue.
pub(super) fn assign_new(
    conn: &Connection,
    desk: &Desk,
    conversation_id: i64,
    contact_id: i64,
    team_id: i64,
    team_key: &str,
    now: i64,
) -> StoreResult<()> {
    let Some(policy) = desk.team(team_key).filter(|team| team.assignment != Assignment::Manual) else {
        return Ok(());
    };
    let previous: Option<i64> = conn
        .prepare_cached(
            "SELECT assignee_id FROM conversations
             WHERE contact_id = ?1 AND id <> ?2 AND assignee_id IS NOT NULL ORDER BY id DESC LIMIT 1",
        )?
        .query_row(params![contact_id, conversation_id], |row| row.get(0))
        .optional()?;
    if let Some(previous) = previous
        && candidates(conn, team_id, policy.capacity)?
            .iter()
            .any(|candidate| candidate.id == previous)
    {
        return assign(conn, desk, conversation_id, previous, "returning_customer", now);
    }
    drain_team(conn, desk, team_id, team_key, now).map(|_| ())
}

/// Every automatically assigning team's queue, at start (capacities may have grown).
pub(super) fn drain_all(conn: &Connection, desk: &Desk, now: i64) -> StoreResult<u32> {
    let mut assigned = 0;
    for key in desk.teams.keys() {
        if let Some((id, _)) = team(conn, key)? {
            assigned += drain_team(conn, desk, id, key, now)?;
        }
    }
    Ok(assigned)
}

pub(super) fn set_availability(
    conn: &Connection,
    desk: &Desk,
    agent_id: i64,
    available: bool,
    now: i64,
) -> StoreResult<()> {
    conn.prepare_cached("UPDATE agents SET available = ?1 WHERE id = ?2")?
        .execute(params![available, agent_id])?;
    if available {
        drain_agent_team(conn, desk, agent_id, now)?;
    }
    Ok(())
}
