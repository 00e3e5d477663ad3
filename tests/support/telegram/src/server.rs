//! The HTTP side: one catch-all handler, because Telegram's URL scheme (`/bot<TOKEN>/<method>` with any method
//! spelling, `/file/bot<TOKEN>/<escaped path>`) is easier to take apart by hand than to express as routes.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Request, State};
use axum::http::{HeaderValue, header};
use axum::response::Response;
use serde_json::{Value, json};

use crate::markdown;
use crate::params::{self, Params};
use crate::state::{Call, Identity, Shared, StoredFile, Upload, Webhook, error, params_chat_id};

/// Telegram accepts uploads up to 50 MB; leave headroom so the fake never rejects what Telegram would take.
const MAX_BODY: usize = 64 * 1024 * 1024;
/// `getFile` refuses files above 20 MB.
const MAX_DOWNLOAD: usize = 20 * 1024 * 1024;
const MAX_TEXT: usize = 4096;
const MAX_CAPTION: usize = 1024;

/// Documented spellings of the methods the fake implements; requests match them case-insensitively because teloxide
/// sends PascalCase (`SendMessage`) and Telegram does not care.
const METHODS: &[&str] = &[
    "getMe",
    "getUpdates",
    "sendMessage",
    "sendDocument",
    "sendPhoto",
    "getFile",
    "setWebhook",
    "deleteWebhook",
    "getWebhookInfo",
    "answerCallbackQuery",
];

pub(crate) fn router(shared: Arc<Shared>) -> axum::Router {
    axum::Router::new()
        .fallback(handle)
        .with_state(shared)
        .layer(DefaultBodyLimit::max(MAX_BODY))
}

enum Reply {
    Json(u16, Value),
    /// A canned `getUpdates` body served verbatim, to feed clients entries the fake's own types could not produce.
    Raw(String),
}

fn ok(result: Value) -> Reply {
    Reply::Json(200, json!({"ok": true, "result": result}))
}

fn fail(code: u16, description: &str) -> Reply {
    let (code, body) = error(code, description);
    Reply::Json(code, body)
}

async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let at = Instant::now();
    let path = req.uri().path().to_owned();
    if let Some(rest) = path.strip_prefix("/file/") {
        return download(&shared, rest, at);
    }
    let (bot_segment, wire_method) = path.trim_start_matches('/').split_once('/').unwrap_or(("", ""));
    let Some(token) = bot_segment.strip_prefix("bot") else {
        // Not an API URL at all; Telegram answers a bare 404 page here, so there is nothing worth recording.
        return respond(fail(404, "Not Found"));
    };
    let token = params::percent_decode(token, false);
    let wire_method = params::percent_decode(wire_method.trim_end_matches('/'), false);
    let method = METHODS
        .iter()
        .find(|m| m.eq_ignore_ascii_case(&wire_method))
        .map_or_else(|| wire_method.clone(), |m| (*m).to_owned());

    let (reply, params, uploads, multipart) = match read_request(req).await {
        Ok((params, uploads, multipart)) => {
            let reply = dispatch(&shared, &token, &method, &params, &uploads).await;
            (reply, params, uploads, multipart)
        }
        Err(description) => (fail(400, &description), Params::new(), Vec::new(), false),
    };
    let (status, response) = match &reply {
        Reply::Json(status, body) => (*status, body.clone()),
        Reply::Raw(body) => (
            200,
            serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.clone())),
        ),
    };
    shared.record(Call {
        token,
        method,
        wire_method,
        params,
        uploads,
        multipart,
        at,
        status,
        response,
    });
    respond(reply)
}

