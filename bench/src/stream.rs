//! The live stream (issue 17): agents connected to `GET /api/v1/stream` while customer
//! messages arrive by webhook at a steady rate.
//!
//! N agents of the support team (the default team, where every message goes with no
//! rules) each read Server-Sent Events on a connection of their own, subscribed once
//! their `stream.ready` arrives. Signed customer messages from 10,000 customers are then
//! posted at the offered rate by paced clients for `--seconds`. For each acknowledged
//! message: from reading its 202 to the moment the last agent read its `message.created`
//! (an event read before the 202 counts as 0), and the same for each agent and message.
//! The daemon's RSS before the agents connect and once all are subscribed gives its
//! memory per connected agent.
//!
//! - [`SseParser`]: the event-stream format, bytes in and events out, no I/O.
//! - [`read_stream`]: one agent's connection, timing each message's event as its bytes
//!   arrive.
//! - [`run`]: the scenario.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::{Request, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::daemon::{Daemon, Process, process_cpu_seconds};
use crate::load::{self, LoadResult, Workload};
use crate::receiver::Receiver;
use crate::report::load_json;
use crate::scenarios::{CUSTOMER_BASE, messages};
use crate::workloads::{CustomerMessages, Senders};

/// Agents on the stream, unless `--stream-agents` says otherwise.
pub const AGENTS: usize = 200;
/// Messages a second posted while they are connected, unless `--stream-rate` says otherwise.
pub const RATE: f64 = 1_000.0;
/// The issue's targets: from the 202 to the last agent's read, and memory per agent.
pub const TARGET_P99_MS: f64 = 100.0;
pub const TARGET_KIB_PER_AGENT: f64 = 64.0;
/// Clients posting at the offered rate: enough that one slow 202 does not hold back the
/// next message (each client sends every `POST_CLIENTS / rate` seconds).
const POST_CLIENTS: usize = 32;
/// `agent add` commands run at once.
const AGENT_COMMANDS: usize = 4;
/// How long all agents may take to be subscribed, and the stragglers to read the last
/// messages once posting stops.
const READY_LIMIT: Duration = Duration::from_secs(30);
const DRAIN_LIMIT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(10);
/// Between samples of the daemon's RSS under load.
const RSS_SAMPLE: Duration = Duration::from_millis(50);

/// One Server-Sent Event, as dispatched by a blank line: borrowed from the parser, which
/// reuses its buffers for the next one (200 readers parse about half a million events a
/// second on the machine the daemon runs on, so they allocate nothing per event).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SseEvent<'a> {
    /// The last `id:` seen on the stream, as the format carries it over to later events.
    pub id: Option<&'a str>,
    /// The `event:` field; `message` when the event had none.
    pub event: &'a str,
    /// The `data:` lines joined by newlines, as sent: UTF-8 by the format, checked by
    /// whoever reads it (`serde_json::from_slice` does as it parses).
    pub data: &'a [u8],
}

/// The `text/event-stream` format: bytes in whatever chunks the connection gives,
/// events out. Lines end in LF, CRLF or CR, also when a chunk splits the CRLF.
#[derive(Debug, Default)]
pub struct SseParser {
    /// The unfinished line the last chunk ended with.
    line: Vec<u8>,
    /// The last chunk ended on CR: a LF that opens the next one ends no further line.
    after_cr: bool,
    last_id: Option<String>,
    /// The event's `event:` field; empty for none.
    event: String,
    data: Vec<u8>,
    /// Whether a `data` field came since the last dispatch (it may be empty).
    has_data: bool,
    /// Comment lines (`:` first), which servers send as keep-alives.
    pub comments: u64,
}

