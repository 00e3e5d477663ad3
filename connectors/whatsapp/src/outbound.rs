//! The sending half: replies and status updates as Cloud API messages.
//!
//! - Inside the 24-hour customer service window: a text (split at 4096 characters), an
//!   agent's files uploaded and sent by media id, a satisfaction question as a list
//!   message whose rows carry the CSAT callback data (reply buttons stop at three; the
//!   scores need five).
//! - Outside it (`window_open == false`): a reply cannot go at all (permanent), and a
//!   status update goes as the approved template configured for its event and language,
//!   else in the fallback language, else it is skipped. Meta's 131047 before anything
//!   went means it was outside after all: the message is planned again as such.
//!
//! The text of a reply with files rides as the caption of the first file when that file
//! takes one (image, video, document) and the text fits a caption: one message instead
//! of two, which matters when each message to a customer waits out the pair interval.
//! Otherwise the text goes first, then the files. The receipt names the last message
//! sent, the one whose `read` means the customer saw it all.
//!
//! Failures are judged in one place, [`classify`].

use std::time::Duration;

use serde_json::{Value, json};
use switchboard_connector_core::{BoxFuture, MessageSender};
use switchboard_connector_core::{CsatQuestion, OutboundAttachment, OutboundKind, OutboundMessage, Receipt, SendError};

use crate::config::{Template, Templates, WhatsappSettings};
use crate::graph::{Graph, GraphFailure};
use crate::pacing::Pacer;

/// WhatsApp's longest text message, in characters.
pub const MAX_TEXT_CHARS: usize = 4096;
/// The longest caption of a file.
const MAX_CAPTION_CHARS: usize = 1024;
/// The longest body of an interactive message.
const MAX_INTERACTIVE_BODY_CHARS: usize = 1024;
/// Images WhatsApp shows inline, and their size limit; others go as documents.
const IMAGE_TYPES: [&str; 2] = ["image/jpeg", "image/png"];
const MAX_IMAGE_BYTES: usize = 5 * 1024 * 1024;
const VIDEO_TYPES: [&str; 2] = ["video/mp4", "video/3gpp"];
const AUDIO_TYPES: [&str; 5] = ["audio/aac", "audio/amr", "audio/mpeg", "audio/mp4", "audio/ogg"];
const MAX_AUDIO_VIDEO_BYTES: usize = 16 * 1024 * 1024;
/// How long to wait after Meta's throughput error (130429) when it names no time: its
/// counter is per second, so a couple of seconds clears it with room.
const THROUGHPUT_WAIT: Duration = Duration::from_secs(2);

/// The words on the CSAT list's button (at most 20 characters, no language of its own).
const CSAT_BUTTON: &str = "⭐ 1–5";
/// What goes above the CSAT list when the update's text is too long to be its body
/// (the text then goes first, as a message of its own).
const CSAT_SHORT_BODY: &str = "⭐ 1–5";

const WINDOW_CLOSED: &str = "WhatsApp's 24-hour customer service window is closed (the customer's last message is more than 24 hours old): only an approved template may go until they write again";

/// One inbox's sender.
#[derive(Debug)]
pub struct WhatsappSender {
    graph: Graph,
    pacer: Pacer,
    templates: Templates,
    pair_rate_wait: Duration,
}

/// Why a send stopped: Meta's word that the window is closed, before any part went, is
/// kept apart, since the message can still go as it would outside the window.
#[derive(Debug)]
enum Refused {
    WindowClosed(SendError),
    Other(SendError),
}

impl Refused {
    fn into_send_error(self) -> SendError {
        match self {
            Refused::WindowClosed(error) | Refused::Other(error) => error,
        }
    }
}

/// One message of a send, in the order they go.
#[derive(Debug, Clone, PartialEq)]
enum Part<'a> {
    Text(String),
    File {
        attachment: &'a OutboundAttachment,
        caption: Option<String>,
    },
    /// Ready to send, but for `to`.
    Body(Value),
}

