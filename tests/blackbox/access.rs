//! Who may see what, and agents as admins manage them: an agent sees their teams'
//! conversations (and those assigned to them) in lists, details, files, contacts, search
//! and the stream alike; admins create agents in several teams, change their teams and
//! role, issue and revoke tokens and deactivate them, and each of those is audited.

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{Daemon, config};
use crate::stream::{Sse, Stream, message_created};

async fn post(daemon: &Daemon, body: Value) -> (i64, i64) {
    let (status, answer) = daemon.post_signed(&body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    (
        answer["conversation_id"].as_i64().unwrap(),
        answer["message_id"].as_i64().unwrap(),
    )
}

async fn status_of(daemon: &Daemon, token: &str, path: &str) -> StatusCode {
    daemon.api(Method::GET, path, token, None).await.0
}

fn ids(list: &Value, key: &str) -> BTreeSet<i64> {
    list[key]
        .as_array()
        .unwrap_or_else(|| panic!("no `{key}` in {list}"))
        .iter()
        .map(|item| item["id"].as_i64().unwrap())
        .collect()
}

fn conversations_of(events: &[Sse]) -> BTreeSet<i64> {
    events
        .iter()
        .filter_map(|event| event.data["conversation_id"].as_i64())
        .collect()
}

/// One person with a technical conversation (with a file) and a billing one: what a
/// billing agent may know of them is the billing conversation alone.
#[tokio::test]
async fn an_agent_of_billing_sees_nothing_of_a_technical_conversation_anywhere() {
    let daemon = Daemon::start("http://127.0.0.1:9/unused").await;
    let root = daemon.agent("root", "support", "admin");
    let bo = daemon.agent("bo", "billing", "agent");
    let lead = daemon.agent("lena", "support", "supervisor");
    let mut bo_stream = Stream::open(&daemon, &bo, None).await;
    bo_stream.until(|event| event.event == "stream.ready").await;

    let (technical, crash_message) = post(
        &daemon,
        json!({"id": "t-1", "thread": "app-1", "text": "The app crashes when I open my basket",
               "from": {"id": "ada-1", "name": "Ada Lovelace"},
               "attachments": [{"filename": "crash.txt", "content_type": "text/plain", "data_base64": "Y3Jhc2g="}]}),
    )
    .await;
    let (status, answer) = daemon
        .api(
            Method::PATCH,
            &format!("/conversations/{technical}"),
            &root,
            Some(json!({"team": "technical", "summary": "Crash on basket, log attached"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (billing, charged_message) = post(
        &daemon,
        json!({"id": "b-1", "thread": "order-7", "text": "I was charged twice for order 7",
               "from": {"id": "ada-1", "name": "Ada Lovelace"}}),
    )
    .await;
    assert_ne!(technical, billing);
    let detail = daemon.get(&format!("/conversations/{technical}"), &root).await;
    let contact = detail["contact"]["id"].as_i64().unwrap();
    let attachment = detail["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|message| message["id"] == crash_message)
        .map(|message| message["attachments"][0]["id"].as_i64().unwrap())
        .unwrap();
    assert_eq!(
        daemon.get(&format!("/conversations/{billing}"), &root).await["team"]["key"],
        "billing"
    );

    // The detail, its file, and the person's other conversation: 404, as if none existed.
    for path in [
        format!("/conversations/{technical}"),
        format!("/attachments/{attachment}"),
    ] {
        assert_eq!(status_of(&daemon, &bo, &path).await, StatusCode::NOT_FOUND, "{path}");
    }
    let (status, _) = daemon
        .api(
            Method::POST,
            &format!("/conversations/{technical}/messages"),
            &bo,
            Some(json!({"text": "Let me look", "private": true})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nor can a note be added to it");
    assert_eq!(
        status_of(&daemon, &root, &format!("/attachments/{attachment}")).await,
        StatusCode::OK
    );
    let person = daemon.get(&format!("/contacts/{contact}"), &bo).await;
    let shown: BTreeSet<i64> = person["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|conversation| conversation["id"].as_i64().unwrap())
        .collect();
    assert_eq!(shown, BTreeSet::from([billing]), "{person}");
    let listed = daemon
        .get(&format!("/conversations?contact={contact}&status=all"), &bo)
        .await;
    assert_eq!(ids(&listed, "conversations"), BTreeSet::from([billing]));
    let everything = daemon.get("/conversations?status=all", &bo).await;
    assert_eq!(ids(&everything, "conversations"), BTreeSet::from([billing]));

    // Search finds the billing words and nothing of the crash.
    let found = |answer: Value| -> BTreeSet<i64> {
        answer["results"]
            .as_array()
            .unwrap_or_else(|| panic!("{answer}"))
            .iter()
            .map(|result| result["conversation"]["id"].as_i64().unwrap())
            .collect()
    };
    assert!(found(daemon.get("/search?q=crashes", &bo).await).is_empty());
    assert!(found(daemon.get("/search?q=basket", &bo).await).is_empty());
    assert_eq!(
        found(daemon.get("/search?q=charged", &bo).await),
        BTreeSet::from([billing])
    );
    assert_eq!(
        found(daemon.get("/search?q=crashes", &root).await),
        BTreeSet::from([technical])
    );

    // The stream told bo of the billing conversation and of nothing before it.
    let seen = bo_stream.until(message_created(billing, charged_message)).await;
    assert_eq!(conversations_of(&seen), BTreeSet::from([billing]));

    // A supervisor of support no longer sees the conversation support handed on.
    assert_eq!(
        status_of(&daemon, &lead, &format!("/conversations/{technical}")).await,
        StatusCode::NOT_FOUND
    );
    let lead_list = daemon.get("/conversations?status=all", &lead).await;
    assert!(ids(&lead_list, "conversations").is_empty(), "{lead_list}");
}

/// `agents.visibility = "all"`: every agent sees every team's conversations, as before
/// teams were kept apart.
#[tokio::test]
async fn with_visibility_all_every_agent_sees_every_team() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{}\n[agents]\nvisibility = \"all\"\n",
        config(dir.path(), "http://127.0.0.1:9/unused")
    );
    std::fs::write(dir.path().join("switchboard.toml"), text).unwrap();
    let daemon = Daemon::start_in(dir).await;
    let bo = daemon.agent("bo", "billing", "agent");
    let (support, _) = post(
        &daemon,
        json!({"id": "s-1", "text": "Where is my parcel?", "from": {"id": "c-1"}}),
    )
    .await;
    let detail = daemon.get(&format!("/conversations/{support}"), &bo).await;
    assert_eq!(detail["team"]["key"], "support");
}

#[tokio::test]
async fn a_bad_visibility_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{}\n[agents]\nvisibility = \"everyone\"\n",
        config(dir.path(), "http://127.0.0.1:9/unused")
    );
    let path = dir.path().join("switchboard.toml");
    std::fs::write(&path, text).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("--config")
        .arg(&path)
        .arg("check-config")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("agents.visibility"), "{stderr}");
}

/// An admin creates an agent in two teams with a token, changes their teams, gives them
/// a second token and revokes the first, and deactivates them: each step takes effect on
/// the next request (and ends their live stream), their open conversation goes back to
/// the queue, and the audit log tells it all without a secret.
#[tokio::test]
async fn admins_manage_agents_and_every_change_takes_effect_at_once_and_is_audited() {
    let daemon = Daemon::start("http://127.0.0.1:9/unused").await;
    let root = daemon.agent("root", "support", "admin");
    let ada = daemon.agent("ada", "support", "agent");
    let (technical, _) = post(
        &daemon,
        json!({"id": "e-1", "text": "The API is down", "from": {"id": "corp-1"},
               "metadata": {"plan": "enterprise"}}),
    )
    .await;

    // Refused, naming the field, changing nothing; and only admins may.
    let before = daemon.snapshot_but_outbox().await;
    for (body, field) in [
        (json!({"teams": ["billing"]}), "name"),
        (json!({"name": "cy"}), "teams"),
        (json!({"name": "cy", "teams": []}), "teams"),
        (json!({"name": "cy", "teams": ["nowhere"]}), "teams"),
        (json!({"name": "cy", "teams": ["billing", "billing"]}), "teams"),
        (json!({"name": "cy", "teams": ["billing"], "role": "boss"}), "role"),
        (json!({"name": "cy", "teams": ["billing"], "token": ""}), "token"),
        (json!({"name": "cy", "teams": ["billing"], "colour": "red"}), "colour"),
    ] {
        let (status, answer) = daemon.api(Method::POST, "/agents", &root, Some(body.clone())).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {answer}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains(&format!("`{field}`")),
            "{body}: {answer}"
        );
    }
    let (status, _) = daemon
        .api(
            Method::POST,
            "/agents",
            &root,
            Some(json!({"name": "ada", "teams": ["billing"]})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = daemon
        .api(
            Method::POST,
            "/agents",
            &ada,
            Some(json!({"name": "cy", "teams": ["billing"]})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(status_of(&daemon, &ada, "/audit").await, StatusCode::FORBIDDEN);
    assert_eq!(daemon.snapshot_but_outbox().await, before, "refusals changed nothing");

    let (status, created) = daemon
        .api(
            Method::POST,
            "/agents",
            &root,
            Some(json!({"name": "cy", "teams": ["billing", "technical"], "token": "CRM sync"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["agent"]["teams"], json!(["billing", "technical"]));
    assert_eq!(created["agent"]["team"], "billing", "the first is the home team");
    assert_eq!(created["agent"]["role"], "agent");
    assert!(created["sign_in_link"]["url"].as_str().unwrap().contains("/setup#"));
    let first = created["token"].as_str().unwrap().to_owned();
    let cy = created["agent"]["id"].as_i64().unwrap();
    assert_eq!(daemon.get("/agents/me", &first).await["name"], "cy");
    // In technical too: its conversation is cy's to see and to take.
    assert_eq!(
        status_of(&daemon, &first, &format!("/conversations/{technical}")).await,
        StatusCode::OK
    );
    let (status, _) = daemon
        .api(
            Method::PATCH,
            &format!("/conversations/{technical}"),
            &first,
            Some(json!({"assignee": "me"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    // A second token; revoking the first leaves the second.
    let (status, issued) = daemon
        .api(
            Method::POST,
            &format!("/agents/{cy}/tokens"),
            &root,
            Some(json!({"label": "laptop"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{issued}");
    let second = issued["token"].as_str().unwrap().to_owned();
    let tokens = daemon.get(&format!("/agents/{cy}/tokens"), &root).await;
    let listed: Vec<&str> = tokens["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|token| token["label"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["CRM sync", "laptop"]);
    assert!(!tokens.to_string().contains(&first[3..]), "a token is never listed");
    let first_id = tokens["tokens"][0]["id"].as_i64().unwrap();
    let (status, _) = daemon
        .api(Method::DELETE, &format!("/agents/{cy}/tokens/{first_id}"), &root, None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(status_of(&daemon, &first, "/agents/me").await, StatusCode::UNAUTHORIZED);
    assert_eq!(daemon.get("/agents/me", &second).await["name"], "cy");
    let (status, _) = daemon
        .api(Method::DELETE, &format!("/agents/{cy}/tokens/{first_id}"), &root, None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "revoked once");

    // Teams changed: the next request sees only billing's (and what is assigned to cy).
    let (status, changed) = daemon
        .api(
            Method::PATCH,
            &format!("/agents/{cy}"),
            &root,
            Some(json!({"teams": ["billing"], "role": "supervisor"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["teams"], json!(["billing"]));
    assert_eq!(changed["role"], "supervisor");
    let (status, answer) = daemon
        .api(
            Method::PATCH,
            &format!("/agents/{}", daemon.get("/agents/me", &root).await["id"]),
            &root,
            Some(json!({"role": "agent"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "an admin keeps their own role: {answer}");

    // Deactivated: the live stream ends, the token is refused on the next request, and the
    // conversation cy held goes back to the queue.
    let mut stream = Stream::open(&daemon, &second, None).await;
    stream.until(|event| event.event == "stream.ready").await;
    let (status, deactivated) = daemon
        .api(Method::POST, &format!("/agents/{cy}/deactivate"), &root, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{deactivated}");
    assert_eq!(deactivated["active"], false);
    assert_eq!(deactivated["returned_to_queue"], json!([technical]));
    assert!(stream.ended().await, "the stream of a deactivated agent ends");
    assert_eq!(
        status_of(&daemon, &second, "/agents/me").await,
        StatusCode::UNAUTHORIZED
    );
    let detail = daemon.get(&format!("/conversations/{technical}"), &root).await;
    assert_eq!(detail["assignee"], Value::Null, "{detail}");
    let returned = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .any(|event| event["kind"] == "conversation.assigned" && event["data"]["reason"] == "deactivated");
    assert!(returned, "{detail}");

    // The audit log, newest first, names who did what; no secret is in it.
    let audit = daemon.get(&format!("/audit?agent={cy}"), &root).await;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "agent.deactivated",
            "agent.updated",
            "token.revoked",
            "token.issued",
            "sign_in_link.issued",
            "agent.created"
        ]
    );
    for entry in audit["entries"].as_array().unwrap() {
        assert_eq!(entry["actor_name"], "root", "{entry}");
    }
    assert_eq!(
        audit["entries"][1]["details"]["teams"],
        json!({"from": ["billing", "technical"], "to": ["billing"]})
    );
    assert_eq!(audit["entries"][0]["details"]["returned_to_queue"], json!([technical]));
    let text = audit.to_string();
    assert!(
        !text.contains(&first[3..]) && !text.contains(&second[3..]),
        "no token in the log"
    );
}
