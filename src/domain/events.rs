//! The desk's events as values: every change of a conversation is a [`DomainEvent`],
//! recorded in the unit of work of the change with who made it. Its stored kind and
//! data, the conversation detail's timeline and the subscriptions' payloads are all
//! derived from the variant here, and the reactions (status updates, follow-up timers,
//! subscriptions) match on variants: adding an event is a change the compiler checks.

use serde_json::{Value, json};
use switchboard_connector_core::ChannelKind;

use crate::domain::DeskResult;
use crate::domain::desk::Desk;
use crate::domain::updates::UpdateEvent;
use crate::model::clock::ClockKind;
use crate::model::{ActorKind, Direction, MessageKind, Priority, Status, Timestamp};
use crate::store::{EventRow, Tx};

/// Who made a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Actor {
    pub kind: ActorKind,
    pub id: Option<i64>,
}

impl Actor {
    pub const SYSTEM: Actor = Actor {
        kind: ActorKind::System,
        id: None,
    };

    pub fn agent(id: i64) -> Actor {
        Actor {
            kind: ActorKind::Agent,
            id: Some(id),
        }
    }

    pub fn contact(id: i64) -> Actor {
        Actor {
            kind: ActorKind::Contact,
            id: Some(id),
        }
    }

    /// The agent who did it, or the desk itself.
    pub fn agent_or_system(agent: Option<i64>) -> Actor {
        agent.map_or(Actor::SYSTEM, Actor::agent)
    }
}

/// Why a conversation's status changed, when not by an agent's plain choice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusReason {
    /// The customer wrote again.
    CustomerMessage,
    /// It waited on the customer for `waited`, and the desk resolved it.
    AutoClose { waited: String },
    /// It was opened by an automatic reply (an out-of-office notice) with no
    /// conversation to join: filed resolved, so no clock runs for it and nobody is told.
    AutoReply,
}

/// Why an assignment changed, when not by an agent's plain choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssignReason {
    /// Whoever replies to an unassigned conversation takes it.
    Replied,
    /// The queue's policy chose (`round_robin`, `least_loaded`), and how the
    /// conversation's language weighed when it has one.
    Queue(&'static str, Option<crate::domain::queues::LanguageFit>),
    ReturningCustomer,
    /// The assignee is not in the team it moved to.
    Transferred,
    Escalated,
    /// The assignee was deactivated; the conversation went back to the queue.
    Deactivated,
}

impl AssignReason {
    fn as_str(self) -> &'static str {
        match self {
            AssignReason::Replied => "replied",
            AssignReason::Queue(policy, _) => policy,
            AssignReason::ReturningCustomer => "returning_customer",
            AssignReason::Transferred => "transferred",
            AssignReason::Escalated => "escalated",
            AssignReason::Deactivated => "deactivated",
        }
    }
}

/// An escalation as recorded, and as the receiving team reads it first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EscalationRecord {
    /// Hierarchical (a higher tier of the same department) or functional.
    pub hierarchical: bool,
    /// An agent's change of team (`PATCH team`) rather than an escalation.
    pub transfer: bool,
    pub from_team: Option<String>,
    pub from_tier: i64,
    pub to_team: String,
    pub to_tier: i64,
    pub to_name: String,
    pub summary: String,
    pub reason: Option<String>,
    /// The agent who escalated; `None`: the SLA clock did.
    pub by: Option<i64>,
    pub note_id: i64,
    pub at: i64,
}

impl EscalationRecord {
    /// The JSON the event, the conversation and the API show.
    pub fn to_json(&self) -> Value {
        let by = match self.by {
            Some(agent) => json!({"kind": "agent", "id": agent}),
            None => json!({"kind": "system"}),
        };
        json!({
            "kind": match (self.transfer, self.hierarchical) {
                (true, _) => "transfer",
                (false, true) => "hierarchical",
                (false, false) => "functional",
            },
            "from": {"team": self.from_team, "tier": self.from_tier},
            "to": {"team": self.to_team, "tier": self.to_tier, "name": self.to_name},
            "summary": self.summary,
            "reason": self.reason,
            "by": by,
            "note_id": self.note_id,
            "at": Timestamp(self.at),
        })
    }
}

