//! Outbound delivery (issue 8): how fast the outbox hands messages to a local receiver
//! that answers at once, and what it adds to a message's way out.
//!
//! Every part runs on a fresh daemon and store with the benchmark's config; the outbox is
//! at its defaults (`concurrency` 32, `inbox_concurrency` 16, `breaker_failures` 5), and
//! each webhook inbox's `callback_timeout_secs` is 120 so a held callback does not time
//! out. The receiver is this program's: it answers 204 without looking at the signature,
//! and notes when each callback got through, by message id.
//!
//! - **Throughput.** N customer messages, each from a new customer (a new conversation,
//!   whose acknowledgement is one outbound message), queued by 64 clients as fast as the
//!   daemon takes them. With the receiver holding every callback until all N are queued,
//!   so the backlog drains with ingest finished (at the default `inbox_concurrency`, then
//!   at 32); and with the receiver answering from the start, so delivery runs while
//!   queueing.
//! - **Added latency.** Agents' replies posted at 200/s for `--seconds`, spread over 100
//!   conversations: from reading the 201 (the reply and its outbox row committed) to the
//!   receiver getting the callback. Beside it the bare hop: a callback-sized body POSTed
//!   by this program straight to the receiver at the same pace, on kept-alive connections.
//! - **One destination down.** Two webhook inboxes, `shop` (receiver up) and `other`.
//!   Customer messages to `shop` at 200/s, from the 202 to the acknowledgement received:
//!   with `other` idle; getting 200/s of its own to a receiver that is up; the same to a
//!   port that refuses connections; and that again after N messages queued for it first.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use axum::Router;
use axum::extract::State;
use axum::routing::post;
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::Full;
use hyper::{Request, StatusCode};
use rusqlite::{Connection, OpenFlags};
use serde_json::{Value, json};
use switchboard_connector_webhook::Secret;
use tokio::sync::watch;

use crate::daemon::{Daemon, SECRET, process_cpu_seconds, thread_cpu_seconds};
use crate::load::{self, LoadResult, Workload};
use crate::report::load_json;
use crate::workloads::{CustomerMessages, Senders};

/// Clients queueing the throughput runs' messages: ingest's fastest count.
pub const QUEUE_CLIENTS: usize = 64;
/// Offered rate of the paced runs, requests a second, and the clients offering it.
pub const PACED_RATE: f64 = 200.0;
pub const PACED_CLIENTS: usize = 4;
/// Conversations the paced replies are spread over: each gets two a second, so the
/// outbox's one-at-a-time order within a conversation rarely makes one wait.
pub const REPLY_CONVERSATIONS: u64 = 100;
/// The outbox settings in force: the daemon's defaults, which the benchmark's config
/// leaves alone.
pub const CONCURRENCY: u32 = 32;
pub const INBOX_CONCURRENCY: u32 = 16;
pub const BREAKER_FAILURES: u32 = 5;
const POLL: Duration = Duration::from_millis(10);
const REPLY_TEXT: &str = "Sorry about that: the refund for order 1001 is on its way.";

/// When one callback got through the receiver.
#[derive(Debug, Clone, Copy)]
struct Arrival {
    at: Instant,
    message_id: i64,
    conversation_id: i64,
    status_update: bool,
}

struct SinkState {
    arrivals: Mutex<Vec<Arrival>>,
    /// Callbacks that found the receiver closed and waited.
    held: AtomicUsize,
    open: watch::Sender<bool>,
}

/// The business's app: answers 204 at once, or holds every callback until opened.
struct Sink {
    address: SocketAddr,
    state: Arc<SinkState>,
}

