//! The inbound JSON body, turned into an [`InboundMessage`] in pure code.
//!
//! ```json
//! {"id": "evt-1", "from": {"id": "user-42", "name": "Ada", "email": "ada@example.com"},
//!  "thread": "order-1001", "text": "Where is my parcel?",
//!  "attachments": [{"filename": "a.png", "content_type": "image/png", "data_base64": "..."}],
//!  "language": "en", "metadata": {"plan": "pro"}}
//! ```
//!
//! A satisfaction answer to a `csat.requested` update comes the same way, with `csat`
//! instead of (or besides) `text`:
//!
//! ```json
//! {"id": "evt-2", "from": {"id": "user-42"}, "csat": {"conversation_id": 7, "score": 4, "comment": "Quick"}}
//! ```
//!
//! `"opt_out": true` says the customer wants no more automated status updates (the app's
//! own "stop notifications" switch), `false` that they want them again.
//!
//! Every refusal names the offending field by its path (`from.id`,
//! `attachments[0].data_base64`) so the sender knows what to change. Unknown fields are
//! ignored, so senders can add their own without breaking.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde_json::{Map, Value};
use switchboard_connector_core::{CsatAnswer, InboundAttachment, InboundMessage, Sender};

/// Longest accepted id (`id`, `from.id`, `thread`): ids are keys, not content.
const MAX_ID_LEN: usize = 255;

/// Base64 with or without padding: senders differ, the bytes do not. The agent API
/// decodes reply attachments with it too, so both take the same `data_base64`.
pub const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// HTTP 400: the body is not JSON at all.
    #[error("the body is not valid JSON: {0}")]
    NotJson(String),
    /// HTTP 422: JSON, but a field is missing or wrong.
    #[error("`{field}` {problem}")]
    InvalidField { field: String, problem: String },
}

fn invalid(field: impl Into<String>, problem: impl Into<String>) -> BodyError {
    BodyError::InvalidField {
        field: field.into(),
        problem: problem.into(),
    }
}

struct Fields<'a> {
    object: &'a Map<String, Value>,
    path: String,
}

impl<'a> Fields<'a> {
    fn of(value: &'a Value, path: &str) -> Result<Fields<'a>, BodyError> {
        let what = if path.is_empty() { "the body" } else { path };
        match value {
            Value::Object(object) => Ok(Fields {
                object,
                path: path.to_owned(),
            }),
            _ => Err(invalid(what, "must be a JSON object")),
        }
    }

    fn path_of(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// A present, non-null field.
    fn get(&self, key: &str) -> Option<&'a Value> {
        self.object.get(key).filter(|value| !value.is_null())
    }

    fn required(&self, key: &str) -> Result<&'a Value, BodyError> {
        self.get(key).ok_or_else(|| invalid(self.path_of(key), "is required"))
    }

    fn string(&self, key: &str, value: &'a Value) -> Result<&'a str, BodyError> {
        value
            .as_str()
            .ok_or_else(|| invalid(self.path_of(key), "must be a string"))
    }

    fn required_string(&self, key: &str) -> Result<&'a str, BodyError> {
        self.string(key, self.required(key)?)
    }

    fn optional_string(&self, key: &str) -> Result<Option<&'a str>, BodyError> {
        self.get(key).map(|value| self.string(key, value)).transpose()
    }

    fn id(&self, key: &str, value: &str) -> Result<String, BodyError> {
        let trimmed = value.trim();
        if trimmed.is_empty() {
            return Err(invalid(self.path_of(key), "must not be empty"));
        }
        if trimmed.len() > MAX_ID_LEN {
            return Err(invalid(
                self.path_of(key),
                format!("must be at most {MAX_ID_LEN} bytes"),
            ));
        }
        Ok(trimmed.to_owned())
    }

    fn required_id(&self, key: &str) -> Result<String, BodyError> {
        self.id(key, self.required_string(key)?)
    }

    /// An optional string that, when given, must not be blank.
    fn optional_text(&self, key: &str) -> Result<Option<String>, BodyError> {
        match self.optional_string(key)? {
            Some(value) if value.trim().is_empty() => Err(invalid(self.path_of(key), "must not be empty when given")),
            other => Ok(other.map(|value| value.trim().to_owned())),
        }
    }
}

