//! The sending half: replies and status updates as mail, threaded so the customer's
//! client shows them under the customer's own message.

use lettre::Address;
use lettre::message::header::{ContentType, Header, HeaderName, HeaderValue};
use lettre::message::{Attachment, Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use switchboard_connector_core::{KeyError, OutboundChannel, OutboundKind, OutboundMessage, Receipt, SendError};

use crate::config::{EmailSettings, Security};
use crate::thread::{OurMessageId, reply_subject, update_subject};

/// How long one SMTP conversation may take before it counts as failed (and retries).
const SMTP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

#[derive(Clone)]
pub struct SmtpSender {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    domain: String,
}

impl std::fmt::Debug for SmtpSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSender")
            .field("from", &self.from.to_string())
            .finish()
    }
}

/// RFC 3834: an automatic message says so, so the customer's autoresponder stays quiet.
#[derive(Debug, Clone)]
struct AutoSubmitted;

impl Header for AutoSubmitted {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Auto-Submitted")
    }

    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(AutoSubmitted)
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "auto-replied".into())
    }
}

/// RFC 2369: a status update names where to ask for no more of them, so the customer's
/// client can show an Unsubscribe button. The mail that button sends has the subject
/// [`UNSUBSCRIBE_SUBJECT`], which [`crate::inbound`] reads as an opt-out.
#[derive(Debug, Clone)]
struct ListUnsubscribe(String);

impl Header for ListUnsubscribe {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("List-Unsubscribe")
    }

    fn parse(value: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(ListUnsubscribe(value.to_owned()))
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), self.0.clone())
    }
}

/// The subject of the mail a client's Unsubscribe button sends us; one of the words
/// inbound mail is read for.
pub const UNSUBSCRIBE_SUBJECT: &str = "unsubscribe";

/// `<mailto:address?subject=unsubscribe>` for the List-Unsubscribe header. The address
/// is percent-encoded where RFC 6068 asks (a `?`, `#` or `%` in the local part would
/// end or garble the address), and so are non-ASCII bytes: otherwise the header
/// encoder would turn the URI into an RFC 2047 encoded word no client reads as a link.
fn unsubscribe_uri(address: &Address) -> String {
    let mut uri = String::from("<mailto:");
    for byte in address.to_string().bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~!$'()*+;:@".contains(&byte) {
            uri.push(char::from(byte));
        } else {
            uri.push_str(&format!("%{byte:02X}"));
        }
    }
    uri.push_str("?subject=");
    uri.push_str(UNSUBSCRIBE_SUBJECT);
    uri.push('>');
    uri
}

impl SmtpSender {
    /// The error names the key of the inbox's table whose value the transport refused.
    pub fn new(settings: &EmailSettings) -> Result<SmtpSender, KeyError> {
        let smtp = &settings.smtp;
        let tls_parameters = || {
            let mut builder = TlsParameters::builder(smtp.host.clone());
            if let Some(pem) = &smtp.extra_roots_pem {
                let certificate =
                    Certificate::from_pem(pem).map_err(|err| KeyError::new("smtp.ca_file", err.to_string()))?;
                builder = builder.add_root_certificate(certificate);
            }
            builder
                .build_rustls()
                .map_err(|err| KeyError::new("smtp.host", format!("`{}`: {err}", smtp.host)))
        };
        let tls = match smtp.security {
            Security::Tls => Tls::Wrapper(tls_parameters()?),
            Security::StartTls => Tls::Required(tls_parameters()?),
            Security::Plain => Tls::None,
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host)
            .tls(tls)
            .port(smtp.port)
            .timeout(Some(SMTP_TIMEOUT));
        if let Some(password) = &smtp.password {
            builder = builder.credentials(Credentials::new(smtp.user.clone(), password.0.clone()));
        }
        let address = settings
            .address
            .parse()
            .map_err(|err| KeyError::new("address", format!("`{}`: {err}", settings.address)))?;
        Ok(SmtpSender {
            transport: builder.build(),
            from: Mailbox::new(settings.display_name.clone(), address),
            domain: settings.domain.clone(),
        })
    }

