//! The WhatsApp channel end to end: Meta's webhooks signed and posted to the daemon's
//! hook, its sends answered by a fake Graph API speaking the Cloud API's wire format (the
//! real one cannot run here), and the 24-hour customer service window driven by the
//! desk's clock.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use switchboard::model::Role;
use switchboard_test_mailservers::eventually;
use switchboard_test_whatsapp::{
    Failure, FakeWhatsapp, PHONE_NUMBER_ID, image_message, post_webhook, signature, status, text_message,
};

use super::{Desk, MONDAY_10, READER, Setup, at};

const ACCESS_TOKEN: &str = "EAAGfake-access-token-for-the-shop-number";
const APP_SECRET: &str = "6a1f0c2e9b3d4a5f8e7d6c5b4a3f2e1d";
const VERIFY_TOKEN: &str = "shop-wa-verify-2026";
const INBOX: &str = "shop-wa";
/// Ada's WhatsApp id (her phone number's digits).
const ADA: &str = "491701234567";
const AGENT: &str = "ana";
const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// A desk with the WhatsApp inbox on `fake`: acknowledgements and resolutions go out,
/// and one approved template, for `resolved`.
async fn desk(fake: &FakeWhatsapp, secrets: &std::path::Path) -> Desk {
    let secret = |name: &str, value: &str| {
        let path = secrets.join(name);
        std::fs::write(&path, format!("{value}\n")).unwrap();
        path.display().to_string()
    };
    let inbox = format!(
        r#"
[inboxes.{INBOX}]
name = "Shop WhatsApp"

[inboxes.{INBOX}.whatsapp]
phone_number_id = "{PHONE_NUMBER_ID}"
access_token_file = "{token}"
app_secret_file = "{app_secret}"
verify_token_file = "{verify}"
api_base = "{api}"
# The fake takes messages as fast as they come; the pair limit is the fake's to answer.
pair_interval = "0s"
pair_rate_wait = "2s"
fallback_language = "en"

[inboxes.{INBOX}.whatsapp.templates.resolved.en]
name = "ticket_resolved"
language = "en_US"
parameters = ["reference", "team.name"]
"#,
        token = secret("wa-token", ACCESS_TOKEN),
        app_secret = secret("wa-app-secret", APP_SECRET),
        verify = secret("wa-verify", VERIFY_TOKEN),
        api = fake.api_base(),
    );
    let setup = Setup {
        updates: "[updates]\nevents = [\"received\", \"resolved\", \"csat\"]".into(),
        inboxes: inbox,
        ..Setup::default()
    };
    Desk::start_with(at(MONDAY_10), &[(AGENT, "support", Role::Agent, true)], &setup).await
}

/// Waits until Ada's acknowledgement reached the Graph API.
async fn acknowledged(fake: &FakeWhatsapp) {
    fake.wait_until(Duration::from_secs(20), "the acknowledgement", |fake| {
        (!sent_to_ada(fake).is_empty()).then_some(())
    })
    .await;
}

async fn started() -> (FakeWhatsapp, tempfile::TempDir, Desk) {
    let fake = FakeWhatsapp::start(ACCESS_TOKEN).await;
    let secrets = tempfile::tempdir().unwrap();
    let desk = desk(&fake, secrets.path()).await;
    (fake, secrets, desk)
}

impl Desk {
    /// Posts a webhook body signed with the app secret; the status answered.
    async fn whatsapp(&self, body: &Value) -> u16 {
        post_webhook(&self.url(&format!("/hooks/{INBOX}")), APP_SECRET, body).await
    }

    /// The WhatsApp conversations, oldest first.
    async fn whatsapp_conversations(&self) -> Vec<Value> {
        let page = self.get("/conversations?channel=whatsapp&limit=100", READER).await;
        let mut list = page["conversations"].as_array().unwrap().clone();
        list.sort_by_key(|conversation| conversation["id"].as_i64());
        list
    }