/// What one message may carry. Each bound is far above what a real sender needs, and
/// low enough that one signed sender cannot make a contact or a conversation too heavy
/// to list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyLimits {
    pub max_attachments: usize,
    /// Bytes of `metadata` as JSON.
    pub max_metadata_bytes: usize,
    /// Characters of `from.name`.
    pub max_name_chars: usize,
    /// Characters of an attachment's `filename`.
    pub max_filename_chars: usize,
}

impl Default for BodyLimits {
    fn default() -> BodyLimits {
        BodyLimits {
            max_attachments: 20,
            max_metadata_bytes: 16 * 1024,
            max_name_chars: 200,
            max_filename_chars: 255,
        }
    }
}

/// Parses and validates one inbound webhook body with the default [`BodyLimits`].
pub fn parse_body(body: &[u8]) -> Result<InboundMessage, BodyError> {
    parse_body_with(body, &BodyLimits::default())
}

/// Parses and validates one inbound webhook body; a field past `limits` is refused,
/// named by its path.
pub fn parse_body_with(body: &[u8], limits: &BodyLimits) -> Result<InboundMessage, BodyError> {
    let value: Value = serde_json::from_slice(body).map_err(|err| BodyError::NotJson(err.to_string()))?;
    let root = Fields::of(&value, "")?;

    let external_id = root.required_id("id")?;
    let from = Fields::of(root.required("from")?, "from")?;
    let mut sender = Sender {
        external_id: from.required_id("id")?,
        name: from.optional_text("name")?,
        email: from.optional_text("email")?,
        phone: from
            .optional_text("phone")?
            .map(|phone| normalized_phone(&phone))
            .transpose()?,
        ..Sender::default()
    };
    if let Some(email) = &sender.email
        && !looks_like_email(email)
    {
        return Err(invalid("from.email", "must be an email address"));
    }
    if let Some(verified) = from.get("verified") {
        let Some(items) = verified.as_array() else {
            return Err(invalid("from.verified", "must be an array of `email` and `phone`"));
        };
        for (index, item) in items.iter().enumerate() {
            let at = format!("from.verified[{index}]");
            match item.as_str() {
                Some("email") if sender.email.is_some() => sender.email_verified = true,
                Some("phone") if sender.phone.is_some() => sender.phone_verified = true,
                Some("email" | "phone") => {
                    return Err(invalid(at, "names a field `from` does not give"));
                }
                _ => return Err(invalid(at, "must be `email` or `phone`")),
            }
        }
    }
    if let Some(name) = &sender.name
        && name.chars().count() > limits.max_name_chars
    {
        return Err(invalid(
            "from.name",
            format!("must be at most {} characters", limits.max_name_chars),
        ));
    }

    let thread = root
        .optional_string("thread")?
        .map(|thread| root.id("thread", thread))
        .transpose()?;
    let csat = parse_csat(&root)?;
    let text = match (root.optional_string("text")?, &csat) {
        (Some(text), _) => text.to_owned(),
        // What agents read in the conversation.
        (None, Some(answer)) => match &answer.comment {
            Some(comment) => format!("CSAT {}/5: {comment}", answer.score),
            None => format!("CSAT {}/5", answer.score),
        },
        (None, None) => return Err(invalid("text", "is required")),
    };
    let attachments = parse_attachments(&root, limits)?;
    if text.trim().is_empty() && attachments.is_empty() {
        return Err(invalid("text", "must not be empty when there are no attachments"));
    }

    let language = root.optional_text("language")?;
    if let Some(language) = &language
        && !is_language_tag(language)
    {
        return Err(invalid("language", "must be a language tag such as `en` or `pt-BR`"));
    }

    let metadata = match root.get("metadata") {
        None => BTreeMap::new(),
        Some(value @ Value::Object(object)) => {
            if value.to_string().len() > limits.max_metadata_bytes {
                return Err(invalid(
                    "metadata",
                    format!("must be at most {} bytes of JSON", limits.max_metadata_bytes),
                ));
            }
            object.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
        }
        Some(_) => return Err(invalid("metadata", "must be a JSON object")),
    };

    Ok(InboundMessage {
        external_id,
        sender,
        thread,
        subject: None,
        text,
        html: None,
        attachments,
        language,
        metadata,
        csat,
        opt_out: match root.get("opt_out") {
            None => None,
            Some(Value::Bool(value)) => Some(*value),
            Some(_) => return Err(invalid("opt_out", "must be true or false")),
        },
        ..InboundMessage::default()
    })
}

