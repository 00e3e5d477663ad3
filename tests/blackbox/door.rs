//! The HTTP door under hostile input: requests built to make the daemon compute, hold
//! memory or hold connections, senders over their rate, and messages past a field's
//! limit. Each is refused with the JSON error a sender can act on, and stores nothing.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use switchboard_connector_webhook::signature::{HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{Daemon, Receiver, config, customer_message, eventually, unix_now};

/// A daemon on the test config as `edit` changes it.
async fn daemon_with(receiver: &Receiver, edit: impl Fn(String) -> String, open_files: Option<u32>) -> Daemon {
    let dir = tempfile::tempdir().unwrap();
    let text = edit(config(dir.path(), &receiver.url()));
    std::fs::write(dir.path().join("switchboard.toml"), text).unwrap();
    Daemon::start_with_open_files(dir, open_files).await
}

/// The shipped default body limit (the test config's is 64 KiB).
fn allow_ten_mib(config: String) -> String {
    config.replace("max_body_bytes = 65536", "max_body_bytes = 10485760")
}

/// Sends a request's head (and `body_part` of its body) on a fresh connection.
async fn send_head(daemon: &Daemon, head: &str, body_part: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(daemon.address()).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body_part).await.unwrap();
    stream
}

/// Reads an HTTP/1.1 response whole (the daemon closes or says its length).
async fn read_response(stream: &mut TcpStream) -> (u16, String) {
    let mut text = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let read = tokio::time::timeout(Duration::from_secs(30), stream.read(&mut buffer))
            .await
            .expect("a response within 30 s")
            .unwrap_or(0);
        if read == 0 {
            break;
        }
        text.extend_from_slice(&buffer[..read]);
        let so_far = String::from_utf8_lossy(&text);
        if let Some((head, body)) = so_far.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|line| {
                    line.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().to_owned())
                })
                .and_then(|v| v.parse::<usize>().ok());
            if length.is_some_and(|length| body.len() >= length) {
                break;
            }
        }
    }
    let text = String::from_utf8_lossy(&text).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    (status, text)
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.split_whitespace().next())
        .and_then(|value| value.parse().ok())
        .unwrap()
}

fn conversations(snapshot: &std::collections::BTreeMap<String, Vec<String>>) -> usize {
    snapshot["conversations"].len()
}

/// A signed-looking request head declaring a 9 MiB body, with `entries` signatures.
fn head_with_signatures(daemon: &Daemon, entries: usize) -> String {
    let body_length = 9 * 1024 * 1024;
    let entries = vec![format!("v1,{}", "A".repeat(43) + "="); entries].join(" ");
    format!(
        "POST /hooks/shop HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\ncontent-length: {body_length}\r\n\
         {HEADER_ID}: msg_1\r\n{HEADER_TIMESTAMP}: {}\r\n{HEADER_SIGNATURE}: {entries}\r\n\r\n",
        daemon.address(),
        unix_now()
    )
}

#[tokio::test]
async fn five_thousand_signature_entries_are_refused_before_the_body_is_read() {
    let receiver = Receiver::start().await;
    let daemon = daemon_with(&receiver, allow_ten_mib, None).await;
    // None of the body is sent: a daemon that read it before the headers would wait for
    // it until the body timeout, and one that computed an HMAC per entry could not
    // answer at once. 5,000 entries (240 KB) pass the largest request head the daemon
    // reads (16 KiB) and are refused by the HTTP layer (431); 100 entries fit in it and
    // are refused by the signature check, each before any HMAC.
    for (entries, status_wanted, says) in [(5000, 431, ""), (100, 401, "too_many_signatures")] {
        let started = Instant::now();
        let mut stream = send_head(&daemon, &head_with_signatures(&daemon, entries), b"").await;
        let (status, response) = read_response(&mut stream).await;
        let elapsed = started.elapsed();
        assert_eq!(status, status_wanted, "{response}");
        assert!(response.contains(says), "{response}");
        println!(
            "{entries} signature entries refused ({status}) in {:.2} ms",
            elapsed.as_secs_f64() * 1e3
        );
    }
    assert_eq!(conversations(&daemon.snapshot().await), 0);
}