impl WhatsappSender {
    pub fn new(settings: &WhatsappSettings, graph: Graph) -> WhatsappSender {
        WhatsappSender {
            graph,
            pacer: Pacer::new(&settings.limits),
            templates: settings.templates.clone(),
            pair_rate_wait: settings.limits.pair_rate_wait,
        }
    }

    async fn deliver(&self, message: &OutboundMessage) -> Result<Receipt, SendError> {
        let to = recipient(&message.recipient)?;
        let parts = plan(message, message.window_open, &self.templates)?;
        match self.send_parts(to, parts, message.parts_sent).await {
            // Meta counts the window from its own record of the customer's last message,
            // which can be older than the desk's (a message that reached the desk by
            // another way, clocks apart at the edge of the 24 hours). When it says the
            // window is closed before anything went, the message is what it would be
            // outside the window: a status update by its template or skipped, a reply
            // refused, naming the window.
            Err(Refused::WindowClosed(error)) if message.window_open => {
                match plan(message, false, &self.templates) {
                    Ok(parts) => {
                        tracing::info!(%error, "whatsapp: Meta says the window is closed; the update goes by its template");
                        self.send_parts(to, parts, 0).await.map_err(Refused::into_send_error)
                    }
                    Err(skipped @ SendError::Skipped { .. }) => Err(skipped),
                    // A reply cannot go outside the window; Meta's own words say why.
                    Err(_) => Err(error),
                }
            }
            sent => sent.map_err(Refused::into_send_error),
        }
    }

    /// Sends `parts` after the first `already` (taken in earlier attempts). A failure
    /// part-way says how many went, counting those.
    async fn send_parts(&self, to: &str, parts: Vec<Part<'_>>, already: u32) -> Result<Receipt, Refused> {
        let mut last = None;
        let count = parts.len();
        // An attempt fails only before its last part, so as many parts as went means
        // another plan: a status update begun inside the window and retried outside it
        // goes whole, as its template.
        let already = if usize::try_from(already).unwrap_or(usize::MAX) >= count {
            0
        } else {
            already
        };
        let remaining = parts.into_iter().skip(usize::try_from(already).unwrap_or(usize::MAX));
        // `went`: the parts the channel took before this one.
        for (went, part) in (already..).zip(remaining) {
            let refused = |error: SendError| Refused::Other(error.after_parts(went));
            let body = match part {
                Part::Text(text) => text_body(&text),
                Part::Body(body) => body,
                Part::File { attachment, caption } => {
                    let kind = media_kind(attachment);
                    // Uploads do not reach the customer: they need no turn.
                    let id = self
                        .graph
                        .upload(&attachment.filename, &attachment.content_type, attachment.data.clone())
                        .await
                        .map_err(|failure| refused(self.judge(&failure, to)))?;
                    media_body(kind, &id, caption.as_deref(), &attachment.filename)
                }
            };
            self.pacer.wait_turn(to).await;
            let sent = match self.graph.send(&addressed(body, to)).await {
                Ok(sent) => sent,
                Err(failure) if went == 0 && is_window_closed(&failure) => {
                    return Err(Refused::WindowClosed(self.judge(&failure, to)));
                }
                Err(failure) => return Err(refused(self.judge(&failure, to))),
            };
            last = sent.id.or(last);
        }
        Ok(Receipt {
            detail: format!(
                "WhatsApp accepted {count} message(s){}, last {}",
                if already > 0 {
                    format!(" ({already} in earlier attempts)")
                } else {
                    String::new()
                },
                last.as_deref().unwrap_or("without an id")
            ),
            external_id: last,
            thread_id: None,
        })
    }

    fn judge(&self, failure: &GraphFailure, to: &str) -> SendError {
        let verdict = classify(failure, self.pair_rate_wait);
        if let SendError::Transient {
            retry_after: Some(wait),
            ..
        } = &verdict
            && is_pair_rate(failure)
        {
            self.pacer.hold(to, *wait);
        }
        tracing::debug!(error = %failure, "whatsapp: a send failed");
        verdict
    }
}

