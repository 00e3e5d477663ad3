//! The HTTP side: one catch-all handler, because the Graph API's paths (`/{version}/{id}`
//! and `/{version}/{id}/{edge}`) are easier to take apart by hand than to route.

use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::response::Response;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::Notify;

use crate::{Call, SentMessage, Shared, Upload, graph_error};

/// Meta takes documents up to 100 MB.
const MAX_BODY: usize = 110 * 1024 * 1024;
const MAX_TEXT: usize = 4096;
const MAX_CAPTION: usize = 1024;
const MEDIA_KINDS: [&str; 5] = ["image", "audio", "video", "document", "sticker"];

pub(crate) fn router(shared: Arc<Shared>) -> axum::Router {
    axum::Router::new()
        .fallback(handle)
        .with_state(shared)
        .layer(DefaultBodyLimit::max(MAX_BODY))
}

enum Reply {
    Json(u16, Value),
    Bytes(String, Vec<u8>),
}

fn invalid(details: impl Into<String>) -> Reply {
    Reply::Json(400, graph_error(100, "(#100) Invalid parameter", Some(&details.into())))
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let at = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or_default().to_owned();
    let authorized = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .is_some_and(|token| token == shared.token);
    let segments: Vec<String> = path.trim_matches('/').split('/').map(str::to_owned).collect();
    let mut recorded = Value::Null;
    let reply = if !authorized {
        Reply::Json(
            401,
            graph_error(190, "Invalid OAuth access token - Cannot parse access token", None),
        )
    } else {
        match (
            method.clone(),
            segments.iter().map(String::as_str).collect::<Vec<_>>().as_slice(),
        ) {
            (Method::POST, [version, number, "messages"]) if is_version(version) => {
                let body = Bytes::from_request(request, &()).await.unwrap_or_default();
                match serde_json::from_slice::<Value>(&body) {
                    Ok(json) => {
                        recorded = json.clone();
                        let (reply, hold) = send(&shared, number, json, at);
                        if let Some(release) = hold {
                            shared.bump();
                            release.notified().await;
                        }
                        reply
                    }
                    Err(err) => invalid(format!("the body is not JSON: {err}")),
                }
            }
            (Method::POST, [version, _number, "media"]) if is_version(version) => {
                match Multipart::from_request(request, &()).await {
                    Ok(form) => {
                        let (reply, fields) = upload(&shared, form).await;
                        recorded = fields;
                        reply
                    }
                    Err(err) => invalid(format!("expected multipart/form-data: {err}")),
                }
            }
            (Method::GET, ["whatsapp_business", "attachments"]) => download(&shared, &query),
            (Method::GET, [version, media_id]) if is_version(version) => media_info(&shared, media_id),
            _ => Reply::Json(
                400,
                graph_error(
                    100,
                    "Unsupported request - method type or path not supported by the fake",
                    None,
                ),
            ),
        }
    };
    let (status, response) = match &reply {
        Reply::Json(status, body) => (*status, body.clone()),
        Reply::Bytes(_, bytes) => (200, json!({"bytes": bytes.len()})),
    };
    shared.lock().calls.push(Call {
        method: method.to_string(),
        path: if query.is_empty() {
            path
        } else {
            format!("{path}?{query}")
        },
        body: recorded,
        status,
        response,
        at,
    });
    shared.bump();
    respond(reply)
}

fn respond(reply: Reply) -> Response {
    let (status, content_type, body) = match reply {
        Reply::Json(status, body) => (status, "application/json".to_owned(), body.to_string().into_bytes()),
        Reply::Bytes(content_type, bytes) => (200, content_type, bytes),
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = axum::http::StatusCode::from_u16(status).expect("the fake answers valid statuses");
    if let Ok(value) = HeaderValue::from_str(&content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    response
}

fn is_version(segment: &str) -> bool {
    segment
        .strip_prefix('v')
        .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit() || b == b'.'))
}

