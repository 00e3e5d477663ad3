//! A real headless browser, driven through its WebDriver server, for tests of what the
//! daemon shows a person in a browser: Chromium through chromedriver (Debian's packages),
//! or Firefox ESR (Debian's) through geckodriver (Mozilla's, built from crates.io).
//! scripts/test installs them; a test never downloads a browser.
//!
//! Every helper waits with a deadline rather than sleeping, and panics with what it waited
//! for and the page it was on.

use std::future::Future;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::cookies::Cookie;
use fantoccini::elements::Element;
pub use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use tempfile::TempDir;

pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const FIREFOX: &str = "/usr/bin/firefox-esr";

/// Which browser a session runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Chromium,
    Firefox,
}

impl Engine {
    /// The WebDriver server: chromedriver where Debian puts it; geckodriver where
    /// `cargo install` puts it (`$CARGO_HOME/bin`), else on the `PATH`.
    fn driver(self) -> PathBuf {
        match self {
            Engine::Chromium => PathBuf::from(CHROMEDRIVER),
            Engine::Firefox => {
                let cargo_home = std::env::var_os("CARGO_HOME")
                    .map(PathBuf::from)
                    .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cargo")));
                let path = std::env::var_os("PATH").unwrap_or_default();
                let candidates = cargo_home
                    .map(|home| home.join("bin"))
                    .into_iter()
                    .chain(std::env::split_paths(&path));
                candidates
                    .map(|dir| dir.join("geckodriver"))
                    .find(|path| path.exists())
                    .unwrap_or_else(|| PathBuf::from("geckodriver"))
            }
        }
    }

    fn binary(self) -> &'static str {
        match self {
            Engine::Chromium => CHROMIUM,
            Engine::Firefox => FIREFOX,
        }
    }

    fn driver_args(self, port: u16) -> Vec<String> {
        match self {
            Engine::Chromium => vec![format!("--port={port}")],
            Engine::Firefox => vec!["--port".into(), port.to_string(), "--host".into(), "127.0.0.1".into()],
        }
    }

    /// The session's browser options: headless, a fresh profile under `dir`, and no
    /// reaching for the internet (this machine refuses it).
    fn options(self, dir: &Path) -> (&'static str, Value) {
        let profile = dir.join("profile");
        match self {
            Engine::Chromium => (
                "goog:chromeOptions",
                json!({
                    "binary": CHROMIUM,
                    "args": [
                        "--headless",
                        // As root, Chromium refuses to start with its sandbox.
                        "--no-sandbox",
                        "--disable-gpu",
                        // Without these Chromium keeps trying to reach the internet, which
                        // this machine refuses.
                        "--disable-quic",
                        "--no-first-run",
                        "--disable-background-networking",
                        "--disable-component-update",
                        "--disable-sync",
                        format!("--window-size={},{}", WINDOW.0, WINDOW.1),
                        format!("--user-data-dir={}", profile.display()),
                    ],
                }),
            ),
            Engine::Firefox => {
                std::fs::create_dir_all(&profile).unwrap();
                (
                    "moz:firefoxOptions",
                    json!({
                        "binary": FIREFOX,
                        "args": ["-headless", "-profile", profile,
                                 "-width", WINDOW.0.to_string(), "-height", WINDOW.1.to_string()],
                        "prefs": {
                            "app.update.enabled": false,
                            "app.normandy.enabled": false,
                            "browser.safebrowsing.malware.enabled": false,
                            "browser.safebrowsing.phishing.enabled": false,
                            "browser.shell.checkDefaultBrowser": false,
                            "datareporting.policy.dataSubmissionEnabled": false,
                            "extensions.update.enabled": false,
                            "network.captive-portal-service.enabled": false,
                            "network.connectivity-service.enabled": false,
                            "toolkit.telemetry.enabled": false,
                        },
                    }),
                )
            }
        }
    }
}