impl Sink {
    async fn start(open: bool) -> anyhow::Result<Sink> {
        let state = Arc::new(SinkState {
            arrivals: Mutex::new(Vec::new()),
            held: AtomicUsize::new(0),
            open: watch::Sender::new(open),
        });
        let app = Router::new()
            .route("/callback", post(receive))
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Sink { address, state })
    }

    fn url(&self) -> String {
        format!("http://{}/callback", self.address)
    }

    /// Lets the held callbacks through; returns how many were waiting.
    fn open(&self) -> usize {
        self.state.open.send_replace(true);
        self.state.held.load(Ordering::SeqCst)
    }

    fn count(&self) -> usize {
        self.state.arrivals.lock().unwrap().len()
    }

    fn arrivals(&self) -> Vec<Arrival> {
        self.state.arrivals.lock().unwrap().clone()
    }
}

async fn receive(State(state): State<Arc<SinkState>>, body: Bytes) -> StatusCode {
    if !*state.open.borrow() {
        state.held.fetch_add(1, Ordering::SeqCst);
        let mut open = state.open.subscribe();
        let _ = open.wait_for(|open| *open).await;
    }
    let at = Instant::now();
    let callback: Value = serde_json::from_slice(&body).unwrap_or_default();
    state.arrivals.lock().unwrap().push(Arrival {
        at,
        message_id: callback["message_id"].as_i64().unwrap_or(-1),
        conversation_id: callback["conversation_id"].as_i64().unwrap_or(-1),
        status_update: callback["kind"] == "status_update",
    });
    StatusCode::NO_CONTENT
}

/// A port that refuses connections: bound, so nothing else takes it, but not listening.
fn refusing_port() -> anyhow::Result<(tokio::net::TcpSocket, SocketAddr)> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind("127.0.0.1:0".parse()?)?;
    let address = socket.local_addr()?;
    Ok((socket, address))
}

/// The benchmark's config with the webhook inboxes `(key, callback URL)`.
fn config(db: &Path, inboxes: &[(&str, &str)]) -> String {
    let tables: String = inboxes
        .iter()
        .map(|(key, callback_url)| {
            format!(
                r#"
[inboxes.{key}]
name = "Inbox {key}"

[inboxes.{key}.webhook]
secret = "{SECRET}"
callback_url = "{callback_url}"
# Long enough for callbacks the receiver holds while a backlog is queued (default 10).
callback_timeout_secs = 120
"#
            )
        })
        .collect();
    crate::daemon::config_with(db, &tables)
}

async fn start_daemon(binary: &Path, dir: &Path, inboxes: &[(&str, &str)]) -> anyhow::Result<Daemon> {
    start_daemon_with(binary, dir, inboxes, None).await
}

/// With `inbox_concurrency` set in `[outbox]` when given.
async fn start_daemon_with(
    binary: &Path,
    dir: &Path,
    inboxes: &[(&str, &str)],
    inbox_concurrency: Option<u32>,
) -> anyhow::Result<Daemon> {
    let mut text = config(&dir.join("switchboard.db"), inboxes);
    if let Some(cap) = inbox_concurrency {
        ensure!(
            text.contains("[outbox]\n"),
            "the benchmark config has no [outbox] table"
        );
        text = text.replacen("[outbox]\n", &format!("[outbox]\ninbox_concurrency = {cap}\n"), 1);
    }
    std::fs::write(dir.join("switchboard.toml"), text)?;
    Daemon::start_existing(binary, dir).await
}

/// Customer messages, each from a new customer, to `path`; notes each one's conversation,
/// when it was sent and when its 202 was read.
struct Acks {
    inner: CustomerMessages,
    path: &'static str,
    answered: Mutex<Vec<(i64, Instant, Instant)>>,
}

impl Acks {
    fn new(run: &str, address: SocketAddr, path: &'static str) -> Acks {
        Acks {
            inner: CustomerMessages {
                run: run.to_owned(),
                host: address.to_string(),
                secret: Secret::parse(SECRET).expect("a valid secret"),
                senders: Senders::AllNew,
            },
            path,
            answered: Mutex::new(Vec::new()),
        }
    }
}

impl Workload for Acks {
    fn request(&self, client: usize, seq: u64) -> Request<Full<Bytes>> {
        let mut request = self.inner.request(client, seq);
        *request.uri_mut() = hyper::Uri::from_static(self.path);
        request
    }

