//! Escalation, assignment and SLA clocks, through the HTTP API of a daemon running in
//! this process on a [`ManualClock`]: the tests set Friday 17:55, then Monday, and watch
//! what the scheduler does, without waiting for real time to pass.
//!
//! Every desk has the webhook inbox `shop`; a test can add an email inbox on a private
//! Dovecot and SMTP relay and a Telegram inbox on the fake Bot API ([`Setup`]). Their
//! readers wait on real time (IDLE, long polling), not on the clock, and store each
//! message at the clock's time when they take it: a test waits for a message through
//! the API before it moves the clock.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::{Value, json};
use switchboard::auth::{generate_token, hash_token};
use switchboard::clock::{Clock, ManualClock};
use switchboard::model::Role;
use switchboard::store::NewAgent;
use switchboard_connector_webhook::Secret;
use switchboard_connector_webhook::signature::{HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP};
use switchboard_test_mailservers::{Dovecot, SmtpRelay, email_inbox, eventually, plain_servers};
use switchboard_test_telegram::{FakeTelegram, telegram_inbox};
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;

mod reports;
mod updates;
mod whatsapp;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Unix ms of an RFC 3339 time.
fn at(text: &str) -> i64 {
    humantime::parse_rfc3339(text)
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The key of the email inbox a [`Setup`] may add.
const MAIL_INBOX: &str = "mail";
/// The key of the Telegram inbox a [`Setup`] may add.
const BOT_INBOX: &str = "shop-bot";

/// What a test adds to the desk's config.
struct Setup<'a> {
    /// The `[updates]` and `[csat]` tables.
    updates: String,
    /// Where the shop inbox's replies and updates go.
    callback_url: String,
    /// An email inbox [`MAIL_INBOX`] reading the support mailbox of this Dovecot and
    /// sending through this relay.
    email: Option<(&'a Dovecot, &'a SmtpRelay)>,
    /// A Telegram inbox [`BOT_INBOX`] polling this fake as the bot of this token.
    telegram: Option<(&'a FakeTelegram, &'a str)>,
    /// More inbox tables, as written (TOML).
    inboxes: String,
}

impl Default for Setup<'_> {
    /// No status updates, a callback nobody listens on, and the webhook inbox alone: the
    /// escalation tests watch the API, not the channel.
    fn default() -> Self {
        Setup {
            updates: "[updates]\nevents = []".into(),
            callback_url: "http://127.0.0.1:9/callback".into(),
            email: None,
            telegram: None,
            inboxes: String::new(),
        }
    }
}

