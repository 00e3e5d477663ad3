//! The fake is only useful if the daemon's real client accepts it, so these drive it with teloxide itself.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchboard_test_telegram::{Failure, FakeTelegram, GROUP_MEMBER_ID, SECRET_TOKEN_HEADER, post_update};
use teloxide::net::Download;
use teloxide::payloads::setters::*;
use teloxide::prelude::*;
use teloxide::types::{
    CallbackQueryId, ChatId, FileId, InlineKeyboardButton, InlineKeyboardMarkup, InputFile, MessageId, ParseMode,
    Recipient, ReplyParameters, Seconds, ThreadId, UpdateKind,
};
use teloxide::{ApiError, RequestError};

const TOKEN: &str = "123456:TEST-token_a";
/// Generous: only reached when something is broken; passing tests return as soon as the condition holds.
const WAIT: Duration = Duration::from_secs(10);

fn bot(fake: &FakeTelegram, token: &str) -> Bot {
    Bot::new(token).set_api_url(fake.url().parse().expect("fake URL parses"))
}

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/telegram")
}

fn fixture(name: &str) -> String {
    let path = fixtures_dir().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading fixture {}: {e}", path.display()))
}

#[tokio::test]
async fn get_me_answers_every_field_teloxide_requires() {
    let fake = FakeTelegram::start().await;
    let me = bot(&fake, TOKEN).get_me().await.expect("getMe");
    assert_eq!(me.id.0, 123_456);
    assert!(me.is_bot);
    assert_eq!(me.username(), "fake123456_bot");

    fake.add_bot("777:other", 777, "switchboard_test_bot");
    let other = bot(&fake, "777:other")
        .get_me()
        .await
        .expect("getMe of a registered bot");
    assert_eq!((other.id.0, other.username()), (777, "switchboard_test_bot"));

    let calls = fake.calls(TOKEN);
    assert_eq!(calls.len(), 1);
    assert_eq!(
        (calls[0].method.as_str(), calls[0].wire_method.as_str()),
        ("getMe", "GetMe")
    );
}

#[tokio::test]
async fn rejected_tokens_get_401_unauthorized() {
    let fake = FakeTelegram::start().await;
    let malformed = bot(&fake, "not-a-token").get_me().await;
    assert!(
        matches!(malformed, Err(RequestError::Api(ApiError::InvalidToken))),
        "{malformed:?}"
    );

    fake.revoke_token(TOKEN);
    let revoked = bot(&fake, TOKEN).get_me().await;
    assert!(
        matches!(revoked, Err(RequestError::Api(ApiError::InvalidToken))),
        "{revoked:?}"
    );

    let strict = FakeTelegram::start().await;
    strict.require_registered_tokens();
    assert!(bot(&strict, TOKEN).get_me().await.is_err());
    strict.add_bot(TOKEN, 1, "known_bot");
    assert_eq!(bot(&strict, TOKEN).get_me().await.expect("registered token").id.0, 1);
    assert_eq!(strict.calls(TOKEN)[0].status, 401);
}

#[tokio::test]
async fn pushed_updates_arrive_in_order_and_offset_confirms_them() {
    let fake = FakeTelegram::start().await;
    let bot = bot(&fake, TOKEN);
    let text = |t: &str| json!({"message": {"message_id": 1, "date": 0, "chat": {"id": 5, "type": "private", "first_name": "A"}, "text": t}});
    let first = fake.push_update(TOKEN, text("one"));
    let second = fake.push_update(TOKEN, text("two"));
    assert_eq!(second, first + 1);

    let updates = bot.get_updates().timeout(0).await.expect("getUpdates");
    let texts: Vec<_> = updates
        .iter()
        .map(|u| match &u.kind {
            UpdateKind::Message(m) => m.text().unwrap_or_default().to_owned(),
            other => panic!("expected a message, got {other:?}"),
        })
        .collect();
    assert_eq!(texts, ["one", "two"]);
    assert_eq!(fake.pending_updates(TOKEN), 2, "nothing is confirmed without an offset");

    let offset = i32::try_from(updates[0].id.0 + 1).expect("small id");
    let rest = bot
        .get_updates()
        .offset(offset)
        .timeout(0)
        .await
        .expect("getUpdates with offset");
    assert_eq!(rest.len(), 1);
    assert_eq!(fake.pending_updates(TOKEN), 1);

    // Ids that would go backwards are renumbered so the client's offset cannot swallow them.
    let renumbered = fake.push_update(TOKEN, json!({"update_id": 1, "message": text("three")["message"]}));
    assert_eq!(renumbered, second + 1);
    let limited = bot
        .get_updates()
        .offset(offset + 1)
        .limit(1)
        .timeout(0)
        .await
        .expect("getUpdates with limit");
    assert_eq!(
        limited.iter().map(|u| i64::from(u.id.0)).collect::<Vec<_>>(),
        [renumbered]
    );
}

