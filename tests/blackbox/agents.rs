//! `/api/v1`: agents list their queue, read conversations, reply, note, and change
//! status, priority, assignee and team, with bearer tokens from the CLI.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{Daemon, Receiver, customer_message, message_by_id};

#[tokio::test]
async fn requests_without_a_valid_token_are_refused_with_json() {
    let receiver = Receiver::start().await;
    let daemon = Daemon::start(&receiver.url()).await;
    daemon.agent("sam", "support", "agent");
    for token in ["", "sb_not-a-real-token"] {
        let response = reqwest::Client::new()
            .get(daemon.url("/api/v1/conversations"))
            .header("authorization", format!("Bearer {token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthorized");
    }
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let receiver = Receiver::start().await;
    let daemon = Daemon::start(&receiver.url()).await;
    let token = daemon.agent("sam", "support", "agent");
    let response = reqwest::Client::new()
        .get(daemon.url("/api/v1/agents/me"))
        .header("authorization", format!("bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.json::<Value>().await.unwrap()["name"], "sam");
}

#[tokio::test]
async fn teams_show_their_open_conversation_counts() {
    let receiver = Receiver::start().await;
    let daemon = Daemon::start(&receiver.url()).await;
    let token = daemon.agent("sam", "support", "agent");
    daemon
        .post_signed(&customer_message("e1", "ada", "I need a refund"))
        .await;
    daemon
        .post_signed(&customer_message("e2", "bob", "My invoice is wrong"))
        .await;
    daemon.post_signed(&customer_message("e3", "cy", "Hello")).await;
    let teams = daemon.get("/teams", &token).await;
    let counts: Vec<(String, i64)> = teams["teams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["key"].as_str().unwrap().to_owned(),
                t["waiting"].as_i64().unwrap() + t["assigned"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        counts,
        vec![("billing".into(), 2), ("support".into(), 1), ("technical".into(), 0)]
    );
    // Nobody is assigned (manual teams): all of them wait, the oldest since the first.
    let billing = &teams["teams"][0];
    assert_eq!(
        (billing["waiting"].as_i64(), billing["assigned"].as_i64()),
        (Some(2), Some(0))
    );
    assert!(billing["oldest_waiting_since"].is_string(), "{billing}");
    assert_eq!(billing["breached"], 0);
}

#[tokio::test]
async fn the_queue_pages_newest_activity_first_without_gaps_or_repeats() {
    let receiver = Receiver::start().await;
    let daemon = Daemon::start(&receiver.url()).await;
    let token = daemon.agent("sam", "support", "agent");
    let mut conversations = Vec::new();
    for n in 0..5 {
        let (_, body) = daemon
            .post_signed(&customer_message(&format!("e{n}"), &format!("customer-{n}"), "Hello"))
            .await;
        conversations.push(body["conversation_id"].as_i64().unwrap());
    }
    // Activity on the oldest moves it to the top.
    daemon
        .post_signed(&customer_message("e-late", "customer-0", "Still there?"))
        .await;
    let expected: Vec<i64> = vec![
        conversations[0],
        conversations[4],
        conversations[3],
        conversations[2],
        conversations[1],
    ];

    let mut seen = Vec::new();
    let mut path = "/conversations?limit=2".to_owned();
    loop {
        let page = daemon.get(&path, &token).await;
        seen.extend(
            page["conversations"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["id"].as_i64().unwrap()),
        );
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/conversations?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn list_filters_and_bad_parameters() {
    let receiver = Receiver::start().await;
    let daemon = Daemon::start(&receiver.url()).await;
    let token = daemon.agent("sam", "support", "agent");
    let (_, first) = daemon.post_signed(&customer_message("e1", "ada", "Hello")).await;
    daemon.post_signed(&customer_message("e2", "bob", "Hello")).await;
    let id = first["conversation_id"].as_i64().unwrap();
    daemon
        .api(
            Method::PATCH,
            &format!("/conversations/{id}"),
            &token,
            Some(json!({"assignee": "me", "status": "pending"})),
        )
        .await;

    let ids = |page: &Value| -> Vec<i64> {
        page["conversations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(ids(&daemon.get("/conversations?assignee=me", &token).await), vec![id]);
    assert_eq!(
        ids(&daemon.get("/conversations?status=pending", &token).await),
        vec![id]
    );
    assert_eq!(
        ids(&daemon
            .get("/conversations?status=open,pending&assignee=none", &token)
            .await)
        .len(),
        1
    );

    for (query, field) in [
        ("status=waiting", "status"),
        ("team=nobody", "team"),
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("cursor=garbage", "cursor"),
        ("assignee=someone", "assignee"),
        ("stauts=open", "stauts"),
    ] {
        let (status, body) = daemon
            .api(Method::GET, &format!("/conversations?{query}"), &token, None)
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains(&format!("`{field}`")),
            "{query}: {body}"
        );
    }
}

#[tokio::test]
async fn a_reply_leaves_by_the_channel_and_a_note_never_does() {
    let receiver = Receiver::start().await;
    let daemon = Daemon::start(&receiver.url()).await;
    let token = daemon.agent("bea", "billing", "agent");
    let (_, inbound) = daemon
        .post_signed(&customer_message("e1", "user-42", "I was charged twice"))
        .await;
    let conversation_id = inbound["conversation_id"].as_i64().unwrap();
    let path = format!("/conversations/{conversation_id}/messages");

    let (status, note) = daemon
        .api(
            Method::POST,
            &path,
            &token,
            Some(json!({"text": "Stripe shows two charges", "private": true})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{note}");
    assert_eq!(
        (note["direction"].as_str(), note["delivery"].clone()),
        (Some("note"), Value::Null)
    );
    let (status, reply) = daemon
        .api(
            Method::POST,
            &path,
            &token,
            Some(json!({"text": "Refund is on its way"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    let reply_id = reply["id"].as_i64().unwrap();

    let delivered = daemon.delivery_reaches(&token, conversation_id, reply_id, "sent").await;
    assert_eq!(delivered["delivery"]["attempts"], 1);
    let callbacks = receiver.for_message(reply_id);
    assert_eq!(callbacks.len(), 1, "exactly one callback for the reply: {callbacks:?}");
    let callback = &callbacks[0];
    assert!(callback.signature_valid, "the callback is signed with the inbox secret");
    assert_eq!(callback.headers["webhook-id"], format!("msg_{reply_id}").as_str());
    assert_eq!(
        callback.body,
        json!({"type": "message.outbound", "conversation_id": conversation_id, "message_id": reply_id,
               "to": {"id": "user-42"}, "thread": null, "text": "Refund is on its way", "kind": "reply"})
    );
    // Only the acknowledgement and the reply left; the note is nowhere.
    let everything = receiver.callbacks();
    assert_eq!(everything.len(), 2, "{everything:?}");
    assert!(everything.iter().all(|c| c.body["text"] != "Stripe shows two charges"));
    assert!(everything.iter().all(|c| c.body["message_id"] != note["id"]));

    let detail = daemon.get(&format!("/conversations/{conversation_id}"), &token).await;
    assert_eq!(
        detail["assignee"]["name"], "bea",
        "replying to an unassigned conversation takes it"
    );
    assert!(detail["first_response_at"].is_string());
    assert_eq!(
        message_by_id(&detail, note["id"].as_i64().unwrap()).unwrap()["delivery"],
        Value::Null
    );
}

#[tokio::test]
async fn bad_message_bodies_are_refused() {
    let receiver = Receiver::start().await;
    let daemon = Daemon::start(&receiver.url()).await;
    let token = daemon.agent("sam", "support", "agent");
    let (_, inbound) = daemon.post_signed(&customer_message("e1", "ada", "Hello")).await;
    let path = format!("/conversations/{}/messages", inbound["conversation_id"]);
    for (body, status, mentions) in [
        (json!({}), StatusCode::UNPROCESSABLE_ENTITY, "`text`"),
        (json!({"text": "  "}), StatusCode::UNPROCESSABLE_ENTITY, "`text`"),
        (json!({"text": 5}), StatusCode::UNPROCESSABLE_ENTITY, "`text`"),
        (
            json!({"text": "hi", "private": "yes"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "`private`",
        ),
        (
            json!({"text": "hi", "internal": true}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "`internal`",
        ),
        (json!(["hi"]), StatusCode::UNPROCESSABLE_ENTITY, "JSON object"),
        // The webhook channel carries no files: a reply must not pretend it sent one.
        (
            json!({"text": "hi", "attachments": [{"filename": "a.pdf", "data_base64": "aGk="}]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "`attachments`",
        ),
        (
            json!({"text": "hi", "attachments": "a.pdf"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "`attachments`",
        ),
        (
            json!({"text": "hi", "private": true, "attachments": [{"filename": "../a", "data_base64": "aGk="}]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "`attachments[0].filename`",
        ),
        (
            json!({"text": "hi", "private": true, "attachments": [{"filename": "a", "data_base64": "%%"}]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "`attachments[0].data_base64`",
        ),
        (
            json!({"text": "hi", "private": true, "attachments": [{"filename": "a", "data_base64": "aGk=", "url": "x"}]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "`attachments[0].url`",
        ),
    ] {
        let before = daemon.snapshot().await;
        let (got, error) = daemon.api(Method::POST, &path, &token, Some(body.clone())).await;
        assert_eq!(got, status, "{body}: {error}");
        assert!(
            error["error"]["message"].as_str().unwrap().contains(mentions),
            "{body}: {error}"
        );
        let after = daemon.snapshot().await;
        assert_eq!(before["messages"], after["messages"], "{body} stored a message");
    }
    // Its own client: the server closes a connection whose body it refused unread, and a
    // pooled client could otherwise reuse that connection for the next request.
    let oversized = reqwest::Client::new()
        .post(daemon.url(&format!("/api/v1{path}")))
        .bearer_auth(&token)
        .json(&json!({"text": "x".repeat(15 << 20)}))
        .send()
        .await
        .unwrap();
    assert_eq!(oversized.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        oversized.json::<Value>().await.unwrap()["error"]["code"],
        "body_too_large"
    );
    // A note keeps its files whatever the channel: they never leave.
    let (status, note) = daemon
        .api(
            Method::POST,
            &path,
            &token,
            Some(json!({"text": "the customer's screenshot", "private": true,
                        "attachments": [{"filename": "screen.png", "content_type": "image/png", "data_base64": "iVBORw0KGgo="}]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{note}");
    assert_eq!(note["attachments"][0]["filename"], "screen.png");
    assert_eq!(note["attachments"][0]["content_type"], "image/png");
    assert_eq!(note["attachments"][0]["size"], 8);
    let (status, error) = daemon
        .api(
            Method::POST,
            "/conversations/999/messages",
            &token,
            Some(json!({"text": "hi"})),
        )
        .await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let (status, _) = daemon.api(Method::GET, "/conversations/abc", &token, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn agents_change_status_priority_assignee_and_team_with_events() {
    let receiver = Receiver::start().await;
    let daemon = Daemon::start(&receiver.url()).await;
    let sam = daemon.agent("sam", "support", "agent");
    let bea = daemon.agent("bea", "billing", "agent");
    let (_, inbound) = daemon.post_signed(&customer_message("e1", "ada", "Hello")).await;
    let id = inbound["conversation_id"].as_i64().unwrap();
    let path = format!("/conversations/{id}");

    let (status, detail) = daemon
        .api(
            Method::PATCH,
            &path,
            &sam,
            Some(json!({"assignee": "me", "priority": "urgent"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{detail}");
    assert_eq!(
        (detail["assignee"]["name"].as_str(), detail["priority"].as_str()),
        (Some("sam"), Some("urgent"))
    );

    // A transfer needs a summary for the receiving team; refused without, changing nothing.
    for body in [
        json!({"team": "billing"}),
        json!({"team": "billing", "summary": "  "}),
        json!({"summary": "no team named"}),
    ] {
        let (status, answer) = daemon.api(Method::PATCH, &path, &sam, Some(body.clone())).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {answer}");
        assert!(
            answer["error"]["message"].as_str().unwrap().contains("summary"),
            "{answer}"
        );
    }
    // A transfer to billing counts, and sam (support) no longer holds it.
    let (status, detail) = daemon
        .api(
            Method::PATCH,
            &path,
            &sam,
            Some(json!({"team": "billing", "summary": "Charged twice for order 1001; card statement attached"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{detail}");
    // Billing reads the summary first, as the note and as the conversation's latest hand-over.
    assert_eq!(detail["escalation"]["kind"], "transfer");
    assert_eq!(
        detail["escalation"]["summary"],
        "Charged twice for order 1001; card statement attached"
    );
    let note = detail["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == detail["escalation"]["note_id"])
        .expect("the summary is a note");
    assert_eq!(note["direction"], "note");
    let transferred = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "conversation.transferred")
        .unwrap();
    assert_eq!(transferred["data"]["to"], "billing");
    assert_eq!(transferred["data"]["note_id"], detail["escalation"]["note_id"]);
    assert_eq!(
        (detail["team"]["key"].as_str(), detail["transfer_count"].as_i64()),
        (Some("billing"), Some(1))
    );
    assert_eq!(detail["assignee"], Value::Null);
    // Billing's now: sam, of support, no longer sees it; billing's agent takes it on.
    let (status, _) = daemon
        .api(Method::PATCH, &path, &sam, Some(json!({"status": "resolved"})))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, detail) = daemon
        .api(
            Method::PATCH,
            &path,
            &bea,
            Some(json!({"assignee": "bea", "status": "resolved"})),
        )
        .await;
    assert_eq!(
        (detail["assignee"]["name"].as_str(), detail["status"].as_str()),
        (Some("bea"), Some("resolved"))
    );

    let kinds: Vec<&str> = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    for expected in [
        "conversation.assigned",
        "conversation.priority_changed",
        "conversation.transferred",
        "conversation.status_changed",
    ] {
        assert!(kinds.contains(&expected), "{expected} missing from {kinds:?}");
    }
    let transfer = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "conversation.transferred")
        .unwrap();
    assert_eq!(
        (transfer["data"].clone(), transfer["actor"]["name"].as_str()),
        (
            json!({"from": "support", "to": "billing", "note_id": transfer["data"]["note_id"],
                   "summary": "Charged twice for order 1001; card statement attached"}),
            Some("sam")
        )
    );
    assert!(transfer["data"]["note_id"].as_i64().is_some());

    // The same values again change nothing and record nothing.
    let events_before = detail["events"].as_array().unwrap().len();
    let (_, detail) = daemon
        .api(
            Method::PATCH,
            &path,
            &bea,
            Some(json!({"status": "resolved", "team": "billing"})),
        )
        .await;
    assert_eq!(detail["events"].as_array().unwrap().len(), events_before);

    for (body, field) in [
        (json!({"team": "sales"}), "team"),
        (json!({"status": "done"}), "status"),
        (json!({"priority": 3}), "priority"),
        (json!({"assignee": "nobody"}), "assignee"),
        (json!({"colour": "red"}), "colour"),
        (json!({}), "the body"),
    ] {
        let before = daemon.snapshot().await;
        let (status, error) = daemon.api(Method::PATCH, &path, &bea, Some(body.clone())).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {error}");
        assert!(
            error["error"]["message"]
                .as_str()
                .unwrap()
                .contains(&format!("`{field}`")),
            "{body}: {error}"
        );
        assert_eq!(before, daemon.snapshot().await, "{body} changed the store");
    }
}

#[tokio::test]
async fn a_closed_conversation_takes_notes_but_not_replies() {
    let receiver = Receiver::start().await;
    let daemon = Daemon::start(&receiver.url()).await;
    let token = daemon.agent("sam", "support", "agent");
    let (_, inbound) = daemon.post_signed(&customer_message("e1", "ada", "Hello")).await;
    let id = inbound["conversation_id"].as_i64().unwrap();
    daemon
        .api(
            Method::PATCH,
            &format!("/conversations/{id}"),
            &token,
            Some(json!({"status": "closed"})),
        )
        .await;
    let path = format!("/conversations/{id}/messages");
    let (status, error) = daemon
        .api(Method::POST, &path, &token, Some(json!({"text": "Hi again"})))
        .await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("conflict"))
    );
    let (status, _) = daemon
        .api(
            Method::POST,
            &path,
            &token,
            Some(json!({"text": "for the record", "private": true})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    // A closed conversation is final: the customer's next message opens a new one.
    let (_, next) = daemon.post_signed(&customer_message("e2", "ada", "Hello again")).await;
    assert_ne!(next["conversation_id"].as_i64(), Some(id));
}

#[tokio::test]
async fn lists_filter_by_priority_channel_label_and_contact_and_sort_oldest_first() {
    let receiver = Receiver::start().await;
    let daemon = Daemon::start(&receiver.url()).await;
    let token = daemon.agent("sam", "support", "admin");
    let mut ids = Vec::new();
    for (id, from, text) in [
        ("f-1", "ann", "Where is my parcel?"),
        ("f-2", "ben", "I was charged twice, refund please"),
        ("f-3", "cat", "Hello again"),
    ] {
        let body = daemon.post_accepted(id, from, text).await;
        ids.push(body["conversation_id"].as_i64().unwrap());
    }
    let listed = |page: Value| -> Vec<i64> {
        page["conversations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|conversation| conversation["id"].as_i64().unwrap())
            .collect()
    };
    // The billing rule made the refund `high`.
    assert_eq!(
        listed(daemon.get("/conversations?priority=high", &token).await),
        vec![ids[1]]
    );
    assert_eq!(
        listed(daemon.get("/conversations?priority=normal,low", &token).await),
        vec![ids[2], ids[0]]
    );
    assert_eq!(
        listed(daemon.get("/conversations?channel=webhook", &token).await).len(),
        3
    );
    assert!(listed(daemon.get("/conversations?channel=email", &token).await).is_empty());
    assert_eq!(
        listed(daemon.get("/conversations?label=billing", &token).await),
        vec![ids[1]]
    );
    assert_eq!(listed(daemon.get("/conversations?sort=oldest", &token).await), ids);
    let contact = daemon.get(&format!("/conversations/{}", ids[0]), &token).await["contact"]["id"].clone();
    assert_eq!(
        listed(
            daemon
                .get(&format!("/conversations?contact={contact}&status=all"), &token)
                .await
        ),
        vec![ids[0]]
    );
    assert!(listed(daemon.get("/conversations?sla=breached", &token).await).is_empty());

    // Labels an agent adds are filtered on like the rules'.
    let (status, detail) = daemon
        .api(
            Method::PATCH,
            &format!("/conversations/{}", ids[2]),
            &token,
            Some(json!({"labels": {"add": ["vip-check"]}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{detail}");
    assert_eq!(detail["labels"], json!(["vip-check"]));
    assert_eq!(
        listed(daemon.get("/conversations?label=vip-check", &token).await),
        vec![ids[2]]
    );

    for (query, field) in [
        ("priority=soon", "`priority`"),
        ("channel=fax", "`channel`"),
        ("sla=late", "`sla`"),
        ("sort=random", "`sort`"),
        ("contact=ann", "`contact`"),
    ] {
        let (status, body) = daemon
            .api(Method::GET, &format!("/conversations?{query}"), &token, None)
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(field),
            "{query}: {body}"
        );
    }
}
