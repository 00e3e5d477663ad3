//! The daemon on PostgreSQL, and several daemons on one database: the test's private
//! cluster on loopback (`switchboard-test-postgres`), a fresh database per test.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use reqwest::Method;
use serde_json::json;
use switchboard_test_mailservers::{Dovecot, SmtpRelay};
use switchboard_test_postgres::Cluster;

use crate::harness::*;

/// The test config with its database on PostgreSQL at `url`.
fn on_postgres(dir: &Path, callback_url: &str, url: &str) -> String {
    moved_to_postgres(dir, config(dir, callback_url), url)
}

/// A test config (from [`config_with_inbox`]) with its database moved to `url`.
fn moved_to_postgres(dir: &Path, config: String, url: &str) -> String {
    let sqlite = format!("url = \"sqlite://{}\"", dir.join("switchboard.db").display());
    assert!(config.contains(&sqlite), "the test config no longer says {sqlite}");
    config.replacen(&sqlite, &format!("url = \"{url}\""), 1)
}

async fn daemon_on(url: &str, callback_url: &str) -> Daemon {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("switchboard.toml"),
        on_postgres(dir.path(), callback_url, url),
    )
    .unwrap();
    Daemon::start_in(dir).await
}

#[tokio::test]
async fn the_desk_runs_on_postgresql_and_keeps_everything_across_a_restart() {
    let cluster = Cluster::shared().await;
    let url = cluster.fresh_database().await;
    let receiver = Receiver::start().await;
    let daemon = daemon_on(&url, &receiver.url()).await;
    // A supervisor: the conversation goes to billing, which an agent of support does not see.
    let token = daemon.agent("sam", "support", "admin");

    let taken = daemon
        .post_accepted("m-1", "ada", "I was charged twice, please refund")
        .await;
    let conversation_id = taken["conversation_id"].as_i64().unwrap();
    eventually("the acknowledgement delivered", || async {
        (!receiver.callbacks().is_empty()).then_some(())
    })
    .await;
    let page = daemon.get("/conversations?team=billing", &token).await;
    assert_eq!(
        page["conversations"][0]["id"], conversation_id,
        "routed by the rule: {page}"
    );
    let (status, reply) = daemon
        .api(
            Method::POST,
            &format!("/conversations/{conversation_id}/messages"),
            &token,
            Some(json!({"text": "Refunded."})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    let reply_id = reply["id"].as_i64().unwrap();
    daemon.delivery_reaches(&token, conversation_id, reply_id, "sent").await;
    // A repeat of the same message is answered as a duplicate and not stored again.
    let (status, repeat) = daemon
        .post_signed(&customer_message("m-1", "ada", "I was charged twice, please refund"))
        .await;
    assert_eq!(
        (status, &repeat["duplicate"]),
        (StatusCode::OK, &json!(true)),
        "{repeat}"
    );

    let (_, exit) = daemon.stop();
    assert!(exit.success(), "{exit}");
    let daemon = daemon_on(&url, &receiver.url()).await;
    let detail = daemon.get(&format!("/conversations/{conversation_id}"), &token).await;
    let texts: Vec<&str> = detail["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|message| message["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts.len(), 3, "{detail}");
    assert_eq!(texts[0], "I was charged twice, please refund");
    assert_eq!(texts[2], "Refunded.");
    assert_eq!(detail["team"]["key"], "billing");
}

#[tokio::test]
async fn two_daemons_share_a_burst_and_a_killed_ones_sends_are_taken_over() {
    const BURST: usize = 1000;
    let cluster = Cluster::shared().await;
    let url = cluster.fresh_database().await;
    let receiver = Receiver::start().await;
    // Slow enough that the burst is still leaving when one daemon dies.
    receiver.delay(Duration::from_millis(200));
    let daemons = Arc::new(vec![
        daemon_on(&url, &receiver.url()).await,
        daemon_on(&url, &receiver.url()).await,
    ]);
    // Alternately to each daemon.
    post_burst(&daemons, BURST).await;
    eventually("a part of the burst delivered", || async {
        (receiver.callbacks().len() >= BURST / 5).then_some(())
    })
    .await;
    let mut daemons = Arc::into_inner(daemons).expect("no other owner");
    let survivor = daemons.pop().unwrap();
    let first = daemons.pop().unwrap();
    let delivered_before = receiver.callbacks().len();
    let killed_at = Instant::now();
    first.kill();
    assert!(delivered_before < BURST, "the burst was over before the kill");
    receiver.delay(Duration::ZERO);

    // The killed daemon's sends wait out their lease (30 s), then the survivor takes
    // them over: longer than the harness's usual deadline.
    let callbacks = eventually_within(
        "every acknowledgement delivered after the kill",
        Duration::from_secs(90),
        || async {
            let callbacks = receiver.callbacks();
            let distinct: HashSet<String> = callbacks.iter().map(Callback::webhook_id).collect();
            (distinct.len() >= BURST).then_some(callbacks)
        },
    )
    .await;
    let took_over_after = killed_at.elapsed();
    let distinct: HashSet<String> = callbacks.iter().map(Callback::webhook_id).collect();
    assert_eq!(distinct.len(), BURST);
    // A repeat only of what the killed daemon had in flight, with the same webhook-id.
    let repeats = callbacks.len() - distinct.len();
    assert!(repeats <= 32, "at most one daemon's sends in flight: {repeats}");

    // Every acknowledged message stored once.
    let stored = cluster
        .psql(
            &url,
            "SELECT COUNT(*), COUNT(DISTINCT external_id) FROM messages WHERE direction = 'inbound'",
        )
        .await;
    assert_eq!(stored, format!("{BURST}|{BURST}"));
    let sent = eventually("every delivery recorded as sent", || async {
        let counts = cluster
            .psql(
                &url,
                "SELECT status, COUNT(*) FROM outbox GROUP BY status ORDER BY status",
            )
            .await;
        (counts == format!("sent|{BURST}")).then_some(counts)
    })
    .await;
    println!(
        "two daemons, burst of {BURST}: {delivered_before} delivered before the kill, all {BURST} \
         {took_over_after:?} after it, {repeats} repeats; outbox {sent}"
    );
    drop(survivor);
}

#[tokio::test]
async fn an_unreachable_postgresql_server_stops_the_daemon_naming_the_key() {
    // A port nothing listens on: bound, then closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("postgres://switchboard:hunter2@127.0.0.1:{port}/desk");
    std::fs::write(
        dir.path().join("switchboard.toml"),
        on_postgres(dir.path(), "http://127.0.0.1:9/", &url),
    )
    .unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("--config")
        .arg(dir.path().join("switchboard.toml"))
        .arg("serve")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("storage.url"), "{stderr}");
    assert!(stderr.contains("cannot connect"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "the password is not shown: {stderr}");
}

const SUPPORT: &str = "support@test.local";

/// A daemon on `url` reading `support@test.local` on `dovecot`.
async fn mail_daemon_on(url: &str, dovecot: &Dovecot, relay: &SmtpRelay) -> Daemon {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("imap-password"), "secret\n").unwrap();
    let inbox = format!(
        r#"
[inboxes.mail]
name = "Support mail"

[inboxes.mail.email]
address = "{SUPPORT}"
imap = {{ host = "127.0.0.1", port = {imap}, security = "plain", password_file = "{password}" }}
smtp = {{ host = "127.0.0.1", port = {smtp}, security = "plain" }}
"#,
        imap = dovecot.imap_port(),
        password = dir.path().join("imap-password").display(),
        smtp = relay.port(),
    );
    let config = moved_to_postgres(dir.path(), config_with_inbox(dir.path(), &inbox), url);
    std::fs::write(dir.path().join("switchboard.toml"), config).unwrap();
    Daemon::start_in(dir).await
}

fn customer_mail(message_id: &str, subject: &str) -> Vec<u8> {
    format!(
        "From: Ada <ada@customer.test>\r\nTo: Support <{SUPPORT}>\r\nSubject: {subject}\r\n\
         Message-ID: <{message_id}>\r\nDate: Tue, 24 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\n{subject}, please.\r\n"
    )
    .into_bytes()
}

/// Every inbound message's text on the desk, as `daemon` shows it.
async fn inbound_texts(daemon: &Daemon, token: &str) -> Vec<String> {
    let page = daemon.get("/conversations?limit=100", token).await;
    let mut texts = Vec::new();
    for conversation in page["conversations"].as_array().unwrap() {
        let detail = daemon
            .get(&format!("/conversations/{}", conversation["id"]), token)
            .await;
        for message in detail["messages"].as_array().unwrap() {
            if message["direction"] == "inbound" {
                texts.push(message["text"].as_str().unwrap().trim().to_owned());
            }
        }
    }
    texts.sort();
    texts
}

#[tokio::test]
async fn one_daemon_reads_the_mailbox_and_another_takes_over_when_it_is_killed() {
    let cluster = Cluster::shared().await;
    let url = cluster.fresh_database().await;
    let dovecot = Dovecot::start().await;
    let relay = SmtpRelay::start(&dovecot).await;
    let first = mail_daemon_on(&url, &dovecot, &relay).await;
    let second = mail_daemon_on(&url, &dovecot, &relay).await;
    let token = first.agent("sam", "support", "admin");
    let holder = eventually("a daemon holding the mailbox's lease", || async {
        let holder = cluster
            .psql(&url, "SELECT holder FROM leases WHERE name = 'reader:mail'")
            .await;
        (!holder.is_empty() && dovecot.sessions(SUPPORT) > 0).then_some(holder)
    })
    .await;
    assert_eq!(
        dovecot.sessions(SUPPORT),
        1,
        "one reader for the mailbox, not one per daemon"
    );
    let (reading, other) = if holder.contains(&format!("/{}/", first.pid())) {
        (first, second)
    } else {
        assert!(holder.contains(&format!("/{}/", second.pid())), "{holder}");
        (second, first)
    };

    dovecot
        .deliver(SUPPORT, &customer_mail("one@customer.test", "First question"))
        .await;
    eventually("the first mail as a conversation", || async {
        (inbound_texts(&other, &token).await.len() == 1).then_some(())
    })
    .await;
    let killed_at = Instant::now();
    reading.kill();
    dovecot
        .deliver(SUPPORT, &customer_mail("two@customer.test", "Second question"))
        .await;
    let texts = eventually_within(
        "the next mail as a conversation within 30 s of the kill",
        Duration::from_secs(30),
        || async {
            let texts = inbound_texts(&other, &token).await;
            (texts.len() >= 2).then_some(texts)
        },
    )
    .await;
    let took_over_after = killed_at.elapsed();
    assert_eq!(texts, ["First question, please.", "Second question, please."]);
    let holder = cluster
        .psql(&url, "SELECT holder FROM leases WHERE name = 'reader:mail'")
        .await;
    assert!(holder.contains(&format!("/{}/", other.pid())), "{holder}");
    // And it keeps reading: one more, once.
    dovecot
        .deliver(SUPPORT, &customer_mail("three@customer.test", "Third question"))
        .await;
    let texts = eventually("the third mail", || async {
        let texts = inbound_texts(&other, &token).await;
        (texts.len() >= 3).then_some(texts)
    })
    .await;
    assert_eq!(texts.len(), 3, "{texts:?}");
    println!("the mailbox's reader was taken over {took_over_after:?} after the kill");
}

/// The test config on `url` with a four-second first-response target for support, whose
/// breach escalates to the tier above (support-l1).
fn with_fast_sla(dir: &Path, callback_url: &str, url: &str) -> String {
    let config = on_postgres(dir, callback_url, url);
    let support = "[teams.support]\nname = \"Customer Support\"\n";
    assert!(config.contains(support), "the test config no longer says {support}");
    config.replacen(
        support,
        r#"[teams.support]
name = "Customer Support"
department = "support"
sla = "fast"

[teams.support-l1]
name = "Support L1"
department = "support"
tier = 1

[sla_policies.fast]
time = "calendar"
first_response = "4s"
on_breach = ["escalate"]
"#,
        1,
    )
}

async fn fast_sla_daemon_on(url: &str, callback_url: &str) -> Daemon {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("switchboard.toml"),
        with_fast_sla(dir.path(), callback_url, url),
    )
    .unwrap();
    Daemon::start_in(dir).await
}