#[tokio::test]
async fn held_get_updates_returns_as_soon_as_an_update_is_pushed() {
    let fake = FakeTelegram::start().await;
    let bot = bot(&fake, TOKEN);
    let started = Instant::now();
    let poll = tokio::spawn(async move { bot.get_updates().timeout(10).await });
    fake.wait_until(WAIT, "the poll to be held", |f| {
        (f.polls_in_flight(TOKEN) == 1).then_some(())
    })
    .await;
    let id = fake.push_update(TOKEN, json!({"callback_query": {"id": "q1", "from": {"id": 5, "is_bot": false, "first_name": "A"}, "chat_instance": "c", "data": "x"}}));
    let updates = tokio::time::timeout(WAIT, poll)
        .await
        .expect("poll answered")
        .expect("task")
        .expect("getUpdates");
    assert_eq!(updates.len(), 1);
    assert_eq!(i64::from(updates[0].id.0), id);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "held poll took {:?}",
        started.elapsed()
    );
    assert_eq!(fake.polls_in_flight(TOKEN), 0);
}

#[tokio::test]
async fn held_get_updates_answers_empty_at_its_timeout() {
    let fake = FakeTelegram::start().await;
    let started = Instant::now();
    let updates = bot(&fake, TOKEN).get_updates().timeout(1).await.expect("getUpdates");
    assert!(updates.is_empty());
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "returned after {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_second_poller_terminates_the_first_with_409() {
    let fake = FakeTelegram::start().await;
    let first = {
        let bot = bot(&fake, TOKEN);
        tokio::spawn(async move { bot.get_updates().timeout(10).await })
    };
    fake.wait_until(WAIT, "the first poll to be held", |f| {
        (f.polls_in_flight(TOKEN) == 1).then_some(())
    })
    .await;
    let second = {
        let bot = bot(&fake, TOKEN);
        tokio::spawn(async move { bot.get_updates().timeout(10).await })
    };
    let first = tokio::time::timeout(WAIT, first)
        .await
        .expect("first poll answered")
        .expect("task");
    assert!(
        matches!(first, Err(RequestError::Api(ApiError::TerminatedByOtherGetUpdates))),
        "{first:?}"
    );
    fake.push_update(TOKEN, json!({"message": {"message_id": 1, "date": 0, "chat": {"id": 5, "type": "private", "first_name": "A"}, "text": "x"}}));
    let second = tokio::time::timeout(WAIT, second)
        .await
        .expect("second poll answered")
        .expect("task");
    assert_eq!(second.expect("second poll keeps working").len(), 1);
}

