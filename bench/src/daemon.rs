//! The processes under test: the real `switchboard` release binary (one fresh process and
//! store per scenario, so each peak RSS is that scenario's) and the bare endpoint.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

pub const SECRET: &str = "whsec_c3dpdGNoYm9hcmQtYmVuY2htYXJrLXNlY3JldC0wMDE=";

/// The release daemon beside this program, built first when missing or stale.
pub fn daemon_binary() -> anyhow::Result<PathBuf> {
    let own = std::env::current_exe().context("locating the benchmark program")?;
    let folder = own.parent().context("the benchmark program has no folder")?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    // Cheap when up to date, and it keeps the daemon in step with this program.
    let mut command = Command::new(cargo);
    // `cargo run` gives this program its package's variables (CARGO_MANIFEST_DIR,
    // CARGO_PKG_NAME, …). Passed on, they reach build scripts that watch them (ring's
    // does), so this build and the next one outside it would each rebuild ring and
    // everything above it, a minute or more every run.
    for (name, _) in std::env::vars_os() {
        if let Some(name) = name.to_str()
            && (name.starts_with("CARGO_PKG_")
                || matches!(
                    name,
                    "CARGO_MANIFEST_DIR"
                        | "CARGO_MANIFEST_PATH"
                        | "CARGO_CRATE_NAME"
                        | "CARGO_BIN_NAME"
                        | "CARGO_PRIMARY_PACKAGE"
                ))
        {
            command.env_remove(name);
        }
    }
    let status = command
        .args([
            "build",
            "--release",
            "--quiet",
            "--locked",
            "-p",
            "switchboard",
            "--bin",
            "switchboard",
            "--manifest-path",
        ])
        .arg(&manifest)
        .status()
        .context("running cargo to build the daemon")?;
    if !status.success() {
        bail!("building the daemon failed");
    }
    let binary = folder.join("switchboard");
    if !binary.is_file() {
        bail!("no daemon binary at {}", binary.display());
    }
    Ok(binary)
}

/// A daemon configuration for benchmarks: the shipped defaults where they matter
/// (synchronous = FULL storage, the acknowledgement on), loopback only.
pub fn config(db: &Path, callback_url: &str, rules: &str) -> String {
    config_at(&sqlite_url(db), callback_url, rules)
}

/// The `[storage] url` of an SQLite file.
pub fn sqlite_url(db: &Path) -> String {
    format!("sqlite://{}", db.display())
}

/// [`config`] on the store at `storage_url` (`sqlite://…` or `postgres://…`).
pub fn config_at(storage_url: &str, callback_url: &str, rules: &str) -> String {
    config_with_at(
        storage_url,
        &format!(
            r#"
[inboxes.shop]
name = "Shop app"

[inboxes.shop.webhook]
secret = "{SECRET}"
callback_url = "{callback_url}"

{rules}
"#
        ),
    )
}

/// The benchmark configuration around one inbox's tables (and rules), as TOML.
pub fn config_with(db: &Path, inbox_and_rules: &str) -> String {
    config_with_at(&sqlite_url(db), inbox_and_rules)
}

/// [`config_with`] on the store at `storage_url`.
pub fn config_with_at(storage_url: &str, inbox_and_rules: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"

[storage]
url = "{storage_url}"

[log]
level = "warn"

[outbox]
retry_schedule = ["1s", "5s", "30s"]

[routing]
default_team = "support"
# The languages its messages and rules are in, as a desk names them (the shipped config
# does): detection among all 69 would cost about 35 µs a message instead of 4.
detect_languages = ["en", "de", "es"]

[teams.support]
name = "Customer Support"

[teams.billing]
name = "Billing"

[teams.technical]
name = "Technical Support"
{inbox_and_rules}"#
    )
}

/// The rate limits off: the benchmark is one client address sending as fast as the
/// daemon takes, which is what they exist to stop.
const RATE_LIMITS_OFF: &str = "\n[server.rate_limits]\nhook_per_inbox = 0\nhook_per_address = 0\napi_per_token = 0\n";

