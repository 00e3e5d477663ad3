//! What a Cloud API webhook body means for the conversation model, in pure code.
//!
//! One POST carries `entry[].changes[].value`, and each value may hold several customer
//! messages and delivery statuses; every one becomes an [`Item`], in order. A body whose
//! envelope is broken is refused whole (Meta sends it again, and a person must look);
//! one message in a good batch that we cannot read is only [`Item::Ignored`], so it does
//! not hold back the others.
//!
//! The sender's phone number is given (`phone` = `+<wa_id>`) but not marked verified,
//! although WhatsApp did prove the customer holds it: the channel declares
//! `vouches_for_sender: false`, and a `wa_id` is not always the number the customer
//! gives elsewhere (Brazil's and Mexico's numbers have two spellings), so linking
//! contacts by it is left to agents.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};
use switchboard_connector_core::{CsatAnswer, DeliveryReport, DeliveryState, InboundMessage, Sender};

/// A customer's file, fetched by its media id before the message is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaRef {
    pub media_id: String,
    /// As the webhook states it (`audio/ogg; codecs=opus`).
    pub mime_type: String,
    pub filename: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// A customer's message, with the file to fetch when it carries one. Boxed: a
    /// message is many times the size of the other items.
    Message {
        message: Box<InboundMessage>,
        media: Option<MediaRef>,
    },
    /// What became of a message we sent.
    Status(DeliveryReport),
    /// Nothing for the desk, and why (for the log).
    Ignored(String),
}

/// Why a body was refused whole (HTTP 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("the body is not valid JSON: {0}")]
    NotJson(String),
    #[error("`{path}` {problem}")]
    Shape { path: String, problem: String },
}

fn shape(path: impl Into<String>, problem: impl Into<String>) -> BodyError {
    BodyError::Shape {
        path: path.into(),
        problem: problem.into(),
    }
}

/// Whole-message keywords (any case) that stop automated status updates, and the one
/// that resumes them: the words WhatsApp Business users expect to work.
const STOP_WORDS: [&str; 2] = ["stop", "unsubscribe"];
const START_WORD: &str = "start";

/// Reads a webhook body for the inbox whose number is `phone_number_id`.
pub fn normalize(body: &[u8], phone_number_id: &str) -> Result<Vec<Item>, BodyError> {
    let json: Value = serde_json::from_slice(body).map_err(|err| BodyError::NotJson(err.to_string()))?;
    normalize_value(&json, phone_number_id)
}

/// [`normalize`] of a body already parsed.
pub fn normalize_value(body: &Value, phone_number_id: &str) -> Result<Vec<Item>, BodyError> {
    let root = body
        .as_object()
        .ok_or_else(|| shape("the body", "must be a JSON object"))?;
    match root.get("object").and_then(Value::as_str) {
        Some("whatsapp_business_account") => {}
        Some(other) => {
            return Err(shape(
                "object",
                format!("is `{other}`, not `whatsapp_business_account`"),
            ));
        }
        None => return Err(shape("object", "is required")),
    }
    let entries = array(root, "entry", "entry")?;
    let mut items = Vec::new();
    for (e, entry) in entries.iter().enumerate() {
        let at = format!("entry[{e}]");
        let entry = entry.as_object().ok_or_else(|| shape(&at, "must be an object"))?;
        for (c, change) in array(entry, "changes", &format!("{at}.changes"))?.iter().enumerate() {
            let at = format!("{at}.changes[{c}]");
            let change = change.as_object().ok_or_else(|| shape(&at, "must be an object"))?;
            let field = change.get("field").and_then(Value::as_str).unwrap_or_default();
            if field != "messages" {
                // Template reviews, account updates, calls: subscribed by the app for others.
                items.push(Item::Ignored(format!("a `{field}` change")));
                continue;
            }
            let value = change
                .get("value")
                .and_then(Value::as_object)
                .ok_or_else(|| shape(format!("{at}.value"), "must be an object"))?;
            change_items(value, &format!("{at}.value"), phone_number_id, &mut items)?;
        }
    }
    Ok(items)
}

/// A required array field of `object`, named by `path` when missing.
fn array<'a>(object: &'a Map<String, Value>, key: &str, path: &str) -> Result<&'a Vec<Value>, BodyError> {
    object
        .get(key)
        .and_then(Value::as_array)
        .ok_or_else(|| shape(path, "must be an array"))
}

