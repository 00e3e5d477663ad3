//! The Telegram channel end to end against a fake Bot API (the real one cannot run
//! here) that speaks its wire format: long polling and webhook in, teloxide's requests
//! out, through the daemon's API and the fake's record of every call.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use switchboard_test_telegram::{Failure, FakeTelegram, telegram_inbox};

use crate::harness::{Daemon, config_with_inbox, eventually, with_update_events};

const TOKEN: &str = "5000000001:AAHfake-token-for-the-shop-help-bot";
const OTHER_TOKEN: &str = "5000000002:AAHfake-token-for-the-second-bot-00";
const ADA: i64 = 424_242;

/// The daemon on one bot (`shop-bot`), polling the fake.
async fn start(fake: &FakeTelegram, extra_inboxes: impl FnOnce(&std::path::Path) -> String) -> (Daemon, String) {
    start_with(fake, extra_inboxes, |config| config).await
}

/// [`start`], with the config changed by `edit` before the daemon reads it.
async fn start_with(
    fake: &FakeTelegram,
    extra_inboxes: impl FnOnce(&std::path::Path) -> String,
    edit: impl FnOnce(String) -> String,
) -> (Daemon, String) {
    fake.add_bot(TOKEN, 5_000_000_001, "ShopHelpBot");
    let dir = tempfile::tempdir().unwrap();
    let inboxes = format!(
        "{}{}",
        telegram_inbox(dir.path(), "shop-bot", TOKEN, fake, ""),
        extra_inboxes(dir.path())
    );
    std::fs::write(
        dir.path().join("switchboard.toml"),
        edit(config_with_inbox(dir.path(), &inboxes)),
    )
    .unwrap();
    let daemon = Daemon::start_in(dir).await;
    let token = daemon.agent("sam", "support", "admin");
    // Polling: the reader is waiting on a held getUpdates before a test pushes anything.
    eventually("the daemon's first getUpdates", || async {
        (fake.polls_in_flight(TOKEN) > 0).then_some(())
    })
    .await;
    (daemon, token)
}

fn private_text(user: i64, message_id: i64, text: &str) -> Value {
    json!({
        "message": {
            "message_id": message_id,
            "from": {"id": user, "is_bot": false, "first_name": "Ada", "last_name": "Lovelace", "language_code": "en", "username": "ada"},
            "chat": {"id": user, "type": "private", "first_name": "Ada", "username": "ada"},
            "date": 1_795_000_000,
            "text": text
        }
    })
}

async fn conversations(daemon: &Daemon, token: &str) -> Vec<Value> {
    let page = daemon.get("/conversations?limit=100", token).await;
    let mut list = page["conversations"].as_array().unwrap().clone();
    list.sort_by_key(|c| c["id"].as_i64());
    list
}

async fn inbound(daemon: &Daemon, token: &str, count: usize) -> Vec<Value> {
    eventually(&format!("{count} inbound messages"), || async {
        let mut messages = Vec::new();
        for conversation in conversations(daemon, token).await {
            let detail = daemon
                .get(&format!("/conversations/{}", conversation["id"]), token)
                .await;
            messages.extend(
                detail["messages"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|m| m["direction"] == "inbound")
                    .cloned(),
            );
        }
        assert!(messages.len() <= count, "more than {count}: {messages:#?}");
        (messages.len() == count).then_some(messages)
    })
    .await
}

