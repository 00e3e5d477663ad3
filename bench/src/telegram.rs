//! Telegram: agents' replies leaving through one bot, against a fake Bot API on loopback
//! that records when each `sendMessage` reached it. The daemon's sender keeps Telegram's
//! limits itself (at least `chat_interval` between two messages to one private chat, at
//! most `bot_per_second` messages a second for the bot), so a burst of replies must come
//! out smoothed; the fake does not enforce the limits (it answers 429 only when told
//! to), so what shows they held is its timestamps.
//!
//! Two cases, each on a fresh daemon, fake and store, acknowledgements on as shipped:
//!
//! - **One chat.** A customer writes once; once the acknowledgement has left, N agent
//!   replies to that conversation are posted back to back. Timed until the last reached
//!   the fake; reported: the gaps between consecutive messages to the chat
//!   (acknowledgement included), whether they arrived in order, 429s. With the default
//!   interval of 1 s, 300 replies take five minutes: that is the limit being held.
//! - **Many chats.** M customers write at once: M conversations, M acknowledgements
//!   (the first burst). Once those have left, one reply to each conversation is posted,
//!   by 16 clients side by side (the second burst). Reported for each burst and for the bot's sends
//!   overall: the most sends in any 1-second window, the shortest time in which
//!   `bot_per_second + 1` sends went out (at least 1 s if the limit held), the rate.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use rusqlite::{Connection, OpenFlags};
use serde_json::{Value, json};
use switchboard_test_telegram::{Call, FakeTelegram, private_text};

use crate::daemon::Daemon;
use crate::load;

/// Replies to the one chat, and chats in the other case, by default.
pub const REPLIES: usize = 300;
pub const CHATS: usize = 300;
const TOKEN: &str = "5000000001:AAHfake-token-for-the-shop-help-bot";
const BOT_ID: i64 = 5_000_000_001;
/// The limits the daemon is configured with: its defaults, Telegram's published ones.
const CHAT_INTERVAL: Duration = Duration::from_secs(1);
pub const BOT_PER_SECOND: usize = 30;
/// The one chat's customer; the many chats' are numbered from `FIRST_CUSTOMER`.
const CUSTOMER: i64 = 424_242;
const FIRST_CUSTOMER: i64 = 700_000_000;
const POLL: Duration = Duration::from_millis(20);
/// Replies posted side by side in the many-chats case.
const POSTERS: usize = 16;
/// The reply each of the many chats gets.
const MANY_REPLY: &str = "Your order left our warehouse this morning.";

/// Gaps between consecutive messages to one chat.
pub struct OneChat {
    pub replies: usize,
    /// Successful `sendMessage` calls to the chat: the acknowledgement and the replies.
    pub sent: usize,
    /// The replies, in the order they were posted, arrived in that order.
    pub in_order: bool,
    /// Posting all replies to the API (each answered 201).
    pub posting_seconds: f64,
    /// From the first reply posted until the last one reached the fake.
    pub seconds: f64,
    /// Between consecutive messages to the chat, sorted, in milliseconds.
    pub gaps_ms: Vec<f64>,
    pub too_many_requests: usize,
    pub failed_calls: usize,
    pub peak_rss_mib: f64,
}

impl OneChat {
    fn gap(&self, quantile: f64) -> f64 {
        quantile_of(&self.gaps_ms, quantile)
    }

    pub fn min_gap_ms(&self) -> f64 {
        self.gap(0.0)
    }

    pub fn median_gap_ms(&self) -> f64 {
        self.gap(0.5)
    }

    pub fn max_gap_ms(&self) -> f64 {
        self.gap(1.0)
    }

    /// Messages per second to the chat over the replies' run.
    pub fn per_second(&self) -> f64 {
        self.replies as f64 / self.seconds
    }

    fn to_json(&self) -> Value {
        json!({
            "replies": self.replies,
            "sent_to_the_chat": self.sent,
            "in_order": self.in_order,
            "posting_seconds": self.posting_seconds,
            "seconds": self.seconds,
            "seconds_at_exactly_the_interval": (self.replies.saturating_sub(1)) as f64 * CHAT_INTERVAL.as_secs_f64(),
            "per_second": self.per_second(),
            "gap_ms": {
                "min": self.min_gap_ms(),
                "p1": self.gap(0.01),
                "median": self.median_gap_ms(),
                "p99": self.gap(0.99),
                "max": self.max_gap_ms(),
            },
            "gaps_under_interval": self.gaps_ms.iter().filter(|gap| **gap < CHAT_INTERVAL.as_secs_f64() * 1000.0).count(),
            "too_many_requests": self.too_many_requests,
            "failed_calls": self.failed_calls,
            "peak_rss_mib": self.peak_rss_mib,
        })
    }
}

