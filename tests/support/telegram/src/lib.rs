//! A fake Telegram Bot API server on loopback, for Switchboard's black-box tests and benchmarks.
//!
//! The real Bot API cannot be reached from tests, so this speaks its wire format closely enough that an unmodified
//! client (teloxide, pointed here with `Bot::new(token).set_api_url(url)`) cannot tell the difference for the methods
//! Switchboard uses. Fidelity matters more than breadth: envelopes, error codes and descriptions are Telegram's own
//! (so teloxide maps them to the same `RequestError`/`ApiError` variants as in production), long polling really holds
//! the request, and offsets confirm updates the way Telegram does.
//!
//! # Wire format in brief
//!
//! * `POST /bot<TOKEN>/<method>`; method names match case-insensitively (teloxide sends `GetUpdates`, `SendMessage`).
//!   Parameters may come as JSON, a urlencoded form, a query string or `multipart/form-data`; in multipart every value
//!   is text and files are separate parts referenced as `attach://<part name>`.
//! * Answers are `{"ok": true, "result": ...}` or `{"ok": false, "error_code": N, "description": ...}` with HTTP
//!   status `N`, plus `"parameters": {"retry_after": S}` for 429.
//! * `GET /file/bot<TOKEN>/<file_path>` downloads a file.
//!
//! # Bots and tokens
//!
//! Any well-formed token (`<digits>:<[A-Za-z0-9_-]+>`) is accepted with an identity derived from it (id = the digits,
//! username `fake<id>_bot`), so tests can run several bots without setup. [`FakeTelegram::add_bot`] fixes an identity,
//! [`FakeTelegram::revoke_token`] and [`FakeTelegram::require_registered_tokens`] make tokens fail with 401
//! `Unauthorized` as a revoked or mistyped token does.
//!
//! # Methods
//!
//! `getMe`, `getUpdates`, `sendMessage`, `sendDocument`, `sendPhoto`, `getFile`, `setWebhook`, `deleteWebhook`,
//! `getWebhookInfo`, `answerCallbackQuery`. Anything else answers 404 `Not Found: method not found` (and is recorded,
//! so a test can see the daemon needed it). Every request, failed or not, is recorded as a [`Call`].
//!
//! Deliberate departures from Telegram, all to keep tests simple: webhooks may be plain HTTP on any port; pushed
//! updates are never delivered to a webhook by themselves (use [`FakeTelegram::deliver_webhook_update`]);
//! `allowed_updates` is recorded but does not filter; chats are rendered from the id alone (positive = private,
//! `-100…` = supergroup, other negative = group) and `@username` chat ids are "chat not found"; `reply_to_message` is
//! not filled in.
//!
//! # Markup and buttons
//!
//! `parse_mode=MarkdownV2` text and captions are read as Telegram reads them, and refused as Telegram refuses them: an
//! unescaped reserved character or an unclosed entity answers 400 `Bad Request: can't parse entities: …` with TDLib's
//! words (see `markdown.rs` for the little it simplifies, always towards accepting). The message is still echoed with
//! its markup rather than turned into `entities`; HTML and legacy Markdown are echoed unread. An inline keyboard
//! (`reply_markup`) is echoed in the sent message, and callback data outside 1–64 bytes answers 400
//! `BUTTON_DATA_INVALID`. [`FakeTelegram::push_callback_query`] presses a button.
//!
//! # Waiting
//!
//! Tests must not sleep to wait for the daemon. [`FakeTelegram::wait_for_calls`] and [`FakeTelegram::wait_until`]
//! wake on every change of the fake's state and panic with what was seen when their deadline passes.

mod inbox;
mod markdown;
mod params;
mod server;
mod state;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::oneshot;

pub use inbox::telegram_inbox;
pub use state::{Call, Failure, Upload, Webhook};
use state::{FailureRule, Identity, Shared, StoredFile};

/// The header Telegram sets on webhook requests when `setWebhook` had a `secret_token`.
pub const SECRET_TOKEN_HEADER: &str = "X-Telegram-Bot-Api-Secret-Token";

/// Who presses a button in a group chat in [`FakeTelegram::callback_query`].
pub const GROUP_MEMBER_ID: i64 = 7_000_000_001;

/// Methods whose successful calls are messages the bot sent.
const SEND_METHODS: &[&str] = &["sendMessage", "sendDocument", "sendPhoto"];

