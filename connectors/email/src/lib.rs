//! # Switchboard's email channel
//!
//! Pure code, no I/O: what a raw mail means for the conversation model.
//!
//! - [`parse`]: MIME through mail-parser into a [`ParsedMail`]: sender, subject, ids,
//!   text (HTML reduced where there is no plain part), the original HTML, attachments
//!   under a per-mail size limit, and what marks a mail as machine-made or a bounce.
//! - [`quote`]: the part of a reply its sender wrote, without quoted history or
//!   signature, so a conversation does not repeat itself.
//! - [`thread`]: our own Message-IDs (they name conversation and message), the `[#N]`
//!   reference tag, and normalized subjects: the keys that thread a mail.

pub mod parse;
pub mod quote;
pub mod thread;

pub use parse::{Attachment, Automated, Bounce, Limits, Mailbox, ParseError, ParsedMail, parse};
pub use thread::{OurMessageId, normalize_subject, reference_tag, reply_subject};