    /// The mail for one outbound message; its Message-ID names conversation and message.
    pub fn build(&self, message: &OutboundMessage) -> Result<(Message, String), SendError> {
        let recipient: Mailbox = message.recipient.parse().map_err(|err| {
            SendError::permanent(format!(
                "the recipient `{}` is not an address: {err}",
                message.recipient
            ))
        })?;
        let message_id = OurMessageId {
            conversation_id: message.conversation_id,
            message_id: message.message_id,
        }
        .format(&self.domain);
        let update = message.update.as_ref();
        let subject = match update {
            Some(update) => update_subject(
                message.subject.as_deref(),
                update.subject.as_deref(),
                message.conversation_id,
            ),
            None => reply_subject(message.subject.as_deref(), message.conversation_id),
        };
        let mut builder = Message::builder()
            .from(self.from.clone())
            .to(recipient)
            .subject(subject)
            .message_id(Some(format!("<{message_id}>")));
        if let Some(in_reply_to) = &message.in_reply_to {
            builder = builder.in_reply_to(format!("<{in_reply_to}>"));
        }
        if !message.references.is_empty() {
            let references: Vec<String> = message.references.iter().map(|id| format!("<{id}>")).collect();
            builder = builder.references(references.join(" "));
        }
        if message.kind == OutboundKind::StatusUpdate {
            builder = builder
                .header(AutoSubmitted)
                .header(ListUnsubscribe(unsubscribe_uri(&self.from.email)));
        }
        let html = match update.and_then(|update| update.html.clone()) {
            Some(html) => html,
            None => text_to_html(&message.text),
        };
        let text = MultiPart::alternative_plain_html(message.text.clone(), html);
        let body = if message.attachments.is_empty() {
            text
        } else {
            let mut mixed = MultiPart::mixed().multipart(text);
            for attachment in &message.attachments {
                // A content type the agent's client sent that lettre cannot read still
                // leaves, as plain bytes.
                let content_type = ContentType::parse(&attachment.content_type)
                    .unwrap_or_else(|_| ContentType::parse("application/octet-stream").expect("a valid type"));
                mixed = mixed.singlepart(
                    Attachment::new(attachment.filename.clone()).body(attachment.data.clone(), content_type),
                );
            }
            mixed
        };
        let mail = builder
            .multipart(body)
            .map_err(|err| SendError::permanent(format!("the mail cannot be built: {err}")))?;
        Ok((mail, message_id))
    }
}

impl OutboundChannel for SmtpSender {
    async fn send(&self, message: &OutboundMessage) -> Result<Receipt, SendError> {
        let (mail, message_id) = self.build(message)?;
        match self.transport.send(mail).await {
            Ok(response) => Ok(Receipt {
                external_id: Some(message_id.clone()),
                detail: format!(
                    "SMTP {} {}",
                    response.code(),
                    response.message().collect::<Vec<_>>().join(" ")
                ),
                thread_id: Some(message_id),
            }),
            Err(err) => Err(classify(&err)),
        }
    }
}

/// 5xx: the server refuses this mail (unknown mailbox, rejected content); the same
/// mail will be refused again. Except 53x, a refused login: that is the operator's
/// password, not the mail, and the reply must still leave once it is fixed. Everything
/// else (4xx, refused or dropped connections, timeouts) is the server being away: retry.
fn classify(err: &lettre::transport::smtp::Error) -> SendError {
    let code = err.status().map(|code| code.to_string());
    if code.as_deref().is_some_and(is_login_refusal) {
        return SendError::transient(format!(
            "SMTP login refused, check the inbox's smtp user and password: {err}"
        ));
    }
    if err.is_permanent() {
        SendError::permanent(format!("SMTP {err}"))
    } else {
        SendError::transient(format!("SMTP {err}"))
    }
}

/// 530 (authentication required), 534 and 535 (credentials refused), 538.
fn is_login_refusal(code: &str) -> bool {
    code.len() == 3 && code.starts_with("53")
}