/// A running fake Bot API.
///
/// Dropping it takes the server down the way an outage looks to a client: held polls answer at once, kept-alive
/// connections close, and new connections are refused. (Merely aborting the accept loop would leave the client's
/// pooled connections served.)
pub struct FakeTelegram {
    shared: Arc<Shared>,
    addr: SocketAddr,
    /// Dropping it starts axum's graceful shutdown.
    _shutdown: oneshot::Sender<()>,
    http: reqwest::Client,
}

impl Drop for FakeTelegram {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.bump();
    }
}

impl std::fmt::Debug for FakeTelegram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeTelegram")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl FakeTelegram {
    /// Starts a fake on an ephemeral loopback port.
    ///
    /// # Panics
    /// Outside a tokio runtime, or if loopback cannot be bound.
    pub async fn start() -> FakeTelegram {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("fake Telegram: binding 127.0.0.1:0 failed");
        let addr = listener
            .local_addr()
            .expect("fake Telegram: listener has no local address");
        let shared = Arc::new(Shared::new());
        let app = server::router(shared.clone());
        let (shutdown, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            // Resolves when the sender is dropped with the FakeTelegram.
            let stopped = async move {
                let _ = stopped.await;
            };
            axum::serve(listener, app)
                .with_graceful_shutdown(stopped)
                .await
                .expect("fake Telegram: server failed");
        });
        FakeTelegram {
            shared,
            addr,
            _shutdown: shutdown,
            http: reqwest::Client::new(),
        }
    }

    /// The API URL to hand to the client, e.g. `http://127.0.0.1:PORT/` (teloxide: `Bot::set_api_url`).
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Gives `token` a fixed identity for `getMe` and sent messages' `from` (and accepts it even if malformed).
    pub fn add_bot(&self, token: &str, id: i64, username: &str) {
        let identity = Identity {
            id,
            username: username.to_owned(),
            first_name: username.to_owned(),
        };
        self.shared.lock().bot(token).registered = Some(identity);
    }

    /// Makes every later request with `token` fail with 401, like a token revoked in BotFather.
    pub fn revoke_token(&self, token: &str) {
        self.shared.lock().bot(token).revoked = true;
    }

    /// Stops accepting tokens that were not registered with [`add_bot`](Self::add_bot).
    pub fn require_registered_tokens(&self) {
        self.shared.lock().registered_only = true;
    }

    /// Queues an update for `getUpdates` and wakes a held poll. `update_id` is assigned when missing, and also when
    /// the given one is not above the bot's last id: Telegram's ids only grow, and a lower one would be dropped by
    /// the client's offset confirmation. Returns the `update_id` used.
    pub fn push_update(&self, token: &str, update: Value) -> i64 {
        let mut update = update;
        assert!(
            update.is_object(),
            "fake Telegram: an update must be a JSON object, got {update}"
        );
        let id = {
            let mut state = self.shared.lock();
            let bot = state.bot(token);
            let id = bot.assign_update_id(&mut update);
            bot.pending.push_back((id, update));
            id
        };
        self.shared.bump();
        id
    }

    /// A `callback_query` update: the user of `chat_id` pressed a button with `data` under the bot's latest message in
    /// that chat that has an inline keyboard (as the fake answered it), or under a made-up bot message when there is
    /// none. In a private chat the presser is the chat's user; in a group it is user [`GROUP_MEMBER_ID`]. `data` is not
    /// checked against the keyboard, so a test can press a stale or forged button. Returned rather than pushed, to
    /// change (another presser) or to deliver by webhook; [`push_callback_query`](Self::push_callback_query) pushes.
    pub fn callback_query(&self, token: &str, chat_id: i64, data: &str) -> Value {
        let mut state = self.shared.lock();
        // A refused token still gets an update: what the client makes of it is the test's business.
        let identity = state.identity(token);
        let bot_id = identity.as_ref().map_or(0, |identity| identity.id);
        let bot_user = identity.map_or_else(
            || json!({"id": bot_id, "is_bot": true, "first_name": "Bot"}),
            |identity| identity.user_json(),
        );
        let keyboard_message = state
            .calls
            .iter()
            .rev()
            .filter(|c| c.token == token && SEND_METHODS.contains(&c.method.as_str()) && c.ok())
            .filter_map(|c| c.response.get("result"))
            .find(|message| {
                message.pointer("/chat/id").and_then(Value::as_i64) == Some(chat_id)
                    && message.get("reply_markup").is_some()
            })
            .cloned();
        let message = keyboard_message.unwrap_or_else(|| {
            json!({
                "message_id": 1,
                "from": bot_user,
                "chat": server::chat_json(chat_id),
                "date": server::unix_now(),
                "text": "Choose one",
                "reply_markup": {"inline_keyboard": [[{"text": data, "callback_data": data}]]},
            })
        });
        let bot = state.bot(token);
        bot.callback_queries += 1;
        // Telegram's ids are long decimal strings, unique per bot.
        let id = format!("{}{:07}", bot_id.unsigned_abs(), bot.callback_queries);
        let presser = if chat_id > 0 { chat_id } else { GROUP_MEMBER_ID };
        json!({
            "callback_query": {
                "id": id,
                "from": {
                    "id": presser,
                    "is_bot": false,
                    "first_name": format!("User {presser}"),
                    "language_code": "en",
                },
                "message": message,
                // One per chat, as Telegram's: a number rendered as a string.
                "chat_instance": (chat_id.unsigned_abs().wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 2).to_string(),
                "data": data,
            }
        })
    }

    /// Pushes [`callback_query`](Self::callback_query) for `getUpdates`; returns its `update_id`.
    pub fn push_callback_query(&self, token: &str, chat_id: i64, data: &str) -> i64 {
        let update = self.callback_query(token, chat_id, data);
        self.push_update(token, update)
    }

    /// Serves `body` verbatim as the answer to the next `getUpdates` of `token` (ahead of queued updates), e.g.
    /// `tlx-getUpdates-response-with-malformed-entries.json`. Update ids found in it count as used.
    pub fn push_raw_get_updates(&self, token: &str, body: impl Into<String>) {
        let body = body.into();
        let max_id = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v.get("result").and_then(Value::as_array).cloned())
            .into_iter()
            .flatten()
            .filter_map(|u| u.get("update_id").and_then(Value::as_i64))
            .max();
        {
            let mut state = self.shared.lock();
            let bot = state.bot(token);
            if let Some(max_id) = max_id {
                bot.last_update_id = bot.last_update_id.max(max_id);
            }
            bot.raw_get_updates.push_back(body);
        }
        self.shared.bump();
    }

    /// Updates queued and not yet confirmed by an offset.
    pub fn pending_updates(&self, token: &str) -> usize {
        self.shared.lock().bot(token).pending.len()
    }

    /// `getUpdates` requests of `token` being held open right now.
    pub fn polls_in_flight(&self, token: &str) -> usize {
        self.shared.lock().bot(token).polls_in_flight
    }

    /// Every request made with `token`, in the order they were answered (a held `getUpdates` is recorded when it
    /// returns, with `at` = arrival).
    pub fn calls(&self, token: &str) -> Vec<Call> {
        self.shared
            .lock()
            .calls
            .iter()
            .filter(|c| c.token == token)
            .cloned()
            .collect()
    }

    /// The calls of one method (any spelling).
    pub fn calls_to(&self, token: &str, method: &str) -> Vec<Call> {
        let state = self.shared.lock();
        state
            .calls
            .iter()
            .filter(|c| c.token == token && c.method.eq_ignore_ascii_case(method))
            .cloned()
            .collect()
    }

    /// Successful `sendMessage`/`sendDocument`/`sendPhoto` calls: what the chat would show.
    pub fn sent_messages(&self, token: &str) -> Vec<Call> {
        let state = self.shared.lock();
        state
            .calls
            .iter()
            .filter(|c| c.token == token && SEND_METHODS.contains(&c.method.as_str()) && c.ok())
            .cloned()
            .collect()
    }

    /// Waits until `token` has made at least `count` calls to `method` (any outcome) and returns them all.
    ///
    /// # Panics
    /// After `timeout`, listing the methods that were called.
    pub async fn wait_for_calls(&self, token: &str, method: &str, count: usize, timeout: Duration) -> Vec<Call> {
        let what = format!("{count} `{method}` call(s) with token {token}");
        self.wait_until(timeout, &what, |fake| {
            let calls = fake.calls_to(token, method);
            (calls.len() >= count).then_some(calls)
        })
        .await
    }

    /// Re-evaluates `check` whenever the fake's state changes until it returns `Some`.
    ///
    /// # Panics
    /// After `timeout`, naming `what` and the methods called so far.
    pub async fn wait_until<T>(&self, timeout: Duration, what: &str, mut check: impl FnMut(&Self) -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let mut changed = self.shared.changed.subscribe();
            if let Some(found) = check(self) {
                return found;
            }
            let woke = tokio::time::timeout_at(deadline, changed.changed()).await;
            if woke.is_err() {
                let seen: Vec<String> = self
                    .shared
                    .lock()
                    .calls
                    .iter()
                    .map(|c| format!("{} {} -> {}", c.token, c.wire_method, c.status))
                    .collect();
                panic!("fake Telegram: timed out after {timeout:?} waiting for {what}; calls so far: {seen:#?}");
            }
        }
    }

    /// Answers the next `times` calls of `method` (any spelling) by `token` with `failure`, only for `chat_id` if
    /// given. Rules are consumed in the order they were added.
    pub fn fail_next(&self, token: &str, method: &str, chat_id: Option<i64>, failure: Failure, times: usize) {
        if times == 0 {
            return;
        }
        let rule = FailureRule {
            method_lower: method.to_ascii_lowercase(),
            chat_id,
            failure,
            remaining: times,
        };
        self.shared.lock().bot(token).failures.push(rule);
    }

    /// Every later call of `token` naming `chat_id` fails with 403 `Forbidden: bot was blocked by the user`.
    pub fn block_chat(&self, token: &str, chat_id: i64) {
        self.shared.lock().bot(token).blocked_chats.insert(chat_id);
    }

    pub fn unblock_chat(&self, token: &str, chat_id: i64) {
        self.shared.lock().bot(token).blocked_chats.remove(&chat_id);
    }

    /// Makes a file available to `getFile` and the download route. Telegram's file ids are per bot, so are these.
    pub fn add_file(
        &self,
        token: &str,
        file_id: &str,
        file_unique_id: &str,
        bytes: impl Into<Vec<u8>>,
        file_path: &str,
    ) {
        let file = StoredFile {
            file_unique_id: file_unique_id.to_owned(),
            file_path: file_path.to_owned(),
            file_name: None,
            mime_type: None,
            bytes: bytes.into().into(),
        };
        self.shared.lock().bot(token).files.insert(file_id.to_owned(), file);
    }

    /// The webhook registered by `setWebhook`, if any.
    pub fn webhook(&self, token: &str) -> Option<Webhook> {
        self.shared.lock().bot(token).webhook.clone()
    }

    /// The last `allowed_updates` the bot asked for (via `getUpdates` or `setWebhook`).
    pub fn allowed_updates(&self, token: &str) -> Option<Vec<String>> {
        self.shared.lock().bot(token).allowed_updates.clone()
    }

    /// Delivers `update` to the webhook `token` registered, with its secret, as Telegram would; `update_id` is
    /// assigned like [`push_update`](Self::push_update). Returns the HTTP status the receiver answered.
    ///
    /// # Panics
    /// If no webhook is registered, or on a connection error.
    pub async fn deliver_webhook_update(&self, token: &str, update: Value) -> u16 {
        let mut update = update;
        let webhook = {
            let mut state = self.shared.lock();
            let bot = state.bot(token);
            let webhook = bot.webhook.clone().unwrap_or_else(|| {
                panic!("fake Telegram: no webhook registered for {token}; the daemon has not called setWebhook")
            });
            bot.assign_update_id(&mut update);
            webhook
        };
        post_update_with(&self.http, &webhook.url, webhook.secret_token.as_deref(), &update).await
    }
}