/// One burst of sends by the bot, as the fake saw it.
pub struct Burst {
    pub sent: usize,
    /// From the burst's cause (the first update pushed, the first reply posted) until the
    /// last message reached the fake.
    pub seconds: f64,
    /// Between the first and the last message to reach the fake.
    pub sending_seconds: f64,
    pub max_in_one_second: usize,
    /// The shortest time in which `BOT_PER_SECOND + 1` messages reached the fake.
    pub shortest_span_ms: Option<f64>,
    /// Between consecutive messages, sorted, in milliseconds.
    pub gaps_ms: Vec<f64>,
}

impl Burst {
    fn of(times: &[Instant], cause: Instant) -> Burst {
        let sending_seconds = match (times.first(), times.last()) {
            (Some(first), Some(last)) => last.duration_since(*first).as_secs_f64(),
            _ => 0.0,
        };
        Burst {
            sent: times.len(),
            seconds: times
                .last()
                .map_or(0.0, |last| last.duration_since(cause).as_secs_f64()),
            sending_seconds,
            max_in_one_second: max_in_window(times, Duration::from_secs(1)),
            shortest_span_ms: shortest_span(times, BOT_PER_SECOND + 1).map(|span| span.as_secs_f64() * 1000.0),
            gaps_ms: gaps_ms(times),
        }
    }

    /// Messages per second between the first and the last.
    pub fn per_second(&self) -> f64 {
        if self.sending_seconds > 0.0 {
            (self.sent - 1) as f64 / self.sending_seconds
        } else {
            0.0
        }
    }

    fn to_json(&self) -> Value {
        json!({
            "sent": self.sent,
            "seconds": self.seconds,
            "sending_seconds": self.sending_seconds,
            "per_second": self.per_second(),
            "max_in_any_1s_window": self.max_in_one_second,
            "shortest_span_of_31_sends_ms": self.shortest_span_ms,
            "gap_ms": {
                "min": quantile_of(&self.gaps_ms, 0.0),
                "p1": quantile_of(&self.gaps_ms, 0.01),
                "median": quantile_of(&self.gaps_ms, 0.5),
                "p99": quantile_of(&self.gaps_ms, 0.99),
                "max": quantile_of(&self.gaps_ms, 1.0),
            },
        })
    }
}

/// Many chats, one reply each.
pub struct ManyChats {
    pub chats: usize,
    /// Writing to the fake's update queue until the last acknowledgement left.
    pub acknowledgements: Burst,
    pub replies: Burst,
    /// All the bot's messages, both bursts.
    pub all: Burst,
    pub posting_seconds: f64,
    /// Chats that received exactly the acknowledgement and the reply, in that order.
    pub chats_complete: usize,
    pub too_many_requests: usize,
    pub failed_calls: usize,
    pub peak_rss_mib: f64,
}

impl ManyChats {
    fn to_json(&self) -> Value {
        json!({
            "chats": self.chats,
            "acknowledgements": self.acknowledgements.to_json(),
            "replies": self.replies.to_json(),
            "posting_seconds": self.posting_seconds,
            "all_sends": self.all.to_json(),
            "chats_complete": self.chats_complete,
            "too_many_requests": self.too_many_requests,
            "failed_calls": self.failed_calls,
            "peak_rss_mib": self.peak_rss_mib,
        })
    }
}

pub struct TelegramFigures {
    pub one_chat: OneChat,
    pub many_chats: ManyChats,
}

impl TelegramFigures {
    pub fn peak_rss_mib(&self) -> f64 {
        self.one_chat.peak_rss_mib.max(self.many_chats.peak_rss_mib)
    }

