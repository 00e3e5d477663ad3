//! # soak: kill -9 under load on every channel, then count what was acknowledged
//!
//! One daemon store, one Dovecot with an SMTP relay, one fake Telegram Bot API and one
//! callback receiver for the whole run. Each cycle starts the daemon on the store and,
//! all at once: signed webhook messages (closed loop, unique ids), mails delivered into
//! the support mailbox over LMTP, Telegram updates pushed to the fake, and an agent's
//! replies through the API to conversations of all three inboxes, so replies and
//! acknowledgements leave on every channel while the daemon is killed with SIGKILL after
//! 0.2 – 2 s. Then it restarts on the same store, and the next cycle begins.
//!
//! What counts as acknowledged: a webhook message answered 202 or 200 (a sender retries
//! the others with the same id, as a real one would); a mail once it is in the mailbox;
//! a Telegram update once the fake holds it (it hands it out until an offset confirms
//! it); a reply answered 201. After the last cycle the daemon finishes its work (polled
//! with a deadline), stops, and the store is read: each acknowledged inbound message
//! stored exactly once, each acknowledged reply and each outbox row marked sent seen by
//! its destination, repeats counted by id (`webhook-id`, Message-ID, the message a
//! Telegram text belongs to), one acknowledgement per conversation, and
//! `PRAGMA integrity_check`.
//!
//! `cargo run --release -p switchboard-bench --bin soak -- [--cycles N] [--daemon PATH]
//! [--seed N] [--min-ms N] [--max-ms N] [--webhook-clients N] [--json PATH]`
//!
//! Exits non-zero when anything acknowledged was lost or doubled, or the store is damaged.

// The benchmark program's modules, shared as files: this binary uses a part of each.
#[allow(dead_code)]
#[path = "../daemon.rs"]
mod daemon;
#[allow(dead_code)]
#[path = "../load.rs"]
mod load;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use http_body_util::Full;
use hyper::Request;
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use serde_json::{Value, json};
use switchboard_connector_webhook::Secret;
use switchboard_connector_webhook::signature::{HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP};
use switchboard_test_mailservers::{Dovecot, SmtpRelay};
use switchboard_test_telegram::{FakeTelegram, private_text};
use tokio_util::sync::CancellationToken;

use daemon::{Daemon, SECRET};

const SUPPORT: &str = "support@test.local";
const TOKEN: &str = "5000000002:AAHfake-token-for-the-soak-bot";
const BOT_ID: i64 = 5_000_000_002;
/// Customers who come back: their messages join their open conversation, so not every
/// message opens one (and gets an acknowledgement).
const WEBHOOK_BASE: u64 = 200;
const MAIL_SENDERS: u64 = 40;
const TELEGRAM_BASE: i64 = 40;
const FIRST_CHAT: i64 = 800_000_000;
/// The paced sources: a mail, a Telegram update and an agent's reply every so often.
/// The webhook clients run closed loop, as fast as the daemon answers.
const MAIL_EVERY: Duration = Duration::from_millis(40);
const UPDATE_EVERY: Duration = Duration::from_millis(50);
const REPLY_EVERY: Duration = Duration::from_millis(60);
/// How long the daemon has, after the last cycle, to store and send what it owes.
const SETTLE_DEADLINE: Duration = Duration::from_secs(300);
const POLL: Duration = Duration::from_millis(100);

struct Options {
    cycles: usize,
    daemon: Option<PathBuf>,
    seed: u64,
    min_ms: u64,
    max_ms: u64,
    webhook_clients: usize,
    json: PathBuf,
}

impl Options {
    fn parse() -> anyhow::Result<Options> {
        let mut options = Options {
            cycles: 100,
            daemon: None,
            seed: 16,
            min_ms: 200,
            max_ms: 2000,
            webhook_clients: 8,
            json: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/bench/soak.json")),
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
            match arg.as_str() {
                "--cycles" => options.cycles = value()?.parse().context("--cycles takes a number")?,
                "--daemon" => options.daemon = Some(PathBuf::from(value()?)),
                "--seed" => options.seed = value()?.parse().context("--seed takes a number")?,
                "--min-ms" => options.min_ms = value()?.parse().context("--min-ms takes a number")?,
                "--max-ms" => options.max_ms = value()?.parse().context("--max-ms takes a number")?,
                "--webhook-clients" => {
                    options.webhook_clients = value()?.parse().context("--webhook-clients takes a number")?
                }
                "--json" => options.json = PathBuf::from(value()?),
                other => bail!(
                    "unknown argument {other}; use --cycles N, --daemon PATH, --seed N, --min-ms N, --max-ms N, --webhook-clients N, --json PATH"
                ),
            }
        }
        if options.min_ms > options.max_ms {
            bail!("--min-ms must not be above --max-ms");
        }
        Ok(options)
    }
}

/// SplitMix64, as the benchmark's workloads use: repeatable draws from the seed.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Channel {
    Webhook,
    Email,
    Telegram,
}

impl Channel {
    const ALL: [Channel; 3] = [Channel::Webhook, Channel::Email, Channel::Telegram];