/// A clock's warning or breach, with the conversation as it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlaFacts {
    pub clock: ClockKind,
    pub team: Option<String>,
    pub tier: i64,
    pub priority: Priority,
    /// The target as people read it (`1h`).
    pub target: String,
    /// Measured around the clock rather than in business hours.
    pub calendar_time: bool,
    pub due_at: Option<i64>,
}

impl SlaFacts {
    fn to_json(&self) -> Value {
        json!({
            "clock": self.clock,
            "team": self.team,
            "tier": self.tier,
            "priority": self.priority,
            "target": self.target,
            "time": if self.calendar_time { "calendar" } else { "business" },
            "due_at": self.due_at.map(Timestamp),
        })
    }
}

/// What a breach did besides being recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreachTaken {
    /// The supervisors named, when the policy notifies.
    pub notified: Option<Vec<String>>,
    pub escalate_to: Option<String>,
    pub raise_priority: bool,
    pub label: Option<&'static str>,
}

/// A change of a conversation's state.
#[derive(Debug, Clone, PartialEq)]
pub enum DomainEvent {
    Created {
        inbox: String,
        channel: ChannelKind,
        thread: Option<String>,
    },
    Routed {
        rule: Option<String>,
        matched: Vec<String>,
        team: String,
        tier: i64,
        priority: Priority,
        labels: Vec<String>,
        language: Option<String>,
    },
    StatusChanged {
        from: Status,
        to: Status,
        reason: Option<StatusReason>,
    },
    PriorityChanged {
        from: Priority,
        to: Priority,
    },
    /// An agent added or removed labels (rules' labels come with `Routed`).
    LabelsChanged {
        added: Vec<String>,
        removed: Vec<String>,
    },
    Assigned {
        from: Option<i64>,
        to: Option<i64>,
        reason: Option<AssignReason>,
    },
    /// An internal note (`message_id`) mentions an agent, who is told.
    Mentioned {
        agent_id: i64,
        agent_name: String,
        message_id: i64,
        mention_id: i64,
    },
    /// Moved to another team by an agent, with the summary they left for it (the note
    /// `note_id`).
    Transferred {
        from: Option<String>,
        to: String,
        summary: String,
        note_id: i64,
    },
    Escalated(EscalationRecord),
    SlaWarning(SlaFacts),
    SlaBreached(SlaFacts, BreachTaken),
    CsatAnswered {
        score: u8,
        comment: Option<String>,
        via: String,
    },
    UpdatesStopped,
    UpdatesResumed,
    MessageEdited {
        message_id: i64,
    },
    DeliveryFailed {
        message_id: i64,
        /// `None` for a bounce, which reports on a send rather than an attempt.
        attempts: Option<i64>,
        error: String,
    },
    DeliveryDelayed {
        message_id: i64,
        reason: String,
    },
    /// The channel did not carry the message and nothing is owed (a status update
    /// outside WhatsApp's customer service window without an approved template).
    DeliverySkipped {
        message_id: i64,
        reason: String,
    },
    DeliveryRetried {
        message_id: i64,
        delivery_id: i64,
        attempts_before: i64,
    },
    /// The channel said what became of a message we sent (WhatsApp's `delivered`,
    /// `read`); only a state that moved forward. A failure is `DeliveryFailed`.
    DeliveryReported {
        message_id: i64,
        state: &'static str,
    },
    StatusUpdateFailed {
        event: UpdateEvent,
        error: String,
    },
    /// An agent found that two contacts are one person: the conversation's contact
    /// `from` was merged into `into`, or `into` took in `from`'s history.
    ContactMerged {
        from: i64,
        into: i64,
    },
    /// The person's content left the conversation; its shell stays for the figures.
    Erased {
        /// Their erasure was asked for, or the retention policy's age passed.
        retention: bool,
    },
}