fn events_of(detail: &serde_json::Value, kind: &str) -> usize {
    detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|event| event["kind"] == kind)
        .count()
}

/// Waits until the conversation went up a tier (its first response breached), and
/// returns how often it was breached and escalated by then.
async fn escalated(daemon: &Daemon, token: &str, conversation_id: i64) -> (usize, usize) {
    let detail = eventually_within(
        &format!("conversation {conversation_id} escalated"),
        Duration::from_secs(60),
        || async {
            let detail = daemon.get(&format!("/conversations/{conversation_id}"), token).await;
            (detail["tier"] == 1).then_some(detail)
        },
    )
    .await;
    (
        events_of(&detail, "sla.breached"),
        events_of(&detail, "conversation.escalated"),
    )
}

#[tokio::test]
async fn a_breach_escalates_once_with_two_daemons_and_once_when_one_dies_before_its_deadline() {
    let cluster = Cluster::shared().await;
    let url = cluster.fresh_database().await;
    let receiver = Receiver::start().await;
    let first = fast_sla_daemon_on(&url, &receiver.url()).await;
    let second = fast_sla_daemon_on(&url, &receiver.url()).await;
    let token = second.agent("sam", "support", "admin");

    // Both daemons' schedulers see the same deadline.
    let taken = first.post_accepted("sla-1", "ada", "Where is my parcel?").await;
    let both_running = taken["conversation_id"].as_i64().unwrap();
    assert_eq!(escalated(&second, &token, both_running).await, (1, 1));

    // The daemon that took the message dies a second before the deadline.
    let taken = first.post_accepted("sla-2", "bob", "Where is my parcel?").await;
    let orphaned = taken["conversation_id"].as_i64().unwrap();
    let created = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        created.elapsed() < Duration::from_secs(4),
        "the kill came after the deadline"
    );
    first.kill();
    assert_eq!(escalated(&second, &token, orphaned).await, (1, 1));
    // The first conversation was not breached again meanwhile.
    assert_eq!(escalated(&second, &token, both_running).await, (1, 1));
}

#[tokio::test]
async fn a_console_on_one_daemon_sees_what_another_daemon_took() {
    let cluster = Cluster::shared().await;
    let url = cluster.fresh_database().await;
    let receiver = Receiver::start().await;
    let first = daemon_on(&url, &receiver.url()).await;
    let second = daemon_on(&url, &receiver.url()).await;
    let token = second.agent("sam", "support", "agent");
    let mut stream = crate::stream::Stream::open(&second, &token, None).await;
    let taken = first
        .post_accepted("seen-elsewhere", "ada", "Hello from the other daemon")
        .await;
    let (conversation, message) = (
        taken["conversation_id"].as_i64().unwrap(),
        taken["message_id"].as_i64().unwrap(),
    );
    let seen = stream
        .until(crate::stream::message_created(conversation, message))
        .await;
    let created = seen.last().unwrap();
    assert_eq!(created.data["message"]["text"], "Hello from the other daemon");
}
