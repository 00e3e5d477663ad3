//! Privacy end to end: one person writing on the three channels (the app's webhook, a
//! Telegram bot on the fake Bot API, email through a private Dovecot and SMTP relay),
//! exported through the API and the CLI, then erased, after which nothing of them is
//! readable through the API or in the database's files, and the desk's figures still
//! count their conversations.
//!
//! Each channel makes its own contact (email addresses and Telegram ids join across
//! inboxes of their own channel only), so the person starts as three: on the webhook one
//! with two conversations (a file, an agent's reply and note), on Telegram and by email
//! one conversation each. One test erases the three; the other has an agent merge them
//! into one person first, exported and erased as one.

use std::collections::BTreeMap;
use std::io::Read;
use std::time::Instant;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use switchboard_test_mailservers::{Dovecot, SmtpRelay, email_inbox, plain_servers};
use switchboard_test_telegram::{FakeTelegram, telegram_inbox};

use crate::harness::{Daemon, Receiver, SECRET, config_with_inbox, eventually, shop_inbox};

const BOT_TOKEN: &str = "5000000001:AAHfake-token-for-the-shop-help-bot";
/// Ada's Telegram user id: long enough not to turn up by chance in the file's bytes.
const ADA_TELEGRAM: i64 = 739_582_461;
const ADA_EMAIL: &str = "customer@test.local";
const ADA_APP_EMAIL: &str = "ada.lovelace@example.com";
const FILE_BYTES: &str = "ATTACHMENT-BYTES-okapi-7731";

/// What must not survive the erasure anywhere: her name, addresses, Telegram id, what
/// she wrote on each channel, her file, and the ids her mail carried.
const PERSONAL: [&str; 9] = [
    "Lovelace",
    ADA_EMAIL,
    ADA_APP_EMAIL,
    "739582461",
    "zebra-quartz-webhook",
    "zebra-quartz-telegram",
    "zebra-quartz-email",
    FILE_BYTES,
    "zebra-mail-id-1",
];

struct Desk {
    daemon: Daemon,
    fake: FakeTelegram,
    dovecot: Dovecot,
    _relay: SmtpRelay,
    _receiver: Receiver,
    subscriber: Receiver,
    admin: String,
}