impl DomainEvent {
    /// The stored name, as the API's timeline shows it.
    pub fn kind(&self) -> &'static str {
        match self {
            DomainEvent::Created { .. } => "conversation.created",
            DomainEvent::Routed { .. } => "conversation.routed",
            DomainEvent::StatusChanged { .. } => "conversation.status_changed",
            DomainEvent::PriorityChanged { .. } => "conversation.priority_changed",
            DomainEvent::LabelsChanged { .. } => "conversation.labels_changed",
            DomainEvent::Assigned { .. } => "conversation.assigned",
            DomainEvent::Transferred { .. } => "conversation.transferred",
            DomainEvent::Mentioned { .. } => "agent.mentioned",
            DomainEvent::Escalated(_) => "conversation.escalated",
            DomainEvent::SlaWarning(_) => "sla.warning",
            DomainEvent::SlaBreached(..) => "sla.breached",
            DomainEvent::CsatAnswered { .. } => "csat.answered",
            DomainEvent::UpdatesStopped => "contact.updates_stopped",
            DomainEvent::UpdatesResumed => "contact.updates_resumed",
            DomainEvent::MessageEdited { .. } => "message.edited",
            DomainEvent::DeliveryFailed { .. } => "delivery.failed",
            DomainEvent::DeliveryDelayed { .. } => "delivery.delayed",
            DomainEvent::DeliverySkipped { .. } => "delivery.skipped",
            DomainEvent::DeliveryRetried { .. } => "delivery.retried",
            DomainEvent::DeliveryReported { .. } => "delivery.reported",
            DomainEvent::StatusUpdateFailed { .. } => "status_update.failed",
            DomainEvent::ContactMerged { .. } => "contact.merged",
            DomainEvent::Erased { .. } => "conversation.erased",
        }
    }

    /// The stored data, as the API's timeline and the subscriptions' `details` show it.
    pub fn data(&self) -> Value {
        match self {
            DomainEvent::Created { inbox, channel, thread } => {
                json!({"inbox": inbox, "channel": channel, "thread": thread})
            }
            DomainEvent::Routed {
                rule,
                matched,
                team,
                tier,
                priority,
                labels,
                language,
            } => json!({"rule": rule, "matched": matched, "team": team, "tier": tier, "priority": priority,
                        "labels": labels, "language": language}),
            DomainEvent::StatusChanged { from, to, reason } => {
                let mut data = json!({"from": from, "to": to});
                match reason {
                    None => {}
                    Some(StatusReason::CustomerMessage) => data["reason"] = json!("customer_message"),
                    Some(StatusReason::AutoClose { waited }) => {
                        data["reason"] = json!("auto_close");
                        data["waited"] = json!(waited);
                    }
                    Some(StatusReason::AutoReply) => data["reason"] = json!("auto_reply"),
                }
                data
            }
            DomainEvent::PriorityChanged { from, to } => json!({"from": from, "to": to}),
            DomainEvent::LabelsChanged { added, removed } => json!({"added": added, "removed": removed}),
            DomainEvent::Assigned { from, to, reason } => {
                let mut data = json!({"from": from, "to": to});
                if let Some(reason) = reason {
                    data["reason"] = json!(reason.as_str());
                }
                if let Some(AssignReason::Queue(_, Some(fit))) = reason {
                    data["language_fit"] = json!(fit.as_str());
                }
                data
            }
            DomainEvent::Transferred {
                from,
                to,
                summary,
                note_id,
            } => json!({"from": from, "to": to, "summary": summary, "note_id": note_id}),
            DomainEvent::Mentioned {
                agent_id,
                agent_name,
                message_id,
                mention_id,
            } => json!({"agent_id": agent_id, "agent_name": agent_name, "message_id": message_id,
                        "mention_id": mention_id}),
            DomainEvent::Escalated(record) => record.to_json(),
            DomainEvent::SlaWarning(facts) => facts.to_json(),
            DomainEvent::SlaBreached(facts, taken) => {
                let mut data = facts.to_json();
                if let Some(notified) = &taken.notified {
                    data["notified"] = json!(notified);
                }
                data["actions"] = json!({
                    "escalate_to": taken.escalate_to,
                    "raise_priority": taken.raise_priority,
                    "label": taken.label,
                });
                data
            }
            DomainEvent::CsatAnswered { score, comment, via } => {
                json!({"score": score, "comment": comment, "via": via})
            }
            DomainEvent::UpdatesStopped | DomainEvent::UpdatesResumed => json!({}),
            DomainEvent::MessageEdited { message_id } => json!({"message_id": message_id}),
            DomainEvent::DeliveryFailed {
                message_id,
                attempts,
                error,
            } => match attempts {
                Some(attempts) => json!({"message_id": message_id, "attempts": attempts, "error": error}),
                None => json!({"message_id": message_id, "error": error, "bounce": true}),
            },
            DomainEvent::DeliveryDelayed { message_id, reason }
            | DomainEvent::DeliverySkipped { message_id, reason } => {
                json!({"message_id": message_id, "reason": reason})
            }
            DomainEvent::DeliveryRetried {
                message_id,
                delivery_id,
                attempts_before,
            } => json!({"message_id": message_id, "delivery_id": delivery_id, "attempts_before": attempts_before}),
            DomainEvent::DeliveryReported { message_id, state } => json!({"message_id": message_id, "state": state}),
            DomainEvent::StatusUpdateFailed { event, error } => json!({"event": event.as_str(), "error": error}),
            DomainEvent::ContactMerged { from, into } => json!({"from": from, "into": into}),
            DomainEvent::Erased { retention } => {
                json!({"cause": if *retention { "retention" } else { "erasure" }})
            }
        }
    }

    /// The subscription event this is, if integrations can subscribe to it.
    pub fn subscription_event(&self) -> Option<EventType> {
        match self {
            DomainEvent::Created { .. } => Some(EventType::ConversationCreated),
            DomainEvent::Assigned { to: Some(_), .. } => Some(EventType::ConversationAssigned),
            DomainEvent::Escalated(_) => Some(EventType::ConversationEscalated),
            DomainEvent::SlaWarning(_) => Some(EventType::SlaWarning),
            DomainEvent::SlaBreached(..) => Some(EventType::SlaBreached),
            DomainEvent::StatusChanged {
                to: Status::Resolved, ..
            } => Some(EventType::ConversationResolved),
            DomainEvent::CsatAnswered { .. } => Some(EventType::CsatReceived),
            DomainEvent::Routed { .. }
            | DomainEvent::StatusChanged { .. }
            | DomainEvent::PriorityChanged { .. }
            | DomainEvent::LabelsChanged { .. }
            | DomainEvent::Assigned { to: None, .. }
            | DomainEvent::Transferred { .. }
            | DomainEvent::Mentioned { .. }
            | DomainEvent::UpdatesStopped
            | DomainEvent::UpdatesResumed
            | DomainEvent::MessageEdited { .. }
            | DomainEvent::DeliveryFailed { .. }
            | DomainEvent::DeliveryDelayed { .. }
            | DomainEvent::DeliverySkipped { .. }
            | DomainEvent::DeliveryRetried { .. }
            | DomainEvent::DeliveryReported { .. }
            | DomainEvent::StatusUpdateFailed { .. }
            | DomainEvent::ContactMerged { .. }
            // Subscribers hear `contact.erased` once per person instead (domain/privacy.rs).
            | DomainEvent::Erased { .. } => None,
        }
    }

    /// The status updates this change calls for.
    fn updates(&self) -> &'static [UpdateEvent] {
        match self {
            // Whoever replies to an unassigned conversation takes it: the reply itself
            // is the news.
            DomainEvent::Assigned {
                to: Some(_), reason, ..
            } if *reason != Some(AssignReason::Replied) => &[UpdateEvent::Assigned],
            DomainEvent::Escalated(_) | DomainEvent::Transferred { .. } => &[UpdateEvent::Escalated],
            DomainEvent::StatusChanged {
                to: Status::Resolved,
                reason: Some(StatusReason::AutoClose { .. }),
                ..
            } => &[UpdateEvent::AutoClosed],
            // Nobody to tell: a "resolved" mail or a satisfaction question would answer
            // the responder.
            DomainEvent::StatusChanged {
                reason: Some(StatusReason::AutoReply),
                ..
            } => &[],
            DomainEvent::StatusChanged {
                to: Status::Resolved, ..
            } => &[UpdateEvent::Resolved, UpdateEvent::Csat],
            _ => &[],
        }
    }
}