    fn accepted(&self, status: StatusCode) -> bool {
        self.inner.accepted(status)
    }

    fn on_accepted(&self, sent: Instant, body: &Bytes) {
        let answered = Instant::now();
        if let Some(conversation) = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|b| b["conversation_id"].as_i64())
        {
            self.answered.lock().unwrap().push((conversation, sent, answered));
        }
    }
}

/// Agents' replies, round robin over the conversations; notes each reply's message id,
/// when it was sent and when its 201 was read.
struct Replies {
    host: String,
    token: String,
    conversations: Vec<i64>,
    clients: usize,
    answered: Mutex<Vec<(i64, Instant, Instant)>>,
}

impl Workload for Replies {
    fn request(&self, client: usize, seq: u64) -> Request<Full<Bytes>> {
        let conversation = self.conversations[(seq as usize * self.clients + client) % self.conversations.len()];
        Request::post(format!("/api/v1/conversations/{conversation}/messages"))
            .header("host", &self.host)
            .header("authorization", format!("Bearer {}", self.token))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(json!({ "text": REPLY_TEXT }).to_string())))
            .expect("a valid request")
    }

    fn accepted(&self, status: StatusCode) -> bool {
        status == StatusCode::CREATED
    }

    fn on_accepted(&self, sent: Instant, body: &Bytes) {
        let answered = Instant::now();
        if let Some(id) = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|b| b["id"].as_i64())
        {
            self.answered.lock().unwrap().push((id, sent, answered));
        }
    }
}

/// Callback bodies POSTed straight to the receiver, as the daemon would send a reply.
struct DirectCallbacks {
    host: String,
    sent: Mutex<Vec<(i64, Instant)>>,
}

impl Workload for DirectCallbacks {
    fn request(&self, client: usize, seq: u64) -> Request<Full<Bytes>> {
        let id = ((client as i64) << 32) | seq as i64;
        let body = json!({
            "type": "message.outbound",
            "conversation_id": 1,
            "message_id": id,
            "to": {"id": "new-outbound-0-0"},
            "thread": null,
            "text": REPLY_TEXT,
            "kind": "reply",
        })
        .to_string();
        let request = Request::post("/callback")
            .header("host", &self.host)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .expect("a valid request");
        // Sent as soon as this returns.
        self.sent.lock().unwrap().push((id, Instant::now()));
        request
    }
}

/// Waits until `done` holds, polling; false when `limit` passed first.
async fn until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while !done() {
        if started.elapsed() > limit {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
    true
}

fn read_only(database: &Path) -> anyhow::Result<Connection> {
    Connection::open_with_flags(database, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("opening {} read-only", database.display()))
}

/// Outbox rows of an inbox by status, and their attempts in all.
fn outbox_rows(database: &Path, inbox: &str) -> anyhow::Result<(HashMap<String, u64>, u64)> {
    let store = read_only(database)?;
    let mut statement = store.prepare(
        "SELECT o.status, COUNT(*), SUM(o.attempts) FROM outbox o JOIN inboxes i ON i.id = o.inbox_id
         WHERE i.key = ?1 GROUP BY o.status",
    )?;
    let mut by_status = HashMap::new();
    let mut attempts = 0;
    for row in statement.query_map([inbox], |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?, row.get::<_, i64>(2)?))
    })? {
        let (status, count, tries) = row?;
        by_status.insert(status, count as u64);
        attempts += tries as u64;
    }
    Ok((by_status, attempts))
}

fn ms(histogram: &Histogram<u64>, percentile: f64) -> f64 {
    histogram.value_at_quantile(percentile / 100.0) as f64 / 1000.0
}

fn latency_json(histogram: &Histogram<u64>) -> Value {
    json!({
        "timed": histogram.len(),
        "p50_ms": ms(histogram, 50.0),
        "p99_ms": ms(histogram, 99.0),
        "p99_9_ms": ms(histogram, 99.9),
        "max_ms": histogram.max() as f64 / 1000.0,
    })
}

