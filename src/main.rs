//! The `switchboard` command: `serve` runs the daemon; `check-config`, `agent add`,
//! `agent list`, `route explain`, `route replay`, `contact export`, `contact erase` and `migrate` are the
//! operator's tools around it.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use switchboard::auth::{generate_token, hash_token};
use switchboard::clock::{Clock, SystemClock};
use switchboard::config::{self, Settings};
use switchboard::model::Role;
use switchboard::server;
use switchboard::store::NewAgent;
use tokio_util::sync::CancellationToken;

/// Switchboard: one backend for every customer channel.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// The configuration file. A key holding one value can be overridden by an
    /// environment variable SWITCHBOARD__SECTION__KEY, e.g. SWITCHBOARD__SERVER__LISTEN=0.0.0.0:8080
    /// (outbox.retry_schedule takes a comma-separated list).
    #[arg(long, short, global = true, env = "SWITCHBOARD_CONFIG", default_value = config::DEFAULT_PATH)]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon until SIGTERM or SIGINT.
    Serve,
    /// Validate the configuration and exit: 0 when valid, 1 naming the bad key.
    CheckConfig,
    /// Manage agents.
    #[command(subcommand)]
    Agent(AgentCommand),
    /// Try routing rules.
    #[command(subcommand)]
    Route(RouteCommand),
    /// A contact's personal data (docs/PRIVACY.md).
    #[command(subcommand)]
    Contact(ContactCommand),
    /// Move a desk from SQLite to PostgreSQL: every table of the (stopped) daemon's SQLite
    /// file copied into an empty PostgreSQL database in one transaction, ids kept. Prints
    /// each table's rows read and rows in PostgreSQL; exits 1 naming what is wrong.
    Migrate {
        /// The desk's SQLite database, as its storage.url names it: sqlite://PATH.
        #[arg(long)]
        from: String,
        /// An empty PostgreSQL database: postgres://USER:PASSWORD@HOST:PORT/DATABASE.
        #[arg(long)]
        to: String,
    },
}

#[derive(Debug, Subcommand)]
enum ContactCommand {
    /// Write everything stored about the contact to a .tar.gz archive (contact.json and
    /// the attachments); recorded in the audit trail.
    Export {
        /// The contact's id (`contact.id` in the API's conversations).
        id: i64,
        /// The archive to write; an existing file is not overwritten.
        #[arg(long)]
        out: PathBuf,
    },
    /// Erase the contact: messages, files and identities removed, queued messages to
    /// them dropped, conversations kept as anonymous shells for the figures. Prints what
    /// was erased as JSON.
    Erase {
        id: i64,
        /// Why, for the audit trail: a request or ticket reference, no personal data.
        #[arg(long)]
        reason: String,
    },
}

#[derive(Debug, Subcommand)]
enum RouteCommand {
    /// Show what the configured rules (this config file, no daemon needed) do with a
    /// sample message: every rule and condition, the team, tier, priority and SLA
    /// deadlines. The file is JSON: {"inbox": "shop", "text": "…", "subject"?,
    /// "language"?, "metadata"?: {…}, "at"?: "2026-11-27T17:55:00Z"}.
    Explain {
        /// The sample message (JSON); `-` reads standard input.
        #[arg(long)]
        message: PathBuf,
        /// Print the explanation as JSON (what `POST /api/v1/route/explain` returns).
        #[arg(long)]
        json: bool,
    },
    /// What-if routing: replay the first messages of the conversations opened since
    /// `--since` through the rules of `--with` and of the running config (`--config`),
    /// and report how many would go to another team, priority or labels and how their
    /// first-response deadlines would move, with examples. Changes nothing.
    Replay {
        /// How far back: a duration (`7d`, `36h`) or an RFC 3339 time.
        #[arg(long)]
        since: String,
        /// The changed configuration file, validated as `check-config` does.
        #[arg(long = "with", value_name = "NEW.toml")]
        with: PathBuf,
        /// Print the report as JSON (what `POST /api/v1/route/replay` returns).
        #[arg(long)]
        json: bool,
        /// Examples shown of each kind of change.
        #[arg(long, default_value_t = 5)]
        examples: usize,
    },
}

