//! A fake WhatsApp Cloud (Graph) API on loopback, for Switchboard's tests.
//!
//! Meta's API cannot be reached from tests; this speaks its wire format for the calls the
//! connector makes, so a client pointed at [`FakeWhatsapp::api_base`] cannot tell:
//!
//! - `POST /{version}/{phone_number_id}/messages` (bearer token): the body's shape is
//!   checked as Meta checks it (text length, list rows, template names), recorded, and
//!   answered `{"messaging_product":"whatsapp","contacts":[{"input","wa_id"}],
//!   "messages":[{"id":"wamid.…"}]}`.
//! - `POST /{version}/{phone_number_id}/media` (multipart `file`, `type`,
//!   `messaging_product`): recorded, answered `{"id": "…"}`.
//! - `GET /{version}/{media_id}`: `{url, mime_type, sha256, file_size, id}` with a `url` on
//!   the fake, whose GET (bearer token again) serves the bytes.
//!
//! Errors are Graph's own JSON (`{"error": {"message", "type", "code", "error_data",
//! "fbtrace_id"}}`) with Meta's HTTP status: a wrong token is 401 code 190, a malformed
//! body 400 code 100, and tests script others with [`FakeWhatsapp::fail_next_sends`].
//!
//! [`webhook`] builds the deliveries Meta would POST to the daemon, signed.
//!
//! Tests never sleep: [`FakeWhatsapp::wait_for_sent`] and [`FakeWhatsapp::wait_until`]
//! wake on every change of the fake's state and panic with what was seen at the deadline.

mod server;
pub mod webhook;

use std::collections::{HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::{Notify, oneshot, watch};

pub use webhook::{
    PHONE_NUMBER_ID, SignedWebhook, image_message, list_reply, post_webhook, signature, signed, status, text_message,
};

/// One request the fake answered.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub path: String,
    /// The JSON body, or a multipart form's text fields as an object.
    pub body: Value,
    pub status: u16,
    pub response: Value,
    pub at: Instant,
}

/// A message the fake accepted.
#[derive(Debug, Clone)]
pub struct SentMessage {
    pub phone_number_id: String,
    pub to: String,
    /// `text`, `image`, `interactive`, `template`, …
    pub kind: String,
    /// The whole request body.
    pub body: Value,
    /// The wamid answered.
    pub id: String,
    pub at: Instant,
}

impl SentMessage {
    /// `text.body`.
    pub fn text(&self) -> Option<&str> {
        self.body.pointer("/text/body").and_then(Value::as_str)
    }
}

/// A file uploaded through `/media`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    pub media_id: String,
    pub filename: String,
    /// The form's `type` field.
    pub mime_type: String,
    pub bytes: Vec<u8>,
}

/// An error the fake answers to a send instead of accepting it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Any Graph error: HTTP `status` with `code`, `message` and `details`.
    Graph {
        status: u16,
        code: i64,
        message: String,
        details: String,
    },
}

impl Failure {
    /// 131056, HTTP 400: too many messages to one customer in a short time.
    pub fn pair_rate_limit() -> Failure {
        Failure::graph(
            400,
            131_056,
            "(#131056) (Business Account, Consumer Account) pair rate limit hit",
            "Message failed to send because there were too many messages sent from this phone number to the same phone number in a short period of time.",
        )
    }

    /// 130429, HTTP 400: the number's throughput is used up.
    pub fn throughput() -> Failure {
        Failure::graph(
            400,
            130_429,
            "(#130429) Rate limit hit",
            "Cloud API message throughput has been reached.",
        )
    }

    /// 131026, HTTP 400: the number cannot receive the message.
    pub fn undeliverable() -> Failure {
        Failure::graph(
            400,
            131_026,
            "(#131026) Message Undeliverable.",
            "Message Undeliverable.",
        )
    }

    /// 131047, HTTP 400: more than 24 hours since the customer's last message.
    pub fn re_engagement() -> Failure {
        Failure::graph(
            400,
            131_047,
            "(#131047) Re-engagement message",
            "Message failed to send because more than 24 hours have passed since the customer last replied to this number.",
        )
    }

    /// 131000, HTTP 500: something went wrong at Meta.
    pub fn something_went_wrong() -> Failure {
        Failure::graph(500, 131_000, "(#131000) Something went wrong", "Something went wrong")
    }

    pub fn graph(status: u16, code: i64, message: &str, details: &str) -> Failure {
        Failure::Graph {
            status,
            code,
            message: message.to_owned(),
            details: details.to_owned(),
        }
    }

    pub(crate) fn reply(&self) -> (u16, Value) {
        match self {
            Failure::Graph {
                status,
                code,
                message,
                details,
            } => (*status, graph_error(*code, message, Some(details))),
        }
    }
}

/// The Graph error body.
pub(crate) fn graph_error(code: i64, message: &str, details: Option<&str>) -> Value {
    let mut error = json!({
        "message": message,
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": "AbCdEfGhIjKlMnOpQrStUvW",
    });
    if let Some(details) = details {
        error["error_data"] = json!({"messaging_product": "whatsapp", "details": details});
    }
    json!({"error": error})
}

pub(crate) struct Media {
    pub(crate) mime_type: String,
    pub(crate) bytes: Vec<u8>,
}

struct FailureRule {
    to: Option<String>,
    failure: Failure,
    /// Matching sends to let through before the rule applies.
    passing: usize,
    remaining: usize,
}

#[derive(Default)]
pub(crate) struct State {
    pub(crate) calls: Vec<Call>,
    pub(crate) sent: Vec<SentMessage>,
    pub(crate) uploads: Vec<Upload>,
    pub(crate) media: HashMap<String, Media>,
    failures: VecDeque<FailureRule>,
    pub(crate) next_id: u64,
    /// Set by [`FakeWhatsapp::hold_next_send`]: the next accepted send waits on it
    /// before answering.
    pub(crate) hold: Option<Arc<Notify>>,
}

