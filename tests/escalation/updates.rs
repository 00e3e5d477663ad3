//! Automated status updates and satisfaction over the webhook channel, as the business's
//! app receives them: the callback bodies (`kind: "status_update"`, the event and its
//! structured fields) in the contact's language, with the desk on a manual clock.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use reqwest::StatusCode;
use serde_json::{Value, json};
use switchboard::model::Role;
use switchboard_test_mailservers::eventually;

use super::{Desk, Setup, at};

/// Templates in Thai and Arabic for every event; English is the built-in set.
const UPDATES: &str = r#"
[updates]
events = ["received", "out_of_hours", "assigned", "escalated", "waiting_reminder", "resolved", "auto_closed", "csat"]
window = "1h"
waiting_reminder_after = "24h"
auto_close_after = "3days"

[updates.templates.received.th]
text = "ได้รับข้อความของคุณแล้ว หมายเลขอ้างอิง {{ conversation.reference }} ทีม {{ team.name }}"
[updates.templates.received.ar]
text = "تلقينا رسالتك. رقمك المرجعي {{ conversation.reference }} فريق {{ team.name }}"
[updates.templates.assigned.th]
text = "{{ agent.name }} กำลังดูแลเรื่อง {{ conversation.reference }} ของคุณ"
[updates.templates.assigned.ar]
text = "{{ agent.name }} يتابع طلبك {{ conversation.reference }}"
[updates.templates.escalated.th]
text = "ส่งเรื่อง {{ conversation.reference }} ต่อให้ทีม {{ team.name }} แล้ว"
[updates.templates.escalated.ar]
text = "أحلنا طلبك {{ conversation.reference }} إلى فريق {{ team.name }}"
[updates.templates.waiting_reminder.th]
text = "เรายังรอคำตอบของคุณเรื่อง {{ conversation.reference }}"
[updates.templates.waiting_reminder.ar]
text = "ما زلنا ننتظر ردك بشأن {{ conversation.reference }}"
[updates.templates.auto_closed.th]
text = "ปิดเรื่อง {{ conversation.reference }} แล้วเนื่องจากไม่ได้รับคำตอบ"
[updates.templates.auto_closed.ar]
text = "أغلقنا طلبك {{ conversation.reference }} لعدم الرد"
[updates.templates.resolved.th]
text = "เรื่อง {{ conversation.reference }} ได้รับการแก้ไขแล้ว"
[updates.templates.resolved.ar]
text = "تم حل طلبك {{ conversation.reference }}"
[updates.templates.csat.th]
text = "ให้คะแนนความพึงพอใจ 1 ถึง 5 สำหรับเรื่อง {{ conversation.reference }}"
[updates.templates.csat.ar]
text = "قيّم رضاك من 1 إلى 5 عن طلبك {{ conversation.reference }}"
[updates.templates.out_of_hours.th]
text = "ขณะนี้อยู่นอกเวลาทำการ เราจะกลับมาวันที่ {{ next_open.date }} เวลา {{ next_open.time }} ({{ next_open.time_zone }})"
[updates.templates.out_of_hours.ar]
text = "نحن خارج ساعات العمل، نعود في {{ next_open.date }} الساعة {{ next_open.time }} ({{ next_open.time_zone }})"

[csat]
answer_window = "7days"
"#;

/// What the shop's app received on its callback URL.
pub(super) struct Callbacks {
    url: String,
    bodies: Arc<Mutex<Vec<Value>>>,
}

impl Callbacks {
    pub(super) async fn start() -> Callbacks {
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let app = axum::Router::new()
            .route(
                "/callback",
                axum::routing::post(
                    |State(bodies): State<Arc<Mutex<Vec<Value>>>>, Json(body): Json<Value>| async move {
                        bodies.lock().unwrap().push(body);
                        StatusCode::OK
                    },
                ),
            )
            .with_state(Arc::clone(&bodies));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/callback", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Callbacks { url, bodies }
    }

    fn of(&self, conversation: i64) -> Vec<Value> {
        self.bodies
            .lock()
            .unwrap()
            .iter()
            .filter(|body| body["conversation_id"] == conversation)
            .cloned()
            .collect()
    }

