//! A raw mail as the conversation model takes it: one [`InboundMessage`] with the
//! threading keys the store honours, or a reason to leave it alone.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use switchboard_connector_core::{BounceReport, InboundAttachment, InboundMessage, Sender, ThreadHints};

use crate::config::EmailSettings;
use crate::parse::{Mailbox, ParsedMail, parse};
use crate::smtp::UNSUBSCRIBE_SUBJECT;
use crate::thread::{OurMessageId, normalize_subject, reference_tag};

/// What a customer writes, alone, as the subject or the first line of a mail to stop
/// automated status updates; the first is what our List-Unsubscribe asks clients to send.
const STOP_WORDS: [&str; 2] = [UNSUBSCRIBE_SUBJECT, "stop"];

/// What a customer writes the same way to have status updates again.
const START_WORDS: [&str; 2] = ["subscribe", "start"];

/// What to do with one mail of the folder.
#[derive(Debug, Clone, PartialEq)]
pub enum Disposition {
    Ingest(Box<InboundMessage>),
    /// Not a customer's message (our own mail come back); nothing to store.
    Skip(&'static str),
}

/// The dedupe key of a mail: its Message-ID, or a hash of the bytes when it has none,
/// so the same mail read twice is still recognised.
fn external_id(parsed: Option<&ParsedMail>, raw: &[u8]) -> String {
    match parsed.and_then(|mail| mail.message_id.as_deref()) {
        Some(id) if !id.trim().is_empty() => id.trim().to_owned(),
        _ => {
            let hash: String = Sha256::digest(raw).iter().map(|b| format!("{b:02x}")).collect();
            format!("sha256:{hash}")
        }
    }
}

/// Normalizes one raw mail of `settings`'s inbox.
pub fn disposition(raw: &[u8], settings: &EmailSettings) -> Disposition {
    let parsed = match parse(raw, settings.limits) {
        Ok(parsed) => parsed,
        Err(err) => return Disposition::Ingest(Box::new(unreadable(raw, &err.to_string()))),
    };
    if parsed
        .message_id
        .as_deref()
        .is_some_and(|id| OurMessageId::parse(id, &settings.domain).is_some())
    {
        return Disposition::Skip("our own message");
    }
    Disposition::Ingest(Box::new(inbound(&parsed, raw, settings)))
}

/// A mail over the size limit: the customer wrote, and the conversation must say so,
/// but only its headers are read.
pub fn too_large(headers: &[u8], size: usize, settings: &EmailSettings) -> InboundMessage {
    let mut message = match parse(headers, settings.limits) {
        Ok(parsed) => inbound(&parsed, headers, settings),
        Err(err) => unreadable(headers, &err.to_string()),
    };
    message.text = format!(
        "[This mail is {size} bytes, over this inbox's limit of {} bytes, and was not imported. \
         It is still in the mailbox.]",
        settings.max_message_bytes
    );
    message.html = None;
    message.details.insert("too_large".into(), json!(size));
    message
}

/// A mail mail-parser cannot read still reaches an agent, whole, as an attachment.
fn unreadable(raw: &[u8], error: &str) -> InboundMessage {
    let external_id = external_id(None, raw);
    InboundMessage {
        sender: Sender {
            external_id: nobody(&external_id),
            name: Some("Unreadable mail".into()),
            ..Sender::default()
        },
        external_id,
        anonymous: true,
        text: format!("[This mail could not be read ({error}); the original is attached.]"),
        attachments: vec![InboundAttachment {
            filename: "original.eml".into(),
            content_type: "message/rfc822".into(),
            data: raw.to_vec(),
        }],
        automated: Some("unreadable".into()),
        ..InboundMessage::default()
    }
}

/// Whether the customer asks to stop (`Some(true)`) or resume (`Some(false)`) status
/// updates: the subject without reply prefixes and tags, or the first line they wrote,
/// is one of the words and nothing else, so a sentence that uses one is not a request.
/// The subject counts for a new mail (what a List-Unsubscribe button sends) or an empty
/// reply, not for a reply with words of its own: in a thread that began "Unsubscribe",
/// every answer carries that subject.
/// Asking to stop wins when the subject and the line disagree: an update too many is
/// the worse mistake.
///
/// Machine-made mail never asks: an auto-reply or a bounce that quotes our update, or
/// an out-of-office notice whose first line happens to say "stop", must not silence the
/// desk for a customer who did not choose it. That includes mail carrying
/// `X-Auto-Response-Suppress: All` or `AutoReply`: [`mod@crate::parse`] counts it as
/// automated (Outlook's out-of-office replies carry it, some with no other mark), and
/// it asks for no automatic answer to that one mail, not for no updates from now on.
fn opt_out(parsed: &ParsedMail) -> Option<bool> {
    if parsed.automated.is_some() || parsed.bounce.is_some() {
        return None;
    }
    let is_reply = !parsed.in_reply_to.is_empty() || !parsed.references.is_empty();
    let subject = if is_reply && !parsed.shown_text.trim().is_empty() {
        String::new()
    } else {
        normalize_subject(parsed.subject.as_deref().unwrap_or_default())
    };
    let first_line = parsed
        .shown_text
        .lines()
        .find(|line| !line.trim().is_empty())
        .unwrap_or_default();
    let words = [keyword(&subject), keyword(first_line)];
    if words.iter().any(|word| STOP_WORDS.contains(&word.as_str())) {
        Some(true)
    } else if words.iter().any(|word| START_WORDS.contains(&word.as_str())) {
        Some(false)
    } else {
        None
    }
}

/// A line as a keyword: case folded, without the punctuation and whitespace around it
/// (`STOP!`, `"Unsubscribe."`).
fn keyword(line: &str) -> String {
    line.trim_matches(|c: char| !c.is_alphanumeric()).to_lowercase()
}

/// The identity of a mail that names nobody: its own, so it is never threaded into
/// another mail's conversation (one shared "unknown sender" gathered every such mail,
/// whoever sent it, into one conversation). Not an address: a reply fails at once.
fn nobody(external_id: &str) -> String {
    format!("unknown:{external_id}")
}

/// Who sent the mail, and whether automated mail may answer them (`false`: anonymous).
///
/// `From` is the author. Without a usable one (missing, a group with no address, a
/// name without a domain) the mail is still someone's: `Sender`, then the envelope's
/// `Return-Path`, then `Reply-To` name them, so two such mails from different servers
/// stay apart and an agent can still reply. None of those is who the customer says
/// they are, so nothing automatic goes there (the contact gets no `email`, and the
/// message is anonymous): an acknowledgement to a guessed address is a backscatter.
pub fn sender_of(parsed: &ParsedMail, external_id: &str) -> (Sender, bool) {
    let usable = |mailbox: &&Mailbox| mailbox.address.contains('@');
    if let Some(from) = parsed.from.as_ref().filter(usable) {
        let sender = Sender {
            external_id: from.address.clone(),
            name: from.name.clone(),
            email: Some(from.address.clone()),
            ..Sender::default()
        };
        return (sender, true);
    }
    let named = parsed.sender.as_ref().filter(usable).cloned().or_else(|| {
        parsed
            .return_path
            .clone()
            .map(|address| Mailbox { address, name: None })
            .or_else(|| parsed.reply_to.as_ref().filter(usable).cloned())
    });
    let sender = match named {
        Some(mailbox) => Sender {
            external_id: mailbox.address,
            name: mailbox.name,
            ..Sender::default()
        },
        None => Sender {
            external_id: nobody(external_id),
            name: Some("Unknown sender".into()),
            ..Sender::default()
        },
    };
    (sender, false)
}

fn inbound(parsed: &ParsedMail, raw: &[u8], settings: &EmailSettings) -> InboundMessage {
    let external_id = external_id(Some(parsed), raw);
    let (sender, answerable) = sender_of(parsed, &external_id);

    // In-Reply-To is what the client says it answers; References, newest last, is the
    // thread behind it. Outlook may rewrite the first, so both count, nearest first.
    let mut answers: Vec<String> = Vec::new();
    for id in parsed.in_reply_to.iter().chain(parsed.references.iter().rev()) {
        if !answers.contains(id) {
            answers.push(id.clone());
        }
    }
    let conversations = answers
        .iter()
        .filter_map(|id| OurMessageId::parse(id, &settings.domain))
        .map(|ours| ours.conversation_id)
        .collect();
    let subject = parsed.subject.as_deref().unwrap_or_default();
    let hints = ThreadHints {
        answers,
        conversations,
        reference: reference_tag(subject),
        topic: Some(normalize_subject(subject)),
        topic_window: settings.thread_window,
    };

    let bounce = parsed.bounce.as_ref().map(|bounce| BounceReport {
        message_ids: bounce
            .original_message_ids
            .iter()
            .chain(&parsed.in_reply_to)
            .chain(&parsed.references)
            .filter_map(|id| OurMessageId::parse(id, &settings.domain))
            .map(|ours| ours.message_id)
            .fold(Vec::new(), |mut ids, id| {
                if !ids.contains(&id) {
                    ids.push(id);
                }
                ids
            }),
        permanent: bounce.permanent,
        reason: bounce
            .diagnostic
            .clone()
            .or_else(|| bounce.status.clone())
            .unwrap_or_else(|| "the receiving server did not say why".into()),
    });

    let mut details = BTreeMap::new();
    if let Some(id) = &parsed.message_id {
        details.insert("message_id".into(), Value::String(id.clone()));
    }
    if parsed.shown_text != parsed.text {
        details.insert("full_text".into(), Value::String(parsed.text.clone()));
    }
    if !parsed.dropped_attachments.is_empty() {
        details.insert(
            "dropped_attachments".into(),
            parsed
                .dropped_attachments
                .iter()
                .map(|(name, size)| json!({"filename": name, "size": size}))
                .collect(),
        );
    }
    if let Some(bounce) = &parsed.bounce {
        details.insert(
            "bounce".into(),
            json!({"permanent": bounce.permanent, "recipients": bounce.recipients, "status": bounce.status}),
        );
    }

    InboundMessage {
        external_id,
        sender,
        thread: None,
        subject: parsed.subject.clone(),
        text: parsed.shown_text.clone(),
        html: parsed.html.clone(),
        attachments: parsed
            .attachments
            .iter()
            .map(|attachment| InboundAttachment {
                filename: attachment.filename.clone(),
                content_type: attachment.content_type.clone(),
                data: attachment.data.clone(),
            })
            .collect(),
        language: parsed.language.clone(),
        metadata: BTreeMap::new(),
        hints,
        automated: parsed.automated.as_ref().map(|automated| automated.reason.clone()),
        // A bounce names its conversation by our ids; filing it as an out-of-office
        // would lose that.
        auto_reply: parsed.bounce.is_none() && parsed.automated.as_ref().is_some_and(|a| a.auto_reply),
        anonymous: !answerable,
        bounce,
        edits: None,
        details,
        csat: None,
        // Only the author may stop or resume updates; a guessed address may be anyone's.
        opt_out: if answerable { opt_out(parsed) } else { None },
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn settings() -> EmailSettings {
        crate::config::test_settings()
    }

    fn ingested(raw: &str) -> InboundMessage {
        match disposition(raw.as_bytes(), &settings()) {
            Disposition::Ingest(message) => *message,
            Disposition::Skip(reason) => panic!("skipped: {reason}"),
        }
    }

    #[test]
    fn a_reply_carries_every_threading_key_nearest_first() {
        let message = ingested(
            "From: Ada <Ada@Example.org>\r\nSubject: AW: Refund [#42]\r\nMessage-ID: <r2@example.org>\r\n\
             In-Reply-To: <switchboard.42.7@example.com>\r\n\
             References: <r1@example.org> <switchboard.42.7@example.com>\r\n\r\nThanks!\r\n",
        );
        assert_eq!(message.external_id, "r2@example.org");
        assert_eq!(message.sender.external_id, "ada@example.org");
        assert_eq!(
            message.hints.answers,
            vec!["switchboard.42.7@example.com", "r1@example.org"]
        );
        assert_eq!(message.hints.conversations, vec![42]);
        assert_eq!(message.hints.reference, Some(42));
        assert_eq!(message.hints.topic.as_deref(), Some("refund"));
        assert_eq!(message.hints.topic_window, Duration::from_secs(3600));
        assert!(message.automated.is_none() && message.bounce.is_none());
    }

    #[test]
    fn our_ids_on_another_domain_name_no_conversation() {
        let message = ingested(
            "From: a@example.org\r\nSubject: Re: x\r\nMessage-ID: <m@example.org>\r\n\
             In-Reply-To: <switchboard.42.7@elsewhere.com>\r\n\r\nHi\r\n",
        );
        assert!(message.hints.conversations.is_empty());
        assert_eq!(message.hints.answers, vec!["switchboard.42.7@elsewhere.com"]);
    }

    #[test]
    fn our_own_mail_coming_back_is_skipped() {
        let raw = "From: support@example.com\r\nSubject: Re: x [#3]\r\nMessage-ID: <switchboard.3.9@example.com>\r\n\r\nHi\r\n";
        assert_eq!(
            disposition(raw.as_bytes(), &settings()),
            Disposition::Skip("our own message")
        );
    }

    #[test]
    fn a_mail_without_message_id_is_keyed_by_its_bytes() {
        let raw = "From: a@example.org\r\nSubject: no id\r\n\r\nHi\r\n";
        let first = ingested(raw);
        assert!(first.external_id.starts_with("sha256:"), "{}", first.external_id);
        assert_eq!(first.external_id, ingested(raw).external_id);
        assert_ne!(first.external_id, ingested(&raw.replace("Hi", "Ho")).external_id);
    }

    #[test]
    fn a_bounce_names_our_message_and_the_servers_reason() {
        let message = ingested(
            "From: MAILER-DAEMON@mx.example.org\r\nTo: support@example.com\r\nSubject: Undelivered\r\n\
             Message-ID: <dsn@mx.example.org>\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n\
             --b\r\nContent-Type: text/plain\r\n\r\nFailed.\r\n\
             --b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.org\r\n\r\n\
             Final-Recipient: rfc822; ada@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n\
             Diagnostic-Code: smtp; 550 5.1.1 no such user\r\n\r\n\
             --b\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <switchboard.5.11@example.com>\r\n\r\n--b--\r\n",
        );
        let bounce = message.bounce.expect("a bounce report");
        assert_eq!(bounce.message_ids, vec![11]);
        assert!(bounce.permanent);
        assert!(bounce.reason.contains("550 5.1.1 no such user"), "{}", bounce.reason);
        assert_eq!(message.details["bounce"]["permanent"], true);
    }

    #[test]
    fn a_mail_over_the_limit_keeps_its_sender_and_says_why() {
        let headers = b"From: Ada <ada@example.org>\r\nSubject: Scans\r\nMessage-ID: <big@example.org>\r\n\r\n";
        let message = too_large(headers, 40_000_000, &settings());
        assert_eq!(message.sender.external_id, "ada@example.org");
        assert_eq!(message.external_id, "big@example.org");
        assert_eq!(message.subject.as_deref(), Some("Scans"));
        assert!(message.text.contains("40000000 bytes"), "{}", message.text);
        assert_eq!(message.details["too_large"], 40_000_000);
    }

    /// A customer's mail in conversation 42 with `subject` and `body`.
    fn customer_mail(subject: &str, body: &str) -> InboundMessage {
        ingested(&format!(
            "From: Ada <ada@example.org>\r\nSubject: {subject}\r\nMessage-ID: <o1@example.org>\r\n\
             In-Reply-To: <switchboard.42.7@example.com>\r\n\r\n{body}\r\n"
        ))
    }

    #[test]
    fn a_stop_word_as_the_subject_opts_out() {
        for subject in ["unsubscribe", "Re: STOP [#42]", "AW: \"Unsubscribe!\""] {
            let message = customer_mail(subject, "");
            assert_eq!(message.opt_out, Some(true), "{subject}");
        }
    }

    #[test]
    fn a_stop_word_as_the_first_line_opts_out() {
        for body in [
            "Stop.",
            "\r\n  STOP!!  \r\nI get too many of these.",
            "unsubscribe\r\n\r\nOn Mon, 3 Nov 2025, Support <support@example.com> wrote:\r\n> Your request is resolved.",
        ] {
            let message = customer_mail("Re: Your request is resolved [#42]", body);
            assert_eq!(message.opt_out, Some(true), "{body}");
        }
    }

    #[test]
    fn a_start_word_as_the_subject_or_first_line_opts_back_in() {
        assert_eq!(customer_mail("Subscribe", "").opt_out, Some(false));
        assert_eq!(customer_mail("Re: Refund [#42]", "Start").opt_out, Some(false));
        assert_eq!(customer_mail("Re: Refund [#42]", "- subscribe -").opt_out, Some(false));
    }

    /// A mail that answers nothing, as a List-Unsubscribe button sends it.
    fn new_mail(subject: &str, body: &str) -> InboundMessage {
        ingested(&format!(
            "From: Ada <ada@example.org>\r\nSubject: {subject}\r\nMessage-ID: <n1@example.org>\r\n\r\n{body}\r\n"
        ))
    }

    #[test]
    fn stop_wins_when_subject_and_first_line_disagree() {
        assert_eq!(new_mail("unsubscribe", "start").opt_out, Some(true));
        assert_eq!(new_mail("start", "STOP").opt_out, Some(true));
        assert_eq!(
            new_mail("unsubscribe", "This is an unsubscribe request.").opt_out,
            Some(true)
        );
    }

    #[test]
    fn a_reply_with_words_of_its_own_in_a_stop_thread_is_no_opt_out() {
        assert_eq!(
            customer_mail("Re: Unsubscribe [#42]", "I still get your newsletter").opt_out,
            None
        );
    }

    #[test]
    fn a_sentence_that_uses_a_stop_word_is_not_an_opt_out() {
        for (subject, body) in [
            ("Re: Refund [#42]", "Please stop the delivery, I have moved."),
            ("Re: Refund [#42]", "Thanks!\r\nstop"),
            ("Stop my order", "It was a mistake."),
            (
                "Re: Refund [#42]",
                "unsubscribe me from the newsletter and start the refund",
            ),
        ] {
            let message = customer_mail(subject, body);
            assert_eq!(message.opt_out, None, "{subject} / {body}");
        }
    }

    #[test]
    fn machine_made_mail_never_opts_out() {
        for (headers, body) in [
            ("Subject: unsubscribe\r\nAuto-Submitted: auto-replied\r\n", "I am away."),
            (
                "Subject: Automatic reply: Refund [#42]\r\nAuto-Submitted: auto-replied\r\n",
                "STOP",
            ),
            ("Subject: unsubscribe\r\nPrecedence: bulk\r\n", ""),
            (
                "Subject: Undelivered Mail Returned to Sender\r\n",
                "stop\r\n\r\nThe mail system could not deliver your message.",
            ),
        ] {
            let from = if headers.contains("Undelivered") {
                "MAILER-DAEMON@mx.example.org"
            } else {
                "ada@example.org"
            };
            let message = ingested(&format!(
                "From: {from}\r\n{headers}Message-ID: <auto@example.org>\r\n\r\n{body}\r\n"
            ));
            assert!(message.automated.is_some(), "{headers}");
            assert_eq!(message.opt_out, None, "{headers}");
        }
    }

    #[test]
    fn asking_for_no_auto_replies_is_not_an_opt_out() {
        // Outlook's out-of-office reply: the header is its only mark of automation.
        for value in ["All", "OOF, AutoReply", "autoreply,dr"] {
            let message = ingested(&format!(
                "From: ada@example.org\r\nSubject: Automatic reply: Refund [#42]\r\n\
                 X-Auto-Response-Suppress: {value}\r\nMessage-ID: <oof@example.org>\r\n\r\n\
                 Stop.\r\nI am travelling until July 31.\r\n"
            ));
            assert!(message.automated.is_some(), "{value}");
            assert_eq!(message.opt_out, None, "{value}");
        }
    }

    #[test]
    fn an_unreadable_mail_reaches_an_agent_whole() {
        // Nothing mail-parser can take headers from (an empty message in a folder).
        let raw = b" \r\n";
        let message = match disposition(raw, &settings()) {
            Disposition::Ingest(message) => *message,
            Disposition::Skip(reason) => panic!("skipped: {reason}"),
        };
        assert_eq!(message.attachments.len(), 1);
        assert_eq!(message.attachments[0].data, raw);
        assert!(message.automated.is_some(), "nobody to acknowledge");
    }

    #[test]
    fn a_mail_without_from_is_the_envelope_senders_but_anonymous() {
        for (headers, identity) in [
            ("Return-Path: <Bob@Example.net>\r\n", "bob@example.net"),
            (
                "Sender: Bot <bot@example.net>\r\nReturn-Path: <bounces@example.net>\r\n",
                "bot@example.net",
            ),
            (
                "From: undisclosed-recipients:;\r\nReturn-Path: <bob@example.net>\r\n",
                "bob@example.net",
            ),
            (
                "From: MAILER-DAEMON\r\nReturn-Path: <bob@example.net>\r\n",
                "bob@example.net",
            ),
        ] {
            let message = ingested(&format!(
                "{headers}Subject: Hello\r\nMessage-ID: <nf@example.net>\r\n\r\nHi\r\n"
            ));
            assert_eq!(message.sender.external_id, identity, "{headers}");
            assert_eq!(message.sender.email, None, "no address for automated mail: {headers}");
            assert!(message.anonymous, "{headers}");
        }
    }

    #[test]
    fn mails_that_name_nobody_are_each_their_own_sender() {
        let first = ingested("Return-Path: <>\r\nSubject: Hello\r\nMessage-ID: <a@x>\r\n\r\nHi\r\n");
        let second = ingested("Subject: Hello\r\nMessage-ID: <b@x>\r\n\r\nHi\r\n");
        assert_eq!(first.sender.external_id, "unknown:a@x");
        assert_eq!(second.sender.external_id, "unknown:b@x");
        assert!(first.anonymous && second.anonymous);
    }

    #[test]
    fn a_usable_from_is_the_sender_whatever_the_envelope_says() {
        let message = ingested(
            "Return-Path: <bounces+123@mailer.example.net>\r\nFrom: Ada <ada@example.org>\r\n\
             Subject: Hello\r\nMessage-ID: <f@example.org>\r\n\r\nHi\r\n",
        );
        assert_eq!(message.sender.external_id, "ada@example.org");
        assert_eq!(message.sender.email.as_deref(), Some("ada@example.org"));
        assert!(!message.anonymous);
    }

    #[test]
    fn an_anonymous_stop_silences_nobody() {
        let message = ingested("Return-Path: <ada@example.org>\r\nSubject: stop\r\nMessage-ID: <s@x>\r\n\r\nstop\r\n");
        assert_eq!(message.opt_out, None);
    }

    #[test]
    fn an_out_of_office_is_an_auto_reply_and_a_bounce_is_not() {
        let oof = ingested(
            "From: ada@example.org\r\nSubject: Risposta automatica: Ordine\r\nMessage-ID: <o@x>\r\n\r\nSono fuori.\r\n",
        );
        assert!(oof.auto_reply && oof.automated.is_some());
        let bounce = ingested(
            "From: MAILER-DAEMON@mx.example.org\r\nSubject: Undelivered Mail Returned to Sender\r\n\
             Auto-Submitted: auto-replied\r\nMessage-ID: <d@x>\r\n\r\nFailed.\r\n",
        );
        assert!(bounce.bounce.is_some() && !bounce.auto_reply);
    }
}
