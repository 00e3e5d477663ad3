//! Real mail servers for the email-channel tests: a private Dovecot (IMAP, and LMTP to
//! deliver into it) and an SMTP server (`smtp_relay.py` beside this crate, aiosmtpd) that keeps
//! a copy of every message it accepts and relays it into that Dovecot over LMTP. Each is
//! a private instance on free loopback ports in its own temp dir, so tests run in parallel.
//!
//! A crate of its own because several programs start them: the black-box tests, the
//! manual-clock tests (tests/escalation) and the benchmark program's email scenario.
//! [`email_inbox`] is the daemon's config for them.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use futures_util::TryStreamExt;
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod inbox;

pub use inbox::{CUSTOMER, OTHER, SUPPORT, email_inbox, mail, password_file, plain_servers};

/// How long any awaited effect may take before the caller fails.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// Polls `probe` until it returns `Some`, or panics after [`DEADLINE`].
pub async fn eventually<T, F, Fut>(what: &str, probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    eventually_within(what, DEADLINE, probe).await
}

/// [`eventually`] for an effect that takes longer by design (a lease running out).
pub async fn eventually_within<T, F, Fut>(what: &str, deadline: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(started.elapsed() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Every mailbox's password, and the TLS relay's.
pub const PASSWORD: &str = "secret";
/// The login the TLS relay requires.
pub const RELAY_USER: &str = "support@test.local";
/// The mailboxes every Dovecot has.
pub const USERS: [&str; 3] = [SUPPORT, CUSTOMER, OTHER];
/// Not `python3`: that may be a pyenv shim without aiosmtpd.
const PYTHON: &str = "/usr/bin/python3";
const RELAY_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/smtp_relay.py");
/// Starts are retried with fresh ports when a port picked as free was taken meanwhile.
const START_ATTEMPTS: usize = 3;

/// A private Dovecot. Stopped on drop; its log is printed when a test fails.
pub struct Dovecot {
    dir: TempDir,
    child: Child,
    imap_port: u16,
    lmtp_port: u16,
    /// IMAP over TLS, when started with a certificate.
    imaps_port: Option<u16>,
}

impl Dovecot {
    /// Starts an instance and waits until a user can log in over IMAP.
    pub async fn start() -> Dovecot {
        Dovecot::start_with(None, true).await
    }

    /// Also serves IMAP over TLS (`imaps_port`) with a certificate of `ca`.
    pub async fn start_with_tls(ca: &TestCa) -> Dovecot {
        Dovecot::start_with(Some(ca), true).await
    }

    /// A server that does not announce IDLE, as some providers' do not: clients must poll.
    pub async fn start_without_idle() -> Dovecot {
        Dovecot::start_with(None, false).await
    }

    async fn start_with(tls: Option<&TestCa>, idle: bool) -> Dovecot {
        let mut failures = Vec::new();
        for _ in 0..START_ATTEMPTS {
            match Dovecot::try_start(tls, idle).await {
                Ok(dovecot) => return dovecot,
                Err(failure) => failures.push(failure),
            }
        }
        panic!("Dovecot did not start:\n{}", failures.join("\n----\n"));
    }

    /// `Err(log)` if Dovecot exited while starting (typically a port taken meanwhile).
    async fn try_start(tls: Option<&TestCa>, idle: bool) -> Result<Dovecot, String> {
        let dir = tempfile::tempdir().expect("a temp dir for Dovecot");
        let [imap_port, lmtp_port, imaps_port] = free_ports();
        let imaps_port = tls.map(|_| imaps_port);
        write_config(dir.path(), imap_port, lmtp_port, tls.zip(imaps_port), idle);
        let log = log_file(&dir.path().join("dovecot.log"));
        let child = Command::new("/usr/sbin/dovecot")
            .arg("-F")
            .arg("-c")
            .arg(dir.path().join("dovecot.conf"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("dovecot starts (apt-get install dovecot-imapd dovecot-lmtpd)");
        // From here on, Drop stops it and prints the log if a test panics.
        let mut dovecot = Dovecot {
            dir,
            child,
            imap_port,
            lmtp_port,
            imaps_port,
        };
        // Ready means a login works, not only an open port.
        let started = Instant::now();
        loop {
            if let Some(status) = dovecot.child.try_wait().unwrap() {
                return Err(format!("dovecot exited with {status}:\n{}", dovecot.log()));
            }
            match imap_login(imap_port, USERS[0]).await {
                Ok(mut session) => {
                    session.logout().await.expect("LOGOUT");
                    // So that a test's first `kick` or `sessions` does not see this probe.
                    eventually("Dovecot to forget the readiness probe's session", || async {
                        (dovecot.sessions(USERS[0]) == 0).then_some(())
                    })
                    .await;
                    return Ok(dovecot);
                }
                Err(error) => assert!(
                    started.elapsed() < DEADLINE,
                    "Dovecot was not ready for an IMAP login after {DEADLINE:?}: {error}"
                ),
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub fn imap_port(&self) -> u16 {
        self.imap_port
    }

    /// IMAP over TLS; only for an instance started with [`Dovecot::start_with_tls`].
    pub fn imaps_port(&self) -> u16 {
        self.imaps_port.expect("this Dovecot was started without TLS")
    }

    pub fn lmtp_port(&self) -> u16 {
        self.lmtp_port
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dovecot.log")).unwrap_or_default()
    }

    /// A logged-in IMAP session of `user`.
    pub async fn imap(&self, user: &str) -> async_imap::Session<TcpStream> {
        imap_login(self.imap_port, user)
            .await
            .unwrap_or_else(|error| panic!("IMAP login of {user}: {error}"))
    }

    /// Delivers `raw` into `user`'s INBOX over LMTP. Line endings become CRLF; Dovecot
    /// prepends `Return-Path`, `Delivered-To` and `Received`.
    pub async fn deliver(&self, user: &str, raw: &[u8]) {
        self.deliver_from("", user, raw).await;
    }

    /// [`Dovecot::deliver`] with `envelope_sender` as `MAIL FROM` (empty: the null
    /// sender `<>` of bounces), which Dovecot records as the mail's `Return-Path`.
    pub async fn deliver_from(&self, envelope_sender: &str, user: &str, raw: &[u8]) {
        tokio::time::timeout(DEADLINE, lmtp_deliver(self.lmtp_port, envelope_sender, user, raw))
            .await
            .unwrap_or_else(|_| panic!("LMTP delivery to {user} took over {DEADLINE:?}"));
    }

    /// Every message in `user`'s INBOX, raw as IMAP gives it, in UID order.
    pub async fn messages(&self, user: &str) -> Vec<Vec<u8>> {
        let mut session = self.imap(user).await;
        session.select("INBOX").await.expect("SELECT INBOX");
        let mut fetches: Vec<_> = session
            .uid_fetch("1:*", "(UID BODY.PEEK[])")
            .await
            .expect("UID FETCH")
            .try_collect()
            .await
            .expect("UID FETCH responses");
        fetches.sort_by_key(|fetch| fetch.uid);
        let messages = fetches
            .iter()
            .map(|fetch| fetch.body().expect("a fetched message has a body").to_vec())
            .collect();
        let _ = session.logout().await;
        messages
    }

    /// Drops every IMAP session of `user` (`doveadm kick`) and returns once Dovecot has
    /// closed them. Returns whether there was one: a session counts once logged in, so
    /// wait for [`Dovecot::sessions`] first when the client may still be connecting.
    pub fn kick(&self, user: &str) -> bool {
        let output = self.doveadm(&["kick", user]);
        match output.status.code() {
            Some(0) => {}
            // EX_NOUSER: "No users kicked".
            Some(68) => return false,
            _ => panic!(
                "doveadm kick {user} failed with {}: {}",
                output.status,
                output_text(&output)
            ),
        }
        // doveadm only signals the sessions' processes; they close on their own time.
        let started = Instant::now();
        while self.sessions(user) > 0 {
            assert!(
                started.elapsed() < DEADLINE,
                "{user}'s sessions outlived the kick by {DEADLINE:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        true
    }

    /// How many logged-in IMAP sessions `user` has (`doveadm who`).
    pub fn sessions(&self, user: &str) -> usize {
        let output = self.doveadm(&["-f", "tab", "who", "-1", user]);
        assert!(output.status.success(), "doveadm who failed: {}", output_text(&output));
        // A header line, then one line per session.
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .skip(1)
            .filter(|line| !line.is_empty())
            .count()
    }

    fn doveadm(&self, args: &[&str]) -> std::process::Output {
        Command::new("doveadm")
            .arg("-c")
            .arg(self.dir.path().join("dovecot.conf"))
            .args(args)
            .output()
            .expect("doveadm runs")
    }
}

fn output_text(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        // SIGTERM lets the master stop its children; SIGKILL would orphan them.
        terminate(&mut self.child, Duration::from_secs(5));
        if std::thread::panicking() {
            eprintln!("---- dovecot log ----\n{}", self.log());
        }
    }
}

/// The mail user is the system user `dovecot`, as Dovecot refuses to run mail as root.
fn write_config(dir: &Path, imap_port: u16, lmtp_port: u16, tls: Option<(&TestCa, u16)>, idle: bool) {
    static INSTANCES: AtomicU32 = AtomicU32::new(0);
    let instance = format!(
        "switchboard-test-{}-{}",
        std::process::id(),
        INSTANCES.fetch_add(1, Ordering::Relaxed)
    );
    let (uid, gid) = system_user("dovecot");
    let d = dir.display();
    // TLS on the imaps port only; the plain port stays for the harness's own sessions.
    let (ssl, imaps_port) = match tls {
        Some((ca, port)) => (
            format!(
                "ssl = yes\nssl_cert = <{}\nssl_key = <{}",
                ca.cert_path().display(),
                ca.key_path().display()
            ),
            port,
        ),
        None => ("ssl = no".to_owned(), 0),
    };
    // The capabilities announced after login, without IDLE (the server still knows it).
    let capability = if idle {
        ""
    } else {
        "imap_capability = IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE LITERAL+ UIDPLUS NAMESPACE UNSELECT"
    };
    // Self-contained: nothing from /etc/dovecot. Every `{` must end its line.
    let config = format!(
        r#"instance_name = {instance}
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
protocols = imap lmtp
listen = 127.0.0.1
{capability}
{ssl}
disable_plaintext_auth = no
default_login_user = dovenull
default_internal_user = dovecot
# The default (500) refuses system users such as dovecot as mail users.
first_valid_uid = {uid}
mail_location = maildir:~/Maildir
passdb {{
  driver = passwd-file
  args = {d}/users
}}
userdb {{
  driver = passwd-file
  args = {d}/users
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps_port}
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {lmtp_port}
  }}
}}
service anvil {{
  chroot =
}}
"#
    );
    std::fs::write(dir.join("dovecot.conf"), config).unwrap();
    let users: String = USERS
        .iter()
        .map(|user| {
            let local = user.split('@').next().unwrap();
            format!("{user}:{{PLAIN}}{PASSWORD}:{uid}:{gid}::{d}/mail/{local}\n")
        })
        .collect();
    std::fs::write(dir.join("users"), users).unwrap();
    std::fs::create_dir(dir.join("mail")).unwrap();
    run(Command::new("chown")
        .arg("-R")
        .arg(format!("{uid}:{gid}"))
        .arg(dir.join("mail")));
    // The mail user must reach its home inside the (root-owned, 0700) temp dir.
    run(Command::new("chmod").arg("755").arg(dir));
}

/// `(uid, gid)` of a system user, from /etc/passwd.
fn system_user(name: &str) -> (u32, u32) {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let fields: Vec<&str> = passwd
        .lines()
        .map(|line| line.split(':').collect::<Vec<_>>())
        .find(|fields| fields[0] == name)
        .unwrap_or_else(|| panic!("no system user {name} (is dovecot-core installed?)"));
    (fields[2].parse().unwrap(), fields[3].parse().unwrap())
}

async fn imap_login(port: u16, user: &str) -> Result<async_imap::Session<TcpStream>, String> {
    let stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|error| format!("connect to 127.0.0.1:{port}: {error}"))?;
    let mut client = async_imap::Client::new(stream);
    // `Client::new` does not read the greeting, and `login` would take it as its answer.
    client
        .read_response()
        .await
        .map_err(|error| format!("IMAP greeting: {error}"))?
        .ok_or("the connection closed before the IMAP greeting")?;
    client
        .login(user, PASSWORD)
        .await
        .map_err(|(error, _)| format!("LOGIN {user}: {error}"))
}

async fn lmtp_deliver(port: u16, envelope_sender: &str, user: &str, raw: &[u8]) {
    let stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap_or_else(|error| panic!("connect to LMTP at 127.0.0.1:{port}: {error}"));
    let mut lmtp = tokio::io::BufReader::new(stream);
    lmtp_reply(&mut lmtp, "the greeting").await;
    let mut data = dot_stuff(&crlf(raw));
    data.extend_from_slice(b".\r\n");
    let steps: [(&str, Vec<u8>); 6] = [
        ("LHLO", b"LHLO localhost\r\n".to_vec()),
        ("MAIL FROM", format!("MAIL FROM:<{envelope_sender}>\r\n").into_bytes()),
        ("RCPT TO", format!("RCPT TO:<{user}>\r\n").into_bytes()),
        ("DATA", b"DATA\r\n".to_vec()),
        ("the message", data),
        ("QUIT", b"QUIT\r\n".to_vec()),
    ];
    for (step, bytes) in steps {
        lmtp.get_mut().write_all(&bytes).await.expect("write to LMTP");
        lmtp_reply(&mut lmtp, step).await;
    }
}

/// Reads one (possibly multi-line) reply and fails the test unless it is 2xx or 3xx.
async fn lmtp_reply(lmtp: &mut tokio::io::BufReader<TcpStream>, step: &str) {
    let mut reply = String::new();
    loop {
        let start = reply.len();
        let read = lmtp.read_line(&mut reply).await.expect("read from LMTP");
        let line = &reply[start..];
        assert!(
            read > 0,
            "LMTP closed the connection after {step}; replied so far: {reply:?}"
        );
        // The last line of a reply has a space after the code, the others a dash.
        if line.as_bytes().get(3) != Some(&b'-') {
            break;
        }
    }
    assert!(
        reply.starts_with('2') || reply.starts_with('3'),
        "LMTP refused {step}: {}",
        reply.trim_end()
    );
}

/// `raw` with CRLF line endings, ending in CRLF: how mail travels and how Dovecot stores it.
pub fn crlf(raw: &[u8]) -> Vec<u8> {
    let raw = raw.strip_suffix(b"\n").unwrap_or(raw);
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 32);
    for line in raw.split(|&byte| byte == b'\n') {
        out.extend_from_slice(line.strip_suffix(b"\r").unwrap_or(line));
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// A line starting with `.` gets another, so it cannot end the DATA (RFC 5321 4.5.2).
fn dot_stuff(crlf: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(crlf.len() + 16);
    for line in crlf.split_inclusive(|&byte| byte == b'\n') {
        if line.starts_with(b".") {
            out.push(b'.');
        }
        out.extend_from_slice(line);
    }
    out
}

/// The SMTP server the daemon sends to. Killed on drop; its log is printed when a test fails.
pub struct SmtpRelay {
    dir: TempDir,
    port: u16,
    lmtp_port: u16,
    /// Certificate and key: the server then requires STARTTLS, and AUTH as
    /// [`RELAY_USER`] with [`PASSWORD`].
    tls: Option<(PathBuf, PathBuf)>,
    child: Option<Child>,
}

impl SmtpRelay {
    /// Starts a relay into `dovecot` on a free loopback port.
    pub async fn start(dovecot: &Dovecot) -> SmtpRelay {
        SmtpRelay::start_with(dovecot, None).await
    }

    /// A submission server: STARTTLS with a certificate of `ca`, then AUTH as
    /// [`RELAY_USER`] with [`PASSWORD`].
    pub async fn start_with_tls(dovecot: &Dovecot, ca: &TestCa) -> SmtpRelay {
        SmtpRelay::start_with(dovecot, Some(ca)).await
    }

    async fn start_with(dovecot: &Dovecot, tls: Option<&TestCa>) -> SmtpRelay {
        let mut failures = Vec::new();
        for _ in 0..START_ATTEMPTS {
            let mut relay = SmtpRelay {
                dir: tempfile::tempdir().expect("a temp dir for the SMTP relay"),
                port: free_ports::<1>()[0],
                lmtp_port: dovecot.lmtp_port(),
                tls: tls.map(|ca| (ca.cert_path(), ca.key_path())),
                child: None,
            };
            match relay.spawn().await {
                Ok(()) => return relay,
                Err(failure) => failures.push(failure),
            }
        }
        panic!("the SMTP relay did not start:\n{}", failures.join("\n----\n"));
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server (SIGTERM) and waits for its exit: the port refuses connections.
    pub async fn stop(&mut self) {
        let mut child = self.child.take().expect("the SMTP relay is running");
        kill("-TERM", &child);
        let status = eventually("the SMTP relay to exit after SIGTERM", || {
            let status = child.try_wait().unwrap();
            async move { status }
        })
        .await;
        assert!(status.success(), "the SMTP relay exited with {status}:\n{}", self.log());
    }

    /// Stops the server if it runs, and starts it again on the same port and directory.
    pub async fn restart(&mut self) {
        if self.child.is_some() {
            self.stop().await;
        }
        // The port was just released; should something hold it a moment, try again.
        let started = Instant::now();
        while let Err(failure) = self.spawn().await {
            assert!(
                started.elapsed() < DEADLINE,
                "the SMTP relay did not restart on port {}: {failure}",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Every message the server accepted, raw as received, in order (across restarts).
    pub fn sent(&self) -> Vec<Vec<u8>> {
        let mut files: Vec<(u64, PathBuf)> = std::fs::read_dir(self.dir.path().join("sent"))
            .expect("the relay's sent dir")
            .map(|entry| entry.unwrap().path())
            // Only complete files: the relay writes `.N.tmp` and renames it to `N.eml`.
            .filter(|path| path.extension().is_some_and(|extension| extension == "eml"))
            .map(|path| {
                let number = path.file_stem().unwrap().to_str().unwrap().parse().unwrap();
                (number, path)
            })
            .collect();
        files.sort();
        files.iter().map(|(_, path)| std::fs::read(path).unwrap()).collect()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("relay.log")).unwrap_or_default()
    }

    /// Runs the script and waits for its "ready"; `Err(log)` if it exits instead.
    async fn spawn(&mut self) -> Result<(), String> {
        let mut command = Command::new(PYTHON);
        command
            .arg(RELAY_SCRIPT)
            .arg("--listen-port")
            .arg(self.port.to_string())
            .arg("--lmtp-port")
            .arg(self.lmtp_port.to_string())
            .arg("--dir")
            .arg(self.dir.path());
        if let Some((cert, key)) = &self.tls {
            command
                .arg("--tls-cert")
                .arg(cert)
                .arg("--tls-key")
                .arg(key)
                .arg("--require-auth")
                .arg(format!("{RELAY_USER}:{PASSWORD}"));
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(log_file(&self.dir.path().join("relay.log")))
            .spawn()
            .expect("the SMTP relay starts (apt-get install python3-aiosmtpd)");
        let stdout = child.stdout.take().unwrap();
        self.child = Some(child);
        let first_line = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            BufReader::new(stdout).read_line(&mut line).map(|_| line)
        });
        let first_line = tokio::time::timeout(DEADLINE, first_line)
            .await
            .unwrap_or_else(|_| panic!("the SMTP relay was not ready after {DEADLINE:?}:\n{}", self.log()))
            .unwrap()
            .expect("read the SMTP relay's stdout");
        if first_line.trim() == "ready" {
            return Ok(());
        }
        // It said nothing and exited: read its reason after it is gone.
        let mut child = self.child.take().unwrap();
        let _ = child.kill();
        let _ = child.wait();
        Err(format!("the SMTP relay printed {first_line:?}:\n{}", self.log()))
    }
}

impl Drop for SmtpRelay {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("---- SMTP relay log ----\n{}", self.log());
        }
    }
}

/// Distinct loopback ports that were free a moment ago.
/// A private certificate authority and a server certificate it signed for `localhost`
/// and 127.0.0.1, made with the openssl command line, for the TLS paths.
pub struct TestCa {
    dir: TempDir,
}

impl TestCa {
    pub fn new() -> TestCa {
        let dir = tempfile::tempdir().expect("a temp dir for the test CA");
        let d = dir.path();
        let openssl = |args: &[&str]| {
            run(Command::new("openssl")
                .current_dir(d)
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null()))
        };
        // P-256 keys: generated in milliseconds, unlike RSA.
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=Switchboard Test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ]);
        std::fs::write(
            d.join("server.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
             keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ]);
        // Dovecot's unprivileged processes read nothing here; the master reads as root.
        TestCa { dir }
    }

    /// The CA certificate a client must trust.
    pub fn ca_path(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    pub fn cert_path(&self) -> PathBuf {
        self.dir.path().join("server.pem")
    }

    pub fn key_path(&self) -> PathBuf {
        self.dir.path().join("server.key")
    }
}

impl Default for TestCa {
    fn default() -> Self {
        TestCa::new()
    }
}

fn free_ports<const N: usize>() -> [u16; N] {
    // Held together, so the kernel gives distinct ones.
    let listeners: [std::net::TcpListener; N] =
        std::array::from_fn(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free loopback port"));
    listeners.map(|listener| listener.local_addr().unwrap().port())
}

fn log_file(path: &Path) -> File {
    OpenOptions::new().create(true).append(true).open(path).unwrap()
}

fn run(command: &mut Command) {
    let status = command.status().unwrap_or_else(|error| panic!("{command:?}: {error}"));
    assert!(status.success(), "{command:?} failed with {status}");
}

fn kill(signal: &str, child: &Child) {
    run(Command::new("kill").arg(signal).arg(child.id().to_string()));
}

/// SIGTERM, up to `grace` for the exit, then SIGKILL.
fn terminate(child: &mut Child, grace: Duration) {
    if child.try_wait().unwrap().is_some() {
        return;
    }
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let started = Instant::now();
    while started.elapsed() < grace {
        if child.try_wait().unwrap().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[cfg(test)]
mod tests {
    use lettre::message::Mailbox;
    use lettre::transport::smtp::{Error as SmtpError, response::Response};
    use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

    use super::*;

    fn fixtures() -> Vec<(PathBuf, Vec<u8>)> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/email");
        let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|extension| extension == "eml"))
            .collect();
        paths.sort();
        paths
            .into_iter()
            .map(|path| {
                let raw = std::fs::read(&path).unwrap();
                (path, raw)
            })
            .collect()
    }

    #[tokio::test]
    async fn dovecot_keeps_what_lmtp_delivers_byte_for_byte() {
        let dovecot = Dovecot::start().await;
        let handmade = b"From: Alice <alice@example.org>\nTo: support@test.local\nSubject: dots\n\n\
            .leading dot\n..two dots\n.\nno newline at the end"
            .to_vec();
        let mut sent = vec![(PathBuf::from("handmade"), handmade)];
        sent.extend(fixtures());
        for (_, raw) in &sent {
            dovecot.deliver("support@test.local", raw).await;
        }

        let inbox = dovecot.messages("support@test.local").await;
        assert_eq!(inbox.len(), sent.len());
        for ((path, raw), stored) in sent.iter().zip(&inbox) {
            assert!(
                stored.starts_with(b"Return-Path: <>\r\nDelivered-To: support@test.local\r\n"),
                "{}: no trace headers",
                path.display()
            );
            // IMAP literals cannot carry NUL: Dovecot sends 0x80 in its place.
            let expected: Vec<u8> = crlf(raw)
                .iter()
                .map(|&byte| if byte == 0 { 0x80 } else { byte })
                .collect();
            assert!(
                stored.ends_with(&expected),
                "{} came back changed:\n{}",
                path.display(),
                String::from_utf8_lossy(stored)
            );
        }
        assert!(dovecot.messages("other@test.local").await.is_empty());
    }

    fn mail(to: &str, subject: &str) -> Message {
        Message::builder()
            .from("Shop <shop@example.org>".parse::<Mailbox>().unwrap())
            .to(to.parse::<Mailbox>().unwrap())
            .subject(subject)
            .body(format!("This is {subject}.\n"))
            .unwrap()
    }

    async fn send(port: u16, message: Message) -> Result<Response, SmtpError> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
            .port(port)
            .build();
        tokio::time::timeout(DEADLINE, transport.send(message))
            .await
            .expect("lettre gave up in time")
    }

    fn io_error_kind(error: &SmtpError) -> Option<std::io::ErrorKind> {
        let mut source = std::error::Error::source(error);
        while let Some(error) = source {
            if let Some(io) = error.downcast_ref::<std::io::Error>() {
                return Some(io.kind());
            }
            source = error.source();
        }
        None
    }

    #[tokio::test]
    async fn smtp_relay_delivers_rejects_and_restarts() {
        let dovecot = Dovecot::start().await;
        let mut relay = SmtpRelay::start(&dovecot).await;
        let port = relay.port();

        send(port, mail("customer@test.local", "first"))
            .await
            .expect("send first");
        // The relay answers only after LMTP delivered, so it is there already.
        let inbox = dovecot.messages("customer@test.local").await;
        let sent = relay.sent();
        assert_eq!((inbox.len(), sent.len()), (1, 1));
        assert!(inbox[0].ends_with(&sent[0]), "{}", String::from_utf8_lossy(&inbox[0]));
        assert!(String::from_utf8_lossy(&sent[0]).contains("Subject: first\r\n"));

        let rejected = send(port, mail("x@reject.test", "rejected")).await.unwrap_err();
        assert!(rejected.is_permanent(), "not permanent: {rejected}");
        assert!(rejected.to_string().contains("mailbox unavailable"), "{rejected}");
        assert_eq!(relay.sent().len(), 1);

        relay.stop().await;
        let refused = TcpStream::connect(("127.0.0.1", port)).await.unwrap_err();
        assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
        let down = send(port, mail("customer@test.local", "while down")).await.unwrap_err();
        assert!(!down.is_permanent(), "{down}");
        assert_eq!(
            io_error_kind(&down),
            Some(std::io::ErrorKind::ConnectionRefused),
            "{down:?}"
        );

        relay.restart().await;
        assert_eq!(relay.port(), port);
        send(port, mail("customer@test.local", "second"))
            .await
            .expect("send after restart");
        let inbox = dovecot.messages("customer@test.local").await;
        let sent = relay.sent();
        assert_eq!((inbox.len(), sent.len()), (2, 2));
        assert!(inbox[1].ends_with(&sent[1]));
        assert!(String::from_utf8_lossy(&sent[1]).contains("Subject: second\r\n"));
        assert!(dovecot.messages("support@test.local").await.is_empty());
    }

    #[tokio::test]
    async fn dovecot_kick_drops_that_users_imap_sessions() {
        let dovecot = Dovecot::start().await;
        assert!(!dovecot.kick("support@test.local"), "kicked a session nobody opened");
        // As a client given only the port connects, the way the daemon will.
        let mut support = imap_login(dovecot.imap_port(), "support@test.local").await.unwrap();
        let mut customer = dovecot.imap("customer@test.local").await;
        support.select("INBOX").await.unwrap();
        support.noop().await.expect("NOOP before the kick");

        // Dovecot counts a session shortly after its login, as the daemon's tests will wait.
        for user in ["support@test.local", "customer@test.local"] {
            eventually(&format!("{user}'s session to count"), || async {
                (dovecot.sessions(user) == 1).then_some(())
            })
            .await;
        }
        assert!(dovecot.kick("support@test.local"), "no session of support to kick");
        assert_eq!(dovecot.sessions("support@test.local"), 0);
        let after = tokio::time::timeout(DEADLINE, support.noop())
            .await
            .expect("NOOP after the kick answers");
        assert!(after.is_err(), "the kicked session still answers NOOP");
        assert_eq!(dovecot.sessions("customer@test.local"), 1);
        customer.noop().await.expect("another user's session survives");
    }
}
