//! The black-box fixture: the real `switchboard` binary on a loopback port with a temp
//! database, a callback receiver standing in for the business's app, and helpers to
//! sign requests and read the database's full contents.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use sqlx::{Row, SqlitePool};
use switchboard_connector_webhook::signature::{HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP};
use switchboard_connector_webhook::{Secret, verify};
use tempfile::TempDir;

pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// How long any awaited effect may take before a test fails, and the poll for it: one
/// definition for these tests and the mail servers they start.
pub use switchboard_test_mailservers::{DEADLINE, eventually, eventually_within};

pub fn secret() -> Secret {
    Secret::parse(SECRET).unwrap()
}

pub fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// A config for tests: the shipped example's shape, short retries, a temp database.
pub fn config(dir: &Path, callback_url: &str) -> String {
    config_with_inbox(dir, &shop_inbox(callback_url))
}

/// The webhook inbox `shop` the tests post to (TOML), calling `callback_url` back.
pub fn shop_inbox(callback_url: &str) -> String {
    format!(
        r#"
[inboxes.shop]
name = "Shop app"

[inboxes.shop.webhook]
secret = "{SECRET}"
callback_url = "{callback_url}"
max_body_bytes = 65536
"#
    )
}

/// The test config around one inbox's tables (TOML).
pub fn config_with_inbox(dir: &Path, inbox: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
shutdown_grace = "5s"

# The tests send bursts from one address; tests/blackbox/door.rs turns the limits on.
[server.rate_limits]
hook_per_inbox = 0
hook_per_address = 0
api_per_token = 0

[storage]
url = "sqlite://{db}"

[log]
level = "info,switchboard=debug"

[outbox]
retry_schedule = [{retries}]
expire_after = "1h"
shutdown_grace = "2s"

[subscriptions]
# The tests' receivers listen on loopback, which subscriptions may not reach otherwise.
allow_hosts = ["127.0.0.1"]

[updates]
# The acknowledgement (and Telegram's greeting) only: the tests of other updates live
# in tests/escalation, on an injected clock.
events = ["received", "greeting"]

[updates.templates.greeting.en]
text = "Welcome! Write your question and our team answers here."

[updates.templates.received.en]
text = "Hello{{% if contact.name %}} {{{{ contact.name }}}}{{% endif %}}, your reference is {{{{ conversation.reference }}}} with {{{{ team.name }}}}."

[routing]
default_team = "support"

[teams.support]
name = "Customer Support"

[teams.billing]
name = "Billing"

[teams.technical]
name = "Technical Support"
{inbox}
[[rules]]
name = "billing"
when = {{ text = '(?i)\b(refund|invoice|charged)\b' }}
then = {{ team = "billing", priority = "high", labels = ["billing"] }}

[[rules]]
name = "enterprise"
when = {{ metadata = {{ plan = "enterprise" }} }}
then = {{ team = "technical", priority = "urgent" }}
"#,
        db = dir.join("switchboard.db").display(),
        retries = vec!["\"150ms\""; 200].join(", "),
    )
}

/// The update events of the test config.
const TEST_UPDATE_EVENTS: &str = r#"events = ["received", "greeting"]"#;

/// A test config (from [`config_with_inbox`]) that sends these update events instead of
/// the acknowledgement and greeting only.
pub fn with_update_events(config: &str, events: &[&str]) -> String {
    assert!(
        config.contains(TEST_UPDATE_EVENTS),
        "the test config no longer says `{TEST_UPDATE_EVENTS}`"
    );
    let events: Vec<String> = events.iter().map(|event| format!("{event:?}")).collect();
    config.replacen(TEST_UPDATE_EVENTS, &format!("events = [{}]", events.join(", ")), 1)
}

/// The running daemon. Killed on drop; its log is printed when a test fails.
pub struct Daemon {
    pub dir: TempDir,
    pub base: String,
    child: Option<Child>,
    http: reqwest::Client,
}

