//! The email channel passes the connector compliance suite: real mails (see
//! tests/fixtures/email/SOURCES.md) delivered into a private Dovecot and read by the
//! IMAP reader, whose cursor is its acknowledgement; and its sends through a real SMTP
//! relay that is there, then gone.

use std::sync::Arc;

use switchboard_connector_core::{BoxFuture, Channel, Connector, ReaderContext};
use switchboard_connector_email::{Email, EmailConfig};
use switchboard_test_compliance::{
    DEADLINE, Fixture, Inbound, RecordingSink, SendCase, Verdict, check_inbound, check_send_errors, outbound, stage,
};
use switchboard_test_mailservers::{CUSTOMER, SUPPORT, password_file};
use switchboard_test_mailservers::{Dovecot, PASSWORD, SmtpRelay};
use tokio_util::sync::CancellationToken;

/// Real customer mails: plain, quoted-printable, HTML only, with a photo.
const FIXTURES: &[&str] = &[
    "flk-quoted-printable.eml",
    "flk-bilingual-simple.eml",
    "cw-only_html.eml",
    "flk-iphone-jpeg-attachment.eml",
];

fn connector(dir: &std::path::Path, dovecot: &Dovecot, relay: &SmtpRelay) -> Arc<dyn Connector> {
    std::fs::write(password_file(dir), format!("{PASSWORD}\n")).unwrap();
    let config: EmailConfig = serde_json::from_value(serde_json::json!({
        "address": SUPPORT,
        "imap": {"host": "127.0.0.1", "port": dovecot.imap_port(), "security": "plain",
                 "password_file": password_file(dir).display().to_string()},
        "smtp": {"host": "127.0.0.1", "port": relay.port(), "security": "plain"},
        // Only mail that arrives while the reader runs: each delivery is its own.
        "backfill": "0s",
        "poll_interval": "1s",
    }))
    .unwrap();
    let settings = Email::validate(&config, "mail", &|_: &str| None).unwrap();
    Email::build(&settings, "mail").unwrap()
}

struct Mailbox {
    dovecot: Dovecot,
    connector: Arc<dyn Connector>,
}

impl Inbound for Mailbox {
    fn fixtures(&self) -> Vec<Fixture> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/email");
        FIXTURES
            .iter()
            .map(|name| Fixture::new(*name, std::fs::read(dir.join(name)).unwrap()))
            .collect()
    }

    /// Runs the reader until it has looked at the folder, delivers the mail, and waits
    /// until the cursor moved past it (acknowledged) or the sink refused it.
    fn deliver<'a>(&'a self, fixture: &'a Fixture, sink: &'a RecordingSink) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            let shutdown = CancellationToken::new();
            let reader = self.connector.reader().expect("an email inbox has a reader");
            let run = reader.run(ReaderContext {
                sink,
                cursors: sink,
                shutdown: shutdown.clone(),
            });
            let polls_before = sink.polls();
            let refused_before = sink.refused();
            let watch = async {
                let deadline = tokio::time::Instant::now() + DEADLINE;
                let tick = || async {
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "{}: the reader did not take it",
                        fixture.name
                    );
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                };
                // What the reader has seen before the mail arrives is its starting mark.
                while sink.polls() == polls_before {
                    tick().await;
                }
                let mark = sink.cursors();
                self.dovecot.deliver(SUPPORT, &fixture.bytes).await;
                loop {
                    if sink.cursors() != mark {
                        return true;
                    }
                    if sink.refused() > refused_before {
                        return sink.cursors() != mark;
                    }
                    tick().await;
                }
            };
            let acknowledged = tokio::select! {
                acknowledged = watch => acknowledged,
                () = run => panic!("the reader stopped by itself"),
            };
            shutdown.cancel();
            acknowledged
        })
    }
}

#[tokio::test]
async fn the_email_channel_normalizes_dedupes_and_acknowledges_only_after_commit() {
    let dir = tempfile::tempdir().unwrap();
    let dovecot = Dovecot::start().await;
    let relay = SmtpRelay::start(&dovecot).await;
    let connector = connector(dir.path(), &dovecot, &relay);
    check_inbound(&Mailbox { dovecot, connector }).await;
}

#[tokio::test]
async fn the_email_channel_classifies_its_send_errors() {
    let dir = tempfile::tempdir().unwrap();
    let dovecot = Dovecot::start().await;
    let relay = SmtpRelay::start(&dovecot).await;
    let connector = connector(dir.path(), &dovecot, &relay);
    let relay = tokio::sync::Mutex::new(relay);
    let message = |recipient: &str| outbound(recipient, "Your parcel left the warehouse.");
    check_send_errors(
        connector.sender(),
        vec![
            SendCase {
                name: "the relay takes it",
                stage: stage(|| {}),
                message: message(CUSTOMER),
                expect: Verdict::Sent,
            },
            SendCase {
                name: "the recipient is not an address",
                stage: stage(|| {}),
                message: message("not an address"),
                expect: Verdict::Permanent,
            },
            SendCase {
                name: "the relay is down",
                stage: Box::new(|| Box::pin(async { relay.lock().await.stop().await })),
                message: message(CUSTOMER),
                expect: Verdict::Transient,
            },
        ],
    )
    .await;
}