#[tokio::test]
async fn send_message_is_recorded_and_answered_with_a_message() {
    let fake = FakeTelegram::start().await;
    let bot = bot(&fake, TOKEN);
    let group = ChatId(-1_001_234_567_890);
    let sent = bot
        .send_message(group, "hello *world*")
        .reply_parameters(ReplyParameters::new(MessageId(41)))
        .message_thread_id(ThreadId(MessageId(7)))
        .await
        .expect("sendMessage");
    assert_eq!(
        (sent.chat.id, sent.id, sent.text()),
        (group, MessageId(1), Some("hello *world*"))
    );
    assert_eq!(sent.thread_id, Some(ThreadId(MessageId(7))));
    let again = bot.send_message(group, "again").await.expect("second sendMessage");
    assert_eq!(again.id, MessageId(2), "message ids grow per chat");
    let private = bot.send_message(ChatId(5), "hi").await.expect("private sendMessage");
    assert_eq!(private.id, MessageId(1));

    let sent = fake.sent_messages(TOKEN);
    assert_eq!(sent.len(), 3);
    let call = &sent[0];
    assert_eq!(
        (call.method.as_str(), call.wire_method.as_str()),
        ("sendMessage", "SendMessage")
    );
    assert_eq!(call.chat_id(), Some(group.0));
    assert_eq!(
        call.params["chat_id"],
        json!(group.0),
        "teloxide sends chat_id as a JSON number"
    );
    assert_eq!(call.text().as_deref(), Some("hello *world*"));
    assert_eq!(call.message_thread_id(), Some(7));
    assert_eq!(
        call.reply_parameters().expect("reply_parameters")["message_id"],
        json!(41)
    );
    assert_eq!(call.message_id(), Some(1));
    assert!(!call.multipart);
    assert!(sent[0].at <= sent[1].at && sent[1].at <= sent[2].at);

    let empty = bot.send_message(ChatId(5), " ").await;
    assert!(
        matches!(empty, Err(RequestError::Api(ApiError::MessageTextIsEmpty))),
        "{empty:?}"
    );
    let long = bot.send_message(ChatId(5), "x".repeat(4097)).await;
    assert!(
        matches!(long, Err(RequestError::Api(ApiError::MessageIsTooLong))),
        "{long:?}"
    );
    // `@channel` recipients: the fake has no chat directory.
    let by_name = bot
        .send_message(Recipient::ChannelUsername("@somechannel".to_owned()), "x")
        .await;
    assert!(
        matches!(by_name, Err(RequestError::Api(ApiError::ChatNotFound))),
        "{by_name:?}"
    );
}

#[tokio::test]
async fn injected_failures_surface_as_teloxide_errors() {
    let fake = FakeTelegram::start().await;
    let bot = bot(&fake, TOKEN);
    fake.fail_next(
        TOKEN,
        "sendMessage",
        None,
        Failure::TooManyRequests { retry_after: 2 },
        1,
    );
    fake.fail_next(TOKEN, "SENDMESSAGE", Some(9), Failure::Blocked, 1);
    fake.fail_next(TOKEN, "sendMessage", None, Failure::ChatNotFound, 1);

    let limited = bot.send_message(ChatId(5), "a").await;
    assert!(
        matches!(limited, Err(RequestError::RetryAfter(s)) if s == Seconds::from_seconds(2)),
        "{limited:?}"
    );
    // The Blocked rule is for chat 9 only, so chat 5 falls through to the next rule.
    let missing = bot.send_message(ChatId(5), "b").await;
    assert!(
        matches!(missing, Err(RequestError::Api(ApiError::ChatNotFound))),
        "{missing:?}"
    );
    let blocked = bot.send_message(ChatId(9), "c").await;
    assert!(
        matches!(blocked, Err(RequestError::Api(ApiError::BotBlocked))),
        "{blocked:?}"
    );
    bot.send_message(ChatId(9), "d").await.expect("rules are used up");

    fake.block_chat(TOKEN, 9);
    for _ in 0..2 {
        let blocked = bot.send_message(ChatId(9), "e").await;
        assert!(
            matches!(blocked, Err(RequestError::Api(ApiError::BotBlocked))),
            "{blocked:?}"
        );
    }
    fake.unblock_chat(TOKEN, 9);
    bot.send_message(ChatId(9), "f").await.expect("unblocked");

    let calls = fake.calls_to(TOKEN, "sendMessage");
    let statuses: Vec<u16> = calls.iter().map(|c| c.status).collect();
    assert_eq!(statuses, [429, 400, 403, 200, 403, 403, 200]);
    assert_eq!(calls[0].response["parameters"]["retry_after"], json!(2));
    assert_eq!(
        calls[0].response["description"],
        json!("Too Many Requests: retry after 2")
    );
    assert_eq!(fake.sent_messages(TOKEN).len(), 2);
}