    /// Ada writes `text`; returns her conversation once it holds the message.
    async fn ada_writes(&self, wamid: &str, text: &str) -> i64 {
        assert_eq!(
            self.whatsapp(&text_message(ADA, "Ada Lovelace", wamid, text)).await,
            200
        );
        let list = self.whatsapp_conversations().await;
        assert_eq!(list.len(), 1, "{list:#?}");
        list[0]["id"].as_i64().unwrap()
    }

    async fn reply(&self, conversation: i64, text: &str) -> (StatusCode, Value) {
        self.call(
            Method::POST,
            &format!("/conversations/{conversation}/messages"),
            AGENT,
            Some(json!({"text": text})),
        )
        .await
    }

    /// The conversation's message `id` once its delivery satisfies `done`.
    async fn delivery_of(&self, conversation: i64, id: i64, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        eventually(&format!("message {id} {what}"), || async {
            let detail = self.conversation(conversation).await;
            let message = detail["messages"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["id"] == id)?
                .clone();
            done(&message["delivery"]).then_some(message)
        })
        .await
    }
}

/// The messages the fake accepted for Ada, oldest first.
fn sent_to_ada(fake: &FakeWhatsapp) -> Vec<switchboard_test_whatsapp::SentMessage> {
    fake.sent().into_iter().filter(|sent| sent.to == ADA).collect()
}

#[tokio::test]
async fn a_text_and_an_image_become_one_conversation_and_its_acknowledgement_goes_out() {
    let (fake, _secrets, desk) = started().await;
    let photo = b"\xff\xd8\xff\xe0 a photo of a dented box".to_vec();
    fake.host_media("media-dented-box", "image/jpeg", photo.clone());
    let id = desk.ada_writes("wamid.ADA1", "My order 1001 arrived broken").await;
    let image = image_message(ADA, "Ada Lovelace", "wamid.ADA2", "media-dented-box", Some("the box"));
    assert_eq!(desk.whatsapp(&image).await, 200);

    let detail = desk.conversation(id).await;
    assert_eq!(detail["channel"], "whatsapp");
    assert_eq!(detail["contact"]["external_id"], ADA);
    assert_eq!(detail["contact"]["name"], "Ada Lovelace");
    let inbound: Vec<&Value> = detail["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["direction"] == "inbound")
        .collect();
    assert_eq!(inbound.len(), 2, "{detail:#}");
    assert_eq!(inbound[0]["text"], "My order 1001 arrived broken");
    assert_eq!(inbound[1]["text"], "the box");
    assert_eq!(inbound[1]["attachments"][0]["content_type"], "image/jpeg");
    assert_eq!(inbound[1]["attachments"][0]["size"], photo.len());

    // The acknowledgement leaves by WhatsApp, as free text inside the window.
    let sent = fake
        .wait_until(Duration::from_secs(20), "the acknowledgement", |fake| {
            let sent = sent_to_ada(fake);
            (!sent.is_empty()).then_some(sent)
        })
        .await;
    assert_eq!(sent[0].kind, "text");
    assert!(
        sent[0].text().unwrap().contains(&format!("#{id}")),
        "{:?}",
        sent[0].body
    );
}

#[tokio::test]
async fn a_forged_signature_is_refused_and_stores_nothing() {
    let (_fake, _secrets, desk) = started().await;
    let body = text_message(ADA, "Ada Lovelace", "wamid.FORGED", "Send me the refund");
    let raw = body.to_string();
    let response = reqwest::Client::new()
        .post(desk.url(&format!("/hooks/{INBOX}")))
        .header("content-type", "application/json")
        .header("x-hub-signature-256", signature("not-the-app-secret", raw.as_bytes()))
        .body(raw)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "invalid_signature", "{error}");
    assert!(desk.whatsapp_conversations().await.is_empty());
    // Unsigned: refused before the body is read.
    let unsigned = reqwest::Client::new()
        .post(desk.url(&format!("/hooks/{INBOX}")))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), StatusCode::UNAUTHORIZED);
    assert!(desk.whatsapp_conversations().await.is_empty());
}