fn parse_csat(root: &Fields<'_>) -> Result<Option<CsatAnswer>, BodyError> {
    let Some(value) = root.get("csat") else {
        return Ok(None);
    };
    let fields = Fields::of(value, "csat")?;
    let conversation_id = fields
        .required("conversation_id")?
        .as_i64()
        .filter(|id| *id > 0)
        .ok_or_else(|| invalid("csat.conversation_id", "must be a conversation id (a positive integer)"))?;
    let score = fields
        .required("score")?
        .as_u64()
        .filter(|score| (1..=5).contains(score))
        .ok_or_else(|| invalid("csat.score", "must be a whole number from 1 to 5"))?;
    let comment = fields
        .optional_string("comment")?
        .map(str::trim)
        .filter(|c| !c.is_empty());
    Ok(Some(CsatAnswer {
        token: None,
        conversation_id: Some(conversation_id),
        score: score as u8,
        comment: comment.map(str::to_owned),
    }))
}

fn parse_attachments(root: &Fields<'_>, limits: &BodyLimits) -> Result<Vec<InboundAttachment>, BodyError> {
    let Some(value) = root.get("attachments") else {
        return Ok(Vec::new());
    };
    let items = value
        .as_array()
        .ok_or_else(|| invalid("attachments", "must be an array"))?;
    if items.len() > limits.max_attachments {
        return Err(invalid(
            "attachments",
            format!("must hold at most {} attachments", limits.max_attachments),
        ));
    }
    items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            let fields = Fields::of(item, &format!("attachments[{index}]"))?;
            let filename = fields.required_string("filename")?.trim();
            if filename.is_empty() {
                return Err(invalid(fields.path_of("filename"), "must not be empty"));
            }
            if filename.chars().count() > limits.max_filename_chars {
                return Err(invalid(
                    fields.path_of("filename"),
                    format!("must be at most {} characters", limits.max_filename_chars),
                ));
            }
            let content_type = fields.required_string("content_type")?.trim();
            if !content_type.contains('/') {
                return Err(invalid(
                    fields.path_of("content_type"),
                    "must be a media type such as `image/png`",
                ));
            }
            let data = BASE64
                .decode(fields.required_string("data_base64")?)
                .map_err(|_| invalid(fields.path_of("data_base64"), "must be base64"))?;
            Ok(InboundAttachment {
                filename: filename.to_owned(),
                content_type: content_type.to_owned(),
                data,
            })
        })
        .collect()
}

/// A phone number as apps write it (`+49 30 1234-567`, `(030) 1234567`): spaces,
/// dashes, dots and brackets dropped, then an optional `+` and 5 to 20 digits.
fn normalized_phone(text: &str) -> Result<String, BodyError> {
    let kept: String = text
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
        .collect();
    let digits = kept.strip_prefix('+').unwrap_or(&kept);
    if (5..=20).contains(&digits.len()) && digits.chars().all(|c| c.is_ascii_digit()) {
        Ok(kept)
    } else {
        Err(invalid("from.phone", "must be a phone number such as `+4930123456`"))
    }
}

fn looks_like_email(text: &str) -> bool {
    match text.split_once('@') {
        Some((local, domain)) => !local.is_empty() && domain.contains('.') && !text.contains(char::is_whitespace),
        None => false,
    }
}