fn respond(reply: Reply) -> Response {
    let (status, body) = match reply {
        Reply::Json(status, body) => (status, body.to_string()),
        Reply::Raw(body) => (200, body),
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = axum::http::StatusCode::from_u16(status).expect("fake answered an invalid HTTP status");
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// Collects parameters from the query string and whichever body encoding the client chose.
async fn read_request(req: Request) -> Result<(Params, Vec<Upload>, bool), String> {
    let mut params = Params::new();
    if let Some(query) = req.uri().query() {
        params::parse_form(query, &mut params);
    }
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let mut uploads = Vec::new();
    if content_type.starts_with("multipart/form-data") {
        let mut multipart = Multipart::from_request(req, &())
            .await
            .map_err(|e| format!("Bad Request: invalid multipart body: {e}"))?;
        while let Some(field) = multipart
            .next_field()
            .await
            .map_err(|e| format!("Bad Request: invalid multipart body: {e}"))?
        {
            let name = field.name().unwrap_or_default().to_owned();
            let file_name = field.file_name().map(str::to_owned);
            let content_type = field.content_type().map(str::to_owned);
            let bytes = field
                .bytes()
                .await
                .map_err(|e| format!("Bad Request: invalid multipart body: {e}"))?;
            match file_name {
                Some(file_name) => uploads.push(Upload {
                    field: name,
                    file_name,
                    content_type,
                    bytes: bytes.to_vec(),
                }),
                None => {
                    params.insert(name, Value::String(String::from_utf8_lossy(&bytes).into_owned()));
                }
            }
        }
        return Ok((params, uploads, true));
    }
    let body = axum::body::to_bytes(req.into_body(), MAX_BODY)
        .await
        .map_err(|e| format!("Bad Request: can't read request body: {e}"))?;
    if body.is_empty() {
        return Ok((params, uploads, false));
    }
    if content_type.starts_with("application/x-www-form-urlencoded") {
        params::parse_form(&String::from_utf8_lossy(&body), &mut params);
    } else {
        match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(map)) => params.extend(map),
            _ => return Err("Bad Request: can't parse JSON object".to_owned()),
        }
    }
    Ok((params, uploads, false))
}

async fn dispatch(shared: &Shared, token: &str, method: &str, params: &Params, uploads: &[Upload]) -> Reply {
    let chat_id = params_chat_id(params);
    let identity = {
        let mut state = shared.lock();
        let Some(identity) = state.identity(token) else {
            return fail(401, "Unauthorized");
        };
        let bot = state.bot(token);
        if let Some(failure) = bot.take_failure(method, chat_id) {
            let (code, body) = failure.reply();
            return Reply::Json(code, body);
        }
        if chat_id.is_some_and(|id| bot.blocked_chats.contains(&id)) {
            return fail(403, "Forbidden: bot was blocked by the user");
        }
        identity
    };
    match method {
        "getMe" => ok(json!({
            "id": identity.id,
            "is_bot": true,
            "first_name": identity.first_name,
            "username": identity.username,
            "can_join_groups": true,
            "can_read_all_group_messages": false,
            "supports_inline_queries": false,
            "can_connect_to_business": false,
            "has_main_web_app": false,
        })),
        "getUpdates" => get_updates(shared, token, params).await,
        "sendMessage" => send_message(shared, token, &identity, params),
        "sendDocument" => send_media(shared, token, &identity, params, uploads, Media::Document),
        "sendPhoto" => send_media(shared, token, &identity, params, uploads, Media::Photo),
        "getFile" => get_file(shared, token, params),
        "setWebhook" => set_webhook(shared, token, params),
        "deleteWebhook" => delete_webhook(shared, token, params),
        "getWebhookInfo" => webhook_info(shared, token),
        "answerCallbackQuery" => ok(Value::Bool(true)),
        _ => fail(404, "Not Found: method not found"),
    }
}

/// Decrements the in-flight count even when the client hangs up and the handler future is dropped.
struct InFlight<'a> {
    shared: &'a Shared,
    token: &'a str,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        let bot = state.bot(self.token);
        bot.polls_in_flight = bot.polls_in_flight.saturating_sub(1);
    }
}

const CANT_POLL_WITH_WEBHOOK: &str =
    "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first";
const TERMINATED_BY_OTHER: &str =
    "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running";

