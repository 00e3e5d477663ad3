//! A private PostgreSQL cluster for the store suite and the black-box tests: Debian's
//! server binaries, a data dir made by `initdb` in a temp dir, the postmaster on a free
//! loopback port, and a new database for each test that asks ([`Cluster::fresh_database`]).
//! One cluster per test binary ([`Cluster::shared`]) is the usual shape; [`Cluster::start`]
//! gives a test a cluster of its own, stopped when it is dropped, and [`Cluster::start_with`]
//! one with other server settings (the benchmark's durable commits: `fsync=on`).
//!
//! # Lifetime
//!
//! A test binary never drops its statics, so the shared cluster cannot be stopped by a
//! destructor, and `atexit` or `PR_SET_PDEATHSIG` would need `unsafe`. Instead every cluster's
//! postmaster is the child of a small watchdog shell (see `WATCHDOG`) whose stdin is a pipe.
//! The only write end of that pipe is held by the test process (Rust opens pipes
//! close-on-exec, so no other child inherits it), and the kernel closes it when the process
//! ends, however it ends: `main` returning, a panic that aborts, SIGKILL. On that end of file
//! the watchdog sends the postmaster SIGQUIT (an immediate shutdown: the postmaster stops its
//! own children, then exits), waits for it and removes the temp dir. Dropping a [`Cluster`]
//! closes the same pipe and waits for the watchdog, so a dropped cluster is gone when `drop`
//! returns. The watchdog and the postmaster run in a process group of their own, so a
//! Ctrl-C or a test runner's signal to the test's group does not kill the watchdog before it
//! has cleaned up; it still hears of the test process's end through the pipe.
//!
//! The stop follows the process's end rather than preceding it: here the postmaster was gone
//! 10 to 30 ms after the test binary exited (or was killed), the dir 40 to 110 ms after (the
//! `the_shared_cluster_stops_when_*` tests measure it). Only a SIGKILL aimed at the watchdog
//! itself would leave a postmaster behind. Under cargo-nextest every test is a process of
//! its own, so there "shared" means one cluster per test (an initdb, about a second, each).
//!
//! As root, `initdb` and `postgres` refuse to run; they then run as the system user
//! `postgres` (`CommandExt::uid`, which is what `runuser -u postgres --` does, without a
//! `runuser` process between this process and the postmaster).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How long any awaited effect may take before the caller fails.
pub const DEADLINE: Duration = Duration::from_secs(20);
/// Debian's layout: `/usr/lib/postgresql/<major>/bin`.
const VERSIONS_DIR: &str = "/usr/lib/postgresql";
const NOT_INSTALLED: &str = "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/postgres): \
    scripts/test installs it (Debian's `postgresql` package), or run \
    `apt-get install postgresql`";
/// Starts are retried with a fresh port when the port picked as free was taken meanwhile.
const START_ATTEMPTS: usize = 3;

/// The parent of the postmaster: `$1` is the `postgres` binary, `$2` the cluster's dir,
/// `$3` the port, and any further arguments are passed to the postmaster after its own
/// (`-c name=value` pairs from [`Cluster::start_with`], which override `fsync=off`, as a
/// later `-c` overrides an earlier one). It prints the postmaster's PID, then waits on its stdin. A line there
/// ("keep") means stop the postmaster but keep the dir, so that the harness can read the
/// log of a failed start; end of file means the cluster is done with: stop it, remove the
/// dir. As long as the watchdog is blocked in `read`, it does not reap the postmaster, so a
/// postmaster that died shows as a zombie and its PID cannot be reused.
const WATCHDOG: &str = r#"
postgres=$1 dir=$2 port=$3
shift 3
"$postgres" -D "$dir/data" -p "$port" -k "$dir" -c listen_addresses=127.0.0.1 -c fsync=off "$@" \
    </dev/null >>"$dir/pg.log" 2>&1 &
postmaster=$!
echo "$postmaster"
exec >/dev/null
if read -r answer; then keep=yes; else keep=no; fi
kill -QUIT "$postmaster"
wait "$postmaster"
[ "$keep" = yes ] || rm -rf "$dir"
"#;

/// A private PostgreSQL cluster. Dropping it stops the postmaster and removes its dir; the
/// shared one stops when the test process ends (see the crate's doc).
pub struct Cluster {
    /// The temp dir: data dir, log, Unix socket. Not a `TempDir`: the watchdog removes it,
    /// after the postmaster is gone, also when this value is never dropped.
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    postmaster: u32,
    /// The postmaster's parent. Dropping its stdin stops the cluster.
    watchdog: Child,
    /// Numbers the databases of [`Cluster::fresh_database`].
    databases: AtomicU32,
    initdb_took: Duration,
    start_took: Duration,
}

impl Cluster {
    /// Starts a cluster of its own for the caller and waits until it accepts connections.
    /// Its commits are not flushed to disk (`fsync=off`): a test needs no crash safety.
    pub async fn start() -> Cluster {
        Cluster::start_with(&[]).await
    }

