//! The email channel passes the connector compliance suite: real mails (see
//! tests/fixtures/email/SOURCES.md) delivered into a private Dovecot and read by the
//! IMAP reader, whose cursor is its acknowledgement; and its sends through a real SMTP
//! relay that is there, then gone.

use std::sync::Arc;

use switchboard_connector_core::{BoxFuture, Channel, Connector};
use switchboard_connector_email::{Email, EmailConfig};
use switchboard_test_compliance::{
    Fixture, Inbound, RecordingSink, SendCase, Verdict, check_inbound, check_send_errors, outbound, stage, until,
    while_reading,
};
use switchboard_test_mailservers::{CUSTOMER, SUPPORT, password_file};
use switchboard_test_mailservers::{Dovecot, PASSWORD, SmtpRelay};

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
        Fixture::read(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/email"),
            FIXTURES,
        )
    }

    /// Runs the reader until it has looked at the folder, delivers the mail, and waits
    /// until the cursor moved past it (acknowledged) or the sink refused it.
    fn deliver<'a>(&'a self, fixture: &'a Fixture, sink: &'a RecordingSink) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            let reader = self.connector.reader().expect("an email inbox has a reader");
            let polls_before = sink.polls();
            let refused_before = sink.refused();
            let watch = async {
                // What the reader has seen before the mail arrives is its starting mark.
                until("the reader's first look", || {
                    (sink.polls() > polls_before).then_some(())
                })
                .await;
                let mark = sink.cursors();
                self.dovecot.deliver(SUPPORT, &fixture.bytes).await;
                // Acknowledged: the cursor moved past it. Given back: the sink refused it
                // and the cursor stays where it was.
                until(&format!("the reader to take {}", fixture.name), || {
                    (sink.cursors() != mark || sink.refused() > refused_before).then(|| sink.cursors() != mark)
                })
                .await
            };
            while_reading(reader, sink, watch).await
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