impl Daemon {
    /// Starts the daemon on the test config with this callback URL.
    pub async fn start(callback_url: &str) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("switchboard.toml"), config(dir.path(), callback_url)).unwrap();
        Daemon::start_in(dir).await
    }

    /// Starts (or restarts) the daemon on the config and database already in `dir`.
    pub async fn start_in(dir: TempDir) -> Daemon {
        Daemon::start_with_open_files(dir, None).await
    }

    /// Starts on the config in `dir` with the process's open-file limit set to
    /// `open_files` (by `prlimit`, as an operator's unit file would).
    pub async fn start_with_open_files(dir: TempDir, open_files: Option<u32>) -> Daemon {
        Daemon::launch(dir, open_files, &[]).await
    }

    /// Starts on the config in `dir` with these variables added to its environment.
    pub async fn start_with_env(dir: TempDir, env: &[(&str, &str)]) -> Daemon {
        Daemon::launch(dir, None, env).await
    }

    async fn launch(dir: TempDir, open_files: Option<u32>, env: &[(&str, &str)]) -> Daemon {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.path().join("daemon.log"))
            .unwrap();
        let mut command = match open_files {
            Some(limit) => {
                let mut command = Command::new("prlimit");
                command
                    .arg(format!("--nofile={limit}:{limit}"))
                    .arg("--")
                    .arg(env!("CARGO_BIN_EXE_switchboard"));
                command
            }
            None => Command::new(env!("CARGO_BIN_EXE_switchboard")),
        };
        let mut child = command
            .envs(env.iter().copied())
            .arg("--config")
            .arg(dir.path().join("switchboard.toml"))
            .arg("serve")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("the switchboard binary starts");
        let mut first_line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first_line)
            .unwrap();
        let Some(base) = first_line
            .trim()
            .strip_prefix("switchboard listening on ")
            .map(str::to_owned)
        else {
            let log = std::fs::read_to_string(dir.path().join("daemon.log")).unwrap_or_default();
            panic!("the daemon did not start; stdout: {first_line:?}\nlog:\n{log}");
        };
        let daemon = Daemon {
            dir,
            base,
            child: Some(child),
            http: reqwest::Client::new(),
        };
        eventually("the daemon to be ready", || async {
            let response = daemon.http.get(daemon.url("/readyz")).send().await.ok()?;
            (response.status() == StatusCode::OK).then_some(())
        })
        .await;
        daemon
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The daemon's process id (prlimit execs it in place, so the same process).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// `host:port` of the listener.
    pub fn address(&self) -> String {
        self.base.trim_start_matches("http://").to_owned()
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("switchboard.toml")
    }

    /// SIGTERM, then waits for the exit. The temp dir (config and database) is returned
    /// for a restart.
    pub fn stop(mut self) -> (TempDir, ExitStatus) {
        let mut child = self.child.take().unwrap();
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -TERM failed");
        let started = Instant::now();
        let exit = loop {
            if let Some(exit) = child.try_wait().unwrap() {
                break exit;
            }
            assert!(started.elapsed() < DEADLINE, "the daemon did not stop after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        };
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        (dir, exit)
    }

    /// SIGKILL: no shutdown, as a crash or a power cut. The temp dir is returned for a
    /// restart.
    pub fn kill(mut self) -> TempDir {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap())
    }

    /// Runs a CLI command against this daemon's config.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .arg("--config")
            .arg(self.config_path())
            .args(args)
            .output()
            .unwrap()
    }

    /// Creates an agent with the CLI and returns its token.
    pub fn agent(&self, name: &str, team: &str, role: &str) -> String {
        self.agent_with_link(name, team, role).0
    }

    /// Creates an agent with the CLI; returns its API token and the token of the
    /// one-time sign-in link it printed (the part after `#`).
    pub fn agent_with_link(&self, name: &str, team: &str, role: &str) -> (String, String) {
        let output = self.cli(&["agent", "add", name, "--team", team, "--role", role]);
        assert!(
            output.status.success(),
            "agent add failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let token = String::from_utf8(output.stdout).unwrap().trim().to_owned();
        assert!(token.starts_with("sb_"), "unexpected token output {token:?}");
        let stderr = String::from_utf8(output.stderr).unwrap();
        let link = stderr
            .lines()
            .find_map(|line| {
                line.strip_prefix("sign-in link ")
                    .and_then(|rest| rest.split_once("/setup#"))
            })
            .map(|(_, link)| link.trim().to_owned())
            .unwrap_or_else(|| panic!("agent add printed no sign-in link: {stderr}"));
        (token, link)
    }

    /// POSTs a customer message to `/hooks/shop` and asserts it was taken (`202`);
    /// returns the answer (`conversation_id`, `message_id`).
    pub async fn post_accepted(&self, id: &str, from: &str, text: &str) -> Value {
        let (status, body) = self.post_signed(&customer_message(id, from, text)).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        body
    }

    /// POSTs a body to `/hooks/shop`, signed now with the inbox secret.
    pub async fn post_signed(&self, body: &Value) -> (StatusCode, Value) {
        self.post_raw("shop", body.to_string().into_bytes(), SignAs::Now).await
    }

    pub async fn post_raw(&self, inbox: &str, body: Vec<u8>, sign: SignAs) -> (StatusCode, Value) {
        let content_type = match &sign {
            SignAs::ContentType(content_type) => content_type,
            _ => "application/json",
        };
        let mut request = self
            .http
            .post(self.url(&format!("/hooks/{inbox}")))
            .header("content-type", content_type);
        let delivery_id = format!("delivery-{}", fastrand::u64(..));
        let timestamp = match sign {
            SignAs::SecondsAgo(seconds) => unix_now() - seconds,
            _ => unix_now(),
        };
        let signature = match &sign {
            SignAs::Now | SignAs::SecondsAgo(_) => Some(secret().sign(&delivery_id, timestamp, &body)),
            SignAs::WrongSecret => Some(Secret::parse("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").unwrap().sign(
                &delivery_id,
                timestamp,
                &body,
            )),
            SignAs::ContentType(_) => Some(secret().sign(&delivery_id, timestamp, &body)),
            SignAs::Unsigned => None,
        };
        if let Some(signature) = signature {
            request = request
                .header(HEADER_ID, delivery_id)
                .header(HEADER_TIMESTAMP, timestamp.to_string())
                .header(HEADER_SIGNATURE, signature);
        }
        let response = request.body(body).send().await.unwrap();
        let status = response.status();
        let json = response.json::<Value>().await.unwrap_or(Value::Null);
        (status, json)
    }

    pub async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .http
            .request(method, self.url(&format!("/api/v1{path}")))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        (status, response.json::<Value>().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str, token: &str) -> Value {
        let (status, body) = self.api(reqwest::Method::GET, path, token, None).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        body
    }

    /// Waits until an outbound message's delivery reaches `status`, returns the message.
    pub async fn delivery_reaches(&self, token: &str, conversation_id: i64, message_id: i64, status: &str) -> Value {
        eventually(&format!("message {message_id} to be {status}"), || async {
            let detail = self.get(&format!("/conversations/{conversation_id}"), token).await;
            let message = message_by_id(&detail, message_id)?;
            (message["delivery"]["status"] == status).then(|| message.clone())
        })
        .await
    }

    /// Every row of every table, as text: equal snapshots mean nothing changed.
    pub async fn snapshot(&self) -> BTreeMap<String, Vec<String>> {
        snapshot(&self.dir.path().join("switchboard.db")).await
    }

    /// [`Daemon::snapshot`] but the outbox, whose rows the worker changes on its own
    /// while it retries acknowledgements to an unreachable callback: what a refused
    /// request could have touched is the rest.
    pub async fn snapshot_but_outbox(&self) -> BTreeMap<String, Vec<String>> {
        let mut tables = self.snapshot().await;
        tables.remove("outbox");
        tables
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default();
            eprintln!("---- daemon log ----\n{log}");
        }
    }
}

