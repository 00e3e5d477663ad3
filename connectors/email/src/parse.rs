//! One raw mail (RFC 5322 bytes) into what the conversation model needs, with
//! mail-parser doing the MIME work: charsets, encoded words, RFC 2231 parameters,
//! nested messages and malformed structure.

use mail_parser::{Address, HeaderValue, Message, MessageParser, MessagePart, MimeHeaders, PartType};

use crate::quote::shown_text;

/// An email address with the name its sender gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    /// Lower-cased: the contact identity, so `Ada@Example.com` and `ada@example.com`
    /// are one customer.
    pub address: String,
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub filename: String,
    pub content_type: String,
    pub data: Vec<u8>,
    /// The `Content-ID` an HTML body refers to (`cid:`), for inline images.
    pub content_id: Option<String>,
}

/// Why a mail is machine-made: it is recorded, but never answered automatically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Automated {
    pub reason: String,
    /// An automatic answer to a mail (out-of-office, vacation notice) rather than news
    /// of its own (a list mail, a report, a system's notification).
    pub auto_reply: bool,
}

/// A delivery report about a mail that could not be delivered.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Bounce {
    /// A permanent failure (`Action: failed`, 5.x.x); a delay warning is not one.
    pub permanent: bool,
    pub recipients: Vec<String>,
    /// The enhanced status code (`5.1.1`) when the report gives one.
    pub status: Option<String>,
    /// The remote server's words, for the agent and the failed message.
    pub diagnostic: Option<String>,
    /// Message-IDs of the mail that bounced, from the returned message or its headers.
    pub original_message_ids: Vec<String>,
}

/// Limits applied while normalizing.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Attachments of one mail together; the ones past it are listed, not kept.
    pub max_attachment_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_attachment_bytes: 25 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ParsedMail {
    /// Without angle brackets; `None` for the rare mail without one.
    pub message_id: Option<String>,
    pub in_reply_to: Vec<String>,
    pub references: Vec<String>,
    pub from: Option<Mailbox>,
    pub reply_to: Option<Mailbox>,
    /// The `Sender` header: who actually sent a mail written for someone else.
    pub sender: Option<Mailbox>,
    /// The envelope sender the delivering server recorded (the topmost `Return-Path`),
    /// lower-cased; `None` for the null sender `<>` of bounces and auto-replies.
    pub return_path: Option<String>,
    pub subject: Option<String>,
    /// Every text body, HTML reduced to text where a part has no plain alternative.
    pub text: String,
    /// What the sender wrote this time: [`ParsedMail::text`] without quoted history and
    /// signature.
    pub shown_text: String,
    /// The original HTML body, kept for display.
    pub html: Option<String>,
    pub attachments: Vec<Attachment>,
    /// Names of attachments dropped by [`Limits::max_attachment_bytes`], with sizes.
    pub dropped_attachments: Vec<(String, usize)>,
    /// The `Content-Language` the mail states.
    pub language: Option<String>,
    pub automated: Option<Automated>,
    pub bounce: Option<Bounce>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("the mail has no headers mail-parser can read")]
    Unreadable,
}

