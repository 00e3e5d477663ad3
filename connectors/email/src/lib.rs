//! # Switchboard's email channel
//!
//! Pure code, what a raw mail means for the conversation model:
//!
//! - [`parse`]: MIME through mail-parser into a [`ParsedMail`]: sender, subject, ids,
//!   text (HTML reduced where there is no plain part), the original HTML, attachments
//!   under a per-mail size limit, and what marks a mail as machine-made or a bounce.
//! - [`quote`]: the part of a reply its sender wrote, without quoted history or
//!   signature, so a conversation does not repeat itself.
//! - [`thread`]: our own Message-IDs (they name conversation and message), the `[#N]`
//!   reference tag, and normalized subjects: the keys that thread a mail.
//! - [`inbound`]: a raw mail as one `InboundMessage` with its threading hints, bounce
//!   report, automation flag and opt-out (`stop`, `unsubscribe`, `start` as subject or
//!   first line), or a reason to skip it (our own mail come back).
//! - [`config`]: the `[inboxes.<key>.email]` table and its validation.
//!
//! And the I/O at the edges, which never touches the store:
//!
//! - [`imap`]: one IMAP session (TLS or plain on loopback): select, search by UID or
//!   date, fetch without marking read, IDLE or poll.
//! - [`smtp`]: [`SmtpSender`], replies and status updates as threaded mail through lettre;
//!   status updates with the template's subject and HTML, and a List-Unsubscribe.

pub mod channel;
pub mod config;
pub mod imap;
pub mod inbound;
pub mod parse;
pub mod quote;
pub mod smtp;
pub mod thread;

pub use channel::Email;
pub use config::{EmailConfig, EmailSettings};
pub use parse::{
    Attachment, Automated, Bounce, Limits, Mailbox, ParseError, ParsedMail, SubjectSays, auto_reply_subject, parse,
};
pub use smtp::SmtpSender;
pub use thread::{OurMessageId, normalize_subject, reference_tag, reply_subject};