    fn inbox(self) -> &'static str {
        match self {
            Channel::Webhook => "shop",
            Channel::Email => "mail",
            Channel::Telegram => "bot",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Channel::Webhook => "webhook",
            Channel::Email => "email",
            Channel::Telegram => "telegram",
        }
    }
}

/// A webhook message as first sent: a retry repeats id and body.
#[derive(Clone)]
struct Posted {
    id: String,
    body: String,
}

/// Everything the sources were told, across all cycles.
#[derive(Default)]
struct Ledger {
    next_webhook: u64,
    /// Answered 202 or 200.
    webhook_acked: HashSet<String>,
    /// Not answered (the daemon died first) or answered otherwise: sent again.
    webhook_unacked: Vec<Posted>,
    /// Answers other than 202/200, by status: each was retried.
    webhook_other_status: HashMap<u16, u64>,
    webhook_errors: u64,
    /// Message-IDs of the mails delivered into the support mailbox.
    mails: Vec<String>,
    /// (chat, message id) of the updates the fake holds.
    updates: Vec<(i64, i64)>,
    next_reply: u64,
    /// (message id, channel) of each reply answered 201.
    replies: Vec<(i64, Channel)>,
    replies_unacked: u64,
}

type Shared = Arc<Mutex<Ledger>>;

/// The business's app: every callback's `webhook-id`, in arrival order.
#[derive(Default)]
struct Callbacks {
    ids: Mutex<Vec<String>>,
}

async fn receive(State(callbacks): State<Arc<Callbacks>>, headers: HeaderMap) -> StatusCode {
    if let Some(id) = headers.get(HEADER_ID).and_then(|id| id.to_str().ok()) {
        callbacks.ids.lock().unwrap().push(id.to_owned());
    }
    StatusCode::NO_CONTENT
}

async fn start_receiver() -> anyhow::Result<(SocketAddr, Arc<Callbacks>)> {
    let callbacks = Arc::new(Callbacks::default());
    let app = Router::new()
        .route("/callback", post(receive))
        .with_state(Arc::clone(&callbacks));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((address, callbacks))
}

/// The daemon's config: one inbox per channel, the benchmark's defaults otherwise
/// (FULL durability, acknowledgements on, loopback only).
fn config(
    dir: &Path,
    receiver: SocketAddr,
    dovecot: &Dovecot,
    relay: &SmtpRelay,
    fake: &FakeTelegram,
) -> anyhow::Result<String> {
    let password = dir.join("imap-password");
    std::fs::write(&password, format!("{}\n", switchboard_test_mailservers::PASSWORD))?;
    let token_file = dir.join("bot.token");
    std::fs::write(&token_file, format!("{TOKEN}\n"))?;
    Ok(daemon::config_with(
        &dir.join("switchboard.db"),
        &format!(
            r#"
[inboxes.shop]
name = "Shop app"

[inboxes.shop.webhook]
secret = "{SECRET}"
callback_url = "http://{receiver}/callback"

[inboxes.mail]
name = "Support mail"

[inboxes.mail.email]
address = "{SUPPORT}"
display_name = "Support"
imap = {{ host = "127.0.0.1", port = {imap}, security = "plain", password_file = "{password}" }}
smtp = {{ host = "127.0.0.1", port = {smtp}, security = "plain" }}
backfill = "7d"

[inboxes.bot]
name = "Shop bot"

[inboxes.bot.telegram]
token_file = "{token_file}"
api_url = "{api}"
poll_timeout = "5s"
"#,
            imap = dovecot.imap_port(),
            smtp = relay.port(),
            password = password.display(),
            token_file = token_file.display(),
            api = fake.url().trim_end_matches('/'),
        ),
    ))
}

fn signed(address: SocketAddr, secret: &Secret, posted: &Posted) -> Request<Full<Bytes>> {
    let timestamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    Request::post("/hooks/shop")
        .header("host", address.to_string())
        .header("content-type", "application/json")
        .header(HEADER_ID, &posted.id)
        .header(HEADER_TIMESTAMP, timestamp.to_string())
        .header(
            HEADER_SIGNATURE,
            secret.sign(&posted.id, timestamp, posted.body.as_bytes()),
        )
        .body(Full::new(Bytes::from(posted.body.clone())))
        .expect("a valid request")
}

/// Sends one webhook message and notes the answer. False when the daemon is gone.
async fn post_webhook(address: SocketAddr, secret: &Secret, ledger: &Shared, posted: Posted) -> bool {
    match load::fetch(address, signed(address, secret, &posted)).await {
        Ok((status, _)) if status == hyper::StatusCode::ACCEPTED || status == hyper::StatusCode::OK => {
            ledger.lock().unwrap().webhook_acked.insert(posted.id);
            true
        }
        Ok((status, _)) => {
            let mut ledger = ledger.lock().unwrap();
            *ledger.webhook_other_status.entry(status.as_u16()).or_default() += 1;
            ledger.webhook_unacked.push(posted);
            true
        }
        Err(_) => {
            let mut ledger = ledger.lock().unwrap();
            ledger.webhook_errors += 1;
            ledger.webhook_unacked.push(posted);
            false
        }
    }
}