impl MessageSender for WhatsappSender {
    fn send<'a>(&'a self, message: &'a OutboundMessage) -> BoxFuture<'a, Result<Receipt, SendError>> {
        Box::pin(self.deliver(message))
    }
}

/// The recipient's `wa_id` (digits; a leading `+` is dropped).
fn recipient(external_id: &str) -> Result<&str, SendError> {
    let digits = external_id.trim().trim_start_matches('+');
    if digits.is_empty() || digits.len() > 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SendError::permanent(format!(
            "`{external_id}` is not a WhatsApp number (wa_id digits)"
        )));
    }
    Ok(digits)
}

/// What to send for `message`, in order; pure, so each choice is tested without I/O.
fn plan<'a>(
    message: &'a OutboundMessage,
    window_open: bool,
    templates: &Templates,
) -> Result<Vec<Part<'a>>, SendError> {
    let update = message
        .update
        .as_ref()
        .filter(|_| message.kind == OutboundKind::StatusUpdate);
    if !window_open {
        let Some(update) = update else {
            return Err(SendError::permanent(format!("cannot send a reply: {WINDOW_CLOSED}")));
        };
        let language = update.language.as_deref();
        let Some(template) = templates.find(&update.event, language) else {
            return Err(SendError::Skipped {
                reason: format!(
                    "outside WhatsApp's 24-hour window, and no template is configured for `{}` in `{}` (templates.{}.{})",
                    update.event,
                    language.unwrap_or("no language"),
                    update.event,
                    language
                        .map(crate::config::primary_tag)
                        .unwrap_or_else(|| "<language>".into()),
                ),
            });
        };
        return Ok(vec![Part::Body(template_body(template, &update.fields)?)]);
    }
    let text = message.text.trim();
    let mut parts = Vec::new();
    if let Some(question) = update.and_then(|update| update.csat.as_ref()) {
        if text.chars().count() <= MAX_INTERACTIVE_BODY_CHARS && !text.is_empty() {
            parts.push(Part::Body(csat_body(text, question)));
        } else {
            parts.extend(split_text(text).into_iter().map(Part::Text));
            parts.push(Part::Body(csat_body(CSAT_SHORT_BODY, question)));
        }
        return Ok(parts);
    }
    let captioned = message.attachments.first().is_some_and(|first| {
        !text.is_empty()
            && text.chars().count() <= MAX_CAPTION_CHARS
            && matches!(media_kind(first), "image" | "video" | "document")
    });
    if !captioned && !text.is_empty() {
        parts.extend(split_text(text).into_iter().map(Part::Text));
    }
    for (index, attachment) in message.attachments.iter().enumerate() {
        parts.push(Part::File {
            attachment,
            caption: (captioned && index == 0).then(|| text.to_owned()),
        });
    }
    if parts.is_empty() {
        return Err(SendError::permanent("the message has neither text nor files"));
    }
    Ok(parts)
}

/// How WhatsApp carries an agent's file: images and videos inline, audio as a player,
/// anything else (or too large to go inline) as a document.
fn media_kind(attachment: &OutboundAttachment) -> &'static str {
    let essence = attachment
        .content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let size = attachment.data.len();
    if IMAGE_TYPES.contains(&essence.as_str()) && size <= MAX_IMAGE_BYTES {
        "image"
    } else if VIDEO_TYPES.contains(&essence.as_str()) && size <= MAX_AUDIO_VIDEO_BYTES {
        "video"
    } else if AUDIO_TYPES.contains(&essence.as_str()) && size <= MAX_AUDIO_VIDEO_BYTES {
        "audio"
    } else {
        "document"
    }
}

fn addressed(mut body: Value, to: &str) -> Value {
    body["messaging_product"] = json!("whatsapp");
    body["recipient_type"] = json!("individual");
    body["to"] = json!(to);
    body
}

fn text_body(text: &str) -> Value {
    json!({"type": "text", "text": {"preview_url": false, "body": text}})
}