/// A loose BCP 47 shape: a 2–3 letter primary subtag, then alphanumeric subtags.
fn is_language_tag(tag: &str) -> bool {
    let mut parts = tag.split(['-', '_']);
    let primary_ok = parts
        .next()
        .is_some_and(|primary| (2..=3).contains(&primary.len()) && primary.chars().all(|c| c.is_ascii_alphabetic()));
    primary_ok && parts.all(|part| (1..=8).contains(&part.len()) && part.chars().all(|c| c.is_ascii_alphanumeric()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(value: Value) -> Result<InboundMessage, BodyError> {
        parse_body(value.to_string().as_bytes())
    }

    fn field_of(result: Result<InboundMessage, BodyError>) -> String {
        match result {
            Err(BodyError::InvalidField { field, .. }) => field,
            other => panic!("expected an invalid field, got {other:?}"),
        }
    }

    #[test]
    fn parses_a_full_body() {
        let message = parse(json!({
            "id": "evt-1",
            "from": {"id": "user-42", "name": "Ada", "email": "ada@example.com"},
            "thread": "order-1001",
            "text": "Where is my parcel?",
            "attachments": [{"filename": "a.txt", "content_type": "text/plain", "data_base64": "aGVsbG8"}],
            "language": "pt-BR",
            "metadata": {"plan": "pro", "ltv": 1200},
            "something_new": true
        }))
        .unwrap();
        assert_eq!(message.external_id, "evt-1");
        assert_eq!(message.sender.external_id, "user-42");
        assert_eq!(message.sender.name.as_deref(), Some("Ada"));
        assert_eq!(message.thread.as_deref(), Some("order-1001"));
        assert_eq!(message.attachments[0].data, b"hello");
        assert_eq!(message.language.as_deref(), Some("pt-BR"));
        assert_eq!(message.metadata["ltv"], json!(1200));
    }

    #[test]
    fn refuses_bodies_that_are_not_json_or_not_objects() {
        assert!(matches!(parse_body(b"{not json"), Err(BodyError::NotJson(_))));
        assert_eq!(field_of(parse(json!([1, 2]))), "the body");
    }

    /// A change that breaks one field of a valid body.
    type Mutation = Box<dyn Fn(&mut Value)>;

    #[test]
    fn names_each_missing_or_wrong_field_by_path() {
        let base = json!({"id": "e", "from": {"id": "u"}, "text": "hi"});
        let cases: Vec<(Mutation, &str)> = vec![
            (
                Box::new(|v| {
                    v.as_object_mut().unwrap().remove("id");
                }),
                "id",
            ),
            (Box::new(|v| v["id"] = json!(7)), "id"),
            (Box::new(|v| v["id"] = json!("  ")), "id"),
            (Box::new(|v| v["id"] = json!("x".repeat(256))), "id"),
            (
                Box::new(|v| {
                    v.as_object_mut().unwrap().remove("from");
                }),
                "from",
            ),
            (Box::new(|v| v["from"] = json!("u")), "from"),
            (Box::new(|v| v["from"] = json!({"name": "n"})), "from.id"),
            (Box::new(|v| v["from"]["email"] = json!("not-an-address")), "from.email"),
            (
                Box::new(|v| {
                    v.as_object_mut().unwrap().remove("text");
                }),
                "text",
            ),
            (Box::new(|v| v["text"] = json!("")), "text"),
            (Box::new(|v| v["thread"] = json!(12)), "thread"),
            (Box::new(|v| v["language"] = json!("english please")), "language"),
            (Box::new(|v| v["metadata"] = json!([1])), "metadata"),
            (Box::new(|v| v["attachments"] = json!({})), "attachments"),
            (
                Box::new(|v| v["attachments"] = json!([{"filename": "a", "content_type": "text/plain"}])),
                "attachments[0].data_base64",
            ),
            (
                Box::new(|v| {
                    v["attachments"] = json!([{"filename": "a", "content_type": "text/plain", "data_base64": "!!"}])
                }),
                "attachments[0].data_base64",
            ),
            (
                Box::new(|v| v["attachments"] = json!([{"filename": "a", "content_type": "plain", "data_base64": ""}])),
                "attachments[0].content_type",
            ),
        ];
        for (mutate, field) in cases {
            let mut body = base.clone();
            mutate(&mut body);
            assert_eq!(field_of(parse(body.clone())), field, "body: {body}");
        }
    }

    #[test]
    fn accepts_an_attachment_without_text() {
        let message = parse(json!({
            "id": "e", "from": {"id": "u"}, "text": "",
            "attachments": [{"filename": "a.bin", "content_type": "application/octet-stream", "data_base64": "AAE="}]
        }))
        .unwrap();
        assert_eq!(message.attachments[0].data, vec![0, 1]);
    }

    #[test]
    fn treats_null_optional_fields_as_absent() {
        let message = parse(
            json!({"id": "e", "from": {"id": "u", "name": null}, "text": "hi", "thread": null, "metadata": null}),
        )
        .unwrap();
        assert_eq!(message.sender.name, None);
        assert_eq!(message.thread, None);
        assert!(message.metadata.is_empty());
    }

    #[test]
    fn takes_a_satisfaction_answer_without_text_and_names_a_bad_field() {
        let message = parse(json!({
            "id": "e", "from": {"id": "u"}, "csat": {"conversation_id": 7, "score": 4, "comment": " Quick "}
        }))
        .unwrap();
        let answer = message.csat.unwrap();
        assert_eq!((answer.conversation_id, answer.score), (Some(7), 4));
        assert_eq!(answer.comment.as_deref(), Some("Quick"));
        assert_eq!(message.text, "CSAT 4/5: Quick");
        for (csat, field) in [
            (json!({"conversation_id": 7, "score": 6}), "csat.score"),
            (json!({"conversation_id": 7, "score": 2.5}), "csat.score"),
            (json!({"score": 3}), "csat.conversation_id"),
            (json!({"conversation_id": "7", "score": 3}), "csat.conversation_id"),
            (json!(5), "csat"),
        ] {
            assert_eq!(
                field_of(parse(json!({"id": "e", "from": {"id": "u"}, "csat": csat}))),
                field
            );
        }
        assert_eq!(field_of(parse(json!({"id": "e", "from": {"id": "u"}}))), "text");
        let stop = parse(json!({"id": "e", "from": {"id": "u"}, "text": "stop", "opt_out": true})).unwrap();
        assert_eq!(stop.opt_out, Some(true));
        assert_eq!(
            field_of(parse(
                json!({"id": "e", "from": {"id": "u"}, "text": "x", "opt_out": "yes"})
            )),
            "opt_out"
        );
    }

    #[test]
    fn a_message_past_a_limit_is_refused_naming_the_field() {
        let attachment = json!({"filename": "a.txt", "content_type": "text/plain", "data_base64": "YQ=="});
        let limits = BodyLimits::default();
        let at_limit = vec![attachment.clone(); limits.max_attachments];
        let message = json!({"id": "e", "from": {"id": "u"}, "text": "x", "attachments": at_limit});
        assert_eq!(parse(message).unwrap().attachments.len(), limits.max_attachments);
        let past = vec![attachment; limits.max_attachments + 1];
        let cases = [
            (
                json!({"id": "e", "from": {"id": "u"}, "text": "x", "attachments": past}),
                "attachments",
            ),
            (
                json!({"id": "e", "from": {"id": "u", "name": "n".repeat(201)}, "text": "x"}),
                "from.name",
            ),
            (
                json!({"id": "e", "from": {"id": "u"}, "text": "x", "metadata": {"blob": "m".repeat(16 * 1024)}}),
                "metadata",
            ),
            (
                json!({"id": "e", "from": {"id": "u"}, "text": "x", "attachments": [
                    {"filename": "f".repeat(256), "content_type": "text/plain", "data_base64": "YQ=="}
                ]}),
                "attachments[0].filename",
            ),
        ];
        for (message, field) in cases {
            assert_eq!(field_of(parse(message)), field);
        }
        // An inbox may allow less.
        let strict = BodyLimits {
            max_attachments: 0,
            ..BodyLimits::default()
        };
        let one = json!({"id": "e", "from": {"id": "u"}, "text": "x", "attachments": [
            {"filename": "a.txt", "content_type": "text/plain", "data_base64": "YQ=="}
        ]});
        assert_eq!(
            field_of(parse_body_with(one.to_string().as_bytes(), &strict)),
            "attachments"
        );
    }
}