    pub fn to_json(&self) -> Value {
        json!({
            "description": "agents' replies through one Telegram bot to a fake Bot API that records when each sendMessage arrived: N replies posted at once to one private chat, then one reply to each of M private chats posted at once (after their M acknowledgements); the daemon's limits as shipped (1 s per private chat, 30/s per bot); acknowledgements on",
            "limits": {
                "chat_interval_ms": CHAT_INTERVAL.as_millis() as u64,
                "bot_per_second": BOT_PER_SECOND,
            },
            "acknowledgements": true,
            "one_chat": self.one_chat.to_json(),
            "many_chats": self.many_chats.to_json(),
            "peak_rss_mib": self.peak_rss_mib(),
        })
    }
}

/// The value at `quantile` of sorted `values` (nearest rank), 0 when empty.
fn quantile_of(values: &[f64], quantile: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let index = ((values.len() - 1) as f64 * quantile).round() as usize;
    values[index.min(values.len() - 1)]
}

/// The gaps between consecutive sorted `times`, sorted, in milliseconds.
fn gaps_ms(times: &[Instant]) -> Vec<f64> {
    let mut gaps: Vec<f64> = times
        .windows(2)
        .map(|pair| pair[1].duration_since(pair[0]).as_secs_f64() * 1000.0)
        .collect();
    gaps.sort_by(f64::total_cmp);
    gaps
}

/// The most of sorted `times` in any window `[t, t + window)`.
fn max_in_window(times: &[Instant], window: Duration) -> usize {
    let mut most = 0;
    let mut end = 0;
    for (start, at) in times.iter().enumerate() {
        while end < times.len() && times[end] < *at + window {
            end += 1;
        }
        most = most.max(end - start);
    }
    most
}

/// The shortest time from the first to the last of `count` consecutive sorted `times`.
fn shortest_span(times: &[Instant], count: usize) -> Option<Duration> {
    times
        .windows(count)
        .map(|run| run[count - 1].duration_since(run[0]))
        .min()
}

/// The daemon's config: one Telegram inbox polling the fake; the shipped defaults
/// otherwise (acknowledgements on, the sender's limits), loopback only.
fn config(dir: &Path, fake: &FakeTelegram) -> anyhow::Result<String> {
    let token_file = dir.join("bot.token");
    std::fs::write(&token_file, format!("{TOKEN}\n"))?;
    Ok(crate::daemon::config_with(
        &dir.join("switchboard.db"),
        &format!(
            r#"
[inboxes.shop-bot]
name = "Shop bot"

[inboxes.shop-bot.telegram]
token_file = "{token_file}"
api_url = "{api}"
poll_timeout = "5s"
"#,
            token_file = token_file.display(),
            api = fake.url().trim_end_matches('/'),
        ),
    ))
}

/// A fake with the bot, and a daemon polling it, with an agent's token.
struct Setup {
    fake: FakeTelegram,
    daemon: Daemon,
    agent: String,
    _dir: tempfile::TempDir,
}

async fn start(binary: &Path) -> anyhow::Result<Setup> {
    let fake = FakeTelegram::start().await;
    fake.add_bot(TOKEN, BOT_ID, "ShopHelpBot");
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("switchboard.toml"), config(dir.path(), &fake)?)?;
    let daemon = Daemon::start_existing(binary, dir.path()).await?;
    let agent = daemon.agent("bench", "support")?;
    // The reader is waiting on a held getUpdates before anything is pushed.
    until("the daemon's first getUpdates", Duration::from_secs(30), || {
        Ok(fake.polls_in_flight(TOKEN) > 0)
    })
    .await?;
    Ok(Setup {
        fake,
        daemon,
        agent,
        _dir: dir,
    })
}

/// Polls `done` until it holds.
async fn until(what: &str, deadline: Duration, mut done: impl FnMut() -> anyhow::Result<bool>) -> anyhow::Result<()> {
    let started = Instant::now();
    while !done()? {
        if started.elapsed() > deadline {
            bail!("timed out after {deadline:?} waiting for {what}");
        }
        tokio::time::sleep(POLL).await;
    }
    Ok(())
}

/// The daemon's conversations, from its store opened read-only.
fn conversation_ids(database: &Path) -> anyhow::Result<Vec<i64>> {
    let store = Connection::open_with_flags(database, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("opening {} read-only", database.display()))?;
    let mut statement = store.prepare("SELECT id FROM conversations ORDER BY id")?;
    let ids = statement
        .query_map([], |row| row.get(0))?
        .collect::<Result<Vec<i64>, _>>()?;
    Ok(ids)
}