fn media_body(kind: &str, media_id: &str, caption: Option<&str>, filename: &str) -> Value {
    let mut media = json!({"id": media_id});
    if let Some(caption) = caption {
        media["caption"] = json!(caption);
    }
    if kind == "document" {
        media["filename"] = json!(filename);
    }
    json!({"type": kind, kind: media})
}

/// A list message with the scores 1–5 as rows whose ids are the question's callback data.
fn csat_body(text: &str, question: &CsatQuestion) -> Value {
    let rows: Vec<Value> = (1..=5u8)
        .map(|score| {
            json!({
                "id": question.callback_data(score),
                "title": format!("{score} {}", "⭐".repeat(usize::from(score))),
            })
        })
        .collect();
    json!({
        "type": "interactive",
        "interactive": {
            "type": "list",
            "body": {"text": text},
            "action": {"button": CSAT_BUTTON, "sections": [{"rows": rows}]},
        }
    })
}

/// The template message, its body parameters filled from the update's fields in order.
fn template_body(template: &Template, fields: &Value) -> Result<Value, SendError> {
    let mut parameters = Vec::with_capacity(template.parameters.len());
    for name in &template.parameters {
        // `team.name` reads a nested field.
        let text = match fields.pointer(&format!("/{}", name.replace('.', "/"))) {
            Some(Value::String(text)) => text.clone(),
            Some(value @ (Value::Number(_) | Value::Bool(_))) => value.to_string(),
            _ => {
                return Err(SendError::permanent(format!(
                    "template `{}` needs the field `{name}`, which this `{}` update does not carry as text",
                    template.name, template.language
                )));
            }
        };
        parameters.push(json!({"type": "text", "text": template_text(&text)}));
    }
    let mut body = json!({
        "type": "template",
        "template": {"name": template.name, "language": {"code": template.language}},
    });
    if !parameters.is_empty() {
        body["template"]["components"] = json!([{"type": "body", "parameters": parameters}]);
    }
    Ok(body)
}

/// Meta refuses template parameters with new lines, tabs or more than four spaces in a
/// row (error 132018), and empty ones: such a value is flattened, not a failed update.
fn template_text(text: &str) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.is_empty() { "-".into() } else { flat }
}

/// Splits a text into messages WhatsApp takes, at a paragraph, line or word break in the
/// last fifth of each piece where there is one.
pub fn split_text(text: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut rest = text.trim();
    while rest.chars().count() > MAX_TEXT_CHARS {
        let end = rest
            .char_indices()
            .nth(MAX_TEXT_CHARS)
            .map_or(rest.len(), |(index, _)| index);
        let head = &rest[..end];
        let floor = end - end / 5;
        let cut = ["\n\n", "\n", " "]
            .into_iter()
            .find_map(|separator| head.rfind(separator).filter(|at| *at >= floor && *at > 0))
            .unwrap_or(end);
        parts.push(rest[..cut].trim_end().to_owned());
        rest = rest[cut..].trim_start();
    }
    if !rest.is_empty() {
        parts.push(rest.to_owned());
    }
    parts
}

fn graph_code(failure: &GraphFailure) -> Option<i64> {
    match failure {
        GraphFailure::Http { error: Some(error), .. } => error.code,
        _ => None,
    }
}

fn is_pair_rate(failure: &GraphFailure) -> bool {
    graph_code(failure) == Some(131_056)
}

fn is_window_closed(failure: &GraphFailure) -> bool {
    matches!(graph_code(failure), Some(131_047 | 470))
}

