//! `switchboard migrate`: a desk that ran on SQLite moved to PostgreSQL whole, and the
//! daemon carrying on there; the refusals that change nothing (a target holding a desk,
//! a source a daemon serves, URLs of the wrong kind).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use base64::Engine;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use switchboard_test_postgres::Cluster;

use crate::harness::*;

const PASSWORD: &str = "a long enough password";

fn migrate(from: &str, to: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["migrate", "--from", from, "--to", to])
        .output()
        .unwrap()
}

fn sqlite_url(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("switchboard.db").display())
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The daemon on the config in a new dir, with its database at `url` (PostgreSQL).
async fn daemon_on_postgres(url: &str, callback_url: &str) -> Daemon {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), callback_url);
    let sqlite = format!("url = \"{}\"", sqlite_url(dir.path()));
    assert!(config.contains(&sqlite), "the test config no longer says {sqlite}");
    std::fs::write(
        dir.path().join("switchboard.toml"),
        config.replacen(&sqlite, &format!("url = \"{url}\""), 1),
    )
    .unwrap();
    Daemon::start_in(dir).await
}

/// `table → (rows read, rows in PostgreSQL)` from migrate's output, checking each line's shape.
fn printed_counts(stdout: &str) -> BTreeMap<String, (u64, u64)> {
    let mut counts = BTreeMap::new();
    for line in stdout.lines().filter(|line| !line.starts_with("migrated ")) {
        let words: Vec<&str> = line.split_whitespace().collect();
        assert!(
            matches!(words[..], [_, _, "read", _, "in", "PostgreSQL", _, "s"]),
            "unexpected line {line:?}"
        );
        counts.insert(
            words[0].to_owned(),
            (words[1].parse().unwrap(), words[3].parse().unwrap()),
        );
    }
    counts
}

/// Every table's row count and contents digest, and every sequence's position: equal
/// fingerprints mean the database did not change.
async fn postgres_fingerprint(cluster: &Cluster, url: &str) -> String {
    let tables = cluster
        .psql(
            url,
            "SELECT table_name FROM information_schema.tables
             WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY table_name",
        )
        .await;
    let mut fingerprint = String::new();
    for table in tables.lines() {
        let digest = cluster
            .psql(
                url,
                &format!(
                    "SELECT COUNT(*), md5(COALESCE(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {table} t"
                ),
            )
            .await;
        fingerprint.push_str(&format!("{table}: {digest}\n"));
    }
    let sequences = cluster
        .psql(
            url,
            "SELECT string_agg(sequencename || '=' || COALESCE(last_value::text, '-'), ',' ORDER BY sequencename)
             FROM pg_sequences",
        )
        .await;
    fingerprint.push_str(&sequences);
    fingerprint
}

/// Every constraint and index of the database with its definition.
async fn schema_of(cluster: &Cluster, url: &str) -> String {
    cluster
        .psql(
            url,
            "SELECT conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint
             WHERE connamespace = 'public'::regnamespace
             UNION ALL SELECT indexdef FROM pg_indexes WHERE schemaname = 'public'
             ORDER BY 1",
        )
        .await
}

/// What the API shows of the desk: every conversation with its messages, events and
/// clocks, the agents, deliveries that failed, subscriptions, the privacy audit trail.
async fn desk_as_shown(daemon: &Daemon, admin: &str) -> BTreeMap<String, Value> {
    let mut shown = BTreeMap::new();
    let list = daemon.get("/conversations", admin).await;
    for conversation in list["conversations"].as_array().unwrap() {
        let id = conversation["id"].as_i64().unwrap();
        shown.insert(
            format!("conversation {id}"),
            daemon.get(&format!("/conversations/{id}"), admin).await,
        );
    }
    for path in [
        "/conversations",
        "/agents",
        "/deliveries?status=failed",
        "/subscriptions",
        "/privacy/audit",
        "/teams",
    ] {
        shown.insert(path.to_owned(), daemon.get(path, admin).await);
    }
    shown
}

