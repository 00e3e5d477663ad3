//! `POST /hooks/{inbox}`: signed messages in, stored once, routed, threaded; bad input
//! refused with its status and a JSON error, changing nothing.

use base64::Engine;
use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{Daemon, Receiver, SignAs, customer_message, eventually};

#[tokio::test]
async fn a_signed_message_is_routed_to_the_team_its_rule_names() {
    let receiver = Receiver::start().await;
    let daemon = Daemon::start(&receiver.url()).await;
    let token = daemon.agent("bea", "billing", "agent");

    let (status, body) = daemon
        .post_signed(&customer_message(
            "evt-1",
            "user-42",
            "I was charged twice for order 1001",
        ))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["duplicate"], false);
    let conversation_id = body["conversation_id"].as_i64().unwrap();

    let billing = daemon.get("/conversations?team=billing", &token).await;
    let listed = &billing["conversations"][0];
    assert_eq!(listed["id"], conversation_id);
    assert_eq!(
        (listed["team"]["key"].as_str(), listed["priority"].as_str()),
        (Some("billing"), Some("high"))
    );
    assert_eq!(listed["labels"], json!(["billing"]));
    assert_eq!(
        daemon.get("/conversations?team=support", &token).await["conversations"],
        json!([])
    );

    let detail = daemon.get(&format!("/conversations/{conversation_id}"), &token).await;
    let routed = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "conversation.routed")
        .unwrap();
    assert_eq!(routed["data"]["rule"], "billing");
    assert_eq!(routed["data"]["team"], "billing");
}