/// How long a helper waits for the page to reach what it asked for.
pub const WAIT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(20);
/// How long chromedriver may take to start, and Chromium to quit.
const PROCESS_DEADLINE: Duration = Duration::from_secs(20);
const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

/// The window size a session opens with: a laptop's, so a layout has room for its
/// side panels unless a test narrows it. The page gets the width and a little less
/// height (see [`Browser::set_window_size`]).
pub const WINDOW: (u32, u32) = (1280, 900);

/// Whether the engine's browser and WebDriver server are installed. A browser test fails
/// without them rather than skip, so that a missing install cannot pass for green.
pub fn available(engine: Engine) -> bool {
    engine.driver().exists() && Path::new(engine.binary()).exists()
}

/// One chromedriver with one browser session, in a temp dir of its own.
pub struct Browser {
    client: Client,
    /// Ended in `Drop` over a blocking request, since the runtime may be gone by then.
    session_id: String,
    /// In its own process group, so that `Drop` kills it together with the Chromium
    /// processes it started, even if the session could not be ended.
    chromedriver: Child,
    port: u16,
    /// Chromium's profile and config: every process it starts names this path on its
    /// command line, which is how `Drop` finds any that left the process group.
    dir: TempDir,
    wait: Duration,
}

impl Browser {
    /// Starts Chromium: [`Browser::start_with`].
    pub async fn start() -> Browser {
        Browser::start_with(Engine::Chromium).await
    }

    /// Starts the engine's WebDriver server on a free loopback port and opens a session
    /// with a fresh profile and a [`WINDOW`]-sized window.
    pub async fn start_with(engine: Engine) -> Browser {
        assert!(
            available(engine),
            "{} or {} is missing: run scripts/test, which installs Debian's chromium, \
             chromium-driver and firefox-esr, and geckodriver from crates.io",
            engine.driver().display(),
            engine.binary()
        );
        let dir = tempfile::tempdir().unwrap();
        // The port is free when picked but may be taken before the driver binds it.
        let mut failures = Vec::new();
        for _ in 0..3 {
            match start_driver(engine, dir.path()).await {
                Ok((driver, port)) => return Browser::open_session(engine, dir, driver, port).await,
                Err(failure) => failures.push(failure),
            }
        }
        panic!("{engine:?}'s WebDriver server did not start:\n{}", failures.join("\n"));
    }

    async fn open_session(engine: Engine, dir: TempDir, mut chromedriver: Child, port: u16) -> Browser {
        let (options_key, options) = engine.options(dir.path());
        let mut capabilities = json!({
            // A page that never loads fails the test in seconds, not WebDriver's 5 minutes.
            "timeouts": { "pageLoad": PROCESS_DEADLINE.as_millis() as u64, "script": WAIT.as_millis() as u64 },
        });
        capabilities[options_key] = options;
        let Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        let connected = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await;
        let client = match connected {
            Ok(client) => client,
            Err(error) => {
                kill_all(&mut chromedriver, dir.path());
                panic!(
                    "the WebDriver server did not open a {engine:?} session: {error}\n---- its log ----\n{}",
                    read_log(dir.path())
                );
            }
        };
        let session_id = client.session_id().await.unwrap().expect("a new session has an id");
        Browser {
            client,
            session_id,
            chromedriver,
            port,
            dir,
            wait: WAIT,
        }
    }

    /// The fantoccini client, for what the helpers do not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Changes how long the helpers wait (default [`WAIT`]).
    pub fn set_wait(&mut self, wait: Duration) {
        self.wait = wait;
    }

    /// Chromium's profile and config dir; every Chromium process of this browser names
    /// it on its command line.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Resizes the window. Its width is the page's, but headless Chromium still keeps
    /// room for a toolbar (143 px with Chromium 156): for the page's own size, see
    /// [`Browser::set_viewport_size`].
    pub async fn set_window_size(&self, width: u32, height: u32) {
        self.client
            .set_window_size(width, height)
            .await
            .unwrap_or_else(|error| panic!("resizing the window to {width}x{height}: {error}"));
    }