impl SseParser {
    /// Parses `chunk` and calls `emit` for each event it completes.
    pub fn feed(&mut self, mut chunk: &[u8], mut emit: impl FnMut(SseEvent<'_>)) {
        if std::mem::take(&mut self.after_cr)
            && let Some(rest) = chunk.strip_prefix(b"\n")
        {
            chunk = rest;
        }
        while let Some(end) = memchr::memchr2(b'\n', b'\r', chunk) {
            if self.line.is_empty() {
                self.line_done(&chunk[..end], &mut emit);
            } else {
                let mut line = std::mem::take(&mut self.line);
                line.extend_from_slice(&chunk[..end]);
                self.line_done(&line, &mut emit);
                line.clear();
                self.line = line;
            }
            let cr = chunk[end] == b'\r';
            chunk = &chunk[end + 1..];
            if cr {
                match chunk.strip_prefix(b"\n") {
                    Some(rest) => chunk = rest,
                    None => self.after_cr = chunk.is_empty(),
                }
            }
        }
        self.line.extend_from_slice(chunk);
    }

    fn line_done(&mut self, line: &[u8], emit: &mut impl FnMut(SseEvent<'_>)) {
        if line.is_empty() {
            if std::mem::take(&mut self.has_data) {
                emit(SseEvent {
                    id: self.last_id.as_deref(),
                    event: if self.event.is_empty() { "message" } else { &self.event },
                    data: &self.data,
                });
            }
            self.event.clear();
            self.data.clear();
            return;
        }
        if line[0] == b':' {
            self.comments += 1;
            return;
        }
        let (field, value) = match memchr::memchr(b':', line) {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"event" => {
                self.event.clear();
                self.event.push_str(&text(value));
            }
            b"data" => {
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
            }
            b"id" if !value.contains(&0) => {
                let id = self.last_id.get_or_insert_with(String::new);
                id.clear();
                id.push_str(&text(value));
            }
            // `retry` and unknown fields: nothing a reader that does not reconnect needs.
            _ => {}
        }
    }
}

/// A field's value as text, invalid UTF-8 replaced.
fn text(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.into(),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

/// The part of a `message.created` event's data the benchmark reads.
#[derive(Deserialize)]
struct Created {
    message: CreatedMessage,
}

#[derive(Deserialize)]
struct CreatedMessage {
    id: i64,
    direction: Direction,
}

#[derive(Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
enum Direction {
    Inbound,
    #[serde(other)]
    Other,
}

/// What one agent's reader shows the run while it reads.
#[derive(Default)]
struct Progress {
    /// `stream.ready` has arrived: the agent is subscribed.
    ready: AtomicBool,
    /// Inbound `message.created` events read so far.
    inbound: AtomicU64,
    /// The stream stopped (an error, a refusal, the server's end) before the run closed it.
    ended: AtomicBool,
}

/// One agent's stream, as read.
#[derive(Default)]
struct AgentRead {
    /// Inbound `message.created` events: the message's id and when the bytes carrying
    /// the event arrived.
    messages: Vec<(i64, Instant)>,
    /// Events by `event:` kind.
    kinds: BTreeMap<String, u64>,
    comments: u64,
    /// When `stream.ready` arrived.
    ready_at: Option<Instant>,
    /// `message.created` events whose data did not hold a message id and direction.
    unreadable: u64,
    /// Why the stream stopped before the run closed it.
    failure: Option<String>,
}

/// Reads `GET /api/v1/stream` as the agent with `token` until `stop`.
async fn read_stream(
    address: SocketAddr,
    token: String,
    progress: Arc<Progress>,
    stop: CancellationToken,
) -> AgentRead {
    let mut read = AgentRead::default();
    read.failure = subscribe(address, &token, &progress, &stop, &mut read).await.err();
    if read.failure.is_some() {
        progress.ended.store(true, Ordering::SeqCst);
    }
    read
}

/// Connects and reads; `Ok` when `stop` ended the reading, `Err` saying why the stream
/// stopped otherwise.
async fn subscribe(
    address: SocketAddr,
    token: &str,
    progress: &Progress,
    stop: &CancellationToken,
    read: &mut AgentRead,
) -> Result<(), String> {
    let (mut sender, connection) = load::handshake(address).await?;
    // Driven here, beside the body: one task's wake-up for each frame, not two.
    let mut connection = std::pin::pin!(connection);
    let closed = |result: hyper::Result<()>| match result {
        Ok(()) => "the server closed the connection".to_owned(),
        Err(err) => format!("the connection failed: {err}"),
    };
    let request = Request::get("/api/v1/stream")
        .header("host", address.to_string())
        .header("authorization", format!("Bearer {token}"))
        .header("accept", "text/event-stream")
        .body(Full::new(Bytes::new()))
        .expect("a valid request");
    let response = tokio::select! {
        response = sender.send_request(request) => response.map_err(|err| format!("request: {err}"))?,
        result = &mut connection => return Err(closed(result)),
    };
    let status = response.status();
    if status != StatusCode::OK {
        let body = tokio::select! {
            body = response.into_body().collect() => body.map(|body| body.to_bytes()),
            result = &mut connection => return Err(format!("HTTP {status}, then {}", closed(result))),
        };
        let body = body.as_deref().map(String::from_utf8_lossy).unwrap_or_default();
        return Err(format!("HTTP {status}: {body}"));
    }
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    if !content_type.starts_with("text/event-stream") {
        return Err(format!("content-type `{content_type}`, not text/event-stream"));
    }
    let mut body = response.into_body();
    let mut parser = SseParser::default();
    loop {
        let frame = tokio::select! {
            frame = body.frame() => frame,
            result = &mut connection => return Err(closed(result)),
            () = stop.cancelled() => break,
        };
        let arrived = Instant::now();
        let Some(frame) = frame else {
            return Err("the server ended the stream".to_owned());
        };
        let frame = frame.map_err(|err| format!("reading the stream: {err}"))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        parser.feed(&data, |event| {
            match event.event {
                "message.created" => match serde_json::from_slice::<Created>(event.data) {
                    Ok(created) if created.message.direction == Direction::Inbound => {
                        read.messages.push((created.message.id, arrived));
                        progress.inbound.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(_) => {}
                    Err(_) => read.unreadable += 1,
                },
                "stream.ready" => {
                    read.ready_at.get_or_insert(arrived);
                    progress.ready.store(true, Ordering::SeqCst);
                }
                _ => {}
            }
            match read.kinds.get_mut(event.event) {
                Some(count) => *count += 1,
                None => {
                    read.kinds.insert(event.event.to_owned(), 1);
                }
            }
        });
        read.comments = parser.comments;
    }
    Ok(())
}

/// Customer messages; notes each acknowledged message's id and when its 202 was read.
struct Posted {
    inner: CustomerMessages,
    acknowledged: Mutex<Vec<(i64, Instant)>>,
}

impl Workload for Posted {
    fn request(&self, client: usize, seq: u64) -> Request<Full<Bytes>> {
        self.inner.request(client, seq)
    }

    fn accepted(&self, status: StatusCode) -> bool {
        self.inner.accepted(status)
    }

    fn on_accepted(&self, _due: Instant, body: &Bytes) {
        let answered = Instant::now();
        if let Some(message) = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|body| body["message_id"].as_i64())
        {
            self.acknowledged.lock().unwrap().push((message, answered));
        }
    }
}

pub struct StreamFigures {
    pub agents: usize,
    pub offered_per_second: f64,
    /// The webhook posts: their 202s, errors, and latency from when each was due.
    pub load: LoadResult,
    /// Per message read by every agent: from its 202 to the last agent's read.
    pub last_read_us: Histogram<u64>,
    /// Per agent and message: from the 202 to that agent's read.
    pub each_read_us: Histogram<u64>,
    /// Acknowledged messages with an id in the 202's body.
    pub acknowledged: u64,
    /// Acknowledged messages that at least one agent never read, and the (agent,
    /// message) reads missing in all.
    pub messages_missed: u64,
    pub reads_missing: u64,
    /// Acknowledged messages each agent read, fewest and most.
    pub received_min: u64,
    pub received_max: u64,
    /// Agents that read every acknowledged message.
    pub agents_complete: usize,
    /// Inbound message events that were not one of the acknowledged messages, or came
    /// twice to one agent.
    pub unknown_reads: u64,
    pub duplicate_reads: u64,
    /// `message.created` events whose data held no message id and direction.
    pub unreadable: u64,
    /// Events by kind, all agents together, and keep-alive comments.
    pub events_by_kind: BTreeMap<String, u64>,
    pub comments: u64,
    /// Streams that stopped before the run closed them, and why (the first few).
    pub streams_ended: usize,
    pub stream_failures: Vec<String>,
    /// Creating the agents, then from the first connect to the last `stream.ready`.
    pub agent_setup_seconds: f64,
    pub connect_seconds: f64,
    /// From the first connect to each agent's `stream.ready`.
    pub ready_us: Histogram<u64>,
    /// Connections the kernel dropped for a full listen queue while the agents connected
    /// (machine-wide; `None` without /proc/net/netstat).
    pub listen_overflows: Option<u64>,
    /// From the end of posting until every agent read every message (or gave up).
    pub drain_seconds: f64,
    pub rss_before_mib: f64,
    pub rss_connected_mib: f64,
    /// The highest RSS sampled while posting and draining, and the high-water mark then.
    pub rss_peak_load_mib: f64,
    pub rss_hwm_mib: f64,
    pub rss_after_load_mib: f64,
    /// CPU time while posting and draining: the daemon's, this program's, and the whole
    /// machine's (the rest is other processes', which the figures then shared the cores with).
    pub daemon_cpu_seconds: f64,
    pub bench_cpu_seconds: f64,
    pub machine_cpu_seconds: f64,
    /// Wall time of posting and draining.
    pub load_seconds: f64,
}

impl StreamFigures {
    pub fn kib_per_agent(&self) -> f64 {
        (self.rss_connected_mib - self.rss_before_mib) * 1024.0 / self.agents.max(1) as f64
    }

    pub fn last_ms(&self, percentile: f64) -> f64 {
        self.last_read_us.value_at_quantile(percentile / 100.0) as f64 / 1000.0
    }

    pub fn each_ms(&self, percentile: f64) -> f64 {
        self.each_read_us.value_at_quantile(percentile / 100.0) as f64 / 1000.0
    }

    pub fn last_max_ms(&self) -> f64 {
        self.last_read_us.max() as f64 / 1000.0
    }

    pub fn meets_latency(&self) -> bool {
        !self.last_read_us.is_empty() && self.last_ms(99.0) < TARGET_P99_MS
    }

    /// CPU time other processes on the machine took while the load ran (roughly: the
    /// kernel's work for the daemon and this program counts in their own).
    pub fn other_cpu_seconds(&self) -> f64 {
        (self.machine_cpu_seconds - self.daemon_cpu_seconds - self.bench_cpu_seconds).max(0.0)
    }

    pub fn meets_memory(&self) -> bool {
        self.kib_per_agent() < TARGET_KIB_PER_AGENT
    }

    pub fn to_json(&self) -> Value {
        let latency = |histogram: &Histogram<u64>| {
            json!({
                "timed": histogram.len(),
                "p50_ms": histogram.value_at_quantile(0.5) as f64 / 1000.0,
                "p99_ms": histogram.value_at_quantile(0.99) as f64 / 1000.0,
                "p99_9_ms": histogram.value_at_quantile(0.999) as f64 / 1000.0,
                "max_ms": histogram.max() as f64 / 1000.0,
            })
        };
        json!({
            "description": "agents on GET /api/v1/stream (one connection each, team support) while signed webhook messages from 10,000 customers are posted at a paced rate; from reading a message's 202 to its message.created event read by the last agent (read before the 202 counts as 0)",
            "agents": self.agents,
            "offered_per_second": self.offered_per_second,
            "ingest": load_json(&self.load),
            "posted": self.load.accepted + self.load.errors,
            "acknowledged": self.acknowledged,
            "ack_to_last_agent": latency(&self.last_read_us),
            "ack_to_each_agent": latency(&self.each_read_us),
            "messages_missed_by_some_agent": self.messages_missed,
            "reads_missing": self.reads_missing,
            "received_per_agent_min": self.received_min,
            "received_per_agent_max": self.received_max,
            "agents_complete": self.agents_complete,
            "unknown_reads": self.unknown_reads,
            "duplicate_reads": self.duplicate_reads,
            "unreadable_message_events": self.unreadable,
            "events_by_kind": self.events_by_kind,
            "keepalive_comments": self.comments,
            "streams_ended_early": self.streams_ended,
            "stream_failures": self.stream_failures,
            "agent_setup_seconds": self.agent_setup_seconds,
            "connect_seconds": self.connect_seconds,
            "connect_to_ready": latency(&self.ready_us),
            "listen_queue_overflows_while_connecting": self.listen_overflows,
            "drain_seconds": self.drain_seconds,
            "rss_before_connect_mib": self.rss_before_mib,
            "rss_connected_mib": self.rss_connected_mib,
            "rss_peak_during_load_mib": self.rss_peak_load_mib,
            "rss_high_water_mib": self.rss_hwm_mib,
            "rss_after_load_mib": self.rss_after_load_mib,
            "kib_per_connected_agent": (self.kib_per_agent() * 10.0).round() / 10.0,
            "daemon_cpu_seconds_during_load": self.daemon_cpu_seconds,
            "bench_cpu_seconds_during_load": self.bench_cpu_seconds,
            "machine_cpu_seconds_during_load": self.machine_cpu_seconds,
            "other_processes_cpu_seconds_during_load": self.other_cpu_seconds(),
            "load_seconds": self.load_seconds,
            "target_p99_ms": TARGET_P99_MS,
            "target_kib_per_agent": TARGET_KIB_PER_AGENT,
            "meets_latency_target": self.meets_latency(),
            "meets_memory_target": self.meets_memory(),
        })
    }
}

/// Creates `count` agents of the support team, a few `agent add` commands at a time;
/// returns their tokens.
fn create_agents(daemon: &Daemon, count: usize) -> anyhow::Result<Vec<String>> {
    let tokens = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..AGENT_COMMANDS)
            .map(|worker| {
                scope.spawn(move || {
                    (worker..count)
                        .step_by(AGENT_COMMANDS)
                        .map(|index| daemon.agent(&format!("stream-{index}"), "support"))
                        .collect::<anyhow::Result<Vec<_>>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| worker.join().expect("an agent-creating thread panicked"))
            .collect::<anyhow::Result<Vec<_>>>()
    })?;
    Ok(tokens.into_iter().flatten().collect())
}

/// The kernel's count of connections dropped because a listen queue was full, all
/// listeners on the machine together: agents that connect at once beyond the daemon's
/// backlog show here, and wait for their SYN's retransmission (a second, then three).
fn listen_overflows() -> Option<u64> {
    let netstat = std::fs::read_to_string("/proc/net/netstat").ok()?;
    let mut tcp = netstat.lines().filter(|line| line.starts_with("TcpExt:"));
    let (names, values) = (tcp.next()?, tcp.next()?);
    let (_, count) = names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(name, _)| *name == "ListenOverflows")?;
    count.parse().ok()
}

/// CPU time the whole machine has spent busy (all but idle and I/O wait), all cores, in
/// seconds: what is left after the daemon's and this program's is other processes'.
fn machine_busy_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(cpu) = stat.lines().find(|line| line.starts_with("cpu ")) else {
        return 0.0;
    };
    // user nice system idle iowait irq softirq steal (guest time is within user).
    let ticks: Vec<u64> = cpu
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|field| field.parse().ok())
        .collect();
    let busy: u64 = ticks
        .iter()
        .enumerate()
        .filter(|(index, _)| !matches!(index, 3 | 4))
        .map(|(_, ticks)| ticks)
        .sum();
    // USER_HZ, as `daemon::process_cpu_seconds` counts.
    busy as f64 / 100.0
}