fn change_items(
    value: &Map<String, Value>,
    at: &str,
    phone_number_id: &str,
    items: &mut Vec<Item>,
) -> Result<(), BodyError> {
    let number = value
        .get("metadata")
        .and_then(|metadata| metadata.get("phone_number_id"))
        .and_then(Value::as_str)
        .ok_or_else(|| shape(format!("{at}.metadata.phone_number_id"), "is required"))?;
    let messages = optional_array(value, "messages", at)?;
    let statuses = optional_array(value, "statuses", at)?;
    if number != phone_number_id {
        // One app may serve several numbers, and Meta sends each app every number's changes.
        let count = messages.len() + statuses.len();
        items.push(Item::Ignored(format!("{count} item(s) for phone number id {number}")));
        return Ok(());
    }
    let contacts = contact_names(value);
    for message in messages {
        items.push(message_item(message, &contacts));
    }
    for status in statuses {
        items.push(status_item(status));
    }
    Ok(())
}

fn optional_array<'a>(object: &'a Map<String, Value>, key: &str, at: &str) -> Result<&'a [Value], BodyError> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(shape(format!("{at}.{key}"), "must be an array")),
    }
}

/// Profile names by `wa_id`.
fn contact_names(value: &Map<String, Value>) -> Vec<(String, Option<String>)> {
    value
        .get("contacts")
        .and_then(Value::as_array)
        .map(|contacts| {
            contacts
                .iter()
                .filter_map(|contact| {
                    let wa_id = contact.get("wa_id")?.as_str()?.to_owned();
                    let name = contact
                        .pointer("/profile/name")
                        .and_then(Value::as_str)
                        .map(str::trim)
                        .filter(|name| !name.is_empty())
                        .map(str::to_owned);
                    Some((wa_id, name))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn str_at<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value.pointer(pointer).and_then(Value::as_str)
}

/// A Unix time in seconds as WhatsApp writes it (a string of digits), in milliseconds.
fn timestamp_ms(value: &Value) -> Option<i64> {
    let seconds = match value.get("timestamp")? {
        Value::String(text) => text.trim().parse::<i64>().ok()?,
        Value::Number(number) => number.as_i64()?,
        _ => return None,
    };
    seconds.checked_mul(1000)
}

fn is_phone_digits(text: &str) -> bool {
    (1..=20).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit())
}

fn message_item(message: &Value, contacts: &[(String, Option<String>)]) -> Item {
    let Some(wamid) = str_at(message, "/id").filter(|id| !id.trim().is_empty()) else {
        return Item::Ignored("a message without an id".into());
    };
    let Some(from) = str_at(message, "/from").filter(|from| is_phone_digits(from)) else {
        return Item::Ignored(format!("message {wamid} names no sender phone number"));
    };
    let kind = str_at(message, "/type").unwrap_or_default();
    let name = contacts
        .iter()
        .find(|(wa_id, _)| wa_id == from)
        // A number WhatsApp spells two ways (`wa_id` and `from` differ in Brazil and
        // Mexico): with one contact in the change, it is the sender.
        .or_else(|| (contacts.len() == 1).then(|| &contacts[0]))
        .and_then(|(_, name)| name.clone());
    let mut details = BTreeMap::new();
    details.insert("wa_type".into(), json!(kind));
    if let Some(at) = timestamp_ms(message) {
        details.insert("timestamp_ms".into(), json!(at));
    }
    if message.pointer("/context/forwarded").and_then(Value::as_bool) == Some(true) {
        details.insert("forwarded".into(), json!(true));
    }
    let mut inbound = InboundMessage {
        external_id: wamid.to_owned(),
        sender: Sender {
            external_id: from.to_owned(),
            name,
            phone: Some(format!("+{from}")),
            ..Sender::default()
        },
        ..InboundMessage::default()
    };
    // A quote is shown to the agent, not used to thread: a WhatsApp chat has no
    // threads, so the message joins the customer's open conversation whatever it
    // quotes (our reply's wamid, or one from before the desk, is no message id of ours).
    if let Some(quoted) = str_at(message, "/context/id").filter(|id| !id.is_empty()) {
        details.insert("quotes".into(), json!(quoted));
    }
    let mut media = None;
    let typed_text = match kind {
        "text" => {
            let Some(body) = str_at(message, "/text/body").filter(|body| !body.trim().is_empty()) else {
                return Item::Ignored(format!("text message {wamid} has no text"));
            };
            inbound.text = body.to_owned();
            true
        }
        "image" | "audio" | "video" | "document" | "sticker" => {
            let file = &message[kind];
            let Some(media_id) = str_at(file, "/id").filter(|id| !id.is_empty()) else {
                return Item::Ignored(format!("{kind} message {wamid} has no media id"));
            };
            let mime_type = str_at(file, "/mime_type")
                .map(str::trim)
                .filter(|mime| mime.contains('/'))
                .unwrap_or("application/octet-stream")
                .to_owned();
            let filename = str_at(file, "/filename")
                .map(clean_filename)
                .filter(|name| !name.is_empty())
                .unwrap_or_else(|| format!("{kind}-{}.{}", safe_id(media_id), extension(&mime_type)));
            inbound.text = str_at(file, "/caption").unwrap_or_default().to_owned();
            if kind == "sticker" && inbound.text.is_empty() {
                inbound.text = "[sticker]".into();
            }
            if file.get("voice").and_then(Value::as_bool) == Some(true) {
                details.insert("voice".into(), json!(true));
            }
            details.insert("media_id".into(), json!(media_id));
            media = Some(MediaRef {
                media_id: media_id.to_owned(),
                mime_type,
                filename,
            });
            false
        }
        "location" => {
            let location = &message["location"];
            let (Some(latitude), Some(longitude)) = (
                location.get("latitude").and_then(Value::as_f64),
                location.get("longitude").and_then(Value::as_f64),
            ) else {
                return Item::Ignored(format!("location message {wamid} has no coordinates"));
            };
            let label: Vec<&str> = ["name", "address"]
                .into_iter()
                .filter_map(|key| location.get(key).and_then(Value::as_str))
                .map(str::trim)
                .filter(|part| !part.is_empty())
                .collect();
            inbound.text = if label.is_empty() {
                format!("[location] {latitude}, {longitude}")
            } else {
                format!("[location] {} ({latitude}, {longitude})", label.join(", "))
            };
            let mut kept = json!({"latitude": latitude, "longitude": longitude});
            for key in ["name", "address", "url"] {
                if let Some(text) = location.get(key).and_then(Value::as_str) {
                    kept[key] = json!(text);
                }
            }
            details.insert("location".into(), kept);
            false
        }
        "contacts" => {
            let Some(cards) = message
                .get("contacts")
                .and_then(Value::as_array)
                .filter(|c| !c.is_empty())
            else {
                return Item::Ignored(format!("contacts message {wamid} has no contacts"));
            };
            let summary: Vec<String> = cards.iter().map(contact_summary).collect();
            inbound.text = format!("[contacts] {}", summary.join("; "));
            details.insert("contacts".into(), Value::Array(cards.clone()));
            false
        }
        "interactive" => {
            let interactive = &message["interactive"];
            let reply_kind = str_at(interactive, "/type").unwrap_or_default();
            if !matches!(reply_kind, "button_reply" | "list_reply") {
                return Item::Ignored(format!("an interactive `{reply_kind}` reply"));
            }
            let reply = &interactive[reply_kind];
            let id = str_at(reply, "/id").unwrap_or_default();
            let title = str_at(reply, "/title").unwrap_or_default();
            details.insert("button_id".into(), json!(id));
            pressed(&mut inbound, id, title);
            if inbound.text.trim().is_empty() {
                return Item::Ignored(format!("an interactive reply {wamid} without id or title"));
            }
            false
        }
        "button" => {
            let payload = str_at(message, "/button/payload").unwrap_or_default();
            let text = str_at(message, "/button/text").unwrap_or_default();
            details.insert("button_payload".into(), json!(payload));
            pressed(&mut inbound, payload, text);
            if inbound.text.trim().is_empty() {
                return Item::Ignored(format!("a quick reply {wamid} without text"));
            }
            inbound.csat.is_none()
        }
        "reaction" => {
            let emoji = str_at(message, "/reaction/emoji").unwrap_or_default();
            let target = str_at(message, "/reaction/message_id").unwrap_or_default();
            if emoji.is_empty() {
                return Item::Ignored(format!("reaction {wamid} removed"));
            }
            inbound.text = format!("[reaction] {emoji} to message {target}");
            details.insert("reaction".into(), json!({"emoji": emoji, "message_id": target}));
            false
        }
        "unsupported" => {
            let why = str_at(message, "/errors/0/title").unwrap_or("no reason given");
            return Item::Ignored(format!("an unsupported message ({why})"));
        }
        other => return Item::Ignored(format!("a `{other}` message")),
    };
    if typed_text {
        let word = inbound.text.trim().to_lowercase();
        if STOP_WORDS.contains(&word.as_str()) {
            inbound.opt_out = Some(true);
        } else if word == START_WORD {
            inbound.opt_out = Some(false);
        }
    }
    inbound.details = details;
    Item::Message {
        message: Box::new(inbound),
        media,
    }
}

/// A button's press: a satisfaction score when its id is one of our CSAT callbacks (the
/// store checks the token, so a forged one is only a message), else what it said.
fn pressed(inbound: &mut InboundMessage, id: &str, title: &str) {
    inbound.csat = CsatAnswer::from_callback_data(id);
    inbound.text = match &inbound.csat {
        Some(answer) => format!("CSAT {}/5", answer.score),
        None if !title.trim().is_empty() => title.to_owned(),
        None => id.to_owned(),
    };
}

/// `Chandler Bing +1 555-555-5555`.
fn contact_summary(card: &Value) -> String {
    let name = str_at(card, "/name/formatted_name")
        .or_else(|| str_at(card, "/name/first_name"))
        .unwrap_or("(no name)");
    let phones: Vec<&str> = card
        .get("phones")
        .and_then(Value::as_array)
        .map(|phones| phones.iter().filter_map(|phone| str_at(phone, "/phone")).collect())
        .unwrap_or_default();
    if phones.is_empty() {
        name.to_owned()
    } else {
        format!("{name} {}", phones.join(", "))
    }
}

/// A customer's file name without directories or control characters.
fn clean_filename(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or_default();
    base.chars()
        .filter(|c| !c.is_control())
        .collect::<String>()
        .trim()
        .to_owned()
}

/// A media id as part of a file name.
fn safe_id(id: &str) -> String {
    id.chars().filter(char::is_ascii_alphanumeric).take(40).collect()
}

/// The usual extension of the media types WhatsApp carries.
fn extension(mime_type: &str) -> &'static str {
    let essence = mime_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "image/jpeg" => "jpg",
        "image/png" => "png",
        "image/webp" => "webp",
        "audio/ogg" => "ogg",
        "audio/mpeg" => "mp3",
        "audio/mp4" => "m4a",
        "audio/aac" => "aac",
        "audio/amr" => "amr",
        "video/mp4" => "mp4",
        "video/3gpp" => "3gp",
        "application/pdf" => "pdf",
        "text/plain" => "txt",
        _ => "bin",
    }
}

fn status_item(status: &Value) -> Item {
    let Some(id) = str_at(status, "/id").filter(|id| !id.is_empty()) else {
        return Item::Ignored("a status without a message id".into());
    };
    let name = str_at(status, "/status").unwrap_or_default();
    let state = match name {
        // `played` is a voice message listened to: it was read.
        "played" => DeliveryState::Read,
        other => match DeliveryState::parse(other) {
            Some(state) => state,
            None => return Item::Ignored(format!("a `{other}` status for {id}")),
        },
    };
    let error = status
        .get("errors")
        .and_then(Value::as_array)
        .filter(|errors| !errors.is_empty())
        .map(|errors| errors.iter().map(error_text).collect::<Vec<_>>().join("; "));
    Item::Status(DeliveryReport {
        external_id: id.to_owned(),
        state,
        error,
        at_ms: timestamp_ms(status),
    })
}

/// `131026 Message undeliverable: <details>`.
fn error_text(error: &Value) -> String {
    let code = error.get("code").map(|code| code.to_string()).unwrap_or_default();
    let title = str_at(error, "/title")
        .or_else(|| str_at(error, "/message"))
        .unwrap_or("error");
    let mut text = format!("{code} {title}").trim().to_owned();
    if let Some(details) = str_at(error, "/error_data/details").filter(|d| !d.is_empty() && *d != title) {
        text.push_str(": ");
        text.push_str(details);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const NUMBER: &str = "1122334455667";

    fn body(messages: Value, statuses: Value) -> Value {
        json!({
            "object": "whatsapp_business_account",
            "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "15550001111", "phone_number_id": NUMBER},
                "contacts": [{"profile": {"name": "Ada"}, "wa_id": "4915112345678"}],
                "messages": messages,
                "statuses": statuses,
            }}]}]
        })
    }

    fn text(body_text: &str) -> Value {
        json!({"from": "4915112345678", "id": "wamid.1", "timestamp": "1700000000", "type": "text",
               "text": {"body": body_text}})
    }

    fn only_message(items: Vec<Item>) -> InboundMessage {
        match <[Item; 1]>::try_from(items) {
            Ok([Item::Message { message, .. }]) => *message,
            other => panic!("expected one message, got {other:?}"),
        }
    }

    #[test]
    fn stop_and_start_words_set_the_opt_out_only_as_the_whole_message() {
        for (words, expected) in [
            ("STOP", Some(true)),
            (" unsubscribe ", Some(true)),
            ("Start", Some(false)),
            ("please stop", None),
            ("stopp", None),
        ] {
            let items = normalize_value(&body(json!([text(words)]), json!([])), NUMBER).unwrap();
            assert_eq!(only_message(items).opt_out, expected, "{words}");
        }
    }

    #[test]
    fn one_broken_message_in_a_batch_is_ignored_alone() {
        let broken = json!({"from": "4915112345678", "type": "text", "text": {"body": "no id"}});
        let no_sender = json!({"id": "wamid.2", "type": "text", "text": {"body": "hi"}});
        let items = normalize_value(&body(json!([broken, text("hello"), no_sender]), json!([])), NUMBER).unwrap();
        assert!(matches!(&items[0], Item::Ignored(_)), "{items:?}");
        assert!(matches!(&items[1], Item::Message { .. }), "{items:?}");
        assert!(matches!(&items[2], Item::Ignored(_)), "{items:?}");
    }

    #[test]
    fn a_broken_envelope_is_refused_whole() {
        assert!(matches!(normalize(b"{", NUMBER), Err(BodyError::NotJson(_))));
        for bad in [
            json!([]),
            json!({"object": "page", "entry": []}),
            json!({"object": "whatsapp_business_account"}),
            json!({"object": "whatsapp_business_account", "entry": [{"changes": {}}]}),
            json!({"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "messages"}]}]}),
            json!({"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "messages", "value": {"messages": []}}]}]}),
        ] {
            assert!(
                matches!(normalize_value(&bad, NUMBER), Err(BodyError::Shape { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn changes_for_another_number_or_field_are_ignored() {
        let items = normalize_value(&body(json!([text("hi")]), json!([])), "999").unwrap();
        assert!(matches!(&items[..], [Item::Ignored(_)]), "{items:?}");
        let other_field = json!({"object": "whatsapp_business_account",
            "entry": [{"id": "1", "changes": [{"field": "message_template_status_update", "value": {"event": "APPROVED"}}]}]});
        let items = normalize_value(&other_field, NUMBER).unwrap();
        assert!(matches!(&items[..], [Item::Ignored(_)]), "{items:?}");
    }

    #[test]
    fn a_csat_list_reply_is_a_score() {
        let reply = json!({"from": "4915112345678", "id": "wamid.3", "timestamp": "1700000000", "type": "interactive",
            "context": {"from": NUMBER, "id": "wamid.question"},
            "interactive": {"type": "list_reply", "list_reply": {"id": "csat:tok123:4", "title": "4 ⭐"}}});
        let message = only_message(normalize_value(&body(json!([reply]), json!([])), NUMBER).unwrap());
        let csat = message.csat.unwrap();
        assert_eq!((csat.token.as_deref(), csat.score), (Some("tok123"), 4));
        assert_eq!(message.text, "CSAT 4/5");
        assert_eq!(message.details["quotes"], "wamid.question");
        assert!(message.hints.is_empty(), "a chat has no threads: {:?}", message.hints);
    }

    #[test]
    fn unknown_statuses_are_ignored_and_played_counts_as_read() {
        let statuses = json!([
            {"id": "wamid.a", "status": "played", "timestamp": "1700000001"},
            {"id": "wamid.b", "status": "deleted", "timestamp": "1700000001"},
            {"status": "sent"},
        ]);
        let items = normalize_value(&body(json!([]), statuses), NUMBER).unwrap();
        assert_eq!(
            items[0],
            Item::Status(DeliveryReport {
                external_id: "wamid.a".into(),
                state: DeliveryState::Read,
                error: None,
                at_ms: Some(1_700_000_001_000),
            })
        );
        assert!(matches!(&items[1..], [Item::Ignored(_), Item::Ignored(_)]), "{items:?}");
    }

    #[test]
    fn file_names_lose_directories_and_get_an_extension_from_the_type() {
        assert_eq!(clean_filename("../../etc/passwd"), "passwd");
        assert_eq!(clean_filename("C:\\a\\b.pdf"), "b.pdf");
        assert_eq!(extension("audio/ogg; codecs=opus"), "ogg");
        assert_eq!(extension("application/x-whatever"), "bin");
    }
}