#[tokio::test]
async fn an_unmatched_message_goes_to_the_default_team_and_metadata_rules_see_contact_attributes() {
    let receiver = Receiver::start().await;
    let daemon = Daemon::start(&receiver.url()).await;
    // A supervisor: the conversations land in several teams.
    let token = daemon.agent("sam", "support", "admin");

    let (_, plain) = daemon
        .post_signed(&customer_message("evt-1", "user-1", "Hello there"))
        .await;
    let mut enterprise = customer_message("evt-2", "user-2", "Hello there");
    enterprise["metadata"] = json!({"plan": "enterprise", "seats": 500});
    let (_, vip) = daemon.post_signed(&enterprise).await;

    let first = daemon
        .get(&format!("/conversations/{}", plain["conversation_id"]), &token)
        .await;
    assert_eq!(first["team"]["key"], "support");
    let routed = first["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "conversation.routed")
        .unwrap();
    assert_eq!(routed["data"]["rule"], json!(null));
    let second = daemon
        .get(&format!("/conversations/{}", vip["conversation_id"]), &token)
        .await;
    assert_eq!(
        (second["team"]["key"].as_str(), second["priority"].as_str()),
        (Some("technical"), Some("urgent"))
    );
    assert_eq!(
        second["contact"]["metadata"],
        json!({"plan": "enterprise", "seats": 500})
    );
}

#[tokio::test]
async fn a_redelivered_id_answers_duplicate_and_stores_nothing_new() {
    let receiver = Receiver::start().await;
    let daemon = Daemon::start(&receiver.url()).await;
    let message = customer_message("evt-1", "user-42", "Where is my parcel?");

    let (first_status, first) = daemon.post_signed(&message).await;
    assert_eq!(first_status, StatusCode::ACCEPTED);
    let before = daemon.snapshot().await;
    let (again_status, again) = daemon.post_signed(&message).await;
    assert_eq!(again_status, StatusCode::OK);
    assert_eq!(
        again,
        json!({"conversation_id": first["conversation_id"], "message_id": first["message_id"], "duplicate": true})
    );
    // Changed text under the same id is still the same message, redelivered.
    let (_, edited) = daemon
        .post_signed(&customer_message("evt-1", "user-42", "Where is my parcel??"))
        .await;
    assert_eq!(edited["duplicate"], true);
    let after = daemon.snapshot().await;
    // The outbox may have sent the acknowledgement meanwhile; nothing else may change.
    let without_outbox = |mut s: std::collections::BTreeMap<String, Vec<String>>| {
        s.remove("outbox");
        s
    };
    assert_eq!(without_outbox(before), without_outbox(after));
}

#[tokio::test]
async fn concurrent_redeliveries_store_the_message_once() {
    let receiver = Receiver::start().await;
    let daemon = Daemon::start(&receiver.url()).await;
    let message = customer_message("evt-race", "user-42", "Hello?");
    let results = futures_util::future::join_all((0..16).map(|_| daemon.post_signed(&message))).await;
    let accepted = results
        .iter()
        .filter(|(status, _)| *status == StatusCode::ACCEPTED)
        .count();
    let duplicates = results
        .iter()
        .filter(|(status, body)| *status == StatusCode::OK && body["duplicate"] == true)
        .count();
    assert_eq!((accepted, duplicates), (1, 15));
    let snapshot = daemon.snapshot().await;
    assert_eq!(
        snapshot["messages"]
            .iter()
            .filter(|row| row.contains("'inbound'"))
            .count(),
        1
    );
}

struct BadRequest {
    name: &'static str,
    inbox: &'static str,
    body: Vec<u8>,
    sign: SignAs,
    status: StatusCode,
    code: &'static str,
    /// A word the error message must contain.
    mentions: &'static str,
}

#[tokio::test]
async fn bad_requests_get_their_status_and_json_error_and_change_nothing() {
    let receiver = Receiver::start().await;
    let daemon = Daemon::start(&receiver.url()).await;
    // One accepted message first, so "unchanged" is checked against a non-empty store.
    daemon.post_signed(&customer_message("evt-0", "user-1", "Hi")).await;
    let valid = customer_message("evt-1", "user-42", "Hello").to_string().into_bytes();
    let oversized = customer_message("evt-2", "user-42", &"x".repeat(70_000))
        .to_string()
        .into_bytes();
    let missing_from_id = json!({"id": "evt-3", "from": {"name": "Ada"}, "text": "Hi"})
        .to_string()
        .into_bytes();
    let bad_attachment = json!({"id": "evt-4", "from": {"id": "u"}, "text": "Hi",
        "attachments": [{"filename": "a.txt", "content_type": "text/plain", "data_base64": "not base64!"}]})
    .to_string()
    .into_bytes();

    let cases = vec![
        BadRequest {
            name: "wrong signature",
            inbox: "shop",
            body: valid.clone(),
            sign: SignAs::WrongSecret,
            status: StatusCode::UNAUTHORIZED,
            code: "invalid_signature",
            mentions: "signature",
        },
        BadRequest {
            name: "unsigned",
            inbox: "shop",
            body: valid.clone(),
            sign: SignAs::Unsigned,
            status: StatusCode::UNAUTHORIZED,
            code: "missing_signature_header",
            mentions: "webhook-id",
        },
        BadRequest {
            name: "stale timestamp",
            inbox: "shop",
            body: valid.clone(),
            sign: SignAs::SecondsAgo(600),
            status: StatusCode::UNAUTHORIZED,
            code: "invalid_timestamp",
            mentions: "300 s",
        },
        BadRequest {
            name: "future timestamp",
            inbox: "shop",
            body: valid.clone(),
            sign: SignAs::SecondsAgo(-600),
            status: StatusCode::UNAUTHORIZED,
            code: "invalid_timestamp",
            mentions: "300 s",
        },
        BadRequest {
            name: "oversized body",
            inbox: "shop",
            body: oversized,
            sign: SignAs::Now,
            status: StatusCode::PAYLOAD_TOO_LARGE,
            code: "body_too_large",
            mentions: "65536",
        },
        BadRequest {
            name: "malformed JSON",
            inbox: "shop",
            body: b"{\"id\": \"evt-5\",".to_vec(),
            sign: SignAs::Now,
            status: StatusCode::BAD_REQUEST,
            code: "invalid_json",
            mentions: "JSON",
        },
        BadRequest {
            name: "missing field",
            inbox: "shop",
            body: missing_from_id,
            sign: SignAs::Now,
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid_field",
            mentions: "`from.id`",
        },
        BadRequest {
            name: "bad attachment",
            inbox: "shop",
            body: bad_attachment,
            sign: SignAs::Now,
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid_field",
            mentions: "`attachments[0].data_base64`",
        },
        BadRequest {
            name: "not JSON content",
            inbox: "shop",
            body: valid.clone(),
            sign: SignAs::ContentType("text/plain"),
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code: "unsupported_media_type",
            mentions: "application/json",
        },
        BadRequest {
            name: "unknown inbox",
            inbox: "nope",
            body: valid,
            sign: SignAs::Now,
            status: StatusCode::NOT_FOUND,
            code: "not_found",
            mentions: "`nope`",
        },
    ];
    for BadRequest {
        name,
        inbox,
        body,
        sign,
        status,
        code,
        mentions,
    } in cases
    {
        let before = daemon.snapshot().await;
        let (got_status, error) = daemon.post_raw(inbox, body, sign).await;
        assert_eq!(got_status, status, "{name}: {error}");
        assert_eq!(error["error"]["code"], code, "{name}: {error}");
        let message = error["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(mentions),
            "{name}: message {message:?} should mention {mentions:?}"
        );
        let after = daemon.snapshot().await;
        let changed: Vec<_> = before
            .keys()
            .filter(|table| table.as_str() != "outbox" && before[*table] != after[*table])
            .collect();
        assert!(changed.is_empty(), "{name} changed tables {changed:?}");
    }
}

#[tokio::test]
async fn messages_thread_per_contact_and_thread_key() {
    let receiver = Receiver::start().await;
    let daemon = Daemon::start(&receiver.url()).await;
    let token = daemon.agent("sam", "support", "agent");
    let with_thread = |id: &str, from: &str, thread: Option<&str>| {
        let mut message = customer_message(id, from, "About my order");
        if let Some(thread) = thread {
            message["thread"] = json!(thread);
        }
        message
    };
    let (_, a1) = daemon.post_signed(&with_thread("m1", "ada", None)).await;
    let (_, a2) = daemon.post_signed(&with_thread("m2", "ada", None)).await;
    let (_, a_order) = daemon.post_signed(&with_thread("m3", "ada", Some("order-1"))).await;
    let (_, a_order_again) = daemon.post_signed(&with_thread("m4", "ada", Some("order-1"))).await;
    let (_, b_order) = daemon.post_signed(&with_thread("m5", "bob", Some("order-1"))).await;
    let conversation = |value: &serde_json::Value| value["conversation_id"].as_i64().unwrap();

    assert_eq!(
        conversation(&a1),
        conversation(&a2),
        "the same contact's follow-up joins their open conversation"
    );
    assert_ne!(
        conversation(&a1),
        conversation(&a_order),
        "a thread key opens its own conversation"
    );
    assert_eq!(conversation(&a_order), conversation(&a_order_again));
    assert_ne!(
        conversation(&a_order),
        conversation(&b_order),
        "another contact's message never joins it"
    );

    // Resolved: a message on the thread reopens it; one without a thread opens a new one.
    let (status, _) = daemon
        .api(
            reqwest::Method::PATCH,
            &format!("/conversations/{}", conversation(&a_order)),
            &token,
            Some(json!({"status": "resolved"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, reopened) = daemon.post_signed(&with_thread("m6", "ada", Some("order-1"))).await;
    assert_eq!(conversation(&reopened), conversation(&a_order));
    let detail = daemon
        .get(&format!("/conversations/{}", conversation(&a_order)), &token)
        .await;
    assert_eq!(detail["status"], "open");
    assert!(
        detail["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "conversation.status_changed"
                && e["data"] == json!({"from": "resolved", "to": "open", "reason": "customer_message"}))
    );
}

#[tokio::test]
async fn attachments_are_stored_once_by_content_and_downloadable() {
    let receiver = Receiver::start().await;
    let daemon = Daemon::start(&receiver.url()).await;
    let token = daemon.agent("sam", "support", "agent");
    let bytes = b"%PDF-1.4 invoice 1001".to_vec();
    let encoded = base64::engine::general_purpose::STANDARD.encode(&bytes);
    for id in ["a1", "a2"] {
        let mut message = customer_message(id, "ada", "See attached");
        message["attachments"] =
            json!([{"filename": "invoice.pdf", "content_type": "application/pdf", "data_base64": encoded}]);
        let (status, _) = daemon.post_signed(&message).await;
        assert_eq!(status, StatusCode::ACCEPTED);
    }
    let snapshot = daemon.snapshot().await;
    assert_eq!((snapshot["attachments"].len(), snapshot["blobs"].len()), (2, 1));

    let list = daemon.get("/conversations", &token).await;
    let detail = daemon
        .get(&format!("/conversations/{}", list["conversations"][0]["id"]), &token)
        .await;
    let attachment = &detail["messages"][0]["attachments"][0];
    assert_eq!(
        (attachment["filename"].as_str(), attachment["size"].as_i64()),
        (Some("invoice.pdf"), Some(bytes.len() as i64))
    );
    let response = reqwest::Client::new()
        .get(daemon.url(&format!("/api/v1/attachments/{}", attachment["id"])))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "application/pdf");
    assert!(
        response.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    assert_eq!(
        response.headers()["content-security-policy"],
        "sandbox; default-src 'none'"
    );
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    assert_eq!(response.bytes().await.unwrap().to_vec(), bytes);
}

#[tokio::test]
async fn data_survives_a_restart_and_sigterm_exits_cleanly() {
    let receiver = Receiver::start().await;
    let daemon = Daemon::start(&receiver.url()).await;
    let token = daemon.agent("sam", "support", "agent");
    let (_, first) = daemon
        .post_signed(&customer_message("evt-1", "ada", "Before the restart"))
        .await;
    let conversation_id = first["conversation_id"].as_i64().unwrap();
    let (status, _) = daemon
        .api(
            reqwest::Method::POST,
            &format!("/conversations/{conversation_id}/messages"),
            &token,
            Some(json!({"text": "We are on it"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let before = daemon.get(&format!("/conversations/{conversation_id}"), &token).await;

    let (dir, exit) = daemon.stop();
    assert!(
        exit.success(),
        "SIGTERM should end the daemon with status 0, got {exit}"
    );
    let daemon = Daemon::start_in(dir).await;

    let after = daemon.get(&format!("/conversations/{conversation_id}"), &token).await;
    let texts = |detail: &serde_json::Value| -> Vec<String> {
        detail["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["text"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(texts(&after), texts(&before));
    assert_eq!(after["assignee"]["name"], "sam");
    let (status, again) = daemon
        .post_signed(&customer_message("evt-1", "ada", "Before the restart"))
        .await;
    assert_eq!((status, again["duplicate"].as_bool()), (StatusCode::OK, Some(true)));
    eventually("the reply to reach the receiver", || async {
        (!receiver.for_message(texts_id(&after, "We are on it")).is_empty()).then_some(())
    })
    .await;
}

fn texts_id(detail: &serde_json::Value, text: &str) -> i64 {
    detail["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["text"] == text)
        .unwrap()["id"]
        .as_i64()
        .unwrap()
}

#[tokio::test]
async fn malformed_paths_unknown_endpoints_and_wrong_methods_get_json_errors() {
    let receiver = Receiver::start().await;
    let daemon = Daemon::start(&receiver.url()).await;
    let client = reqwest::Client::new();
    for (method, path, status, code) in [
        (
            reqwest::Method::POST,
            "/hooks/%FF",
            StatusCode::BAD_REQUEST,
            "invalid_path",
        ),
        (
            reqwest::Method::GET,
            "/hooks/shop",
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            reqwest::Method::GET,
            "/nothing/here",
            StatusCode::NOT_FOUND,
            "not_found",
        ),
    ] {
        let response = client.request(method, daemon.url(path)).send().await.unwrap();
        assert_eq!(response.status(), status, "{path}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], code, "{path}");
    }
}