/// The HTML part of a reply: the text, escaped, with its line breaks.
pub fn text_to_html(text: &str) -> String {
    let mut html = String::with_capacity(text.len() + 64);
    html.push_str("<!DOCTYPE html><html><body><div style=\"white-space: pre-wrap\">");
    for c in text.chars() {
        match c {
            '<' => html.push_str("&lt;"),
            '>' => html.push_str("&gt;"),
            '&' => html.push_str("&amp;"),
            '"' => html.push_str("&quot;"),
            '\n' => html.push_str("<br>\n"),
            '\r' => {}
            c => html.push(c),
        }
    }
    html.push_str("</div></body></html>");
    html
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::{Limits, parse};
    use switchboard_connector_core::{OutboundAttachment, StatusUpdate};

    fn settings() -> EmailSettings {
        crate::config::test_settings()
    }

    /// An update in conversation 42 about a customer mail whose subject was `Invoice`.
    fn outbound(kind: OutboundKind, update: Option<StatusUpdate>) -> OutboundMessage {
        OutboundMessage {
            delivery_id: "msg_9".into(),
            conversation_id: 42,
            message_id: 9,
            recipient: "ada@example.org".into(),
            thread: None,
            subject: Some("Invoice".into()),
            text: "Your request is resolved.".into(),
            kind,
            in_reply_to: Some("CAF=abc@mail.example.org".into()),
            references: vec!["CAF=abc@mail.example.org".into()],
            attachments: vec![],
            update,
            window_open: true,
            parts_sent: 0,
        }
    }

    /// The built mail's raw header `name`, for headers [`parse`] does not keep.
    fn header(raw: &[u8], name: &str) -> Option<String> {
        let message = mail_parser::MessageParser::default().parse(raw).unwrap();
        message.header_raw(name).map(|value| value.trim().to_owned())
    }

    #[tokio::test]
    async fn a_status_update_answers_the_customers_subject_and_carries_the_templates_html() {
        let sender = SmtpSender::new(&settings()).unwrap();
        let update = StatusUpdate {
            event: "resolved".into(),
            subject: Some("Your request is resolved".into()),
            html: Some("<!DOCTYPE html><html><body><p><b>Resolved</b></p></body></html>".into()),
            ..StatusUpdate::default()
        };
        let (mail, _) = sender
            .build(&outbound(OutboundKind::StatusUpdate, Some(update)))
            .unwrap();
        let parsed = parse(&mail.formatted(), Limits::default()).unwrap();
        // The customer's thread, not the template's words: clients that thread by
        // subject keep it with the customer's mail.
        assert_eq!(parsed.subject.as_deref(), Some("Re: Invoice [#42]"));
        assert_eq!(parsed.text.trim_end(), "Your request is resolved.");
        assert_eq!(
            parsed.html.as_deref().map(str::trim_end),
            Some("<!DOCTYPE html><html><body><p><b>Resolved</b></p></body></html>")
        );
    }

    #[tokio::test]
    async fn without_a_customer_subject_the_templates_stands_in_tagged_once() {
        let sender = SmtpSender::new(&settings()).unwrap();
        let update = StatusUpdate {
            event: "assigned".into(),
            subject: Some("Request [#42]: Grace is on it".into()),
            ..StatusUpdate::default()
        };
        let mut message = outbound(OutboundKind::StatusUpdate, Some(update));
        message.subject = None;
        let (mail, _) = sender.build(&message).unwrap();
        let parsed = parse(&mail.formatted(), Limits::default()).unwrap();
        assert_eq!(parsed.subject.as_deref(), Some("Request [#42]: Grace is on it"));
    }

    #[tokio::test]
    async fn a_status_update_without_template_parts_reads_like_a_reply() {
        let sender = SmtpSender::new(&settings()).unwrap();
        let update = StatusUpdate {
            event: "received".into(),
            subject: Some("  ".into()),
            ..StatusUpdate::default()
        };
        let (mail, _) = sender
            .build(&outbound(OutboundKind::StatusUpdate, Some(update)))
            .unwrap();
        let parsed = parse(&mail.formatted(), Limits::default()).unwrap();
        assert_eq!(parsed.subject.as_deref(), Some("Re: Invoice [#42]"));
        assert_eq!(
            parsed.html.as_deref().map(str::trim_end),
            Some(text_to_html("Your request is resolved.").as_str())
        );
    }

    #[tokio::test]
    async fn status_updates_offer_unsubscribe_and_replies_do_not() {
        let sender = SmtpSender::new(&settings()).unwrap();
        let (update, _) = sender.build(&outbound(OutboundKind::StatusUpdate, None)).unwrap();
        let update = update.formatted();
        assert_eq!(
            header(&update, "List-Unsubscribe").as_deref(),
            Some("<mailto:support@example.com?subject=unsubscribe>")
        );
        assert_eq!(header(&update, "Auto-Submitted").as_deref(), Some("auto-replied"));
        let (reply, _) = sender.build(&outbound(OutboundKind::Reply, None)).unwrap();
        let reply = reply.formatted();
        assert_eq!(header(&reply, "List-Unsubscribe"), None);
        assert_eq!(header(&reply, "Auto-Submitted"), None);
    }

    #[test]
    fn the_unsubscribe_address_is_encoded_where_it_would_end_the_uri() {
        let address = Address::new("help?desk#1%", "example.com").unwrap();
        assert_eq!(
            unsubscribe_uri(&address),
            "<mailto:help%3Fdesk%231%25@example.com?subject=unsubscribe>"
        );
    }

    #[tokio::test]
    async fn the_mail_the_unsubscribe_button_sends_is_an_opt_out() {
        let settings = settings();
        let sender = SmtpSender::new(&settings).unwrap();
        let (update, _) = sender.build(&outbound(OutboundKind::StatusUpdate, None)).unwrap();
        let uri = header(&update.formatted(), "List-Unsubscribe").unwrap();
        let (to, subject) = uri
            .trim_start_matches("<mailto:")
            .trim_end_matches('>')
            .split_once("?subject=")
            .unwrap();
        // What a client sends for the button: the URI's address and subject, and a
        // body of its own.
        let button = format!(
            "From: Ada <ada@example.org>\r\nTo: {to}\r\nSubject: {subject}\r\n\
             Message-ID: <unsub-1@example.org>\r\n\r\nThis message was generated by the mail client.\r\n"
        );
        let message = match crate::inbound::disposition(button.as_bytes(), &settings) {
            crate::inbound::Disposition::Ingest(message) => message,
            crate::inbound::Disposition::Skip(reason) => panic!("skipped: {reason}"),
        };
        assert_eq!(message.opt_out, Some(true));
    }

    #[tokio::test]
    async fn a_reply_is_threaded_and_tagged() {
        let sender = SmtpSender::new(&settings()).unwrap();
        let message = OutboundMessage {
            delivery_id: "msg_9".into(),
            conversation_id: 42,
            message_id: 9,
            recipient: "ada@example.org".into(),
            thread: None,
            subject: Some("AW: Invoice <missing>".into()),
            text: "Hello Ada,\n<b>not bold</b> & done".into(),
            kind: OutboundKind::StatusUpdate,
            in_reply_to: Some("CAF=abc@mail.example.org".into()),
            references: vec!["root@example.org".into(), "CAF=abc@mail.example.org".into()],
            attachments: vec![OutboundAttachment {
                filename: "Rechnung März.pdf".into(),
                content_type: "application/pdf".into(),
                data: b"%PDF-1.4 not really".to_vec(),
            }],
            update: None,
            window_open: true,
            parts_sent: 0,
        };
        let (mail, id) = sender.build(&message).unwrap();
        assert_eq!(id, "switchboard.42.9@example.com");
        let raw = mail.formatted();
        let parsed = parse(&raw, Limits::default()).unwrap();
        assert_eq!(parsed.message_id.as_deref(), Some(id.as_str()));
        assert_eq!(parsed.in_reply_to, vec!["CAF=abc@mail.example.org".to_owned()]);
        assert_eq!(
            parsed.references,
            vec!["root@example.org".to_owned(), "CAF=abc@mail.example.org".to_owned()]
        );
        assert_eq!(parsed.subject.as_deref(), Some("Re: Invoice <missing> [#42]"));
        assert_eq!(parsed.text.trim_end(), "Hello Ada,\n<b>not bold</b> & done");
        assert!(parsed.html.unwrap().contains("&lt;b&gt;not bold&lt;/b&gt; &amp; done"));
        assert!(
            parsed.automated.is_some(),
            "status updates carry Auto-Submitted so autoresponders stay quiet"
        );
        assert_eq!(parsed.attachments.len(), 1);
        assert_eq!(parsed.attachments[0].filename, "Rechnung März.pdf");
        assert_eq!(parsed.attachments[0].content_type, "application/pdf");
        assert_eq!(parsed.attachments[0].data, b"%PDF-1.4 not really");
        let from = parsed.from.unwrap();
        assert_eq!(
            (from.address.as_str(), from.name.as_deref()),
            ("support@example.com", Some("Example Support"))
        );
    }

    #[test]
    fn a_refused_login_is_not_the_mails_fault() {
        assert!(is_login_refusal("535"));
        assert!(is_login_refusal("530"));
        assert!(!is_login_refusal("550"));
        assert!(!is_login_refusal("554"));
    }

    #[tokio::test]
    async fn a_bad_recipient_is_permanent() {
        let sender = SmtpSender::new(&settings()).unwrap();
        let message = OutboundMessage {
            delivery_id: "msg_1".into(),
            conversation_id: 1,
            message_id: 1,
            recipient: "not an address".into(),
            thread: None,
            subject: None,
            text: "x".into(),
            kind: OutboundKind::Reply,
            in_reply_to: None,
            references: vec![],
            attachments: vec![],
            update: None,
            window_open: true,
            parts_sent: 0,
        };
        assert!(matches!(sender.build(&message), Err(SendError::Permanent { .. })));
    }
}