/// What a subscription can ask to be told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    ConversationCreated,
    MessageCreated,
    ConversationAssigned,
    ConversationEscalated,
    SlaWarning,
    SlaBreached,
    ConversationResolved,
    CsatReceived,
    /// A person's data was erased (on request or by the retention policy).
    ContactErased,
    /// The test event an admin sends (`POST /api/v1/subscriptions/{id}/ping`).
    Ping,
}

impl EventType {
    /// The types a subscription may list (`ping` goes to every subscription on request).
    pub const SUBSCRIBABLE: [EventType; 9] = [
        EventType::ConversationCreated,
        EventType::MessageCreated,
        EventType::ConversationAssigned,
        EventType::ConversationEscalated,
        EventType::SlaWarning,
        EventType::SlaBreached,
        EventType::ConversationResolved,
        EventType::CsatReceived,
        EventType::ContactErased,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::ConversationCreated => "conversation.created",
            EventType::MessageCreated => "message.created",
            EventType::ConversationAssigned => "conversation.assigned",
            EventType::ConversationEscalated => "conversation.escalated",
            EventType::SlaWarning => "sla.warning",
            EventType::SlaBreached => "sla.breached",
            EventType::ConversationResolved => "conversation.resolved",
            EventType::CsatReceived => "csat.received",
            EventType::ContactErased => "contact.erased",
            EventType::Ping => "ping",
        }
    }

    pub fn parse(name: &str) -> Option<EventType> {
        EventType::SUBSCRIBABLE.into_iter().find(|event| event.as_str() == name)
    }
}