fn config(dir: &Path, setup: &Setup<'_>) -> String {
    let mut channels = String::new();
    if let Some((dovecot, relay)) = setup.email {
        let (imap, smtp) = plain_servers(dir, dovecot, relay);
        channels.push_str(&email_inbox(dir, MAIL_INBOX, &imap, &smtp));
    }
    if let Some((fake, token)) = setup.telegram {
        // The bot writes to a chat as fast as the fake takes it: these tests do not
        // measure Telegram's pacing (tests/blackbox/telegram.rs does), and a send waiting
        // for its turn would hold up the daemon's stop.
        channels.push_str(&telegram_inbox(dir, BOT_INBOX, token, fake, r#"chat_interval = "0s""#));
    }
    channels.push_str(&setup.inboxes);
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
# The tests read the desk as fast as it answers (a report's every drill-down, a reader's
# message awaited); tests/blackbox/door.rs tests the limits.
[server.rate_limits]
api_per_token = 0
[storage]
url = "sqlite://{db}"
[log]
level = "warn"
{updates}
[routing]
default_team = "support"
detect_languages = ["en", "de", "th", "ar"]

[keywords]
billing = ["refund", "charged twice", "unexpected fee", "invoice", "คืนเงิน", "เก็บเงินซ้ำ", "استرداد", "فاتورة"]
outage = ["outage", "is down", "not loading", "ระบบล่ม", "ใช้งานไม่ได้", "معطل", "لا يعمل"]
delivery = ["never arrived", "not delivered", "broken link", "ยังไม่ได้รับสินค้า", "لم يصل"]

[business_hours.office]
time_zone = "Europe/Berlin"
week = {{ mon = "09:00-18:00", tue = "09:00-18:00", wed = "09:00-18:00", thu = "09:00-18:00", fri = "09:00-18:00" }}
holidays = ["2026-12-25"]

[sla_policies.standard]
time = "business"
warning = 0.8
first_response = "1h"
next_response = "2h"
resolution = {{ urgent = "1day", high = "2days", normal = "3days", low = "5days" }}
on_breach = ["escalate", "notify"]

[teams.support]
name = "Support"
department = "support"
tier = 0
assignment = "round_robin"
capacity = 2
language_wait = "10m"
business_hours = "office"
sla = "standard"

[teams.support-l1]
name = "Support L1"
department = "support"
tier = 1
assignment = "least_loaded"
capacity = 3
business_hours = "office"
sla = "standard"

[teams.support-l2]
name = "Support L2"
department = "support"
tier = 2
business_hours = "office"
sla = "standard"

[teams.billing]
name = "Billing"
business_hours = "office"
sla = "standard"

[sla_policies.around-the-clock]
time = "calendar"
first_response = "30m"
on_breach = ["notify"]

[teams.technical]
name = "Technical"
assignment = "least_loaded"
capacity = 3
sla = "around-the-clock"

[teams.returns]
name = "Returns"

[teams.returns-l2]
name = "Returns L2"
department = "returns"
tier = 2

[inboxes.shop.webhook]
secret = "{SECRET}"
callback_url = "{callback_url}"
{channels}
[[rules]]
name = "billing"
when = {{ keywords = ["billing"] }}
then = {{ team = "billing", priority = "high", labels = ["billing"] }}

[[rules]]
name = "outage"
when = {{ keywords = ["outage"] }}
then = {{ team = "technical", priority = "urgent", labels = ["outage"] }}

[[rules]]
name = "delivery problems"
when = {{ keywords = ["delivery"] }}
then = {{ team = "returns", priority = "high", labels = ["delivery"] }}

[[rules]]
name = "vip and influencers"
when = {{ flags = ["vip", "influencer"] }}
then = {{ priority = "high", labels = ["vip"] }}

[[rules]]
name = "thai speakers"
when = {{ language = ["th"] }}
then = {{ labels = ["thai"] }}
"#,
        db = dir.join("switchboard.db").display(),
        updates = setup.updates,
        callback_url = setup.callback_url,
    )
}

struct Desk {
    dir: TempDir,
    path: PathBuf,
    clock: Arc<ManualClock>,
    addr: SocketAddr,
    shutdown: CancellationToken,
    task: std::thread::JoinHandle<anyhow::Result<()>>,
    http: reqwest::Client,
    tokens: HashMap<String, String>,
}

/// `(name, team, role, available)`
/// The admin every desk has, who reads conversations for the tests' assertions.
const READER: &str = "reader";

type AgentSpec<'a> = (&'a str, &'a str, Role, bool);

impl Desk {
    /// Writes the config, creates the agents, and starts the daemon at `now`.
    async fn start(now: i64, agents: &[AgentSpec<'_>]) -> Desk {
        Desk::start_with(now, agents, &Setup::default()).await
    }

    async fn start_with(now: i64, agents: &[AgentSpec<'_>], setup: &Setup<'_>) -> Desk {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("switchboard.toml");
        std::fs::write(&path, config(dir.path(), setup)).unwrap();
        let clock = Arc::new(ManualClock::new(now));
        let settings = switchboard::config::load(&path).unwrap();
        let (store, _) = switchboard::server::open_store(&settings, clock.as_ref())
            .await
            .unwrap();
        let mut tokens = HashMap::new();
        // Reads conversations for the assertions: an admin sees every team's. Unavailable
        // and in a team no test escalates to, so no queue or breach notice counts them.
        let reader: AgentSpec<'_> = (READER, "returns-l2", Role::Admin, false);
        for (name, team, role, available) in agents.iter().chain([&reader]) {
            let token = generate_token().unwrap();
            store
                .create_agent(
                    NewAgent {
                        name: name.to_string(),
                        role: *role,
                        teams: vec![team.to_string()],
                        token_hash: hash_token(&token),
                        first_token: Some("first".into()),
                        capacity: None,
                        available: *available,
                        languages: Vec::new(),
                    },
                    None,
                    now,
                )
                .await
                .unwrap();
            tokens.insert(name.to_string(), token);
        }
        drop(store);
        let desk = Desk::run(dir, path, clock, tokens).await;
        // An update pushed before the bot's first poll waits in the fake; a mail
        // delivered before the IMAP reader's first look would be old mail to it.
        if setup.email.is_some() {
            desk.reader_looked(MAIL_INBOX).await;
        }
        desk
    }

    /// Waits until the reader of `inbox` has looked for new messages once (its
    /// `last_poll` on `/metrics`): what arrives from then on is new to it, not mail for
    /// the backfill window (which is measured on the clock).
    async fn reader_looked(&self, inbox: &str) {
        let series = format!("switchboard_reader_last_poll_timestamp_seconds{{inbox=\"{inbox}\"");
        eventually(&format!("the first look of the {inbox} reader"), || async {
            let metrics = self.metrics().await?;
            let line = metrics.lines().find(|line| line.starts_with(&series))?;
            (!line.ends_with(" 0.000")).then_some(())
        })
        .await;
    }

    /// `/metrics` as the daemon answers it now; `None` when it did not.
    async fn metrics(&self) -> Option<String> {
        self.http.get(self.url("/metrics")).send().await.ok()?.text().await.ok()
    }

    async fn run(dir: TempDir, path: PathBuf, clock: Arc<ManualClock>, tokens: HashMap<String, String>) -> Desk {
        let settings = switchboard::config::load(&path).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        // Its own runtime on its own thread, as `serve` runs it (opening the store is
        // not a `Send` future, so it cannot be a task of the test's runtime).
        let listener = listener.into_std().unwrap();
        let task = std::thread::spawn({
            let (shutdown, clock) = (shutdown.clone(), Arc::clone(&clock) as Arc<dyn Clock>);
            move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                    switchboard::server::run_with_clock(settings, listener, shutdown, clock).await
                })
            }
        });
        Desk {
            dir,
            path,
            clock,
            addr,
            shutdown,
            task,
            http: reqwest::Client::new(),
            tokens,
        }
    }

    /// Stops the daemon cleanly and starts it again on the same database and clock.
    async fn restart(self) -> Desk {
        let Desk {
            dir,
            path,
            clock,
            shutdown,
            task,
            tokens,
            ..
        } = self;
        shutdown.cancel();
        join(task).await;
        Desk::run(dir, path, clock, tokens).await
    }

    async fn stop(self) -> (TempDir, PathBuf, Arc<ManualClock>, HashMap<String, String>) {
        self.shutdown.cancel();
        join(self.task).await;
        (self.dir, self.path, self.clock, self.tokens)
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A customer message through the signed webhook; returns its conversation id.
    async fn customer(&self, id: &str, from: &str, text: &str, metadata: Value) -> i64 {
        let (status, body) = self
            .hook(json!({"id": id, "from": {"id": from, "name": from}, "text": text, "metadata": metadata}))
            .await;
        assert!(status.is_success(), "{body}");
        body["conversation_id"].as_i64().unwrap()
    }

    /// Waits until a customer's `text` has been stored on `channel` (`email`,
    /// `telegram`), by the inbox's reader; returns its conversation.
    async fn arrived(&self, channel: &str, text: &str) -> i64 {
        eventually(&format!("`{text}` by {channel}"), || async {
            let page = self
                .get(&format!("/conversations?channel={channel}&limit=100"), READER)
                .await;
            for listed in page["conversations"].as_array().unwrap() {
                let id = listed["id"].as_i64().unwrap();
                let messages = &self.conversation(id).await["messages"];
                if messages
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|message| message["direction"] == "inbound" && message["text"] == text)
                {
                    return Some(id);
                }
            }
            None
        })
        .await
    }

    /// Any body through the signed webhook: the answer's status and JSON.
    async fn hook(&self, body: Value) -> (StatusCode, Value) {
        let id = body["id"].as_str().unwrap().to_owned();
        let body = body.to_string();
        let timestamp = self.clock.now_ms() / 1000;
        let signature = Secret::parse(SECRET).unwrap().sign(&id, timestamp, body.as_bytes());
        let response = self
            .http
            .post(self.url("/hooks/shop"))
            .header("content-type", "application/json")
            .header(HEADER_ID, &id)
            .header(HEADER_TIMESTAMP, timestamp.to_string())
            .header(HEADER_SIGNATURE, signature)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn call(&self, method: reqwest::Method, path: &str, agent: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = self
            .http
            .request(method, self.url(&format!("/api/v1{path}")))
            .bearer_auth(&self.tokens[agent]);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str, agent: &str) -> Value {
        let (status, body) = self.call(reqwest::Method::GET, path, agent, None).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        body
    }

    async fn conversation(&self, id: i64) -> Value {
        self.get(&format!("/conversations/{id}"), READER).await
    }

    async fn escalate(&self, id: i64, agent: &str, body: Value) -> (StatusCode, Value) {
        self.call(
            reqwest::Method::POST,
            &format!("/conversations/{id}/escalate"),
            agent,
            Some(body),
        )
        .await
    }

    async fn patch(&self, id: i64, agent: &str, body: Value) -> Value {
        let (status, body) = self
            .call(
                reqwest::Method::PATCH,
                &format!("/conversations/{id}"),
                agent,
                Some(body),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// Waits until the conversation has at least `count` events of `kind`, and returns them.
    async fn events(&self, id: i64, kind: &str, count: usize) -> Vec<Value> {
        eventually(&format!("{count} {kind} event(s) on #{id}"), || async {
            let events: Vec<Value> = self.conversation(id).await["events"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|event| event["kind"] == kind)
                .cloned()
                .collect();
            (events.len() >= count).then_some(events)
        })
        .await
    }
}

async fn join(task: std::thread::JoinHandle<anyhow::Result<()>>) {
    tokio::task::spawn_blocking(move || task.join().unwrap())
        .await
        .unwrap()
        .unwrap();
}

fn assignee(conversation: &Value) -> Option<String> {
    conversation["assignee"]["name"].as_str().map(str::to_owned)
}

fn clock_of<'a>(conversation: &'a Value, kind: &str) -> &'a Value {
    conversation["sla"]
        .as_array()
        .unwrap()
        .iter()
        .find(|clock| clock["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} clock in {}", conversation["sla"]))
}

fn count(conversation: &Value, kind: &str, clock: &str) -> usize {
    conversation["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|event| event["kind"] == kind && event["data"]["clock"] == clock)
        .count()
}

/// Each clock's `warned_at` and `breached_at` are set exactly when an `sla.warning` and an
/// `sla.breached` event of that clock were recorded, at the event's time.
fn assert_clocks_agree_with_events(conversation: &Value) {
    for clock in conversation["sla"].as_array().unwrap() {
        let kind = clock["kind"].as_str().unwrap();
        for (field, event) in [("warned_at", "sla.warning"), ("breached_at", "sla.breached")] {
            let recorded: Vec<&Value> = conversation["events"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["kind"] == event && e["data"]["clock"] == kind)
                .map(|e| &e["created_at"])
                .collect();
            if clock[field].is_null() {
                assert!(recorded.is_empty(), "{kind} has no {field} but {event} at {recorded:?}");
            } else {
                assert!(
                    recorded.contains(&&clock[field]),
                    "{kind} {field} {} has no {event} behind it (events at {recorded:?})",
                    clock[field]
                );
            }
        }
    }
}

/// Monday 2026-11-30, 10:00 in Berlin.
const MONDAY_10: &str = "2026-11-30T09:00:00Z";
const DAY: i64 = 24 * 60 * 60 * 1000;

#[tokio::test]
async fn rules_set_team_priority_and_language_in_english_thai_and_arabic() {
    let desk = Desk::start(at(MONDAY_10), &[("sue", "support", Role::Supervisor, false)]).await;
    let cases = [
        (
            "th",
            "ขอคืนเงินค่าสินค้าที่สั่งไปเมื่อวานด้วยครับ ผมจ่ายไปสองครั้ง",
            json!({}),
            "billing",
            "high",
            "th",
        ),
        (
            "ar",
            "التطبيق معطل منذ الصباح ولا أستطيع الدخول إلى حسابي",
            json!({}),
            "technical",
            "urgent",
            "ar",
        ),
        (
            "en",
            "Hello, my parcel never arrived and the tracking page shows nothing",
            json!({}),
            "returns",
            "high",
            "en",
        ),
        (
            "vip",
            "Good morning, could you tell me when your shop opens on Sundays?",
            json!({"flags": ["vip"]}),
            "support",
            "high",
            "en",
        ),
        (
            "plain",
            "Good morning, could you tell me when your shop opens on Sundays?",
            json!({}),
            "support",
            "normal",
            "en",
        ),
    ];
    for (id, text, metadata, team, priority, language) in cases {
        let conversation = desk.conversation(desk.customer(id, id, text, metadata).await).await;
        assert_eq!(
            (
                conversation["team"]["key"].as_str(),
                conversation["priority"].as_str(),
                conversation["language"].as_str(),
                conversation["contact"]["language"].as_str(),
            ),
            (Some(team), Some(priority), Some(language), Some(language)),
            "{id}: {text}"
        );
    }
    // Labels from every matching rule: the Thai billing message is labelled both.
    let thai = desk.conversation(1).await;
    assert_eq!(thai["labels"], json!(["billing", "thai"]));
    let routed = &thai["events"].as_array().unwrap()[1];
    assert_eq!(routed["kind"], "conversation.routed");
    assert_eq!(routed["data"]["matched"], json!(["billing", "thai speakers"]));
}

#[tokio::test]
async fn escalations_carry_a_summary_count_transfers_and_are_refused_without_one() {
    let desk = Desk::start(
        at(MONDAY_10),
        &[
            ("lea", "support", Role::Agent, false),
            ("bill", "billing", Role::Agent, false),
            ("sue", "support-l1", Role::Supervisor, false),
        ],
    )
    .await;
    let id = desk
        .customer(
            "m1",
            "ada",
            "Hello, the export button does nothing when I press it",
            json!({}),
        )
        .await;

    let before = desk.conversation(id).await;
    let (status, body) = desk.escalate(id, "lea", json!({"to": {"tier": "next"}})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("summary"), "{body}");
    let (status, _) = desk
        .escalate(id, "lea", json!({"to": {"tier": "next"}, "summary": "  "}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, body) = desk
        .escalate(
            id,
            "bill",
            json!({"to": {"tier": "next"}, "summary": "not mine to move"}),
        )
        .await;
    // Another team's conversation: bill cannot see it, so it does not exist for him.
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let unchanged = desk.conversation(id).await;
    assert_eq!(
        (
            &unchanged["team"],
            &unchanged["transfer_count"],
            unchanged["messages"].as_array().unwrap().len()
        ),
        (
            &before["team"],
            &before["transfer_count"],
            before["messages"].as_array().unwrap().len()
        )
    );

    // Hierarchical: the next tier of the department.
    let summary = "Export fails for all CSV files since the update; tried two browsers. Needs a developer.";
    let (status, moved) = desk
        .escalate(
            id,
            "lea",
            json!({"to": {"tier": "next"}, "summary": summary, "reason": "needs_expertise"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    assert_eq!(
        (moved["team"]["key"].as_str(), moved["tier"].as_i64()),
        (Some("support-l1"), Some(1))
    );
    assert_eq!(moved["transfer_count"], 1);
    assert_eq!(moved["escalation"]["kind"], "hierarchical");
    assert_eq!(moved["escalation"]["summary"], summary);
    assert_eq!(moved["escalation"]["from"]["team"], "support");
    // The summary is an internal note: stored, never sent.
    let note = moved["messages"].as_array().unwrap().last().unwrap();
    assert_eq!(
        (note["direction"].as_str(), note["text"].as_str()),
        (Some("note"), Some(summary))
    );
    assert!(note["delivery"].is_null());
    let event = desk.events(id, "conversation.escalated", 1).await.remove(0);
    assert_eq!(event["actor"]["name"], "lea");
    assert_eq!(
        (
            &event["data"]["kind"],
            &event["data"]["to"]["team"],
            &event["data"]["reason"]
        ),
        (&json!("hierarchical"), &json!("support-l1"), &json!("needs_expertise"))
    );
    // The receiving team's queue shows the summary with the conversation.
    let queue = desk.get("/conversations?team=support-l1", "sue").await;
    assert_eq!(queue["conversations"][0]["escalation"]["summary"], summary);

    // Functional, by a supervisor: to the team with the expertise.
    let (status, moved) = desk
        .escalate(
            id,
            "sue",
            json!({"to": {"team": "billing"}, "summary": "Turns out the export is an invoice question."}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    assert_eq!(
        (
            moved["team"]["key"].as_str(),
            moved["escalation"]["kind"].as_str(),
            moved["transfer_count"].as_i64()
        ),
        (Some("billing"), Some("functional"), Some(2))
    );
    // Billing is its department's top tier.
    let (status, body) = desk
        .escalate(id, "bill", json!({"to": {"tier": "next"}, "summary": "higher please"}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, body) = desk
        .escalate(id, "bill", json!({"to": {"team": "nowhere"}, "summary": "x"}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
}

#[tokio::test]
async fn round_robin_spreads_within_capacity_and_a_full_team_queues_urgent_then_oldest_first() {
    let desk = Desk::start(
        at(MONDAY_10),
        &[
            ("ana", "support", Role::Agent, true),
            ("ben", "support", Role::Agent, true),
            ("cem", "support", Role::Agent, false),
            ("sue", "support-l1", Role::Supervisor, false),
        ],
    )
    .await;
    let question = "Good morning, could you tell me when your shop opens on Sundays?";
    let mut ids = Vec::new();
    for n in 1..=4 {
        desk.clock.advance(std::time::Duration::from_secs(60));
        ids.push(
            desk.customer(&format!("m{n}"), &format!("c{n}"), question, json!({}))
                .await,
        );
    }
    let mut assigned = Vec::new();
    for id in &ids {
        assigned.push(assignee(&desk.conversation(*id).await));
    }
    let names = |list: &[&str]| list.iter().map(|n| Some(n.to_string())).collect::<Vec<_>>();
    assert_eq!(assigned, names(&["ana", "ben", "ana", "ben"]));

    // Both at capacity (2): the next ones wait. The second is from a VIP (high priority).
    desk.clock.advance(std::time::Duration::from_secs(60));
    let older = desk.customer("m5", "c5", question, json!({})).await;
    desk.clock.advance(std::time::Duration::from_secs(60));
    let urgent = desk.customer("m6", "c6", question, json!({"flags": ["vip"]})).await;
    desk.clock.advance(std::time::Duration::from_secs(60));
    let newest = desk.customer("m7", "c7", question, json!({})).await;
    for id in [older, urgent, newest] {
        assert_eq!(assignee(&desk.conversation(id).await), None);
    }
    let teams = desk.get("/teams", "ana").await;
    let support = teams["teams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["key"] == "support")
        .unwrap()
        .clone();
    assert_eq!(
        (support["waiting"].as_i64(), support["assigned"].as_i64()),
        (Some(3), Some(4)),
        "{support}"
    );
    assert_eq!(
        (support["agents_available"].as_i64(), support["agents"].as_i64()),
        (Some(2), Some(3))
    );
    assert_eq!(
        support["oldest_waiting_since"],
        desk.conversation(older).await["queued_at"]
    );

    // Ana resolves one: her place goes to the higher priority, though it came later.
    desk.patch(ids[0], "ana", json!({"status": "resolved"})).await;
    assert_eq!(assignee(&desk.conversation(urgent).await).as_deref(), Some("ana"));
    // Ben sets one pending (waiting on the customer frees room too): the oldest of the rest.
    desk.patch(ids[1], "ben", json!({"status": "pending"})).await;
    assert_eq!(assignee(&desk.conversation(older).await).as_deref(), Some("ben"));
    assert_eq!(assignee(&desk.conversation(newest).await), None);
    // Cem, unavailable so far, becomes available and takes the rest of the queue.
    let (status, me) = desk
        .call(
            reqwest::Method::PUT,
            "/agents/me/availability",
            "cem",
            Some(json!({"available": true})),
        )
        .await;
    assert_eq!(
        (status, me["available"].as_bool()),
        (StatusCode::OK, Some(true)),
        "{me}"
    );
    assert_eq!(me["open_conversations"], 1);
    assert_eq!(assignee(&desk.conversation(newest).await).as_deref(), Some("cem"));
    let (status, _) = desk
        .call(
            reqwest::Method::PUT,
            "/agents/me/availability",
            "cem",
            Some(json!({"available": "yes"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    // An agent sets only their own; a supervisor may set anyone's.
    let off = || Some(json!({"available": false}));
    let (status, _) = desk
        .call(reqwest::Method::PUT, "/agents/ana/availability", "cem", off())
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, ana) = desk
        .call(reqwest::Method::PUT, "/agents/ana/availability", "sue", off())
        .await;
    assert_eq!(
        (status, ana["name"].as_str(), ana["available"].as_bool()),
        (StatusCode::OK, Some("ana"), Some(false))
    );
    let (status, _) = desk
        .call(reqwest::Method::PUT, "/agents/nobody/availability", "sue", off())
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// The `conversation.assigned` events of a conversation: `(assignee id, language_fit)`.
fn assignments(conversation: &Value) -> Vec<(i64, Value)> {
    conversation["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|event| event["kind"] == "conversation.assigned")
        .map(|event| {
            (
                event["data"]["to"].as_i64().unwrap(),
                event["data"]["language_fit"].clone(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_mixed_desk_gives_each_conversation_to_a_reader_of_its_language_and_to_anyone_after_the_wait() {
    let desk = Desk::start(
        at(MONDAY_10),
        &[
            ("somchai", "support", Role::Agent, true),
            ("layla", "support", Role::Agent, true),
            ("emma", "support", Role::Agent, true),
        ],
    )
    .await;
    // An admin says who reads what; bad input is refused and changes nothing.
    let mut ids = HashMap::new();
    for (name, languages) in [
        ("somchai", json!(["th"])),
        ("layla", json!(["ar"])),
        ("emma", json!(["EN"])),
    ] {
        let (status, agent) = desk
            .call(
                reqwest::Method::PATCH,
                &format!("/agents/{name}"),
                READER,
                Some(json!({"languages": languages})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{agent}");
        ids.insert(name, agent["id"].as_i64().unwrap());
    }
    for wrong in [json!(["english!"]), json!("en"), json!(["en", "en"])] {
        let (status, body) = desk
            .call(
                reqwest::Method::PATCH,
                "/agents/emma",
                READER,
                Some(json!({"languages": wrong, "role": "supervisor"})),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains("languages"),
            "{body}"
        );
    }
    let agents = desk.get("/agents", READER).await;
    let emma = agents["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|agent| agent["name"] == "emma")
        .unwrap();
    assert_eq!((&emma["languages"], &emma["role"]), (&json!(["en"]), &json!("agent")));

    let write = |id: &'static str, text: &'static str, language: &'static str| {
        let desk = &desk;
        async move {
            desk.clock.advance(std::time::Duration::from_secs(60));
            let (status, body) = desk
                .hook(json!({"id": id, "from": {"id": id, "name": id}, "text": text, "language": language}))
                .await;
            assert_eq!(status, StatusCode::ACCEPTED, "{body}");
            body["conversation_id"].as_i64().unwrap()
        }
    };
    const ENGLISH: &str = "Hello, how do I change my password?";
    const ARABIC: &str = "مرحبا، كيف أغير كلمة المرور؟";
    const THAI: &str = "สวัสดีครับ จะเปลี่ยนรหัสผ่านได้อย่างไร";
    // Round-robin alone would start with somchai: each goes to the one who reads it.
    let english = write("e1", ENGLISH, "en").await;
    let arabic = write("a1", ARABIC, "ar").await;
    let thai = write("t1", THAI, "th").await;
    let thai_again = write("t2", THAI, "th").await;
    for (id, reader) in [
        (english, "emma"),
        (arabic, "layla"),
        (thai, "somchai"),
        (thai_again, "somchai"),
    ] {
        let conversation = desk.conversation(id).await;
        assert_eq!(assignee(&conversation).as_deref(), Some(reader));
        assert_eq!(assignments(&conversation), [(ids[reader], json!("reader"))]);
    }
    // Somchai is full (capacity 2): the third Thai conversation waits for him though
    // Layla and Emma have room, and does not hold up the English one behind it.
    let waiting = write("t3", THAI, "th").await;
    let english_again = write("e2", ENGLISH, "en").await;
    assert_eq!(assignee(&desk.conversation(waiting).await), None);
    assert_eq!(
        assignee(&desk.conversation(english_again).await).as_deref(),
        Some("emma")
    );

    // `route explain` says which rule applies with the desk as it is now.
    let explain = |text: &'static str, language: &'static str| {
        let desk = &desk;
        async move {
            let (status, explained) = desk
                .call(
                    reqwest::Method::POST,
                    "/route/explain",
                    READER,
                    Some(json!({"inbox": "shop", "text": text, "language": language})),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{explained}");
            explained["decision"]["language_assignment"].clone()
        }
    };
    let queued_at = at(desk.conversation(waiting).await["queued_at"].as_str().unwrap());
    let until = queued_at + 10 * 60 * 1000;
    let thai_rule = explain(THAI, "th").await;
    assert_eq!(
        (
            &thai_rule["applies"],
            &thai_rule["wait"],
            &thai_rule["readers_with_room"]
        ),
        (&json!("wait"), &json!("10m"), &json!([]))
    );
    assert_eq!(
        at(thai_rule["wait_until"].as_str().unwrap()),
        desk.clock.now_ms() + 10 * 60 * 1000
    );
    let arabic_rule = explain(ARABIC, "ar").await;
    assert_eq!(
        (&arabic_rule["applies"], &arabic_rule["readers_with_room"]),
        (&json!("reader"), &json!(["layla"]))
    );
    assert_eq!(
        explain("Guten Tag, wie ändere ich mein Passwort?", "de").await["applies"],
        "no_reader"
    );

    // Ten minutes in the queue: anyone with room takes it (Layla), on the clock alone.
    desk.clock.set(until);
    let events = desk.events(waiting, "conversation.assigned", 1).await;
    assert_eq!(events[0]["data"]["to"], ids["layla"]);
    assert_eq!(
        (&events[0]["data"]["reason"], &events[0]["data"]["language_fit"]),
        (&json!("round_robin"), &json!("after_wait"))
    );
    assert_eq!(at(events[0]["created_at"].as_str().unwrap()), until);
}

#[tokio::test]
async fn a_returning_customer_goes_back_to_their_agent_only_when_that_agent_can_take_them() {
    let desk = Desk::start(
        at(MONDAY_10),
        &[
            ("ana", "support", Role::Agent, true),
            ("ben", "support", Role::Agent, true),
        ],
    )
    .await;
    let question = "Good morning, could you tell me when your shop opens on Sundays?";
    let mut ids = Vec::new();
    for n in 1..=3 {
        desk.clock.advance(std::time::Duration::from_secs(60));
        ids.push(
            desk.customer(&format!("m{n}"), &format!("c{n}"), question, json!({}))
                .await,
        );
    }
    // Round-robin: ana, ben, ana; the next turn is ben's.
    assert_eq!(assignee(&desk.conversation(ids[2]).await).as_deref(), Some("ana"));
    desk.patch(ids[0], "ana", json!({"status": "resolved"})).await;
    desk.clock.advance(std::time::Duration::from_secs(60));
    let again = desk
        .customer("m4", "c1", "Me again: do you also open on holidays?", json!({}))
        .await;
    assert_ne!(again, ids[0]);
    assert_eq!(assignee(&desk.conversation(again).await).as_deref(), Some("ana"));
    let event = desk.events(again, "conversation.assigned", 1).await.remove(0);
    assert_eq!(event["data"]["reason"], "returning_customer");

    // Offline, ana does not get her returning customer back: the queue's turn decides.
    desk.call(
        reqwest::Method::PUT,
        "/agents/me/availability",
        "ana",
        Some(json!({"available": false})),
    )
    .await;
    desk.patch(again, "ana", json!({"status": "resolved"})).await;
    desk.clock.advance(std::time::Duration::from_secs(60));
    let third = desk
        .customer("m5", "c1", "And one more thing about the opening hours", json!({}))
        .await;
    assert_eq!(assignee(&desk.conversation(third).await).as_deref(), Some("ben"));
}

#[tokio::test]
async fn least_loaded_gives_each_new_conversation_to_the_agent_with_the_fewest() {
    let desk = Desk::start(
        at(MONDAY_10),
        &[
            ("tom", "technical", Role::Agent, true),
            ("tia", "technical", Role::Agent, false),
        ],
    )
    .await;
    let outage = |n: usize| format!("Our dashboard is down again, case {n}");
    let mut ids = Vec::new();
    for n in 0..2 {
        ids.push(
            desk.customer(&format!("o{n}"), &format!("c{n}"), &outage(n), json!({}))
                .await,
        );
    }
    desk.call(
        reqwest::Method::PUT,
        "/agents/me/availability",
        "tia",
        Some(json!({"available": true})),
    )
    .await;
    for n in 2..5 {
        desk.clock.advance(std::time::Duration::from_secs(60));
        ids.push(
            desk.customer(&format!("o{n}"), &format!("c{n}"), &outage(n), json!({}))
                .await,
        );
    }
    let mut assigned = Vec::new();
    for id in &ids {
        assigned.push(assignee(&desk.conversation(*id).await).unwrap());
    }
    // Tom had two; Tia gets the next two, then the one who waited longest since their
    // last assignment among equals.
    assert_eq!(assigned, ["tom", "tom", "tia", "tia", "tom"]);
}

#[tokio::test]
async fn a_first_response_breach_counts_business_hours_warns_then_escalates_once() {
    // Friday 2026-11-27 17:55 in Berlin; the office closes at 18:00.
    let desk = Desk::start(
        at("2026-11-27T16:55:00Z"),
        &[
            ("sue", "support", Role::Supervisor, false),
            ("lea", "support-l1", Role::Agent, false),
        ],
    )
    .await;
    let id = desk
        .customer(
            "late",
            "ada",
            "Hello, the export button does nothing when I press it",
            json!({}),
        )
        .await;
    let conversation = desk.conversation(id).await;
    let first = clock_of(&conversation, "first_response");
    // Five minutes on Friday, fifty-five on Monday: 09:55 Berlin, not Friday 18:55.
    assert_eq!(first["due_at"], "2026-11-30T08:55:00.000Z");
    assert_eq!(first["warn_at"], "2026-11-30T08:43:00.000Z");
    assert_eq!(first["target"], "1h");

    // Friday 18:55 and the weekend pass without a warning. An outage reported at the
    // same time, in a team on calendar time, breaches on Friday: once that breach is
    // recorded, the scheduler has run past Friday 18:55.
    let outage = desk
        .customer("night", "cy", "Our dashboard is down, nothing loads", json!({}))
        .await;
    desk.clock.set(at("2026-11-29T12:00:00Z"));
    desk.events(outage, "sla.breached", 1).await;
    let sunday = desk.conversation(id).await;
    assert_eq!(
        (
            count(&sunday, "sla.warning", "first_response"),
            count(&sunday, "sla.breached", "first_response")
        ),
        (0, 0)
    );
    desk.clock.set(at("2026-11-30T08:50:00Z"));
    let warning = desk.events(id, "sla.warning", 1).await.remove(0);
    assert_eq!(warning["data"]["clock"], "first_response");
    assert_eq!(count(&desk.conversation(id).await, "sla.breached", "first_response"), 0);

    desk.clock.set(at("2026-11-30T08:55:00Z"));
    let breach = desk.events(id, "sla.breached", 1).await.remove(0);
    assert_eq!(breach["actor"]["kind"], "system");
    assert_eq!(breach["data"]["clock"], "first_response");
    assert_eq!(breach["data"]["notified"], json!(["sue"]));
    let moved = desk.conversation(id).await;
    assert_eq!(
        (moved["team"]["key"].as_str(), moved["transfer_count"].as_i64()),
        (Some("support-l1"), Some(1))
    );
    assert_eq!(moved["escalation"]["by"]["kind"], "system");
    let summary = moved["escalation"]["summary"].as_str().unwrap();
    assert!(
        summary.contains("first response") && summary.contains("export button"),
        "{summary}"
    );
    assert!(moved["sla_breached_at"].is_string());

    // Exactly once: a later conversation's breach proves the scheduler ran again, and
    // the first one's breach did not repeat in the new team.
    let later = desk
        .customer(
            "later",
            "bob",
            "Hello, where can I change my delivery address?",
            json!({}),
        )
        .await;
    desk.clock.set(at("2026-11-30T09:56:00Z"));
    desk.events(later, "sla.breached", 1).await;
    let first = desk.conversation(id).await;
    assert_eq!(count(&first, "sla.breached", "first_response"), 1);
    assert_eq!(first["transfer_count"], 1);
    assert_clocks_agree_with_events(&first);
    let teams = desk.get("/teams", "sue").await;
    let l1 = teams["teams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["key"] == "support-l1")
        .unwrap()
        .clone();
    assert_eq!(l1["breached"], 2, "{l1}");
}

#[tokio::test]
async fn pending_on_the_customer_pauses_the_clock() {
    let desk = Desk::start(at(MONDAY_10), &[("lea", "support", Role::Agent, false)]).await;
    let id = desk
        .customer(
            "p1",
            "ada",
            "Hello, the export button does nothing when I press it",
            json!({}),
        )
        .await;
    desk.clock.set(at("2026-11-30T09:30:00Z"));
    let pending = desk.patch(id, "lea", json!({"status": "pending"})).await;
    let first = clock_of(&pending, "first_response");
    assert_eq!(
        (first["state"].as_str(), &first["due_at"]),
        (Some("paused"), &Value::Null)
    );

    // Five hours later the customer answers: 30 minutes were used, 30 remain.
    desk.clock.set(at("2026-11-30T14:00:00Z"));
    desk.customer("p2", "ada", "Here is the screenshot you asked for", json!({}))
        .await;
    let open = desk.conversation(id).await;
    assert_eq!(open["status"], "open");
    let first = clock_of(&open, "first_response");
    assert_eq!(
        (first["state"].as_str(), first["due_at"].as_str()),
        (Some("running"), Some("2026-11-30T14:30:00.000Z"))
    );
    assert_eq!(count(&open, "sla.breached", "first_response"), 0);

    // A reply meets it; the customer's next message starts the next-response clock.
    desk.call(
        reqwest::Method::POST,
        &format!("/conversations/{id}/messages"),
        "lea",
        Some(json!({"text": "Thanks, looking"})),
    )
    .await;
    desk.clock.set(at("2026-11-30T14:10:00Z"));
    desk.customer("p3", "ada", "Any news?", json!({})).await;
    let answered = desk.conversation(id).await;
    assert_eq!(clock_of(&answered, "first_response")["state"], "met");
    let next = clock_of(&answered, "next_response");
    assert_eq!(
        (next["state"].as_str(), next["due_at"].as_str()),
        (Some("running"), Some("2026-11-30T16:10:00.000Z"))
    );
}

#[tokio::test]
async fn a_breach_due_while_the_daemon_was_down_escalates_once_after_restart() {
    let desk = Desk::start(at(MONDAY_10), &[("sue", "support", Role::Supervisor, false)]).await;
    let id = desk
        .customer(
            "r1",
            "ada",
            "Hello, the export button does nothing when I press it",
            json!({}),
        )
        .await;
    let (dir, path, clock, tokens) = desk.stop().await;
    clock.set(at("2026-11-30T11:00:00Z"));
    let desk = Desk::run(dir, path, clock, tokens).await;
    desk.events(id, "sla.breached", 1).await;
    let desk = desk.restart().await;
    let later = desk
        .customer("r2", "bob", "Hello, where can I change my delivery address?", json!({}))
        .await;
    desk.clock.set(at("2026-11-30T12:00:00Z"));
    desk.events(later, "sla.breached", 1).await;
    let first = desk.conversation(id).await;
    assert_eq!(count(&first, "sla.breached", "first_response"), 1);
    assert_eq!(
        (first["team"]["key"].as_str(), first["transfer_count"].as_i64()),
        (Some("support-l1"), Some(1))
    );
    // Found past its warning and its deadline at once: the breach alone, on the clock as
    // in the events; and so for the one breached while the daemon ran, its warning and
    // deadline passed by one move of the clock.
    for conversation in [&first, &desk.conversation(later).await] {
        let clock = clock_of(conversation, "first_response");
        assert_eq!(
            (clock["warned_at"].is_null(), clock["breached_at"].is_null()),
            (true, false),
            "{clock}"
        );
        assert_eq!(count(conversation, "sla.warning", "first_response"), 0);
        assert_clocks_agree_with_events(conversation);
    }
}

#[tokio::test]
async fn thirty_days_open_escalates_and_flags_the_conversation() {
    let desk = Desk::start(at(MONDAY_10), &[("rui", "returns", Role::Agent, false)]).await;
    let id = desk
        .customer("d1", "ada", "My order never arrived, it has been two weeks", json!({}))
        .await;
    assert_eq!(desk.conversation(id).await["team"]["key"], "returns");
    desk.patch(id, "rui", json!({"status": "pending"})).await;
    desk.clock.set(at("2026-12-30T08:59:59Z"));
    desk.clock.set(at("2026-12-30T09:00:00Z"));
    let breach = desk.events(id, "sla.breached", 1).await.remove(0);
    assert_eq!(breach["data"]["clock"], "max_open");
    let flagged = desk.conversation(id).await;
    assert!(
        flagged["labels"].as_array().unwrap().contains(&json!("overdue")),
        "{}",
        flagged["labels"]
    );
    assert_eq!(
        (flagged["team"]["key"].as_str(), flagged["tier"].as_i64()),
        (Some("returns-l2"), Some(2))
    );
    assert_eq!(flagged["escalation"]["kind"], "hierarchical");
}

#[tokio::test]
async fn route_explain_shows_every_rule_and_the_deadlines_without_storing_anything() {
    let desk = Desk::start(at(MONDAY_10), &[("sue", "support", Role::Supervisor, false)]).await;
    let (status, explained) = desk
        .call(
            reqwest::Method::POST,
            "/route/explain",
            "sue",
            Some(
                json!({"inbox": "shop", "text": "ขอคืนเงินด้วยครับ จ่ายเงินซ้ำสองครั้ง", "metadata": {"flags": ["influencer"]},
                        "at": "2026-11-27T16:55:00Z"}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{explained}");
    assert_eq!(explained["language"], json!({"tag": "th", "source": "detected"}));
    let rules: Vec<(String, bool)> = explained["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|rule| {
            (
                rule["rule"].as_str().unwrap().to_owned(),
                rule["matched"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rules,
        [
            ("billing".to_owned(), true),
            ("outage".to_owned(), false),
            ("delivery problems".to_owned(), false),
            ("vip and influencers".to_owned(), true),
            ("thai speakers".to_owned(), true)
        ]
    );
    assert_eq!(explained["rules"][0]["conditions"][0]["detail"], "billing: คืนเงิน");
    let decision = &explained["decision"];
    assert_eq!(
        (decision["team"].as_str(), decision["priority"].as_str()),
        (Some("billing"), Some("high"))
    );
    assert_eq!(explained["sla"]["deadlines"][0]["clock"], "first_response");
    assert_eq!(explained["sla"]["deadlines"][0]["due_at"], "2026-11-30T08:55:00.000Z");
    // Nothing was stored.
    let page = desk.get("/conversations", "sue").await;
    assert_eq!(page["conversations"], json!([]));
    let (status, body) = desk
        .call(
            reqwest::Method::POST,
            "/route/explain",
            "sue",
            Some(json!({"inbox": "nope", "text": "x"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
}

#[tokio::test]
async fn a_customer_reopening_an_unassigned_conversation_puts_it_in_the_queue() {
    let desk = Desk::start(
        at(MONDAY_10),
        &[
            ("sue", "support", Role::Supervisor, false),
            ("ana", "support", Role::Agent, false),
        ],
    )
    .await;
    let id = desk
        .customer("q1", "ada", "Hello, where can I change my delivery address?", json!({}))
        .await;
    // Nobody available: it waits; the supervisor asks the customer for the order number.
    desk.patch(id, "sue", json!({"status": "pending"})).await;
    desk.call(
        reqwest::Method::PUT,
        "/agents/me/availability",
        "ana",
        Some(json!({"available": true})),
    )
    .await;
    // Pending is waiting on the customer, not on us: not assigned.
    assert_eq!(assignee(&desk.conversation(id).await), None);
    desk.customer("q2", "ada", "The order number is 48213377", json!({}))
        .await;
    let reopened = desk.conversation(id).await;
    assert_eq!(
        (reopened["status"].as_str(), assignee(&reopened).as_deref()),
        (Some("open"), Some("ana"))
    );
}

#[tokio::test]
async fn clocks_found_breached_together_escalate_once_and_an_answered_clock_stays_answered() {
    let desk = Desk::start(at(MONDAY_10), &[("lea", "support", Role::Agent, false)]).await;
    // Resolved before any reply, then answered anyway: reopening must not owe a first
    // response again.
    let answered = desk
        .customer(
            "a1",
            "ada",
            "Hello, the export button does nothing when I press it",
            json!({}),
        )
        .await;
    desk.clock.set(at("2026-11-30T09:30:00Z"));
    desk.patch(answered, "lea", json!({"status": "resolved"})).await;
    desk.call(
        reqwest::Method::POST,
        &format!("/conversations/{answered}/messages"),
        "lea",
        Some(json!({"text": "Fixed in today's release."})),
    )
    .await;
    // The customer says it still fails; the agent reopens it.
    desk.clock.set(at("2026-12-01T09:00:00Z"));
    let reopened = desk.patch(answered, "lea", json!({"status": "open"})).await;
    assert_eq!(clock_of(&reopened, "first_response")["state"], "stopped");
    assert_eq!(clock_of(&reopened, "resolution")["state"], "running");
    let late = desk
        .customer("b1", "bob", "Hello, where can I change my delivery address?", json!({}))
        .await;

    // A month later every clock of the late one is past: first response, resolution and
    // the 30-day cap breach in one pass, and it moves up one tier, not three.
    desk.clock.set(at("2027-01-04T09:00:00Z"));
    let breaches = desk.events(late, "sla.breached", 3).await;
    let clocks: Vec<&str> = breaches.iter().map(|e| e["data"]["clock"].as_str().unwrap()).collect();
    assert_eq!(clocks.len(), 3, "{clocks:?}");
    let moved = desk.conversation(late).await;
    assert_eq!(
        (moved["team"]["key"].as_str(), moved["transfer_count"].as_i64()),
        (Some("support-l1"), Some(1))
    );
    assert_eq!(desk.events(late, "conversation.escalated", 1).await.len(), 1);
    let answered = desk.conversation(answered).await;
    assert_eq!(count(&answered, "sla.breached", "first_response"), 0);
}

/// The texts of a conversation's messages, as the API shows them.
fn texts(conversation: &Value) -> Vec<String> {
    conversation["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|message| message["text"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn retention_erases_what_was_resolved_longer_ago_than_the_policy_and_nothing_else() {
    let setup = Setup {
        updates: "[updates]\nevents = []\n\n[privacy]\nerase_resolved_after = \"30days\"".into(),
        ..Setup::default()
    };
    let start = at(MONDAY_10);
    let desk = Desk::start_with(start, &[("rui", "returns", Role::Admin, false)], &setup).await;
    let old = desk
        .customer("r1", "ada", "My old delivery zebra-old never came", json!({}))
        .await;
    let later = desk.customer("r2", "bob", "My delivery is late", json!({})).await;
    let open = desk.customer("r3", "cy", "My delivery is lost", json!({})).await;
    desk.patch(old, "rui", json!({"status": "resolved"})).await;
    desk.clock.set(start + 10 * DAY);
    desk.patch(later, "rui", json!({"status": "resolved"})).await;

    // 31 days after the first was resolved: the day's pass erases it, and only it.
    desk.clock.set(start + 31 * DAY);
    let erased = desk.events(old, "conversation.erased", 1).await.remove(0);
    assert_eq!(erased["data"]["cause"], "retention");
    let shell = desk.conversation(old).await;
    assert!(texts(&shell).iter().all(String::is_empty), "{:?}", texts(&shell));
    assert_eq!(shell["status"], "resolved", "the shell keeps what the figures count");
    assert_eq!(
        shell["contact"]["name"],
        Value::Null,
        "ada had nothing else: erased whole"
    );
    assert!(shell["contact"]["external_id"].as_str().unwrap().starts_with("erased:"));
    for id in [later, open] {
        let kept = desk.conversation(id).await;
        assert!(texts(&kept).iter().any(|text| text.contains("delivery")), "#{id} kept");
    }

    // Ten days later the second one's age has passed too.
    desk.clock.set(start + 41 * DAY);
    desk.events(later, "conversation.erased", 1).await;
    let kept = desk.conversation(open).await;
    assert_eq!(
        texts(&kept)[0],
        "My delivery is lost",
        "an open conversation is never erased by age"
    );
    let kinds: Vec<&str> = kept["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert!(!kinds.contains(&"conversation.erased"), "{kinds:?}");
}
