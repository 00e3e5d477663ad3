//! # switchboard-bench
//!
//! Starts the real daemon (the release binary, or `--daemon PATH`) on loopback with a fresh store for each
//! scenario, drives it, prints a table and writes the same figures as JSON. Three scenarios, `routing`,
//! `scheduler` and `updates`, measure the daemon's library in this process instead.
//!
//! - `load`: the HTTP load generator (closed-loop or paced) and its latency histograms.
//! - `workloads`: signed customer messages, agents' queue queries, 50 routing rules.
//! - `daemon`: the daemon and bare-endpoint processes, their RSS, the benchmark config.
//! - `desk`: `--store`: a scenario's daemons on SQLite, or one or two on a private PostgreSQL
//!   cluster with durable commits; their CPU and PostgreSQL's per message.
//! - `bare`: the bare endpoint (this program run as `switchboard-bench bare-endpoint`).
//! - `receiver`: the callback receiver that times acknowledgements.
//! - `scenarios`: ingest against both servers, mixed load, end-to-end.
//! - `scale`: a million messages seeded into the store, then list and detail queries,
//!   conversation search and contact look-ups.
//! - `email`: a Dovecot mailbox imported on the daemon's first start, then mail over IMAP IDLE.
//! - `telegram`: agents' replies through a bot to a fake Bot API that times them: 300 to one chat (five
//!   minutes by design: Telegram allows about one message a second to a chat), then one to each of 300 chats.
//! - `routing`: 200 routing rules and language detection, timed in this process for `--seconds` in all.
//! - `scheduler`: the SLA scheduler and its store in this process, with 100,000 open conversations: idle
//!   wake-ups and CPU, breaches fired per second.
//! - `outbound`: outbound messages to a local receiver: the outbox's drain rate with ingest finished and while
//!   queueing, what it adds to a reply's way out at 200/s, and one destination's latency with another down.
//! - `updates`: automated status updates: rendering per event and channel (English and Thai), and what
//!   they add to ingest and resolution in the store, 20,000 conversations with updates off and on.
//! - `stream`: agents on the live event stream while webhook messages arrive at a steady rate: from a
//!   message's 202 to its event read by every agent, and the daemon's memory per connected agent.
//! - `migrate`: the scale scenario's desk moved from SQLite to PostgreSQL by `switchboard migrate`, timed,
//!   then queried there.
//! - `report`: the table and the JSON.
//!
//! Usage: `cargo run --release -p switchboard-bench -- [--seconds N] [--only NAME,…] [--clients N,…]
//! [--no-bare] [--scale-messages N] [--email-mails N] [--email-live N] [--telegram-replies N]
//! [--telegram-chats N] [--scheduler-conversations N] [--scheduler-idle-seconds N]
//! [--updates-conversations N] [--outbound-messages N] [--stream-agents N] [--stream-rate N] [--json PATH]
//! [--store sqlite,postgres,postgres-2] [--daemon PATH]`

mod bare;
mod daemon;
mod desk;
mod email;
mod load;
mod migrate;
mod outbound;
mod receiver;
mod report;
mod routing;
mod scale;
mod scenarios;
mod scheduler;
mod stream;
mod telegram;
mod updates;
mod workloads;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};

pub struct Options {
    /// Length of each measured run.
    pub seconds: u64,
    /// Scenarios to run; all when empty.
    pub only: Vec<String>,
    pub json: PathBuf,
    /// Messages seeded for the scale scenario (and the migrate scenario).
    pub scale_messages: u64,
    /// Mails in the mailbox when the email scenario's daemon starts.
    pub email_mails: u64,
    /// Mails delivered one at a time after the email scenario's backfill, each timed.
    pub email_live: usize,
    /// Replies posted to one Telegram chat: at one a second, 300 take five minutes.
    pub telegram_replies: usize,
    /// Telegram chats answered once each, all at once.
    pub telegram_chats: usize,
    /// Open conversations with SLA deadlines in the scheduler scenario.
    pub scheduler_conversations: u64,
    /// Length of each of the scheduler scenario's two idle windows.
    pub scheduler_idle_seconds: u64,
    /// Conversations ingested and resolved in each of the updates scenario's two stores.
    pub updates_conversations: u64,
    /// Outbound messages queued in each of the outbound scenario's throughput runs, and
    /// for its destination that is down before the backlog case is timed.
    pub outbound_messages: u64,
    /// Agents connected to the live stream in the stream scenario.
    pub stream_agents: usize,
    /// Webhook messages a second posted while they are connected.
    pub stream_rate: f64,
    /// Client counts for the ingest scenario.
    pub clients: Vec<usize>,
    /// Skip the bare endpoint (for quick iterations on the daemon alone).
    pub no_bare: bool,
    /// A daemon binary to measure instead of building the release one (the smoke test
    /// passes the debug build it already has).
    pub daemon: Option<PathBuf>,
    /// The stores the ingest, e2e and scale scenarios run on, each in turn (`--store`);
    /// the other scenarios run on SQLite.
    pub stores: Vec<desk::Store>,
}