/// Records events that do not call for reactions' status updates: the rows, and the
/// integrations told in the same unit of work (an event is theirs exactly when it is
/// recorded).
pub fn insert(tx: &mut dyn Tx, conversation_id: i64, events: &[(Actor, DomainEvent)], now: i64) -> DeskResult<()> {
    for (actor, event) in events {
        let data = event.data();
        tx.insert_event(
            &EventRow {
                conversation_id,
                kind: event.kind(),
                actor_kind: actor.kind,
                actor_id: actor.id,
                data: &data,
            },
            now,
        )?;
        if let Some(event_type) = event.subscription_event() {
            let news = json!({
                "conversation_id": conversation_id,
                "event": event.kind(),
                "actor": {"kind": actor.kind, "id": actor.id},
                "details": data,
            });
            fan_out(tx, event_type, Some(conversation_id), news, now)?;
        }
    }
    Ok(())
}

/// Records the events of a change and does what they call for: the status updates to
/// the customer, the follow-up timers of a conversation waiting on them. Returns whether
/// an update was queued.
pub fn record(
    tx: &mut dyn Tx,
    desk: &Desk,
    conversation_id: i64,
    events: &[(Actor, DomainEvent)],
    now: i64,
) -> DeskResult<bool> {
    insert(tx, conversation_id, events, now)?;
    let mut wanted = Vec::new();
    for (_, event) in events {
        if let DomainEvent::StatusChanged { from, to, .. } = event {
            if *from == Status::Pending {
                tx.clear_timers(conversation_id, None)?;
            }
            if *to == Status::Pending {
                crate::domain::updates::send::schedule_follow_ups(tx, desk, conversation_id, now)?;
            }
        }
        wanted.extend_from_slice(event.updates());
    }
    if wanted.is_empty() {
        return Ok(false);
    }
    let target = crate::domain::updates::send::target(tx, conversation_id)?;
    let mut queued = false;
    for event in wanted {
        queued |= crate::domain::updates::send::send(tx, desk, &target, event, now)?;
    }
    Ok(queued)
}

/// A message said to or by the customer: news for integrations (internal notes never
/// are).
pub struct MessageNews<'a> {
    pub conversation_id: i64,
    pub message_id: i64,
    pub direction: Direction,
    pub kind: MessageKind,
    pub author: Actor,
    pub text: &'a str,
    pub language: Option<&'a str>,
}

pub fn message_created(tx: &mut dyn Tx, news: &MessageNews<'_>, now: i64) -> DeskResult<()> {
    if news.kind == MessageKind::Note {
        return Ok(());
    }
    let data = json!({
        "conversation_id": news.conversation_id,
        "message": {"direction": news.direction, "kind": news.kind,
                    "author": {"kind": news.author.kind, "id": news.author.id},
                    "text": news.text, "language": news.language, "id": news.message_id},
    });
    fan_out(tx, EventType::MessageCreated, Some(news.conversation_id), data, now)
}