#[derive(Debug, Subcommand)]
enum AgentCommand {
    /// Create an agent and print its API token, once, on standard output.
    Add {
        /// A unique name, shown to other agents.
        name: String,
        /// The key of the agent's team; several separated by commas, the home team first.
        #[arg(long)]
        team: String,
        /// agent, supervisor or admin.
        #[arg(long, default_value = "agent")]
        role: String,
        /// The most open conversations queues assign to them; the team's `capacity` when absent.
        #[arg(long)]
        capacity: Option<u32>,
        /// Available for assignment from the start (agents can change it with
        /// `PUT /api/v1/agents/me/availability`).
        #[arg(long)]
        available: bool,
        /// The languages the agent reads, separated by commas (`th,en`): queues give them
        /// conversations in those languages first. Admins change them with
        /// `PATCH /api/v1/agents/{name}`.
        #[arg(long, default_value = "")]
        languages: String,
    },
    /// List agents.
    List,
    /// Print a new one-time link with which the agent sets their password and signs in
    /// to the console; their earlier unused links stop working.
    Link {
        /// The agent's name.
        name: String,
    },
    /// Deactivate an agent: their sessions end, their token stops working, queues stop
    /// assigning to them. Their history stays.
    Deactivate { name: String },
    /// Let a deactivated agent back in (with a new link: `agent link`).
    Activate { name: String },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Both databases are named on the command line: no configuration file is needed.
    let command = match cli.command {
        Command::Migrate { from, to } => {
            return exit_code(runtime().and_then(|runtime| runtime.block_on(migrate(&from, &to))));
        }
        command => command,
    };
    let settings = match config::load(&cli.config) {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = match command {
        Command::CheckConfig => {
            for warning in &settings.warnings {
                eprintln!("warning: {warning}");
            }
            println!(
                "{}: valid ({} inboxes, {} teams, storage {})",
                cli.config.display(),
                settings.inboxes.len(),
                settings.teams.len(),
                settings.storage.shown_url()
            );
            Ok(())
        }
        Command::Serve => serve(settings),
        Command::Agent(command) => runtime().and_then(|runtime| runtime.block_on(agent(settings, command))),
        Command::Route(RouteCommand::Explain { message, json }) => explain(&settings, &message, json),
        Command::Route(RouteCommand::Replay {
            since,
            with,
            json,
            examples,
        }) => runtime().and_then(|runtime| runtime.block_on(replay(&settings, &since, &with, json, examples))),
        Command::Contact(command) => runtime().and_then(|runtime| runtime.block_on(contact(settings, command))),
        Command::Migrate { .. } => unreachable!("migrate runs before the configuration is loaded"),
    };
    exit_code(result)
}

fn exit_code(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn init_logging(settings: &Settings) {
    let filter = tracing_subscriber::EnvFilter::new(&settings.log_level);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    if settings.log_json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// The listener, with room for a crowd of connections at once: every console reconnects
/// its stream together after a restart, and the standard library's backlog of 128 drops
/// the rest into a second's SYN retry.
fn bind(address: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if address.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(1024)
}

fn serve(settings: Settings) -> anyhow::Result<()> {
    init_logging(&settings);
    for warning in &settings.warnings {
        tracing::warn!(key = %warning.key, "configuration: {}", warning.problem);
    }
    runtime()?.block_on(async {
        let listener = bind(settings.listen).with_context(|| format!("binding {} (server.listen)", settings.listen))?;
        // A stable line on stdout, so scripts and tests that ask for port 0 learn the port.
        println!("switchboard listening on http://{}", listener.local_addr()?);
        std::io::stdout().flush()?;
        let shutdown = CancellationToken::new();
        tokio::spawn(cancel_on_signal(shutdown.clone()));
        server::run(settings, listener, shutdown).await
    })
}

async fn cancel_on_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut terminate), Ok(mut interrupt)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
    else {
        tracing::error!("cannot listen for SIGTERM/SIGINT; stop the daemon with SIGKILL");
        return;
    };
    tokio::select! {
        _ = terminate.recv() => tracing::info!("SIGTERM received"),
        _ = interrupt.recv() => tracing::info!("SIGINT received"),
    }
    shutdown.cancel();
}

fn explain(settings: &Settings, path: &std::path::Path, json: bool) -> anyhow::Result<()> {
    let text = if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).context("reading the message from standard input")?
    } else {
        std::fs::read_to_string(path).with_context(|| format!("reading --message {}", path.display()))?
    };
    let object = match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(serde_json::Value::Object(object)) => object,
        Ok(_) => anyhow::bail!("--message {}: must be a JSON object", path.display()),
        Err(err) => anyhow::bail!("--message {}: not JSON: {err}", path.display()),
    };
    let sample = switchboard::domain::explain::Sample::parse(&object, &settings.inbox_kinds())
        .map_err(|err| anyhow::anyhow!("--message {}: `{}` {}", path.display(), err.field, err.problem))?;
    let explanation =
        switchboard::domain::explain::explain(&settings.router, &settings.desk, &sample, SystemClock.now_ms(), None);
    if json {
        println!("{}", serde_json::to_string_pretty(&explanation)?);
    } else {
        print!("{}", switchboard::domain::explain::render_text(&explanation));
    }
    Ok(())
}