/// One webhook client for a cycle: first what earlier cycles left unanswered, then new
/// messages, until the cycle ends or the daemon stops answering.
async fn webhook_client(address: SocketAddr, secret: Arc<Secret>, ledger: Shared, stop: CancellationToken) {
    while !stop.is_cancelled() {
        let posted = {
            let mut ledger = ledger.lock().unwrap();
            match ledger.webhook_unacked.pop() {
                Some(posted) => posted,
                None => {
                    let n = ledger.next_webhook;
                    ledger.next_webhook += 1;
                    let draw = mix(n ^ 0x7765_6268);
                    // One message in four from a customer never seen: a new conversation.
                    let sender = if draw.is_multiple_of(4) {
                        format!("new-{n}")
                    } else {
                        format!("customer-{}", (draw >> 8) % WEBHOOK_BASE)
                    };
                    Posted {
                        id: format!("w{n}"),
                        body: format!(
                            r#"{{"id":"w{n}","from":{{"id":"{sender}","name":"Customer {sender}"}},"text":"Soak message {n}: where is my order?"}}"#
                        ),
                    }
                }
            }
        };
        // A closed connection ends this client's cycle: the daemon is being killed.
        if !post_webhook(address, &secret, &ledger, posted).await {
            return;
        }
    }
}

/// The mails written so far, across cycles.
#[derive(Default)]
struct Mails {
    next: u64,
    /// Each sender's latest Message-ID and subject, for a reply to follow it.
    last: HashMap<u64, (String, String)>,
}

/// A customer's mail: unique Message-ID, one in five a reply to that sender's last one.
fn mail(n: u64, last: &mut HashMap<u64, (String, String)>) -> (String, Vec<u8>) {
    let sender = mix(n ^ 0x6d61_696c) % MAIL_SENDERS;
    let user = if sender.is_multiple_of(2) { "customer" } else { "other" };
    let address = format!("{user}+soak{sender}@test.local");
    let message_id = format!("soak-{n}@mua.example.net");
    let (subject, threading) = match last.get(&sender).filter(|_| n.is_multiple_of(5)) {
        Some((previous, subject)) => (
            format!("Re: {subject}"),
            format!("In-Reply-To: <{previous}>\r\nReferences: <{previous}>\r\n"),
        ),
        None => (format!("Soak order {n} has not arrived"), String::new()),
    };
    last.insert(
        sender,
        (message_id.clone(), subject.trim_start_matches("Re: ").to_owned()),
    );
    let raw = format!(
        "From: Soak {sender} <{address}>\r\nTo: Support <{SUPPORT}>\r\nSubject: {subject}\r\n\
         Date: Sun, 06 Dec 2026 12:00:00 +0000\r\nMessage-ID: <{message_id}>\r\n{threading}\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
         Hello, this is mail {n} of the soak. Where is my parcel?\r\n"
    );
    (message_id, raw.into_bytes())
}

async fn mail_source(dovecot: Arc<Dovecot>, ledger: Shared, mails: Arc<Mutex<Mails>>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(MAIL_EVERY);
    while !stop.is_cancelled() {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let (message_id, raw) = {
            let mut mails = mails.lock().unwrap();
            let n = mails.next;
            mails.next += 1;
            mail(n, &mut mails.last)
        };
        // In the mailbox once LMTP said so: from here the daemon owes it.
        dovecot.deliver(SUPPORT, &raw).await;
        ledger.lock().unwrap().mails.push(message_id);
    }
}

async fn telegram_source(fake: Arc<FakeTelegram>, ledger: Shared, stop: CancellationToken) {
    let mut tick = tokio::time::interval(UPDATE_EVERY);
    while !stop.is_cancelled() {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let mut ledger = ledger.lock().unwrap();
        let n = ledger.updates.len() as i64;
        let draw = mix(n as u64 ^ 0x7467);
        // One update in four from a new chat; message ids count up per chat, as Telegram's do.
        let chat = if draw.is_multiple_of(4) {
            FIRST_CHAT + TELEGRAM_BASE + n
        } else {
            FIRST_CHAT + (draw >> 8) as i64 % TELEGRAM_BASE
        };
        let message_id = n + 1;
        fake.push_update(
            TOKEN,
            private_text(chat, message_id, &format!("Soak update {n}: any news?")),
        );
        ledger.updates.push((chat, message_id));
    }
}