/// Queues `event_type` for every active subscription that asked for it. Costs one
/// lookup of a small table when nobody subscribed.
pub(crate) fn fan_out(
    tx: &mut dyn Tx,
    event_type: EventType,
    conversation_id: Option<i64>,
    data: Value,
    now: i64,
) -> DeskResult<()> {
    let wanted: Vec<i64> = tx
        .subscribers()?
        .into_iter()
        .filter(|subscriber| subscriber.events.iter().any(|e| e == event_type.as_str()))
        .map(|subscriber| subscriber.id)
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let payload = payload(event_type, data, now);
    for subscription_id in wanted {
        tx.queue_event(subscription_id, conversation_id, event_type.as_str(), &payload, now)?;
    }
    Ok(())
}

/// The body a subscriber receives.
pub fn payload(event_type: EventType, data: Value, now: i64) -> String {
    json!({
        "type": event_type.as_str(),
        "timestamp": Timestamp(now),
        "data": data,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversation_events_map_to_subscription_events() {
        let resolved = DomainEvent::StatusChanged {
            from: Status::Open,
            to: Status::Resolved,
            reason: None,
        };
        assert_eq!(resolved.subscription_event(), Some(EventType::ConversationResolved));
        let pending = DomainEvent::StatusChanged {
            from: Status::Open,
            to: Status::Pending,
            reason: None,
        };
        assert_eq!(pending.subscription_event(), None);
        let unassigned = DomainEvent::Assigned {
            from: Some(3),
            to: None,
            reason: Some(AssignReason::Transferred),
        };
        assert_eq!(unassigned.subscription_event(), None);
        assert_eq!(
            EventType::parse("ping"),
            None,
            "ping is sent on request, not subscribed"
        );
    }

    #[test]
    fn reasons_appear_in_the_data_only_when_there_is_one() {
        let by_agent = DomainEvent::Assigned {
            from: None,
            to: Some(7),
            reason: None,
        };
        assert_eq!(by_agent.data(), json!({"from": null, "to": 7}));
        let replied = DomainEvent::Assigned {
            from: None,
            to: Some(7),
            reason: Some(AssignReason::Replied),
        };
        assert_eq!(replied.data(), json!({"from": null, "to": 7, "reason": "replied"}));
        let closed = DomainEvent::StatusChanged {
            from: Status::Pending,
            to: Status::Resolved,
            reason: Some(StatusReason::AutoClose { waited: "3days".into() }),
        };
        assert_eq!(
            closed.data(),
            json!({"from": "pending", "to": "resolved", "reason": "auto_close", "waited": "3days"})
        );
    }

    #[test]
    fn each_change_calls_for_the_updates_the_customer_hears() {
        let resolved = DomainEvent::StatusChanged {
            from: Status::Open,
            to: Status::Resolved,
            reason: None,
        };
        assert_eq!(resolved.updates(), [UpdateEvent::Resolved, UpdateEvent::Csat]);
        // An out-of-office filed resolved: a "resolved" mail would answer the responder.
        let filed = DomainEvent::StatusChanged {
            from: Status::Open,
            to: Status::Resolved,
            reason: Some(StatusReason::AutoReply),
        };
        assert!(filed.updates().is_empty());
        assert_eq!(
            filed.data(),
            json!({"from": "open", "to": "resolved", "reason": "auto_reply"})
        );
        let replied = DomainEvent::Assigned {
            from: None,
            to: Some(1),
            reason: Some(AssignReason::Replied),
        };
        assert!(replied.updates().is_empty(), "the reply itself is the news");
        let queued = DomainEvent::Assigned {
            from: None,
            to: Some(1),
            reason: Some(AssignReason::Queue("round_robin", None)),
        };
        assert_eq!(queued.updates(), [UpdateEvent::Assigned]);
        let transferred = DomainEvent::Transferred {
            from: Some("support".into()),
            to: "billing".into(),
            summary: "Double charge; refund approved by the customer's bank".into(),
            note_id: 7,
        };
        assert_eq!(transferred.updates(), [UpdateEvent::Escalated]);
    }
}