    /// Like [`Cluster::start`], with server settings (`name=value`, as `postgres -c`
    /// takes them) over the defaults: `&["fsync=on", "synchronous_commit=on"]` for commits
    /// that wait for the disk, as a production server's do (the benchmark's).
    pub async fn start_with(settings: &[&str]) -> Cluster {
        for setting in settings {
            assert!(
                setting.contains('=') && !setting.starts_with('-'),
                "server setting {setting:?} is not name=value"
            );
        }
        let settings: Vec<String> = settings.iter().map(|&setting| setting.to_owned()).collect();
        blocking(move || Cluster::start_blocking(&settings)).await
    }

    /// The test binary's cluster: started by the first caller, the same for every later
    /// one, stopped when the process ends.
    pub async fn shared() -> &'static Cluster {
        // tokio's cell: callers wait for the first start without blocking their runtimes,
        // and a start that panics leaves the cell empty for the next caller to retry.
        static SHARED: tokio::sync::OnceCell<Cluster> = tokio::sync::OnceCell::const_new();
        SHARED.get_or_init(Cluster::start).await
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The postmaster's PID: the parent of every server process of the cluster (the
    /// backends, one per connection, and the background writer, WAL writer, checkpointer…),
    /// for measuring what the server spends.
    pub fn postmaster(&self) -> u32 {
        self.postmaster
    }

    /// The URL of `database` on this cluster, as the daemon's `database.url` takes it.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates the database `name` and returns its URL. `name` is a plain lowercase SQL
    /// identifier, so that it needs no quoting in SQL nor escaping in the URL.
    pub async fn database(&self, name: &str) -> String {
        let plain = name.len() <= 63
            && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        assert!(plain, "database name {name:?} is not a plain lowercase SQL identifier");
        self.psql("postgres", &format!("CREATE DATABASE {name}")).await;
        self.url(name)
    }

    /// Creates a database no other caller got and returns its URL.
    pub async fn fresh_database(&self) -> String {
        let number = self.databases.fetch_add(1, Ordering::Relaxed);
        self.database(&format!("fresh_{number}")).await
    }