/// Appends [`RATE_LIMITS_OFF`] to the config at `path` when `binary` knows the keys: a
/// build from before they existed (`--daemon OLD`, measured against) refuses unknown keys
/// and has no limits to turn off.
fn without_rate_limits(binary: &Path, path: &Path) -> anyhow::Result<()> {
    let config = std::fs::read_to_string(path)?;
    if config.contains("[server.rate_limits]") {
        return Ok(());
    }
    let candidate = format!("{config}{RATE_LIMITS_OFF}");
    let probe = path.with_extension("probe.toml");
    std::fs::write(&probe, &candidate)?;
    let known = Command::new(binary)
        .arg("--config")
        .arg(&probe)
        .arg("check-config")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?
        .success();
    std::fs::remove_file(&probe)?;
    if known {
        std::fs::write(path, candidate)?;
    }
    Ok(())
}

pub struct Process {
    child: Option<Child>,
    pub address: SocketAddr,
}

impl Process {
    /// Starts `command`, which must print `… listening on http://ADDR` as its first line.
    pub fn start(mut command: Command) -> anyhow::Result<Process> {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting a process")?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().context("no stdout")?).read_line(&mut line)?;
        let address = line
            .trim()
            .rsplit("http://")
            .next()
            .and_then(|address| address.parse().ok())
            .with_context(|| format!("unexpected first line {line:?}"))?;
        Ok(Process {
            child: Some(child),
            address,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// (current RSS, peak RSS) in MiB, from /proc.
    pub fn rss_mib(&self) -> (f64, f64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|kib| kib.parse::<f64>().ok())
                .map_or(0.0, |kib| kib / 1024.0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// CPU time used so far, user and system, all threads, from /proc.
    pub fn cpu_seconds(&self) -> f64 {
        process_cpu_seconds(self.pid())
    }

    /// SIGTERM, and wait for a clean exit.
    pub fn stop(mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        Command::new("kill").arg("-TERM").arg(child.id().to_string()).status()?;
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait()? {
                if !status.success() {
                    bail!("the process exited with {status}");
                }
                return Ok(());
            }
            if started.elapsed() > Duration::from_secs(30) {
                child.kill()?;
                bail!("the process did not stop within 30 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// CPU time a process (a pid, or `self`) has used so far, user and system, all threads,
/// from /proc.
pub fn process_cpu_seconds(pid: impl std::fmt::Display) -> f64 {
    stat_cpu_seconds(&format!("/proc/{pid}/stat"))
}

/// CPU time used so far by a process's threads of this name (`comm`, e.g. `sqlite-writer`),
/// user and system, from /proc.
pub fn thread_cpu_seconds(pid: u32, name: &str) -> f64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0.0;
    };
    tasks
        .flatten()
        .filter(|task| std::fs::read_to_string(task.path().join("comm")).is_ok_and(|comm| comm.trim() == name))
        .map(|task| stat_cpu_seconds(&task.path().join("stat").to_string_lossy()))
        .sum()
}

/// CPU time used so far by process `root` and all its children, user and system: the
/// children still running, and (through `root`'s cutime and cstime) the ones it has
/// reaped. For a PostgreSQL server, the postmaster: every backend and background process
/// is its child.
pub fn process_tree_cpu_seconds(root: u32) -> f64 {
    let own = stat_fields(&format!("/proc/{root}/stat"), 11, 4);
    let children: f64 = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|entry| {
            entry
                .file_name()
                .to_str()
                .is_some_and(|name| name.parse::<u32>().is_ok())
        })
        .filter_map(|entry| std::fs::read_to_string(entry.path().join("stat")).ok())
        .filter(|stat| parent(stat) == Some(root))
        .map(|stat| ticks(&stat, 11, 2))
        .sum::<u64>() as f64
        / 100.0;
    own + children
}

/// The parent PID in the text of a `/proc/…/stat` file.
fn parent(stat: &str) -> Option<u32> {
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    after_name.split_whitespace().nth(1)?.parse().ok()
}

/// utime + stime of a `/proc/…/stat` file, in seconds.
fn stat_cpu_seconds(path: &str) -> f64 {
    stat_fields(path, 11, 2)
}

/// The sum of `count` clock-tick fields of a `/proc/…/stat` file from the `skip`-th after
/// the state, in seconds.
fn stat_fields(path: &str, skip: usize, count: usize) -> f64 {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    // USER_HZ, which /proc counts in: 100 on every Linux architecture that matters here.
    ticks(&stat, skip, count) as f64 / 100.0
}

fn ticks(stat: &str, skip: usize, count: usize) -> u64 {
    // utime, stime, cutime and cstime are the 14th to 17th fields; the command name
    // before them (in parentheses) may hold spaces.
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    after_name
        .split_whitespace()
        .skip(skip)
        .take(count)
        .filter_map(|field| field.parse::<u64>().ok())
        .sum()
}

/// Waits until `/readyz` answers 200.
pub async fn wait_ready(address: SocketAddr) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        if let Ok(mut stream) = tokio::net::TcpStream::connect(address).await {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let request = format!("GET /readyz HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
            if stream.write_all(request.as_bytes()).await.is_ok() {
                let mut answer = Vec::new();
                let _ = stream.read_to_end(&mut answer).await;
                if answer.starts_with(b"HTTP/1.1 200") {
                    return Ok(());
                }
            }
        }
        if started.elapsed() > Duration::from_secs(30) {
            bail!("{address} did not become ready");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A daemon on a fresh store in `dir`.
pub struct Daemon {
    pub process: Process,
    pub dir: PathBuf,
    binary: PathBuf,
}

impl Daemon {
    pub async fn start(binary: &Path, dir: &Path, callback_url: &str, rules: &str) -> anyhow::Result<Daemon> {
        std::fs::write(
            dir.join("switchboard.toml"),
            config(&dir.join("switchboard.db"), callback_url, rules),
        )?;
        Daemon::start_existing(binary, dir).await
    }

    /// Like [`Daemon::start`], on the store at `storage_url` (a PostgreSQL database that
    /// other daemons may share); `dir` holds the config.
    pub async fn start_at(
        binary: &Path,
        dir: &Path,
        storage_url: &str,
        callback_url: &str,
        rules: &str,
    ) -> anyhow::Result<Daemon> {
        std::fs::write(
            dir.join("switchboard.toml"),
            config_at(storage_url, callback_url, rules),
        )?;
        Daemon::start_existing(binary, dir).await
    }

    /// Starts on the config and store already in `dir`.
    pub async fn start_existing(binary: &Path, dir: &Path) -> anyhow::Result<Daemon> {
        without_rate_limits(binary, &dir.join("switchboard.toml"))?;
        let mut command = Command::new(binary);
        command.arg("--config").arg(dir.join("switchboard.toml")).arg("serve");
        let process = Process::start(command)?;
        wait_ready(process.address).await?;
        Ok(Daemon {
            process,
            dir: dir.to_owned(),
            binary: binary.to_owned(),
        })
    }

    pub fn database(&self) -> PathBuf {
        self.dir.join("switchboard.db")
    }

    /// Creates an agent and returns its token. An admin: agents and supervisors read only
    /// their teams' conversations, and the scenarios read every team's queue.
    pub fn agent(&self, name: &str, team: &str) -> anyhow::Result<String> {
        let output = Command::new(&self.binary)
            .arg("--config")
            .arg(self.dir.join("switchboard.toml"))
            .args(["agent", "add", name, "--team", team, "--role", "admin"])
            .output()?;
        if !output.status.success() {
            bail!("agent add failed: {}", String::from_utf8_lossy(&output.stderr));
        }
        Ok(String::from_utf8(output.stdout)?.trim().to_owned())
    }
}