    /// Waits until the conversation has had `count` callbacks; returns them in order.
    pub(super) async fn wait(&self, conversation: i64, count: usize) -> Vec<Value> {
        eventually(&format!("{count} callbacks for #{conversation}"), || async {
            let bodies = self.of(conversation);
            (bodies.len() >= count).then_some(bodies)
        })
        .await
    }

    /// Waits until the agent's reply `text` on the conversation has reached the app.
    pub(super) async fn wait_for_reply(&self, conversation: i64, text: &str) {
        eventually(&format!("the reply `{text}` on #{conversation}"), || async {
            self.of(conversation)
                .iter()
                .any(|body| body["kind"] == "reply" && body["text"] == text)
                .then_some(())
        })
        .await;
    }

    fn all(&self) -> String {
        serde_json::to_string(&*self.bodies.lock().unwrap()).unwrap()
    }
}

pub(super) fn setup(callbacks: &Callbacks) -> Setup<'static> {
    Setup {
        updates: UPDATES.into(),
        callback_url: callbacks.url.clone(),
        ..Setup::default()
    }
}

/// Monday 10:00 in Berlin, with Rita of returns (around the clock) available.
async fn rita_desk(callbacks: &Callbacks) -> Desk {
    Desk::start_with(
        at("2026-11-30T09:00:00Z"),
        &[("rita", "returns", Role::Agent, true)],
        &setup(callbacks),
    )
    .await
}

/// The events of status-update callbacks, in order.
fn events(bodies: &[Value]) -> Vec<&str> {
    bodies
        .iter()
        .filter(|body| body["kind"] == "status_update")
        .map(|body| body["event"].as_str().unwrap())
        .collect()
}

fn text_of<'a>(bodies: &'a [Value], event: &str) -> &'a str {
    bodies
        .iter()
        .find(|body| body["event"] == event)
        .unwrap_or_else(|| panic!("no {event} update in {bodies:?}"))["text"]
        .as_str()
        .unwrap()
}

/// A customer of the webhook channel writing in a language.
struct Customer {
    id: &'static str,
    language: &'static str,
    /// "It never arrived" in their language: the returns team's keyword.
    complaint: &'static str,
}

const CUSTOMERS: [Customer; 3] = [
    Customer {
        id: "emma",
        language: "en",
        complaint: "My parcel never arrived",
    },
    Customer {
        id: "somchai",
        language: "th",
        complaint: "ยังไม่ได้รับสินค้าเลยครับ",
    },
    Customer {
        id: "layla",
        language: "ar",
        complaint: "الطلب لم يصل بعد",
    },
];