/// One throughput run.
pub struct Drain {
    /// Queued with the receiver holding every callback (the backlog drains after), or
    /// delivered while queueing.
    pub backlog: bool,
    /// `outbox.inbox_concurrency` in the daemon's config; `None` for the default.
    pub inbox_concurrency: Option<u32>,
    /// The customer messages that queued the acknowledgements.
    pub ingest: LoadResult,
    /// Distinct messages the receiver got, and how many came more than once.
    pub delivered: usize,
    pub duplicates: usize,
    /// Callbacks waiting at the closed receiver when it opened: the sends in flight.
    pub held: usize,
    /// Received by the time the last 202 was read.
    pub delivered_while_queueing: usize,
    /// From the receiver's opening (backlog) or the start of queueing to the last arrival.
    pub seconds: f64,
    pub seconds_first_to_last: f64,
    /// From the last 202 to the last arrival.
    pub tail_seconds: f64,
    /// CPU over `seconds`: the daemon, its writer thread, this program (load and receiver).
    pub daemon_cpu_seconds: f64,
    pub writer_cpu_seconds: f64,
    pub bench_cpu_seconds: f64,
    /// Outbox rows sent, from the store after the daemon stopped.
    pub sent_in_store: u64,
    pub peak_rss_mib: f64,
}

impl Drain {
    pub fn per_second(&self) -> f64 {
        self.delivered as f64 / self.seconds.max(1e-9)
    }

    pub fn per_second_first_to_last(&self) -> f64 {
        self.delivered as f64 / self.seconds_first_to_last.max(1e-9)
    }

    /// Delivered a second while the clients were queueing (nothing for a backlog).
    pub fn per_second_while_queueing(&self) -> f64 {
        self.delivered_while_queueing as f64 / self.ingest.elapsed.as_secs_f64().max(1e-9)
    }

    /// Delivered a second from the last 202 to the last arrival.
    pub fn per_second_after_queueing(&self) -> f64 {
        (self.delivered - self.delivered_while_queueing.min(self.delivered)) as f64 / self.tail_seconds.max(1e-9)
    }

    pub fn missing(&self) -> u64 {
        self.ingest.accepted.saturating_sub(self.delivered as u64)
    }

    pub fn writer_us_per_message(&self) -> f64 {
        self.writer_cpu_seconds * 1e6 / self.delivered.max(1) as f64
    }

    fn to_json(&self) -> Value {
        json!({
            "inbox_concurrency": self.inbox_concurrency.unwrap_or(INBOX_CONCURRENCY),
            "queueing": load_json(&self.ingest),
            "queued": self.ingest.accepted,
            "delivered": self.delivered,
            "missing": self.missing(),
            "duplicates": self.duplicates,
            "sent_in_store": self.sent_in_store,
            "held_when_the_receiver_opened": self.held,
            "delivered_while_queueing": self.delivered_while_queueing,
            "per_second_while_queueing": self.per_second_while_queueing().round(),
            "per_second_after_queueing": self.per_second_after_queueing().round(),
            "seconds": self.seconds,
            "seconds_from": if self.backlog { "the receiver's opening" } else { "the start of queueing" },
            "per_second": self.per_second().round(),
            "seconds_first_to_last": self.seconds_first_to_last,
            "per_second_first_to_last": self.per_second_first_to_last().round(),
            "tail_after_last_queued_seconds": self.tail_seconds,
            "daemon_cpu_seconds": self.daemon_cpu_seconds,
            "writer_thread_cpu_seconds": self.writer_cpu_seconds,
            "benchmark_cpu_seconds": self.bench_cpu_seconds,
            "writer_cpu_us_per_message": self.writer_us_per_message(),
            "peak_rss_mib": self.peak_rss_mib,
        })
    }
}