pub fn message_by_id(detail: &Value, message_id: i64) -> Option<&Value> {
    detail["messages"]
        .as_array()?
        .iter()
        .find(|message| message["id"] == message_id)
}

pub enum SignAs {
    Now,
    SecondsAgo(i64),
    WrongSecret,
    Unsigned,
    /// Signed correctly, sent with this Content-Type.
    ContentType(&'static str),
}

pub async fn snapshot(db: &Path) -> BTreeMap<String, Vec<String>> {
    let pool = SqlitePool::connect(&format!("sqlite://{}?mode=ro", db.display()))
        .await
        .unwrap();
    // Ordinary tables: the search index's virtual and shadow tables mirror `messages`.
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'
           AND name IN (SELECT name FROM pragma_table_list WHERE schema = 'main' AND type = 'table')
         ORDER BY name",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let mut snapshot = BTreeMap::new();
    for table in tables {
        let columns: Vec<String> = sqlx::query(&format!("PRAGMA table_info({table})"))
            .fetch_all(&pool)
            .await
            .unwrap()
            .iter()
            .map(|row| row.get::<String, _>("name"))
            .collect();
        let select = columns
            .iter()
            .map(|c| format!("quote({c})"))
            .collect::<Vec<_>>()
            .join(" || '|' || ");
        let rows: Vec<String> = sqlx::query_scalar(&format!("SELECT {select} FROM {table} ORDER BY {select}"))
            .fetch_all(&pool)
            .await
            .unwrap();
        snapshot.insert(table, rows);
    }
    pool.close().await;
    snapshot
}

/// One callback the receiver got.
#[derive(Debug, Clone)]
pub struct Callback {
    /// When it arrived.
    pub at: std::time::Instant,
    /// What the receiver answered.
    pub answered: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    /// Whether the Standard Webhooks signature verified against the inbox secret.
    pub signature_valid: bool,
}

impl Callback {
    /// The Standard Webhooks id: the same on every attempt of one message.
    pub fn webhook_id(&self) -> String {
        self.headers["webhook-id"].to_str().unwrap().to_owned()
    }
}

/// Posts `count` customer messages (ids `burst-…`, each from its own sender) from ten
/// tasks at once, each message to the next of `daemons` in turn, as a load balancer
/// would; asserts each was taken.
pub async fn post_burst(daemons: &Arc<Vec<Daemon>>, count: usize) {
    let mut posts = Vec::new();
    for chunk in 0..10 {
        let daemons = Arc::clone(daemons);
        posts.push(tokio::spawn(async move {
            for n in 0..count / 10 {
                let id = format!("burst-{chunk}-{n}");
                let daemon = &daemons[n % daemons.len()];
                let (status, body) = daemon.post_signed(&customer_message(&id, &id, "Hello")).await;
                assert_eq!(status, StatusCode::ACCEPTED, "{body}");
            }
        }));
    }
    for post in posts {
        post.await.unwrap();
    }
}

#[derive(Default)]
struct ReceiverState {
    callbacks: Mutex<Vec<Callback>>,
    /// Answers to give, in order; 204 once they run out.
    scripted: Mutex<Vec<StatusCode>>,
    /// Sent as `Retry-After` (seconds) with every 429.
    retry_after: Mutex<Option<u64>>,
    /// How long each answer takes: a receiver that is slow, as under load.
    delay: Mutex<Duration>,
}

/// The business's app: records every callback and answers as scripted.
pub struct Receiver {
    pub address: SocketAddr,
    state: Arc<ReceiverState>,
    _server: tokio::task::JoinHandle<()>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        Receiver::start_on(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()).await
    }