/// The answer to a send, and the hold on it when the test asked for one.
fn send(shared: &Shared, number: &str, body: Value, at: Instant) -> (Reply, Option<Arc<Notify>>) {
    let to = match check_message(&body) {
        Ok(to) => to,
        Err(details) => return (invalid(details), None),
    };
    let mut state = shared.lock();
    if let Some(failure) = state.take_failure(&to) {
        let (status, body) = failure.reply();
        return (Reply::Json(status, body), None);
    }
    let n = state.next_id();
    // Shaped like Meta's (base64 of a protobuf naming the recipient), opaque all the same.
    let id = format!("wamid.HBgN{to}FQIAERgSFAKE{n:012X}AA==");
    state.sent.push(SentMessage {
        phone_number_id: number.to_owned(),
        to: to.clone(),
        kind: body["type"].as_str().unwrap_or("text").to_owned(),
        body,
        id: id.clone(),
        at,
    });
    let reply = Reply::Json(
        200,
        json!({
            "messaging_product": "whatsapp",
            "contacts": [{"input": to, "wa_id": to}],
            "messages": [{"id": id}],
        }),
    );
    (reply, state.hold.take())
}

fn chars(value: &Value, pointer: &str) -> Option<usize> {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .map(|text| text.chars().count())
}

/// What Meta checks of a message body, with its words; the recipient when it passes.
fn check_message(body: &Value) -> Result<String, String> {
    if body["messaging_product"] != "whatsapp" {
        return Err("messaging_product must be `whatsapp`".into());
    }
    let to = body["to"].as_str().unwrap_or_default().trim_start_matches('+');
    if to.is_empty() || !to.bytes().all(|b| b.is_ascii_digit()) {
        return Err("`to` must be a phone number".into());
    }
    let kind = body["type"].as_str().unwrap_or("text");
    match kind {
        "text" => match chars(body, "/text/body") {
            Some(1..=MAX_TEXT) => {}
            Some(0) | None => return Err("text.body is required".into()),
            Some(_) => return Err(format!("text.body must be at most {MAX_TEXT} characters")),
        },
        kind if MEDIA_KINDS.contains(&kind) => {
            let media = &body[kind];
            if media.get("id").and_then(Value::as_str).is_none() && media.get("link").and_then(Value::as_str).is_none()
            {
                return Err(format!("{kind} needs an `id` or a `link`"));
            }
            if chars(media, "/caption").is_some_and(|n| n > MAX_CAPTION) {
                return Err(format!("{kind}.caption must be at most {MAX_CAPTION} characters"));
            }
            if media.get("caption").is_some() && matches!(kind, "audio" | "sticker") {
                return Err(format!("{kind} takes no caption"));
            }
        }
        "interactive" => check_interactive(&body["interactive"])?,
        "template" => {
            let template = &body["template"];
            if template["name"].as_str().is_none_or(str::is_empty) {
                return Err("template.name is required".into());
            }
            if template.pointer("/language/code").and_then(Value::as_str).is_none() {
                return Err("template.language.code is required".into());
            }
        }
        "reaction" | "location" | "contacts" => {}
        other => return Err(format!("type `{other}` is not a message type")),
    }
    Ok(to.to_owned())
}

fn check_interactive(interactive: &Value) -> Result<(), String> {
    match chars(interactive, "/body/text") {
        Some(1..=1024) => {}
        _ => return Err("interactive.body.text is required, at most 1024 characters".into()),
    }
    match interactive["type"].as_str() {
        Some("list") => {
            if !chars(interactive, "/action/button").is_some_and(|n| (1..=20).contains(&n)) {
                return Err("interactive.action.button is required, at most 20 characters".into());
            }
            let sections = interactive
                .pointer("/action/sections")
                .and_then(Value::as_array)
                .ok_or("interactive.action.sections is required")?;
            if sections.is_empty() || sections.len() > 10 {
                return Err("a list has 1 to 10 sections".into());
            }
            if sections.len() > 1 && sections.iter().any(|section| section.get("title").is_none()) {
                return Err("each section needs a title when there are several".into());
            }
            let rows: Vec<&Value> = sections
                .iter()
                .flat_map(|section| section["rows"].as_array().into_iter().flatten())
                .collect();
            if rows.is_empty() || rows.len() > 10 {
                return Err("a list has 1 to 10 rows".into());
            }
            for row in rows {
                if !chars(row, "/id").is_some_and(|n| (1..=200).contains(&n)) {
                    return Err("a row id is required, at most 200 characters".into());
                }
                if !chars(row, "/title").is_some_and(|n| (1..=24).contains(&n)) {
                    return Err("a row title is required, at most 24 characters".into());
                }
            }
        }
        Some("button") => {
            let buttons = interactive
                .pointer("/action/buttons")
                .and_then(Value::as_array)
                .ok_or("interactive.action.buttons is required")?;
            if buttons.is_empty() || buttons.len() > 3 {
                return Err("reply buttons are 1 to 3".into());
            }
        }
        other => return Err(format!("interactive type {other:?} is not supported by the fake")),
    }
    Ok(())
}

