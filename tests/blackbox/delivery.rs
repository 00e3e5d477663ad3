//! The outbox: acknowledgements and replies reach the callback once, in order, through
//! a receiver that is down, busy, or refusing.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::harness::{
    Callback, Daemon, Receiver, SECRET, SignAs, config, config_with_inbox, customer_message, eventually, post_burst,
};

#[tokio::test]
async fn the_acknowledgement_goes_out_once_per_new_conversation() {
    let receiver = Receiver::start().await;
    let daemon = Daemon::start(&receiver.url()).await;
    // A supervisor: the conversations land in several teams.
    let token = daemon.agent("sam", "support", "admin");
    let (_, first) = daemon
        .post_signed(&customer_message("e1", "ada", "I need a refund"))
        .await;
    daemon.post_signed(&customer_message("e2", "ada", "Any news?")).await;
    let (_, other) = daemon.post_signed(&customer_message("e3", "bob", "Hello")).await;

    let acks = eventually("two acknowledgements", || async {
        let acks: Vec<_> = receiver
            .callbacks()
            .into_iter()
            .filter(|c| c.body["kind"] == "status_update")
            .collect();
        (acks.len() >= 2).then_some(acks)
    })
    .await;
    // Both acknowledgements are in; make sure no third is on its way before counting:
    // every outbound message of both conversations must have reached a final state.
    for conversation in [&first, &other] {
        let id = conversation["conversation_id"].as_i64().unwrap();
        let detail = daemon.get(&format!("/conversations/{id}"), &token).await;
        let outbound: Vec<_> = detail["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["direction"] == "outbound")
            .collect();
        assert_eq!(outbound.len(), 1, "one acknowledgement stored for #{id}");
        daemon
            .delivery_reaches(&token, id, outbound[0]["id"].as_i64().unwrap(), "sent")
            .await;
    }
    assert_eq!(receiver.callbacks().len(), 2);
    let mut conversations: Vec<i64> = acks
        .iter()
        .map(|c| c.body["conversation_id"].as_i64().unwrap())
        .collect();
    conversations.sort();
    assert_eq!(
        conversations,
        vec![
            first["conversation_id"].as_i64().unwrap(),
            other["conversation_id"].as_i64().unwrap()
        ]
    );
    let billing_ack = acks
        .iter()
        .find(|c| c.body["conversation_id"] == first["conversation_id"])
        .unwrap();
    assert_eq!(
        billing_ack.body["text"],
        format!(
            "Hello Ada Lovelace, your reference is #{} with Billing.",
            first["conversation_id"]
        )
    );
    assert_eq!(billing_ack.body["to"], json!({"id": "ada"}));
}

#[tokio::test]
async fn a_receiver_that_is_down_at_first_gets_every_message_once_it_is_up() {
    // Reserve a port, then leave nothing listening on it: the receiver is down.
    let reserved = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = reserved.local_addr().unwrap();
    drop(reserved);
    let daemon = Daemon::start(&format!("http://{address}/callback")).await;
    let token = daemon.agent("sam", "support", "agent");
    let (_, inbound) = daemon.post_signed(&customer_message("e1", "ada", "Hello")).await;
    let conversation_id = inbound["conversation_id"].as_i64().unwrap();
    let (_, reply) = daemon
        .api(
            Method::POST,
            &format!("/conversations/{conversation_id}/messages"),
            &token,
            Some(json!({"text": "Hi Ada"})),
        )
        .await;
    let reply_id = reply["id"].as_i64().unwrap();

    // The acknowledgement fails and is rescheduled, with the reason on the message.
    let ack = eventually("a failed attempt to be recorded", || async {
        let detail = daemon.get(&format!("/conversations/{conversation_id}"), &token).await;
        let ack = detail["messages"]
            .as_array()?
            .iter()
            .find(|m| m["kind"] == "status_update")?
            .clone();
        // Attempts count from the claim, so wait for one that failed and awaits a retry.
        (ack["delivery"]["attempts"].as_i64()? >= 2 && ack["delivery"]["status"] == "scheduled").then_some(ack)
    })
    .await;
    assert!(
        ack["delivery"]["last_error"]
            .as_str()
            .unwrap()
            .contains("could not connect"),
        "{ack}"
    );

    let receiver = Receiver::start_on(tokio::net::TcpListener::bind(address).await.unwrap()).await;
    daemon.delivery_reaches(&token, conversation_id, reply_id, "sent").await;
    let ack_id = ack["id"].as_i64().unwrap();
    assert_eq!(receiver.for_message(ack_id).len(), 1);
    assert_eq!(receiver.for_message(reply_id).len(), 1);
    // In the order they were written: the acknowledgement, then the reply.
    let order: Vec<i64> = receiver
        .callbacks()
        .iter()
        .map(|c| c.body["message_id"].as_i64().unwrap())
        .collect();
    assert_eq!(order, vec![ack_id, reply_id]);
}

#[tokio::test]
async fn a_busy_receiver_is_retried_with_the_same_webhook_id() {
    let receiver = Receiver::start().await;
    receiver.script(&[503, 500, 429]);
    let daemon = Daemon::start(&receiver.url()).await;
    let token = daemon.agent("sam", "support", "agent");
    let (conversation_id, ack_id) = acknowledged_conversation(&daemon, &token).await;

    let sent = daemon.delivery_reaches(&token, conversation_id, ack_id, "sent").await;
    assert_eq!(sent["delivery"]["attempts"], 4);
    let attempts = receiver.for_message(ack_id);
    assert_eq!(attempts.len(), 4);
    let ids: Vec<_> = attempts.iter().map(|c| c.headers["webhook-id"].clone()).collect();
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "webhook-id must be stable across retries: {ids:?}"
    );
    assert!(attempts.iter().all(|c| c.signature_valid));
}