    /// Resizes the window so that the page gets `width` x `height` CSS pixels (a phone's
    /// is 375 x 812), and waits until it has them.
    pub async fn set_viewport_size(&self, width: u32, height: u32) {
        self.set_window_size(width, height).await;
        let inner = self
            .execute("return [window.innerWidth, window.innerHeight];", Vec::new())
            .await;
        // The toolbar's room is what the page did not get.
        let window = |requested: u32, got: &Value| {
            let got = got.as_u64().unwrap_or_else(|| panic!("the page's size is {inner}")) as u32;
            requested + requested.saturating_sub(got)
        };
        self.set_window_size(window(width, &inner[0]), window(height, &inner[1]))
            .await;
        self.wait_until(&format!(
            "window.innerWidth === {width} && window.innerHeight === {height}"
        ))
        .await;
    }

    /// Opens `url` and waits for it to load.
    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|error| panic!("opening {url}: {error}"));
    }

    /// The page's URL now.
    pub async fn url(&self) -> String {
        match self.client.current_url().await {
            Ok(url) => url.to_string(),
            Err(error) => format!("(URL unknown: {error})"),
        }
    }

    /// The first element that matches `css`, once one does.
    pub async fn wait_for(&self, css: &str) -> Element {
        let found = self
            .poll(|| async move {
                self.client
                    .find(Locator::Css(css))
                    .await
                    .map_err(|error| error.to_string())
            })
            .await;
        match found {
            Ok(element) => element,
            Err(_) => self.timed_out(format!("no element matches `{css}`")).await,
        }
    }

    /// The first element that matches `css` and whose text contains `text`, once one does.
    pub async fn wait_for_text(&self, css: &str, text: &str) -> Element {
        let found = self
            .poll(|| async move {
                let elements = self
                    .client
                    .find_all(Locator::Css(css))
                    .await
                    .map_err(|error| error.to_string())?;
                let mut seen = Vec::new();
                for element in elements {
                    let Ok(element_text) = element.text().await else {
                        continue;
                    };
                    if element_text.contains(text) {
                        return Ok(element);
                    }
                    seen.push(element_text);
                }
                Err(format!("their texts: {seen:?}"))
            })
            .await;
        match found {
            Ok(element) => element,
            Err(last) => {
                self.timed_out(format!(
                    "no element matching `{css}` has text containing {text:?} ({last})"
                ))
                .await
            }
        }
    }

    /// Waits until the JavaScript expression `expression` is `true` (strictly: a truthy
    /// non-boolean such as a Promise does not count). A throw counts as not yet.
    pub async fn wait_until(&self, expression: &str) {
        let script = &format!("return ({expression});");
        let done = self
            .poll(|| async move {
                match self.client.execute(script, Vec::new()).await {
                    Ok(Value::Bool(true)) => Ok(()),
                    Ok(value) => Err(format!("it was {value}")),
                    Err(error) => Err(format!("it threw: {error}")),
                }
            })
            .await;
        if let Err(last) = done {
            self.timed_out(format!("`{expression}` never became true ({last})"))
                .await
        }
    }

    /// Clicks the first element that matches `css`, once there is one that takes the click
    /// (shown, not covered, enabled).
    pub async fn click(&self, css: &str) {
        let clicked = self
            .poll(|| async move {
                let element = self
                    .client
                    .find(Locator::Css(css))
                    .await
                    .map_err(|error| error.to_string())?;
                element.click().await.map_err(|error| error.to_string())
            })
            .await;
        if let Err(last) = clicked {
            self.timed_out(format!("could not click `{css}` ({last})")).await
        }
    }

    /// Replaces the value of the input or textarea that matches `css` by typing `text`
    /// into it, so the page sees key and input events as from a person.
    pub async fn fill(&self, css: &str, text: &str) {
        let element = self.wait_for(css).await;
        element
            .clear()
            .await
            .unwrap_or_else(|error| panic!("clearing `{css}`: {error}"));
        element
            .send_keys(text)
            .await
            .unwrap_or_else(|error| panic!("typing into `{css}`: {error}"));
    }

    /// Presses `keys` on the element that matches `css`, in order, holding each modifier
    /// (Control, Shift, Alt, Meta) until the last key: `&[Key::Control, Key::Enter]`
    /// is Ctrl+Enter.
    pub async fn press(&self, css: &str, keys: &[Key]) {
        let chord: String = keys.iter().map(|key| char::from(*key)).collect();
        self.wait_for(css)
            .await
            .send_keys(&chord)
            .await
            .unwrap_or_else(|error| panic!("pressing {keys:?} on `{css}`: {error}"));
    }

    /// The rendered text of the first element that matches `css`, once there is one.
    pub async fn text(&self, css: &str) -> String {
        self.wait_for(css)
            .await
            .text()
            .await
            .unwrap_or_else(|error| panic!("reading the text of `{css}`: {error}"))
    }

    /// Runs `script` as a function body (so it needs `return`), with `args` as
    /// `arguments`, and gives back what it returned.
    pub async fn execute(&self, script: &str, args: Vec<Value>) -> Value {
        match self.client.execute(script, args).await {
            Ok(value) => value,
            Err(error) => {
                let url = self.url().await;
                panic!("script failed on {url}: {error}\n{script}")
            }
        }
    }

    /// Every cookie the current page can see, HttpOnly ones included.
    pub async fn cookies(&self) -> Vec<Cookie<'static>> {
        self.client
            .get_all_cookies()
            .await
            .unwrap_or_else(|error| panic!("reading the cookies: {error}"))
    }

    /// The value of the cookie `name`, if the current page has it.
    pub async fn cookie(&self, name: &str) -> Option<String> {
        self.cookies()
            .await
            .into_iter()
            .find(|cookie| cookie.name() == name)
            .map(|cookie| cookie.value().to_owned())
    }

    /// Sets a cookie for the current page's site, written as in a `Set-Cookie` header
    /// (`"name=value; HttpOnly"`). What it leaves out is as a browser would take it:
    /// `Path=/`, `SameSite=Lax`, and the page's host as its domain. Chromedriver
    /// refuses fantoccini's `null` domain, and the `SameSite=None` fantoccini puts in
    /// place of a missing one on plain HTTP.
    pub async fn add_cookie(&self, set_cookie: &str) {
        let parse = |text: String| {
            Cookie::parse(text).unwrap_or_else(|error| panic!("{set_cookie:?} is not a cookie: {error}"))
        };
        let mut cookie = parse(set_cookie.to_owned());
        if cookie.same_site().is_none() {
            cookie = parse(format!("{set_cookie}; SameSite=Lax"));
        }
        if cookie.path().is_none() {
            cookie.set_path("/");
        }
        if cookie.domain().is_none() {
            let url = self
                .client
                .current_url()
                .await
                .unwrap_or_else(|error| panic!("reading the page's URL for a cookie: {error}"));
            let host = url
                .host_str()
                .unwrap_or_else(|| panic!("a cookie needs a page with a host, not {url}"));
            cookie.set_domain(host.to_owned());
        }
        self.client
            .add_cookie(cookie)
            .await
            .unwrap_or_else(|error| panic!("adding the cookie {set_cookie:?}: {error}"));
    }

    pub async fn delete_cookie(&self, name: &str) {
        self.client
            .delete_cookie(name)
            .await
            .unwrap_or_else(|error| panic!("deleting the cookie {name:?}: {error}"));
    }

    /// Saves a PNG of the viewport as `NAME.png` in `$SWITCHBOARD_SCREENSHOTS`, or else
    /// in `screenshots/` of the cargo target dir, and returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self
            .client
            .screenshot()
            .await
            .unwrap_or_else(|error| panic!("taking the screenshot {name}: {error}"));
        assert!(
            png.starts_with(PNG_SIGNATURE),
            "the screenshot {name} is not a PNG ({} bytes)",
            png.len()
        );
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).unwrap_or_else(|error| panic!("creating {}: {error}", dir.display()));
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap_or_else(|error| panic!("writing {}: {error}", path.display()));
        path
    }

    /// Runs `probe` until it succeeds or the wait is over; then its last error.
    async fn poll<T, F, Fut>(&self, mut probe: F) -> Result<T, String>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, String>>,
    {
        let started = Instant::now();
        loop {
            let error = match probe().await {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            if started.elapsed() >= self.wait {
                return Err(error);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    async fn timed_out(&self, what: String) -> ! {
        let url = self.url().await;
        panic!("{what} on {url} after {:?}", self.wait)
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ending the session makes chromedriver quit Chromium cleanly. The request is a
        // blocking one: an async one would need the runtime, which a test may be
        // tearing down.
        if let Err(error) = end_session(self.port, &self.session_id) {
            eprintln!("ending the browser session: {error}");
        }
        kill_all(&mut self.chromedriver, self.dir.path());
        if std::thread::panicking() {
            eprintln!("---- chromedriver log ----\n{}", read_log(self.dir.path()));
        }
    }
}

/// Starts the engine's WebDriver server and waits until its `/status` says it is ready;
/// an error is a failure to report (a taken port, an early exit).
async fn start_driver(engine: Engine, dir: &Path) -> Result<(Child, u16), String> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("bind a free loopback port")
        .port();
    let log = std::fs::File::create(dir.join("chromedriver.log")).unwrap();
    let driver = engine.driver();
    let mut chromedriver = Command::new(&driver)
        .args(engine.driver_args(port))
        // Chromium keeps its crash reports and caches under these, not under its
        // profile; pointed here, nothing is left in the user's home.
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .env("XDG_CACHE_HOME", dir.join("cache"))
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .process_group(0)
        .spawn()
        .unwrap_or_else(|error| panic!("starting {}: {error}", driver.display()));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let status_url = format!("http://127.0.0.1:{port}/status");
    let started = Instant::now();
    loop {
        if let Ok(Some(exit)) = chromedriver.try_wait() {
            return Err(format!(
                "chromedriver on port {port} exited with {exit}: {}",
                read_log(dir)
            ));
        }
        let status = async { http.get(&status_url).send().await?.json::<Value>().await };
        if let Ok(status) = status.await
            && status["value"]["ready"] == Value::Bool(true)
        {
            return Ok((chromedriver, port));
        }
        if started.elapsed() > PROCESS_DEADLINE {
            kill_group(&mut chromedriver);
            return Err(format!(
                "chromedriver on port {port} was not ready after {PROCESS_DEADLINE:?}: {}",
                read_log(dir)
            ));
        }
        tokio::time::sleep(POLL).await;
    }
}

fn end_session(port: u16, session_id: &str) -> std::io::Result<()> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(PROCESS_DEADLINE))?;
    stream.set_write_timeout(Some(PROCESS_DEADLINE))?;
    write!(
        stream,
        "DELETE /session/{session_id} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
         Content-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    // Chromedriver answers once Chromium has quit, and then leaves the connection open
    // despite `Connection: close`: the headers are enough.
    let mut response = Vec::new();
    let mut chunk = [0; 1024];
    while !response.windows(4).any(|window| window == b"\r\n\r\n") {
        let read = stream.read(&mut chunk)?;
        if read == 0 {
            break;
        }
        response.extend_from_slice(&chunk[..read]);
    }
    if response.starts_with(b"HTTP/1.1 200") {
        Ok(())
    } else {
        Err(std::io::Error::other(String::from_utf8_lossy(&response).into_owned()))
    }
}

/// SIGKILL to chromedriver's process group, which holds the Chromium it started, then
/// to any process left that names `dir`.
fn kill_all(chromedriver: &mut Child, dir: &Path) {
    kill_group(chromedriver);
    // Chromium's crash reporter daemonizes out of the process group; it exits by itself
    // once Chromium is gone, and this makes sure.
    let started = Instant::now();
    loop {
        let left = processes_naming(dir);
        if left.is_empty() {
            return;
        }
        if started.elapsed() > PROCESS_DEADLINE {
            eprintln!("browser processes still running after {PROCESS_DEADLINE:?}: {left:?}");
            return;
        }
        let _ = Command::new("kill")
            .arg("-KILL")
            .args(left.iter().map(u32::to_string))
            .stderr(Stdio::null())
            .status();
        std::thread::sleep(POLL);
    }
}

fn kill_group(chromedriver: &mut Child) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", chromedriver.id())])
        .stderr(Stdio::null())
        .status();
    let _ = chromedriver.wait();
}