/// Reads the store only: no catalogue sync, so a changed config's teams and inboxes are
/// never made to exist.
async fn replay(
    settings: &Settings,
    since: &str,
    with: &std::path::Path,
    json: bool,
    examples: usize,
) -> anyhow::Result<()> {
    use switchboard::domain::replay::{Replay, Routing};
    let since = switchboard::domain::replay::parse_since(since, SystemClock.now_ms())
        .map_err(|err| anyhow::anyhow!("--since {err}"))?;
    let changed = config::load(with).map_err(|err| anyhow::anyhow!("--with {}: {err}", with.display()))?;
    let (_store, queries) = switchboard::store::open(&settings.storage)
        .await
        .with_context(|| format!("opening the store at {} (storage.url)", settings.storage.shown_url()))?;
    let running = Routing {
        router: &settings.router,
        desk: &settings.desk,
    };
    let after = Routing {
        router: &changed.router,
        desk: &changed.desk,
    };
    let report =
        switchboard::query::replay(queries.as_ref(), since, Replay::new(running, after, since, examples)).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", switchboard::domain::replay::render_text(&report));
    }
    Ok(())
}

async fn agent(settings: Settings, command: AgentCommand) -> anyhow::Result<()> {
    let clock = SystemClock;
    let opened = server::open(&settings, &clock).await?;
    match command {
        AgentCommand::Add {
            name,
            team,
            role,
            capacity,
            available,
            languages,
        } => {
            let name = name.trim().to_owned();
            anyhow::ensure!(
                !name.is_empty() && name.len() <= 100,
                "the agent name must be 1 to 100 characters"
            );
            let role =
                Role::parse(&role).with_context(|| format!("--role `{role}` is not one of {}", Role::names()))?;
            let token = generate_token().context("reading the system's random source")?;
            let id = opened
                .service
                .create_agent(
                    NewAgent {
                        name,
                        role,
                        teams: team.split(',').map(|key| key.trim().to_owned()).collect(),
                        token_hash: hash_token(&token),
                        first_token: Some("first".into()),
                        capacity,
                        available,
                        languages: languages
                            .split(',')
                            .map(str::trim)
                            .filter(|tag| !tag.is_empty())
                            .map(str::to_owned)
                            .collect(),
                    },
                    None,
                    clock.now_ms(),
                )
                .await?;
            let agent = opened.queries.agent(id).await?;
            eprintln!(
                "created agent `{}` (id {}, {}, teams {}); its API token follows, shown only this once:",
                agent.name,
                agent.id,
                agent.role,
                agent.teams.join(",")
            );
            println!("{token}");
            print_sign_in_link(&settings, &opened, agent.id, &clock).await?;
        }
        AgentCommand::Link { name } => {
            let agent = find_agent(&opened, &name).await?;
            print_sign_in_link(&settings, &opened, agent.id, &clock).await?;
        }
        AgentCommand::Deactivate { name } => {
            let agent = find_agent(&opened, &name).await?;
            let outcome = opened
                .service
                .set_agent_active(None, agent.id, false, clock.now_ms())
                .await?;
            eprintln!(
                "agent `{}` {}: sessions ended, tokens refused, {} open conversation(s) back in the queue",
                agent.name,
                if outcome.changed {
                    "deactivated"
                } else {
                    "was already deactivated"
                },
                outcome.returned.len()
            );
        }
        AgentCommand::Activate { name } => {
            let agent = find_agent(&opened, &name).await?;
            let outcome = opened
                .service
                .set_agent_active(None, agent.id, true, clock.now_ms())
                .await?;
            eprintln!(
                "agent `{}` {}",
                agent.name,
                if outcome.changed {
                    "activated"
                } else {
                    "was already active"
                }
            );
        }
        AgentCommand::List => {
            println!("id\tname\trole\tteams\tavailable\tcapacity\topen\tlanguages");
            for agent in opened.queries.agents().await? {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    agent.id,
                    agent.name,
                    agent.role,
                    if agent.teams.is_empty() {
                        "-".to_owned()
                    } else {
                        agent.teams.join(",")
                    },
                    if agent.available { "yes" } else { "no" },
                    agent
                        .capacity
                        .map_or_else(|| "team".to_owned(), |capacity| capacity.to_string()),
                    agent.open_conversations,
                    if agent.languages.is_empty() {
                        "-".to_owned()
                    } else {
                        agent.languages.join(",")
                    }
                );
            }
        }
    }
    Ok(())
}