#[tokio::test]
async fn a_refusing_receiver_fails_the_message_for_good_with_its_reason() {
    let receiver = Receiver::start().await;
    receiver.script(&[400]);
    let daemon = Daemon::start(&receiver.url()).await;
    let token = daemon.agent("sam", "support", "agent");
    let (conversation_id, ack_id) = acknowledged_conversation(&daemon, &token).await;

    let failed = daemon.delivery_reaches(&token, conversation_id, ack_id, "failed").await;
    assert_eq!(failed["delivery"]["attempts"], 1);
    assert!(
        failed["delivery"]["last_error"].as_str().unwrap().contains("400"),
        "{failed}"
    );
    let detail = daemon.get(&format!("/conversations/{conversation_id}"), &token).await;
    let event = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "delivery.failed")
        .unwrap();
    assert_eq!(event["data"]["message_id"], ack_id);

    // A failed message does not block the conversation: the next reply goes out.
    let (_, reply) = daemon
        .api(
            Method::POST,
            &format!("/conversations/{conversation_id}/messages"),
            &token,
            Some(json!({"text": "Hi"})),
        )
        .await;
    daemon
        .delivery_reaches(&token, conversation_id, reply["id"].as_i64().unwrap(), "sent")
        .await;
    assert_eq!(
        receiver.for_message(ack_id).len(),
        1,
        "a refused message is not retried"
    );
    let (status, _) = daemon.api(Method::GET, "/conversations", &token, None).await;
    assert_eq!(status, StatusCode::OK);
}

