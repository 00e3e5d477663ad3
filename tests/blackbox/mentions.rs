//! Mentions: `@name` in an internal note tells that agent, live on their stream and in
//! their console, and lists it among their unread mentions until they read it.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::browser::Browser;
use crate::console::sign_in_by_link;
use crate::harness::Daemon;
use crate::stream::Stream;

async fn note(daemon: &Daemon, token: &str, conversation: i64, text: &str) -> (StatusCode, Value) {
    daemon
        .api(
            Method::POST,
            &format!("/conversations/{conversation}/messages"),
            token,
            Some(json!({"text": text, "private": true})),
        )
        .await
}

#[tokio::test]
async fn a_note_mentions_a_teammate_who_is_told_live_and_reads_it_once() {
    let daemon = Daemon::start("http://127.0.0.1:9/unused").await;
    let ada = daemon.agent("ada", "support", "agent");
    let lea = daemon.agent("Lea Weber", "support", "agent");
    let bo = daemon.agent("bo", "billing", "agent");
    let conversation = daemon.post_accepted("m-1", "c-1", "Where is my parcel?").await["conversation_id"]
        .as_i64()
        .unwrap();
    let mut lea_stream = Stream::open(&daemon, &lea, None).await;
    lea_stream.until(|event| event.event == "stream.ready").await;

    // Mentioning someone who cannot see the conversation is refused, naming them, and
    // nothing is stored.
    let before = daemon.snapshot_but_outbox().await;
    let (status, answer) = note(&daemon, &ada, conversation, "@lea weber and @bo, please check").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(message.contains("`text`") && message.contains("@bo"), "{message}");
    assert_eq!(daemon.snapshot_but_outbox().await, before);

    let (status, created) = note(&daemon, &ada, conversation, "@Lea Weber can you call the courier?").await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let note_id = created["id"].as_i64().unwrap();
    let told = lea_stream.until(|event| event.event == "agent.mentioned").await;
    let event = &told.last().unwrap().data["event"];
    assert_eq!(event["data"]["agent_name"], "Lea Weber", "{event}");
    assert_eq!(event["data"]["message_id"], note_id);
    assert_eq!(event["actor"]["name"], "ada");

    // A reply is for the customer: `@` there mentions nobody.
    let (status, _) = daemon
        .api(
            Method::POST,
            &format!("/conversations/{conversation}/messages"),
            &ada,
            Some(json!({"text": "Thanks! @Lea Weber will call the courier."})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);

    let unread = daemon.get("/mentions?unread=true", &lea).await;
    assert_eq!(unread["unread"], 1, "{unread}");
    let mention = &unread["mentions"][0];
    assert_eq!(mention["conversation_id"], conversation);
    assert_eq!(mention["by"]["name"], "ada");
    assert_eq!(mention["excerpt"], "@Lea Weber can you call the courier?");
    assert_eq!(daemon.get("/queues", &lea).await["mentions"], 1);
    assert_eq!(
        daemon.get("/mentions", &ada).await["mentions"],
        json!([]),
        "ada's own note"
    );

    for (body, field) in [
        (json!({}), "ids"),
        (json!({"ids": []}), "ids"),
        (json!({"ids": ["x"]}), "ids"),
        (json!({"all": false}), "all"),
        (json!({"ids": [1], "all": true}), "all"),
    ] {
        let (status, answer) = daemon
            .api(Method::POST, "/mentions/read", &lea, Some(body.clone()))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {answer}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains(&format!("`{field}`"))
        );
    }
    // Someone else's mention is not theirs to mark.
    let (_, marked) = daemon
        .api(
            Method::POST,
            "/mentions/read",
            &ada,
            Some(json!({"ids": [mention["id"]]})),
        )
        .await;
    assert_eq!(marked["marked"], 0);
    let (_, marked) = daemon
        .api(
            Method::POST,
            "/mentions/read",
            &lea,
            Some(json!({"ids": [mention["id"]]})),
        )
        .await;
    assert_eq!(marked["marked"], 1);
    assert_eq!(daemon.get("/mentions?unread=true", &lea).await["unread"], 0);
    assert_eq!(
        daemon.get("/mentions", &lea).await["mentions"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Once the conversation moves to billing, Lea's list no longer shows its note.
    let root = daemon.agent("root", "support", "admin");
    let (status, _) = daemon
        .api(
            Method::PATCH,
            &format!("/conversations/{conversation}"),
            &root,
            Some(json!({"team": "billing", "summary": "A refund after all"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(daemon.get("/mentions", &lea).await["mentions"], json!([]));
    let (status, _) = note(&daemon, &bo, conversation, "@bo notes to self mention nobody").await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(daemon.get("/mentions", &bo).await["mentions"], json!([]));
}

#[tokio::test]
async fn the_console_shows_a_mention_as_it_happens_and_opens_its_conversation() {
    let daemon = Daemon::start("http://127.0.0.1:9/unused").await;
    let (ada, _) = daemon.agent_with_link("ada", "support", "agent");
    let (lea_token, lea_link) = daemon.agent_with_link("lea", "support", "agent");
    let conversation = daemon.post_accepted("m-1", "c-1", "Where is my parcel?").await["conversation_id"]
        .as_i64()
        .unwrap();
    let lea = Browser::start().await;
    sign_in_by_link(&lea, &daemon, &lea_link, "lea").await;
    lea.wait_for_text("#count-mentions", "0").await;
    lea.execute("window.notReloaded = true; return true;", vec![]).await;

    let (status, _) = note(&daemon, &ada, conversation, "@lea the courier has a new address").await;
    assert_eq!(status, StatusCode::CREATED);
    lea.wait_for_text("#count-mentions", "1").await;
    lea.wait_until("window.notReloaded === true").await;

    lea.click("#mentions-link").await;
    lea.wait_for_text("#mention-list .mention.unread", "the courier has a new address")
        .await;
    lea.screenshot("mentions").await;
    lea.click("#mention-list .mention .mention-open").await;
    lea.wait_for("#conversation-reference").await;
    lea.wait_for_text("#thread .message.note .text", "new address").await;
    lea.wait_for_text("#count-mentions", "0").await;
    assert_eq!(daemon.get("/mentions?unread=true", &lea_token).await["unread"], 0);
}
