//! What the fake remembers: per-bot update queues, files, webhooks, injected failures, and every call it answered.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use axum::body::Bytes;
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::params::{self, Params};

/// One request the fake answered, as it arrived and as it was answered.
///
/// Parameters are kept as received: a JSON body keeps its types, while multipart/form/query values are strings (so
/// `chat_id` may be `"42"`); the accessor methods read either form.
#[derive(Clone, Debug)]
pub struct Call {
    /// The bot token from the URL (recorded even when it was rejected).
    pub token: String,
    /// The Bot API method in its documented spelling (`sendMessage`) when the fake knows it, else as sent.
    /// File downloads are recorded as method `"file"` with a `file_path` parameter.
    pub method: String,
    /// The method exactly as the client spelled it in the URL (teloxide sends `SendMessage`).
    pub wire_method: String,
    pub params: serde_json::Map<String, Value>,
    /// File parts of a multipart request, in arrival order.
    pub uploads: Vec<Upload>,
    /// Whether the body was `multipart/form-data`.
    pub multipart: bool,
    /// When the request reached the handler; for a held `getUpdates` this is when it arrived, not when it returned.
    pub at: Instant,
    /// The HTTP status answered (Telegram's `error_code` doubles as the status).
    pub status: u16,
    /// The JSON envelope answered (`{"ok": ..., "result": ...}`), or the file size for downloads.
    pub response: Value,
}

/// A file part of a multipart request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upload {
    /// The part's name; teloxide names it with a random id and points the method parameter at it (`attach://<id>`).
    pub field: String,
    /// The `filename` of the part; teloxide sends `""` when the `InputFile` has no name.
    pub file_name: String,
    pub content_type: Option<String>,
    pub bytes: Vec<u8>,
}

impl Call {
    /// Whether Telegram would have said `"ok": true`.
    pub fn ok(&self) -> bool {
        self.response.get("ok").and_then(Value::as_bool) == Some(true)
    }

    /// `chat_id` when numeric; `@channelname` targets are left in `params`.
    pub fn chat_id(&self) -> Option<i64> {
        params::int(&self.params, "chat_id")
    }

    pub fn text(&self) -> Option<String> {
        params::text(&self.params, "text")
    }

    pub fn caption(&self) -> Option<String> {
        params::text(&self.params, "caption")
    }

    pub fn parse_mode(&self) -> Option<String> {
        params::text(&self.params, "parse_mode")
    }

    pub fn message_thread_id(&self) -> Option<i64> {
        params::int(&self.params, "message_thread_id")
    }

    /// `reply_markup` as JSON whether it came as an object or as multipart text, e.g.
    /// `{"inline_keyboard": [[{"text": "1", "callback_data": "…"}]]}`.
    pub fn reply_markup(&self) -> Option<Value> {
        params::json(&self.params, "reply_markup")
    }

    /// `reply_parameters` as JSON whether it came as an object or as multipart text.
    pub fn reply_parameters(&self) -> Option<Value> {
        params::json(&self.params, "reply_parameters")
    }

    /// Any parameter as JSON, decoding JSON text (multipart) into objects/arrays.
    pub fn param_json(&self, name: &str) -> Option<Value> {
        params::json(&self.params, name)
    }

    /// The file uploaded for a method parameter (`document`, `photo`), following teloxide's `attach://<part>`
    /// indirection or, failing that, a part named after the parameter itself.
    pub fn upload(&self, param: &str) -> Option<&Upload> {
        let attached = params::text(&self.params, param).and_then(|v| v.strip_prefix("attach://").map(str::to_owned));
        let part = attached.unwrap_or_else(|| param.to_owned());
        self.uploads.iter().find(|u| u.field == part)
    }

    /// `result.message_id` of a successful send, to assert on replies and edits.
    pub fn message_id(&self) -> Option<i64> {
        self.response.pointer("/result/message_id").and_then(Value::as_i64)
    }
}

/// An error the fake answers instead of doing the work, with Telegram's exact status, description and parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// 429 `Too Many Requests: retry after N` with `parameters.retry_after` (teloxide: `RequestError::RetryAfter`).
    TooManyRequests { retry_after: u32 },
    /// 403 `Forbidden: bot was blocked by the user` (teloxide: `ApiError::BotBlocked`).
    Blocked,
    /// 400 `Bad Request: chat not found` (teloxide: `ApiError::ChatNotFound`).
    ChatNotFound,
    /// Any other error. Beware: teloxide sleeps 10 s before reading any 5xx answer.
    Api { error_code: u16, description: String },
}

impl Failure {
    pub(crate) fn reply(&self) -> (u16, Value) {
        match self {
            Failure::TooManyRequests { retry_after } => (
                429,
                json!({
                    "ok": false,
                    "error_code": 429,
                    "description": format!("Too Many Requests: retry after {retry_after}"),
                    "parameters": {"retry_after": retry_after},
                }),
            ),
            Failure::Blocked => error(403, "Forbidden: bot was blocked by the user"),
            Failure::ChatNotFound => error(400, "Bad Request: chat not found"),
            Failure::Api {
                error_code,
                description,
            } => error(*error_code, description),
        }
    }
}

pub(crate) fn error(code: u16, description: &str) -> (u16, Value) {
    (
        code,
        json!({"ok": false, "error_code": code, "description": description}),
    )
}

/// A webhook as registered by `setWebhook`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Webhook {
    pub url: String,
    pub secret_token: Option<String>,
    pub max_connections: Option<i64>,
    pub allowed_updates: Option<Vec<String>>,
    pub ip_address: Option<String>,
}