pub fn parse(raw: &[u8], limits: Limits) -> Result<ParsedMail, ParseError> {
    // Some stores and exporters leave blank lines or padding before the headers.
    let start = raw.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(raw.len());
    let raw = &raw[start..];
    // Classic Mac OS mail ends lines with CR alone, which MIME parsers do not split on.
    let unix;
    let raw = if raw.contains(&b'\r') && !raw.contains(&b'\n') {
        unix = raw
            .iter()
            .map(|&b| if b == b'\r' { b'\n' } else { b })
            .collect::<Vec<u8>>();
        &unix[..]
    } else {
        raw
    };
    let message = MessageParser::default()
        .parse(raw)
        .filter(|message| !message.headers().is_empty())
        .ok_or(ParseError::Unreadable)?;
    let text = text_of(&message);
    let html = message
        .html_bodies()
        .find(|part| part.is_text_html())
        .and_then(|part| part.text_contents())
        .map(str::to_owned);
    let (attachments, dropped_attachments) = attachments_of(&message, limits);
    let bounce = bounce_of(&message);
    let automated = automated(&message, bounce.is_some());
    Ok(ParsedMail {
        message_id: message.message_id().map(str::to_owned),
        in_reply_to: ids(message.in_reply_to()),
        references: ids(message.references()),
        from: message.from().and_then(first_mailbox),
        reply_to: message.reply_to().and_then(first_mailbox),
        sender: message.sender().and_then(first_mailbox),
        return_path: message.header_raw("Return-Path").and_then(envelope_address),
        subject: message.subject().map(|subject| subject.trim().to_owned()),
        shown_text: shown_text(&text),
        text,
        html,
        attachments,
        dropped_attachments,
        language: message
            .content_language()
            .as_text_list()
            .and_then(|list| list.first())
            .map(|tag| tag.trim().to_owned())
            .filter(|tag| !tag.is_empty()),
        automated,
        bounce,
    })
}