#[tokio::test]
async fn the_subscription_handshake_echoes_the_challenge_only_for_the_verify_token() {
    let (_fake, _secrets, desk) = started().await;
    let handshake = |token: &str| {
        let url = desk.url(&format!(
            "/hooks/{INBOX}?hub.mode=subscribe&hub.verify_token={token}&hub.challenge=1158201444"
        ));
        async move { reqwest::get(url).await.unwrap() }
    };
    let accepted = handshake(VERIFY_TOKEN).await;
    assert_eq!(accepted.status(), StatusCode::OK);
    assert_eq!(accepted.text().await.unwrap(), "1158201444");
    assert_eq!(handshake("guessed").await.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_repeated_delivery_is_one_message() {
    let (_fake, _secrets, desk) = started().await;
    let body = text_message(ADA, "Ada Lovelace", "wamid.TWICE", "Is my parcel on its way?");
    assert_eq!(desk.whatsapp(&body).await, 200);
    // Meta redelivers what it thinks was not acknowledged.
    assert_eq!(desk.whatsapp(&body).await, 200);
    let list = desk.whatsapp_conversations().await;
    assert_eq!(list.len(), 1);
    let detail = desk.conversation(list[0]["id"].as_i64().unwrap()).await;
    let inbound = detail["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["direction"] == "inbound")
        .count();
    assert_eq!(inbound, 1, "{detail:#}");
}

#[tokio::test]
async fn a_reply_goes_out_and_delivered_after_read_does_not_move_its_state_back() {
    let (fake, _secrets, desk) = started().await;
    let id = desk.ada_writes("wamid.ADA1", "Where is my parcel?").await;
    let (answered, reply) = desk.reply(id, "It left our warehouse this morning.").await;
    assert_eq!(answered, StatusCode::CREATED, "{reply}");
    let reply_id = reply["id"].as_i64().unwrap();
    let sent = fake
        .wait_until(Duration::from_secs(20), "the reply", |fake| {
            sent_to_ada(fake)
                .into_iter()
                .find(|sent| sent.text() == Some("It left our warehouse this morning."))
        })
        .await;
    desk.delivery_of(id, reply_id, "sent", |delivery| delivery["status"] == "sent")
        .await;

    // Meta's statuses arrive in any order: read overtakes delivered.
    assert_eq!(desk.whatsapp(&status(&sent.id, "sent", &[])).await, 200);
    assert_eq!(desk.whatsapp(&status(&sent.id, "read", &[])).await, 200);
    let read = desk
        .delivery_of(id, reply_id, "read", |delivery| delivery["channel_state"] == "read")
        .await;
    assert_eq!(read["delivery"]["status"], "sent");
    assert_eq!(desk.whatsapp(&status(&sent.id, "delivered", &[])).await, 200);
    let after = desk.conversation(id).await;
    let message = after["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == reply_id)
        .unwrap();
    assert_eq!(message["delivery"]["channel_state"], "read", "{message:#}");
    // The read moved the state and told the conversation (a console redraws the line);
    // `sent` told nothing the delivery's status does not, and the late delivered did
    // neither.
    let reported: Vec<&Value> = after["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|event| event["kind"] == "delivery.reported" && event["data"]["message_id"] == reply_id)
        .collect();
    assert_eq!(
        reported.iter().map(|event| &event["data"]["state"]).collect::<Vec<_>>(),
        ["read"],
        "{reported:#?}"
    );

    // Ada answers quoting the reply: a chat has no threads, so it joins her conversation.
    let mut quoting = text_message(ADA, "Ada Lovelace", "wamid.ADA2", "Great, thanks!");
    quoting["entry"][0]["changes"][0]["value"]["messages"][0]["context"] =
        json!({"from": PHONE_NUMBER_ID, "id": sent.id});
    assert_eq!(desk.whatsapp(&quoting).await, 200);
    let list = desk.whatsapp_conversations().await;
    assert_eq!(list.len(), 1, "{list:#?}");
    let messages = desk.conversation(id).await["messages"].as_array().unwrap().clone();
    let last = messages.last().unwrap();
    assert_eq!(last["text"], "Great, thanks!");
    assert_eq!(last["details"]["quotes"], sent.id.as_str());
}

#[tokio::test]
async fn a_failed_status_fails_the_delivery_and_tells_the_conversation() {
    a_failed_status_fails_the_reply(false).await;
}

#[tokio::test]
async fn a_failure_reported_before_the_sends_answer_still_fails_the_delivery() {
    a_failed_status_fails_the_reply(true).await;
}

/// Ada gets a reply and Meta reports it failed: after the desk recorded the send, or
/// (`before_the_answer`) while the fake still holds its answer to the send, Meta's
/// webhook outrunning it; then the desk has no message by that wamid yet, and must keep
/// the report for it.
async fn a_failed_status_fails_the_reply(before_the_answer: bool) {
    let (fake, _secrets, desk) = started().await;
    let id = desk.ada_writes("wamid.ADA1", "Can you call me back?").await;
    let release = if before_the_answer {
        acknowledged(&fake).await;
        Some(fake.hold_next_send())
    } else {
        None
    };
    let (_, reply) = desk.reply(id, "We will call you at 3 pm.").await;
    let reply_id = reply["id"].as_i64().unwrap();
    let sent = fake
        .wait_until(Duration::from_secs(20), "the reply", |fake| {
            sent_to_ada(fake)
                .into_iter()
                .find(|sent| sent.text() == Some("We will call you at 3 pm."))
        })
        .await;
    if release.is_none() {
        desk.delivery_of(id, reply_id, "sent", |delivery| delivery["status"] == "sent")
            .await;
    }
    let failed = status(&sent.id, "failed", &[(131_026, "Message undeliverable")]);
    assert_eq!(desk.whatsapp(&failed).await, 200);
    if let Some(release) = release {
        release.notify_one();
    }
    let message = desk
        .delivery_of(id, reply_id, "failed", |delivery| delivery["status"] == "failed")
        .await;
    assert_eq!(message["delivery"]["channel_state"], "failed");
    assert!(
        message["delivery"]["last_error"].as_str().unwrap().contains("131026"),
        "{message:#}"
    );
    let events = desk.events(id, "delivery.failed", 1).await;
    assert_eq!(events[0]["data"]["message_id"], reply_id);
}

#[tokio::test]
async fn outside_the_window_a_reply_is_refused_and_a_status_update_goes_by_its_template_or_is_skipped() {
    let (fake, _secrets, desk) = started().await;
    let id = desk.ada_writes("wamid.ADA1", "My parcel never arrived").await;
    acknowledged(&fake).await;
    let before = sent_to_ada(&fake).len();
    // The detail says how long a reply may still go, by the rule that refuses it.
    let window = |detail: &Value| detail["reply_window"].clone();
    let wrote_at = desk.conversation(id).await["messages"][0]["created_at"].clone();
    assert_eq!(wrote_at, "2026-11-30T09:00:00.000Z");
    let open = json!({"open": true, "closes_at": "2026-12-01T09:00:00.000Z"});
    assert_eq!(window(&desk.conversation(id).await), open);
    desk.clock.advance(DAY + Duration::from_secs(60));
    let closed = json!({"open": false, "closes_at": "2026-12-01T09:00:00.000Z"});
    assert_eq!(window(&desk.conversation(id).await), closed);

    // An agent's free-form reply would be refused by WhatsApp: the desk refuses it first.
    // (The admin writes: a day's wait escalated the conversation past the agent's team.)
    let (answered, refused) = desk
        .call(
            Method::POST,
            &format!("/conversations/{id}/messages"),
            READER,
            Some(json!({"text": "Sorry for the wait, we are on it."})),
        )
        .await;
    assert_eq!(answered, StatusCode::CONFLICT, "{refused}");
    let reason = refused["error"]["message"].as_str().unwrap();
    assert!(reason.contains("reply window") && reason.contains("1day"), "{reason}");

    // Resolving sends `resolved` by its approved template, and `csat.requested`, which
    // has none, is skipped with the reason on the conversation.
    let resolved = desk.patch(id, READER, json!({"status": "resolved"})).await;
    let template = fake
        .wait_until(Duration::from_secs(20), "the resolved template", |fake| {
            sent_to_ada(fake)
                .into_iter()
                .skip(before)
                .find(|sent| sent.kind == "template")
        })
        .await;
    assert_eq!(template.body["template"]["name"], "ticket_resolved");
    assert_eq!(template.body["template"]["language"]["code"], "en_US");
    let parameters = &template.body["template"]["components"][0]["parameters"];
    assert_eq!(parameters[0]["text"], format!("#{id}"), "{:#}", template.body);
    assert_eq!(parameters[1]["text"], resolved["team"]["name"], "{resolved:#}");
    let skipped = desk.events(id, "delivery.skipped", 1).await;
    assert!(
        skipped[0]["data"]["reason"]
            .as_str()
            .unwrap()
            .contains("csat.requested"),
        "{skipped:#?}"
    );
    let detail = desk.conversation(id).await;
    let csat = detail["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == skipped[0]["data"]["message_id"])
        .unwrap();
    assert_eq!(csat["delivery"]["status"], "skipped", "{csat:#}");
    // Operators see it apart: the acknowledgement and the template were sent, the
    // question was not.
    eventually("the outbox gauges", || async {
        let metrics = desk.metrics().await?;
        (metrics.contains("switchboard_outbox_deliveries{status=\"sent\"} 2\n")
            && metrics.contains("switchboard_outbox_deliveries{status=\"skipped\"} 1\n"))
        .then_some(())
    })
    .await;
    // Nothing free-form left after the window closed.
    assert!(
        sent_to_ada(&fake)
            .iter()
            .skip(before)
            .all(|sent| sent.kind == "template"),
        "{:#?}",
        sent_to_ada(&fake)
    );
}

#[tokio::test]
async fn a_report_no_send_carries_is_forgotten_after_a_day_and_ours_are_kept() {
    let (fake, _secrets, desk) = started().await;
    let id = desk.ada_writes("wamid.ADA1", "Is my order on its way?").await;
    let acknowledgement = fake
        .wait_until(Duration::from_secs(20), "the acknowledgement", |fake| {
            sent_to_ada(fake).into_iter().next()
        })
        .await;
    assert_eq!(desk.whatsapp(&status(&acknowledgement.id, "read", &[])).await, 200);
    // A message another tool sent from the same number: its id encodes a customer's
    // number, and no send of the desk's will ever carry it.
    assert_eq!(desk.whatsapp(&status("wamid.HBgNOTOURS", "delivered", &[])).await, 200);

    desk.clock.advance(DAY + Duration::from_secs(60));
    eventually("the scheduler's daily prune", || async {
        desk.metrics()
            .await?
            .contains("switchboard_delivery_reports_pruned_total 1\n")
            .then_some(())
    })
    .await;
    let detail = desk.conversation(id).await;
    let states: Vec<&Value> = detail["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["kind"] == "status_update")
        .map(|m| &m["delivery"]["channel_state"])
        .collect();
    assert_eq!(states, [&json!("read")], "the acknowledgement's report stays");
}

#[tokio::test]
async fn a_pair_rate_limit_is_waited_out_and_the_reply_delivered_once() {
    let (fake, _secrets, desk) = started().await;
    let id = desk.ada_writes("wamid.ADA1", "Please confirm my new address").await;
    acknowledged(&fake).await;
    fake.fail_next_sends(Some(ADA), Failure::pair_rate_limit(), 1);
    let text = "Your new address is saved.";
    let (_, reply) = desk.reply(id, text).await;
    let reply_id = reply["id"].as_i64().unwrap();
    let waiting = desk
        .delivery_of(id, reply_id, "waiting to retry", |delivery| {
            delivery["status"] == "scheduled" && delivery["attempts"] == 1
        })
        .await;
    assert!(
        waiting["delivery"]["last_error"].as_str().unwrap().contains("131056"),
        "{waiting:#}"
    );
    // The retry is due on the desk's clock after the wait Meta's limit asks for.
    desk.clock.advance(Duration::from_secs(60));
    let delivered = desk
        .delivery_of(id, reply_id, "sent", |delivery| delivery["status"] == "sent")
        .await;
    assert_eq!(delivered["delivery"]["attempts"], 2);
    let accepted = sent_to_ada(&fake)
        .into_iter()
        .filter(|sent| sent.text() == Some(text))
        .count();
    assert_eq!(accepted, 1, "delivered once");
}

#[tokio::test]
async fn a_send_that_fails_part_way_resumes_after_what_went() {
    let (fake, _secrets, desk) = started().await;
    let id = desk.ada_writes("wamid.ADA1", "Can you send me the voice memo?").await;
    acknowledged(&fake).await;
    // A voice note takes no caption: the text and the file are two messages. Meta takes
    // the text, then has trouble of its own (131000) with the file.
    fake.fail_sends_after(Some(ADA), 1, Failure::something_went_wrong(), 1);
    let text = "Here is the memo from our call.";
    let (answered, reply) = desk
        .call(
            Method::POST,
            &format!("/conversations/{id}/messages"),
            AGENT,
            Some(json!({"text": text, "attachments": [
                {"filename": "memo.ogg", "content_type": "audio/ogg", "data_base64": "T2dnUwACAAAAAAAA"}
            ]})),
        )
        .await;
    assert_eq!(answered, StatusCode::CREATED, "{reply}");
    let reply_id = reply["id"].as_i64().unwrap();
    desk.delivery_of(id, reply_id, "waiting to retry", |delivery| {
        delivery["status"] == "scheduled" && delivery["attempts"] == 1
    })
    .await;
    desk.clock.advance(Duration::from_secs(60));
    let delivered = desk
        .delivery_of(id, reply_id, "sent", |delivery| delivery["status"] == "sent")
        .await;
    assert_eq!(delivered["delivery"]["attempts"], 2);
    let to_ada = sent_to_ada(&fake);
    let texts = to_ada.iter().filter(|sent| sent.text() == Some(text)).count();
    let memos = to_ada.iter().filter(|sent| sent.kind == "audio").count();
    assert_eq!((texts, memos), (1, 1), "each part once: {to_ada:#?}");
}

#[tokio::test]
async fn inside_the_window_the_satisfaction_question_is_a_list_and_the_customers_pick_is_their_score() {
    let (fake, _secrets, desk) = started().await;
    let id = desk.ada_writes("wamid.ADA1", "The parcel arrived, thank you").await;
    desk.patch(id, AGENT, json!({"status": "resolved"})).await;
    let question = fake
        .wait_until(Duration::from_secs(20), "the CSAT list", |fake| {
            sent_to_ada(fake).into_iter().find(|sent| sent.kind == "interactive")
        })
        .await;
    assert_eq!(question.body["interactive"]["type"], "list", "{:#}", question.body);
    let rows = question.body["interactive"]["action"]["sections"][0]["rows"]
        .as_array()
        .unwrap();
    assert_eq!(rows.len(), 5);
    // Ada picks the fifth row; WhatsApp posts her choice back as a list reply.
    let five = rows[4]["id"].as_str().unwrap();
    let pick = switchboard_test_whatsapp::list_reply(ADA, "Ada Lovelace", "wamid.ADA2", five, "5 ⭐⭐⭐⭐⭐");
    assert_eq!(desk.whatsapp(&pick).await, 200);
    let answered = desk.events(id, "csat.answered", 1).await;
    assert_eq!(answered[0]["data"]["score"], 5, "{answered:#?}");
    assert_eq!(desk.conversation(id).await["csat"]["score"], 5);
}
