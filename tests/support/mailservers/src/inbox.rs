//! The daemon's side of these servers: an email inbox of Switchboard's config that
//! reads [`SUPPORT`] on a [`Dovecot`] and sends through an [`SmtpRelay`], and a mail as a
//! customer's client writes it to that mailbox. Shared by the test crates that run the
//! daemon with an email inbox (tests/blackbox, tests/escalation).

use std::path::{Path, PathBuf};

use crate::{Dovecot, PASSWORD, SmtpRelay};

/// The mailbox a test's email inbox reads and sends from.
pub const SUPPORT: &str = "support@test.local";
/// The customer's mailbox, where the daemon's mail to them arrives.
pub const CUSTOMER: &str = "customer@test.local";
/// Another customer's mailbox.
pub const OTHER: &str = "other@test.local";

/// The file [`email_inbox`] writes the mailbox password to, in the daemon's `dir`: the
/// `password_file` of its server tables.
pub fn password_file(dir: &Path) -> PathBuf {
    dir.join("imap-password")
}

/// The `imap` and `smtp` tables (inline TOML) for `dovecot` and `relay`, plain on
/// loopback, the IMAP password in [`password_file`].
pub fn plain_servers(dir: &Path, dovecot: &Dovecot, relay: &SmtpRelay) -> (String, String) {
    (
        format!(
            r#"{{ host = "127.0.0.1", port = {}, security = "plain", password_file = "{}" }}"#,
            dovecot.imap_port(),
            password_file(dir).display()
        ),
        format!(
            r#"{{ host = "127.0.0.1", port = {}, security = "plain" }}"#,
            relay.port()
        ),
    )
}

/// The tables (TOML) of the email inbox `key` for [`SUPPORT`] on the servers `imap` and
/// `smtp` (inline tables, as [`plain_servers`] gives them); writes the password to
/// [`password_file`] in `dir`.
pub fn email_inbox(dir: &Path, key: &str, imap: &str, smtp: &str) -> String {
    std::fs::write(password_file(dir), format!("{PASSWORD}\n")).unwrap();
    format!(
        r#"
[inboxes.{key}]
name = "Support mail"

[inboxes.{key}.email]
address = "{SUPPORT}"
display_name = "Test Support"
imap = {imap}
smtp = {smtp}
# Used only where the server has no IDLE.
poll_interval = "1s"
"#
    )
}

/// A plain-text mail to [`SUPPORT`] as a customer's client writes it, with threading
/// headers such as `In-Reply-To` and `References`.
pub fn mail(from: &str, subject: &str, message_id: &str, threading: &[(&str, &str)], body: &str) -> Vec<u8> {
    let mut raw = format!(
        "From: {from}\r\nTo: Test Support <{SUPPORT}>\r\nSubject: {subject}\r\nMessage-ID: <{message_id}>\r\n\
         Date: Tue, 24 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
    );
    for (name, value) in threading {
        raw.push_str(&format!("{name}: {value}\r\n"));
    }
    raw.push_str("Content-Type: text/plain; charset=utf-8\r\n\r\n");
    raw.push_str(body);
    raw.push_str("\r\n");
    raw.into_bytes()
}