fn ids(value: &HeaderValue) -> Vec<String> {
    value
        .as_text_list()
        .map(|list| {
            list.iter()
                .map(|id| id.trim().to_owned())
                .filter(|id| !id.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// The address of a `Return-Path` value (`<ada@example.org>`, sometimes written without
/// brackets); `None` for the null sender and for anything that is not an address.
fn envelope_address(value: &str) -> Option<String> {
    let address = value.trim().trim_start_matches('<');
    let address = address.split('>').next().unwrap_or_default().trim();
    (address.contains('@') && !address.contains(char::is_whitespace)).then(|| address.to_lowercase())
}

fn first_mailbox(address: &Address) -> Option<Mailbox> {
    let first = address.first()?;
    let email = first.address()?.trim();
    if email.is_empty() {
        return None;
    }
    Some(Mailbox {
        address: email.to_lowercase(),
        name: first
            .name()
            .map(|name| name.trim().trim_matches('"').trim().to_owned())
            .filter(|name| !name.is_empty()),
    })
}

fn text_of(message: &Message) -> String {
    let bodies: Vec<String> = (0..message.text_body_count())
        .filter_map(|index| message.body_text(index))
        .map(|text| text.replace("\r\n", "\n").trim().to_owned())
        .filter(|text| !text.is_empty())
        .collect();
    bodies.join("\n\n")
}

fn attachments_of(message: &Message, limits: Limits) -> (Vec<Attachment>, Vec<(String, usize)>) {
    let mut kept = Vec::new();
    let mut dropped = Vec::new();
    let mut total = 0usize;
    for (index, part) in message.attachments().enumerate() {
        let content_type = content_type_of(part);
        let data = part.contents();
        let filename = filename_of(part, &content_type, index);
        if total + data.len() > limits.max_attachment_bytes {
            dropped.push((filename, data.len()));
            continue;
        }
        total += data.len();
        kept.push(Attachment {
            filename,
            content_type,
            data: data.to_vec(),
            content_id: part
                .content_id()
                .map(|id| id.trim().trim_start_matches('<').trim_end_matches('>').to_owned()),
        });
    }
    (kept, dropped)
}

fn content_type_of(part: &MessagePart) -> String {
    match part.content_type() {
        Some(content_type) => match content_type.subtype() {
            Some(subtype) => format!("{}/{}", content_type.ctype(), subtype).to_lowercase(),
            None => content_type.ctype().to_lowercase(),
        },
        None if part.is_message() => "message/rfc822".to_owned(),
        None => "application/octet-stream".to_owned(),
    }
}

/// The name the sender gave (decoded by mail-parser, RFC 2047 and 2231), made safe to
/// offer as a download name; or one made up from the subject of a forwarded mail or
/// the content type.
fn filename_of(part: &MessagePart, content_type: &str, index: usize) -> String {
    let given = part
        .attachment_name()
        .map(|name| name.rsplit(['/', '\\']).next().unwrap_or(name))
        .map(|name| name.chars().filter(|c| !c.is_control()).collect::<String>())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty() && name != "." && name != "..");
    if let Some(name) = given {
        return name;
    }
    if let PartType::Message(inner) = &part.body {
        let subject = inner.subject().map(str::trim).filter(|s| !s.is_empty());
        return format!("{}.eml", subject.unwrap_or("forwarded message"));
    }
    let extension = match content_type {
        "image/png" => "png",
        "image/jpeg" => "jpg",
        "image/gif" => "gif",
        "application/pdf" => "pdf",
        "text/plain" => "txt",
        "text/html" => "html",
        "text/calendar" => "ics",
        _ => "bin",
    };
    format!("attachment-{}.{extension}", index + 1)
}

/// RFC 3834 and the conventions before it, plus reports (bounces, read receipts,
/// complaints): none of these is a person who wants an answer. Which of them are
/// automatic replies decides where they are filed (see [`Automated::auto_reply`]):
/// `Auto-Submitted: auto-replied`, `X-Autoreply`, `X-Autorespond` and
/// `Precedence: auto_reply` say so outright; the marks others share with list and
/// notification mail (`Precedence: bulk|junk`, another `Auto-Submitted`,
/// `X-Auto-Response-Suppress`) count with a subject that says so. Outlook's replies
/// carry only `X-Auto-Response-Suppress` and "Automatic reply:", and many responders
/// only their subject, so an unambiguous subject prefix counts alone.
fn automated(message: &Message, is_bounce: bool) -> Option<Automated> {
    let header = |name: &str| message.header_raw(name).map(|value| value.trim().to_lowercase());
    let subject = auto_reply_subject(message.subject().unwrap_or_default());
    let said = subject != SubjectSays::Nothing;
    let found = |reason: String, auto_reply: bool| Some(Automated { reason, auto_reply });
    if let Some(value) = header("Auto-Submitted")
        && !value.is_empty()
        && value != "no"
        && !value.starts_with("no;")
    {
        let replied = value.starts_with("auto-replied");
        return found(format!("Auto-Submitted: {value}"), replied || said);
    }
    for name in ["X-Autoreply", "X-Autorespond"] {
        if let Some(value) = header(name)
            && !value.is_empty()
            && value != "no"
        {
            return found(format!("{name}: {value}"), true);
        }
    }
    if let Some(value) = header("X-Auto-Response-Suppress")
        && (value.contains("all") || value.contains("autoreply"))
    {
        return found(format!("X-Auto-Response-Suppress: {value}"), said);
    }
    if let Some(value) = header("Precedence")
        && matches!(value.as_str(), "bulk" | "junk" | "list" | "auto_reply")
    {
        let auto_reply = value == "auto_reply" || (value != "list" && said);
        return found(format!("Precedence: {value}"), auto_reply);
    }
    if is_bounce {
        return found("delivery report (bounce)".to_owned(), false);
    }
    if let Some(report) = report_type(message) {
        return found(format!("multipart/report ({report})"), false);
    }
    if header("List-Id").is_some() || header("List-Unsubscribe").is_some() {
        return found("mailing list (List-Id)".to_owned(), false);
    }
    if subject == SubjectSays::AutoReply {
        return found("subject of an automatic reply".to_owned(), true);
    }
    None
}

/// What a subject says of an automatic reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubjectSays {
    /// A prefix only responders write ("Automatic reply:", "Risposta automatica:").
    AutoReply,
    /// A prefix a person may write too ("Auto:", Lotus Notes' mark, is also "car" in
    /// Italian and German): it counts only beside a header that marks automation.
    Maybe,
    Nothing,
}

/// Prefixes of automatic replies as the responders of the desk's languages write them
/// (English, Italian, German, Spanish, Thai, Arabic, and a few neighbours), lower-case;
/// each must be followed by a colon or end the subject, so "Out of office chair broken"
/// is a customer's.
const AUTO_REPLY_PREFIXES: &[&str] = &[
    "automatic reply",
    "auto reply",
    "auto-reply",
    "autoreply",
    "auto response",
    "auto-response",
    "autoresponse",
    "automatic response",
    "out of office",
    "out of office autoreply",
    "out of the office",
    "out-of-office",
    "risposta automatica",
    "fuori sede",
    "fuori ufficio",
    "abwesenheitsnotiz",
    "automatische antwort",
    "respuesta automática",
    "respuesta automatica",
    "fuera de la oficina",
    "réponse automatique",
    "automatisch antwoord",
    "ตอบกลับอัตโนมัติ",
    "ตอบกลับโดยอัตโนมัติ",
    "ไม่อยู่ที่สำนักงาน",
    "رد تلقائي",
    "الرد التلقائي",
    "خارج المكتب",
];

/// Prefixes that say so only beside a header (see [`SubjectSays::Maybe`]).
const MAYBE_AUTO_REPLY_PREFIXES: &[&str] = &["auto", "abwesend"];

/// Whether `subject` opens with an automatic reply's prefix.
pub fn auto_reply_subject(subject: &str) -> SubjectSays {
    let subject = subject.trim().to_lowercase();
    let opens_with = |prefix: &&str| {
        subject
            .strip_prefix(*prefix)
            .map(str::trim_start)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with([':', '：']))
    };
    if AUTO_REPLY_PREFIXES.iter().any(opens_with) {
        SubjectSays::AutoReply
    } else if MAYBE_AUTO_REPLY_PREFIXES.iter().any(opens_with) {
        SubjectSays::Maybe
    } else {
        SubjectSays::Nothing
    }
}

fn report_type(message: &Message) -> Option<String> {
    let content_type = message.content_type()?;
    if !content_type.ctype().eq_ignore_ascii_case("multipart")
        || !content_type.subtype().is_some_and(|s| s.eq_ignore_ascii_case("report"))
    {
        return None;
    }
    Some(
        content_type
            .attribute("report-type")
            .unwrap_or("unknown")
            .to_lowercase(),
    )
}

/// A DSN (`multipart/report; report-type=delivery-status`) read field by field; a
/// mailer daemon's plain-text notice recognised by its sender and subject.
fn bounce_of(message: &Message) -> Option<Bounce> {
    let report = report_type(message);
    let dsn = report.as_deref() == Some("delivery-status");
    let daemon_notice = report.is_none() && looks_like_daemon_notice(message);
    if !dsn && !daemon_notice {
        return None;
    }
    let mut bounce = Bounce {
        permanent: !dsn,
        ..Bounce::default()
    };
    for part in &message.parts {
        let content_type = content_type_of(part);
        match content_type.as_str() {
            "message/delivery-status" | "message/global-delivery-status" => {
                read_delivery_status(&String::from_utf8_lossy(part.contents()), &mut bounce);
            }
            "message/rfc822" | "message/global" => {
                if let Some(id) = part.message().and_then(Message::message_id) {
                    bounce.original_message_ids.push(id.to_owned());
                }
            }
            "text/rfc822-headers" | "message/rfc822-headers" | "message/global-headers" => {
                if let Some(id) = MessageParser::default()
                    .parse_headers(part.contents())
                    .as_ref()
                    .and_then(Message::message_id)
                {
                    bounce.original_message_ids.push(id.to_owned());
                }
            }
            _ => {}
        }
    }
    // A report whose per-recipient fields could not be read (empty, or encoded in ways
    // the RFC does not allow) still says by its subject whether it is a failure.
    if dsn && bounce.recipients.is_empty() && !bounce.permanent {
        bounce.permanent = subject_says_failure(message);
    }
    // Some servers name the failed mail in In-Reply-To or References of the report.
    bounce
        .original_message_ids
        .extend(ids(message.in_reply_to()).into_iter().chain(ids(message.references())));
    bounce.original_message_ids.dedup();
    Some(bounce)
}

fn looks_like_daemon_notice(message: &Message) -> bool {
    let from = message
        .from()
        .and_then(|from| from.first())
        .and_then(|from| from.address())
        .unwrap_or_default()
        .to_lowercase();
    (from.starts_with("mailer-daemon@") || from.starts_with("postmaster@")) && subject_says_failure(message)
}

/// Subjects of failure notices as mail servers word them; delay warnings are not.
fn subject_says_failure(message: &Message) -> bool {
    let subject = message.subject().unwrap_or_default().to_lowercase();
    let warning = ["warning", "delayed", "delay"]
        .iter()
        .any(|word| subject.contains(word));
    !warning
        && [
            "failure",
            "undeliver",
            "delivery failed",
            "returned mail",
            "returned to sender",
            "delivery has failed",
            "could not be delivered",
        ]
        .iter()
        .any(|phrase| subject.contains(phrase))
}

/// The fields of one recipient in a delivery-status body.
#[derive(Default)]
struct RecipientFields {
    recipient: Option<String>,
    failed: bool,
    status: Option<String>,
    diagnostic: Option<String>,
}

impl RecipientFields {
    /// Adds the recipient to the bounce when its delivery failed for good; the first
    /// failed recipient's status and diagnostic speak for the report.
    fn finish(&mut self, bounce: &mut Bounce) {
        let fields = std::mem::take(self);
        let permanent = fields.failed || fields.status.as_deref().is_some_and(|s| s.starts_with('5'));
        if let Some(address) = fields.recipient
            && permanent
        {
            bounce.recipients.push(address);
            bounce.permanent = true;
            if bounce.status.is_none() {
                bounce.status = fields.status;
                bounce.diagnostic = fields.diagnostic;
            }
        }
    }
}

/// The per-recipient fields of a delivery-status body (RFC 3464). `Final-Recipient`
/// opens each recipient's group.
fn read_delivery_status(body: &str, bounce: &mut Bounce) {
    let mut current = RecipientFields::default();
    for line in unfold(body) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "final-recipient" => {
                current.finish(bounce);
                let address = value.rsplit(';').next().unwrap_or(value).trim();
                current.recipient = Some(address.trim_matches(['<', '>']).to_lowercase());
            }
            "action" => current.failed = value.eq_ignore_ascii_case("failed"),
            "status" => current.status = value.split_whitespace().next().map(str::to_owned),
            "diagnostic-code" => {
                current.diagnostic = Some(value.split_once(';').map_or(value, |(_, text)| text.trim()).to_owned())
            }
            _ => {}
        }
    }
    current.finish(bounce);
}