async fn drain(binary: &Path, messages: u64, backlog: bool, inbox_concurrency: Option<u32>) -> anyhow::Result<Drain> {
    let dir = tempfile::tempdir()?;
    let sink = Sink::start(!backlog).await?;
    let daemon = start_daemon_with(binary, dir.path(), &[("shop", &sink.url())], inbox_concurrency).await?;
    let address = daemon.process.address;
    let pid = daemon.process.pid();
    let workload = Arc::new(Acks::new("outbound", address, "/hooks/shop"));
    let cpu = || {
        (
            process_cpu_seconds(pid),
            thread_cpu_seconds(pid, "sqlite-writer"),
            process_cpu_seconds("self"),
        )
    };
    let mut before = cpu();
    let started = Instant::now();
    let ingest = load::run_count(
        address,
        QUEUE_CLIENTS,
        messages,
        Duration::from_secs(600),
        Arc::clone(&workload) as Arc<dyn Workload>,
    )
    .await;
    let queued = Instant::now();
    let delivered_while_queueing = sink.count();
    let (from, held) = if backlog {
        before = cpu();
        let opened = Instant::now();
        (opened, sink.open())
    } else {
        (started, 0)
    };
    let expected = ingest.accepted as usize;
    let limit = Duration::from_secs(120) + Duration::from_millis(5) * expected as u32;
    until(limit, || sink.count() >= expected).await;
    let after = cpu();
    let peak_rss_mib = daemon.process.rss_mib().1;
    daemon.process.stop()?;
    let (rows, _) = outbox_rows(&dir.path().join("switchboard.db"), "shop")?;
    let arrivals = sink.arrivals();
    let distinct: HashSet<i64> = arrivals.iter().map(|a| a.message_id).collect();
    let first = arrivals.iter().map(|a| a.at).min().unwrap_or(from);
    let last = arrivals.iter().map(|a| a.at).max().unwrap_or(from);
    Ok(Drain {
        backlog,
        inbox_concurrency,
        delivered: distinct.len(),
        duplicates: arrivals.len() - distinct.len(),
        held,
        delivered_while_queueing,
        seconds: last.saturating_duration_since(from).as_secs_f64(),
        seconds_first_to_last: last.saturating_duration_since(first).as_secs_f64(),
        tail_seconds: last.saturating_duration_since(queued).as_secs_f64(),
        daemon_cpu_seconds: after.0 - before.0,
        writer_cpu_seconds: after.1 - before.1,
        bench_cpu_seconds: after.2 - before.2,
        sent_in_store: rows.get("sent").copied().unwrap_or(0),
        peak_rss_mib,
        ingest,
    })
}

/// A paced run: requests answered, then the callbacks they caused.
pub struct Paced {
    /// The requests, from when each was due to its answer.
    pub load: LoadResult,
    /// From reading the answer (201 or 202: committed, with its outbox row) to the
    /// receiver getting the callback; zero when the callback came first.
    pub after_answer_us: Histogram<u64>,
    /// From sending the request to the receiver getting the callback.
    pub after_send_us: Histogram<u64>,
    /// Callbacks that reached the receiver before the client had read the answer.
    pub before_answer: u64,
    pub missing: u64,
    pub peak_rss_mib: f64,
}

impl Paced {
    fn of(
        load: LoadResult,
        answered: &[(i64, Instant, Instant)],
        arrivals: &HashMap<i64, Instant>,
        peak_rss_mib: f64,
    ) -> Paced {
        let mut paced = Paced {
            load,
            after_answer_us: load::histogram(),
            after_send_us: load::histogram(),
            before_answer: 0,
            missing: 0,
            peak_rss_mib,
        };
        for (key, sent, answered) in answered {
            let Some(arrived) = arrivals.get(key) else {
                paced.missing += 1;
                continue;
            };
            if arrived < answered {
                paced.before_answer += 1;
            }
            paced
                .after_answer_us
                .saturating_record(arrived.saturating_duration_since(*answered).as_micros() as u64);
            paced
                .after_send_us
                .saturating_record(arrived.saturating_duration_since(*sent).as_micros() as u64);
        }
        paced
    }

    pub fn ms(&self, percentile: f64) -> f64 {
        ms(&self.after_answer_us, percentile)
    }