async fn get_updates(shared: &Shared, token: &str, params: &Params) -> Reply {
    let offset = params::int(params, "offset").unwrap_or(0);
    let limit = params::int(params, "limit").unwrap_or(100).clamp(1, 100) as usize;
    let timeout = Duration::from_secs(params::int(params, "timeout").unwrap_or(0).max(0).unsigned_abs());
    let deadline = tokio::time::Instant::now() + timeout;
    let generation = {
        let mut state = shared.lock();
        let bot = state.bot(token);
        if bot.webhook.is_some() {
            return fail(409, CANT_POLL_WITH_WEBHOOK);
        }
        if let Some(allowed) = params::json(params, "allowed_updates") {
            bot.allowed_updates = serde_json::from_value(allowed).ok();
        }
        bot.confirm(offset);
        bot.poll_generation += 1;
        bot.polls_in_flight += 1;
        bot.poll_generation
    };
    let _in_flight = InFlight { shared, token };
    // Wakes an older held poll of the same bot so it can answer 409.
    shared.bump();
    loop {
        let mut changed = shared.changed.subscribe();
        {
            let mut state = shared.lock();
            if state.closed {
                return ok(json!([]));
            }
            let bot = state.bot(token);
            if bot.poll_generation != generation {
                return fail(409, TERMINATED_BY_OTHER);
            }
            if bot.webhook.is_some() {
                return fail(409, CANT_POLL_WITH_WEBHOOK);
            }
            if let Some(raw) = bot.raw_get_updates.pop_front() {
                return Reply::Raw(raw);
            }
            if !bot.pending.is_empty() || tokio::time::Instant::now() >= deadline {
                let batch: Vec<Value> = bot.pending.iter().take(limit).map(|(_, u)| u.clone()).collect();
                return ok(Value::Array(batch));
            }
        }
        tokio::select! {
            changed = changed.changed() => if changed.is_err() { return ok(json!([])) },
            () = tokio::time::sleep_until(deadline) => {}
        }
    }
}

pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Telegram's chat ids encode the chat kind: users are positive, basic groups small negatives, supergroups and
/// channels `-100…`. The fake has no chat directory, so it renders a plausible chat from the id alone.
pub(crate) fn chat_json(chat_id: i64) -> Value {
    if chat_id > 0 {
        json!({"id": chat_id, "type": "private", "first_name": format!("User {chat_id}")})
    } else if chat_id <= -1_000_000_000_000 {
        json!({"id": chat_id, "type": "supergroup", "title": format!("Supergroup {chat_id}")})
    } else {
        json!({"id": chat_id, "type": "group", "title": format!("Group {chat_id}")})
    }
}

/// The numeric chat a send targets, or Telegram's answer when there is none.
fn target_chat(params: &Params) -> Result<i64, Reply> {
    match params.get("chat_id") {
        None | Some(Value::Null) => Err(fail(400, "Bad Request: chat_id is empty")),
        // `@channel` usernames: the fake knows no chats by name.
        Some(_) => params_chat_id(params).ok_or_else(|| fail(400, "Bad Request: chat not found")),
    }
}

/// Common part of every sent message.
fn new_message(shared: &Shared, token: &str, identity: &Identity, chat_id: i64, params: &Params) -> Value {
    let message_id = shared.lock().bot(token).next_message_id(chat_id);
    let mut message = json!({
        "message_id": message_id,
        "from": identity.user_json(),
        "chat": chat_json(chat_id),
        "date": unix_now(),
    });
    if let Some(thread) = params::int(params, "message_thread_id") {
        message["message_thread_id"] = Value::from(thread);
        message["is_topic_message"] = Value::Bool(chat_id <= -1_000_000_000_000);
    }
    // Telegram shows an inline keyboard in the sent message (and in a callback query's message); reply keyboards
    // belong to the chat, not the message, and are not echoed.
    if let Some(markup) = params::json(params, "reply_markup").filter(|m| m.get("inline_keyboard").is_some()) {
        message["reply_markup"] = markup;
    }
    message
}

/// Telegram refuses a message whose inline buttons carry no callback data or more than 64 bytes of it.
fn check_reply_markup(params: &Params) -> Result<(), Reply> {
    if params.get("reply_markup").is_none_or(Value::is_null) {
        return Ok(());
    }
    let Some(markup) = params::json(params, "reply_markup").filter(Value::is_object) else {
        return Err(fail(400, "Bad Request: can't parse reply keyboard markup JSON object"));
    };
    let buttons = markup
        .get("inline_keyboard")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_array)
        .flatten();
    for button in buttons {
        if let Some(data) = button.get("callback_data") {
            let len = data.as_str().map_or(0, str::len);
            if !(1..=64).contains(&len) {
                return Err(fail(400, "Bad Request: BUTTON_DATA_INVALID"));
            }
        }
    }
    Ok(())
}