#[tokio::test]
async fn send_document_uploads_multipart_and_the_file_can_be_downloaded() {
    let fake = FakeTelegram::start().await;
    let bot = bot(&fake, TOKEN);
    let bytes = b"%PDF-1.4 fake".to_vec();
    let sent = bot
        .send_document(ChatId(5), InputFile::memory(bytes.clone()).file_name("x.pdf"))
        .caption("the report")
        .reply_parameters(ReplyParameters::new(MessageId(3)))
        .await
        .expect("sendDocument");
    let document = sent.document().expect("a document message");
    assert_eq!(document.file_name.as_deref(), Some("x.pdf"));
    assert_eq!(sent.caption(), Some("the report"));

    let call = &fake.calls_to(TOKEN, "sendDocument")[0];
    assert!(call.multipart);
    assert_eq!(call.params["chat_id"], json!("5"), "multipart carries chat_id as text");
    assert_eq!(call.chat_id(), Some(5));
    assert_eq!(call.caption().as_deref(), Some("the report"));
    assert_eq!(
        call.reply_parameters().expect("reply_parameters as JSON text")["message_id"],
        json!(3)
    );
    let attach = call.params["document"].as_str().expect("document param");
    assert!(attach.starts_with("attach://"), "{attach}");
    let upload = call.upload("document").expect("uploaded part");
    assert_eq!(
        (upload.file_name.as_str(), upload.bytes.as_slice()),
        ("x.pdf", bytes.as_slice())
    );

    let file = bot.get_file(document.file.id.clone()).await.expect("getFile");
    assert_eq!(file.path, "documents/file_1.pdf");
    let mut downloaded = Vec::new();
    bot.download_file(&file.path, &mut downloaded).await.expect("download");
    assert_eq!(downloaded, bytes);
    assert_eq!(
        fake.calls_to(TOKEN, "file")[0].params["file_path"],
        json!("documents/file_1.pdf")
    );

    let resent = bot
        .send_document(ChatId(6), InputFile::file_id(document.file.id.clone()))
        .await
        .expect("by id");
    assert_eq!(resent.document().expect("document").file.id, document.file.id);
    let unknown = bot
        .send_document(ChatId(6), InputFile::file_id(FileId("nope".into())))
        .await;
    assert!(
        matches!(unknown, Err(RequestError::Api(ApiError::WrongFileIdOrUrl))),
        "{unknown:?}"
    );

    let photo = bot
        .send_photo(ChatId(5), InputFile::memory(&b"\xff\xd8jpeg"[..]))
        .await
        .expect("sendPhoto");
    assert_eq!(photo.photo().expect("photo sizes").len(), 1);
    let photo_call = &fake.calls_to(TOKEN, "sendPhoto")[0];
    assert_eq!(
        photo_call.upload("photo").expect("photo part").file_name,
        "",
        "unnamed memory files have no name"
    );
    assert_eq!(fake.sent_messages(TOKEN).len(), 3);
}

#[tokio::test]
async fn registered_files_are_served_by_get_file_and_download() {
    let fake = FakeTelegram::start().await;
    let bot = bot(&fake, TOKEN);
    fake.add_file(
        TOKEN,
        "BQACAgIAAx",
        "AgADUnique",
        b"voice bytes".to_vec(),
        "voice/file 7.oga",
    );
    let file = bot.get_file(FileId("BQACAgIAAx".into())).await.expect("getFile");
    assert_eq!((file.meta.unique_id.0.as_str(), file.meta.size), ("AgADUnique", 11));
    let mut downloaded = Vec::new();
    bot.download_file(&file.path, &mut downloaded)
        .await
        .expect("download of an escaped path");
    assert_eq!(downloaded, b"voice bytes");

    let unknown = bot.get_file(FileId("missing".into())).await;
    assert!(unknown.is_err(), "{unknown:?}");
    let call = fake.calls_to(TOKEN, "getFile").pop().expect("recorded");
    assert_eq!(
        (call.status, &call.response["description"]),
        (400, &json!("Bad Request: invalid file_id"))
    );
    assert!(bot.download_file("voice/nope", &mut Vec::new()).await.is_err());
    assert!(bot.get_file(FileId("BQACAgIAAx".into())).await.is_ok());
    assert!(
        teloxide::Bot::new("999:other")
            .set_api_url(fake.url().parse().unwrap())
            .get_file(FileId("BQACAgIAAx".into()))
            .await
            .is_err(),
        "file ids are per bot"
    );
}