/// The agent: a reply every `REPLY_EVERY` to one of the newest conversations of each
/// inbox in turn.
async fn reply_source(
    address: SocketAddr,
    database: PathBuf,
    inboxes: HashMap<Channel, i64>,
    agent: String,
    ledger: Shared,
    stop: CancellationToken,
) {
    let Ok(store) = Connection::open_with_flags(&database, OpenFlags::SQLITE_OPEN_READ_ONLY) else {
        return;
    };
    let mut tick = tokio::time::interval(REPLY_EVERY);
    let mut turn = 0usize;
    while !stop.is_cancelled() {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        turn += 1;
        let channel = Channel::ALL[turn % 3];
        let n = {
            let mut ledger = ledger.lock().unwrap();
            ledger.next_reply += 1;
            ledger.next_reply
        };
        let conversation: Option<i64> = store
            .query_row(
                "SELECT id FROM conversations WHERE inbox_id = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2",
                rusqlite::params![inboxes[&channel], (mix(n) % 30) as i64],
                |row| row.get(0),
            )
            .optional()
            .ok()
            .flatten();
        let Some(conversation) = conversation else { continue };
        let request = Request::post(format!("/api/v1/conversations/{conversation}/messages"))
            .header("host", address.to_string())
            .header("authorization", format!("Bearer {agent}"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(
                json!({ "text": format!("Soak reply {n}: we are looking into it.") }).to_string(),
            )))
            .expect("a valid request");
        match load::fetch(address, request).await {
            Ok((status, body)) if status == hyper::StatusCode::CREATED => {
                let id = serde_json::from_slice::<Value>(&body)
                    .ok()
                    .and_then(|m| m["id"].as_i64());
                let mut ledger = ledger.lock().unwrap();
                match id {
                    Some(id) => ledger.replies.push((id, channel)),
                    None => ledger.replies_unacked += 1,
                }
            }
            Ok(_) => ledger.lock().unwrap().replies_unacked += 1,
            Err(_) => {
                ledger.lock().unwrap().replies_unacked += 1;
                return;
            }
        }
    }
}

fn open_store(database: &Path) -> anyhow::Result<Connection> {
    Connection::open_with_flags(database, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("opening {} read-only", database.display()))
}

fn count(store: &Connection, sql: &str, params: impl rusqlite::Params) -> anyhow::Result<u64> {
    Ok(store.query_row(sql, params, |row| row.get::<_, i64>(0))? as u64)
}

fn inbox_ids(store: &Connection) -> anyhow::Result<HashMap<Channel, i64>> {
    let mut ids = HashMap::new();
    for channel in Channel::ALL {
        let id: i64 = store
            .query_row("SELECT id FROM inboxes WHERE key = ?1", [channel.inbox()], |row| {
                row.get(0)
            })
            .with_context(|| format!("no inbox `{}` in the store", channel.inbox()))?;
        ids.insert(channel, id);
    }
    Ok(ids)
}

/// The value at `quantile` of sorted `values` (nearest rank), 0 when empty.
fn quantile(values: &[f64], quantile: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values[((values.len() - 1) as f64 * quantile).round() as usize]
}

/// Inbound of one channel: what the sources were told, against the store.
#[derive(Default, Debug)]
struct InboundCheck {
    acknowledged: u64,
    stored: u64,
    lost: u64,
    doubled: u64,
    /// Stored inbound messages of the inbox that no source sent.
    unknown: u64,
}

fn check_inbound(store: &Connection, inbox: i64, acknowledged: &HashSet<String>) -> anyhow::Result<InboundCheck> {
    let mut statement = store.prepare(
        "SELECT external_id, COUNT(*) FROM messages WHERE inbox_id = ?1 AND direction = 'inbound' GROUP BY external_id",
    )?;
    let mut stored: HashMap<String, u64> = HashMap::new();
    let mut check = InboundCheck {
        acknowledged: acknowledged.len() as u64,
        ..InboundCheck::default()
    };
    for row in statement.query_map([inbox], |row| {
        Ok((row.get::<_, Option<String>>(0)?, row.get::<_, i64>(1)?))
    })? {
        let (id, n) = row?;
        check.stored += n as u64;
        // A message with no channel id has no dedupe key: every one is suspect.
        let id = id.unwrap_or_default().trim_matches(['<', '>']).to_owned();
        *stored.entry(id).or_default() += n as u64;
    }
    for id in acknowledged {
        match stored.get(id).copied().unwrap_or(0) {
            0 => check.lost += 1,
            1 => {}
            n => check.doubled += n - 1,
        }
    }
    check.unknown = stored.keys().filter(|id| !acknowledged.contains(*id)).count() as u64;
    Ok(check)
}

/// Outbound of one channel.
#[derive(Default, Debug)]
struct OutboundCheck {
    replies_acknowledged: u64,
    replies_delivered: u64,
    replies_lost: u64,
    /// Outbox rows marked sent that the destination never saw.
    sent_unseen: u64,
    outbox_rows: u64,
    outbox_sent: u64,
    outbox_failed: u64,
    outbox_unsent: u64,
    /// Deliveries seen, and how many of them repeated a message already delivered.
    deliveries: u64,
    repeats: u64,
    /// Deliveries that could not be tied to a message of the store.
    unmatched: u64,
}