/// Meta's verdict on a send, as the outbox acts on it.
///
/// - 130429 (throughput) and 131056 (pair rate): wait and retry, for the time Meta
///   named, else [`THROUGHPUT_WAIT`] and `pair_rate_wait`.
/// - 131026: the number cannot receive WhatsApp messages (not on WhatsApp, an old app,
///   blocked us): the contact is unreachable here.
/// - 131047 (and the older 470): the 24-hour window closed: only a template can go.
/// - 131048 (spam rate), 131000 (something went wrong), 80007 (account rate limit), 4
///   (application rate limit), 1, 2, 131016, 133004 (service unavailable), HTTP 429 and
///   5xx, network trouble and timeouts: retry later.
/// - 190 (the token expired or was revoked) and any other 4xx: retrying cannot help.
pub fn classify(failure: &GraphFailure, pair_rate_wait: Duration) -> SendError {
    let reason = format!("WhatsApp: {failure}");
    let (status, named_wait) = match failure {
        GraphFailure::Network { .. } | GraphFailure::Unreadable(_) => return SendError::transient(reason),
        GraphFailure::Http {
            status, retry_after, ..
        } => (*status, *retry_after),
    };
    match graph_code(failure) {
        Some(130_429) => SendError::Transient {
            reason,
            retry_after: Some(named_wait.unwrap_or(THROUGHPUT_WAIT)),
        },
        Some(131_056) => SendError::Transient {
            reason,
            retry_after: Some(named_wait.unwrap_or(pair_rate_wait)),
        },
        Some(131_026) => SendError::Unreachable { reason },
        Some(131_047 | 470) => SendError::permanent(format!("{WINDOW_CLOSED}; {reason}")),
        Some(131_048 | 131_000 | 80_007 | 4 | 1 | 2 | 131_016 | 133_004) => SendError::Transient {
            reason,
            retry_after: named_wait,
        },
        Some(190) => SendError::permanent(format!(
            "the access token is invalid or expired; set a new one: {reason}"
        )),
        _ if status == 429 || status >= 500 => SendError::Transient {
            reason,
            retry_after: named_wait,
        },
        _ => SendError::permanent(reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{ErrorData, GraphError};
    use switchboard_connector_core::StatusUpdate;

    const PAIR_WAIT: Duration = Duration::from_secs(6);

    fn graph_error(status: u16, code: i64) -> GraphFailure {
        GraphFailure::Http {
            status,
            error: Some(GraphError {
                message: "(#131056) (Business Account, Consumer Account) pair rate limit hit".into(),
                kind: "OAuthException".into(),
                code: Some(code),
                error_subcode: None,
                error_data: Some(ErrorData {
                    details: Some("Too many messages sent from this phone number to the same phone number".into()),
                }),
                fbtrace_id: Some("A2x3".into()),
            }),
            retry_after: None,
        }
    }

    fn is_transient(error: &SendError) -> bool {
        matches!(error, SendError::Transient { .. })
    }

    #[test]
    fn throughput_and_pair_rate_wait_and_retry() {
        let SendError::Transient { retry_after, .. } = classify(&graph_error(400, 130_429), PAIR_WAIT) else {
            panic!("130429 is transient");
        };
        assert_eq!(retry_after, Some(THROUGHPUT_WAIT));
        let SendError::Transient { retry_after, reason } = classify(&graph_error(400, 131_056), PAIR_WAIT) else {
            panic!("131056 is transient");
        };
        assert_eq!(retry_after, Some(PAIR_WAIT));
        assert!(
            reason.contains("131056") && reason.contains("fbtrace_id A2x3"),
            "{reason}"
        );
    }

    #[test]
    fn a_number_that_cannot_receive_is_unreachable() {
        assert!(matches!(
            classify(&graph_error(400, 131_026), PAIR_WAIT),
            SendError::Unreachable { .. }
        ));
    }

    #[test]
    fn re_engagement_is_permanent_and_names_the_window() {
        for code in [131_047, 470] {
            let SendError::Permanent { reason } = classify(&graph_error(400, code), PAIR_WAIT) else {
                panic!("{code} is permanent");
            };
            assert!(reason.contains("24-hour"), "{reason}");
        }
    }

    #[test]
    fn rate_limits_and_meta_trouble_are_transient() {
        for code in [131_048, 131_000, 80_007, 4, 1, 2, 131_016, 133_004] {
            assert!(is_transient(&classify(&graph_error(400, code), PAIR_WAIT)), "{code}");
        }
        assert!(is_transient(&classify(&graph_error(500, 100), PAIR_WAIT)));
        assert!(is_transient(&classify(
            &GraphFailure::Http {
                status: 503,
                error: None,
                retry_after: Some(Duration::from_secs(30))
            },
            PAIR_WAIT
        )));
        let network = GraphFailure::Network {
            reason: "connection refused".into(),
            timeout: false,
        };
        assert!(is_transient(&classify(&network, PAIR_WAIT)));
        let timeout = GraphFailure::Network {
            reason: "operation timed out".into(),
            timeout: true,
        };
        assert!(is_transient(&classify(&timeout, PAIR_WAIT)));
    }

    #[test]
    fn a_bad_token_and_other_refusals_are_permanent() {
        let SendError::Permanent { reason } = classify(&graph_error(401, 190), PAIR_WAIT) else {
            panic!("190 is permanent");
        };
        assert!(reason.contains("access token"), "{reason}");
        for (status, code) in [(400, 100), (400, 132_001), (400, 131_051), (403, 10)] {
            assert!(
                matches!(
                    classify(&graph_error(status, code), PAIR_WAIT),
                    SendError::Permanent { .. }
                ),
                "{code}"
            );
        }
        let bare = GraphFailure::Http {
            status: 404,
            error: None,
            retry_after: None,
        };
        assert!(matches!(classify(&bare, PAIR_WAIT), SendError::Permanent { .. }));
    }

    fn message(kind: OutboundKind, text: &str, window_open: bool) -> OutboundMessage {
        OutboundMessage {
            delivery_id: "d1".into(),
            conversation_id: 7,
            message_id: 70,
            recipient: "4915112345678".into(),
            thread: None,
            subject: None,
            text: text.into(),
            kind,
            in_reply_to: None,
            references: vec![],
            attachments: vec![],
            update: None,
            window_open,
            parts_sent: 0,
        }
    }

    fn update(event: &str, language: Option<&str>) -> StatusUpdate {
        StatusUpdate {
            event: event.into(),
            language: language.map(str::to_owned),
            fields: json!({"conversation_id": 7, "agent_name": "Grace\nHopper"}),
            ..StatusUpdate::default()
        }
    }

    fn templates() -> Templates {
        let config: crate::config::WhatsappConfig = serde_json::from_value(json!({
            "phone_number_id": "1", "access_token_env": "T", "app_secret_env": "T", "verify_token_env": "T",
            "templates": {"assigned": {"en": {"name": "case_assigned", "language": "en_US",
                                              "parameters": ["conversation_id", "agent_name"]}}}
        }))
        .unwrap();
        config.validate(&|_: &str| Some("x".to_owned())).unwrap().templates
    }

    #[test]
    fn outside_the_window_a_reply_is_refused_naming_the_window() {
        let reply = message(OutboundKind::Reply, "Hello", false);
        let Err(SendError::Permanent { reason }) = plan(&reply, reply.window_open, &templates()) else {
            panic!("a reply outside the window is permanent");
        };
        assert!(reason.contains("24-hour"), "{reason}");
    }

    #[test]
    fn outside_the_window_an_update_goes_as_its_template_or_is_skipped() {
        let mut assigned = message(OutboundKind::StatusUpdate, "Grace took your case", false);
        assigned.update = Some(update("assigned", Some("en-GB")));
        let parts = plan(&assigned, assigned.window_open, &templates()).unwrap();
        assert_eq!(
            parts,
            [Part::Body(json!({
                "type": "template",
                "template": {"name": "case_assigned", "language": {"code": "en_US"},
                             "components": [{"type": "body", "parameters": [
                                 {"type": "text", "text": "7"}, {"type": "text", "text": "Grace Hopper"}]}]}
            }))]
        );
        assigned.update = Some(update("assigned", Some("de")));
        let Err(SendError::Skipped { reason }) = plan(&assigned, assigned.window_open, &templates()) else {
            panic!("no German template: skipped");
        };
        assert!(reason.contains("assigned") && reason.contains("`de`"), "{reason}");
        let mut missing_field = assigned.clone();
        let mut bare = update("assigned", Some("en"));
        bare.fields = json!({"conversation_id": 7});
        missing_field.update = Some(bare);
        assert!(matches!(
            plan(&missing_field, missing_field.window_open, &templates()),
            Err(SendError::Permanent { .. })
        ));
    }

    #[test]
    fn a_csat_question_is_a_list_of_five_scores() {
        let mut ask = message(OutboundKind::StatusUpdate, "How did we do?", true);
        let question = CsatQuestion { token: "tok".into() };
        ask.update = Some(StatusUpdate {
            csat: Some(question.clone()),
            ..update("csat.requested", Some("en"))
        });
        let [Part::Body(body)] = &plan(&ask, ask.window_open, &templates()).unwrap()[..] else {
            panic!("one interactive message");
        };
        assert_eq!(body["interactive"]["type"], "list");
        assert_eq!(body["interactive"]["body"]["text"], "How did we do?");
        let rows = body["interactive"]["action"]["sections"][0]["rows"].as_array().unwrap();
        assert_eq!(rows.len(), 5);
        for (score, row) in (1..=5u8).zip(rows) {
            assert_eq!(row["id"], question.callback_data(score));
            assert!(row["title"].as_str().unwrap().chars().count() <= 24);
        }
        assert!(CSAT_BUTTON.chars().count() <= 20);
    }

    #[test]
    fn the_text_rides_as_the_first_files_caption_when_it_can() {
        let file = |content_type: &str| OutboundAttachment {
            filename: "a".into(),
            content_type: content_type.into(),
            data: vec![1, 2, 3],
        };
        let mut reply = message(OutboundKind::Reply, "Here you go", true);
        reply.attachments = vec![file("image/png"), file("application/pdf")];
        let parts = plan(&reply, reply.window_open, &templates()).unwrap();
        assert!(matches!(&parts[..], [
            Part::File { caption: Some(caption), .. },
            Part::File { caption: None, .. },
        ] if caption == "Here you go"));
        // Audio takes no caption: the text goes first.
        reply.attachments = vec![file("audio/ogg")];
        let parts = plan(&reply, reply.window_open, &templates()).unwrap();
        assert!(matches!(&parts[..], [Part::Text(text), Part::File { caption: None, .. }] if text == "Here you go"));
    }

    #[test]
    fn files_go_as_the_kind_whatsapp_carries() {
        let file = |content_type: &str, size: usize| OutboundAttachment {
            filename: "f".into(),
            content_type: content_type.into(),
            data: vec![0; size],
        };
        assert_eq!(media_kind(&file("image/jpeg", 10)), "image");
        assert_eq!(media_kind(&file("image/jpeg", MAX_IMAGE_BYTES + 1)), "document");
        assert_eq!(media_kind(&file("image/webp", 10)), "document");
        assert_eq!(media_kind(&file("video/mp4", 10)), "video");
        assert_eq!(media_kind(&file("audio/ogg; codecs=opus", 10)), "audio");
        assert_eq!(media_kind(&file("application/pdf", 10)), "document");
        assert_eq!(
            media_body("document", "55", Some("see"), "r.pdf"),
            json!({"type": "document", "document": {"id": "55", "caption": "see", "filename": "r.pdf"}})
        );
    }

    #[test]
    fn long_texts_split_within_the_limit_at_word_breaks() {
        let text = "Wort ".repeat(2000);
        let parts = split_text(&text);
        assert_eq!(parts.len(), 3);
        assert!(
            parts
                .iter()
                .all(|part| part.chars().count() <= MAX_TEXT_CHARS && part.ends_with("Wort"))
        );
        assert_eq!(parts.join(" "), text.trim());
        let unbroken = "x".repeat(MAX_TEXT_CHARS + 1);
        assert_eq!(split_text(&unbroken).len(), 2);
    }

    #[test]
    fn recipients_are_digits() {
        assert_eq!(recipient("+4915112345678"), Ok("4915112345678"));
        assert!(matches!(recipient("ada@example.com"), Err(SendError::Permanent { .. })));
    }
}