#[tokio::test]
async fn stalled_uploads_hold_no_more_than_the_body_budget() {
    const UPLOADS: usize = 2000;
    let receiver = Receiver::start().await;
    let daemon = daemon_with(&receiver, allow_ten_mib, None).await;
    let before = rss_kib(daemon.pid());
    // Headers that pass every check made before the body (fresh timestamp, one entry),
    // a declared 10 MB body, 48 KiB of it sent, then silence.
    let part = vec![b'x'; 48 * 1024];
    let mut stalled = Vec::with_capacity(UPLOADS);
    let sent = Instant::now();
    for n in 0..UPLOADS {
        let head = format!(
            "POST /hooks/shop HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\ncontent-length: 10000000\r\n\
             {HEADER_ID}: msg_{n}\r\n{HEADER_TIMESTAMP}: {}\r\n{HEADER_SIGNATURE}: v1,{}=\r\n\r\n",
            daemon.address(),
            unix_now(),
            "A".repeat(43)
        );
        stalled.push(send_head(&daemon, &head, &part).await);
    }
    println!("{UPLOADS} uploads sent in {:.1} s", sent.elapsed().as_secs_f64());
    // The daemon reads what it accepted; sample its memory until it has (its budget
    // refuses the rest with 503) and keep the largest figure.
    let mut peak = 0;
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        peak = peak.max(rss_kib(daemon.pid()));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "{UPLOADS} stalled uploads: daemon RSS {:.1} MiB before, peak {:.1} MiB",
        before as f64 / 1024.0,
        peak as f64 / 1024.0
    );
    // What the uploads hold: the growth over the daemon's own size, which grows with the
    // binary (40 MiB in a debug build) and says nothing of the door.
    let held = peak.saturating_sub(before);
    assert!(
        held < 100_000_000 / 1024,
        "{UPLOADS} stalled uploads hold {held} KiB (RSS {before} → {peak} KiB)"
    );
    drop(stalled);
    // Once they are gone the daemon serves again.
    let (status, _) = daemon.post_signed(&customer_message("after", "ada", "Hello")).await;
    assert_eq!(status, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn silent_connections_past_the_descriptor_limit_stop_neither_health_nor_outbox() {
    const SILENT: usize = 1100;
    let receiver = Receiver::start().await;
    let daemon = daemon_with(&receiver, |text| text, Some(1024)).await;
    let mut silent = Vec::with_capacity(SILENT);
    for _ in 0..SILENT {
        silent.push(TcpStream::connect(daemon.address()).await.unwrap());
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    eventually("/healthz to answer beside 1,100 silent connections", || async {
        let response = http.get(daemon.url("/healthz")).send().await.ok()?;
        (response.status() == StatusCode::OK).then_some(())
    })
    .await;
    let (status, body) = daemon.post_signed(&customer_message("beside", "ada", "Hello")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    eventually("the acknowledgement to leave through the outbox", || async {
        (!receiver.callbacks().is_empty()).then_some(())
    })
    .await;
    let log = daemon.log();
    assert!(log.contains("connection limit reached"), "{log}");
    assert!(!log.contains("Too many open files"), "{log}");
    drop(silent);
}

#[tokio::test]
async fn senders_over_their_rate_get_429_with_retry_after_and_nothing_stored() {
    let receiver = Receiver::start().await;
    // The test config turns the limits off; this one turns two of them on.
    let daemon = daemon_with(
        &receiver,
        |text| {
            text.replace("hook_per_address = 0", "hook_per_address = 5")
                .replace("api_per_token = 0", "api_per_token = 5")
        },
        None,
    )
    .await;

    let mut accepted = 0;
    let mut limited = Vec::new();
    for n in 0..30 {
        let (status, body) = daemon
            .post_signed(&customer_message(&format!("rate-{n}"), &format!("c{n}"), "Hello"))
            .await;
        match status {
            StatusCode::ACCEPTED => accepted += 1,
            StatusCode::TOO_MANY_REQUESTS => limited.push(body),
            other => panic!("{other}: {body}"),
        }
    }
    assert!(
        !limited.is_empty(),
        "30 requests at once passed a limit of 5/s with a burst of 10"
    );
    assert_eq!(limited[0]["error"]["code"], "rate_limited");
    assert_eq!(conversations(&daemon.snapshot().await), accepted);

    // Retry-After is given, and the API's limit is per token.
    let response = reqwest::Client::new()
        .post(daemon.url("/hooks/shop"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().contains_key("retry-after"));
    let token = daemon.agent("sam", "support", "agent");
    let statuses: Vec<StatusCode> = {
        let mut statuses = Vec::new();
        for _ in 0..30 {
            let (status, _) = daemon.api(reqwest::Method::GET, "/agents/me", &token, None).await;
            statuses.push(status);
        }
        statuses
    };
    assert!(statuses.contains(&StatusCode::OK), "{statuses:?}");
    assert!(statuses.contains(&StatusCode::TOO_MANY_REQUESTS), "{statuses:?}");
}

#[tokio::test]
async fn messages_past_a_field_limit_are_refused_naming_the_field() {
    let receiver = Receiver::start().await;
    let daemon = daemon_with(&receiver, allow_ten_mib, None).await;
    let attachment = json!({"filename": "a.txt", "content_type": "text/plain", "data_base64": "YQ=="});
    let cases: Vec<(Value, &str)> = vec![
        (
            {
                let mut message = customer_message("many", "ada", "Files");
                message["attachments"] = json!(vec![attachment.clone(); 21]);
                message
            },
            "attachments",
        ),
        (
            {
                let mut message = customer_message("meta", "ada", "Meta");
                message["metadata"] = json!({"blob": "m".repeat(20_000)});
                message
            },
            "metadata",
        ),
        (
            {
                let mut message = customer_message("name", "ada", "Name");
                message["from"]["name"] = json!("n".repeat(1000));
                message
            },
            "from.name",
        ),
        (
            {
                let mut message = customer_message("file", "ada", "File");
                message["attachments"] =
                    json!([{"filename": "f".repeat(100_000), "content_type": "text/plain", "data_base64": "YQ=="}]);
                message
            },
            "attachments[0].filename",
        ),
    ];
    for (message, field) in cases {
        let (status, body) = daemon.post_signed(&message).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let text = body["error"]["message"].as_str().unwrap();
        assert!(text.starts_with(&format!("`{field}`")), "{text}");
    }
    assert_eq!(conversations(&daemon.snapshot().await), 0);
}

#[tokio::test]
async fn readyz_says_not_ready_while_the_store_cannot_write() {
    let receiver = Receiver::start().await;
    let daemon = daemon_with(&receiver, |text| text, None).await;
    let database = daemon.dir.path().join("switchboard.db");
    // Another process holding the database's write lock, as a backup tool or a stuck
    // migration would.
    let holder = rusqlite::Connection::open(&database).unwrap();
    holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let http = reqwest::Client::new();
    let refused = eventually("/readyz to say not ready", || async {
        let response = http.get(daemon.url("/readyz")).send().await.ok()?;
        (response.status() == StatusCode::SERVICE_UNAVAILABLE).then_some(response.json::<Value>().await.ok()?)
    })
    .await;
    assert_eq!(refused["error"]["code"], "storage_unavailable", "{refused}");
    let why = refused["error"]["message"].as_str().unwrap();
    assert!(why.contains("locked") || why.contains("busy"), "{why}");
    holder.execute_batch("ROLLBACK").unwrap();
    eventually("/readyz to say ready again", || async {
        let response = http.get(daemon.url("/readyz")).send().await.ok()?;
        (response.status() == StatusCode::OK).then_some(())
    })
    .await;
    let (status, _) = daemon.post_signed(&customer_message("after", "ada", "Hello")).await;
    assert_eq!(status, StatusCode::ACCEPTED);
}