const SCENARIOS: [&str; 12] = [
    "ingest",
    "mixed",
    "e2e",
    "scale",
    "email",
    "telegram",
    "routing",
    "scheduler",
    "updates",
    "outbound",
    "stream",
    "migrate",
];
/// The scenarios that run in this process, with no daemon to build.
const IN_PROCESS: [&str; 3] = ["routing", "scheduler", "updates"];

impl Options {
    fn parse() -> anyhow::Result<Options> {
        let mut options = Options {
            seconds: 10,
            only: Vec::new(),
            json: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/bench/results.json")),
            scale_messages: 1_000_000,
            email_mails: 2_000,
            email_live: email::LIVE_MAILS,
            telegram_replies: telegram::REPLIES,
            telegram_chats: telegram::CHATS,
            scheduler_conversations: 100_000,
            scheduler_idle_seconds: 20,
            updates_conversations: 20_000,
            outbound_messages: 20_000,
            stream_agents: stream::AGENTS,
            stream_rate: stream::RATE,
            clients: scenarios::CLIENT_COUNTS.to_vec(),
            no_bare: false,
            daemon: None,
            stores: vec![desk::Store::Sqlite],
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
            match arg.as_str() {
                "--seconds" => options.seconds = value()?.parse().context("--seconds takes a number")?,
                "--only" => {
                    options.only = value()?.split(',').map(str::to_owned).collect();
                    if let Some(unknown) = options.only.iter().find(|name| !SCENARIOS.contains(&name.as_str())) {
                        bail!("--only: no scenario `{unknown}`; there are {}", SCENARIOS.join(", "));
                    }
                }
                "--daemon" => options.daemon = Some(PathBuf::from(value()?)),
                "--json" => options.json = PathBuf::from(value()?),
                "--scale-messages" => {
                    options.scale_messages = value()?.parse().context("--scale-messages takes a number")?
                }
                "--email-mails" => options.email_mails = value()?.parse().context("--email-mails takes a number")?,
                "--email-live" => options.email_live = value()?.parse().context("--email-live takes a number")?,
                "--telegram-replies" => {
                    options.telegram_replies = value()?.parse().context("--telegram-replies takes a number")?
                }
                "--telegram-chats" => {
                    options.telegram_chats = value()?.parse().context("--telegram-chats takes a number")?
                }
                "--scheduler-conversations" => {
                    options.scheduler_conversations =
                        value()?.parse().context("--scheduler-conversations takes a number")?
                }
                "--scheduler-idle-seconds" => {
                    options.scheduler_idle_seconds =
                        value()?.parse().context("--scheduler-idle-seconds takes a number")?
                }
                "--updates-conversations" => {
                    options.updates_conversations =
                        value()?.parse().context("--updates-conversations takes a number")?
                }
                "--outbound-messages" => {
                    options.outbound_messages = value()?.parse().context("--outbound-messages takes a number")?
                }
                "--stream-agents" => {
                    options.stream_agents = value()?.parse().context("--stream-agents takes a number")?
                }
                "--stream-rate" => {
                    options.stream_rate = value()?.parse().context("--stream-rate takes messages a second")?
                }
                "--no-bare" => options.no_bare = true,
                "--store" => {
                    options.stores = value()?
                        .split(',')
                        .map(desk::Store::parse)
                        .collect::<anyhow::Result<_>>()?
                }
                "--clients" => {
                    options.clients = value()?
                        .split(',')
                        .map(|n| n.parse().context("--clients takes numbers, e.g. 16,64"))
                        .collect::<anyhow::Result<_>>()?
                }
                other => bail!(
                    "unknown argument {other}; use --seconds N, --only ingest,mixed,e2e,scale,email,telegram,routing,scheduler,updates,outbound,stream,migrate, --clients 1,16,64,256, --no-bare, --json PATH, --scale-messages N, --email-mails N, --email-live N, --telegram-replies N (300: five minutes, one reply a second to one chat), --telegram-chats N, --scheduler-conversations N, --scheduler-idle-seconds N, --updates-conversations N, --outbound-messages N, --stream-agents N, --stream-rate N (messages a second), --store sqlite,postgres,postgres-2 (ingest, e2e and scale), --daemon PATH"
                ),
            }
        }
        Ok(options)
    }

    pub fn runs(&self, scenario: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|name| name == scenario)
    }

    /// Whether any scenario selected runs the daemon binary.
    fn needs_daemon(&self) -> bool {
        SCENARIOS
            .iter()
            .any(|scenario| !IN_PROCESS.contains(scenario) && self.runs(scenario))
    }

    pub fn duration(&self) -> Duration {
        Duration::from_secs(self.seconds)
    }
}

fn main() -> anyhow::Result<()> {
    if std::env::args().nth(1).as_deref() == Some("bare-endpoint") {
        return bare::serve();
    }
    let options = Options::parse()?;
    // Building the daemon takes minutes when the library changed; the in-process
    // scenarios alone need none.
    let binary = match &options.daemon {
        Some(binary) => binary.clone(),
        None if options.needs_daemon() => daemon::daemon_binary()?,
        None => PathBuf::new(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    // On this thread, not spawned: the scheduler and updates scenarios open the store,
    // which is not a `Send` future.
    let report = runtime.block_on(scenarios::run_all(&options, &binary))?;
    report.print();
    report.write_json(&options.json)?;
    println!("\nfigures written to {}", options.json.display());
    Ok(())
}