/// Header-style lines with continuation lines joined.
fn unfold(body: &str) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for line in body.lines() {
        if line.starts_with([' ', '\t'])
            && let Some(last) = lines.last_mut()
        {
            last.push(' ');
            last.push_str(line.trim());
        } else {
            lines.push(line.trim_end().to_owned());
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn automated_of(headers: &str) -> Option<Automated> {
        let raw = format!("From: ada@example.org\r\nMessage-ID: <m@example.org>\r\n{headers}\r\nHi\r\n");
        parse(raw.as_bytes(), Limits::default()).unwrap().automated
    }

    #[test]
    fn responders_subjects_in_the_desks_languages_are_auto_replies() {
        for subject in [
            "Automatic reply: Refund",
            "Out of Office: Refund",
            "Out of Office AutoReply: Refund",
            "Risposta automatica: Ordine 5512",
            "Abwesenheitsnotiz: Rechnung",
            "Automatische Antwort: Rechnung",
            "Respuesta automática: Pedido",
            "ตอบกลับอัตโนมัติ: คำสั่งซื้อ",
            "رد تلقائي: طلب",
            "AUTOMATIC REPLY：Refund",
        ] {
            assert_eq!(auto_reply_subject(subject), SubjectSays::AutoReply, "{subject}");
        }
    }

    #[test]
    fn a_customers_subject_that_only_starts_alike_is_not_one() {
        for subject in [
            "Out of office chair broken",
            "Automatic replyer settings",
            "Re: Refund",
            "",
        ] {
            assert_eq!(auto_reply_subject(subject), SubjectSays::Nothing, "{subject}");
        }
        // "Auto" is a car in Italian and German: it needs a header beside it.
        assert_eq!(auto_reply_subject("Auto: Termin"), SubjectSays::Maybe);
    }

    #[test]
    fn the_subject_alone_makes_an_auto_reply_and_auto_alone_does_not() {
        let oof = automated_of("Subject: Risposta automatica: Ordine 5512\r\n").expect("automated");
        assert!(oof.auto_reply);
        assert_eq!(automated_of("Subject: Auto: Termin am Montag\r\n"), None);
        let notes = automated_of("Subject: AUTO: Ada is out of the office\r\nPrecedence: junk\r\n").unwrap();
        assert!(notes.auto_reply, "{notes:?}");
    }

    #[test]
    fn headers_that_say_reply_outright_need_no_subject() {
        for headers in [
            "Subject: Away\r\nAuto-Submitted: auto-replied\r\n",
            "Subject: Away\r\nX-Autoreply: yes\r\n",
            "Subject: Away\r\nX-Autorespond: 1\r\n",
            "Subject: Away\r\nPrecedence: auto_reply\r\n",
        ] {
            let automated = automated_of(headers).unwrap_or_else(|| panic!("{headers}"));
            assert!(automated.auto_reply, "{headers}");
        }
    }

    #[test]
    fn list_bulk_and_notification_mail_is_automated_but_no_auto_reply() {
        for headers in [
            "Subject: Our November news\r\nPrecedence: bulk\r\n",
            "Subject: Build failed\r\nAuto-Submitted: auto-generated\r\n",
            "Subject: Digest\r\nList-Id: <news.example.org>\r\n",
            // A list that forwards someone's out-of-office is still the list's.
            "Subject: Automatic reply: Digest\r\nPrecedence: list\r\n",
        ] {
            let automated = automated_of(headers).unwrap_or_else(|| panic!("{headers}"));
            assert!(!automated.auto_reply, "{headers}");
        }
    }

    #[test]
    fn return_path_gives_the_envelope_address_or_nothing_for_the_null_sender() {
        assert_eq!(
            envelope_address("<Bob@Example.org>").as_deref(),
            Some("bob@example.org")
        );
        assert_eq!(
            envelope_address(" bob@example.org ").as_deref(),
            Some("bob@example.org")
        );
        assert_eq!(envelope_address("<>"), None);
        assert_eq!(envelope_address("<MAILER-DAEMON>"), None);
    }

    /// Found by the `email_mime` fuzz target (minimized): a multipart whose closing
    /// boundary is followed by nested `message/rfc822` parts. mail-parser 0.11.9 reaches
    /// a `debug_assert!(false, "Invalid part ID, could not find multipart.")` on it, then
    /// recovers when assertions are off; the workspace turns them off for mail-parser in
    /// debug builds too (Cargo.toml), so a debug daemon reads the mail like a release one.
    #[test]
    fn a_closed_multipart_followed_by_nested_messages_parses_without_a_panic() {
        let raw = b"Content-Type: multipart/report; boundary=\"-----=_13420034143457833\"\x01\r\n\r\n\
--_---------=_13420034143457833--\nContent-Type: message/rfc822\r\n\r\nF7bit\r\n\
Content-Type: message/rfc822\n\r\nFroml>\r\n\r\n-------=_13420034143457833--\r";
        let parsed = parse(raw, Limits::default()).unwrap();
        assert_eq!(parsed.from, None);
        assert!(parsed.attachments.len() <= 2, "{:?}", parsed.attachments);
    }
}