    fn to_json(&self) -> Value {
        json!({
            "requests": load_json(&self.load),
            "answer_to_received": latency_json(&self.after_answer_us),
            "sent_to_received": latency_json(&self.after_send_us),
            "received_before_the_answer": self.before_answer,
            "missing": self.missing,
            "peak_rss_mib": self.peak_rss_mib,
        })
    }
}

/// The first arrival of each key.
fn first_arrivals(arrivals: &[Arrival], key: impl Fn(&Arrival) -> Option<i64>) -> HashMap<i64, Instant> {
    let mut first = HashMap::new();
    for arrival in arrivals {
        if let Some(key) = key(arrival) {
            first.entry(key).or_insert(arrival.at);
        }
    }
    first
}

async fn reply_latency(binary: &Path, duration: Duration) -> anyhow::Result<Paced> {
    let dir = tempfile::tempdir()?;
    let sink = Sink::start(true).await?;
    let daemon = start_daemon(binary, dir.path(), &[("shop", &sink.url())]).await?;
    let address = daemon.process.address;
    let seeded = load::run_count(
        address,
        PACED_CLIENTS,
        REPLY_CONVERSATIONS,
        Duration::from_secs(60),
        Arc::new(Acks::new("seed", address, "/hooks/shop")),
    )
    .await;
    ensure!(
        seeded.accepted == REPLY_CONVERSATIONS,
        "seeding {REPLY_CONVERSATIONS} conversations: {} accepted, {:?}",
        seeded.accepted,
        seeded.error_samples
    );
    ensure!(
        until(Duration::from_secs(60), || sink.count() >= REPLY_CONVERSATIONS as usize).await,
        "the seeded conversations' acknowledgements did not arrive"
    );
    let conversations: Vec<i64> = {
        let store = read_only(&daemon.database())?;
        let mut statement = store.prepare("SELECT id FROM conversations ORDER BY id")?;
        statement.query_map([], |row| row.get(0))?.collect::<Result<_, _>>()?
    };
    let workload = Arc::new(Replies {
        host: address.to_string(),
        token: daemon.agent("bench", "support")?,
        conversations,
        clients: PACED_CLIENTS,
        answered: Mutex::new(Vec::new()),
    });
    let run = load::run_paced(
        address,
        PACED_CLIENTS,
        duration,
        PACED_RATE,
        Arc::clone(&workload) as Arc<dyn Workload>,
    )
    .await;
    let answered = std::mem::take(&mut *workload.answered.lock().unwrap());
    let ids: HashSet<i64> = answered.iter().map(|(id, _, _)| *id).collect();
    until(Duration::from_secs(60), || {
        sink.arrivals().iter().filter(|a| ids.contains(&a.message_id)).count() >= ids.len()
    })
    .await;
    let peak_rss_mib = daemon.process.rss_mib().1;
    daemon.process.stop()?;
    let arrivals = first_arrivals(&sink.arrivals(), |a| Some(a.message_id));
    Ok(Paced::of(run, &answered, &arrivals, peak_rss_mib))
}

/// The same pace of callback-sized POSTs, from this program straight to the receiver.
pub struct BareHop {
    /// The POSTs: due to the 204 read.
    pub load: LoadResult,
    /// Sent to the receiver's handler.
    pub one_way_us: Histogram<u64>,
}

impl BareHop {
    fn to_json(&self) -> Value {
        json!({
            // From when each POST was due: tokio's timer sends it up to 1 ms late.
            "round_trip_from_due": load_json(&self.load),
            "sent_to_received": latency_json(&self.one_way_us),
        })
    }
}

async fn bare_hop(duration: Duration) -> anyhow::Result<BareHop> {
    let sink = Sink::start(true).await?;
    let workload = Arc::new(DirectCallbacks {
        host: sink.address.to_string(),
        sent: Mutex::new(Vec::new()),
    });
    let load = load::run_paced(
        sink.address,
        PACED_CLIENTS,
        duration,
        PACED_RATE,
        Arc::clone(&workload) as Arc<dyn Workload>,
    )
    .await;
    let arrivals = first_arrivals(&sink.arrivals(), |a| Some(a.message_id));
    let mut one_way_us = load::histogram();
    for (id, sent) in workload.sent.lock().unwrap().iter() {
        if let Some(arrived) = arrivals.get(id) {
            one_way_us.saturating_record(arrived.saturating_duration_since(*sent).as_micros() as u64);
        }
    }
    Ok(BareHop { load, one_way_us })
}