    /// Runs `sql` in `database` (a name, or a URL from [`Cluster::url`]) with psql and
    /// returns what it printed, unaligned and without headers (`SELECT 1` gives "1").
    /// Panics with psql's message if it fails.
    pub async fn psql(&self, database: &str, sql: &str) -> String {
        let database = database.rsplit('/').next().unwrap();
        let mut command = Command::new(self.bin.join("psql"));
        command
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
            ])
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-d")
            .arg(database)
            .arg("-c")
            .arg(sql);
        let output = blocking(move || command.output()).await.expect("psql runs");
        assert!(
            output.status.success(),
            "psql -c {sql:?} in {database} failed with {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout)
            .expect("psql prints UTF-8")
            .trim_end()
            .to_owned()
    }

    /// How long `initdb` took for this cluster: what a test pays for a cluster of its own.
    pub fn initdb_took(&self) -> Duration {
        self.initdb_took
    }

    /// How long the postmaster took from its spawn to accepting connections.
    pub fn start_took(&self) -> Duration {
        self.start_took
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("pg.log")).unwrap_or_default()
    }

    fn start_blocking(settings: &[String]) -> Cluster {
        let bin = bin_dir();
        let owner = owner();
        let dir = tempfile::Builder::new()
            .prefix("switchboard-pg-")
            .tempdir()
            .expect("a temp dir for PostgreSQL");
        // As root, the server runs as `postgres`, which must reach and own its dir.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
        }

        let started = Instant::now();
        let initdb = as_owner(Command::new(bin.join("initdb")), owner, dir.path())
            .arg("-D")
            .arg(dir.path().join("data"))
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ])
            .output()
            .unwrap_or_else(|error| panic!("initdb runs ({NOT_INSTALLED}): {error}"));
        assert!(
            initdb.status.success(),
            "initdb in {} failed with {}:\n{}{}",
            dir.path().display(),
            initdb.status,
            String::from_utf8_lossy(&initdb.stdout),
            String::from_utf8_lossy(&initdb.stderr)
        );
        let initdb_took = started.elapsed();

        let mut failures = Vec::new();
        for _ in 0..START_ATTEMPTS {
            let started = Instant::now();
            match spawn_postmaster(&bin, dir.path(), owner, settings) {
                Ok((watchdog, postmaster, port)) => {
                    return Cluster {
                        // From here on the watchdog removes it.
                        dir: dir.keep(),
                        bin,
                        port,
                        postmaster,
                        watchdog,
                        databases: AtomicU32::new(0),
                        initdb_took,
                        start_took: started.elapsed(),
                    };
                }
                Err(failure) => failures.push(failure),
            }
        }
        panic!("PostgreSQL did not start:\n{}", failures.join("\n----\n"));
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- postgres log ----\n{}", self.log());
        }
        if !stop(&mut self.watchdog, false) {
            // Not seen so far; without it the postmaster would outlive the test.
            eprintln!("the PostgreSQL watchdog did not stop the postmaster in time; killing it");
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(self.postmaster.to_string())
                .status();
            let _ = self.watchdog.kill();
            let _ = self.watchdog.wait();
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Starts the watchdog and its postmaster on a free port and waits until the server
/// accepts connections. `Err(log)` if the postmaster exited instead (typically: the port
/// was taken meanwhile); the data dir stays for another attempt.
fn spawn_postmaster(
    bin: &Path,
    dir: &Path,
    owner: Option<(u32, u32)>,
    settings: &[String],
) -> Result<(Child, u32, u16), String> {
    let port = free_port();
    let mut watchdog = as_owner(Command::new("/bin/sh"), owner, dir)
        .arg("-c")
        .arg(WATCHDOG)
        .arg("switchboard-postgres-watchdog")
        .arg(bin.join("postgres"))
        .arg(dir)
        .arg(port.to_string())
        .args(settings.iter().flat_map(|setting| ["-c", setting.as_str()]))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        // Written to after the test process may be gone: not a pipe that could break.
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("/bin/sh runs");
    let mut line = String::new();
    BufReader::new(watchdog.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("read the watchdog's stdout");
    let Ok(postmaster) = line.trim().parse::<u32>() else {
        stop(&mut watchdog, true);
        panic!("the PostgreSQL watchdog printed {line:?} instead of the postmaster's PID");
    };

    let started = Instant::now();
    loop {
        if !alive(postmaster) {
            stop(&mut watchdog, true);
            let log = std::fs::read_to_string(dir.join("pg.log")).unwrap_or_default();
            return Err(format!("postgres on port {port} exited:\n{log}"));
        }
        let ready = Command::new(bin.join("pg_isready"))
            .args(["-q", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-p"])
            .arg(port.to_string())
            .status()
            .expect("pg_isready runs");
        if ready.success() {
            return Ok((watchdog, postmaster, port));
        }
        if started.elapsed() > DEADLINE {
            stop(&mut watchdog, true);
            let log = std::fs::read_to_string(dir.join("pg.log")).unwrap_or_default();
            panic!("PostgreSQL on port {port} did not accept connections after {DEADLINE:?}:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Tells the watchdog to stop the postmaster (and to remove the dir unless `keep`), and
/// waits for it. Whether it exited within [`DEADLINE`].
fn stop(watchdog: &mut Child, keep: bool) -> bool {
    // Either way the pipe is dropped here: end of file for the watchdog.
    if let Some(mut stdin) = watchdog.stdin.take()
        && keep
    {
        let _ = stdin.write_all(b"keep\n");
    }
    let started = Instant::now();
    while started.elapsed() < DEADLINE {
        if watchdog.try_wait().expect("wait for the watchdog").is_some() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

/// Whether process `pid` runs: neither gone nor a zombie waiting for its parent.
fn alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // "PID (COMM) STATE …", where COMM may itself hold spaces and parentheses.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next());
    !matches!(state, Some('Z' | 'X') | None)
}

/// The `bin` dir of the highest PostgreSQL version installed.
fn bin_dir() -> PathBuf {
    bin_dir_in(Path::new(VERSIONS_DIR))
}

/// The `bin` dir of the highest version under `versions` that has a `postgres` binary.
fn bin_dir_in(versions: &Path) -> PathBuf {
    let entries = std::fs::read_dir(versions).unwrap_or_else(|_| panic!("{NOT_INSTALLED}"));
    entries
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version: Vec<u32> = entry
                .file_name()
                .to_str()?
                .split('.')
                .map(|part| part.parse().ok())
                .collect::<Option<_>>()?;
            let bin = entry.path().join("bin");
            bin.join("postgres").is_file().then_some((version, bin))
        })
        .max()
        .map(|(_, bin)| bin)
        .unwrap_or_else(|| panic!("{NOT_INSTALLED}"))
}

/// `Some(uid, gid)` of the system user `postgres` when this process runs as root, as
/// initdb and postgres refuse root; `None` when it can run them itself.
fn owner() -> Option<(u32, u32)> {
    // /proc/self belongs to the process's effective user.
    let euid = std::fs::metadata("/proc/self").expect("/proc is mounted").uid();
    if euid != 0 {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let fields: Vec<&str> = passwd
        .lines()
        .map(|line| line.split(':').collect::<Vec<_>>())
        .find(|fields| fields[0] == "postgres")
        .unwrap_or_else(|| panic!("no system user postgres to run PostgreSQL as: {NOT_INSTALLED}"));
    Some((fields[2].parse().unwrap(), fields[3].parse().unwrap()))
}

/// `command` run from `dir`, as `owner` when one is given.
fn as_owner(mut command: Command, owner: Option<(u32, u32)>, dir: &Path) -> Command {
    // Not the caller's dir: the postgres user may not be allowed into it.
    command.current_dir(dir);
    if let Some((uid, gid)) = owner {
        command.uid(uid).gid(gid);
    }
    command
}

/// A loopback port that was free a moment ago.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free loopback port");
    listener.local_addr().unwrap().port()
}

/// Runs `work` off the async runtime (initdb takes about a second), passing its panic on.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(work).await {
        Ok(value) => value,
        Err(error) => std::panic::resume_unwind(error.into_panic()),
    }
}

#[cfg(test)]
mod tests;