/// What the chat will show of `text` under the request's `parse_mode`: MarkdownV2 is read as Telegram reads it and
/// refused as Telegram refuses it; HTML and legacy Markdown are not read, so what they show is unknown (`None`).
fn shown_text(text: &str, params: &Params) -> Result<Option<String>, Reply> {
    match params::text(params, "parse_mode").filter(|mode| !mode.is_empty()) {
        None => Ok(Some(text.to_owned())),
        Some(mode) if mode.eq_ignore_ascii_case("MarkdownV2") => markdown::parse(text)
            .map(Some)
            .map_err(|detail| fail(400, &format!("Bad Request: can't parse entities: {detail}"))),
        Some(_) => Ok(None),
    }
}

fn send_message(shared: &Shared, token: &str, identity: &Identity, params: &Params) -> Reply {
    let chat_id = match target_chat(params) {
        Ok(chat_id) => chat_id,
        Err(reply) => return reply,
    };
    let text = params::text(params, "text").unwrap_or_default();
    if text.trim().is_empty() {
        return fail(400, "Bad Request: message text is empty");
    }
    let shown = match shown_text(&text, params) {
        Ok(shown) => shown,
        Err(reply) => return reply,
    };
    if shown.as_ref().is_some_and(|shown| shown.trim().is_empty()) {
        return fail(400, "Bad Request: message text is empty");
    }
    // Telegram measures the limit after parsing markup; the fake can for plain text and MarkdownV2, in UTF-16 code
    // units like Telegram's entity offsets (the stricter reading).
    if shown.is_some_and(|shown| shown.encode_utf16().count() > MAX_TEXT) {
        return fail(400, "Bad Request: message is too long");
    }
    if let Err(reply) = check_reply_markup(params) {
        return reply;
    }
    let mut message = new_message(shared, token, identity, chat_id, params);
    // Echoed as sent, markup included: the fake does not turn markup into `entities`.
    message["text"] = Value::String(text);
    ok(message)
}

#[derive(Clone, Copy)]
enum Media {
    Document,
    Photo,
}

impl Media {
    fn param(self) -> &'static str {
        match self {
            Media::Document => "document",
            Media::Photo => "photo",
        }
    }
}

fn mime_for(file_name: &str) -> &'static str {
    let extension = file_name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match extension.as_str() {
        "pdf" => "application/pdf",
        "txt" => "text/plain",
        "json" => "application/json",
        "zip" => "application/zip",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "mp3" => "audio/mpeg",
        "ogg" => "audio/ogg",
        "mp4" => "video/mp4",
        _ => "application/octet-stream",
    }
}

const WRONG_FILE: &str = "Bad Request: wrong file identifier/HTTP URL specified";