/// A loopback receiver standing in for the daemon's webhook endpoint.
async fn webhook_receiver() -> (String, Arc<Mutex<Vec<(Option<String>, Value)>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
            let record = record.clone();
            async move {
                let secret = headers
                    .get(SECRET_TOKEN_HEADER)
                    .map(|v| v.to_str().expect("ascii secret").to_owned());
                let update: Value = serde_json::from_slice(&body).expect("webhook body is JSON");
                record.lock().expect("receiver lock").push((secret, update));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind receiver");
    let url = format!("http://{}/hook", listener.local_addr().expect("receiver addr"));
    tokio::spawn(async move { axum::serve(listener, app).await.expect("receiver") });
    (url, seen)
}

#[tokio::test]
async fn webhooks_are_recorded_block_polling_and_deliver_with_the_secret() {
    let fake = FakeTelegram::start().await;
    let bot = bot(&fake, TOKEN);
    let (url, seen) = webhook_receiver().await;

    bot.set_webhook(url.parse().expect("receiver URL"))
        .secret_token("s3cr3t_-x")
        .await
        .expect("setWebhook");
    let webhook = fake.webhook(TOKEN).expect("webhook registered");
    assert_eq!(
        (webhook.url.as_str(), webhook.secret_token.as_deref()),
        (url.as_str(), Some("s3cr3t_-x"))
    );
    let info = bot.get_webhook_info().await.expect("getWebhookInfo");
    assert_eq!(info.url.map(String::from).as_deref(), Some(url.as_str()));

    let polled = bot.get_updates().timeout(0).await;
    assert!(
        matches!(&polled, Err(RequestError::Api(ApiError::Unknown(d))) if d.contains("webhook is active")),
        "{polled:?}"
    );

    let update = json!({"message": {"message_id": 1, "date": 0, "chat": {"id": 5, "type": "private", "first_name": "A"}, "text": "via hook"}});
    assert_eq!(fake.deliver_webhook_update(TOKEN, update.clone()).await, 200);
    assert_eq!(post_update(&url, None, &update).await, 200);
    {
        let seen = seen.lock().expect("receiver lock");
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].0.as_deref(), Some("s3cr3t_-x"));
        assert_eq!(seen[0].1["message"]["text"], json!("via hook"));
        assert!(seen[0].1["update_id"].is_i64(), "delivered updates carry an update_id");
        assert_eq!(seen[1].0, None);
    }

    bot.delete_webhook().await.expect("deleteWebhook");
    assert!(fake.webhook(TOKEN).is_none());
    assert!(bot.get_webhook_info().await.expect("getWebhookInfo").url.is_none());
    assert!(
        bot.get_updates()
            .timeout(0)
            .await
            .expect("polling works again")
            .is_empty()
    );
}

#[tokio::test]
async fn other_methods_are_recorded_and_answered_404_or_true() {
    let fake = FakeTelegram::start().await;
    let bot = bot(&fake, TOKEN);
    bot.answer_callback_query(CallbackQueryId("q1".into()))
        .text("done")
        .await
        .expect("answerCallbackQuery");
    assert_eq!(
        fake.calls_to(TOKEN, "answerCallbackQuery")[0].params["text"],
        json!("done")
    );

    let unsupported = bot
        .send_chat_action(ChatId(5), teloxide::types::ChatAction::Typing)
        .await;
    assert!(unsupported.is_err());
    let call = &fake.calls_to(TOKEN, "sendChatAction")[0];
    assert_eq!(
        (call.status, &call.response["description"]),
        (404, &json!("Not Found: method not found"))
    );
}

#[tokio::test]
async fn form_and_query_encodings_are_understood() {
    let fake = FakeTelegram::start().await;
    let client = reqwest::Client::new();
    let url = format!("{}bot{TOKEN}/sendmessage", fake.url());
    let form: Value = client
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("chat_id=5&text=a+b%26c")
        .send()
        .await
        .expect("form POST")
        .json()
        .await
        .expect("JSON answer");
    assert_eq!(form["result"]["text"], json!("a b&c"));
    let query: Value = client
        .get(format!("{url}?chat_id=5&text=q"))
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON");
    assert_eq!(query["result"]["message_id"], json!(2));
    let bad = client
        .post(&url)
        .header("content-type", "application/json")
        .body("[1]")
        .send()
        .await
        .expect("POST");
    assert_eq!(bad.status(), 400);
}