async fn reply(daemon: &Daemon, token: &str, conversation: i64, text: &str) -> i64 {
    let (status, body) = daemon
        .api(
            Method::POST,
            &format!("/conversations/{conversation}/messages"),
            token,
            Some(json!({"text": text})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_i64().unwrap()
}

/// A config that also tells the customer of a resolution and asks for a score.
fn with_resolution_updates(config: String) -> String {
    with_update_events(&config, &["received", "greeting", "resolved", "csat"])
}

/// An agent resolves the conversation; returns the conversation as the PATCH answers it.
async fn resolve(daemon: &Daemon, token: &str, conversation: i64) -> Value {
    let (status, body) = daemon
        .api(
            Method::PATCH,
            &format!("/conversations/{conversation}"),
            token,
            Some(json!({"status": "resolved"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "resolved", "{body}");
    body
}

/// The data of the conversation's events of one kind, oldest first.
fn events_of(detail: &Value, kind: &str) -> Vec<Value> {
    detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|event| event["kind"] == kind)
        .map(|event| event["data"].clone())
        .collect()
}

/// The texts of the conversation's automated status updates, in order.
fn status_updates(detail: &Value) -> Vec<String> {
    detail["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|message| message["kind"] == "status_update")
        .map(|message| message["text"].as_str().unwrap().to_owned())
        .collect()
}

/// Waits until the bot has sent `count` messages in all, and returns them.
async fn sent_messages(fake: &FakeTelegram, count: usize) -> Vec<switchboard_test_telegram::Call> {
    fake.wait_until(Duration::from_secs(20), &format!("{count} sent messages"), |fake| {
        let sent = fake.sent_messages(TOKEN);
        (sent.len() >= count).then_some(sent)
    })
    .await
}

#[tokio::test]
async fn a_private_text_becomes_a_routed_conversation_and_the_reply_reaches_the_chat() {
    let fake = FakeTelegram::start().await;
    let (daemon, token) = start(&fake, |_| String::new()).await;
    fake.push_update(TOKEN, private_text(ADA, 1, "I want a refund for order 77"));
    fake.push_update(TOKEN, private_text(ADA, 2, "It was charged on Monday"));
    inbound(&daemon, &token, 2).await;
    let list = conversations(&daemon, &token).await;
    assert_eq!(list.len(), 1, "one private chat, one conversation: {list:#?}");
    let conversation = &list[0];
    assert_eq!(conversation["channel"], "telegram");
    assert_eq!(conversation["team"]["key"], "billing", "routed by the billing rule");
    assert_eq!(conversation["contact"]["external_id"], ADA.to_string());
    assert_eq!(conversation["contact"]["name"], "Ada Lovelace");
    assert_eq!(conversation["contact"]["metadata"]["telegram_username"], "ada");
    let acknowledgement = fake
        .wait_for_calls(TOKEN, "sendMessage", 1, Duration::from_secs(20))
        .await;
    assert_eq!(acknowledgement[0].chat_id(), Some(ADA));
    assert!(
        acknowledgement[0]
            .text()
            .unwrap()
            .contains(&format!("#{}", conversation["id"]))
    );

    let id = conversation["id"].as_i64().unwrap();
    let reply_id = reply(&daemon, &token, id, "Your refund for order 77 is on its way.").await;
    daemon.delivery_reaches(&token, id, reply_id, "sent").await;
    let sent = fake.sent_messages(TOKEN);
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[1].chat_id(), Some(ADA));
    assert_eq!(
        sent[1].text().as_deref(),
        Some("Your refund for order 77 is on its way.")
    );

    // Files: a picture as a photo, a PDF as a document, with their bytes.
    let (status, body) = daemon
        .api(
            Method::POST,
            &format!("/conversations/{id}/messages"),
            &token,
            Some(json!({"text": "Here is the label and the receipt.", "attachments": [
                {"filename": "label.png", "content_type": "image/png", "data_base64": "iVBORw0KGgo="},
                {"filename": "receipt.pdf", "content_type": "application/pdf", "data_base64": "JVBERi0xLjQ="}
            ]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    daemon
        .delivery_reaches(&token, id, body["id"].as_i64().unwrap(), "sent")
        .await;
    let photo = &fake.calls_to(TOKEN, "sendPhoto")[0];
    assert_eq!(photo.uploads[0].file_name, "label.png");
    assert_eq!(photo.uploads[0].bytes, b"\x89PNG\r\n\x1a\n");
    let document = &fake.calls_to(TOKEN, "sendDocument")[0];
    assert_eq!(document.uploads[0].file_name, "receipt.pdf");
    assert_eq!(document.uploads[0].bytes, b"%PDF-1.4");
    assert_eq!(document.chat_id(), Some(ADA));
}

#[tokio::test]
async fn photos_and_documents_arrive_with_their_bytes_and_an_edit_replaces_the_text() {
    let fake = FakeTelegram::start().await;
    let (daemon, token) = start(&fake, |_| String::new()).await;
    let jpeg = b"\xff\xd8\xff\xe0 a small photo".to_vec();
    let pdf = b"%PDF-1.4 the invoice".to_vec();
    fake.add_file(TOKEN, "photo-big", "u-photo-big", jpeg.clone(), "photos/file_1.jpg");
    fake.add_file(TOKEN, "doc-1", "u-doc-1", pdf.clone(), "documents/file_2.pdf");
    let mut photo = private_text(ADA, 10, "");
    photo["message"].as_object_mut().unwrap().remove("text");
    photo["message"]["caption"] = json!("The parcel arrived like this");
    photo["message"]["photo"] = json!([
        {"file_id": "photo-small", "file_unique_id": "u-photo-small", "file_size": 100, "width": 90, "height": 60},
        {"file_id": "photo-big", "file_unique_id": "u-photo-big", "file_size": jpeg.len(), "width": 1280, "height": 853}
    ]);
    fake.push_update(TOKEN, photo);
    let mut document = private_text(ADA, 11, "");
    document["message"].as_object_mut().unwrap().remove("text");
    document["message"]["document"] = json!({
        "file_id": "doc-1", "file_unique_id": "u-doc-1", "file_name": "invoice-77.pdf",
        "mime_type": "application/pdf", "file_size": pdf.len()
    });
    fake.push_update(TOKEN, document);
    fake.push_update(TOKEN, private_text(ADA, 12, "The box is brokn"));
    let mut edit = private_text(ADA, 12, "The box is broken");
    edit["edited_message"] = edit["message"].take();
    edit["edited_message"]["edit_date"] = json!(1_795_000_100);
    edit.as_object_mut().unwrap().remove("message");
    fake.push_update(TOKEN, edit);

    // Three messages, not four: the edit replaced the third one's text.
    let messages = eventually("the edit to be applied", || async {
        let messages = inbound(&daemon, &token, 3).await;
        (messages[2]["text"] == "The box is broken").then_some(messages)
    })
    .await;
    assert_eq!(messages[2]["details"]["edits"][0]["text"], "The box is brokn");
    assert_eq!(messages[0]["text"], "The parcel arrived like this");
    for (message, (name, bytes)) in messages[..2]
        .iter()
        .zip([("photo-10.jpg", &jpeg), ("invoice-77.pdf", &pdf)])
    {
        let attachment = &message["attachments"][0];
        assert_eq!(attachment["filename"], name);
        let response = reqwest::Client::new()
            .get(daemon.url(&format!("/api/v1/attachments/{}", attachment["id"])))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.bytes().await.unwrap().as_ref(), bytes.as_slice());
    }
}

#[tokio::test]
async fn one_person_writing_to_two_bots_is_two_conversations_of_one_contact() {
    let fake = FakeTelegram::start().await;
    fake.add_bot(OTHER_TOKEN, 5_000_000_002, "ShopReturnsBot");
    let (daemon, token) = start(&fake, |dir| telegram_inbox(dir, "returns-bot", OTHER_TOKEN, &fake, "")).await;
    eventually("the second bot's first getUpdates", || async {
        (fake.polls_in_flight(OTHER_TOKEN) > 0).then_some(())
    })
    .await;
    fake.push_update(TOKEN, private_text(ADA, 1, "Where is my order?"));
    fake.push_update(OTHER_TOKEN, private_text(ADA, 1, "/start"));
    inbound(&daemon, &token, 2).await;
    let list = conversations(&daemon, &token).await;
    assert_eq!(list.len(), 2);
    assert_ne!(list[0]["inbox"], list[1]["inbox"]);
    assert_eq!(
        list[0]["contact"]["id"], list[1]["contact"]["id"],
        "one person, one contact"
    );
    // /start opened the second: the greeting, not the acknowledgement, answered it.
    let greeting = fake
        .wait_for_calls(OTHER_TOKEN, "sendMessage", 1, Duration::from_secs(20))
        .await;
    assert!(
        greeting[0].text().unwrap().starts_with("Welcome!"),
        "{:?}",
        greeting[0].text()
    );
    let acknowledgement = fake
        .wait_for_calls(TOKEN, "sendMessage", 1, Duration::from_secs(20))
        .await;
    assert!(!acknowledgement[0].text().unwrap().starts_with("Welcome!"));
}

#[tokio::test]
async fn a_button_press_is_answered_and_recorded() {
    let fake = FakeTelegram::start().await;
    let (daemon, token) = start(&fake, |_| String::new()).await;
    fake.push_update(TOKEN, private_text(ADA, 1, "Is my order shipped?"));
    inbound(&daemon, &token, 1).await;
    fake.push_update(
        TOKEN,
        json!({"callback_query": {
            "id": "4382bfdwdsb323b2d9",
            "from": {"id": ADA, "is_bot": false, "first_name": "Ada"},
            "message": {
                "message_id": 2,
                "from": {"id": 5_000_000_001_i64, "is_bot": true, "first_name": "Shop", "username": "ShopHelpBot"},
                "chat": {"id": ADA, "type": "private", "first_name": "Ada"},
                "date": 1_795_000_000,
                "text": "Was this helpful?"
            },
            "chat_instance": "-1234",
            "data": "helpful:yes"
        }}),
    );
    let messages = inbound(&daemon, &token, 2).await;
    assert_eq!(messages[1]["text"], "[button] helpful:yes");
    assert_eq!(messages[0]["conversation_id"], messages[1]["conversation_id"]);
    let answered = fake
        .wait_for_calls(TOKEN, "answerCallbackQuery", 1, Duration::from_secs(20))
        .await;
    assert_eq!(answered[0].params["callback_query_id"], "4382bfdwdsb323b2d9");
}

#[tokio::test]
async fn group_messages_count_only_when_addressed_to_the_bot() {
    let fake = FakeTelegram::start().await;
    let (daemon, token) = start(&fake, |_| String::new()).await;
    let group = |message_id: i64, text: &str| {
        json!({"message": {
            "message_id": message_id,
            "from": {"id": ADA, "is_bot": false, "first_name": "Ada"},
            "chat": {"id": -100_777, "type": "supergroup", "title": "Shop customers"},
            "date": 1_795_000_000,
            "text": text
        }})
    };
    fake.push_update(TOKEN, group(1, "Has anyone tried the new jacket?"));
    fake.push_update(TOKEN, group(2, "@ShopHelpBot my order 88 is late"));
    let messages = inbound(&daemon, &token, 1).await;
    assert_eq!(messages[0]["text"], "@ShopHelpBot my order 88 is late");
    // The conversation is the group's: the acknowledgement goes there, answering her.
    let list = conversations(&daemon, &token).await;
    assert_eq!(list[0]["thread"], "chat:-100777");
    let sent = fake
        .wait_for_calls(TOKEN, "sendMessage", 1, Duration::from_secs(20))
        .await;
    assert_eq!(sent[0].chat_id(), Some(-100_777));
    assert_eq!(sent[0].reply_parameters().unwrap()["message_id"], 2);
    // Addressed again, taken again: two of the three group messages are in.
    fake.push_update(TOKEN, group(3, "@ShopHelpBot thanks"));
    inbound(&daemon, &token, 2).await;
}

#[tokio::test]
async fn a_429_waits_its_retry_after_and_delivers_once() {
    let fake = FakeTelegram::start().await;
    let (daemon, token) = start(&fake, |_| String::new()).await;
    fake.fail_next(
        TOKEN,
        "sendMessage",
        Some(ADA),
        Failure::TooManyRequests { retry_after: 2 },
        1,
    );
    fake.push_update(TOKEN, private_text(ADA, 1, "Hello"));
    let id = inbound(&daemon, &token, 1).await[0]["conversation_id"]
        .as_i64()
        .unwrap();
    let detail = daemon.get(&format!("/conversations/{id}"), &token).await;
    let acknowledgement = detail["messages"][1]["id"].as_i64().unwrap();
    daemon.delivery_reaches(&token, id, acknowledgement, "sent").await;
    let attempts = fake.calls_to(TOKEN, "sendMessage");
    assert_eq!(attempts.len(), 2, "one refused, one delivered");
    assert_eq!(attempts[0].status, 429);
    assert!(attempts[1].ok());
    let waited = attempts[1].at - attempts[0].at;
    assert!(waited >= Duration::from_secs(2), "retried after {waited:?}");
    assert_eq!(fake.sent_messages(TOKEN).len(), 1, "delivered once");
}

#[tokio::test]
async fn a_blocked_bot_fails_the_message_and_marks_the_contact_unreachable() {
    let fake = FakeTelegram::start().await;
    let (daemon, token) = start(&fake, |_| String::new()).await;
    fake.push_update(TOKEN, private_text(ADA, 1, "Hello"));
    let id = inbound(&daemon, &token, 1).await[0]["conversation_id"]
        .as_i64()
        .unwrap();
    fake.wait_for_calls(TOKEN, "sendMessage", 1, Duration::from_secs(20))
        .await;
    fake.block_chat(TOKEN, ADA);
    let reply_id = reply(&daemon, &token, id, "Are you still there?").await;
    let failed = daemon.delivery_reaches(&token, id, reply_id, "failed").await;
    assert!(
        failed["delivery"]["last_error"].as_str().unwrap().contains("blocked"),
        "{failed}"
    );
    assert_eq!(failed["delivery"]["attempts"], 1);
    let conversation = daemon.get(&format!("/conversations/{id}"), &token).await;
    assert!(
        conversation["contact"]["unreachable"]
            .as_str()
            .unwrap()
            .contains("blocked"),
        "{conversation}"
    );
    // Writing again makes her reachable again.
    fake.unblock_chat(TOKEN, ADA);
    fake.push_update(TOKEN, private_text(ADA, 2, "Sorry, I blocked you by mistake"));
    inbound(&daemon, &token, 2).await;
    let conversation = daemon.get(&format!("/conversations/{id}"), &token).await;
    assert_eq!(conversation["contact"]["unreachable"], Value::Null);
    // Telegram's own report of a block (my_chat_member, kicked) marks her too.
    fake.push_update(
        TOKEN,
        json!({"my_chat_member": {
            "chat": {"id": ADA, "type": "private", "first_name": "Ada"},
            "from": {"id": ADA, "is_bot": false, "first_name": "Ada"},
            "date": 1_795_000_200,
            "old_chat_member": {"user": {"id": 5_000_000_001_i64, "is_bot": true, "first_name": "Shop"}, "status": "member"},
            "new_chat_member": {"user": {"id": 5_000_000_001_i64, "is_bot": true, "first_name": "Shop"}, "status": "kicked", "until_date": 0}
        }}),
    );
    let marked = eventually("the block to be recorded", || async {
        let conversation = daemon.get(&format!("/conversations/{id}"), &token).await;
        conversation["contact"]["unreachable"].as_str().map(str::to_owned)
    })
    .await;
    assert!(marked.contains("blocked"), "{marked}");
}

#[tokio::test]
async fn a_killed_daemon_takes_every_update_exactly_once_after_a_restart() {
    let fake = FakeTelegram::start().await;
    let (daemon, token) = start(&fake, |_| String::new()).await;
    for n in 0..40 {
        fake.push_update(TOKEN, private_text(ADA + n, 1, &format!("Question {n}")));
    }
    // Kill as soon as the daemon has fetched them: some may be committed, the offset
    // not yet moved past them.
    eventually("the updates to be fetched", || async {
        fake.calls_to(TOKEN, "getUpdates")
            .iter()
            .any(|call| call.response["result"].as_array().is_some_and(|r| !r.is_empty()))
            .then_some(())
    })
    .await;
    let dir = daemon.kill();
    let daemon = Daemon::start_in(dir).await;
    let messages = inbound(&daemon, &token, 40).await;
    let mut texts: Vec<&str> = messages.iter().map(|m| m["text"].as_str().unwrap()).collect();
    texts.sort();
    texts.dedup();
    assert_eq!(texts.len(), 40, "each update exactly once");
    // A last update, taken after all before it: no duplicate is still on its way.
    fake.push_update(TOKEN, private_text(ADA, 2, "The last one"));
    inbound(&daemon, &token, 41).await;
}

#[tokio::test]
async fn a_malformed_get_updates_answer_costs_only_its_bad_entries() {
    let fake = FakeTelegram::start().await;
    let (daemon, token) = start(&fake, |_| String::new()).await;
    let malformed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/telegram/tlx-getUpdates-response-with-malformed-entries.json"
    ))
    .unwrap();
    fake.push_raw_get_updates(TOKEN, malformed);
    fake.push_update(TOKEN, private_text(ADA, 1, "Still here"));
    let messages = inbound(&daemon, &token, 1).await;
    assert_eq!(messages[0]["text"], "Still here");
    let log = std::fs::read_to_string(daemon.dir.path().join("daemon.log")).unwrap();
    assert!(log.contains("could not be read"), "the bad entries are logged: {log}");
}

#[tokio::test]
async fn webhook_mode_refuses_a_wrong_or_missing_secret_and_takes_the_right_one() {
    let fake = FakeTelegram::start().await;
    fake.add_bot(TOKEN, 5_000_000_001, "ShopHelpBot");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let inbox = telegram_inbox(
        dir.path(),
        "shop-bot",
        TOKEN,
        &fake,
        &format!("mode = \"webhook\"\nwebhook_url = \"http://127.0.0.1:{port}\""),
    );
    let config = config_with_inbox(dir.path(), &inbox).replace("127.0.0.1:0", &format!("127.0.0.1:{port}"));
    std::fs::write(dir.path().join("switchboard.toml"), config).unwrap();
    let daemon = Daemon::start_in(dir).await;
    let token = daemon.agent("sam", "support", "admin");
    let webhook = eventually("setWebhook", || async { fake.webhook(TOKEN) }).await;
    assert_eq!(webhook.url, format!("http://127.0.0.1:{port}/hooks/shop-bot"));
    let secret = webhook.secret_token.clone().expect("a secret token is registered");
    assert!(secret.len() >= 32);
    assert!(!webhook.url.contains(TOKEN), "the token never goes into a URL");

    let before = daemon.snapshot().await;
    let update = private_text(ADA, 1, "Hello over the webhook");
    for wrong in [None, Some("not-the-secret")] {
        let status = switchboard_test_telegram::post_update(&webhook.url, wrong, &update).await;
        assert_eq!(status, 403, "secret {wrong:?}");
    }
    assert_eq!(before, daemon.snapshot().await, "a refused update stores nothing");

    assert_eq!(fake.deliver_webhook_update(TOKEN, update).await, 200);
    let messages = inbound(&daemon, &token, 1).await;
    assert_eq!(messages[0]["text"], "Hello over the webhook");
    let log = std::fs::read_to_string(daemon.dir.path().join("daemon.log")).unwrap();
    assert!(
        !log.contains(TOKEN) && !log.contains(&secret),
        "neither token nor secret is logged"
    );

    // A restart (or a second daemon on the same inbox) derives the same secret, so the
    // webhook Telegram holds keeps working; a random one per start refused it.
    let (dir, _) = daemon.stop();
    let daemon = Daemon::start_in(dir).await;
    let mut again = private_text(ADA, 2, "Still there after the restart?");
    again["update_id"] = json!(900_002);
    eventually("the restarted daemon to take the registered secret", || async {
        let status = switchboard_test_telegram::post_update(&webhook.url, Some(&secret), &again).await;
        (status == 200).then_some(())
    })
    .await;
    inbound(&daemon, &token, 2).await;
}

#[tokio::test]
async fn a_resolved_chat_is_asked_for_a_score_and_a_pressed_button_records_it() {
    let fake = FakeTelegram::start().await;
    let (daemon, token) = start_with(&fake, |_| String::new(), with_resolution_updates).await;
    fake.push_update(TOKEN, private_text(ADA, 1, "Is my order 91 shipped?"));
    let id = inbound(&daemon, &token, 1).await[0]["conversation_id"]
        .as_i64()
        .unwrap();
    sent_messages(&fake, 1).await;

    resolve(&daemon, &token, id).await;
    // The acknowledgement, then the resolution, then the question under its buttons.
    let sent = sent_messages(&fake, 3).await;
    assert_eq!(sent.len(), 3, "{sent:#?}");
    let (resolved, question) = (&sent[1], &sent[2]);
    assert_eq!(resolved.chat_id(), Some(ADA));
    let text = resolved.text().unwrap();
    assert!(text.contains("resolved") && text.contains(&format!("#{id}")), "{text}");
    assert_eq!(resolved.reply_markup(), None, "the resolution has no buttons");
    assert_eq!(question.chat_id(), Some(ADA));
    let text = question.text().unwrap();
    assert!(
        text.contains("Tap a score") && text.contains(&format!("#{id}")),
        "{text}"
    );
    let keyboard = question.reply_markup().expect("the question carries a keyboard");
    let rows = keyboard["inline_keyboard"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "one row: {keyboard}");
    let data: Vec<&str> = rows[0]
        .as_array()
        .unwrap()
        .iter()
        .map(|button| button["callback_data"].as_str().unwrap())
        .collect();
    let question_token = data[0]
        .strip_prefix("csat:")
        .and_then(|rest| rest.strip_suffix(":1"))
        .unwrap_or_else(|| panic!("unexpected button data {data:?}"));
    let expected: Vec<String> = (1..=5).map(|score| format!("csat:{question_token}:{score}")).collect();
    assert_eq!(data, expected);
    let asked = daemon.get(&format!("/conversations/{id}"), &token).await;
    assert!(!asked["csat"]["requested_at"].is_null(), "{asked:#}");
    assert_eq!(asked["csat"]["score"], Value::Null);

    // She presses 4 under the question.
    let press = fake.callback_query(TOKEN, ADA, data[3]);
    assert_eq!(
        press["callback_query"]["message"]["message_id"].as_i64(),
        question.message_id()
    );
    let query_id = press["callback_query"]["id"].as_str().unwrap().to_owned();
    fake.push_update(TOKEN, press);
    let detail = eventually("the score to be recorded", || async {
        let detail = daemon.get(&format!("/conversations/{id}"), &token).await;
        (!detail["csat"]["score"].is_null()).then_some(detail)
    })
    .await;
    assert_eq!(detail["csat"]["score"], 4, "{detail:#}");
    assert_eq!(detail["csat"]["comment"], Value::Null);
    assert!(!detail["csat"]["answered_at"].is_null(), "{detail:#}");
    assert_eq!(detail["status"], "resolved", "a score does not reopen");
    assert_eq!(
        events_of(&detail, "csat.answered"),
        vec![json!({"score": 4, "comment": null, "via": "telegram"})]
    );
    // Nothing answers the score in the chat (it was queued with it, or not at all) ...
    assert_eq!(status_updates(&detail).len(), 3, "{detail:#}");
    // ... but the press is answered, so her client stops its spinner.
    let answered = fake
        .wait_for_calls(TOKEN, "answerCallbackQuery", 1, Duration::from_secs(20))
        .await;
    assert_eq!(answered[0].params["callback_query_id"], query_id.as_str());
}

#[tokio::test]
async fn stop_silences_status_updates_but_not_agents_and_start_resumes_them() {
    let fake = FakeTelegram::start().await;
    let (daemon, token) = start_with(&fake, |_| String::new(), with_resolution_updates).await;
    fake.push_update(TOKEN, private_text(ADA, 1, "Where is my parcel?"));
    let id = inbound(&daemon, &token, 1).await[0]["conversation_id"]
        .as_i64()
        .unwrap();
    sent_messages(&fake, 1).await;

    fake.push_update(TOKEN, private_text(ADA, 2, "stop"));
    let detail = eventually("the opt-out to be recorded", || async {
        let detail = daemon.get(&format!("/conversations/{id}"), &token).await;
        (!detail["contact"]["updates_stopped_at"].is_null()).then_some(detail)
    })
    .await;
    assert_eq!(events_of(&detail, "contact.updates_stopped").len(), 1, "{detail:#}");
    let before = fake.sent_messages(TOKEN).len();
    assert_eq!(before, 1, "only the acknowledgement went out");

    // Resolved: the change is on record, and no update or question is queued for it.
    let resolved = resolve(&daemon, &token, id).await;
    assert!(
        events_of(&resolved, "conversation.status_changed")
            .iter()
            .any(|data| data["to"] == "resolved"),
        "{resolved:#}"
    );
    // An agent's reply still goes out, and it is the only message the chat gets.
    let reply_text = "Your parcel is with the neighbour at number 12.";
    let reply_id = reply(&daemon, &token, id, reply_text).await;
    daemon.delivery_reaches(&token, id, reply_id, "sent").await;
    let after: Vec<Option<String>> = fake.sent_messages(TOKEN)[before..]
        .iter()
        .map(|call| call.text())
        .collect();
    assert_eq!(after, vec![Some(reply_text.to_owned())]);
    let detail = daemon.get(&format!("/conversations/{id}"), &token).await;
    assert_eq!(status_updates(&detail).len(), 1, "the acknowledgement only: {detail:#}");
    assert_eq!(detail["csat"], Value::Null, "no question was asked");

    // /start: she hears from the desk again, from the greeting on.
    fake.push_update(TOKEN, private_text(ADA, 3, "/start"));
    let sent = sent_messages(&fake, before + 2).await;
    let greeting = sent[before + 1].text().unwrap();
    assert!(greeting.starts_with("Welcome!"), "{greeting}");
    let list = conversations(&daemon, &token).await;
    assert_eq!(
        list.len(),
        2,
        "/start after the resolution is a new conversation: {list:#?}"
    );
    let again = list[1]["id"].as_i64().unwrap();
    let detail = daemon.get(&format!("/conversations/{again}"), &token).await;
    assert_eq!(detail["contact"]["updates_stopped_at"], Value::Null, "{detail:#}");
    assert_eq!(events_of(&detail, "contact.updates_resumed").len(), 1, "{detail:#}");
    resolve(&daemon, &token, again).await;
    let sent = sent_messages(&fake, before + 4).await;
    assert!(sent[before + 2].text().unwrap().contains("resolved"));
    assert!(
        sent[before + 3].reply_markup().is_some(),
        "the question and its buttons"
    );
}

#[tokio::test]
async fn markdown_updates_escape_the_customers_name_and_fall_back_to_plain_text_when_refused() {
    let fake = FakeTelegram::start().await;
    let templates = |config: String| {
        format!(
            r#"{}
[updates.templates.resolved.en]
text = "Solved, {{{{ contact.name }}}}: {{{{ conversation.reference }}}}"
markdown = "*Solved*, {{{{ contact.name }}}}: {{{{ conversation.reference }}}}"

[updates.templates.csat.en]
text = "Rate us from 1 to 5"
# A template mistake: `.` and `-` are reserved in MarkdownV2 and not escaped here.
markdown = "*Rate us* 1-5."
"#,
            with_resolution_updates(config)
        )
    };
    let (daemon, token) = start_with(&fake, |_| String::new(), templates).await;
    // Her name is full of MarkdownV2's reserved characters.
    let mut hello = private_text(ADA, 1, "Is my order 91 shipped?");
    hello["message"]["from"]["first_name"] = json!("A.B");
    hello["message"]["from"]["last_name"] = json!("(Ops)!");
    fake.push_update(TOKEN, hello);
    let id = inbound(&daemon, &token, 1).await[0]["conversation_id"]
        .as_i64()
        .unwrap();
    sent_messages(&fake, 1).await;

    resolve(&daemon, &token, id).await;
    let sent = sent_messages(&fake, 3).await;
    let (resolved, question) = (&sent[1], &sent[2]);
    // Accepted by the fake, which refuses MarkdownV2 as Telegram does.
    assert_eq!(resolved.parse_mode().as_deref(), Some("MarkdownV2"));
    assert_eq!(
        resolved.params["text"],
        format!("*Solved*, A\\.B \\(Ops\\)\\!: \\#{id}").as_str()
    );
    // The refused markdown went again as the plain text, buttons and all.
    assert_eq!(question.parse_mode(), None);
    assert_eq!(question.text().as_deref(), Some("Rate us from 1 to 5"));
    assert!(question.reply_markup().is_some());
    let refused = fake
        .calls_to(TOKEN, "sendMessage")
        .into_iter()
        .filter(|call| call.parse_mode().as_deref() == Some("MarkdownV2"))
        .count();
    assert_eq!(refused, 2, "one accepted, one refused and sent again");
    // The message record keeps the plain text agents read.
    let detail = daemon.get(&format!("/conversations/{id}"), &token).await;
    assert_eq!(status_updates(&detail)[1], format!("Solved, A.B (Ops)!: #{id}"));
}

#[tokio::test]
async fn a_button_pressed_after_its_conversation_reopened_changes_nothing_and_blocks_nothing() {
    let fake = FakeTelegram::start().await;
    let (daemon, token) = start_with(&fake, |_| String::new(), with_resolution_updates).await;
    fake.push_update(TOKEN, private_text(ADA, 1, "Is my order 91 shipped?"));
    let id = inbound(&daemon, &token, 1).await[0]["conversation_id"]
        .as_i64()
        .unwrap();
    resolve(&daemon, &token, id).await;
    let question = sent_messages(&fake, 3).await.remove(2);
    let keyboard = question.reply_markup().expect("the question's buttons");
    let four = keyboard["inline_keyboard"][0][3]["callback_data"]
        .as_str()
        .unwrap()
        .to_owned();

    // She writes again instead: the conversation reopens, and the question closes.
    fake.push_update(TOKEN, private_text(ADA, 2, "It still says processing"));
    inbound(&daemon, &token, 2).await;
    // The old button, pressed now, and a message after it.
    fake.push_update(TOKEN, fake.callback_query(TOKEN, ADA, &four));
    fake.push_update(TOKEN, private_text(ADA, 3, "Hello?"));
    let messages = inbound(&daemon, &token, 4).await;
    assert!(messages.iter().all(|m| m["conversation_id"] == id), "{messages:#?}");
    let detail = daemon.get(&format!("/conversations/{id}"), &token).await;
    assert_eq!(detail["status"], "open");
    assert_eq!(detail["csat"]["score"], Value::Null, "{detail:#}");
    assert!(events_of(&detail, "csat.answered").is_empty());
}