/// What one destination saw, as message ids (and the deliveries it could not name).
fn check_outbound(
    store: &Connection,
    inbox: i64,
    replies: &[i64],
    seen: &HashMap<i64, u64>,
    unmatched: u64,
) -> anyhow::Result<OutboundCheck> {
    let mut check = OutboundCheck {
        replies_acknowledged: replies.len() as u64,
        unmatched,
        deliveries: seen.values().sum::<u64>() + unmatched,
        repeats: seen.values().map(|n| n - 1).sum(),
        ..OutboundCheck::default()
    };
    for id in replies {
        if seen.contains_key(id) {
            check.replies_delivered += 1;
        } else {
            check.replies_lost += 1;
        }
    }
    let mut statement = store.prepare("SELECT message_id, status FROM outbox WHERE inbox_id = ?1")?;
    for row in statement.query_map([inbox], |row| Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?)))? {
        let (message, status) = row?;
        check.outbox_rows += 1;
        match status.as_str() {
            "sent" => {
                check.outbox_sent += 1;
                if !seen.contains_key(&message) {
                    check.sent_unseen += 1;
                }
            }
            "failed" => check.outbox_failed += 1,
            _ => check.outbox_unsent += 1,
        }
    }
    Ok(check)
}

/// The message id in our Message-ID, `switchboard.<conversation>.<message>@<domain>`.
fn our_message_id(raw: &[u8]) -> Option<i64> {
    let text = String::from_utf8_lossy(raw);
    let header = text
        .lines()
        .take_while(|line| !line.is_empty())
        .find(|line| line.to_ascii_lowercase().starts_with("message-id:"))?;
    let id = header.split_once(':')?.1.trim().trim_matches(['<', '>']);
    let local = id.split('@').next()?.strip_prefix("switchboard.")?;
    local.split('.').nth(1)?.parse().ok()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = Options::parse()?;
    let binary = match &options.daemon {
        Some(binary) => binary.clone(),
        None => daemon::daemon_binary()?,
    };
    let secret = Arc::new(Secret::parse(SECRET).map_err(anyhow::Error::msg)?);
    let dovecot = Arc::new(Dovecot::start().await);
    let relay = SmtpRelay::start(&dovecot).await;
    let fake = Arc::new(FakeTelegram::start().await);
    fake.add_bot(TOKEN, BOT_ID, "SoakBot");
    let (receiver, callbacks) = start_receiver().await?;
    let dir = tempfile::tempdir()?;
    std::fs::write(
        dir.path().join("switchboard.toml"),
        config(dir.path(), receiver, &dovecot, &relay, &fake)?,
    )?;
    let database = dir.path().join("switchboard.db");

    let started = Instant::now();
    let mut daemon = Daemon::start_existing(&binary, dir.path()).await?;
    let agent = daemon.agent("soak", "support")?;
    let inboxes = inbox_ids(&open_store(&database)?)?;
    let ledger: Shared = Arc::new(Mutex::new(Ledger::default()));
    let mails = Arc::new(Mutex::new(Mails::default()));
    let mut restarts_ms: Vec<f64> = Vec::new();
    let mut kill_after_ms: Vec<f64> = Vec::new();

    for cycle in 0..options.cycles {
        let stop = CancellationToken::new();
        let address = daemon.process.address;
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..options.webhook_clients {
            tasks.spawn(webhook_client(
                address,
                Arc::clone(&secret),
                Arc::clone(&ledger),
                stop.clone(),
            ));
        }
        tasks.spawn(mail_source(
            Arc::clone(&dovecot),
            Arc::clone(&ledger),
            Arc::clone(&mails),
            stop.clone(),
        ));
        tasks.spawn(telegram_source(Arc::clone(&fake), Arc::clone(&ledger), stop.clone()));
        tasks.spawn(reply_source(
            address,
            database.clone(),
            inboxes.clone(),
            agent.clone(),
            Arc::clone(&ledger),
            stop.clone(),
        ));
        let span = options.max_ms - options.min_ms;
        let after = Duration::from_millis(options.min_ms + mix(options.seed << 32 ^ cycle as u64) % (span + 1));
        kill_after_ms.push(after.as_secs_f64() * 1000.0);
        tokio::time::sleep(after).await;
        // SIGKILL while the load is in flight: dropping the process kills it with -9.
        drop(daemon);
        stop.cancel();
        while tasks.join_next().await.is_some() {}
        let restarting = Instant::now();
        daemon = Daemon::start_existing(&binary, dir.path())
            .await
            .with_context(|| format!("restarting after kill {}", cycle + 1))?;
        restarts_ms.push(restarting.elapsed().as_secs_f64() * 1000.0);
        if (cycle + 1) % 10 == 0 || cycle + 1 == options.cycles {
            let ledger = ledger.lock().unwrap();
            eprintln!(
                "soak: {} of {} kills, {} webhook acknowledged, {} mails, {} updates, {} replies, {:.0} s",
                cycle + 1,
                options.cycles,
                ledger.webhook_acked.len(),
                ledger.mails.len(),
                ledger.updates.len(),
                ledger.replies.len(),
                started.elapsed().as_secs_f64()
            );
        }
    }
    let load_seconds = started.elapsed().as_secs_f64();

    // The senders' last retries, on the daemon that now runs undisturbed.
    let address = daemon.process.address;
    let settle_started = Instant::now();
    loop {
        let pending = std::mem::take(&mut ledger.lock().unwrap().webhook_unacked);
        if pending.is_empty() {
            break;
        }
        for posted in pending {
            post_webhook(address, &secret, &ledger, posted).await;
        }
        if settle_started.elapsed() > SETTLE_DEADLINE {
            bail!("webhook messages still unanswered after {SETTLE_DEADLINE:?}");
        }
    }

    // Then whatever the daemon owes: every inbound stored, the fake's queue confirmed,
    // the outbox empty. Polled; what is still missing at the deadline is reported below.
    let (webhook_expected, mails_expected, updates_expected) = {
        let ledger = ledger.lock().unwrap();
        (
            ledger.webhook_acked.len() as u64,
            ledger.mails.len() as u64,
            ledger.updates.len() as u64,
        )
    };
    let store = open_store(&database)?;
    let inbound = |channel: Channel| {
        count(
            &store,
            "SELECT COUNT(*) FROM messages WHERE inbox_id = ?1 AND direction = 'inbound'",
            [inboxes[&channel]],
        )
    };
    let mut settled = false;
    while settle_started.elapsed() < SETTLE_DEADLINE {
        if inbound(Channel::Webhook)? >= webhook_expected
            && inbound(Channel::Email)? >= mails_expected
            && inbound(Channel::Telegram)? >= updates_expected
            && fake.pending_updates(TOKEN) == 0
            && count(
                &store,
                "SELECT COUNT(*) FROM outbox WHERE status IN ('scheduled', 'in_flight')",
                [],
            )? == 0
        {
            settled = true;
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    let settle_seconds = settle_started.elapsed().as_secs_f64();
    drop(store);
    daemon.process.stop().context("stopping the daemon after the soak")?;
    let run_seconds = started.elapsed().as_secs_f64();

    // The checks, on the stopped daemon's store.
    let store = open_store(&database)?;
    let integrity: Vec<String> = store
        .prepare("PRAGMA integrity_check")?
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    let integrity = integrity.join("; ");
    let ledger = ledger.lock().unwrap();

    let mails_acked: HashSet<String> = ledger.mails.iter().cloned().collect();
    let updates_acked: HashSet<String> = ledger
        .updates
        .iter()
        .map(|(chat, message)| format!("{chat}:{message}"))
        .collect();
    let inbound_checks = [
        (
            Channel::Webhook,
            check_inbound(&store, inboxes[&Channel::Webhook], &ledger.webhook_acked)?,
        ),
        (
            Channel::Email,
            check_inbound(&store, inboxes[&Channel::Email], &mails_acked)?,
        ),
        (
            Channel::Telegram,
            check_inbound(&store, inboxes[&Channel::Telegram], &updates_acked)?,
        ),
    ];

    // What each destination saw, by the daemon's message id.
    let mut seen: HashMap<Channel, HashMap<i64, u64>> = HashMap::new();
    let mut unmatched: HashMap<Channel, u64> = HashMap::new();
    for id in callbacks.ids.lock().unwrap().iter() {
        match id.strip_prefix("msg_").and_then(|id| id.parse::<i64>().ok()) {
            Some(message) => *seen.entry(Channel::Webhook).or_default().entry(message).or_default() += 1,
            None => *unmatched.entry(Channel::Webhook).or_default() += 1,
        }
    }
    for raw in relay.sent() {
        match our_message_id(&raw) {
            Some(message) => *seen.entry(Channel::Email).or_default().entry(message).or_default() += 1,
            None => *unmatched.entry(Channel::Email).or_default() += 1,
        }
    }
    // Telegram's sendMessage carries no id of ours: a text names its message within its
    // chat (every reply's text is unique; a conversation has one acknowledgement).
    let mut by_text: HashMap<(String, String), Vec<i64>> = HashMap::new();
    let mut statement = store.prepare(
        "SELECT m.id, i.external_id, m.text FROM messages m
         JOIN conversations c ON c.id = m.conversation_id
         JOIN contact_identities i ON i.id = c.identity_id
         WHERE m.inbox_id = ?1 AND m.direction = 'outbound'",
    )?;
    for row in statement.query_map([inboxes[&Channel::Telegram]], |row| {
        Ok((
            row.get::<_, i64>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, String>(2)?,
        ))
    })? {
        let (id, chat, text) = row?;
        by_text.entry((chat, text)).or_default().push(id);
    }
    drop(statement);
    let mut ambiguous = 0u64;
    for call in fake.calls_to(TOKEN, "sendMessage").iter().filter(|call| call.ok()) {
        let key = (
            call.chat_id().map(|chat| chat.to_string()).unwrap_or_default(),
            call.text().unwrap_or_default(),
        );
        match by_text.get(&key).map(Vec::as_slice) {
            Some([message]) => *seen.entry(Channel::Telegram).or_default().entry(*message).or_default() += 1,
            Some([first, ..]) => {
                ambiguous += 1;
                *seen.entry(Channel::Telegram).or_default().entry(*first).or_default() += 1;
            }
            _ => *unmatched.entry(Channel::Telegram).or_default() += 1,
        }
    }
    let mut outbound_checks = Vec::new();
    for channel in Channel::ALL {
        let replies: Vec<i64> = ledger
            .replies
            .iter()
            .filter(|(_, c)| *c == channel)
            .map(|(id, _)| *id)
            .collect();
        let check = check_outbound(
            &store,
            inboxes[&channel],
            &replies,
            seen.get(&channel).unwrap_or(&HashMap::new()),
            unmatched.get(&channel).copied().unwrap_or(0),
        )?;
        outbound_checks.push((channel, check));
    }
    // An acknowledgement doubled under a new id would be a second status update in its
    // conversation (these conversations are never resolved, so only `received` is due).
    let conversations = count(&store, "SELECT COUNT(*) FROM conversations", [])?;
    let without_ack = count(
        &store,
        "SELECT COUNT(*) FROM conversations c WHERE NOT EXISTS
           (SELECT 1 FROM messages m WHERE m.conversation_id = c.id AND m.kind = 'status_update')",
        [],
    )?;
    let extra_acks = count(
        &store,
        "SELECT COALESCE(SUM(n - 1), 0) FROM
           (SELECT COUNT(*) AS n FROM messages WHERE kind = 'status_update' GROUP BY conversation_id)",
        [],
    )?;
    let reply_rows = count(&store, "SELECT COUNT(*) FROM messages WHERE kind = 'reply'", [])?;
    // Each request stores at most one reply: more rows than requests would be a reply
    // doubled under a new id (a cut request may have committed or not).
    let replies_requested = ledger.replies.len() as u64 + ledger.replies_unacked;
    let replies_doubled = reply_rows.saturating_sub(replies_requested);

    let mut restarts = restarts_ms.clone();
    restarts.sort_by(f64::total_cmp);
    let lost_inbound: u64 = inbound_checks.iter().map(|(_, c)| c.lost).sum();
    let doubled_inbound: u64 = inbound_checks.iter().map(|(_, c)| c.doubled + c.unknown).sum();
    let lost_outbound: u64 = outbound_checks
        .iter()
        .map(|(_, c)| c.replies_lost + c.sent_unseen + c.outbox_failed + c.outbox_unsent)
        .sum();
    let unmatched_total: u64 = outbound_checks.iter().map(|(_, c)| c.unmatched).sum::<u64>() + ambiguous;
    let ok = settled
        && integrity == "ok"
        && lost_inbound == 0
        && doubled_inbound == 0
        && lost_outbound == 0
        && unmatched_total == 0
        && without_ack == 0
        && extra_acks == 0
        && replies_doubled == 0
        && reply_rows >= ledger.replies.len() as u64;

    println!(
        "crash soak: {} kill -9 cycles in {:.0} s ({:.0} s of load, {:.1} s to settle{}), seed {}",
        options.cycles,
        run_seconds,
        load_seconds,
        settle_seconds,
        if settled { "" } else { ", NOT SETTLED by the deadline" },
        options.seed
    );
    println!(
        "  killed after p50 {:.0} ms (min {:.0}, max {:.0}); restart to ready p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        quantile(
            &{
                let mut k = kill_after_ms.clone();
                k.sort_by(f64::total_cmp);
                k
            },
            0.5
        ),
        kill_after_ms.iter().copied().fold(f64::INFINITY, f64::min),
        kill_after_ms.iter().copied().fold(0.0, f64::max),
        quantile(&restarts, 0.5),
        quantile(&restarts, 0.99),
        quantile(&restarts, 1.0),
    );
    println!("  inbound     acknowledged   stored     lost  doubled  unknown");
    for (channel, check) in &inbound_checks {
        println!(
            "  {:<9} {:>14} {:>8} {:>8} {:>8} {:>8}",
            channel.name(),
            check.acknowledged,
            check.stored,
            check.lost,
            check.doubled,
            check.unknown
        );
    }
    println!(
        "  webhook answers other than 202/200: {:?}; requests cut by a kill: {} (all sent again with the same id)",
        ledger.webhook_other_status, ledger.webhook_errors
    );
    println!(
        "  outbound    replies 201  delivered  lost  outbox rows  sent  failed  unsent  sent-unseen  deliveries  repeats  unmatched"
    );
    for (channel, check) in &outbound_checks {
        println!(
            "  {:<9} {:>13} {:>10} {:>5} {:>12} {:>5} {:>7} {:>7} {:>12} {:>11} {:>8} {:>10}",
            channel.name(),
            check.replies_acknowledged,
            check.replies_delivered,
            check.replies_lost,
            check.outbox_rows,
            check.outbox_sent,
            check.outbox_failed,
            check.outbox_unsent,
            check.sent_unseen,
            check.deliveries,
            check.repeats,
            check.unmatched
        );
    }
    println!(
        "  replies not answered 201 (cut by a kill): {}; reply rows stored: {reply_rows} (beyond the requests: {replies_doubled}); telegram texts matching several messages: {ambiguous}",
        ledger.replies_unacked
    );
    println!(
        "  conversations {conversations}: without an acknowledgement {without_ack}, acknowledgements beyond one {extra_acks}"
    );
    println!("  PRAGMA integrity_check: {integrity}");
    println!(
        "  {}",
        if ok {
            "nothing acknowledged was lost or doubled"
        } else {
            "FAILED"
        }
    );

    let inbound_json: Value = inbound_checks
        .iter()
        .map(|(channel, c)| {
            (
                channel.name().to_owned(),
                json!({"acknowledged": c.acknowledged, "stored": c.stored, "lost": c.lost, "doubled": c.doubled, "unknown": c.unknown}),
            )
        })
        .collect::<serde_json::Map<_, _>>()
        .into();
    let outbound_json: Value = outbound_checks
        .iter()
        .map(|(channel, c)| {
            (
                channel.name().to_owned(),
                json!({
                    "replies_acknowledged": c.replies_acknowledged, "replies_delivered": c.replies_delivered,
                    "replies_lost": c.replies_lost, "outbox_rows": c.outbox_rows, "outbox_sent": c.outbox_sent,
                    "outbox_failed": c.outbox_failed, "outbox_unsent": c.outbox_unsent, "sent_unseen": c.sent_unseen,
                    "deliveries": c.deliveries, "repeats_same_id": c.repeats, "unmatched": c.unmatched,
                }),
            )
        })
        .collect::<serde_json::Map<_, _>>()
        .into();
    let report = json!({
        "cycles": options.cycles,
        "seed": options.seed,
        "run_seconds": run_seconds,
        "load_seconds": load_seconds,
        "settle_seconds": settle_seconds,
        "settled": settled,
        "restart_ready_ms": {"p50": quantile(&restarts, 0.5), "p99": quantile(&restarts, 0.99), "max": quantile(&restarts, 1.0)},
        "inbound": inbound_json,
        "webhook_other_status": ledger.webhook_other_status.iter().map(|(s, n)| (s.to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
        "webhook_requests_cut": ledger.webhook_errors,
        "outbound": outbound_json,
        "replies_unacknowledged": ledger.replies_unacked,
        "reply_rows": reply_rows,
        "replies_doubled": replies_doubled,
        "telegram_ambiguous": ambiguous,
        "conversations": conversations,
        "conversations_without_acknowledgement": without_ack,
        "acknowledgements_beyond_one": extra_acks,
        "integrity_check": integrity,
        "ok": ok,
    });
    if let Some(folder) = options.json.parent() {
        std::fs::create_dir_all(folder)?;
    }
    std::fs::write(&options.json, serde_json::to_vec_pretty(&report)?)?;
    println!("\nfigures written to {}", options.json.display());
    if !ok {
        // Kept for the investigation: the store, its config and the daemon's files.
        let kept = dir.keep();
        bail!(
            "the soak found something lost, doubled or damaged (see above); the store is kept in {}",
            kept.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_message_id_names_the_message() {
        let raw = b"From: a@b\r\nMessage-ID: <switchboard.12.345@test.local>\r\n\r\nbody";
        assert_eq!(our_message_id(raw), Some(345));
        assert_eq!(our_message_id(b"Message-ID: <abc@x>\r\n\r\n"), None);
    }

    /// The columns the checks read, as the daemon's migrations name them.
    fn store() -> Connection {
        let store = Connection::open_in_memory().unwrap();
        store
            .execute_batch(
                "CREATE TABLE messages (id INTEGER PRIMARY KEY, inbox_id INTEGER, direction TEXT, external_id TEXT);
                 CREATE TABLE outbox (message_id INTEGER, inbox_id INTEGER, status TEXT);",
            )
            .unwrap();
        store
    }

    #[test]
    fn an_acknowledged_message_missing_or_stored_twice_is_counted() {
        let store = store();
        store
            .execute_batch(
                "INSERT INTO messages (inbox_id, direction, external_id) VALUES
                   (1, 'inbound', 'a'), (1, 'inbound', '<b>'), (1, 'inbound', 'b'), (1, 'inbound', 'x'),
                   (2, 'inbound', 'c'), (1, 'outbound', 'c');",
            )
            .unwrap();
        let acknowledged: HashSet<String> = ["a", "b", "c"].map(String::from).into();
        let check = check_inbound(&store, 1, &acknowledged).unwrap();
        assert_eq!((check.stored, check.lost, check.doubled, check.unknown), (4, 1, 1, 1));
    }

    #[test]
    fn a_reply_or_sent_row_its_destination_never_saw_is_lost_and_a_second_delivery_a_repeat() {
        let store = store();
        store
            .execute_batch(
                "INSERT INTO outbox (message_id, inbox_id, status) VALUES
                   (10, 1, 'sent'), (11, 1, 'sent'), (12, 1, 'failed'), (13, 1, 'scheduled'), (14, 2, 'sent');",
            )
            .unwrap();
        let seen = HashMap::from([(10, 2)]);
        let check = check_outbound(&store, 1, &[10, 11], &seen, 0).unwrap();
        assert_eq!((check.replies_delivered, check.replies_lost), (1, 1));
        assert_eq!(
            (
                check.outbox_sent,
                check.sent_unseen,
                check.outbox_failed,
                check.outbox_unsent
            ),
            (2, 1, 1, 1)
        );
        assert_eq!((check.deliveries, check.repeats), (2, 1));
    }
}