fn send_media(
    shared: &Shared,
    token: &str,
    identity: &Identity,
    params: &Params,
    uploads: &[Upload],
    media: Media,
) -> Reply {
    let field = media.param();
    let chat_id = match target_chat(params) {
        Ok(chat_id) => chat_id,
        Err(reply) => return reply,
    };
    let caption = params::text(params, "caption");
    let shown = match caption
        .as_deref()
        .map(|caption| shown_text(caption, params))
        .transpose()
    {
        Ok(shown) => shown.flatten(),
        Err(reply) => return reply,
    };
    if shown.is_some_and(|c| c.encode_utf16().count() > MAX_CAPTION) {
        return fail(400, "Bad Request: message caption is too long");
    }
    if let Err(reply) = check_reply_markup(params) {
        return reply;
    }
    let value = params::text(params, field);
    let upload = match value.as_deref().and_then(|v| v.strip_prefix("attach://")) {
        Some(part) => match uploads.iter().find(|u| u.field == part) {
            Some(upload) => Some(upload),
            None => return fail(400, WRONG_FILE),
        },
        None if value.is_none() => match uploads.iter().find(|u| u.field == field) {
            Some(upload) => Some(upload),
            None => return fail(400, &format!("Bad Request: there is no {field} in the request")),
        },
        None => None,
    };
    let (file_id, file) = {
        let mut state = shared.lock();
        let bot = state.bot(token);
        match (upload, value.as_deref()) {
            (Some(upload), _) => {
                if upload.bytes.is_empty() {
                    return fail(400, "Bad Request: file must be non-empty");
                }
                bot.uploads_stored += 1;
                let n = bot.uploads_stored;
                let file_name = match media {
                    Media::Photo => None,
                    Media::Document if upload.file_name.is_empty() => Some(format!("file_{n}")),
                    Media::Document => Some(upload.file_name.clone()),
                };
                let file_path = match media {
                    Media::Photo => format!("photos/file_{n}.jpg"),
                    Media::Document => {
                        let extension = upload.file_name.rsplit_once('.').map(|(_, e)| format!(".{e}"));
                        format!("documents/file_{n}{}", extension.unwrap_or_default())
                    }
                };
                let file = StoredFile {
                    file_unique_id: format!("fake-unique-{n}"),
                    file_path,
                    mime_type: file_name.as_deref().map(|name| mime_for(name).to_owned()),
                    file_name,
                    bytes: Bytes::from(upload.bytes.clone()),
                };
                let file_id = format!("fake-{field}-{n}");
                bot.files.insert(file_id.clone(), file.clone());
                (file_id, file)
            }
            (None, Some(url)) if url.starts_with("http://") || url.starts_with("https://") => {
                // Telegram would fetch the URL; the fake cannot, so it stores an empty file under a new id.
                bot.uploads_stored += 1;
                let n = bot.uploads_stored;
                let name = url
                    .rsplit('/')
                    .next()
                    .filter(|s| !s.is_empty())
                    .unwrap_or("file")
                    .to_owned();
                let file = StoredFile {
                    file_unique_id: format!("fake-unique-{n}"),
                    file_path: format!("{field}s/file_{n}"),
                    mime_type: Some(mime_for(&name).to_owned()),
                    file_name: Some(name),
                    bytes: Bytes::new(),
                };
                let file_id = format!("fake-{field}-{n}");
                bot.files.insert(file_id.clone(), file.clone());
                (file_id, file)
            }
            (None, Some(file_id)) => match bot.files.get(file_id) {
                Some(file) => (file_id.to_owned(), file.clone()),
                None => return fail(400, WRONG_FILE),
            },
            (None, None) => unreachable!("a missing {field} was answered above"),
        }
    };
    let mut message = new_message(shared, token, identity, chat_id, params);
    match media {
        Media::Document => {
            let mut document = json!({
                "file_id": file_id,
                "file_unique_id": file.file_unique_id,
                "file_size": file.bytes.len(),
            });
            if let Some(name) = &file.file_name {
                document["file_name"] = Value::String(name.clone());
            }
            if let Some(mime) = &file.mime_type {
                document["mime_type"] = Value::String(mime.clone());
            }
            message["document"] = document;
        }
        Media::Photo => {
            // The fake does not decode images; one size with nominal dimensions keeps clients' types satisfied.
            message["photo"] = json!([{
                "file_id": file_id,
                "file_unique_id": file.file_unique_id,
                "file_size": file.bytes.len(),
                "width": 1,
                "height": 1,
            }]);
        }
    }
    if let Some(caption) = caption {
        message["caption"] = Value::String(caption);
    }
    ok(message)
}

fn get_file(shared: &Shared, token: &str, params: &Params) -> Reply {
    let Some(file_id) = params::text(params, "file_id").filter(|id| !id.is_empty()) else {
        return fail(400, "Bad Request: file_id is empty");
    };
    let mut state = shared.lock();
    let Some(file) = state.bot(token).files.get(&file_id) else {
        return fail(400, "Bad Request: invalid file_id");
    };
    if file.bytes.len() > MAX_DOWNLOAD {
        return fail(400, "Bad Request: file is too big");
    }
    ok(json!({
        "file_id": file_id,
        "file_unique_id": file.file_unique_id,
        "file_size": file.bytes.len(),
        "file_path": file.file_path,
    }))
}