async fn write(desk: &Desk, event_id: &str, customer: &Customer, text: &str) -> i64 {
    let (status, body) = desk
        .hook(json!({"id": event_id, "from": {"id": customer.id}, "text": text, "language": customer.language}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    body["conversation_id"].as_i64().unwrap()
}

const SUMMARY: &str = "INTERNAL: chargeback risk, customer was rude on the phone";

#[tokio::test]
async fn every_update_reaches_the_app_in_the_contacts_language_and_never_the_summary() {
    let callbacks = Callbacks::start().await;
    // Monday 10:00 in Berlin; the returns teams work around the clock.
    let desk = Desk::start_with(
        at("2026-11-30T09:00:00Z"),
        &[
            ("rita", "returns", Role::Agent, true),
            ("ross", "returns-l2", Role::Agent, true),
        ],
        &setup(&callbacks),
    )
    .await;

    let mut first = Vec::new();
    for customer in &CUSTOMERS {
        let id = write(&desk, &format!("{}-1", customer.id), customer, customer.complaint).await;
        desk.patch(id, "rita", json!({"assignee": "rita"})).await;
        let (status, body) = desk
            .escalate(id, "rita", json!({"to": {"tier": "next"}, "summary": SUMMARY}))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        desk.patch(id, "ross", json!({"status": "pending"})).await;
        first.push(id);
    }
    // A day waiting on the customer: the reminder. Three days: closed by the desk.
    desk.clock.set(at("2026-12-01T09:01:00Z"));
    for id in &first {
        callbacks.wait(*id, 4).await;
    }
    desk.clock.set(at("2026-12-03T09:05:00Z"));
    for id in &first {
        let bodies = callbacks.wait(*id, 5).await;
        assert_eq!(
            events(&bodies),
            ["received", "assigned", "escalated", "waiting_reminder", "auto_closed"]
        );
        let conversation = desk.conversation(*id).await;
        assert_eq!(conversation["status"], "resolved");
        assert_eq!(conversation["csat"], Value::Null, "no question after a close");
    }

    // They write again: a new conversation, taken and resolved, with the question.
    let mut second = Vec::new();
    for customer in &CUSTOMERS {
        let id = write(&desk, &format!("{}-2", customer.id), customer, customer.complaint).await;
        assert!(!first.contains(&id));
        desk.patch(id, "rita", json!({"assignee": "rita"})).await;
        desk.patch(id, "rita", json!({"status": "resolved"})).await;
        second.push(id);
    }
    let mut texts = Vec::new();
    for ((customer, old), new) in CUSTOMERS.iter().zip(&first).zip(&second) {
        let old_bodies = callbacks.of(*old);
        let bodies = callbacks.wait(*new, 4).await;
        assert_eq!(events(&bodies), ["received", "assigned", "resolved", "csat.requested"]);
        for body in old_bodies.iter().chain(&bodies) {
            assert_eq!(body["kind"], "status_update");
            assert_eq!(body["fields"]["language"], customer.language, "{body}");
            assert_eq!(body["fields"]["contact_language"], customer.language, "{body}");
        }
        let (old_ref, new_ref) = (format!("#{old}"), format!("#{new}"));
        let csat = bodies.iter().find(|body| body["event"] == "csat.requested").unwrap();
        assert_eq!(csat["fields"]["csat"], json!({"min": 1, "max": 5}));
        assert_eq!(csat["fields"]["reference"], new_ref);
        let escalated = old_bodies.iter().find(|body| body["event"] == "escalated").unwrap();
        assert_eq!(escalated["fields"]["team"]["name"], "Returns L2");
        texts.push((
            customer.language,
            [
                text_of(&old_bodies, "received").to_owned(),
                text_of(&old_bodies, "assigned").to_owned(),
                text_of(&old_bodies, "escalated").to_owned(),
                text_of(&old_bodies, "waiting_reminder").to_owned(),
                text_of(&old_bodies, "auto_closed").to_owned(),
                text_of(&bodies, "resolved").to_owned(),
                text_of(&bodies, "csat.requested").to_owned(),
            ],
            old_ref,
            new_ref,
        ));
    }
    for (language, [received, assigned, escalated, reminder, closed, resolved, csat], old, new) in &texts {
        match *language {
            "th" => {
                assert_eq!(received, &format!("ได้รับข้อความของคุณแล้ว หมายเลขอ้างอิง {old} ทีม Returns"));
                assert_eq!(assigned, &format!("rita กำลังดูแลเรื่อง {old} ของคุณ"));
                assert_eq!(escalated, &format!("ส่งเรื่อง {old} ต่อให้ทีม Returns L2 แล้ว"));
                assert_eq!(reminder, &format!("เรายังรอคำตอบของคุณเรื่อง {old}"));
                assert_eq!(closed, &format!("ปิดเรื่อง {old} แล้วเนื่องจากไม่ได้รับคำตอบ"));
                assert_eq!(resolved, &format!("เรื่อง {new} ได้รับการแก้ไขแล้ว"));
                assert_eq!(csat, &format!("ให้คะแนนความพึงพอใจ 1 ถึง 5 สำหรับเรื่อง {new}"));
            }
            "ar" => {
                assert_eq!(received, &format!("تلقينا رسالتك. رقمك المرجعي {old} فريق Returns"));
                assert_eq!(assigned, &format!("rita يتابع طلبك {old}"));
                assert_eq!(escalated, &format!("أحلنا طلبك {old} إلى فريق Returns L2"));
                assert_eq!(reminder, &format!("ما زلنا ننتظر ردك بشأن {old}"));
                assert_eq!(closed, &format!("أغلقنا طلبك {old} لعدم الرد"));
                assert_eq!(resolved, &format!("تم حل طلبك {new}"));
                assert_eq!(csat, &format!("قيّم رضاك من 1 إلى 5 عن طلبك {new}"));
            }
            _ => {
                // The built-in English set, with the contact's name unknown.
                assert!(
                    received.starts_with("Hello,\n\nwe received your message."),
                    "{received}"
                );
                assert!(received.contains(old) && received.contains("Returns will get back to you soon"));
                assert!(assigned.contains(&format!("rita is now looking after your request {old}")));
                assert!(escalated.contains(&format!("passed your request {old} to Returns L2")));
                assert!(reminder.contains(&format!("waiting for your answer about {old}")));
                assert!(closed.contains(&format!("closed your request {old}")));
                assert!(resolved.contains(&format!("request {new} as resolved")));
                assert!(csat.contains(new) && csat.contains("Reply with a digit from 1 (poor) to 5"));
            }
        }
    }
    // The internal summary reached the next team, never the customer.
    let escalated = desk.conversation(first[0]).await;
    assert_eq!(escalated["escalation"]["summary"], SUMMARY);
    assert!(
        !callbacks.all().contains("chargeback"),
        "the summary leaked to the channel"
    );
    desk.stop().await;
}

#[tokio::test]
async fn an_update_sent_in_a_fallback_language_says_so_and_every_outbound_text_records_its_language() {
    let callbacks = Callbacks::start().await;
    let desk = rita_desk(&callbacks).await;
    // German: the desk has no German templates, so the built-in English ones go out.
    let hans = Customer {
        id: "hans",
        language: "de",
        complaint: "My parcel never arrived",
    };
    let id = write(&desk, "hans-1", &hans, hans.complaint).await;
    desk.patch(id, "rita", json!({"assignee": "rita"})).await;
    let answer = "Guten Tag, wir haben Ihr Paket heute noch einmal verschickt, es kommt morgen bei Ihnen an.";
    let (status, body) = desk
        .call(
            reqwest::Method::POST,
            &format!("/conversations/{id}/messages"),
            "rita",
            Some(json!({"text": "Parcel re-sent with DHL, tracking in the order.", "private": true})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    reply(&desk, id, "rita", answer).await;
    callbacks.wait_for_reply(id, answer).await;
    let bodies = callbacks.of(id);
    assert_eq!(events(&bodies), ["received", "assigned"]);
    for body in bodies.iter().filter(|body| body["kind"] == "status_update") {
        assert_eq!(
            (&body["fields"]["language"], &body["fields"]["contact_language"]),
            (&json!("en"), &json!("de")),
            "{body}"
        );
    }
    // The messages say the same: each outbound text in the language it was written in.
    let conversation = desk.conversation(id).await;
    let languages: Vec<(&str, &Value)> = conversation["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|message| (message["kind"].as_str().unwrap(), &message["language"]))
        .collect();
    assert_eq!(
        languages,
        [
            ("message", &json!("de")),
            ("status_update", &json!("en")),
            ("status_update", &json!("en")),
            ("note", &Value::Null),
            ("reply", &json!("de")),
        ]
    );
    desk.stop().await;
}

#[tokio::test]
async fn out_of_hours_names_the_next_opening_in_the_customers_own_zone() {
    let callbacks = Callbacks::start().await;
    // Friday 18:30 in Berlin: billing (09:00–18:00 Berlin) is closed until Monday.
    let desk = Desk::start_with(at("2026-11-27T17:30:00Z"), &[], &setup(&callbacks)).await;
    let write = |event: &'static str, from: &'static str, text: &'static str, language: &'static str, zone: Value| {
        let desk = &desk;
        async move {
            let (status, body) = desk
                .hook(
                    json!({"id": event, "from": {"id": from, "name": "Kim"}, "text": text, "language": language,
                             "metadata": {"time_zone": zone}}),
                )
                .await;
            assert_eq!(status, StatusCode::ACCEPTED, "{body}");
            body["conversation_id"].as_i64().unwrap()
        }
    };
    let bangkok = write("o1", "somchai", "ขอคืนเงินด้วยครับ", "th", json!("Asia/Bangkok")).await;
    let unknown_zone = write("o2", "layla", "أريد استرداد المبلغ", "ar", Value::Null).await;
    let new_york = write("o3", "kim", "I want a refund please", "en", json!("America/New_York")).await;
    // A zone that does not exist is not the customer's: the team's is used.
    let bad_zone = write("o4", "ben", "refund for order 7", "en", json!("Mars/Olympus")).await;

    let only_update = |id: i64| {
        let callbacks = &callbacks;
        async move {
            let bodies = callbacks.wait(id, 1).await;
            assert_eq!(
                events(&bodies),
                ["out_of_hours"],
                "instead of the acknowledgement, not besides"
            );
            bodies[0].clone()
        }
    };
    let thai = only_update(bangkok).await;
    assert_eq!(
        thai["text"],
        "ขณะนี้อยู่นอกเวลาทำการ เราจะกลับมาวันที่ 2026-11-30 เวลา 15:00 (Asia/Bangkok)"
    );
    assert_eq!(
        thai["fields"]["next_open"],
        json!({"at": "2026-11-30T15:00:00+07:00", "time_zone": "Asia/Bangkok"})
    );
    let arabic = only_update(unknown_zone).await;
    assert_eq!(
        arabic["text"],
        "نحن خارج ساعات العمل، نعود في 2026-11-30 الساعة 09:00 (Europe/Berlin)"
    );
    let english = only_update(new_york).await;
    assert!(
        english["text"]
            .as_str()
            .unwrap()
            .contains("we are back on Monday 2026-11-30 at 03:00 (America/New_York)"),
        "{english}"
    );
    let fallback = only_update(bad_zone).await;
    assert!(
        fallback["text"].as_str().unwrap().contains("at 09:00 (Europe/Berlin)"),
        "{fallback}"
    );

    // During office hours the same message is simply acknowledged.
    desk.clock.set(at("2026-11-30T08:30:00Z"));
    let open = write("o5", "nora", "refund for order 8", "en", Value::Null).await;
    assert_eq!(events(&callbacks.wait(open, 1).await), ["received"]);
    desk.stop().await;
}

#[tokio::test]
async fn satisfaction_answers_arrive_by_webhook_or_digit_and_other_replies_reopen() {
    let callbacks = Callbacks::start().await;
    let desk = rita_desk(&callbacks).await;
    let [emma, somchai, layla] = &CUSTOMERS;
    let mut ids = Vec::new();
    for customer in [emma, somchai, layla] {
        let id = write(&desk, &format!("{}-1", customer.id), customer, customer.complaint).await;
        // Not asked yet: an answer is refused and changes nothing.
        let (status, body) = desk
            .hook(
                json!({"id": format!("{}-early", customer.id), "from": {"id": customer.id},
                         "csat": {"conversation_id": id, "score": 5}}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(
            body["error"]["message"],
            "`csat` the conversation has no open satisfaction question"
        );
        desk.patch(id, "rita", json!({"status": "resolved"})).await;
        assert_eq!(
            events(&callbacks.wait(id, 3).await),
            ["received", "resolved", "csat.requested"]
        );
        ids.push(id);
    }

    // The app's own rating screen answers through the hook.
    let (status, body) = desk
        .hook(json!({"id": "emma-rating", "from": {"id": "emma"},
                     "csat": {"conversation_id": ids[0], "score": 4, "comment": "Quick, thanks"}}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["conversation_id"], ids[0]);
    // A conversation of somebody else cannot be rated.
    let (status, _) = desk
        .hook(json!({"id": "emma-other", "from": {"id": "emma"}, "csat": {"conversation_id": ids[1], "score": 1}}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // A Thai customer types the digit in Thai script, with a comment on the next line.
    assert_eq!(write(&desk, "somchai-2", somchai, "๕\nบริการดีมาก").await, ids[1]);
    // An Arabic customer writes again about the problem: that reopens.
    assert_eq!(write(&desk, "layla-2", layla, "ما زالت المشكلة قائمة").await, ids[2]);

    let rated = desk.conversation(ids[0]).await;
    assert_eq!(rated["status"], "resolved");
    assert_eq!(rated["csat"]["score"], 4);
    assert_eq!(rated["csat"]["comment"], "Quick, thanks");
    let answered = desk.events(ids[0], "csat.answered", 1).await;
    assert_eq!(answered[0]["data"]["via"], "webhook");
    let digit = desk.conversation(ids[1]).await;
    assert_eq!(digit["status"], "resolved");
    assert_eq!(digit["csat"]["score"], 5);
    assert_eq!(digit["csat"]["comment"], "บริการดีมาก");
    let reopened = desk.conversation(ids[2]).await;
    assert_eq!(reopened["status"], "open");
    assert_eq!(reopened["csat"]["score"], Value::Null);
    assert_eq!(
        reopened["messages"].as_array().unwrap().last().unwrap()["text"],
        "ما زالت المشكلة قائمة"
    );
    // Answers start no new conversations and send nothing back.
    let (_, listed) = desk
        .call(reqwest::Method::GET, "/conversations?limit=50", "rita", None)
        .await;
    assert_eq!(listed["conversations"].as_array().unwrap().len(), 3);
    for id in &ids[..2] {
        assert_eq!(callbacks.of(*id).len(), 3);
    }
    desk.stop().await;
}

#[tokio::test]
async fn an_update_of_a_kind_goes_once_per_window_and_not_at_all_after_stop() {
    let callbacks = Callbacks::start().await;
    let desk = Desk::start_with(
        at("2026-11-30T09:00:00Z"),
        &[
            ("rita", "returns", Role::Agent, true),
            ("rob", "returns", Role::Agent, true),
        ],
        &setup(&callbacks),
    )
    .await;
    let [emma, somchai, _] = &CUSTOMERS;
    let id = write(&desk, "emma-1", emma, emma.complaint).await;
    // Passed back and forth within the hour: the customer hears of it once.
    desk.patch(id, "rita", json!({"assignee": "rita"})).await;
    desk.patch(id, "rita", json!({"assignee": "rob"})).await;
    desk.patch(id, "rob", json!({"assignee": "rita"})).await;
    // A reply is the barrier: a conversation's messages leave in order, so anything
    // queued before it has arrived when it has.
    reply(&desk, id, "rita", "Looking into it").await;
    let bodies = callbacks.wait(id, 3).await;
    assert_eq!(events(&bodies), ["received", "assigned"]);
    assert_eq!(bodies[2]["kind"], "reply");
    assert!(bodies[1]["text"].as_str().unwrap().contains("rita is now looking"));
    // After the window, the next change is news again.
    desk.clock.advance(Duration::from_secs(61 * 60));
    desk.patch(id, "rita", json!({"assignee": "rob"})).await;
    let bodies = callbacks.wait(id, 4).await;
    assert_eq!(bodies[3]["event"], "assigned");
    assert!(bodies[3]["text"].as_str().unwrap().contains("rob is now looking"));

    // Somchai stops the app's notifications: agents still reach him, updates do not.
    let other = write(&desk, "somchai-1", somchai, somchai.complaint).await;
    callbacks.wait(other, 1).await;
    let (status, body) = desk
        .hook(json!({"id": "somchai-stop", "from": {"id": "somchai"}, "text": "stop", "opt_out": true}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let stopped = desk.conversation(other).await;
    assert!(stopped["contact"]["updates_stopped_at"].is_string());
    assert_eq!(stopped["status"], "open");
    desk.patch(other, "rita", json!({"assignee": "rita"})).await;
    desk.patch(other, "rita", json!({"status": "resolved"})).await;
    reply(&desk, other, "rita", "Refund sent").await;
    let bodies = callbacks.wait(other, 2).await;
    assert_eq!(events(&bodies), ["received"], "no assigned, resolved or csat update");
    assert_eq!(
        (bodies[1]["kind"].as_str(), bodies[1]["text"].as_str()),
        (Some("reply"), Some("Refund sent"))
    );
    // And he turns them on again.
    let (status, _) = desk
        .hook(json!({"id": "somchai-start", "from": {"id": "somchai"}, "text": "start", "opt_out": false}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let resumed = desk.conversation(other).await;
    assert_eq!(resumed["contact"]["updates_stopped_at"], Value::Null);
    let later = write(&desk, "somchai-3", somchai, "another parcel never arrived").await;
    assert_eq!(events(&callbacks.wait(later, 1).await), ["received"]);
    desk.stop().await;
}

/// An agent's reply, stored.
pub(super) async fn reply(desk: &Desk, id: i64, agent: &str, text: &str) {
    let (status, body) = desk
        .call(
            reqwest::Method::POST,
            &format!("/conversations/{id}/messages"),
            agent,
            Some(json!({"text": text})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn the_satisfaction_page_refuses_what_it_cannot_record_in_words_for_people() {
    let desk = Desk::start(at("2026-11-30T09:00:00Z"), &[]).await;
    let http = reqwest::Client::new();
    let page = http.get(desk.url("/csat/not-a-token?score=4")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::NOT_FOUND);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(page.text().await.unwrap().contains("This link is not valid"));
    let posted = http
        .post(desk.url("/csat/not-a-token"))
        .form(&[("score", "4")])
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), StatusCode::NOT_FOUND);
    let unreadable = http
        .post(desk.url("/csat/not-a-token"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(unreadable.status(), StatusCode::BAD_REQUEST);
    assert!(unreadable.text().await.unwrap().contains("could not read your answer"));
    desk.stop().await;
}

#[tokio::test]
async fn late_answers_are_refused_and_a_stop_with_words_is_still_a_message() {
    let callbacks = Callbacks::start().await;
    let desk = rita_desk(&callbacks).await;
    let [emma, somchai, layla] = &CUSTOMERS;
    let mut ids = Vec::new();
    for customer in [emma, somchai, layla] {
        let id = write(&desk, &format!("{}-1", customer.id), customer, customer.complaint).await;
        desk.patch(id, "rita", json!({"status": "resolved"})).await;
        callbacks.wait(id, 3).await;
        ids.push(id);
    }

    // A bare "stop" on a resolved conversation reopens nothing.
    let (status, _) = desk
        .hook(json!({"id": "layla-stop", "from": {"id": "layla"}, "text": "stop", "opt_out": true}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let stopped = desk.conversation(ids[2]).await;
    assert_eq!(stopped["status"], "resolved");
    assert!(stopped["contact"]["updates_stopped_at"].is_string());
    // One that says more is a message like any other: it reopens.
    let (status, body) = desk
        .hook(json!({"id": "somchai-stop", "from": {"id": "somchai"}, "opt_out": true,
                     "text": "stop the messages\nbut my parcel still never arrived"}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(body["conversation_id"], ids[1]);
    let reopened = desk.conversation(ids[1]).await;
    assert_eq!(reopened["status"], "open");
    assert!(reopened["contact"]["updates_stopped_at"].is_string());

    // A week and a minute later the question is closed: an answer is refused and
    // changes nothing, a digit is a new message.
    desk.clock.advance(Duration::from_secs(7 * 86_400 + 60));
    let before = desk.conversation(ids[0]).await;
    let (status, body) = desk
        .hook(json!({"id": "emma-late", "from": {"id": "emma"},
                     "csat": {"conversation_id": ids[0], "score": 5}}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let after = desk.conversation(ids[0]).await;
    assert_eq!(after["csat"], before["csat"]);
    assert_eq!(after["messages"], before["messages"]);
    let digit = write(&desk, "emma-digit", emma, "5").await;
    assert_ne!(digit, ids[0]);
    assert_eq!(desk.conversation(ids[0]).await["csat"]["score"], Value::Null);
    desk.stop().await;
}