async fn start() -> Desk {
    let fake = FakeTelegram::start().await;
    fake.add_bot(BOT_TOKEN, 5_000_000_001, "ShopHelpBot");
    let dovecot = Dovecot::start().await;
    let relay = SmtpRelay::start(&dovecot).await;
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (imap, smtp) = plain_servers(dir.path(), &dovecot, &relay);
    let mail = email_inbox(dir.path(), "mail", &imap, &smtp);
    let inboxes = shop_inbox(&receiver.url()) + &telegram_inbox(dir.path(), "shop-bot", BOT_TOKEN, &fake, "") + &mail;
    std::fs::write(
        dir.path().join("switchboard.toml"),
        config_with_inbox(dir.path(), &inboxes),
    )
    .unwrap();
    let daemon = Daemon::start_in(dir).await;
    let admin = daemon.agent("root", "support", "admin");
    let subscriber = Receiver::start().await;
    let (status, body) = daemon
        .api(
            Method::POST,
            "/subscriptions",
            &admin,
            Some(json!({"url": subscriber.url(), "events": ["contact.erased", "message.created"], "secret": SECRET})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    Desk {
        daemon,
        fake,
        dovecot,
        _relay: relay,
        _receiver: receiver,
        subscriber,
        admin,
    }
}

/// Ada writes on all three channels; an agent replies and notes on the webhook. Returns
/// her contacts by inbox key.
async fn ada_writes_everywhere(desk: &Desk) -> BTreeMap<String, i64> {
    let daemon = &desk.daemon;
    let from = json!({"id": "ada-7", "name": "Ada Lovelace", "email": ADA_APP_EMAIL});
    let first = json!({
        "id": "app-msg-1", "from": from, "thread": "order-1",
        "text": "My parcel zebra-quartz-webhook is late",
        "attachments": [{"filename": "receipt.txt", "content_type": "text/plain",
                         "data_base64": base64_of(FILE_BYTES)}],
    });
    let second = json!({"id": "app-msg-2", "from": from, "thread": "order-2", "text": "Another order, zebra-quartz-webhook too"});
    for body in [first, second] {
        let (status, answer) = daemon.post_signed(&body).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    }
    desk.fake.push_update(
        BOT_TOKEN,
        json!({"message": {
            "message_id": 11,
            "from": {"id": ADA_TELEGRAM, "is_bot": false, "first_name": "Ada", "last_name": "Lovelace", "language_code": "en"},
            "chat": {"id": ADA_TELEGRAM, "type": "private", "first_name": "Ada"},
            "date": 1_795_000_000,
            "text": "Hello from Telegram zebra-quartz-telegram"
        }}),
    );
    let mail = format!(
        "From: Ada Lovelace <{ADA_EMAIL}>\r\nTo: support@test.local\r\nSubject: Refund zebra-quartz-email\r\n\
         Message-ID: <zebra-mail-id-1@test.local>\r\nDate: Sat, 05 Dec 2026 10:00:00 +0000\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\nPlease refund me, zebra-quartz-email.\r\n"
    );
    desk.dovecot.deliver("support@test.local", mail.as_bytes()).await;
    let contacts = eventually("Ada's four conversations on three channels", || async {
        let page = daemon.get("/conversations?limit=100", &desk.admin).await;
        let list = page["conversations"].as_array().unwrap().clone();
        (list.len() == 4).then(|| {
            list.iter()
                .map(|c| {
                    (
                        c["inbox"].as_str().unwrap().to_owned(),
                        c["contact"]["id"].as_i64().unwrap(),
                    )
                })
                .collect::<BTreeMap<_, _>>()
        })
    })
    .await;
    let order_1 = conversation_of(desk, "shop", "order-1").await;
    for (text, private) in [
        ("We are on it, Ada Lovelace", false),
        ("Note: zebra-quartz-webhook is VIP", true),
    ] {
        let (status, body) = daemon
            .api(
                Method::POST,
                &format!("/conversations/{order_1}/messages"),
                &desk.admin,
                Some(json!({"text": text, "private": private})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    contacts
}

fn base64_of(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

async fn conversation_of(desk: &Desk, inbox: &str, thread: &str) -> i64 {
    let page = desk.daemon.get("/conversations?limit=100", &desk.admin).await;
    page["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["inbox"] == inbox && c["thread"] == thread)
        .and_then(|c| c["id"].as_i64())
        .unwrap_or_else(|| panic!("no conversation {thread} in {inbox}: {page}"))
}

/// The archive's entries by path.
fn unpack(bytes: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut entries = BTreeMap::new();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().display().to_string();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        entries.insert(path, data);
    }
    entries
}

async fn export(desk: &Desk, contact: i64, token: &str) -> (StatusCode, Vec<u8>) {
    let response = reqwest::Client::new()
        .get(desk.daemon.url(&format!("/api/v1/contacts/{contact}/export")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    (response.status(), response.bytes().await.unwrap().to_vec())
}

/// Every conversation's detail, and the list, as one text: what the API shows.
async fn everything_the_api_shows(desk: &Desk) -> String {
    let page = desk.daemon.get("/conversations?limit=100", &desk.admin).await;
    let mut shown = page.to_string();
    for conversation in page["conversations"].as_array().unwrap() {
        let detail = desk
            .daemon
            .get(&format!("/conversations/{}", conversation["id"]), &desk.admin)
            .await;
        shown.push_str(&detail.to_string());
    }
    shown.push_str(&desk.daemon.get("/deliveries?limit=100", &desk.admin).await.to_string());
    let contacts = desk.daemon.get("/contacts?limit=100", &desk.admin).await;
    shown.push_str(&contacts.to_string());
    for contact in page["conversations"].as_array().unwrap() {
        let id = &contact["contact"]["id"];
        shown.push_str(
            &desk
                .daemon
                .get(&format!("/contacts/{id}"), &desk.admin)
                .await
                .to_string(),
        );
    }
    shown
}

/// Which of [`PERSONAL`] occur in the bytes of the database file and its WAL.
fn found_in_files(db: &std::path::Path) -> Vec<String> {
    let mut found = Vec::new();
    for suffix in ["", "-wal"] {
        let path = format!("{}{suffix}", db.display());
        let Ok(bytes) = std::fs::read(&path) else { continue };
        for needle in PERSONAL {
            if bytes.windows(needle.len()).any(|window| window == needle.as_bytes()) {
                found.push(format!("{needle} in {path}"));
            }
        }
    }
    found
}

/// How many conversations the desk counts: the list, and the teams' open ones.
async fn figures(desk: &Desk) -> (usize, i64) {
    let page = desk.daemon.get("/conversations?limit=100", &desk.admin).await;
    let teams = desk.daemon.get("/teams", &desk.admin).await;
    let open: i64 = teams["teams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|team| team["waiting"].as_i64().unwrap() + team["assigned"].as_i64().unwrap())
        .sum();
    (page["conversations"].as_array().unwrap().len(), open)
}

#[tokio::test]
async fn a_person_on_three_channels_is_exported_whole_then_erased_from_the_api_and_the_file() {
    let desk = start().await;
    let contacts = ada_writes_everywhere(&desk).await;
    let daemon = &desk.daemon;

    // Export: each contact's archive holds every message, note, file and event.
    let started = Instant::now();
    let (status, bytes) = export(&desk, contacts["shop"], &desk.admin).await;
    let export_time = started.elapsed();
    assert_eq!(status, StatusCode::OK);
    let entries = unpack(&bytes);
    let folder = format!("contact-{}", contacts["shop"]);
    let document: Value = serde_json::from_slice(&entries[&format!("{folder}/contact.json")]).unwrap();
    assert_eq!(document["format"], "switchboard.contact-export/1");
    assert_eq!(document["contact"]["name"], "Ada Lovelace");
    assert_eq!(document["contact"]["email"], ADA_APP_EMAIL);
    assert_eq!(document["identities"][0]["external_id"], "ada-7");
    let conversations = document["conversations"].as_array().unwrap();
    assert_eq!(conversations.len(), 2, "both of her app threads");
    let texts: Vec<&str> = conversations
        .iter()
        .flat_map(|c| c["messages"].as_array().unwrap())
        .filter_map(|m| m["text"].as_str())
        .collect();
    for wanted in [
        "My parcel zebra-quartz-webhook is late",
        "Another order, zebra-quartz-webhook too",
        "We are on it, Ada Lovelace",
        "Note: zebra-quartz-webhook is VIP",
    ] {
        assert!(texts.contains(&wanted), "{wanted:?} missing from {texts:?}");
    }
    let kinds: Vec<&str> = conversations
        .iter()
        .flat_map(|c| c["events"].as_array().unwrap())
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert!(
        kinds.contains(&"conversation.created") && kinds.contains(&"conversation.routed"),
        "{kinds:?}"
    );
    let file = conversations
        .iter()
        .flat_map(|c| c["messages"].as_array().unwrap())
        .flat_map(|m| m["attachments"].as_array().unwrap())
        .next()
        .expect("her file is listed");
    assert_eq!(file["filename"], "receipt.txt");
    assert_eq!(
        entries[&format!("{folder}/{}", file["file"].as_str().unwrap())],
        FILE_BYTES.as_bytes()
    );
    eprintln!(
        "export of the webhook contact: {} bytes, {} entries, {export_time:?}",
        bytes.len(),
        entries.len()
    );
    for (inbox, phrase) in [("shop-bot", "zebra-quartz-telegram"), ("mail", "zebra-quartz-email")] {
        let (status, bytes) = export(&desk, contacts[inbox], &desk.admin).await;
        assert_eq!(status, StatusCode::OK);
        let entries = unpack(&bytes);
        let json = String::from_utf8(entries[&format!("contact-{}/contact.json", contacts[inbox])].clone()).unwrap();
        assert!(json.contains(phrase) && json.contains("Lovelace"), "{inbox}: {json}");
    }
    // The CLI writes the same archive, and will not overwrite a file.
    let out = daemon.dir.path().join("ada-mail.tar.gz");
    let output = daemon.cli(&[
        "contact",
        "export",
        &contacts["mail"].to_string(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let entries = unpack(&std::fs::read(&out).unwrap());
    assert!(entries.contains_key(&format!("contact-{}/contact.json", contacts["mail"])));
    let again = daemon.cli(&[
        "contact",
        "export",
        &contacts["mail"].to_string(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!again.status.success(), "an existing file is not overwritten");

    let shown = everything_the_api_shows(&desk).await;
    assert!(shown.contains("zebra-quartz-telegram") && shown.contains("Lovelace"));
    let figures_before = figures(&desk).await;
    assert_eq!(figures_before.0, 4);
    // The search finds each of them before: its silence afterwards means something.
    let db = daemon.dir.path().join("switchboard.db");
    let before = found_in_files(&db);
    for needle in PERSONAL {
        assert!(
            before.iter().any(|found| found.starts_with(needle)),
            "{needle} is not in the files even before the erasure: {before:?}"
        );
    }

    // Erase: the webhook and Telegram contacts through the API, the email one by CLI.
    let started = Instant::now();
    let (status, erased) = daemon
        .api(
            Method::POST,
            &format!("/contacts/{}/erase", contacts["shop"]),
            &desk.admin,
            Some(json!({"reason": "GDPR request 2026-118"})),
        )
        .await;
    let erase_time = started.elapsed();
    assert_eq!(status, StatusCode::OK, "{erased}");
    assert_eq!(erased["conversations"].as_array().unwrap().len(), 2);
    assert_eq!(erased["attachments"], 1);
    assert_eq!(erased["identities"], 1);
    assert_eq!(erased["scrubbed"], true);
    eprintln!("erasure of the webhook contact: {erase_time:?}, {erased}");
    let shell = erased["conversations"][0].as_i64().unwrap();
    let (status, erased) = daemon
        .api(
            Method::POST,
            &format!("/contacts/{}/erase", contacts["shop-bot"]),
            &desk.admin,
            Some(json!({"reason": "GDPR request 2026-118"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{erased}");
    let output = daemon.cli(&[
        "contact",
        "erase",
        &contacts["mail"].to_string(),
        "--reason",
        "GDPR request 2026-118",
    ]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(printed["contact_id"], contacts["mail"]);

    // Nothing of her through the API.
    let shown = everything_the_api_shows(&desk).await;
    for needle in PERSONAL {
        assert!(!shown.contains(needle), "the API still shows {needle}");
    }
    assert!(
        shown.contains("conversation.erased"),
        "each conversation says it was erased"
    );
    // Nor in the database's files (the writer's connection scrubbed it; the CLI's too).
    assert_eq!(found_in_files(&db), Vec::<String>::new());
    // The figures still count her conversations.
    assert_eq!(figures(&desk).await, figures_before);
    // Subscribers were told once per contact, with no personal data.
    let told = eventually("three contact.erased events", || async {
        let erased: Vec<Value> = desk
            .subscriber
            .callbacks()
            .into_iter()
            .filter(|callback| callback.body["type"] == "contact.erased" && callback.answered.is_success())
            .map(|callback| callback.body)
            .collect();
        (erased.len() >= 3).then_some(erased)
    })
    .await;
    let mut ids: Vec<i64> = told
        .iter()
        .map(|event| event["data"]["contact_id"].as_i64().unwrap())
        .collect();
    ids.sort_unstable();
    let mut expected: Vec<i64> = contacts.values().copied().collect();
    expected.sort_unstable();
    assert_eq!(ids, expected);
    assert!(!told.iter().any(|event| event.to_string().contains("Lovelace")));
    // An erased contact cannot be exported or erased again.
    assert_eq!(
        export(&desk, contacts["shop"], &desk.admin).await.0,
        StatusCode::CONFLICT
    );
    let (status, _) = daemon
        .api(
            Method::POST,
            &format!("/contacts/{}/erase", contacts["shop"]),
            &desk.admin,
            Some(json!({"reason": "again"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    // Nor can an agent reply to them any more.
    let (status, body) = daemon
        .api(
            Method::POST,
            &format!("/conversations/{shell}/messages"),
            &desk.admin,
            Some(json!({"text": "Are you still there?"})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("conflict")),
        "{body}"
    );

    // The audit trail: who exported and erased whom, when and why; none of her data.
    let trail = daemon
        .get(&format!("/privacy/audit?contact={}", contacts["shop"]), &desk.admin)
        .await;
    let actions: Vec<(&str, &str)> = trail["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            (
                entry["action"].as_str().unwrap(),
                entry["actor"]["kind"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(actions, [("erase", "agent"), ("export", "agent")]);
    assert_eq!(trail["entries"][0]["reason"], "GDPR request 2026-118");
    let mail_trail = daemon
        .get(&format!("/privacy/audit?contact={}", contacts["mail"]), &desk.admin)
        .await;
    assert_eq!(
        mail_trail["entries"].as_array().unwrap().len(),
        3,
        "API export, CLI export, CLI erase"
    );
    assert_eq!(
        mail_trail["entries"][0]["actor"]["kind"], "system",
        "the CLI acts as the desk"
    );
    let whole = daemon.get("/privacy/audit", &desk.admin).await.to_string();
    for needle in PERSONAL {
        assert!(!whole.contains(needle), "the audit trail holds {needle}");
    }

    // A clean stop merges the WAL: the file alone still holds none of it.
    let (dir, exit) = desk.daemon.stop();
    assert!(exit.success());
    assert_eq!(found_in_files(&dir.path().join("switchboard.db")), Vec::<String>::new());
}

#[tokio::test]
async fn only_admins_with_a_reason_may_export_or_erase_and_a_refusal_changes_nothing() {
    let receiver = Receiver::start().await;
    let daemon = Daemon::start(&receiver.url()).await;
    let admin = daemon.agent("root", "support", "admin");
    let agent = daemon.agent("sam", "support", "agent");
    let (status, _) = daemon
        .post_signed(&crate::harness::customer_message("m1", "ada", "Secret zebra text"))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let page = daemon.get("/conversations", &admin).await;
    let contact = page["conversations"][0]["contact"]["id"].as_i64().unwrap();
    let conversation = page["conversations"][0]["id"].as_i64().unwrap();
    // The acknowledgement settled first, so the snapshots compare only what we did.
    eventually("the acknowledgement to be sent", || async {
        let detail = daemon.get(&format!("/conversations/{conversation}"), &admin).await;
        let outbound: Vec<&Value> = detail["messages"]
            .as_array()?
            .iter()
            .filter(|m| m["direction"] == "outbound")
            .collect();
        (!outbound.is_empty() && outbound.iter().all(|m| m["delivery"]["status"] == "sent")).then_some(())
    })
    .await;
    let before = daemon.snapshot().await;

    let erase = |token: &str, id: String, body: Value| {
        let token = token.to_owned();
        let daemon = &daemon;
        async move {
            daemon
                .api(Method::POST, &format!("/contacts/{id}/erase"), &token, Some(body))
                .await
        }
    };
    let (status, body) = erase(&agent, contact.to_string(), json!({"reason": "x"})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );
    for (body, field) in [
        (json!({}), "reason"),
        (json!({"reason": "   "}), "reason"),
        (json!({"reason": 7}), "reason"),
        (json!({"reason": "x".repeat(501)}), "reason"),
        (json!({"reason": "ok", "also": 1}), "also"),
    ] {
        let (status, answer) = erase(&admin, contact.to_string(), body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {answer}");
        assert!(answer["error"]["message"].as_str().unwrap().contains(field), "{answer}");
    }
    for id in ["999999", "-1", "abc"] {
        let (status, answer) = erase(&admin, id.into(), json!({"reason": "ok"})).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{id}: {answer}");
        assert_eq!(answer["error"]["code"], "not_found");
    }
    let response = reqwest::Client::new()
        .get(daemon.url(&format!("/api/v1/contacts/{contact}/export")))
        .bearer_auth(&agent)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "forbidden");
    let (status, _) = daemon.api(Method::GET, "/contacts/999999/export", &admin, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = daemon.api(Method::GET, "/privacy/audit", &agent, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    for query in ["contact=abc", "before=0", "limit=1000", "who=1"] {
        let (status, answer) = daemon
            .api(Method::GET, &format!("/privacy/audit?{query}"), &admin, None)
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {answer}");
    }
    assert_eq!(daemon.snapshot().await, before, "no refusal changed anything");
    let output = daemon.cli(&["contact", "erase", &contact.to_string(), "--reason", " "]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("reason"));
    assert_eq!(daemon.snapshot().await, before, "nor the CLI's");
}

#[tokio::test]
async fn a_person_merged_from_three_channels_is_exported_and_erased_as_one() {
    let desk = start().await;
    let contacts = ada_writes_everywhere(&desk).await;
    let daemon = &desk.daemon;
    let person = contacts["shop"];
    for other in [contacts["shop-bot"], contacts["mail"]] {
        let (status, merged) = daemon
            .api(
                Method::POST,
                &format!("/contacts/{person}/merge"),
                &desk.admin,
                Some(json!({"from": other})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{merged}");
    }

    let (status, bytes) = export(&desk, person, &desk.admin).await;
    assert_eq!(status, StatusCode::OK);
    let entries = unpack(&bytes);
    let document: Value = serde_json::from_slice(&entries[&format!("contact-{person}/contact.json")]).unwrap();
    let mut channels: Vec<&str> = document["identities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|identity| identity["channel"].as_str().unwrap())
        .collect();
    channels.sort_unstable();
    assert_eq!(channels, ["email", "telegram", "webhook"]);
    let conversations = document["conversations"].as_array().unwrap();
    assert_eq!(conversations.len(), 4, "every conversation on every channel");
    let whole = document.to_string();
    for phrase in [
        "zebra-quartz-webhook",
        "zebra-quartz-telegram",
        "zebra-quartz-email",
        "Note: zebra-quartz-webhook is VIP",
    ] {
        assert!(whole.contains(phrase), "{phrase} missing from the export");
    }
    let merges = conversations
        .iter()
        .flat_map(|c| c["events"].as_array().unwrap())
        .filter(|e| e["kind"] == "contact.merged")
        .count();
    assert!(merges >= 4, "each conversation records the merge: {merges}");
    assert!(
        entries
            .keys()
            .any(|name| name.ends_with("receipt.txt") || entries[name] == FILE_BYTES.as_bytes())
    );
    // The merged records are pointers: nothing to export or erase there.
    for merged in [contacts["shop-bot"], contacts["mail"]] {
        assert_eq!(export(&desk, merged, &desk.admin).await.0, StatusCode::CONFLICT);
    }

    let figures_before = figures(&desk).await;
    let (status, erased) = daemon
        .api(
            Method::POST,
            &format!("/contacts/{person}/erase"),
            &desk.admin,
            Some(json!({"reason": "GDPR request 2026-131"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{erased}");
    assert_eq!(erased["conversations"].as_array().unwrap().len(), 4);
    assert_eq!(erased["identities"], 3);
    let shown = everything_the_api_shows(&desk).await;
    for needle in PERSONAL {
        assert!(!shown.contains(needle), "the API still shows {needle}");
    }
    assert_eq!(
        found_in_files(&daemon.dir.path().join("switchboard.db")),
        Vec::<String>::new()
    );
    assert_eq!(
        figures(&desk).await,
        figures_before,
        "the figures still count her conversations"
    );
}