/// What the second webhook inbox does while `shop`'s acknowledgements are timed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Second {
    /// Configured, no traffic.
    Idle,
    /// The same rate as `shop`, to a receiver of its own that answers at once.
    Up,
    /// The same rate as `shop`, to a port that refuses connections, after `backlog`
    /// messages queued for it as fast as the daemon takes them.
    Down { backlog: u64 },
}

impl Second {
    pub fn describe(self) -> &'static str {
        match self {
            Second::Idle => "idle",
            Second::Up => "up",
            Second::Down { backlog: 0 } => "down",
            Second::Down { .. } => "down, with a backlog",
        }
    }

    /// For the table's first column.
    pub fn label(self) -> &'static str {
        match self {
            Second::Idle => "outbound: ack, other idle",
            Second::Up => "outbound: ack, other up",
            Second::Down { backlog: 0 } => "outbound: ack, other down",
            Second::Down { .. } => "outbound: ack, other down+backlog",
        }
    }
}

/// `shop`'s acknowledgements, and what became of the second inbox's.
pub struct Isolation {
    pub second: Second,
    pub shop: Paced,
    /// The second inbox's messages queued before the timed run, and during it.
    pub other_backlog: u64,
    pub other_queued: u64,
    /// Its outbox rows by status and their attempts, from the store after the run.
    pub other_rows: HashMap<String, u64>,
    pub other_attempts: u64,
    /// `/metrics` said its destination was paused at the end of the run.
    pub other_paused: bool,
}

impl Isolation {
    pub fn other_rows(&self, status: &str) -> u64 {
        self.other_rows.get(status).copied().unwrap_or(0)
    }

    fn to_json(&self) -> Value {
        json!({
            "second_inbox": self.second.describe(),
            "shop": self.shop.to_json(),
            "second_inbox_queued_before": self.other_backlog,
            "second_inbox_queued_during": self.other_queued,
            "second_inbox_rows_by_status": self.other_rows,
            "second_inbox_attempts": self.other_attempts,
            "second_inbox_paused_at_end": self.other_paused,
        })
    }
}

async fn one_destination(binary: &Path, duration: Duration, second: Second) -> anyhow::Result<Isolation> {
    let dir = tempfile::tempdir()?;
    let sink = Sink::start(true).await?;
    let other_sink = Sink::start(true).await?;
    let (_refusing, refusing) = refusing_port()?;
    let other_url = match second {
        Second::Down { .. } => format!("http://{refusing}/callback"),
        Second::Idle | Second::Up => other_sink.url(),
    };
    let daemon = start_daemon(binary, dir.path(), &[("shop", &sink.url()), ("other", &other_url)]).await?;
    let address = daemon.process.address;
    let mut other_backlog = 0;
    if let Second::Down { backlog } = second
        && backlog > 0
    {
        let queued = load::run_count(
            address,
            QUEUE_CLIENTS,
            backlog,
            Duration::from_secs(600),
            Arc::new(Acks::new("backlog", address, "/hooks/other")),
        )
        .await;
        other_backlog = queued.accepted;
    }
    let shop = Arc::new(Acks::new("up", address, "/hooks/shop"));
    let up = load::run_paced(
        address,
        PACED_CLIENTS,
        duration,
        PACED_RATE,
        Arc::clone(&shop) as Arc<dyn Workload>,
    );
    let (run, other_queued) = if second == Second::Idle {
        (up.await, 0)
    } else {
        let other = load::run_paced(
            address,
            PACED_CLIENTS,
            duration,
            PACED_RATE,
            Arc::new(Acks::new("other", address, "/hooks/other")),
        );
        let (run, other) = tokio::join!(up, other);
        (run, other.accepted)
    };
    let answered = std::mem::take(&mut *shop.answered.lock().unwrap());
    let conversations: HashSet<i64> = answered.iter().map(|(c, _, _)| *c).collect();
    until(Duration::from_secs(60), || {
        sink.arrivals()
            .iter()
            .filter(|a| a.status_update && conversations.contains(&a.conversation_id))
            .count()
            >= conversations.len()
    })
    .await;
    if second == Second::Up {
        let expected = other_queued as usize;
        until(Duration::from_secs(60), || other_sink.count() >= expected).await;
    }
    let metrics = load::fetch(
        address,
        Request::get("/metrics")
            .header("host", address.to_string())
            .body(Full::new(Bytes::new()))?,
    )
    .await
    .map(|(_, body)| String::from_utf8_lossy(&body).into_owned())
    .unwrap_or_default();
    let other_paused = metrics.contains("switchboard_outbox_destination_paused{inbox=\"other\"} 1");
    let peak_rss_mib = daemon.process.rss_mib().1;
    daemon.process.stop()?;
    let (other_rows, other_attempts) = outbox_rows(&dir.path().join("switchboard.db"), "other")?;
    let arrivals = first_arrivals(&sink.arrivals(), |a| a.status_update.then_some(a.conversation_id));
    Ok(Isolation {
        second,
        shop: Paced::of(run, &answered, &arrivals, peak_rss_mib),
        other_backlog,
        other_queued,
        other_rows,
        other_attempts,
        other_paused,
    })
}