    pub async fn start_on(listener: tokio::net::TcpListener) -> Receiver {
        let address = listener.local_addr().unwrap();
        let state = Arc::new(ReceiverState::default());
        let app = axum::Router::new()
            .route("/callback", axum::routing::post(receive))
            .with_state(Arc::clone(&state));
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Receiver {
            address,
            state,
            _server: server,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/callback", self.address)
    }

    /// The next answers, before it falls back to 204.
    pub fn script(&self, statuses: &[u16]) {
        *self.state.scripted.lock().unwrap() = statuses
            .iter()
            .rev()
            .map(|s| StatusCode::from_u16(*s).unwrap())
            .collect();
    }

    /// Each answer takes this long from now on.
    pub fn delay(&self, delay: Duration) {
        *self.state.delay.lock().unwrap() = delay;
    }

    /// 429 answers name this wait, in seconds.
    pub fn retry_after(&self, seconds: u64) {
        *self.state.retry_after.lock().unwrap() = Some(seconds);
    }

    pub fn callbacks(&self) -> Vec<Callback> {
        self.state.callbacks.lock().unwrap().clone()
    }

    /// The callbacks for one message, answered or not.
    pub fn for_message(&self, message_id: i64) -> Vec<Callback> {
        self.callbacks()
            .into_iter()
            .filter(|c| c.body["message_id"] == message_id)
            .collect()
    }
}

async fn receive(State(state): State<Arc<ReceiverState>>, headers: HeaderMap, body: Bytes) -> axum::response::Response {
    let signature_valid = verify(&[secret()], &headers, &body, unix_now(), 300).is_ok();
    let body = serde_json::from_slice(&body).unwrap_or_else(|_| json!({"unparsable": String::from_utf8_lossy(&body)}));
    let delay = *state.delay.lock().unwrap();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let status = state.scripted.lock().unwrap().pop().unwrap_or(StatusCode::NO_CONTENT);
    state.callbacks.lock().unwrap().push(Callback {
        at: std::time::Instant::now(),
        answered: status,
        headers,
        body,
        signature_valid,
    });
    let mut response = axum::response::IntoResponse::into_response(status);
    if let (StatusCode::TOO_MANY_REQUESTS, Some(seconds)) = (status, *state.retry_after.lock().unwrap()) {
        response
            .headers_mut()
            .insert("retry-after", seconds.to_string().parse().unwrap());
    }
    response
}

/// The session's value from a `Set-Cookie` the daemon sent at sign-in.
pub fn session_cookie(set_cookie: &str) -> String {
    set_cookie
        .split(';')
        .next()
        .and_then(|pair| pair.strip_prefix("switchboard_session="))
        .unwrap_or_else(|| panic!("no session in {set_cookie}"))
        .to_owned()
}

/// A customer message body.
pub fn customer_message(id: &str, from: &str, text: &str) -> Value {
    json!({"id": id, "from": {"id": from, "name": "Ada Lovelace", "email": "ada@example.com"}, "text": text})
}