/// Runs `work`, sampling the daemon's RSS meanwhile; returns its output and the highest
/// RSS sampled.
async fn sampling_rss<T>(process: &Process, work: impl Future<Output = T>) -> (T, f64) {
    let mut peak = process.rss_mib().0;
    let mut work = std::pin::pin!(work);
    loop {
        tokio::select! {
            output = &mut work => return (output, peak.max(process.rss_mib().0)),
            () = tokio::time::sleep(RSS_SAMPLE) => peak = peak.max(process.rss_mib().0),
        }
    }
}

pub async fn run(binary: &Path, agents: usize, per_second: f64, duration: Duration) -> anyhow::Result<StreamFigures> {
    let dir = tempfile::tempdir()?;
    // Takes the new conversations' acknowledgements, so the outbox has somewhere to send them.
    let receiver = Receiver::start().await?;
    let daemon = Daemon::start(binary, dir.path(), &receiver.url(), "").await?;
    let address = daemon.process.address;

    let setup = Instant::now();
    let tokens = create_agents(&daemon, agents)?;
    let agent_setup_seconds = setup.elapsed().as_secs_f64();
    let rss_before_mib = daemon.process.rss_mib().0;

    let stop = CancellationToken::new();
    let overflows_before = listen_overflows();
    let connecting = Instant::now();
    let (readers, progress): (Vec<_>, Vec<_>) = tokens
        .into_iter()
        .map(|token| {
            let progress = Arc::new(Progress::default());
            let reader = tokio::spawn(read_stream(address, token, Arc::clone(&progress), stop.clone()));
            (reader, progress)
        })
        .unzip();
    let settled = |progress: &Progress| progress.ready.load(Ordering::SeqCst) || progress.ended.load(Ordering::SeqCst);
    while !progress.iter().all(|progress| settled(progress)) && connecting.elapsed() < READY_LIMIT {
        tokio::time::sleep(POLL).await;
    }
    let connect_seconds = connecting.elapsed().as_secs_f64();
    let listen_overflows = overflows_before
        .zip(listen_overflows())
        .map(|(before, after)| after.saturating_sub(before));
    let ready = progress
        .iter()
        .filter(|progress| progress.ready.load(Ordering::SeqCst))
        .count();
    if ready < agents {
        stop.cancel();
        let mut failures = Vec::new();
        for reader in readers {
            if let Some(failure) = reader.await?.failure
                && failures.len() < 3
            {
                failures.push(failure);
            }
        }
        let why = if failures.is_empty() {
            format!("the others were still waiting after {} s", READY_LIMIT.as_secs())
        } else {
            failures.join("; ")
        };
        bail!("only {ready} of {agents} agents were subscribed (stream.ready): {why}");
    }
    let rss_connected_mib = daemon.process.rss_mib().0;

    let workload = Arc::new(Posted {
        inner: messages("stream", address, Senders::Base(CUSTOMER_BASE)),
        acknowledged: Mutex::new(Vec::new()),
    });
    let daemon_cpu = daemon.process.cpu_seconds();
    let bench_cpu = process_cpu_seconds("self");
    let machine_cpu = machine_busy_seconds();
    let load_started = Instant::now();
    let posting = load::run_paced(
        address,
        POST_CLIENTS,
        duration,
        per_second,
        Arc::clone(&workload) as Arc<dyn Workload>,
    );
    let (load, peak_posting) = sampling_rss(&daemon.process, posting).await;
    let acknowledged = workload.acknowledged.lock().unwrap().len() as u64;
    let draining = Instant::now();
    let drained = async {
        let done = |progress: &Progress| {
            progress.inbound.load(Ordering::Relaxed) >= acknowledged || progress.ended.load(Ordering::SeqCst)
        };
        while !progress.iter().all(|progress| done(progress)) && draining.elapsed() < DRAIN_LIMIT {
            tokio::time::sleep(POLL).await;
        }
    };
    let ((), peak_draining) = sampling_rss(&daemon.process, drained).await;
    let drain_seconds = draining.elapsed().as_secs_f64();
    let load_seconds = load_started.elapsed().as_secs_f64();
    let daemon_cpu_seconds = daemon.process.cpu_seconds() - daemon_cpu;
    let bench_cpu_seconds = process_cpu_seconds("self") - bench_cpu;
    let machine_cpu_seconds = machine_busy_seconds() - machine_cpu;
    let (rss_after_load_mib, rss_hwm_mib) = daemon.process.rss_mib();
    stop.cancel();
    let mut reads = Vec::with_capacity(agents);
    for reader in readers {
        reads.push(reader.await.context("a stream reader panicked")?);
    }
    daemon.process.stop()?;

    let acknowledged_at: HashMap<i64, Instant> = workload.acknowledged.lock().unwrap().iter().copied().collect();
    let mut each_read_us = load::histogram();
    // Per message: the longest delay so far, and how many agents read it.
    let mut slowest: HashMap<i64, (Duration, usize)> = HashMap::with_capacity(acknowledged_at.len());
    let mut figures = StreamFigures {
        agents,
        offered_per_second: per_second,
        load,
        last_read_us: load::histogram(),
        each_read_us: load::histogram(),
        acknowledged: acknowledged_at.len() as u64,
        messages_missed: 0,
        reads_missing: 0,
        received_min: u64::MAX,
        received_max: 0,
        agents_complete: 0,
        unknown_reads: 0,
        duplicate_reads: 0,
        unreadable: 0,
        events_by_kind: BTreeMap::new(),
        comments: 0,
        streams_ended: 0,
        stream_failures: Vec::new(),
        agent_setup_seconds,
        connect_seconds,
        ready_us: load::histogram(),
        listen_overflows,
        drain_seconds,
        rss_before_mib,
        rss_connected_mib,
        rss_peak_load_mib: peak_posting.max(peak_draining),
        rss_hwm_mib,
        rss_after_load_mib,
        daemon_cpu_seconds,
        bench_cpu_seconds,
        machine_cpu_seconds,
        load_seconds,
    };
    let mut seen = HashSet::new();
    for read in &reads {
        seen.clear();
        for &(message, at) in &read.messages {
            let Some(answered) = acknowledged_at.get(&message) else {
                figures.unknown_reads += 1;
                continue;
            };
            if !seen.insert(message) {
                figures.duplicate_reads += 1;
                continue;
            }
            let delay = at.saturating_duration_since(*answered);
            each_read_us.saturating_record(delay.as_micros() as u64);
            let entry = slowest.entry(message).or_insert((Duration::ZERO, 0));
            entry.0 = entry.0.max(delay);
            entry.1 += 1;
        }
        let received = seen.len() as u64;
        figures.received_min = figures.received_min.min(received);
        figures.received_max = figures.received_max.max(received);
        if received == figures.acknowledged {
            figures.agents_complete += 1;
        }
        if let Some(ready_at) = read.ready_at {
            let after = ready_at.saturating_duration_since(connecting);
            figures.ready_us.saturating_record(after.as_micros() as u64);
        }
        figures.unreadable += read.unreadable;
        figures.comments += read.comments;
        for (kind, count) in &read.kinds {
            *figures.events_by_kind.entry(kind.clone()).or_default() += count;
        }
        if let Some(failure) = &read.failure {
            figures.streams_ended += 1;
            if figures.stream_failures.len() < 3 {
                figures.stream_failures.push(failure.clone());
            }
        }
    }
    if reads.is_empty() {
        figures.received_min = 0;
    }
    for message in acknowledged_at.keys() {
        match slowest.get(message) {
            Some(&(delay, readers)) if readers == agents => {
                figures.last_read_us.saturating_record(delay.as_micros() as u64);
            }
            other => {
                figures.messages_missed += 1;
                figures.reads_missing += (agents - other.map_or(0, |&(_, readers)| readers)) as u64;
            }
        }
    }
    figures.each_read_us = each_read_us;
    Ok(figures)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An event as the tests compare it: id, kind, data.
    type Owned = (Option<String>, String, String);

    fn parse(chunks: &[&[u8]]) -> (Vec<Owned>, u64) {
        let mut parser = SseParser::default();
        let mut events = Vec::new();
        for chunk in chunks {
            parser.feed(chunk, |event| {
                let data = String::from_utf8(event.data.to_vec()).unwrap();
                events.push((event.id.map(str::to_owned), event.event.to_owned(), data));
            });
        }
        (events, parser.comments)
    }

    fn event(id: Option<&str>, kind: &str, data: &str) -> Owned {
        (id.map(str::to_owned), kind.to_owned(), data.to_owned())
    }

    const STREAM: &str = ": keep-alive\n\nid: 7\nevent: stream.ready\ndata: {\"position\": \"7\"}\n\n:ping\nid: 8\nevent: message.created\ndata: {\"message\": {\"id\": 1,\ndata:  \"direction\": \"inbound\"}}\n\n";

    fn expected() -> Vec<Owned> {
        vec![
            event(Some("7"), "stream.ready", r#"{"position": "7"}"#),
            event(
                Some("8"),
                "message.created",
                "{\"message\": {\"id\": 1,\n \"direction\": \"inbound\"}}",
            ),
        ]
    }

    #[test]
    fn an_event_has_its_id_kind_and_data_lines_joined_by_newlines() {
        assert_eq!(parse(&[STREAM.as_bytes()]).0, expected());
    }

    #[test]
    fn comments_are_counted_and_dispatch_nothing() {
        let (events, comments) = parse(&[b": one\n\n:two\n\n"]);
        assert_eq!(events, []);
        assert_eq!(comments, 2);
        assert_eq!(parse(&[STREAM.as_bytes()]).1, 2);
    }

    #[test]
    fn crlf_and_cr_line_endings_read_as_lf() {
        let crlf = STREAM.replace('\n', "\r\n");
        let cr = STREAM.replace('\n', "\r");
        assert_eq!(parse(&[crlf.as_bytes()]), (expected(), 2));
        assert_eq!(parse(&[cr.as_bytes()]), (expected(), 2));
    }

    #[test]
    fn events_split_anywhere_across_chunks_read_the_same() {
        let crlf = STREAM.replace('\n', "\r\n");
        for stream in [STREAM, crlf.as_str()] {
            let bytes: Vec<&[u8]> = stream.as_bytes().chunks(1).collect();
            assert_eq!(parse(&bytes), (expected(), 2));
            for split in 0..stream.len() {
                let (head, tail) = stream.as_bytes().split_at(split);
                assert_eq!(parse(&[head, tail]), (expected(), 2), "split at {split}");
            }
        }
    }

    #[test]
    fn an_event_without_a_kind_is_a_message_and_keeps_the_last_id() {
        let (events, _) = parse(&[b"id: 3\ndata: a\n\ndata:b\n\nid\ndata\n\n"]);
        assert_eq!(
            events,
            [
                event(Some("3"), "message", "a"),
                event(Some("3"), "message", "b"),
                event(Some(""), "message", ""),
            ]
        );
    }

    #[test]
    fn a_blank_line_without_data_dispatches_nothing_and_forgets_the_kind() {
        let (events, _) = parse(&[b"event: ignored\n\ndata: x\n\n"]);
        assert_eq!(events, [event(None, "message", "x")]);
    }

    #[test]
    fn only_one_space_after_the_colon_is_dropped() {
        let (events, _) = parse(&[b"data:  two spaces\nevent:kind\n\n"]);
        assert_eq!(events, [event(None, "kind", " two spaces")]);
    }

    /// A one-connection server that answers with `head`, then writes `pieces` as chunks
    /// of its body and holds the connection open; returns the request it read.
    async fn serve_once(head: &'static str, pieces: Vec<String>) -> (SocketAddr, tokio::task::JoinHandle<String>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = vec![0; 4096];
            let read = socket.read(&mut request).await.unwrap();
            socket.write_all(head.as_bytes()).await.unwrap();
            for piece in pieces {
                let chunk = format!("{:x}\r\n{piece}\r\n", piece.len());
                socket.write_all(chunk.as_bytes()).await.unwrap();
                socket.flush().await.unwrap();
            }
            // Open until the reader hangs up.
            let _ = socket.read(&mut [0; 64]).await;
            String::from_utf8_lossy(&request[..read]).into_owned()
        });
        (address, server)
    }

    async fn until(limit: Duration, done: impl Fn() -> bool) {
        let started = Instant::now();
        while !done() {
            assert!(started.elapsed() < limit, "not done within {limit:?}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn a_reader_notes_ready_and_each_inbound_message_until_stopped() {
        let created = |id: i64, direction: &str| {
            format!(
                "id: {id}\r\nevent: message.created\r\ndata: {{\"conversation_id\": 1, \"message\": {{\"id\": {id}, \"direction\": \"{direction}\"}}}}\r\n\r\n"
            )
        };
        let whole = format!(
            ": hello\n\nevent: stream.ready\ndata: {{\"position\": \"0\"}}\n\n{}event: conversation.created\ndata: {{}}\n\n{}{}",
            created(1, "inbound"),
            created(2, "outbound"),
            created(3, "inbound")
        );
        // Split mid-line and mid-CRLF, as a connection may.
        let pieces = whole
            .as_bytes()
            .chunks(7)
            .map(|piece| String::from_utf8(piece.to_vec()).unwrap())
            .collect();
        let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
        let (address, server) = serve_once(head, pieces).await;
        let progress = Arc::new(Progress::default());
        let stop = CancellationToken::new();
        let reader = tokio::spawn(read_stream(address, "t0k".into(), Arc::clone(&progress), stop.clone()));
        until(Duration::from_secs(5), || progress.inbound.load(Ordering::SeqCst) == 2).await;
        stop.cancel();
        let read = reader.await.unwrap();
        assert!(server.await.unwrap().contains("authorization: Bearer t0k"));
        assert!(progress.ready.load(Ordering::SeqCst));
        assert_eq!(read.failure, None);
        assert_eq!(read.messages.iter().map(|&(id, _)| id).collect::<Vec<_>>(), [1, 3]);
        assert_eq!(read.kinds["message.created"], 3);
        assert_eq!(read.kinds["conversation.created"], 1);
        assert_eq!(read.comments, 1);
    }

    #[tokio::test]
    async fn a_refused_stream_ends_with_the_status_and_body() {
        let head = "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
        let (address, _server) = serve_once(
            head,
            vec![r#"{"error": {"code": "unauthorized"}}"#.into(), String::new()],
        )
        .await;
        let progress = Arc::new(Progress::default());
        let read = read_stream(address, "bad".into(), Arc::clone(&progress), CancellationToken::new()).await;
        assert!(progress.ended.load(Ordering::SeqCst));
        let failure = read.failure.unwrap();
        assert!(
            failure.starts_with("HTTP 401") && failure.contains("unauthorized"),
            "{failure}"
        );
    }

    #[test]
    fn an_inbound_message_event_gives_its_message_id() {
        let data = r#"{"conversation_id": 4, "message": {"id": 9, "direction": "inbound", "text": "hi"}, "at": 1}"#;
        let created: Created = serde_json::from_str(data).unwrap();
        assert_eq!(created.message.id, 9);
        assert!(created.message.direction == Direction::Inbound);
        let outbound = r#"{"message": {"direction": "outbound", "id": 10}}"#;
        assert!(serde_json::from_str::<Created>(outbound).unwrap().message.direction == Direction::Other);
    }
}