/// Waits until every outbound message of every conversation was sent or failed for
/// good: nothing in flight or scheduled when the daemon stops, so the migrated desk
/// shows the same.
async fn deliveries_settle(daemon: &Daemon, admin: &str) {
    eventually("every outbound message sent or failed", || async {
        let list = daemon.get("/conversations", admin).await;
        for conversation in list["conversations"].as_array()? {
            let detail = daemon
                .get(&format!("/conversations/{}", conversation["id"]), admin)
                .await;
            let unsettled = detail["messages"].as_array()?.iter().any(|message| {
                message["direction"] == "outbound"
                    && !matches!(message["delivery"]["status"].as_str(), Some("sent" | "failed"))
            });
            if unsettled {
                return None;
            }
        }
        Some(())
    })
    .await;
}

async fn session_request(daemon: &Daemon, cookie: &str) -> StatusCode {
    reqwest::Client::new()
        .get(daemon.url("/api/v1/session"))
        .header("cookie", format!("switchboard_session={cookie}"))
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn a_sqlite_desk_moves_to_postgresql_whole_and_the_daemon_carries_on_there() {
    let cluster = Cluster::shared().await;
    let customers = Receiver::start().await;
    // The first acknowledgement is refused for good: a failed delivery to carry over.
    customers.script(&[400]);
    let crm = Receiver::start().await;
    let daemon = Daemon::start(&customers.url()).await;
    let admin = daemon.agent("ada", "support", "admin");
    let (token, link) = daemon.agent_with_link("sam", "support", "admin");
    let http = reqwest::Client::new();
    // Sam signs in to the console: a password and a session to carry over.
    let setup = http
        .post(daemon.url("/api/v1/session/setup"))
        .json(&json!({"token": link, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(setup.status(), StatusCode::OK);
    let cookie = crate::harness::session_cookie(setup.headers()["set-cookie"].to_str().unwrap());
    let (status, body) = daemon
        .api(
            Method::POST,
            "/subscriptions",
            &admin,
            Some(json!({"url": crm.url(), "events": ["conversation.created"], "secret": SECRET})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let first = daemon.post_accepted("m-1", "grace", "Where is my parcel?").await;
    let first_id = first["conversation_id"].as_i64().unwrap();
    let detail = daemon.get(&format!("/conversations/{first_id}"), &token).await;
    let ack_id = detail["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|message| message["kind"] == "status_update")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    daemon.delivery_reaches(&token, first_id, ack_id, "failed").await;
    let invoice = b"%PDF-1.4 invoice 1001 \x00\x01\xff binary tail".to_vec();
    let mut with_file = customer_message("m-2", "ada", "I was charged twice, please refund");
    with_file["attachments"] = json!([{
        "filename": "invoice.pdf",
        "content_type": "application/pdf",
        "data_base64": base64::engine::general_purpose::STANDARD.encode(&invoice),
    }]);
    let (status, second) = daemon.post_signed(&with_file).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{second}");
    let second_id = second["conversation_id"].as_i64().unwrap();
    let third_id = daemon
        .post_accepted("m-3", "linus", "Hello\tthere,\nline two \\ done")
        .await["conversation_id"]
        .as_i64()
        .unwrap();
    // Waiting on Linus: a follow-up timer (the reminder) to carry over.
    let (status, body) = daemon
        .api(
            Method::PATCH,
            &format!("/conversations/{third_id}"),
            &token,
            Some(json!({"status": "pending"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, reply) = daemon
        .api(
            Method::POST,
            &format!("/conversations/{second_id}/messages"),
            &token,
            Some(json!({"text": "Refunded."})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    daemon
        .delivery_reaches(&token, second_id, reply["id"].as_i64().unwrap(), "sent")
        .await;
    // An export: a row of the privacy audit trail.
    let contact_id = detail["contact"]["id"].as_i64().unwrap().to_string();
    let archive = daemon.dir.path().join("grace.tar.gz");
    let exported = daemon.cli(&["contact", "export", &contact_id, "--out", archive.to_str().unwrap()]);
    assert!(exported.status.success(), "{}", text(&exported.stderr));
    deliveries_settle(&daemon, &admin).await;
    eventually("the CRM told of the three conversations", || async {
        (crm.callbacks().len() >= 3).then_some(())
    })
    .await;
    let before = desk_as_shown(&daemon, &admin).await;
    let attachment = &before[&format!("conversation {second_id}")]["messages"][0]["attachments"][0];
    let attachment_id = attachment["id"].as_i64().unwrap();

    let (dir, exit) = daemon.stop();
    assert!(exit.success(), "{exit}");
    let rows = snapshot(&dir.path().join("switchboard.db")).await;
    let url = cluster.fresh_database().await;
    let output = migrate(&sqlite_url(dir.path()), &url);
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", text(&output.stderr));

    // One line per table of the SQLite desk, each with as many rows in PostgreSQL as read.
    let printed = printed_counts(&stdout);
    let tables: Vec<&String> = rows.keys().filter(|table| *table != "_sqlx_migrations").collect();
    assert_eq!(printed.keys().collect::<Vec<_>>(), tables, "{stdout}");
    for (table, &(read, stored)) in &printed {
        let expected = rows[table].len() as u64;
        assert_eq!((read, stored), (expected, expected), "{table}: {stdout}");
    }
    for table in [
        "conversations",
        "messages",
        "attachments",
        "blobs",
        "outbox",
        "event_deliveries",
        "sla_clocks",
        "conversation_timers",
        "sessions",
        "privacy_audit",
    ] {
        assert!(printed[table].0 > 0, "{table} had rows to copy: {stdout}");
    }
    assert!(
        stdout.lines().last().unwrap().starts_with("migrated "),
        "a closing line with the totals: {stdout}"
    );

    // The schema as the daemon makes it: every index and foreign key taken off for the
    // copy is back.
    let fresh = cluster.fresh_database().await;
    drop(daemon_on_postgres(&fresh, &customers.url()).await);
    assert_eq!(schema_of(cluster, &url).await, schema_of(cluster, &fresh).await);

    let daemon = daemon_on_postgres(&url, &customers.url()).await;
    assert_eq!(
        desk_as_shown(&daemon, &admin).await,
        before,
        "the API shows the same desk on PostgreSQL"
    );
    let download = http
        .get(daemon.url(&format!("/api/v1/attachments/{attachment_id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(download.status(), StatusCode::OK);
    assert_eq!(download.bytes().await.unwrap().to_vec(), invoice, "byte for byte");
    assert_eq!(
        session_request(&daemon, &cookie).await,
        StatusCode::OK,
        "the console's session carried over"
    );
    let signed_in = http
        .post(daemon.url("/api/v1/session"))
        .json(&json!({"name": "sam", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), StatusCode::OK, "the password carried over");

    // Grace writes again: her migrated conversation takes it.
    let again = daemon.post_accepted("m-4", "grace", "Any news?").await;
    assert_eq!(again["conversation_id"], first_id);
    // A new customer: a new conversation, with ids after every migrated one.
    let fresh = daemon.post_accepted("m-5", "hedy", "Hi, a new question").await;
    let fresh_id = fresh["conversation_id"].as_i64().unwrap();
    assert!(fresh_id > first_id.max(second_id).max(third_id), "{fresh}");
    let last_migrated_message = before
        .iter()
        .filter(|(key, _)| key.starts_with("conversation "))
        .flat_map(|(_, detail)| detail["messages"].as_array().unwrap())
        .map(|message| message["id"].as_i64().unwrap())
        .max()
        .unwrap();
    assert!(fresh["message_id"].as_i64().unwrap() > last_migrated_message, "{fresh}");
    // A reply from PostgreSQL reaches the customer; the CRM hears of the new conversation.
    let (status, reply) = daemon
        .api(
            Method::POST,
            &format!("/conversations/{third_id}/messages"),
            &token,
            Some(json!({"text": "Hello Linus, how can we help?"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    let reply_id = reply["id"].as_i64().unwrap();
    daemon.delivery_reaches(&token, third_id, reply_id, "sent").await;
    assert!(
        customers
            .for_message(reply_id)
            .iter()
            .any(|callback| callback.answered.is_success())
    );
    eventually("the CRM told of the new conversation", || async {
        crm.callbacks()
            .iter()
            .any(|callback| callback.body["data"]["conversation_id"] == fresh_id)
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn migrating_into_a_database_that_holds_a_desk_is_refused_and_changes_nothing() {
    let cluster = Cluster::shared().await;
    let source = Daemon::start("http://127.0.0.1:9/").await;
    source.post_accepted("m-1", "ada", "Hello from SQLite").await;
    let (dir, _) = source.stop();
    // The target already serves a desk of its own.
    let url = cluster.fresh_database().await;
    let other = daemon_on_postgres(&url, "http://127.0.0.1:9/").await;
    other.post_accepted("m-1", "bob", "Hello from PostgreSQL").await;
    other.stop();
    let target_before = postgres_fingerprint(cluster, &url).await;
    let source_before = snapshot(&dir.path().join("switchboard.db")).await;

    let output = migrate(&sqlite_url(dir.path()), &url);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("already holds desk data") && stderr.contains("conversations"),
        "names the problem and the tables: {stderr}"
    );
    assert!(
        output.stdout.is_empty(),
        "no table was copied: {}",
        text(&output.stdout)
    );
    assert_eq!(postgres_fingerprint(cluster, &url).await, target_before);
    assert_eq!(snapshot(&dir.path().join("switchboard.db")).await, source_before);
}

#[tokio::test]
async fn migrating_a_file_a_running_daemon_serves_is_refused_until_it_stops() {
    let cluster = Cluster::shared().await;
    let daemon = Daemon::start("http://127.0.0.1:9/").await;
    daemon.post_accepted("m-1", "ada", "Hello").await;
    let url = cluster.fresh_database().await;

    let output = migrate(&sqlite_url(daemon.dir.path()), &url);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("served by a running switchboard daemon") && stderr.contains("stop it"),
        "{stderr}"
    );
    let tables = cluster
        .psql(
            &url,
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'public'",
        )
        .await;
    assert_eq!(tables, "0", "the target was not touched");

    let (dir, _) = daemon.stop();
    let output = migrate(&sqlite_url(dir.path()), &url);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stored = cluster
        .psql(&url, "SELECT text FROM messages WHERE direction = 'inbound'")
        .await;
    assert_eq!(stored, "Hello");
}

#[test]
fn migrate_refuses_urls_of_the_wrong_kind_and_a_missing_source() {
    let dir = tempfile::tempdir().unwrap();
    let target = "postgres://switchboard:hunter2@127.0.0.1:9/desk";
    let refusals = [
        (target.to_owned(), target.to_owned(), "--from: not a SQLite URL"),
        (
            sqlite_url(dir.path()),
            target.to_owned(),
            "--from: no SQLite database at",
        ),
    ];
    for (from, to, names) in refusals {
        let output = migrate(&from, &to);
        assert_eq!(output.status.code(), Some(1));
        let stderr = text(&output.stderr);
        assert!(stderr.contains(names) && !stderr.contains("hunter2"), "{stderr}");
        assert!(!dir.path().join("switchboard.db").exists(), "no database is created");
    }
    // An existing file with a target that is not PostgreSQL: refused before either is opened.
    let file = dir.path().join("switchboard.db");
    std::fs::write(&file, b"").unwrap();
    let output = migrate(
        &sqlite_url(dir.path()),
        &format!("sqlite://{}", dir.path().join("other.db").display()),
    );
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("--to: not a PostgreSQL URL"), "{stderr}");
    assert_eq!(std::fs::metadata(&file).unwrap().len(), 0, "the source was not opened");
    assert!(!dir.path().join("other.db").exists());
}

#[tokio::test]
async fn a_value_postgresql_cannot_hold_is_named_with_its_row_and_nothing_is_copied() {
    let cluster = Cluster::shared().await;
    let daemon = Daemon::start("http://127.0.0.1:9/").await;
    let taken = daemon.post_accepted("m-1", "ada", "before\u{0}after").await;
    let message_id = taken["message_id"].as_i64().unwrap();
    let (dir, _) = daemon.stop();
    let url = cluster.fresh_database().await;

    let output = migrate(&sqlite_url(dir.path()), &url);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "messages (id {message_id}): `text` holds a NUL character (byte 6"
        )),
        "names the table, the row and the column: {stderr}"
    );
    let copied = cluster
        .psql(
            &url,
            "SELECT (SELECT COUNT(*) FROM teams) + (SELECT COUNT(*) FROM messages)",
        )
        .await;
    assert_eq!(copied, "0", "the copy was rolled back");

    // The operator changes the value as the message says; the same command then works.
    let pool = sqlx::SqlitePool::connect(&sqlite_url(dir.path())).await.unwrap();
    sqlx::query("UPDATE messages SET text = ? WHERE id = ?")
        .bind("beforeafter")
        .bind(message_id)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let output = migrate(&sqlite_url(dir.path()), &url);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stored = cluster
        .psql(&url, &format!("SELECT text FROM messages WHERE id = {message_id}"))
        .await;
    assert_eq!(stored, "beforeafter");
}