#[tokio::test]
async fn every_update_fixture_travels_through_get_updates() {
    let fake = FakeTelegram::start().await;
    let bot = bot(&fake, TOKEN);
    let mut names: Vec<String> = std::fs::read_dir(fixtures_dir())
        .expect("fixtures dir")
        .map(|e| e.expect("dir entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("ntg-update-") || n.starts_with("tlx-update-"))
        .collect();
    names.sort();
    assert!(names.len() >= 28, "fixtures missing: {names:?}");

    let mut expected = Vec::new();
    for name in &names {
        let update: Value = serde_json::from_str(&fixture(name)).unwrap_or_else(|e| panic!("{name} is not JSON: {e}"));
        expected.push((name.clone(), fake.push_update(TOKEN, update)));
    }
    // Telegram's own sample set has a duplicate update_id; the fake renumbers it rather than losing it.
    let samples: Vec<Value> = serde_json::from_str(&fixture("nbt-updates-webhook-doc-samples.json")).expect("samples");
    for (i, update) in samples.into_iter().enumerate() {
        expected.push((format!("nbt sample {i}"), fake.push_update(TOKEN, update)));
    }

    let updates = bot.get_updates().timeout(0).await.expect("getUpdates of all fixtures");
    let got: Vec<i64> = updates.iter().map(|u| i64::from(u.id.0)).collect();
    let want: Vec<i64> = expected.iter().map(|(_, id)| *id).collect();
    assert_eq!(got, want, "fixtures in push order: {expected:?}");

    let text = &updates[names
        .iter()
        .position(|n| n == "ntg-update-text.json")
        .expect("text fixture")];
    assert!(
        matches!(&text.kind, UpdateKind::Message(m) if m.text() == Some("aaaaaaaaaa")),
        "{:?}",
        text.kind
    );
    let unknown = &updates[names
        .iter()
        .position(|n| n == "tlx-update-unknown-kind.json")
        .expect("unknown fixture")];
    assert!(matches!(unknown.kind, UpdateKind::Error(_)), "{:?}", unknown.kind);

    let next = i32::try_from(got.last().expect("some updates") + 1).expect("ids fit i32");
    assert!(
        bot.get_updates()
            .offset(next)
            .timeout(0)
            .await
            .expect("confirming")
            .is_empty()
    );
    assert_eq!(fake.pending_updates(TOKEN), 0);
}

#[tokio::test]
async fn a_raw_get_updates_body_is_served_verbatim_once() {
    let fake = FakeTelegram::start().await;
    let bot = bot(&fake, TOKEN);
    fake.push_raw_get_updates(TOKEN, fixture("tlx-getUpdates-response-with-malformed-entries.json"));
    let updates = bot
        .get_updates()
        .timeout(0)
        .await
        .expect("teloxide tolerates malformed entries");
    let kinds: Vec<bool> = updates.iter().map(|u| matches!(u.kind, UpdateKind::Error(_))).collect();
    assert_eq!(kinds, [false, true, false, true]);
    let id = fake.push_update(TOKEN, json!({"message": {"message_id": 1, "date": 0, "chat": {"id": 5, "type": "private", "first_name": "A"}, "text": "x"}}));
    assert_eq!(id, 4, "ids continue after the raw body's");
    let after = bot
        .get_updates()
        .offset(4)
        .timeout(0)
        .await
        .expect("regular getUpdates");
    assert_eq!(after.len(), 1);
}

#[tokio::test]
async fn wait_for_calls_wakes_on_the_call_and_reports_context_on_timeout() {
    let fake = Arc::new(FakeTelegram::start().await);
    let sender = {
        let bot = bot(&fake, TOKEN);
        tokio::spawn(async move { bot.send_message(ChatId(5), "x").await })
    };
    let calls = fake.wait_for_calls(TOKEN, "sendMessage", 1, WAIT).await;
    assert_eq!(calls[0].text().as_deref(), Some("x"));
    sender.await.expect("task").expect("sendMessage");

    let waiter = {
        let fake = fake.clone();
        tokio::spawn(async move {
            fake.wait_for_calls(TOKEN, "sendPhoto", 1, Duration::from_millis(50))
                .await
        })
    };
    let panic = waiter.await.expect_err("times out").into_panic();
    let message = panic.downcast_ref::<String>().expect("panic message");
    assert!(
        message.contains("sendPhoto") && message.contains("SendMessage -> 200"),
        "{message}"
    );
}

#[tokio::test]
async fn dropping_the_fake_looks_like_an_outage() {
    let fake = FakeTelegram::start().await;
    let bot = bot(&fake, TOKEN);
    let poll = {
        let bot = bot.clone();
        tokio::spawn(async move { bot.get_updates().timeout(10).await })
    };
    fake.wait_until(WAIT, "the poll to be held", |f| {
        (f.polls_in_flight(TOKEN) == 1).then_some(())
    })
    .await;
    drop(fake);
    let answered = tokio::time::timeout(WAIT, poll)
        .await
        .expect("held poll released")
        .expect("task");
    assert!(answered.expect("empty answer").is_empty());
    // The accept loop stops asynchronously; keep asking until the refusal shows (bounded, no sleeping).
    let deadline = Instant::now() + WAIT;
    loop {
        match bot.get_me().await {
            Err(RequestError::Network(_)) => break,
            other => assert!(Instant::now() < deadline, "fake still answering after drop: {other:?}"),
        }
    }
}

#[tokio::test]
async fn markdown_v2_is_refused_as_telegram_refuses_it() {
    let fake = FakeTelegram::start().await;
    let bot = bot(&fake, TOKEN);
    let refused = bot
        .send_message(ChatId(5), "Your request #42 was received.")
        .parse_mode(ParseMode::MarkdownV2)
        .await;
    let Err(RequestError::Api(ApiError::CantParseEntities(description))) = &refused else {
        panic!("expected can't parse entities, got {refused:?}");
    };
    assert_eq!(
        description,
        "Bad Request: can't parse entities: Character '#' is reserved and must be escaped with the preceding '\\'"
    );
    let unclosed = bot
        .send_message(ChatId(5), "*bold")
        .parse_mode(ParseMode::MarkdownV2)
        .await;
    assert!(
        matches!(&unclosed, Err(RequestError::Api(ApiError::CantParseEntities(d))) if d.ends_with("Can't find end of Bold entity at byte offset 0")),
        "{unclosed:?}"
    );
    // The same words without parse_mode are plain text, and escaped markup is fine.
    bot.send_message(ChatId(5), "Your request #42 was received.")
        .await
        .expect("plain text");
    let sent = bot
        .send_message(ChatId(5), "Your request *\\#42* was received\\.")
        .parse_mode(ParseMode::MarkdownV2)
        .await
        .expect("escaped MarkdownV2");
    assert_eq!(
        sent.text(),
        Some("Your request *\\#42* was received\\."),
        "echoed with its markup"
    );

    // The length limit counts what the chat shows: escapes do not count, markup is read before measuring.
    bot.send_message(ChatId(5), "\\.".repeat(4000))
        .parse_mode(ParseMode::MarkdownV2)
        .await
        .expect("4000 dots shown");
    let long = bot
        .send_message(ChatId(5), "x".repeat(4097))
        .parse_mode(ParseMode::MarkdownV2)
        .await;
    assert!(
        matches!(long, Err(RequestError::Api(ApiError::MessageIsTooLong))),
        "{long:?}"
    );

    let calls = fake.calls_to(TOKEN, "sendMessage");
    let recorded: Vec<(u16, Option<String>)> = calls.iter().map(|c| (c.status, c.parse_mode())).collect();
    let markdown = Some("MarkdownV2".to_owned());
    assert_eq!(
        recorded,
        [
            (400, markdown.clone()),
            (400, markdown.clone()),
            (200, None),
            (200, markdown.clone()),
            (200, markdown.clone()),
            (400, markdown),
        ]
    );
    // Captions are read the same way.
    let caption = bot
        .send_document(ChatId(5), InputFile::memory(&b"x"[..]).file_name("x.txt"))
        .caption("v1.2")
        .parse_mode(ParseMode::MarkdownV2)
        .await;
    assert!(
        matches!(&caption, Err(RequestError::Api(ApiError::CantParseEntities(d))) if d.contains("Character '.'")),
        "{caption:?}"
    );
}

fn score_keyboard(data: impl Fn(u8) -> String) -> InlineKeyboardMarkup {
    InlineKeyboardMarkup::new([(1..=5u8)
        .map(|score| InlineKeyboardButton::callback(score.to_string(), data(score)))
        .collect::<Vec<_>>()])
}

#[tokio::test]
async fn inline_keyboards_are_recorded_echoed_and_their_data_checked() {
    let fake = FakeTelegram::start().await;
    let bot = bot(&fake, TOKEN);
    let sent = bot
        .send_message(ChatId(5), "How did we do?")
        .reply_markup(score_keyboard(|score| format!("csat:tok:{score}")))
        .await
        .expect("sendMessage with a keyboard");
    let echoed = sent.reply_markup().expect("the sent message shows its keyboard");
    assert_eq!(echoed.inline_keyboard[0].len(), 5);

    let call = &fake.sent_messages(TOKEN)[0];
    let markup = call.reply_markup().expect("reply_markup recorded");
    let data: Vec<&str> = markup["inline_keyboard"][0]
        .as_array()
        .expect("one row")
        .iter()
        .map(|button| button["callback_data"].as_str().expect("callback data"))
        .collect();
    assert_eq!(
        data,
        ["csat:tok:1", "csat:tok:2", "csat:tok:3", "csat:tok:4", "csat:tok:5"]
    );

    let too_long = bot
        .send_message(ChatId(5), "How did we do?")
        .reply_markup(score_keyboard(|score| format!("csat:{}:{score}", "t".repeat(60))))
        .await;
    assert!(
        matches!(too_long, Err(RequestError::Api(ApiError::ButtonDataInvalid))),
        "{too_long:?}"
    );
}

#[tokio::test]
async fn a_pushed_callback_query_presses_a_button_under_the_bots_keyboard() {
    let fake = FakeTelegram::start().await;
    let bot = bot(&fake, TOKEN);
    bot.send_message(ChatId(5), "first").await.expect("sendMessage");
    let asked = bot
        .send_message(ChatId(5), "How did we do?")
        .reply_markup(score_keyboard(|score| format!("csat:tok:{score}")))
        .await
        .expect("sendMessage with a keyboard");
    bot.send_message(ChatId(5), "later, without buttons")
        .await
        .expect("sendMessage");
    let private = fake.push_callback_query(TOKEN, 5, "csat:tok:4");
    let in_group = fake.push_callback_query(TOKEN, -1_001_234_567_890, "order:7");

    let updates = bot.get_updates().timeout(0).await.expect("getUpdates");
    assert_eq!(
        updates.iter().map(|u| i64::from(u.id.0)).collect::<Vec<_>>(),
        [private, in_group]
    );
    let UpdateKind::CallbackQuery(query) = &updates[0].kind else {
        panic!("expected a callback query, got {:?}", updates[0].kind);
    };
    assert_eq!(query.data.as_deref(), Some("csat:tok:4"));
    assert_eq!(query.from.id.0, 5, "in a private chat the chat's user presses");
    assert!(!query.id.0.is_empty() && !query.chat_instance.is_empty());
    let message = query.message.as_ref().expect("the message with the keyboard");
    assert_eq!(
        (message.chat().id, message.id()),
        (ChatId(5), asked.id),
        "the latest message with a keyboard, not the latest message"
    );

    let UpdateKind::CallbackQuery(query) = &updates[1].kind else {
        panic!("expected a callback query, got {:?}", updates[1].kind);
    };
    assert_eq!(query.from.id.0, GROUP_MEMBER_ID.unsigned_abs());
    assert_eq!(query.data.as_deref(), Some("order:7"));
    let message = query.message.as_ref().expect("a made-up bot message");
    assert_eq!(message.chat().id, ChatId(-1_001_234_567_890));
    let regular = message.regular_message().expect("an accessible message");
    assert!(regular.from.as_ref().is_some_and(|from| from.is_bot));

    // Built without pushing, e.g. to deliver by webhook; each query gets its own id.
    let other = fake.callback_query(TOKEN, 5, "csat:tok:1");
    assert_ne!(other["callback_query"]["id"], json!(query.id.0));
    assert_eq!(fake.pending_updates(TOKEN), 2);
}