async fn upload(shared: &Shared, mut form: Multipart) -> (Reply, Value) {
    let mut fields = Map::new();
    let mut file = None;
    loop {
        match form.next_field().await {
            Ok(Some(field)) => {
                let name = field.name().unwrap_or_default().to_owned();
                if name == "file" {
                    let filename = field.file_name().unwrap_or_default().to_owned();
                    match field.bytes().await {
                        Ok(bytes) => file = Some((filename, bytes.to_vec())),
                        Err(err) => return (invalid(format!("reading `file`: {err}")), Value::Object(fields)),
                    }
                } else {
                    let text = field.text().await.unwrap_or_default();
                    fields.insert(name, json!(text));
                }
            }
            Ok(None) => break,
            Err(err) => {
                return (
                    invalid(format!("a broken multipart body: {err}")),
                    Value::Object(fields),
                );
            }
        }
    }
    if fields.get("messaging_product").and_then(Value::as_str) != Some("whatsapp") {
        return (invalid("messaging_product must be `whatsapp`"), Value::Object(fields));
    }
    let Some(mime_type) = fields.get("type").and_then(Value::as_str).map(str::to_owned) else {
        return (
            invalid("`type` (the file's MIME type) is required"),
            Value::Object(fields),
        );
    };
    let Some((filename, bytes)) = file else {
        return (invalid("`file` is required"), Value::Object(fields));
    };
    fields.insert("file".into(), json!({"filename": filename, "bytes": bytes.len()}));
    let mut state = shared.lock();
    let media_id = format!("{}", 900_000_000_000_000u64 + state.next_id());
    state.uploads.push(Upload {
        media_id: media_id.clone(),
        filename,
        mime_type: mime_type.clone(),
        bytes: bytes.clone(),
    });
    // As on Meta, an uploaded file can be read back by its id.
    state.media.insert(media_id.clone(), crate::Media { mime_type, bytes });
    (Reply::Json(200, json!({"id": media_id})), Value::Object(fields))
}

fn media_info(shared: &Shared, media_id: &str) -> Reply {
    let state = shared.lock();
    let Some(media) = state.media.get(media_id) else {
        return Reply::Json(
            400,
            graph_error(
                100,
                &format!(
                    "Unsupported get request. Object with ID '{media_id}' does not exist, cannot be loaded due to missing permissions, or does not support this operation."
                ),
                None,
            ),
        );
    };
    let digest = Sha256::digest(&media.bytes);
    let sha256: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    Reply::Json(
        200,
        json!({
            "messaging_product": "whatsapp",
            "url": format!("http://{}/whatsapp_business/attachments/?mid={media_id}&ext=1&hash=fake", shared.addr),
            "mime_type": media.mime_type,
            "sha256": sha256,
            "file_size": media.bytes.len(),
            "id": media_id,
        }),
    )
}

fn download(shared: &Shared, query: &str) -> Reply {
    let media_id = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("mid="))
        .unwrap_or_default();
    let state = shared.lock();
    match state.media.get(media_id) {
        Some(media) => Reply::Bytes(media.mime_type.clone(), media.bytes.clone()),
        None => Reply::Json(404, graph_error(100, "media not found", None)),
    }
}