/// Posts an agent's reply; the daemon answers 201 once it is stored and queued.
async fn reply(address: SocketAddr, agent: &str, conversation: i64, text: &str) -> anyhow::Result<()> {
    let request = Request::post(format!("/api/v1/conversations/{conversation}/messages"))
        .header("host", address.to_string())
        .header("authorization", format!("Bearer {agent}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(json!({ "text": text }).to_string())))?;
    match load::fetch(address, request).await {
        Ok((status, _)) if status == hyper::StatusCode::CREATED => Ok(()),
        Ok((status, body)) => bail!(
            "reply to conversation {conversation}: HTTP {status}: {}",
            String::from_utf8_lossy(&body)
        ),
        Err(error) => bail!("reply to conversation {conversation}: {error}"),
    }
}

/// The bot's `sendMessage` calls: the successful ones sorted by arrival, the 429s, and
/// the other failures.
fn sends(fake: &FakeTelegram) -> (Vec<Call>, usize, usize) {
    let calls = fake.calls_to(TOKEN, "sendMessage");
    let too_many = calls.iter().filter(|call| call.status == 429).count();
    let failed = calls.iter().filter(|call| !call.ok() && call.status != 429).count();
    let mut sent: Vec<Call> = calls.into_iter().filter(Call::ok).collect();
    sent.sort_by_key(|call| call.at);
    (sent, too_many, failed)
}

/// A generous bound for `sends` messages kept `spacing` apart: a debug daemon on a busy machine.
fn deadline(sends: usize, spacing: Duration) -> Duration {
    Duration::from_secs(60) + spacing * 2 * u32::try_from(sends).unwrap_or(u32::MAX / 4)
}

fn reply_text(index: usize, count: usize) -> String {
    format!("Reply {} of {count}: we are looking into your order.", index + 1)
}

async fn one_chat(binary: &Path, replies: usize) -> anyhow::Result<OneChat> {
    let setup = start(binary).await?;
    let (fake, daemon) = (&setup.fake, &setup.daemon);
    fake.push_update(TOKEN, private_text(CUSTOMER, 1, "Where is my order 4711?"));
    until("the acknowledgement", Duration::from_secs(30), || {
        Ok(fake.sent_messages(TOKEN).len() == 1)
    })
    .await?;
    let conversations = conversation_ids(&daemon.database())?;
    ensure!(
        conversations.len() == 1,
        "{} conversations for one customer",
        conversations.len()
    );
    let conversation = conversations[0];

    let started = Instant::now();
    for index in 0..replies {
        reply(
            daemon.process.address,
            &setup.agent,
            conversation,
            &reply_text(index, replies),
        )
        .await?;
    }
    let posting_seconds = started.elapsed().as_secs_f64();
    // The acknowledgement, then the replies.
    until(
        &format!("{replies} replies to reach the chat"),
        deadline(replies, CHAT_INTERVAL),
        || Ok(sends(fake).0.len() > replies),
    )
    .await?;
    let peak_rss_mib = daemon.process.rss_mib().1;
    let (sent, too_many_requests, failed_calls) = sends(fake);
    ensure!(
        sent.iter().all(|call| call.chat_id() == Some(CUSTOMER)),
        "a message left for another chat"
    );
    let texts: Vec<String> = sent.iter().skip(1).filter_map(Call::text).collect();
    let in_order = texts.len() == replies
        && texts
            .iter()
            .enumerate()
            .all(|(i, text)| *text == reply_text(i, replies));
    let last = sent.last().context("nothing sent")?.at;
    let gaps_ms = gaps_ms(&sent.iter().map(|call| call.at).collect::<Vec<_>>());
    setup.daemon.process.stop()?;
    Ok(OneChat {
        replies,
        sent: sent.len(),
        in_order,
        posting_seconds,
        seconds: last.duration_since(started).as_secs_f64(),
        gaps_ms,
        too_many_requests,
        failed_calls,
        peak_rss_mib,
    })
}

async fn many_chats(binary: &Path, chats: usize) -> anyhow::Result<ManyChats> {
    let setup = start(binary).await?;
    let (fake, daemon) = (&setup.fake, &setup.daemon);
    let spacing = Duration::from_secs(1) / BOT_PER_SECOND as u32;

    let writing = Instant::now();
    for index in 0..chats {
        fake.push_update(
            TOKEN,
            private_text(FIRST_CUSTOMER + index as i64, 1, "Where is my order?"),
        );
    }
    until(&format!("{chats} acknowledgements"), deadline(chats, spacing), || {
        Ok(sends(fake).0.len() >= chats)
    })
    .await?;
    let conversations = conversation_ids(&daemon.database())?;
    ensure!(
        conversations.len() == chats,
        "{} conversations for {chats} customers",
        conversations.len()
    );

    // Posted by `POSTERS` agents side by side: 300 connections opened at once made
    // the posting take a second once in two runs here, where it takes 0.1 s.
    let posting = Instant::now();
    let agent = Arc::new(setup.agent.clone());
    let mut posts = tokio::task::JoinSet::new();
    for poster in 0..POSTERS {
        let mine: Vec<i64> = conversations.iter().copied().skip(poster).step_by(POSTERS).collect();
        let agent = Arc::clone(&agent);
        let address = daemon.process.address;
        posts.spawn(async move {
            for conversation in mine {
                reply(address, &agent, conversation, MANY_REPLY).await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(posted) = posts.join_next().await {
        posted??;
    }
    let posting_seconds = posting.elapsed().as_secs_f64();
    until(&format!("{chats} replies"), deadline(chats, spacing), || {
        Ok(sends(fake).0.len() >= 2 * chats)
    })
    .await?;
    let peak_rss_mib = daemon.process.rss_mib().1;
    let (sent, too_many_requests, failed_calls) = sends(fake);
    let is_reply = |call: &Call| call.text().as_deref() == Some(MANY_REPLY);
    let acknowledgement_times: Vec<Instant> = sent.iter().filter(|c| !is_reply(c)).map(|c| c.at).collect();
    let reply_times: Vec<Instant> = sent.iter().filter(|c| is_reply(c)).map(|c| c.at).collect();
    let all_times: Vec<Instant> = sent.iter().map(|c| c.at).collect();
    let chats_complete = (0..chats)
        .filter(|index| {
            let chat = FIRST_CUSTOMER + *index as i64;
            let to_chat: Vec<&Call> = sent.iter().filter(|c| c.chat_id() == Some(chat)).collect();
            to_chat.len() == 2 && !is_reply(to_chat[0]) && is_reply(to_chat[1])
        })
        .count();
    setup.daemon.process.stop()?;
    Ok(ManyChats {
        chats,
        acknowledgements: Burst::of(&acknowledgement_times, writing),
        replies: Burst::of(&reply_times, posting),
        all: Burst::of(&all_times, writing),
        posting_seconds,
        chats_complete,
        too_many_requests,
        failed_calls,
        peak_rss_mib,
    })
}

pub async fn run(binary: &Path, replies: usize, chats: usize) -> anyhow::Result<TelegramFigures> {
    ensure!(
        replies > 0 && chats > 0,
        "the Telegram scenario needs at least one reply and one chat"
    );
    let many_chats = many_chats(binary, chats).await?;
    let one_chat = one_chat(binary, replies).await?;
    Ok(TelegramFigures { one_chat, many_chats })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(start: Instant, ms: &[u64]) -> Vec<Instant> {
        ms.iter().map(|ms| start + Duration::from_millis(*ms)).collect()
    }

    #[test]
    fn windows_are_half_open() {
        let start = Instant::now();
        assert_eq!(
            max_in_window(&at(start, &[0, 500, 1000, 1500]), Duration::from_secs(1)),
            2
        );
        assert_eq!(
            max_in_window(&at(start, &[0, 10, 20, 999, 2000]), Duration::from_secs(1)),
            4
        );
        assert_eq!(max_in_window(&[], Duration::from_secs(1)), 0);
        assert_eq!(
            shortest_span(&at(start, &[0, 400, 500, 1400]), 2),
            Some(Duration::from_millis(100))
        );
        assert_eq!(shortest_span(&at(start, &[0]), 2), None);
    }

    #[test]
    fn quantiles_take_the_nearest_rank() {
        let values = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(quantile_of(&values, 0.0), 1.0);
        assert_eq!(quantile_of(&values, 0.5), 3.0);
        assert_eq!(quantile_of(&values, 1.0), 5.0);
        assert_eq!(quantile_of(&[], 0.5), 0.0);
    }
}