#[derive(Clone, Debug)]
pub(crate) struct Identity {
    pub id: i64,
    pub username: String,
    pub first_name: String,
}

impl Identity {
    pub fn user_json(&self) -> Value {
        json!({"id": self.id, "is_bot": true, "first_name": self.first_name, "username": self.username})
    }
}

/// Telegram's token shape `<bot id>:<secret>`; the fake derives an identity from the id part so any well-formed token
/// works without registration.
pub(crate) fn derive_identity(token: &str) -> Option<Identity> {
    let (id, secret) = token.split_once(':')?;
    let well_formed = !id.is_empty()
        && id.bytes().all(|b| b.is_ascii_digit())
        && !secret.is_empty()
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    let id: i64 = id.parse().ok().filter(|_| well_formed)?;
    Some(Identity {
        id,
        username: format!("fake{id}_bot"),
        first_name: format!("Fake Bot {id}"),
    })
}

pub(crate) struct FailureRule {
    pub method_lower: String,
    pub chat_id: Option<i64>,
    pub failure: Failure,
    pub remaining: usize,
}

#[derive(Clone)]
pub(crate) struct StoredFile {
    pub file_unique_id: String,
    pub file_path: String,
    pub file_name: Option<String>,
    pub mime_type: Option<String>,
    pub bytes: Bytes,
}

#[derive(Default)]
pub(crate) struct BotState {
    pub registered: Option<Identity>,
    pub revoked: bool,
    pub last_update_id: i64,
    pub pending: VecDeque<(i64, Value)>,
    pub raw_get_updates: VecDeque<String>,
    /// Bumped by every `getUpdates`; a held poll that sees a newer generation answers 409 like Telegram does when a
    /// second instance polls the same bot.
    pub poll_generation: u64,
    pub polls_in_flight: usize,
    pub allowed_updates: Option<Vec<String>>,
    pub webhook: Option<Webhook>,
    pub failures: Vec<FailureRule>,
    pub blocked_chats: HashSet<i64>,
    pub last_message_id: HashMap<i64, i64>,
    pub files: HashMap<String, StoredFile>,
    pub uploads_stored: u64,
    /// Callback queries made up so far, to give each its own id.
    pub callback_queries: u64,
}

impl BotState {
    /// Telegram's ids only grow; an explicit id that would go backwards is renumbered rather than left to be
    /// silently discarded by the client's offset confirmation.
    pub fn assign_update_id(&mut self, update: &mut Value) -> i64 {
        let explicit = update.get("update_id").and_then(Value::as_i64);
        let id = match explicit {
            Some(id) if id > self.last_update_id => id,
            _ => self.last_update_id + 1,
        };
        self.last_update_id = id;
        update["update_id"] = Value::from(id);
        id
    }

    /// Telegram's `offset`: positive confirms (forgets) everything below it; negative keeps only the last `-offset`.
    pub fn confirm(&mut self, offset: i64) {
        if offset > 0 {
            self.pending.retain(|(id, _)| *id >= offset);
        } else if offset < 0 {
            let keep = usize::try_from(offset.unsigned_abs()).unwrap_or(usize::MAX);
            while self.pending.len() > keep {
                self.pending.pop_front();
            }
        }
    }

    pub fn take_failure(&mut self, method: &str, chat_id: Option<i64>) -> Option<Failure> {
        let method = method.to_ascii_lowercase();
        let index = self
            .failures
            .iter()
            .position(|rule| rule.method_lower == method && (rule.chat_id.is_none() || rule.chat_id == chat_id))?;
        let rule = &mut self.failures[index];
        let failure = rule.failure.clone();
        rule.remaining -= 1;
        if rule.remaining == 0 {
            self.failures.remove(index);
        }
        Some(failure)
    }

    pub fn next_message_id(&mut self, chat_id: i64) -> i64 {
        let id = self.last_message_id.entry(chat_id).or_insert(0);
        *id += 1;
        *id
    }
}

#[derive(Default)]
pub(crate) struct State {
    pub registered_only: bool,
    /// Set when the `FakeTelegram` is dropped, so held polls let their connections close.
    pub closed: bool,
    pub bots: HashMap<String, BotState>,
    pub calls: Vec<Call>,
}

impl State {
    pub fn bot(&mut self, token: &str) -> &mut BotState {
        self.bots.entry(token.to_owned()).or_default()
    }

    /// `None` means Telegram would answer 401.
    pub fn identity(&self, token: &str) -> Option<Identity> {
        let registered_only = self.registered_only;
        let bot = self.bots.get(token);
        if bot.is_some_and(|b| b.revoked) {
            return None;
        }
        match bot.and_then(|b| b.registered.clone()) {
            Some(identity) => Some(identity),
            None if registered_only => None,
            None => derive_identity(token),
        }
    }
}

/// State plus a change counter: everything that may let a waiter proceed (an update pushed, a call recorded, a
/// webhook set) bumps it, and waiters subscribe before checking so no wake-up is lost.
pub(crate) struct Shared {
    state: Mutex<State>,
    pub changed: watch::Sender<u64>,
}

impl Shared {
    pub fn new() -> Self {
        Shared {
            state: Mutex::new(State::default()),
            changed: watch::Sender::new(0),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking test thread must not hide the fake's state from the assertions that report it.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn bump(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    pub fn record(&self, call: Call) {
        self.lock().calls.push(call);
        self.bump();
    }
}

pub(crate) fn params_chat_id(params: &Params) -> Option<i64> {
    params::int(params, "chat_id")
}