pub struct OutboundFigures {
    pub messages: u64,
    /// The backlog drained at the default `inbox_concurrency`, then at `concurrency`.
    pub backlog: Drain,
    pub backlog_wider: Drain,
    pub concurrent: Drain,
    pub replies: Paced,
    pub bare: BareHop,
    /// `shop`'s acknowledgements with the second inbox idle, up, down, down with a backlog.
    pub isolation: Vec<Isolation>,
}

impl OutboundFigures {
    pub fn to_json(&self) -> Value {
        json!({
            "description": "outbound messages to a local callback receiver answering 204 at once; the outbox at its defaults unless inbox_concurrency says otherwise",
            "outbox": {
                "concurrency": CONCURRENCY,
                "inbox_concurrency": INBOX_CONCURRENCY,
                "breaker_failures": BREAKER_FAILURES,
            },
            "throughput": {
                "messages": self.messages,
                "queue_clients": QUEUE_CLIENTS,
                "backlog": self.backlog.to_json(),
                "backlog_inbox_concurrency_32": self.backlog_wider.to_json(),
                "while_queueing": self.concurrent.to_json(),
            },
            "added_latency": {
                "offered_per_second": PACED_RATE,
                "clients": PACED_CLIENTS,
                "conversations": REPLY_CONVERSATIONS,
                "replies": self.replies.to_json(),
                "bare_hop": self.bare.to_json(),
            },
            "one_destination_down": {
                "offered_per_second_each": PACED_RATE,
                "runs": self.isolation.iter().map(Isolation::to_json).collect::<Vec<_>>(),
            },
        })
    }
}

pub async fn run(binary: &Path, messages: u64, duration: Duration) -> anyhow::Result<OutboundFigures> {
    ensure!(messages > 0, "--outbound-messages must be at least 1");
    let backlog = drain(binary, messages, true, None).await?;
    let backlog_wider = drain(binary, messages, true, Some(CONCURRENCY)).await?;
    let concurrent = drain(binary, messages, false, None).await?;
    let replies = reply_latency(binary, duration).await?;
    let bare = bare_hop(duration).await?;
    let mut isolation = Vec::new();
    for second in [
        Second::Idle,
        Second::Up,
        Second::Down { backlog: 0 },
        Second::Down { backlog: messages },
    ] {
        isolation.push(one_destination(binary, duration, second).await?);
    }
    Ok(OutboundFigures {
        messages,
        backlog,
        backlog_wider,
        concurrent,
        replies,
        bare,
        isolation,
    })
}