/// A customer's text in a private chat, as `getUpdates` or a webhook carries it (the
/// update id is the fake's to add).
pub fn private_text(user: i64, message_id: i64, text: &str) -> Value {
    json!({
        "message": {
            "message_id": message_id,
            "from": {"id": user, "is_bot": false, "first_name": "Ada"},
            "chat": {"id": user, "type": "private", "first_name": "Ada"},
            "date": 1_795_000_000,
            "text": text,
        }
    })
}

/// POSTs `update` to `url` the way Telegram delivers webhooks (JSON body, `X-Telegram-Bot-Api-Secret-Token` when a
/// secret is given) and returns the status answered.
///
/// # Panics
/// If `url` is not on loopback (tests must not reach out), or on a connection error.
pub async fn post_update(url: &str, secret: Option<&str>, update: &Value) -> u16 {
    post_update_with(&reqwest::Client::new(), url, secret, update).await
}

async fn post_update_with(client: &reqwest::Client, url: &str, secret: Option<&str>, update: &Value) -> u16 {
    let parsed = reqwest::Url::parse(url).unwrap_or_else(|e| panic!("fake Telegram: bad webhook URL {url:?}: {e}"));
    let host = parsed
        .host_str()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let loopback = host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    assert!(
        loopback,
        "fake Telegram: refusing to deliver a webhook update off loopback: {url}"
    );
    let mut request = client.post(parsed).json(update);
    if let Some(secret) = secret {
        request = request.header(SECRET_TOKEN_HEADER, secret);
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("fake Telegram: webhook POST to {url} failed: {e}"));
    response.status().as_u16()
}
