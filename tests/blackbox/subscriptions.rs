//! Event subscriptions: an integration (a CRM, a ticket system) is told of the desk's
//! events once each, signed per Standard Webhooks, in order per conversation, through a
//! receiver that is failing, limiting us, gone, or down while another is up.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{Callback, Daemon, Receiver, SECRET, customer_message, eventually};

async fn subscribe(daemon: &Daemon, token: &str, receiver: &Receiver, events: &[&str]) -> i64 {
    let (status, body) = daemon
        .api(
            Method::POST,
            "/subscriptions",
            token,
            Some(json!({"url": receiver.url(), "events": events, "secret": SECRET, "description": "CRM"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["secret"], SECRET, "shown once, at creation");
    body["id"].as_i64().unwrap()
}

/// The events a receiver accepted (answered 2xx), in the order it accepted them.
fn accepted(receiver: &Receiver) -> Vec<Callback> {
    receiver
        .callbacks()
        .into_iter()
        .filter(|callback| callback.answered.is_success())
        .collect()
}

fn id_of(callback: &Callback) -> String {
    callback.headers["webhook-id"].to_str().unwrap().to_owned()
}

fn types(callbacks: &[Callback]) -> Vec<String> {
    callbacks
        .iter()
        .map(|callback| callback.body["type"].as_str().unwrap().to_owned())
        .collect()
}

async fn wait_for(receiver: &Receiver, what: &str, count: usize) -> Vec<Callback> {
    eventually(what, || async {
        let accepted = accepted(receiver);
        (accepted.len() >= count).then_some(accepted)
    })
    .await
}

#[tokio::test]
async fn an_integration_is_told_each_event_once_in_order_through_a_failing_receiver() {
    let customers = Receiver::start().await;
    let crm = Receiver::start().await;
    // The first event fails three times before the CRM takes it.
    crm.script(&[500, 503, 502]);
    let daemon = Daemon::start(&customers.url()).await;
    let admin = daemon.agent("ada", "support", "admin");
    let agent = daemon.agent("sam", "support", "agent");
    subscribe(
        &daemon,
        &admin,
        &crm,
        &[
            "conversation.created",
            "message.created",
            "conversation.assigned",
            "conversation.resolved",
        ],
    )
    .await;

    let (_, inbound) = daemon
        .post_signed(&customer_message("e1", "ada", "My parcel never came"))
        .await;
    let id = inbound["conversation_id"].as_i64().unwrap();
    let (status, _) = daemon
        .api(
            Method::POST,
            &format!("/conversations/{id}/messages"),
            &agent,
            Some(json!({"text": "Sorry, sending another"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = daemon
        .api(
            Method::POST,
            &format!("/conversations/{id}/messages"),
            &agent,
            Some(json!({"text": "Internal: reshipped", "private": true})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = daemon
        .api(
            Method::PATCH,
            &format!("/conversations/{id}"),
            &agent,
            Some(json!({"status": "resolved"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let told = wait_for(&crm, "six events accepted by the CRM", 6).await;
    assert_eq!(
        types(&told),
        [
            "conversation.created",
            "message.created",
            "message.created",
            "message.created",
            "conversation.assigned",
            "conversation.resolved"
        ],
        "in the order they happened (the reply, then the assignment it made); the note is not news"
    );
    let kinds: Vec<&str> = told
        .iter()
        .filter(|callback| callback.body["type"] == "message.created")
        .map(|callback| callback.body["data"]["message"]["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["message", "status_update", "reply"]);
    assert!(
        told.iter()
            .all(|callback| callback.body["data"]["conversation_id"] == id)
    );
    assert_eq!(told[4].body["data"]["actor"]["kind"], "agent");
    // Every attempt signed; the failing one retried under one webhook-id, accepted once.
    let all = crm.callbacks();
    assert!(all.iter().all(|callback| callback.signature_valid));
    let first = id_of(&told[0]);
    assert_eq!(all.iter().filter(|callback| id_of(callback) == first).count(), 4);
    let mut ids: Vec<String> = told.iter().map(id_of).collect();
    ids.dedup();
    assert_eq!(ids.len(), 6, "each event accepted once");
    // The customer's channel was never held up by the CRM.
    assert_eq!(customers.callbacks().len(), 2, "the acknowledgement and the reply");
}

#[tokio::test]
async fn a_429_is_waited_out_a_410_disables_the_subscription_and_a_ping_checks_it() {
    let customers = Receiver::start().await;
    let crm = Receiver::start().await;
    crm.script(&[429]);
    crm.retry_after(2);
    let daemon = Daemon::start(&customers.url()).await;
    let admin = daemon.agent("ada", "support", "admin");
    let subscription = subscribe(&daemon, &admin, &crm, &["conversation.created"]).await;

    daemon.post_signed(&customer_message("e1", "ada", "Hello")).await;
    let told = wait_for(&crm, "the first event", 1).await;
    let attempts = crm.callbacks();
    assert_eq!(attempts.len(), 2, "one 429, then the accepted attempt");
    let waited = attempts[1].at - attempts[0].at;
    assert!(
        waited >= Duration::from_secs(2),
        "Retry-After: 2 was honoured, waited {waited:?}"
    );
    assert_eq!(id_of(&attempts[0]), id_of(&told[0]));

    // The CRM says the endpoint is gone: the subscription is disabled, with why.
    crm.script(&[410]);
    daemon.post_signed(&customer_message("e2", "bob", "Hi")).await;
    let disabled = eventually("the subscription disabled", || async {
        let (_, body) = daemon
            .api(Method::GET, &format!("/subscriptions/{subscription}"), &admin, None)
            .await;
        (body["active"] == false).then_some(body)
    })
    .await;
    assert!(
        disabled["disabled_reason"].as_str().unwrap().contains("410"),
        "{disabled}"
    );
    assert_eq!(disabled.get("secret"), None, "the secret is shown only at creation");
    assert_eq!(disabled["deliveries"][0]["status"], "failed");

    // While disabled it is told nothing; a ping still goes, to check the receiver.
    daemon.post_signed(&customer_message("e3", "cy", "Hey")).await;
    let (status, ping) = daemon
        .api(
            Method::POST,
            &format!("/subscriptions/{subscription}/ping"),
            &admin,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{ping}");
    let told = wait_for(&crm, "the ping", 2).await;
    assert_eq!(types(&told), ["conversation.created", "ping"]);
    // Enabled again: told of what happens from now on.
    let (status, enabled) = daemon
        .api(
            Method::PATCH,
            &format!("/subscriptions/{subscription}"),
            &admin,
            Some(json!({"active": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{enabled}");
    assert_eq!(
        (enabled["active"].as_bool(), enabled["disabled_reason"].as_str()),
        (Some(true), None)
    );
    let (_, after) = daemon.post_signed(&customer_message("e4", "dee", "Hi again")).await;
    let told = wait_for(&crm, "the event after enabling", 3).await;
    assert_eq!(types(&told), ["conversation.created", "ping", "conversation.created"]);
    assert_eq!(told[2].body["data"]["conversation_id"], after["conversation_id"]);
}

#[tokio::test]
async fn one_receiver_down_does_not_hold_up_another() {
    let customers = Receiver::start().await;
    let down = Receiver::start().await;
    down.script(&[503; 200]);
    let up = Receiver::start().await;
    let daemon = Daemon::start(&customers.url()).await;
    let admin = daemon.agent("ada", "support", "admin");
    subscribe(&daemon, &admin, &down, &["conversation.created"]).await;
    subscribe(&daemon, &admin, &up, &["conversation.created"]).await;

    let sent_at = std::time::Instant::now();
    for n in 0..20 {
        daemon
            .post_signed(&customer_message(&format!("e{n}"), &format!("customer-{n}"), "Hello"))
            .await;
    }
    let told = wait_for(&up, "twenty events at the receiver that is up", 20).await;
    let latest = told.iter().map(|callback| callback.at - sent_at).max().unwrap();
    // All of them arrived while the other receiver accepted none: it was tried until its
    // circuit breaker paused it (five failures in a row, outbox.breaker_failures).
    assert!(accepted(&down).is_empty());
    let down_attempts = down.callbacks().len();
    assert!(
        (5..20).contains(&down_attempts),
        "the down receiver: {down_attempts} attempts"
    );
    println!("up: 20 events in {latest:?}; down: {down_attempts} failed attempts meanwhile");
}

#[tokio::test]
async fn only_admins_subscribe_and_urls_inside_the_network_are_refused() {
    let daemon = Daemon::start("http://127.0.0.1:9/callback").await;
    let admin = daemon.agent("ada", "support", "admin");
    let agent = daemon.agent("sam", "support", "agent");
    let body = json!({"url": "http://127.0.0.1:9/crm", "events": ["conversation.created"]});
    let (status, _) = daemon
        .api(Method::POST, "/subscriptions", &agent, Some(body.clone()))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    for (url, events, field) in [
        (
            "http://169.254.169.254/latest/meta-data",
            json!(["conversation.created"]),
            "url",
        ),
        ("http://10.0.0.5/crm", json!(["conversation.created"]), "url"),
        ("ftp://127.0.0.1/crm", json!(["conversation.created"]), "url"),
        ("http://127.0.0.1:9/crm", json!(["conversation.deleted"]), "events[0]"),
        ("http://127.0.0.1:9/crm", json!([]), "events"),
    ] {
        let (status, error) = daemon
            .api(
                Method::POST,
                "/subscriptions",
                &admin,
                Some(json!({"url": url, "events": events})),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{url}: {error}");
        assert!(
            error["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with(&format!("`{field}`")),
            "{error}"
        );
    }
    let (status, created) = daemon.api(Method::POST, "/subscriptions", &admin, Some(body)).await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(created["secret"].as_str().unwrap().starts_with("whsec_"), "{created}");
    let (_, listed) = daemon.api(Method::GET, "/subscriptions", &admin, None).await;
    assert_eq!(listed["subscriptions"].as_array().unwrap().len(), 1);
    assert_eq!(listed["subscriptions"][0].get("secret"), None);
    let id = created["id"].as_i64().unwrap();
    let (status, _) = daemon
        .api(Method::DELETE, &format!("/subscriptions/{id}"), &admin, None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, listed) = daemon.api(Method::GET, "/subscriptions", &admin, None).await;
    assert_eq!(listed["subscriptions"], Value::Array(vec![]));
}