impl State {
    /// The scripted failure for a send to `to`, consuming one use of it.
    pub(crate) fn take_failure(&mut self, to: &str) -> Option<Failure> {
        let index = self
            .failures
            .iter()
            .position(|rule| rule.to.as_deref().is_none_or(|wanted| wanted == to))?;
        let rule = &mut self.failures[index];
        if rule.passing > 0 {
            rule.passing -= 1;
            return None;
        }
        rule.remaining -= 1;
        let failure = rule.failure.clone();
        if rule.remaining == 0 {
            self.failures.remove(index);
        }
        Some(failure)
    }

    pub(crate) fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }
}

pub(crate) struct Shared {
    state: Mutex<State>,
    pub(crate) token: String,
    pub(crate) addr: SocketAddr,
    changed: watch::Sender<u64>,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn bump(&self) {
        self.changed.send_modify(|version| *version += 1);
    }
}

/// A running fake Graph API; dropping it stops the server.
pub struct FakeWhatsapp {
    shared: Arc<Shared>,
    /// Dropping it starts axum's graceful shutdown.
    _shutdown: oneshot::Sender<()>,
}

impl std::fmt::Debug for FakeWhatsapp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeWhatsapp")
            .field("addr", &self.shared.addr)
            .finish_non_exhaustive()
    }
}

impl FakeWhatsapp {
    /// Starts a fake on an ephemeral loopback port that accepts `access_token` only.
    ///
    /// # Panics
    /// Outside a tokio runtime, or if loopback cannot be bound.
    pub async fn start(access_token: &str) -> FakeWhatsapp {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("fake WhatsApp: binding 127.0.0.1:0 failed");
        let addr = listener.local_addr().expect("fake WhatsApp: no local address");
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            token: access_token.to_owned(),
            addr,
            changed: watch::channel(0).0,
        });
        let app = server::router(shared.clone());
        let (shutdown, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let stopped = async move {
                let _ = stopped.await;
            };
            axum::serve(listener, app)
                .with_graceful_shutdown(stopped)
                .await
                .expect("fake WhatsApp: server failed");
        });
        FakeWhatsapp {
            shared,
            _shutdown: shutdown,
        }
    }

    /// The `api_base` to configure, `http://127.0.0.1:PORT`.
    pub fn api_base(&self) -> String {
        format!("http://{}", self.shared.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// Serves `bytes` as the customer's file `media_id` (`GET /{version}/{media_id}`
    /// and its download URL).
    pub fn host_media(&self, media_id: &str, mime_type: &str, bytes: impl Into<Vec<u8>>) {
        self.shared.lock().media.insert(
            media_id.to_owned(),
            Media {
                mime_type: mime_type.to_owned(),
                bytes: bytes.into(),
            },
        );
        self.shared.bump();
    }

    /// Accepts the next send (it shows in [`FakeWhatsapp::sent`] with its wamid at once)
    /// but answers only after `release` on the returned handle is notified: Meta's status
    /// webhooks can reach the desk before the Graph API's answer to the send does.
    pub fn hold_next_send(&self) -> Arc<Notify> {
        let release = Arc::new(Notify::new());
        self.shared.lock().hold = Some(release.clone());
        release
    }

    /// Answers the next `times` sends (to `to` only, when given) with `failure`; rules
    /// are consumed in the order they were added.
    pub fn fail_next_sends(&self, to: Option<&str>, failure: Failure, times: usize) {
        self.fail_sends_after(to, 0, failure, times);
    }

    /// Lets the next `passing` sends (to `to` only, when given) through, then answers
    /// `times` with `failure`: a send of several messages failing part-way.
    pub fn fail_sends_after(&self, to: Option<&str>, passing: usize, failure: Failure, times: usize) {
        if times == 0 {
            return;
        }
        self.shared.lock().failures.push_back(FailureRule {
            to: to.map(str::to_owned),
            failure,
            passing,
            remaining: times,
        });
    }

    /// Every request answered, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.shared.lock().calls.clone()
    }

    /// The messages accepted, in order.
    pub fn sent(&self) -> Vec<SentMessage> {
        self.shared.lock().sent.clone()
    }

    /// The files uploaded, in order.
    pub fn uploads(&self) -> Vec<Upload> {
        self.shared.lock().uploads.clone()
    }

    /// Waits until at least `count` messages were accepted and returns them all.
    ///
    /// # Panics
    /// After `timeout`, listing the requests seen.
    pub async fn wait_for_sent(&self, count: usize, timeout: Duration) -> Vec<SentMessage> {
        self.wait_until(timeout, &format!("{count} sent message(s)"), |fake| {
            let sent = fake.sent();
            (sent.len() >= count).then_some(sent)
        })
        .await
    }

    /// Re-evaluates `check` whenever the fake's state changes, until it returns `Some`.
    ///
    /// # Panics
    /// After `timeout`, naming `what` and the requests seen.
    pub async fn wait_until<T>(&self, timeout: Duration, what: &str, mut check: impl FnMut(&Self) -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut changed = self.shared.changed.subscribe();
        loop {
            changed.mark_unchanged();
            if let Some(found) = check(self) {
                return found;
            }
            if tokio::time::timeout_at(deadline, changed.changed()).await.is_err() {
                let seen: Vec<String> = self
                    .calls()
                    .iter()
                    .map(|call| format!("{} {} -> {}", call.method, call.path, call.status))
                    .collect();
                panic!("fake WhatsApp: timed out after {timeout:?} waiting for {what}; requests: {seen:#?}");
            }
        }
    }
}
