//! `route replay` (CLI and `POST /api/v1/route/replay`): a desk seeded through the
//! webhook, a config where one rule changed, and a report naming exactly the
//! conversations that rule moves, with nothing in the database changed.

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::Daemon;

/// The test config's `billing` rule, as [`crate::harness::config`] writes it.
const BILLING_RULE: &str = r#"then = { team = "billing", priority = "high", labels = ["billing"] }"#;

/// Customer messages, each from its own sender (so each opens a conversation), with
/// their contact's plan.
const MESSAGES: [(&str, Option<&str>); 7] = [
    ("I want a refund for order 1042", None),
    ("Where is my parcel?", None),
    ("The invoice is missing the VAT number", None),
    ("Hello, is anyone there?", None),
    ("You charged me for an order I cancelled", Some("enterprise")),
    ("Our dashboard is slow today", Some("enterprise")),
    ("The app crashes on start", None),
];

/// Whether the test config's `billing` rule (`(?i)\b(refund|invoice|charged)\b`)
/// catches a text: computed here, apart from the router.
fn billing_rule_catches(text: &str) -> bool {
    text.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .any(|word| ["refund", "invoice", "charged"].contains(&word))
}

fn ids(examples: &Value) -> BTreeSet<i64> {
    examples
        .as_array()
        .unwrap()
        .iter()
        .map(|example| example["conversation_id"].as_i64().unwrap())
        .collect()
}

/// Asserts the report moves exactly `moved` from billing to technical and nothing else.
fn assert_moves_exactly(report: &Value, moved: &BTreeSet<i64>, total: usize) {
    assert_eq!(report["replayed"], total, "{report}");
    assert_eq!(report["skipped"], 0, "{report}");
    assert_eq!(report["drift"]["count"], 0, "{report}");
    assert_eq!(report["changed"], moved.len(), "{report}");
    assert_eq!(report["team"]["changed"], moved.len(), "{report}");
    assert_eq!(
        report["team"]["moves"],
        json!([{"from": "billing", "to": "technical", "count": moved.len()}])
    );
    assert_eq!(ids(&report["team"]["examples"]), *moved, "{report}");
    for example in report["team"]["examples"].as_array().unwrap() {
        assert_eq!(example["before"]["rule"], "billing", "{example}");
        assert_eq!(example["after"]["rule"], "billing", "{example}");
    }
    // The rule changed its team only: priorities, labels and (no SLA policies in the
    // test config) deadlines stay.
    assert_eq!(report["priority"]["changed"], 0, "{report}");
    assert_eq!(report["labels"]["changed"], 0, "{report}");
    assert_eq!(report["first_response_due"]["changed"], 0, "{report}");
}

/// Posts [`MESSAGES`]; returns the ids of the conversations the billing rule caught.
async fn seed(daemon: &Daemon) -> BTreeSet<i64> {
    let mut moved = BTreeSet::new();
    for (n, (text, plan)) in MESSAGES.iter().enumerate() {
        let mut body = json!({"id": format!("m-{n}"), "from": {"id": format!("customer-{n}")}, "text": text});
        if let Some(plan) = plan {
            body["metadata"] = json!({ "plan": plan });
        }
        let (status, answer) = daemon.post_signed(&body).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
        if billing_rule_catches(text) {
            moved.insert(answer["conversation_id"].as_i64().unwrap());
        }
    }
    assert_eq!(moved.len(), 3, "the seed has three billing messages");
    moved
}

/// The daemon's config with the billing rule sending to `technical` instead.
fn billing_to_technical(daemon: &Daemon) -> String {
    let running = std::fs::read_to_string(daemon.config_path()).unwrap();
    assert!(running.contains(BILLING_RULE), "the test config's billing rule changed");
    running.replace(
        BILLING_RULE,
        r#"then = { team = "technical", priority = "high", labels = ["billing"] }"#,
    )
}