/// The live processes whose command line contains `path`. A zombie has an empty
/// command line, so it does not count.
pub fn processes_naming(path: &Path) -> Vec<u32> {
    let needle = path.as_os_str().as_encoded_bytes();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|cmdline| cmdline.windows(needle.len()).any(|window| window == needle))
        })
        .collect()
}

fn read_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("chromedriver.log")).unwrap_or_default()
}

fn screenshot_dir() -> PathBuf {
    match std::env::var_os("SWITCHBOARD_SCREENSHOTS") {
        Some(dir) => PathBuf::from(dir),
        // CARGO_TARGET_TMPDIR is `<target>/tmp`; its parent follows CARGO_TARGET_DIR.
        None => Path::new(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .expect("the target tmp dir is inside the target dir")
            .join("screenshots"),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use axum::Router;
    use axum::http::header::SET_COOKIE;
    use axum::response::Html;
    use axum::routing::{get, post};
    use serde_json::json;

    use super::{Browser, Key, PNG_SIGNATURE, processes_naming};

    /// A page that stands in for the console: Ctrl+Enter in the textarea posts its text
    /// to the server and lists the answer; plain Enter is a new line, as in a reply box.
    const PAGE: &str = r#"<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Harness smoke</title>
<style>body { font: 16px sans-serif; margin: 2rem; } textarea { width: 100%; }</style>
</head>
<body>
<h1>Harness smoke</h1>
<textarea id="message" rows="3" placeholder="Ctrl+Enter sends"></textarea>
<button id="clear" type="button">Clear</button>
<p>Sent: <span id="count">0</span></p>
<ul id="log"></ul>
<script>
const message = document.getElementById('message');
const log = document.getElementById('log');
const count = document.getElementById('count');
message.addEventListener('keydown', async (event) => {
  if (event.key !== 'Enter' || !event.ctrlKey) return;
  event.preventDefault();
  const response = await fetch('/echo', { method: 'POST', body: message.value });
  const item = document.createElement('li');
  item.textContent = await response.text();
  log.append(item);
  count.textContent = log.children.length;
  message.value = '';
});
document.getElementById('clear').addEventListener('click', () => {
  log.replaceChildren();
  count.textContent = '0';
});
</script>
</body>
</html>
"#;

    async fn serve_page() -> String {
        let app = Router::new()
            .route(
                "/",
                get(|| async { ([(SET_COOKIE, "visited=yes; Path=/; SameSite=Lax")], Html(PAGE)) }),
            )
            .route("/echo", post(|body: String| async move { format!("echo: {body}") }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{address}/")
    }

    #[tokio::test]
    async fn browser_types_ctrl_enter_into_a_served_page_and_sees_the_answer() {
        let page = serve_page().await;
        let started = Instant::now();
        let browser = Browser::start().await;
        println!("browser started in {:?}", started.elapsed());
        browser.goto(&page).await;

        // The typed newline is a plain Enter: a new line, not a send.
        browser.fill("#message", "first\nline").await;
        browser.press("#message", &[Key::Control, Key::Enter]).await;
        browser.wait_for_text("#log li", "echo: first").await;
        browser
            .wait_until("document.querySelector('#log li').textContent === 'echo: first\\nline'")
            .await;
        assert_eq!(browser.text("#count").await, "1");
        browser
            .wait_until("document.getElementById('message').value === ''")
            .await;

        browser.fill("#message", "second").await;
        browser.press("#message", &[Key::Control, Key::Enter]).await;
        browser.wait_for_text("#log li:nth-child(2)", "echo: second").await;
        assert_eq!(browser.text("#count").await, "2");

        let path = browser.screenshot("browser-smoke").await;
        let png = std::fs::read(&path).unwrap();
        assert!(png.starts_with(PNG_SIGNATURE), "{} is not a PNG", path.display());

        browser.click("#clear").await;
        browser
            .wait_until("document.querySelectorAll('#log li').length === 0")
            .await;
        assert_eq!(browser.text("#count").await, "0");

        let title = browser
            .execute("return arguments[0] + document.title;", vec![json!("title: ")])
            .await;
        assert_eq!(title, json!("title: Harness smoke"));
        assert_eq!(browser.client().title().await.unwrap(), "Harness smoke");
    }

    #[tokio::test]
    async fn browser_reads_sets_and_deletes_cookies() {
        let page = serve_page().await;
        let browser = Browser::start().await;
        browser.goto(&page).await;

        assert_eq!(
            browser.cookie("visited").await.as_deref(),
            Some("yes"),
            "set by the server"
        );
        browser.add_cookie("theme=dark").await;
        assert_eq!(browser.cookie("theme").await.as_deref(), Some("dark"));
        let document_cookie = browser.execute("return document.cookie;", Vec::new()).await;
        assert!(
            document_cookie.as_str().unwrap().contains("theme=dark"),
            "the page sees {document_cookie}"
        );

        browser.delete_cookie("visited").await;
        let names: Vec<String> = browser
            .cookies()
            .await
            .iter()
            .map(|cookie| cookie.name().to_owned())
            .collect();
        assert_eq!(names, ["theme"]);
    }

    #[tokio::test]
    async fn browser_narrows_to_a_phone_width() {
        let page = serve_page().await;
        let browser = Browser::start().await;
        browser.goto(&page).await;
        browser.wait_until("window.innerWidth === 1280").await;

        browser.set_viewport_size(375, 812).await;
        let size = browser
            .execute("return [window.innerWidth, window.innerHeight];", Vec::new())
            .await;
        assert_eq!(size, json!([375, 812]));
        assert_eq!(
            browser.client().get_window_size().await.unwrap().0,
            375,
            "the window has no side frame"
        );
        browser.screenshot("browser-smoke-375").await;
    }

    #[tokio::test]
    #[should_panic(expected = "no element matches `#nowhere` on about:blank after 300ms")]
    async fn browser_wait_names_the_selector_and_the_page_when_it_times_out() {
        let mut browser = Browser::start().await;
        browser.set_wait(std::time::Duration::from_millis(300));
        browser.goto("about:blank").await;
        browser.wait_for("#nowhere").await;
    }

    #[tokio::test]
    async fn browser_leaves_no_process_behind() {
        let page = serve_page().await;
        let browser = Browser::start().await;
        browser.goto(&page).await;
        let dir = browser.dir().to_owned();
        assert!(!processes_naming(&dir).is_empty(), "Chromium names its profile dir");

        drop(browser);
        assert_eq!(processes_naming(&dir), Vec::<u32>::new());
        assert!(!dir.exists(), "the profile dir is removed");
    }
}