async fn find_agent(opened: &server::Opened, name: &str) -> anyhow::Result<switchboard::query::Agent> {
    opened
        .queries
        .agents()
        .await?
        .into_iter()
        .find(|agent| agent.name == name)
        .with_context(|| format!("no agent named `{name}` (`switchboard agent list` shows them)"))
}

/// A new one-time sign-in link for the agent, on standard error (standard output stays
/// the token alone, for scripts).
async fn print_sign_in_link(
    settings: &Settings,
    opened: &server::Opened,
    agent_id: i64,
    clock: &SystemClock,
) -> anyhow::Result<()> {
    let token = switchboard::auth::random_secret().context("reading the system's random source")?;
    let expires_at = opened
        .service
        .issue_sign_in_link(
            settings.console.policy,
            None,
            agent_id,
            hash_token(&token),
            clock.now_ms(),
        )
        .await?;
    eprintln!(
        "sign-in link (works once, until {}): {}",
        serde_json::json!(switchboard::model::Timestamp(expires_at))
            .as_str()
            .unwrap_or_default(),
        switchboard::auth::link_url(&settings.console.public_url, &token)
    );
    Ok(())
}

async fn contact(settings: Settings, command: ContactCommand) -> anyhow::Result<()> {
    let clock = SystemClock;
    // The operator at the console: the audit trail records the desk itself as the actor,
    // with the reason they give.
    let actor = switchboard::domain::events::Actor::SYSTEM;
    match command {
        ContactCommand::Export { id, out } => {
            // Refused before the store is touched, so a mistyped path records no export.
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&out)
                .with_context(|| format!("creating --out {} (an existing file is not overwritten)", out.display()))?;
            let opened = server::open(&settings, &clock).await?;
            let now = clock.now_ms();
            let export = match opened.service.export_contact(id, actor, now).await {
                Ok(export) => export,
                Err(err) => {
                    drop(file);
                    let _ = std::fs::remove_file(&out);
                    return Err(err.into());
                }
            };
            let counts = switchboard::domain::privacy::archive::counts(&export);
            let bytes = switchboard::domain::privacy::archive::archive(&export, now).context("building the archive")?;
            file.write_all(&bytes)
                .and_then(|()| file.sync_all())
                .with_context(|| format!("writing --out {}", out.display()))?;
            eprintln!(
                "exported contact {id}: {} conversations, {} messages, {} attachments, {} events ({} bytes) to {}",
                counts.conversations,
                counts.messages,
                counts.attachments,
                counts.events,
                bytes.len(),
                out.display()
            );
        }
        ContactCommand::Erase { id, reason } => {
            let opened = server::open(&settings, &clock).await?;
            let erasure = opened.service.erase_contact(id, actor, &reason, clock.now_ms()).await?;
            println!("{}", serde_json::to_string_pretty(&erasure)?);
        }
    }
    Ok(())
}

async fn migrate(from: &str, to: &str) -> anyhow::Result<()> {
    let migrated = switchboard::store::migrate::migrate(from, to, |copied| {
        println!(
            "{:<22} {:>10} read {:>10} in PostgreSQL {:>8.2} s",
            copied.table,
            copied.read,
            copied.stored,
            copied.elapsed.as_secs_f64()
        );
    })
    .await?;
    let seconds = migrated.elapsed.as_secs_f64();
    println!(
        "migrated {} rows of {} tables in {seconds:.2} s ({:.0} rows/s; indexes built and foreign keys checked in \
         {:.2} s); start the daemon with storage.url set to the PostgreSQL URL",
        migrated.rows(),
        migrated.tables.len(),
        migrated.rows() as f64 / seconds.max(0.001),
        migrated.checked.as_secs_f64()
    );
    if let Err(err) = &migrated.analyzed {
        eprintln!("warning: the desk is migrated, but ANALYZE failed ({err}); run ANALYZE in the database");
    }
    Ok(())
}
