//! The email channel end to end: a private Dovecot holds the support mailbox and the
//! customers' mailboxes, a real SMTP server relays the daemon's mail into them, and
//! everything is checked through the daemon's API and the customer's own mailbox.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use switchboard_connector_email::{Limits, ParsedMail, parse};

use crate::harness::{Daemon, config_with_inbox, eventually, message_by_id, with_update_events};
use switchboard_test_mailservers::{
    CUSTOMER, Dovecot, OTHER, SUPPORT, SmtpRelay, TestCa, email_inbox, mail, password_file, plain_servers,
};

/// The test config around the inbox `mail` on these servers (inline tables).
fn email_config(dir: &std::path::Path, imap: &str, smtp: &str) -> String {
    config_with_inbox(dir, &email_inbox(dir, "mail", imap, smtp))
}

/// Dovecot, the SMTP relay into it, and the daemon reading `support@test.local`.
struct Desk {
    /// `None` only while a test has it stopped.
    daemon: Option<Daemon>,
    relay: SmtpRelay,
    dovecot: Dovecot,
    token: String,
}

impl Desk {
    async fn start() -> Desk {
        let dovecot = Dovecot::start().await;
        let relay = SmtpRelay::start(&dovecot).await;
        Desk::open(dovecot, relay).await
    }

    /// The daemon on servers that may already hold mail.
    async fn open(dovecot: Dovecot, relay: SmtpRelay) -> Desk {
        Desk::open_with(dovecot, relay, plain_servers).await
    }

    /// `servers` gives the `imap` and `smtp` tables for the daemon's temp dir.
    async fn open_with(
        dovecot: Dovecot,
        relay: SmtpRelay,
        servers: impl FnOnce(&std::path::Path, &Dovecot, &SmtpRelay) -> (String, String),
    ) -> Desk {
        Desk::open_configured(dovecot, relay, servers, |config| config).await
    }

    /// New servers and the daemon on the test config changed by `edit`.
    async fn start_with(edit: impl FnOnce(String) -> String) -> Desk {
        let dovecot = Dovecot::start().await;
        let relay = SmtpRelay::start(&dovecot).await;
        Desk::open_configured(dovecot, relay, plain_servers, edit).await
    }

    /// [`Desk::open_with`], with the config changed by `edit` before the daemon reads it.
    async fn open_configured(
        dovecot: Dovecot,
        relay: SmtpRelay,
        servers: impl FnOnce(&std::path::Path, &Dovecot, &SmtpRelay) -> (String, String),
        edit: impl FnOnce(String) -> String,
    ) -> Desk {
        let dir = tempfile::tempdir().unwrap();
        let (imap, smtp) = servers(dir.path(), &dovecot, &relay);
        std::fs::write(
            dir.path().join("switchboard.toml"),
            edit(email_config(dir.path(), &imap, &smtp)),
        )
        .unwrap();
        let daemon = Daemon::start_in(dir).await;
        let token = daemon.agent("sam", "support", "admin");
        let desk = Desk {
            daemon: Some(daemon),
            relay,
            dovecot,
            token,
        };
        // The reader is logged in (and idling) before a test delivers anything.
        eventually("the daemon's IMAP session", || async {
            (desk.dovecot.sessions(SUPPORT) > 0).then_some(())
        })
        .await;
        desk
    }

    fn daemon(&self) -> &Daemon {
        self.daemon.as_ref().expect("the daemon is running")
    }

    async fn conversations(&self) -> Vec<Value> {
        let page = self.daemon().get("/conversations?limit=100", &self.token).await;
        let mut conversations = page["conversations"].as_array().unwrap().clone();
        conversations.sort_by_key(|c| c["id"].as_i64());
        conversations
    }

    async fn detail(&self, id: i64) -> Value {
        self.daemon().get(&format!("/conversations/{id}"), &self.token).await
    }

    /// Waits until `count` customer messages are stored, and returns every conversation.
    async fn wait_for_messages(&self, count: usize) -> Vec<Value> {
        eventually(&format!("{count} inbound messages"), || async {
            let conversations = self.conversations().await;
            let mut inbound = 0;
            for conversation in &conversations {
                let detail = self.detail(conversation["id"].as_i64().unwrap()).await;
                inbound += inbound_messages(&detail).len();
            }
            assert!(
                inbound <= count,
                "more inbound messages than delivered: {inbound} > {count}"
            );
            (inbound == count).then_some(conversations)
        })
        .await
    }

    /// Waits until `user`'s mailbox holds `count` mails and returns them parsed.
    async fn mailbox(&self, user: &str, count: usize) -> Vec<ParsedMail> {
        eventually(&format!("{count} mails in {user}'s mailbox"), || async {
            let mails = self.dovecot.messages(user).await;
            (mails.len() >= count).then(|| {
                mails
                    .iter()
                    .map(|raw| parse(raw, Limits::default()).unwrap())
                    .collect::<Vec<_>>()
            })
        })
        .await
    }

    /// A mail arrives in the support mailbox, as an MTA delivers it.
    async fn receive(&self, raw: &[u8]) {
        self.dovecot.deliver(SUPPORT, raw).await;
    }

    async fn reply(&self, conversation_id: i64, text: &str) -> i64 {
        self.reply_with(conversation_id, json!({"text": text})).await
    }