/// Opens a conversation; returns its id and its acknowledgement's message id.
async fn acknowledged_conversation(daemon: &Daemon, token: &str) -> (i64, i64) {
    let (_, inbound) = daemon.post_signed(&customer_message("e1", "ada", "Hello")).await;
    let conversation_id = inbound["conversation_id"].as_i64().unwrap();
    let detail = daemon.get(&format!("/conversations/{conversation_id}"), token).await;
    let ack = detail["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["kind"] == "status_update")
        .unwrap();
    (conversation_id, ack["id"].as_i64().unwrap())
}

#[tokio::test]
async fn a_failed_delivery_is_listed_with_its_error_retried_by_an_agent_and_counted_in_metrics() {
    let receiver = Receiver::start().await;
    receiver.script(&[400]);
    let daemon = Daemon::start(&receiver.url()).await;
    let token = daemon.agent("sam", "support", "agent");
    let (conversation_id, ack_id) = acknowledged_conversation(&daemon, &token).await;
    let failed = daemon.delivery_reaches(&token, conversation_id, ack_id, "failed").await;
    let delivery_id = failed["delivery"]["id"].as_i64().unwrap();

    let page = daemon.get("/deliveries?status=failed", &token).await;
    let listed = page["deliveries"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{page}");
    assert_eq!(listed[0]["id"], delivery_id);
    assert_eq!(listed[0]["message_id"], ack_id);
    assert_eq!(listed[0]["conversation_id"], conversation_id);
    assert_eq!(
        (listed[0]["kind"].as_str(), listed[0]["inbox"].as_str()),
        (Some("status_update"), Some("shop"))
    );
    assert!(listed[0]["last_error"].as_str().unwrap().contains("400"), "{page}");
    let metrics = reqwest::get(daemon.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("switchboard_outbox_deliveries{status=\"failed\"} 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("switchboard_outbox_deliveries{status=\"sent\"} 0\n"),
        "{metrics}"
    );

    // The receiver is fixed; the agent retries: same message, same webhook-id, delivered.
    let (status, retried) = daemon
        .api(Method::POST, &format!("/deliveries/{delivery_id}/retry"), &token, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{retried}");
    assert_eq!(retried["status"], "scheduled");
    assert_eq!(retried["attempts"], 0);
    let sent = daemon.delivery_reaches(&token, conversation_id, ack_id, "sent").await;
    assert_eq!(sent["delivery"]["attempts"], 1);
    let attempts = receiver.for_message(ack_id);
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0].headers["webhook-id"], attempts[1].headers["webhook-id"]);
    let detail = daemon.get(&format!("/conversations/{conversation_id}"), &token).await;
    let retried_event = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|event| event["kind"] == "delivery.retried")
        .expect("a delivery.retried event");
    assert_eq!(retried_event["data"]["attempts_before"], 1);
    let page = daemon.get("/deliveries?status=failed", &token).await;
    assert!(page["deliveries"].as_array().unwrap().is_empty(), "{page}");
    let metrics = reqwest::get(daemon.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("switchboard_outbox_deliveries{status=\"sent\"} 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("switchboard_outbox_oldest_unsent_age_seconds 0.000\n"),
        "{metrics}"
    );

    // Only a failed delivery can be retried; bad requests are named.
    let (status, body) = daemon
        .api(Method::POST, &format!("/deliveries/{delivery_id}/retry"), &token, None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, _) = daemon.api(Method::POST, "/deliveries/999999/retry", &token, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = daemon.api(Method::GET, "/deliveries?status=lost", &token, None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["error"]["message"].as_str().unwrap().starts_with("`status`"),
        "{body}"
    );
}

#[tokio::test]
async fn a_killed_daemon_delivers_every_message_of_a_burst_after_restart() {
    const BURST: usize = 1000;
    let receiver = Receiver::start().await;
    // A receiver slow enough that the burst is still leaving when the daemon dies.
    receiver.delay(Duration::from_millis(200));
    let daemon = Daemon::start(&receiver.url()).await;
    // Each message opens a conversation, and each conversation's acknowledgement leaves.
    let client = Arc::new(vec![daemon]);
    post_burst(&client, BURST).await;
    // Mid-burst: some delivered, most not yet.
    eventually("a part of the burst delivered", || async {
        (receiver.callbacks().len() >= BURST / 5).then_some(())
    })
    .await;
    let daemon = Arc::into_inner(client)
        .and_then(|mut daemons| daemons.pop())
        .expect("no other owner");
    let delivered_before = receiver.callbacks().len();
    let dir = daemon.kill();
    assert!(delivered_before < BURST, "the burst was over before the kill");

    receiver.delay(Duration::ZERO);
    let daemon = Daemon::start_in(dir).await;
    let callbacks = eventually("every acknowledgement delivered", || async {
        let callbacks = receiver.callbacks();
        let distinct: HashSet<String> = callbacks.iter().map(Callback::webhook_id).collect();
        (distinct.len() >= BURST).then_some(callbacks)
    })
    .await;
    let distinct: HashSet<String> = callbacks.iter().map(Callback::webhook_id).collect();
    assert_eq!(distinct.len(), BURST);
    // A send the receiver answered but the daemon had not recorded when it died goes
    // again, with the same webhook-id: a receiver that dedupes on it sees each once.
    let duplicates = callbacks.len() - distinct.len();
    assert!(
        duplicates <= 32,
        "at most the sends in flight (outbox.concurrency): {duplicates}"
    );
    println!("burst of {BURST}: {delivered_before} delivered before the kill, {duplicates} duplicates after restart");
    let token = daemon.agent("sam", "support", "agent");
    let page = daemon.get("/deliveries?status=sent&limit=1", &token).await;
    assert!(page["deliveries"].as_array().unwrap().len() == 1);
    let metrics = reqwest::get(daemon.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let sent = eventually("every delivery recorded as sent", || async {
        let metrics = reqwest::get(daemon.url("/metrics")).await.ok()?.text().await.ok()?;
        metrics
            .contains(&format!("switchboard_outbox_deliveries{{status=\"sent\"}} {BURST}\n"))
            .then_some(metrics)
    })
    .await;
    assert!(
        sent.contains("switchboard_outbox_deliveries{status=\"failed\"} 0\n"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_destination_that_keeps_failing_is_paused_while_another_inbox_delivers() {
    let down = Receiver::start().await;
    down.script(&[503; 100]);
    let up = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let inboxes = format!(
        r#"
[inboxes.shop.webhook]
secret = "{SECRET}"
callback_url = "{down}"

[inboxes.partner.webhook]
secret = "{SECRET}"
callback_url = "{up}"
"#,
        down = down.url(),
        up = up.url()
    );
    std::fs::write(
        dir.path().join("switchboard.toml"),
        config_with_inbox(dir.path(), &inboxes),
    )
    .unwrap();
    let daemon = Daemon::start_in(dir).await;
    for n in 0..8 {
        let body = customer_message(&format!("s{n}"), &format!("shop-{n}"), "Hello").to_string();
        daemon.post_raw("shop", body.into_bytes(), SignAs::Now).await;
    }
    // Five failures in a row (outbox.breaker_failures) pause the shop's callback.
    let metrics = eventually("the shop's destination paused", || async {
        let metrics = reqwest::get(daemon.url("/metrics")).await.ok()?.text().await.ok()?;
        metrics
            .contains("switchboard_outbox_destination_paused{inbox=\"shop\"} 1\n")
            .then_some(metrics)
    })
    .await;
    // Five, or a few more: sends already in flight when it opened end as they end.
    let failures: u32 = metrics
        .lines()
        .find_map(|line| line.strip_prefix("switchboard_outbox_destination_failures{inbox=\"shop\"} "))
        .and_then(|count| count.parse().ok())
        .unwrap_or_else(|| panic!("no failure count: {metrics}"));
    assert!((5..=8).contains(&failures), "{metrics}");
    assert!(down.callbacks().len() >= 5);

    // The partner's deliveries go on at once.
    for n in 0..8 {
        let body = customer_message(&format!("p{n}"), &format!("partner-{n}"), "Hello").to_string();
        let (status, _) = daemon.post_raw("partner", body.into_bytes(), SignAs::Now).await;
        assert_eq!(status, StatusCode::ACCEPTED);
    }
    eventually("the partner's eight acknowledgements", || async {
        (up.callbacks().len() >= 8).then_some(())
    })
    .await;
    // Still paused (30 s, outbox.breaker_pause): a new message for the shop waits, while
    // one for the partner, sent after it, arrives.
    let tried = down.callbacks().len();
    let body = customer_message("s-late", "shop-late", "Hello").to_string();
    daemon.post_raw("shop", body.into_bytes(), SignAs::Now).await;
    let body = customer_message("p-late", "partner-late", "Hello").to_string();
    daemon.post_raw("partner", body.into_bytes(), SignAs::Now).await;
    eventually("the partner's ninth acknowledgement", || async {
        (up.callbacks().len() >= 9).then_some(())
    })
    .await;
    assert_eq!(down.callbacks().len(), tried, "nothing sent to the paused destination");
    let metrics = reqwest::get(daemon.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("switchboard_outbox_destination_paused{inbox=\"partner\"} 0\n"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_delivery_that_used_up_its_retries_fails_with_the_last_error_and_an_agent_sends_it_again() {
    let receiver = Receiver::start().await;
    receiver.script(&[503, 503, 503]);
    let dir = tempfile::tempdir().unwrap();
    // Two quick retries, then the message fails for good.
    let config = config(dir.path(), &receiver.url());
    let short = config
        .lines()
        .map(|line| {
            if line.starts_with("retry_schedule") {
                "retry_schedule = [\"50ms\", \"50ms\"]"
            } else {
                line
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(dir.path().join("switchboard.toml"), short).unwrap();
    let daemon = Daemon::start_in(dir).await;
    let token = daemon.agent("sam", "support", "agent");
    let (conversation_id, ack_id) = acknowledged_conversation(&daemon, &token).await;
    let failed = daemon.delivery_reaches(&token, conversation_id, ack_id, "failed").await;
    assert_eq!(failed["delivery"]["attempts"], 3);
    assert_eq!(
        failed["delivery"]["last_error"],
        "gave up after 3 attempts: callback answered HTTP 503 Service Unavailable"
    );
    let listed = daemon.get("/deliveries?status=failed", &token).await;
    assert_eq!(listed["deliveries"][0]["message_id"], ack_id);

    let id = failed["delivery"]["id"].as_i64().unwrap();
    let (status, _) = daemon
        .api(Method::POST, &format!("/deliveries/{id}/retry"), &token, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    daemon.delivery_reaches(&token, conversation_id, ack_id, "sent").await;
    assert_eq!(receiver.for_message(ack_id).len(), 4);
}

#[tokio::test]
async fn sends_in_flight_at_shutdown_finish_within_the_grace_and_are_not_sent_again() {
    let receiver = Receiver::start().await;
    // Slower than sending, faster than the 2 s grace (outbox.shutdown_grace).
    receiver.delay(Duration::from_millis(500));
    let daemon = Daemon::start(&receiver.url()).await;
    for n in 0..5 {
        daemon
            .post_signed(&customer_message(&format!("g{n}"), &format!("grace-{n}"), "Hello"))
            .await;
    }
    // SIGTERM while the five acknowledgements are on their way (stopping blocks: off the
    // runtime thread, so the receiver here can answer meanwhile).
    let (dir, exit) = tokio::task::spawn_blocking(move || daemon.stop()).await.unwrap();
    assert!(exit.success(), "{exit:?}");
    let answered = receiver.callbacks().len();
    assert_eq!(answered, 5, "each send in flight finished within the grace");
    receiver.delay(Duration::ZERO);
    let daemon = Daemon::start_in(dir).await;
    // A new message after the restart arrives; none of the five goes again.
    daemon.post_signed(&customer_message("g-after", "after", "Hello")).await;
    eventually("the acknowledgement after the restart", || async {
        (receiver.callbacks().len() > answered).then_some(())
    })
    .await;
    let ids: HashSet<String> = receiver.callbacks().iter().map(Callback::webhook_id).collect();
    assert_eq!(ids.len(), 6);
    assert_eq!(receiver.callbacks().len(), 6, "nothing confirmed was sent twice");
}

#[tokio::test]
async fn a_callback_answering_429_with_retry_after_is_waited_for() {
    let receiver = Receiver::start().await;
    receiver.script(&[429]);
    receiver.retry_after(2);
    let daemon = Daemon::start(&receiver.url()).await;
    let token = daemon.agent("sam", "support", "agent");
    let (conversation_id, ack_id) = acknowledged_conversation(&daemon, &token).await;
    daemon.delivery_reaches(&token, conversation_id, ack_id, "sent").await;
    let attempts = receiver.for_message(ack_id);
    assert_eq!(attempts.len(), 2);
    // The retry schedule says 150 ms; the receiver said 2 s, and the longer wins.
    let waited = attempts[1].at - attempts[0].at;
    assert!(waited >= Duration::from_secs(2), "waited only {waited:?}");
    assert_eq!(attempts[0].webhook_id(), attempts[1].webhook_id());
}