fn download(shared: &Shared, rest: &str, at: Instant) -> Response {
    let (bot_segment, path) = rest.split_once('/').unwrap_or((rest, ""));
    let token = params::percent_decode(bot_segment.strip_prefix("bot").unwrap_or(bot_segment), false);
    let file_path = params::percent_decode(path, false);
    let found = {
        let mut state = shared.lock();
        if state.identity(&token).is_none() {
            Err(error(401, "Unauthorized"))
        } else {
            let bot = state.bot(&token);
            bot.files
                .values()
                .find(|f| f.file_path == file_path)
                .map(|f| f.bytes.clone())
                .ok_or(error(404, "Not Found"))
        }
    };
    let mut call = Call {
        token,
        method: "file".to_owned(),
        wire_method: "file".to_owned(),
        params: [("file_path".to_owned(), Value::String(file_path))]
            .into_iter()
            .collect(),
        uploads: Vec::new(),
        multipart: false,
        at,
        status: 200,
        response: Value::Null,
    };
    match found {
        Ok(bytes) => {
            call.response = Value::from(bytes.len());
            shared.record(call);
            let mut response = Response::new(Body::from(bytes));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            response
        }
        Err((status, body)) => {
            call.status = status;
            call.response = body.clone();
            shared.record(call);
            respond(Reply::Json(status, body))
        }
    }
}

fn set_webhook(shared: &Shared, token: &str, params: &Params) -> Reply {
    let url = params::text(params, "url").unwrap_or_default();
    if url.is_empty() {
        return delete_webhook(shared, token, params);
    }
    // Telegram insists on HTTPS on ports 80/88/443/8443; the fake also takes plain HTTP on any port so a daemon under
    // test can register its loopback listener.
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return fail(400, "Bad Request: bad webhook: HTTPS url must be provided for webhook");
    }
    let secret_token = params::text(params, "secret_token").filter(|s| !s.is_empty());
    if secret_token
        .as_ref()
        .is_some_and(|s| s.len() > 256 || !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'))
    {
        return fail(400, "Bad Request: secret token contains unallowed characters");
    }
    let allowed_updates: Option<Vec<String>> =
        params::json(params, "allowed_updates").and_then(|v| serde_json::from_value(v).ok());
    let webhook = Webhook {
        url,
        secret_token,
        max_connections: params::int(params, "max_connections"),
        allowed_updates: allowed_updates.clone(),
        ip_address: params::text(params, "ip_address"),
    };
    {
        let mut state = shared.lock();
        let bot = state.bot(token);
        if params::boolean(params, "drop_pending_updates") == Some(true) {
            bot.pending.clear();
        }
        if allowed_updates.is_some() {
            bot.allowed_updates = allowed_updates;
        }
        bot.webhook = Some(webhook);
    }
    shared.bump();
    Reply::Json(
        200,
        json!({"ok": true, "result": true, "description": "Webhook was set"}),
    )
}

fn delete_webhook(shared: &Shared, token: &str, params: &Params) -> Reply {
    let existed = {
        let mut state = shared.lock();
        let bot = state.bot(token);
        if params::boolean(params, "drop_pending_updates") == Some(true) {
            bot.pending.clear();
        }
        bot.webhook.take().is_some()
    };
    shared.bump();
    let description = if existed {
        "Webhook was deleted"
    } else {
        "Webhook is already deleted"
    };
    Reply::Json(200, json!({"ok": true, "result": true, "description": description}))
}

fn webhook_info(shared: &Shared, token: &str) -> Reply {
    let mut state = shared.lock();
    let bot = state.bot(token);
    let mut info = json!({
        "url": "",
        "has_custom_certificate": false,
        "pending_update_count": bot.pending.len(),
    });
    if let Some(webhook) = &bot.webhook {
        info["url"] = Value::String(webhook.url.clone());
        info["max_connections"] = Value::from(webhook.max_connections.unwrap_or(40));
        if let Some(ip) = &webhook.ip_address {
            info["ip_address"] = Value::String(ip.clone());
        }
        if let Some(allowed) = &webhook.allowed_updates {
            info["allowed_updates"] = json!(allowed);
        }
    }
    ok(info)
}