#[tokio::test]
async fn replay_reports_exactly_the_conversations_a_changed_rule_moves_and_changes_nothing() {
    let daemon = Daemon::start("http://127.0.0.1:9/unused").await;
    let lead = daemon.agent("lead", "support", "admin");
    let ada = daemon.agent("ada", "support", "agent");
    // A supervisor of one team sees only its conversations; the replay reads them all.
    let sam = daemon.agent("sam", "support", "supervisor");
    let moved = seed(&daemon).await;
    let changed = billing_to_technical(&daemon);
    let new_path = daemon.dir.path().join("new.toml");
    std::fs::write(&new_path, &changed).unwrap();
    let new_path = new_path.to_str().unwrap();

    let before = daemon.snapshot_but_outbox().await;

    let output = daemon.cli(&[
        "route",
        "replay",
        "--since",
        "1h",
        "--with",
        new_path,
        "--json",
        "--examples",
        "100",
    ]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_moves_exactly(&report, &moved, MESSAGES.len());

    let output = daemon.cli(&["route", "replay", "--since", "1h", "--with", new_path]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(text.contains("team: 3 would move"), "{text}");
    assert!(text.contains("  billing -> technical: 3"), "{text}");

    // The same config moves nothing.
    let running_path = daemon.config_path();
    let output = daemon.cli(&[
        "route",
        "replay",
        "--since",
        "1h",
        "--with",
        running_path.to_str().unwrap(),
        "--json",
    ]);
    let unchanged: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        (unchanged["replayed"].as_u64(), unchanged["changed"].as_u64()),
        (Some(7), Some(0))
    );

    let body = json!({"since": "1h", "config": changed, "examples": 100});
    let (status, report) = daemon
        .api(Method::POST, "/route/replay", &lead, Some(body.clone()))
        .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_moves_exactly(&report, &moved, MESSAGES.len());
    for token in [&ada, &sam] {
        let (status, refused) = daemon
            .api(Method::POST, "/route/replay", token, Some(body.clone()))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    }

    assert_eq!(daemon.snapshot_but_outbox().await, before, "replaying changed nothing");
}

#[tokio::test]
async fn replay_reads_the_same_openings_on_postgresql() {
    let cluster = switchboard_test_postgres::Cluster::shared().await;
    let url = cluster.fresh_database().await;
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("url = \"sqlite://{}\"", dir.path().join("switchboard.db").display());
    let config = crate::harness::config(dir.path(), "http://127.0.0.1:9/unused");
    assert!(config.contains(&sqlite), "the test config no longer says {sqlite}");
    std::fs::write(
        dir.path().join("switchboard.toml"),
        config.replacen(&sqlite, &format!("url = \"{url}\""), 1),
    )
    .unwrap();
    let daemon = Daemon::start_in(dir).await;
    let lead = daemon.agent("lead", "support", "admin");
    let moved = seed(&daemon).await;
    let body = json!({"since": "1h", "config": billing_to_technical(&daemon), "examples": 100});
    let (status, report) = daemon.api(Method::POST, "/route/replay", &lead, Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_moves_exactly(&report, &moved, MESSAGES.len());
}

#[tokio::test]
async fn a_bad_changed_config_is_refused_naming_its_key() {
    let daemon = Daemon::start("http://127.0.0.1:9/unused").await;
    let lead = daemon.agent("lead", "support", "admin");
    let running = std::fs::read_to_string(daemon.config_path()).unwrap();
    let bad = running.replace(
        BILLING_RULE,
        r#"then = { team = "billing", priority = "asap", labels = ["billing"] }"#,
    );
    assert_ne!(bad, running);
    let bad_path = daemon.dir.path().join("bad.toml");
    std::fs::write(&bad_path, &bad).unwrap();

    let output = daemon.cli(&["route", "replay", "--since", "7d", "--with", bad_path.to_str().unwrap()]);
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("--with") && stderr.contains("`rules[0].then.priority`"),
        "{stderr}"
    );

    let (status, answer) = daemon
        .api(
            Method::POST,
            "/route/replay",
            &lead,
            Some(json!({"since": "7d", "config": bad})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(message.contains("`config` key `rules[0].then.priority`"), "{message}");

    let (status, answer) = daemon
        .api(
            Method::POST,
            "/route/replay",
            &lead,
            Some(json!({"since": "last week", "config": running})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert!(
        answer["error"]["message"].as_str().unwrap().contains("`since`"),
        "{answer}"
    );
}