    async fn reply_with(&self, conversation_id: i64, body: Value) -> i64 {
        let (status, body) = self
            .daemon()
            .api(
                Method::POST,
                &format!("/conversations/{conversation_id}/messages"),
                &self.token,
                Some(body),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_i64().unwrap()
    }

    /// An agent resolves the conversation.
    async fn resolve(&self, conversation_id: i64) {
        let (status, body) = self
            .daemon()
            .api(
                Method::PATCH,
                &format!("/conversations/{conversation_id}"),
                &self.token,
                Some(json!({"status": "resolved"})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["status"], "resolved", "{body}");
    }

    /// Waits until `user`'s mailbox holds a mail whose subject names conversation `id`
    /// at its end and whose text says `says` (every mail of a conversation has the same
    /// subject); returns it parsed and raw.
    async fn mail_about(&self, user: &str, id: i64, says: &str) -> (ParsedMail, Vec<u8>) {
        let tag = format!("[#{id}]");
        eventually(&format!("a mail `… {tag}` saying `{says}` for {user}"), || async {
            self.dovecot.messages(user).await.into_iter().find_map(|raw| {
                let mail = parse(&raw, Limits::default()).unwrap();
                let subject = mail.subject.as_deref().unwrap_or_default();
                (subject.ends_with(&tag) && mail.text.contains(says)).then_some((mail, raw))
            })
        })
        .await
    }
}

fn inbound_messages(detail: &Value) -> Vec<Value> {
    detail["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["direction"] == "inbound")
        .cloned()
        .collect()
}

fn outbound_messages(detail: &Value) -> Vec<Value> {
    detail["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["direction"] == "outbound")
        .cloned()
        .collect()
}

fn id_of(mail: &ParsedMail) -> String {
    mail.message_id.clone().expect("our mail has a Message-ID")
}

/// The test config, also telling customers of a resolution and asking them for a score.
fn with_resolution_updates(config: String) -> String {
    with_update_events(&config, &["received", "greeting", "resolved", "csat"])
}

/// [`with_resolution_updates`] on a known port, with satisfaction links to it.
fn with_csat_links(config: String) -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let any_port = r#"listen = "127.0.0.1:0""#;
    assert!(config.contains(any_port), "the test config listens elsewhere");
    let config = with_resolution_updates(config).replacen(any_port, &format!(r#"listen = "127.0.0.1:{port}""#), 1);
    format!("{config}\n[csat]\npublic_url = \"http://127.0.0.1:{port}\"\n")
}

/// A header of a raw mail, unfolded; the first when there are several.
fn header(raw: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(raw);
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    let mut found: Option<String> = None;
    for line in head.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            if let Some(value) = found.as_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
            continue;
        }
        if found.is_some() {
            break;
        }
        if let Some((key, value)) = line.split_once(':')
            && key.eq_ignore_ascii_case(name)
        {
            found = Some(value.trim().to_owned());
        }
    }
    found
}

/// The data of the conversation's events of one kind, oldest first.
fn events_of(detail: &Value, kind: &str) -> Vec<Value> {
    detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|event| event["kind"] == kind)
        .map(|event| event["data"].clone())
        .collect()
}

/// The satisfaction links in a mail's text, in the order written.
fn csat_links(text: &str, base: &str) -> Vec<String> {
    let prefix = format!("{base}/csat/");
    text.split_whitespace()
        .filter(|word| word.starts_with(&prefix))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn a_mail_becomes_a_routed_conversation_and_the_thread_survives_replies() {
    let desk = Desk::start().await;

    let delivered = Instant::now();
    desk.receive(&mail(
        &format!("Ada Lovelace <{CUSTOMER}>"),
        "Invoice 4411 charged twice",
        "first@client.test",
        &[],
        "Hello,\r\nmy card was charged twice for invoice 4411.\r\nAda",
    ))
    .await;
    let conversation = eventually("the mail to become a conversation", || async {
        desk.conversations().await.into_iter().next()
    })
    .await;
    let latency = delivered.elapsed();
    // IDLE: the server tells the reader at once; pollers (Chatwoot, Zammad) take 30-60 s.
    assert!(latency < Duration::from_secs(2), "took {latency:?}");
    assert_eq!(conversation["team"]["key"], "billing", "{conversation}");
    assert_eq!(conversation["channel"], "email");
    assert_eq!(conversation["subject"], "Invoice 4411 charged twice");
    assert_eq!(conversation["contact"]["email"], CUSTOMER);
    assert_eq!(conversation["contact"]["name"], "Ada Lovelace");
    let id = conversation["id"].as_i64().unwrap();
    let tag = format!("[#{id}]");

    // The acknowledgement, then the agent's reply, reach the customer's mailbox threaded
    // under her mail.
    let acknowledgement = &desk.mailbox(CUSTOMER, 1).await[0];
    assert!(
        acknowledgement.text.contains(&format!("#{id}")),
        "{}",
        acknowledgement.text
    );
    assert!(
        acknowledgement.automated.is_some(),
        "acknowledgements say Auto-Submitted"
    );
    assert_eq!(acknowledgement.in_reply_to, vec!["first@client.test".to_owned()]);
    desk.reply_with(
        id,
        json!({"text": "We refunded the second charge.", "attachments": [
            {"filename": "Gutschrift 4411.pdf", "content_type": "application/pdf", "data_base64": "JVBERi0xLjQ="}
        ]}),
    )
    .await;
    let reply = desk.mailbox(CUSTOMER, 2).await.pop().unwrap();
    assert_eq!(
        reply.subject.as_deref(),
        Some(format!("Re: Invoice 4411 charged twice {tag}").as_str())
    );
    assert_eq!(reply.in_reply_to, vec!["first@client.test".to_owned()]);
    assert_eq!(reply.references.first().map(String::as_str), Some("first@client.test"));
    assert!(
        reply.references.contains(&id_of(acknowledgement)),
        "{:?}",
        reply.references
    );
    let from = reply.from.as_ref().unwrap();
    assert_eq!(
        (from.address.as_str(), from.name.as_deref()),
        (SUPPORT, Some("Test Support"))
    );
    assert!(reply.text.contains("We refunded the second charge."));
    assert!(
        reply
            .html
            .as_deref()
            .unwrap()
            .contains("We refunded the second charge.")
    );
    let files: Vec<(&str, &[u8])> = reply
        .attachments
        .iter()
        .map(|a| (a.filename.as_str(), a.data.as_slice()))
        .collect();
    assert_eq!(files, vec![("Gutschrift 4411.pdf", &b"%PDF-1.4"[..])]);

    // The customer answers the reply: same conversation, the quote trimmed from the text.
    let references = format!("<first@client.test> <{}> <{}>", id_of(acknowledgement), id_of(&reply));
    desk.receive(&mail(
        CUSTOMER,
        &format!("Re: Invoice 4411 charged twice {tag}"),
        "second@client.test",
        &[
            ("In-Reply-To", &format!("<{}>", id_of(&reply))),
            ("References", &references),
        ],
        "Thank you, I see it.\r\n\r\nOn Tue, Test Support wrote:\r\n> We refunded the second charge.",
    ))
    .await;
    // Outlook: In-Reply-To points at a copy we never saw, no References, the tag kept.
    desk.receive(&mail(
        CUSTOMER,
        &format!("AW: Invoice 4411 charged twice {tag}"),
        "third@outlook.test",
        &[("In-Reply-To", "<AM0PR01MB0001@outlook.test>")],
        "One more thing about the invoice.",
    ))
    .await;
    // Answering our reply with a new subject: a new topic, a new conversation.
    desk.receive(&mail(
        CUSTOMER,
        "New delivery address",
        "fourth@client.test",
        &[("In-Reply-To", &format!("<{}>", id_of(&reply)))],
        "Please send my next order to Baker Street 221b.",
    ))
    .await;

    let conversations = desk.wait_for_messages(4).await;
    assert_eq!(conversations.len(), 2, "{conversations:#?}");
    let detail = desk.detail(id).await;
    let texts: Vec<String> = inbound_messages(&detail)
        .iter()
        .map(|m| m["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(texts.len(), 3, "{texts:?}");
    assert_eq!(texts[1], "Thank you, I see it.", "the quoted history is trimmed");
    let kept = &inbound_messages(&detail)[1]["details"];
    assert!(
        kept["full_text"]
            .as_str()
            .unwrap()
            .contains("> We refunded the second charge."),
        "the full text is kept: {kept}"
    );
    assert_eq!(kept["message_id"], "second@client.test");
    assert_eq!(texts[2], "One more thing about the invoice.");
    let new_topic = &conversations[1];
    assert_eq!(new_topic["subject"], "New delivery address");
    assert_eq!(new_topic["contact"]["email"], CUSTOMER);
}

#[tokio::test]
async fn replies_of_different_people_to_one_newsletter_stay_apart() {
    let desk = Desk::start().await;
    let newsletter = mail(
        "Shop News <news@shop.test>",
        "November news",
        "newsletter-11@shop.test",
        &[
            ("Precedence", "bulk"),
            ("List-Unsubscribe", "<mailto:unsubscribe@shop.test>"),
        ],
        "Our November offers.",
    );
    desk.receive(&newsletter).await;
    for (who, id) in [(CUSTOMER, "ada-1@client.test"), (OTHER, "bob-1@client.test")] {
        desk.receive(&mail(
            who,
            "Re: November news",
            id,
            &[
                ("In-Reply-To", "<newsletter-11@shop.test>"),
                ("References", "<newsletter-11@shop.test>"),
            ],
            &format!("A question from {who}."),
        ))
        .await;
    }
    // The same person again on the same subject: her own open conversation.
    desk.receive(&mail(
        CUSTOMER,
        "Re: November news",
        "ada-2@client.test",
        &[],
        "And another.",
    ))
    .await;

    let conversations = desk.wait_for_messages(4).await;
    let by_contact: Vec<(String, usize)> = {
        let mut rows = Vec::new();
        for conversation in &conversations {
            let detail = desk.detail(conversation["id"].as_i64().unwrap()).await;
            rows.push((
                conversation["contact"]["email"].as_str().unwrap().to_owned(),
                inbound_messages(&detail).len(),
            ));
        }
        rows
    };
    assert_eq!(
        by_contact,
        vec![
            ("news@shop.test".to_owned(), 1),
            (CUSTOMER.to_owned(), 2),
            (OTHER.to_owned(), 1)
        ]
    );
    // The newsletter is bulk mail: stored, never acknowledged.
    let newsletter_detail = desk.detail(conversations[0]["id"].as_i64().unwrap()).await;
    assert!(
        outbound_messages(&newsletter_detail).is_empty(),
        "{newsletter_detail:#}"
    );
}

#[tokio::test]
async fn auto_replies_and_bounces_get_no_acknowledgement() {
    let desk = Desk::start().await;
    desk.receive(&mail(
        CUSTOMER,
        "Broken login",
        "login-1@client.test",
        &[],
        "I cannot log in.",
    ))
    .await;
    let id = desk.wait_for_messages(1).await[0]["id"].as_i64().unwrap();
    let acknowledgement = desk.mailbox(CUSTOMER, 1).await.remove(0);

    // Her out-of-office answers our acknowledgement; a stranger's vacation notice opens
    // its own conversation; neither is acknowledged.
    desk.receive(&mail(
        CUSTOMER,
        "Automatic reply: Broken login",
        "ooo-1@client.test",
        &[
            ("Auto-Submitted", "auto-replied"),
            ("In-Reply-To", &format!("<{}>", id_of(&acknowledgement))),
        ],
        "I am out of office until Monday.",
    ))
    .await;
    desk.receive(&mail(
        OTHER,
        "Out of office",
        "ooo-2@client.test",
        &[("X-Autoreply", "yes")],
        "Away.",
    ))
    .await;

    // A reply to an address the relay refuses fails with the server's words ...
    let reply_id = desk.reply(id, "Please try resetting your password.").await;
    let reply_mail = desk.mailbox(CUSTOMER, 2).await.pop().unwrap();
    // ... and a DSN for the reply (as a remote server would send after accepting it)
    // marks it failed and lands in the conversation, unacknowledged.
    let dsn = format!(
        "From: Mail Delivery System <MAILER-DAEMON@mx.client.test>\r\nTo: {SUPPORT}\r\n\
         Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <dsn-1@mx.client.test>\r\n\
         Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n\
         --b\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n\
         --b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.client.test\r\n\r\n\
         Final-Recipient: rfc822; {CUSTOMER}\r\nAction: failed\r\nStatus: 5.2.2\r\n\
         Diagnostic-Code: smtp; 552 5.2.2 mailbox full\r\n\r\n\
         --b\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: {SUPPORT}\r\nTo: {CUSTOMER}\r\n\
         Message-ID: <{}>\r\nSubject: Re: Broken login [#{id}]\r\n\r\n--b--\r\n",
        id_of(&reply_mail)
    );
    desk.receive(dsn.as_bytes()).await;

    let failed = desk
        .daemon()
        .delivery_reaches(&desk.token, id, reply_id, "failed")
        .await;
    assert!(
        failed["delivery"]["last_error"]
            .as_str()
            .unwrap()
            .contains("mailbox full"),
        "{failed}"
    );
    let conversations = desk.wait_for_messages(4).await;
    assert_eq!(conversations.len(), 2, "{conversations:#?}");
    let detail = desk.detail(id).await;
    assert_eq!(inbound_messages(&detail).len(), 3, "message, out-of-office, bounce");
    assert_eq!(
        outbound_messages(&detail).len(),
        2,
        "the acknowledgement and the reply, nothing else"
    );
    assert!(
        detail["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "delivery.failed" && e["data"]["bounce"] == true),
        "{detail:#}"
    );
    let stranger = desk.detail(conversations[1]["id"].as_i64().unwrap()).await;
    assert!(outbound_messages(&stranger).is_empty(), "{stranger:#}");
    // Only the acknowledgement and the reply ever left.
    assert_eq!(desk.relay.sent().len(), 2);
}

#[tokio::test]
async fn a_dropped_connection_and_a_restart_lose_and_duplicate_nothing() {
    let mut desk = Desk::start().await;
    let numbered = |n: usize| {
        mail(
            &format!("Sender {n} <sender{n}@client.test>"),
            &format!("Question {n}"),
            &format!("q{n}@client.test"),
            &[],
            &format!("Question number {n}."),
        )
    };
    for n in 0..10 {
        desk.receive(&numbered(n)).await;
    }
    desk.wait_for_messages(10).await;

    // Drop the IMAP session while more mail arrives: the reader reconnects and resumes.
    assert!(desk.dovecot.kick(SUPPORT), "the daemon had an IMAP session to kick");
    for n in 10..20 {
        desk.receive(&numbered(n)).await;
    }
    desk.wait_for_messages(20).await;

    // Stop the daemon, deliver while it is down, start it again on the same database.
    let (dir, exit) = desk.daemon.take().unwrap().stop();
    assert!(exit.success(), "{exit}");
    for n in 20..30 {
        desk.receive(&numbered(n)).await;
    }
    desk.daemon = Some(Daemon::start_in(dir).await);
    let conversations = desk.wait_for_messages(30).await;
    assert_eq!(conversations.len(), 30);
    // A last mail, read after everything before it in UID order: once it is in, no
    // duplicate of an earlier one can still be on its way.
    desk.receive(&numbered(30)).await;
    let conversations = desk.wait_for_messages(31).await;
    let mut subjects: Vec<String> = conversations
        .iter()
        .map(|c| c["subject"].as_str().unwrap().to_owned())
        .collect();
    subjects.sort();
    subjects.dedup();
    assert_eq!(subjects.len(), 31, "every mail once");
    let snapshot = desk.daemon().snapshot().await;
    let cursor = &snapshot["channel_cursors"];
    assert_eq!(cursor.len(), 1, "{cursor:?}");
    assert!(cursor[0].contains(":31'"), "the cursor stands after UID 31: {cursor:?}");
}

/// The value of the one sample `series` of the daemon's `/metrics`, as a number.
async fn metric(daemon: &Daemon, series: &str) -> f64 {
    let metrics = reqwest::get(daemon.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no `{series}` in:\n{metrics}"))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn the_mailbox_reader_shows_on_metrics_connected_when_it_last_looked_and_its_ingest_time() {
    let desk = Desk::start().await;
    let daemon = desk.daemon();
    let connected = "switchboard_reader_connected{inbox=\"mail\",channel=\"email\"}";
    let polled = "switchboard_reader_last_poll_timestamp_seconds{inbox=\"mail\",channel=\"email\"}";
    let ingested = "switchboard_ingest_seconds_count{channel=\"email\"}";
    let first_look = eventually("the reader's first look at the folder", || async {
        let at = metric(daemon, polled).await;
        (at > 0.0).then_some(at)
    })
    .await;
    assert_eq!(metric(daemon, connected).await, 1.0);
    assert_eq!(metric(daemon, ingested).await, 0.0);

    // IDLE wakes the reader for the new mail: it looks again, and stores it.
    desk.receive(&mail(
        "Ada <ada@client.test>",
        "Where is my parcel?",
        "parcel@client.test",
        &[],
        "It has been a week.",
    ))
    .await;
    eventually("the mail's ingest to be timed", || async {
        (metric(daemon, ingested).await == 1.0).then_some(())
    })
    .await;
    assert!(metric(daemon, polled).await > first_look);
    assert_eq!(
        metric(
            daemon,
            "switchboard_messages_received_total{inbox=\"mail\",channel=\"email\"}"
        )
        .await,
        1.0
    );
    assert_eq!(metric(daemon, connected).await, 1.0);
}

#[tokio::test]
async fn a_reply_waits_out_an_smtp_outage_and_is_delivered_once() {
    let mut desk = Desk::start().await;
    desk.relay.stop().await;
    desk.receive(&mail(
        CUSTOMER,
        "Where is my parcel?",
        "parcel-1@client.test",
        &[],
        "It is late.",
    ))
    .await;
    let id = desk.wait_for_messages(1).await[0]["id"].as_i64().unwrap();
    let reply_id = desk.reply(id, "It left our warehouse today.").await;
    // Both the acknowledgement and the reply are retried while the server is down.
    let detail = eventually("a failed attempt on record", || async {
        let detail = desk.detail(id).await;
        let acknowledgement = outbound_messages(&detail).into_iter().next()?;
        (acknowledgement["delivery"]["attempts"].as_i64()? >= 2).then_some(acknowledgement)
    })
    .await;
    let status = detail["delivery"]["status"].as_str().unwrap();
    assert!(
        matches!(status, "scheduled" | "in_flight"),
        "retried, not failed: {detail}"
    );
    assert!(
        detail["delivery"]["last_error"].as_str().unwrap().contains("SMTP"),
        "{detail}"
    );

    desk.relay.restart().await;
    desk.daemon().delivery_reaches(&desk.token, id, reply_id, "sent").await;
    let mails = desk.mailbox(CUSTOMER, 2).await;
    let replies = mails
        .iter()
        .filter(|m| m.text.contains("It left our warehouse today."))
        .count();
    assert_eq!(replies, 1, "the reply arrives once");
    assert_eq!(desk.relay.sent().len(), 2, "acknowledgement and reply, once each");
}

#[tokio::test]
async fn a_refused_recipient_fails_with_the_servers_reason() {
    let desk = Desk::start().await;
    desk.receive(&mail("nobody@reject.test", "Hello", "hello-1@reject.test", &[], "Hi."))
        .await;
    let id = desk.wait_for_messages(1).await[0]["id"].as_i64().unwrap();
    let detail = desk.detail(id).await;
    let acknowledgement = outbound_messages(&detail)[0]["id"].as_i64().unwrap();
    let failed = desk
        .daemon()
        .delivery_reaches(&desk.token, id, acknowledgement, "failed")
        .await;
    let error = failed["delivery"]["last_error"].as_str().unwrap();
    assert!(error.contains("550"), "{error}");
    assert_eq!(failed["delivery"]["attempts"], 1, "a 5xx is not retried");
    assert!(message_by_id(&desk.detail(id).await, acknowledgement).is_some());
}

#[tokio::test]
async fn the_first_start_imports_unread_mail_of_the_backfill_window() {
    let dovecot = Dovecot::start().await;
    let relay = SmtpRelay::start(&dovecot).await;
    for n in 1..=3 {
        dovecot
            .deliver(
                SUPPORT,
                &mail(
                    CUSTOMER,
                    &format!("Waiting {n}"),
                    &format!("waiting-{n}@client.test"),
                    &[],
                    "Hello?",
                ),
            )
            .await;
    }
    // A colleague already read the second one in the mailbox.
    let mut session = dovecot.imap(SUPPORT).await;
    session.select("INBOX").await.unwrap();
    let stored: Vec<_> =
        futures_util::TryStreamExt::try_collect(session.uid_store("2", "+FLAGS (\\Seen)").await.unwrap())
            .await
            .unwrap();
    assert_eq!(stored.len(), 1);
    session.logout().await.unwrap();

    let desk = Desk::open(dovecot, relay).await;
    let conversations = desk.wait_for_messages(2).await;
    let subjects: Vec<&str> = conversations.iter().map(|c| c["subject"].as_str().unwrap()).collect();
    assert_eq!(subjects, vec!["Waiting 1", "Waiting 3"], "unread mail only");
    let log = std::fs::read_to_string(desk.daemon().dir.path().join("daemon.log")).unwrap();
    assert!(log.contains("backfill started") && log.contains("mails=2"), "{log}");
    assert!(log.contains("done=2 of=2"), "progress is logged: {log}");

    // After the backfill the reader is live: new mail, read or not, comes in.
    desk.receive(&mail(CUSTOMER, "Waiting 4", "waiting-4@client.test", &[], "Hello?"))
        .await;
    let conversations = desk.wait_for_messages(3).await;
    assert_eq!(conversations.last().unwrap()["subject"], "Waiting 4");
    // The mailbox is as people left it: importing marks nothing read.
    let mut session = desk.dovecot.imap(SUPPORT).await;
    session.select("INBOX").await.unwrap();
    let mut unread: Vec<u32> = session.uid_search("UNSEEN").await.unwrap().into_iter().collect();
    unread.sort_unstable();
    assert_eq!(unread, vec![1, 3, 4]);
}

#[tokio::test]
async fn imap_over_tls_and_smtp_with_starttls_and_auth_check_the_servers_certificates() {
    let ca = TestCa::new();
    let dovecot = Dovecot::start_with_tls(&ca).await;
    let relay = SmtpRelay::start_with_tls(&dovecot, &ca).await;
    let ca_file = ca.ca_path();
    let desk = Desk::open_with(dovecot, relay, |dir, dovecot, relay| {
        (
            format!(
                r#"{{ host = "localhost", port = {}, security = "tls", password_file = "{}", ca_file = "{}" }}"#,
                dovecot.imaps_port(),
                password_file(dir).display(),
                ca_file.display()
            ),
            format!(
                r#"{{ host = "localhost", port = {}, security = "starttls", password_file = "{}", ca_file = "{}" }}"#,
                relay.port(),
                password_file(dir).display(),
                ca_file.display()
            ),
        )
    })
    .await;
    desk.receive(&mail(CUSTOMER, "Over TLS", "tls-1@client.test", &[], "Secure hello."))
        .await;
    desk.wait_for_messages(1).await;
    // The acknowledgement left over STARTTLS and AUTH (the relay refuses MAIL before both).
    let acknowledgement = desk.mailbox(CUSTOMER, 1).await.remove(0);
    assert_eq!(acknowledgement.in_reply_to, vec!["tls-1@client.test".to_owned()]);
    assert!(
        desk.dovecot
            .log()
            .lines()
            .any(|line| line.contains("Login: user=<support@test.local>") && line.contains("TLS")),
        "the daemon logged in over TLS:\n{}",
        desk.dovecot.log()
    );

    // Without the private CA the same server is not trusted: no login, nothing read.
    let dir = tempfile::tempdir().unwrap();
    let imap = format!(
        r#"{{ host = "localhost", port = {}, security = "tls", password_file = "{}" }}"#,
        desk.dovecot.imaps_port(),
        password_file(dir.path()).display()
    );
    let smtp = r#"{ host = "localhost", port = 1, security = "tls" }"#;
    std::fs::write(
        dir.path().join("switchboard.toml"),
        email_config(dir.path(), &imap, smtp),
    )
    .unwrap();
    let untrusting = Daemon::start_in(dir).await;
    let log_path = untrusting.dir.path().join("daemon.log");
    eventually("the daemon to refuse the certificate", || async {
        let log = std::fs::read_to_string(&log_path).ok()?;
        log.contains("UnknownIssuer").then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_server_without_idle_is_polled() {
    let dovecot = Dovecot::start_without_idle().await;
    let relay = SmtpRelay::start(&dovecot).await;
    let desk = Desk::open(dovecot, relay).await;
    let log_path = desk.daemon().dir.path().join("daemon.log");
    // The reader logs what the server offers once it has logged in, which may be after
    // the daemon answers its first request.
    eventually("the reader to log that the server has no IDLE", || async {
        let log = std::fs::read_to_string(&log_path).ok()?;
        log.contains("idle=false").then_some(())
    })
    .await;
    desk.receive(&mail(CUSTOMER, "Polled", "polled-1@client.test", &[], "Anyone?"))
        .await;
    let delivered = Instant::now();
    desk.wait_for_messages(1).await;
    let latency = delivered.elapsed();
    assert!(
        latency < Duration::from_secs(3),
        "one poll interval (1 s) and a fetch: {latency:?}"
    );
}

#[tokio::test]
async fn a_resolved_mail_conversation_takes_a_score_by_reply_or_link_and_another_reply_reopens_it() {
    let desk = Desk::start_with(with_csat_links).await;
    let base = desk.daemon().base.clone();
    for (subject, message_id) in [
        ("Parcel 5512 is late", "late-1@client.test"),
        ("Wrong size delivered", "size-1@client.test"),
        ("The app crashes on login", "crash-1@client.test"),
    ] {
        desk.receive(&mail(CUSTOMER, subject, message_id, &[], "Please help."))
            .await;
    }
    let conversations = desk.wait_for_messages(3).await;
    let ids: Vec<i64> = conversations.iter().map(|c| c["id"].as_i64().unwrap()).collect();
    let (late, size, crash) = (ids[0], ids[1], ids[2]);
    assert_eq!(conversations[0]["subject"], "Parcel 5512 is late");
    for id in &ids {
        desk.resolve(*id).await;
    }

    // The resolution, then the question: tagged, in HTML too, marked automatic, with a
    // way to stop them and five links to the daemon.
    let (resolved, resolved_raw) = desk.mail_about(CUSTOMER, late, "as resolved").await;
    let (question, question_raw) = desk.mail_about(CUSTOMER, late, "How satisfied are you").await;
    for mail in [&resolved, &question] {
        // In the customer's thread, not under the templates' own subjects.
        assert_eq!(
            mail.subject.as_deref(),
            Some(format!("Re: Parcel 5512 is late [#{late}]").as_str())
        );
    }
    let mailbox = desk.dovecot.messages(CUSTOMER).await;
    let position = |raw: &Vec<u8>| mailbox.iter().position(|mail| mail == raw).unwrap();
    assert!(
        position(&resolved_raw) < position(&question_raw),
        "the resolution comes first"
    );
    assert!(resolved.text.contains(&format!("#{late}")), "{}", resolved.text);
    for raw in [&resolved_raw, &question_raw] {
        assert_eq!(
            header(raw, "List-Unsubscribe").as_deref(),
            Some("<mailto:support@test.local?subject=unsubscribe>")
        );
        assert_eq!(header(raw, "Auto-Submitted").as_deref(), Some("auto-replied"));
    }
    assert!(question.text.contains("reply with a digit"), "{}", question.text);
    let links = csat_links(&question.text, &base);
    assert_eq!(links.len(), 5, "{}", question.text);
    let link_token = links[0]
        .strip_prefix(&format!("{base}/csat/"))
        .and_then(|rest| rest.strip_suffix("?score=1"))
        .unwrap_or_else(|| panic!("unexpected link {}", links[0]));
    for (n, link) in links.iter().enumerate() {
        assert_eq!(link, &format!("{base}/csat/{link_token}?score={}", n + 1));
    }
    // The links in the HTML part, as a mail client reads the attribute.
    let html = question.html.as_deref().expect("an HTML part").replace("&#x2f;", "/");
    for link in &links {
        assert!(html.contains(&format!("href=\"{link}\"")), "{html}");
    }

    // A digit and a comment, answering the question: recorded, still resolved.
    desk.receive(&mail(
        CUSTOMER,
        &format!("Re: {}", question.subject.as_deref().unwrap()),
        "late-2@client.test",
        &[
            ("In-Reply-To", &format!("<{}>", id_of(&question))),
            ("References", &format!("<late-1@client.test> <{}>", id_of(&question))),
        ],
        "5\r\nVery quick, thanks\r\n\r\nOn Tue, Test Support wrote:\r\n> How satisfied are you with our help?",
    ))
    .await;
    let detail = eventually("the score by mail", || async {
        let detail = desk.detail(late).await;
        (!detail["csat"]["score"].is_null()).then_some(detail)
    })
    .await;
    assert_eq!(detail["csat"]["score"], 5, "{detail:#}");
    assert_eq!(detail["csat"]["comment"], "Very quick, thanks");
    assert!(!detail["csat"]["answered_at"].is_null());
    assert_eq!(detail["status"], "resolved", "a score does not reopen");
    assert_eq!(
        events_of(&detail, "csat.answered"),
        vec![json!({"score": 5, "comment": "Very quick, thanks", "via": "email"})]
    );
    assert_eq!(
        outbound_messages(&detail).len(),
        3,
        "acknowledgement, resolution, question; nothing answers the score"
    );

    // The second conversation's link: opening it (as a mail scanner does) records
    // nothing; the form it shows, sent, does.
    let (question, _) = desk.mail_about(CUSTOMER, size, "How satisfied are you").await;
    let links = csat_links(&question.text, &base);
    assert_ne!(
        links[1],
        format!("{base}/csat/{link_token}?score=2"),
        "a token per question"
    );
    let http = reqwest::Client::new();
    let page = http.get(&links[1]).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let page = page.text().await.unwrap();
    assert!(
        page.contains(r#"value="2" checked"#),
        "the chosen score is preselected: {page}"
    );
    let detail = desk.detail(size).await;
    assert_eq!(detail["csat"]["score"], Value::Null, "{detail:#}");
    assert!(events_of(&detail, "csat.answered").is_empty(), "{detail:#}");
    let action = links[1].split_once('?').unwrap().0;
    let sent = http
        .post(action)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("score=2&comment=Two+weeks+for+an+exchange")
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), StatusCode::OK);
    let thanks = sent.text().await.unwrap();
    assert!(thanks.contains("rating of 2"), "{thanks}");
    let detail = desk.detail(size).await;
    assert_eq!(detail["csat"]["score"], 2, "{detail:#}");
    assert_eq!(detail["csat"]["comment"], "Two weeks for an exchange");
    assert_eq!(detail["status"], "resolved");
    assert_eq!(
        events_of(&detail, "csat.answered"),
        vec![json!({"score": 2, "comment": "Two weeks for an exchange", "via": "email_link"})]
    );

    // A reply that is not a score reopens the third.
    let (question, _) = desk.mail_about(CUSTOMER, crash, "How satisfied are you").await;
    desk.receive(&mail(
        CUSTOMER,
        &format!("Re: {}", question.subject.as_deref().unwrap()),
        "crash-2@client.test",
        &[("In-Reply-To", &format!("<{}>", id_of(&question)))],
        "It broke again",
    ))
    .await;
    let detail = eventually("the third conversation to reopen", || async {
        let detail = desk.detail(crash).await;
        (detail["status"] == "open").then_some(detail)
    })
    .await;
    assert_eq!(
        events_of(&detail, "conversation.status_changed").last(),
        Some(&json!({"from": "resolved", "to": "open", "reason": "customer_message"}))
    );
    assert_eq!(inbound_messages(&detail).last().unwrap()["text"], "It broke again");
    assert_eq!(detail["csat"]["score"], Value::Null);
    assert_eq!(desk.conversations().await.len(), 3, "no new conversation");
}

#[tokio::test]
async fn unsubscribe_stops_status_mails_but_not_agent_replies() {
    let desk = Desk::start_with(with_resolution_updates).await;
    desk.receive(&mail(
        CUSTOMER,
        "Broken login",
        "login-1@client.test",
        &[],
        "I cannot log in.",
    ))
    .await;
    let id = desk.wait_for_messages(1).await[0]["id"].as_i64().unwrap();
    let acknowledgement = desk.mailbox(CUSTOMER, 1).await.remove(0);

    // What a client's Unsubscribe button sends, per our List-Unsubscribe.
    desk.receive(&mail(
        CUSTOMER,
        "unsubscribe",
        "unsubscribe-1@client.test",
        &[],
        "This is an unsubscribe request.",
    ))
    .await;
    let detail = eventually("the opt-out to be recorded", || async {
        let detail = desk.detail(id).await;
        (!detail["contact"]["updates_stopped_at"].is_null()).then_some(detail)
    })
    .await;
    // The request joins her conversation (no new case for the queue), on record once.
    let conversations = desk.wait_for_messages(2).await;
    assert_eq!(conversations.len(), 1, "{conversations:#?}");
    let mut stopped = Vec::new();
    for conversation in &conversations {
        let detail = desk.detail(conversation["id"].as_i64().unwrap()).await;
        stopped.extend(events_of(&detail, "contact.updates_stopped"));
    }
    assert_eq!(stopped.len(), 1, "{conversations:#?}");
    assert_eq!(detail["status"], "open");

    // Resolved: on record, nothing queued for the customer ...
    desk.resolve(id).await;
    let detail = desk.detail(id).await;
    assert!(
        events_of(&detail, "conversation.status_changed")
            .iter()
            .any(|data| data["to"] == "resolved"),
        "{detail:#}"
    );
    // ... while an agent's reply still reaches her, as a reply, not an update.
    let reply_id = desk.reply(id, "Your password reset link is on its way.").await;
    desk.daemon().delivery_reaches(&desk.token, id, reply_id, "sent").await;
    let mailbox = desk.mailbox(CUSTOMER, 2).await;
    let subjects: Vec<&str> = mailbox.iter().map(|m| m.subject.as_deref().unwrap()).collect();
    assert_eq!(
        mailbox.len(),
        2,
        "the acknowledgement and the reply, no update: {subjects:?}"
    );
    assert_eq!(id_of(&mailbox[0]), id_of(&acknowledgement));
    assert!(mailbox[1].text.contains("Your password reset link is on its way."));
    let raw = desk.dovecot.messages(CUSTOMER).await.pop().unwrap();
    assert_eq!(header(&raw, "List-Unsubscribe"), None, "a reply is no status update");
    let detail = desk.detail(id).await;
    let updates = outbound_messages(&detail)
        .iter()
        .filter(|m| m["kind"] == "status_update")
        .count();
    assert_eq!(updates, 1, "the acknowledgement only: {detail:#}");
    assert_eq!(detail["csat"], Value::Null, "no question was asked");
    assert_eq!(desk.relay.sent().len(), 2);
}

/// A real-world mail of `tests/fixtures/email` (origins in its SOURCES.md).
fn fixture(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/email")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

/// A mail without `From`, as some scripts and broken gateways send.
fn mail_without_from(subject: &str, message_id: &str, extra: &str, body: &str) -> Vec<u8> {
    format!(
        "To: {SUPPORT}\r\nSubject: {subject}\r\nMessage-ID: <{message_id}>\r\n{extra}\
         Date: Tue, 24 Nov 2026 10:00:00 +0000\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

/// `desk` has sent nothing but the acknowledgement of a customer's mail sent now: once
/// that one arrived, anything queued before it would have left first or beside it
/// (nothing to wait for without a sleep).
async fn only_the_next_acknowledgement_leaves(desk: &Desk, before: usize) {
    desk.receive(&mail(
        &format!("Ada <{CUSTOMER}>"),
        "Marker",
        &format!("marker-{before}@client.test"),
        &[],
        "Hello.",
    ))
    .await;
    desk.mailbox(CUSTOMER, 1).await;
    let sent = desk.relay.sent();
    assert_eq!(sent.len(), before + 1, "only the marker's acknowledgement left");
    let last = parse(sent.last().unwrap(), Limits::default()).unwrap();
    assert!(
        last.subject.as_deref().unwrap_or_default().starts_with("Re: Marker"),
        "{:?}",
        last.subject
    );
}

#[tokio::test]
async fn a_mail_without_from_is_stored_for_agents_and_never_acknowledged() {
    let desk = Desk::start().await;
    desk.dovecot
        .deliver_from(
            "bob@client.test",
            SUPPORT,
            &mail_without_from("Order 77 missing", "nofrom-1@client.test", "", "Where is order 77?"),
        )
        .await;
    let conversations = desk.wait_for_messages(1).await;
    let conversation = &conversations[0];
    // The envelope sender names the contact, so an agent can answer; but the desk
    // does not write on its own to an address the mail did not claim as its author.
    assert_eq!(
        conversation["contact"]["external_id"], "bob@client.test",
        "{conversation}"
    );
    assert_eq!(conversation["contact"]["email"], Value::Null, "{conversation}");
    let id = conversation["id"].as_i64().unwrap();
    let detail = desk.detail(id).await;
    assert_eq!(inbound_messages(&detail)[0]["text"], "Where is order 77?");
    assert!(outbound_messages(&detail).is_empty(), "no update queued: {detail:#}");
    only_the_next_acknowledgement_leaves(&desk, 0).await;
    assert!(outbound_messages(&desk.detail(id).await).is_empty());
}

#[tokio::test]
async fn mails_without_from_from_different_envelope_senders_stay_apart() {
    let desk = Desk::start().await;
    // Same subject, no threading headers: only the sender could tell them apart.
    let subject = "Delivery failed";
    desk.dovecot
        .deliver_from(
            "a@one.test",
            SUPPORT,
            &mail_without_from(subject, "nf-a@one.test", "", "From A."),
        )
        .await;
    desk.dovecot
        .deliver_from(
            "b@two.test",
            SUPPORT,
            &mail_without_from(subject, "nf-b@two.test", "", "From B."),
        )
        .await;
    // `Sender` names who sent it where the envelope is the null sender.
    desk.receive(&mail_without_from(
        subject,
        "nf-c@three.test",
        "Sender: <c@three.test>\r\n",
        "From C.",
    ))
    .await;
    // Nothing names these two: each is a conversation of its own.
    desk.receive(&mail_without_from(subject, "nf-d@four.test", "", "From D."))
        .await;
    desk.receive(&mail_without_from(subject, "nf-e@five.test", "", "From E."))
        .await;
    let conversations = desk.wait_for_messages(5).await;
    assert_eq!(conversations.len(), 5, "{conversations:#?}");
    let mut identities: Vec<String> = conversations
        .iter()
        .map(|c| c["contact"]["external_id"].as_str().unwrap().to_owned())
        .collect();
    identities.sort();
    assert_eq!(
        identities,
        vec![
            "a@one.test",
            "b@two.test",
            "c@three.test",
            "unknown:nf-d@four.test",
            "unknown:nf-e@five.test"
        ]
    );
    for conversation in &conversations {
        let detail = desk.detail(conversation["id"].as_i64().unwrap()).await;
        assert_eq!(inbound_messages(&detail).len(), 1, "{detail:#}");
        assert!(outbound_messages(&detail).is_empty(), "{detail:#}");
    }
    only_the_next_acknowledgement_leaves(&desk, 0).await;
}

#[tokio::test]
async fn an_auto_reply_without_in_reply_to_joins_the_senders_latest_conversation_unchanged() {
    let desk = Desk::start().await;
    // Kijitora's open case, then Ada's case that an agent resolves.
    desk.receive(&mail(
        "Kijitora <kijitora@example.org>",
        "Parcel 5512 is late",
        "late-1@example.org",
        &[],
        "Where is it?",
    ))
    .await;
    desk.receive(&mail(
        CUSTOMER,
        "Broken login",
        "login-1@client.test",
        &[],
        "I cannot log in.",
    ))
    .await;
    let conversations = desk.wait_for_messages(2).await;
    let (open, resolved) = (
        conversations[0]["id"].as_i64().unwrap(),
        conversations[1]["id"].as_i64().unwrap(),
    );
    desk.resolve(resolved).await;
    let clocks_before = [
        desk.detail(open).await["sla"].clone(),
        desk.detail(resolved).await["sla"].clone(),
    ];
    assert!(
        clocks_before[0].as_array().is_some_and(|clocks| !clocks.is_empty()),
        "an open case has clocks"
    );

    // Outlook's out-of-office (the real mail): "Automatic reply:" and
    // X-Auto-Response-Suppress, no In-Reply-To, a subject of its own.
    desk.receive(&fixture("ssm-rfc3834-04-automatic-reply-windows1252.eml"))
        .await;
    // An Italian one to the resolved case, marked by RFC 3834.
    desk.receive(&mail(
        CUSTOMER,
        "Risposta automatica: Ufficio chiuso",
        "ooo-it@client.test",
        &[("Auto-Submitted", "auto-replied")],
        "Sono fuori ufficio fino a lunedì.",
    ))
    .await;
    let conversations = desk.wait_for_messages(4).await;
    assert_eq!(conversations.len(), 2, "no new case: {conversations:#?}");
    for (id, status, clocks) in [
        (open, "open", &clocks_before[0]),
        (resolved, "resolved", &clocks_before[1]),
    ] {
        let detail = desk.detail(id).await;
        assert_eq!(inbound_messages(&detail).len(), 2, "{detail:#}");
        assert_eq!(detail["status"], status, "not reopened: {detail:#}");
        assert_eq!(&detail["sla"], clocks, "clocks untouched: {detail:#}");
        let reopened = events_of(&detail, "conversation.status_changed")
            .into_iter()
            .any(|event| event["to"] == "open");
        assert!(!reopened, "{detail:#}");
    }
    // Each case has its acknowledgement and nothing else (the resolved update is off in
    // this config): the auto-replies were stored in the same unit of work as anything
    // they would have queued.
    for id in [open, resolved] {
        let detail = desk.detail(id).await;
        assert_eq!(outbound_messages(&detail).len(), 1, "{detail:#}");
    }
}

#[tokio::test]
async fn an_auto_reply_to_our_mail_joins_that_case_whatever_its_subject() {
    let desk = Desk::start().await;
    desk.receive(&mail(
        CUSTOMER,
        "Broken login",
        "login-1@client.test",
        &[],
        "I cannot log in.",
    ))
    .await;
    let first = desk.wait_for_messages(1).await[0]["id"].as_i64().unwrap();
    let acknowledgement = desk.mailbox(CUSTOMER, 1).await.remove(0);
    // A newer case of hers: the latest, but not the one the notice answers.
    desk.receive(&mail(
        CUSTOMER,
        "Invoice 4411",
        "invoice-1@client.test",
        &[],
        "Charged twice.",
    ))
    .await;
    desk.wait_for_messages(2).await;
    desk.receive(&mail(
        CUSTOMER,
        "Out of Office",
        "ooo-1@client.test",
        &[
            ("X-Autoreply", "yes"),
            ("In-Reply-To", &format!("<{}>", id_of(&acknowledgement))),
        ],
        "I am away until Monday.",
    ))
    .await;
    let conversations = desk.wait_for_messages(3).await;
    assert_eq!(conversations.len(), 2, "{conversations:#?}");
    let detail = desk.detail(first).await;
    assert_eq!(inbound_messages(&detail).len(), 2, "{detail:#}");
    assert_eq!(inbound_messages(&detail)[1]["text"], "I am away until Monday.");
}

#[tokio::test]
async fn an_auto_reply_from_a_sender_without_a_case_is_filed_resolved_without_clocks() {
    let desk = Desk::start().await;
    // Real vacation notices with nothing of ours to join: RFC 3834's, and an Arabic one
    // whose In-Reply-To names mails we never sent.
    desk.receive(&fixture("ssm-rfc3834-01-auto-replied.eml")).await;
    desk.receive(&fixture("cw-non_utf_encoded_mail-arabic-autoreply.eml"))
        .await;
    // A German one known only by its subject.
    desk.receive(&mail(
        "Hans <hans@example.de>",
        "Abwesenheitsnotiz: Ihre Anfrage",
        "ooo-de@example.de",
        &[],
        "Ich bin bis 3. Januar nicht im Büro.",
    ))
    .await;
    let conversations = desk.wait_for_messages(3).await;
    assert_eq!(conversations.len(), 3, "{conversations:#?}");
    for conversation in &conversations {
        let detail = desk.detail(conversation["id"].as_i64().unwrap()).await;
        assert_eq!(detail["status"], "resolved", "never left open to breach: {detail:#}");
        assert_eq!(detail["sla"], json!([]), "no clocks: {detail:#}");
        assert_eq!(detail["assignee"], Value::Null, "{detail:#}");
        let filed = events_of(&detail, "conversation.status_changed");
        assert_eq!(
            filed,
            vec![json!({"from": "open", "to": "resolved", "reason": "auto_reply"})]
        );
        assert!(outbound_messages(&detail).is_empty(), "{detail:#}");
    }
    // A person's mail still opens a case with clocks, and is the only one answered.
    only_the_next_acknowledgement_leaves(&desk, 0).await;
    let ada = desk
        .conversations()
        .await
        .into_iter()
        .find(|c| c["subject"] == "Marker")
        .unwrap();
    let detail = desk.detail(ada["id"].as_i64().unwrap()).await;
    assert_eq!(detail["status"], "open");
    assert!(
        detail["sla"].as_array().is_some_and(|clocks| !clocks.is_empty()),
        "{detail:#}"
    );
}

#[tokio::test]
async fn status_updates_by_email_answer_the_customers_subject() {
    let desk = Desk::start_with(|config| {
        // The built-in English set has a subject of its own, and so does this Thai one:
        // neither may replace the customer's.
        let config = with_resolution_updates(config);
        format!(
            "{config}\n[updates.templates.received.th]\nsubject = \"เราได้รับข้อความของคุณแล้ว {{{{ conversation.reference }}}}\"\n\
             text = \"เราได้รับข้อความของคุณแล้ว {{{{ conversation.reference }}}}\"\n"
        )
    })
    .await;
    desk.receive(&mail(
        &format!("Ada <{CUSTOMER}>"),
        "AW: Lieferung 5512",
        "de-1@client.test",
        &[],
        "Where is my parcel?",
    ))
    .await;
    desk.receive(&mail(
        &format!("Somchai <{OTHER}>"),
        "สินค้ายังไม่มาถึง",
        "th-1@client.test",
        &[("Content-Language", "th")],
        "สินค้ายังไม่มาถึงครับ",
    ))
    .await;
    let conversations = desk.wait_for_messages(2).await;
    let ada = conversations
        .iter()
        .find(|c| c["contact"]["email"] == CUSTOMER)
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let somchai = conversations.iter().find(|c| c["contact"]["email"] == OTHER).unwrap()["id"]
        .as_i64()
        .unwrap();
    let acknowledgement = desk.mailbox(CUSTOMER, 1).await.remove(0);
    assert_eq!(
        acknowledgement.subject.as_deref(),
        Some(format!("Re: Lieferung 5512 [#{ada}]").as_str())
    );
    let thai = desk.mailbox(OTHER, 1).await.remove(0);
    assert_eq!(
        thai.subject.as_deref(),
        Some(format!("Re: สินค้ายังไม่มาถึง [#{somchai}]").as_str())
    );
    assert!(thai.text.contains("เราได้รับข้อความของคุณแล้ว"), "{}", thai.text);
    // The resolution and the satisfaction question keep the thread too.
    desk.resolve(ada).await;
    let mails = desk.mailbox(CUSTOMER, 3).await;
    for mail in &mails {
        assert_eq!(
            mail.subject.as_deref(),
            Some(format!("Re: Lieferung 5512 [#{ada}]").as_str()),
            "{}",
            mail.text
        );
        assert_eq!(mail.in_reply_to, vec!["de-1@client.test".to_owned()]);
    }
}
