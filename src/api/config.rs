//! `[server]`: where the HTTP interface listens, how long it lets open requests finish at
//! shutdown, and what it allows at the door (timeouts, connections, buffered bodies,
//! request rates) so that nobody can hold the daemon without authenticating.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use switchboard_connector_core::SecretSource;

use crate::config::error::{ConfigError, duration};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address of the HTTP listener (hooks, agent API, health). Port 0 picks a free port;
    /// the daemon prints the address it bound on standard output.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// How long shutdown waits for open HTTP requests to finish.
    #[serde(default = "default_shutdown_grace")]
    pub shutdown_grace: String,
    /// How long a client has to send a request's headers, counted from when the
    /// connection is ready for one: a connection silent that long, new or kept alive, is
    /// closed.
    #[serde(default = "default_header_timeout")]
    pub header_timeout: String,
    /// How long a client has to send a whole request body once its headers are in.
    #[serde(default = "default_body_timeout")]
    pub body_timeout: String,
    /// Open connections at most. At the limit the longest-idle connection (one with no
    /// request in progress) is closed to make room; when none is idle, new connections
    /// wait in the listen queue. Capped below the process's open-file limit at start.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Request body bytes held in memory by all requests together; a request whose body
    /// would pass it is answered 503 with `Retry-After`.
    #[serde(default = "default_max_buffered_body_bytes")]
    pub max_buffered_body_bytes: usize,
    #[serde(default)]
    pub rate_limits: RateLimitsConfig,
    /// The environment variable holding the bearer token `/metrics` asks for; none: no
    /// token.
    #[serde(default)]
    pub metrics_token_env: Option<String>,
}

/// Requests a second allowed, each with a burst of twice as many; 0 turns a limit off.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitsConfig {
    /// Channel requests (`/hooks/{inbox}`) to one inbox.
    #[serde(default = "default_hook_per_inbox")]
    pub hook_per_inbox: u32,
    /// Channel requests from one source address, to any inbox.
    #[serde(default = "default_hook_per_address")]
    pub hook_per_address: u32,
    /// Agent API requests (`/api/v1`) with one token.
    #[serde(default = "default_api_per_token")]
    pub api_per_token: u32,
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}

fn default_shutdown_grace() -> String {
    "10s".into()
}

fn default_header_timeout() -> String {
    "30s".into()
}

fn default_body_timeout() -> String {
    "60s".into()
}

fn default_max_connections() -> usize {
    1000
}

fn default_max_buffered_body_bytes() -> usize {
    32 * 1024 * 1024
}

fn default_hook_per_inbox() -> u32 {
    1000
}

fn default_hook_per_address() -> u32 {
    200
}

fn default_api_per_token() -> u32 {
    50
}

impl Default for RateLimitsConfig {
    fn default() -> RateLimitsConfig {
        RateLimitsConfig {
            hook_per_inbox: default_hook_per_inbox(),
            hook_per_address: default_hook_per_address(),
            api_per_token: default_api_per_token(),
        }
    }
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            listen: default_listen(),
            shutdown_grace: default_shutdown_grace(),
            header_timeout: default_header_timeout(),
            body_timeout: default_body_timeout(),
            max_connections: default_max_connections(),
            max_buffered_body_bytes: default_max_buffered_body_bytes(),
            rate_limits: RateLimitsConfig::default(),
            metrics_token_env: None,
        }
    }
}

/// The door's settings, validated.
#[derive(Debug, Clone)]
pub struct DoorSettings {
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub max_connections: usize,
    pub max_buffered_body_bytes: usize,
    pub hook_per_inbox: u32,
    pub hook_per_address: u32,
    pub api_per_token: u32,
}

impl ServerConfig {
    /// The listen address, the HTTP shutdown grace and the door's settings.
    pub fn validate(&self) -> Result<(SocketAddr, Duration, DoorSettings), ConfigError> {
        let listen: SocketAddr = self.listen.parse().map_err(|_| {
            ConfigError::new(
                "server.listen",
                format!("`{}` is not an address such as 127.0.0.1:8080", self.listen),
            )
        })?;
        let shutdown_grace = duration("server.shutdown_grace", &self.shutdown_grace)?;
        let positive = |key: &str, text: &str| {
            let value = duration(key, text)?;
            if value.is_zero() {
                return Err(ConfigError::new(key, "must be longer than 0s"));
            }
            Ok(value)
        };
        let header_timeout = positive("server.header_timeout", &self.header_timeout)?;
        let body_timeout = positive("server.body_timeout", &self.body_timeout)?;
        if self.max_connections < 16 {
            return Err(ConfigError::new("server.max_connections", "must be at least 16"));
        }
        if self.max_buffered_body_bytes < 1024 * 1024 {
            return Err(ConfigError::new(
                "server.max_buffered_body_bytes",
                "must be at least 1048576 (1 MiB)",
            ));
        }
        Ok((
            listen,
            shutdown_grace,
            DoorSettings {
                header_timeout,
                body_timeout,
                max_connections: self.max_connections,
                max_buffered_body_bytes: self.max_buffered_body_bytes,
                hook_per_inbox: self.rate_limits.hook_per_inbox,
                hook_per_address: self.rate_limits.hook_per_address,
                api_per_token: self.rate_limits.api_per_token,
            },
        ))
    }
}

/// The token a scrape of `/metrics` must bring; never printed.
#[derive(Clone)]
pub struct MetricsToken(String);

impl std::fmt::Debug for MetricsToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MetricsToken(…)")
    }
}

impl MetricsToken {
    /// Whether `given` is the token, compared in constant time.
    pub fn accepts(&self, given: &str) -> bool {
        use subtle::ConstantTimeEq;
        bool::from(given.as_bytes().ct_eq(self.0.as_bytes()))
    }
}

impl ServerConfig {
    /// The `/metrics` token from the variable `metrics_token_env` names, read from
    /// `secrets`: it must be set and not blank.
    pub fn metrics_token(&self, secrets: &dyn SecretSource) -> Result<Option<MetricsToken>, ConfigError> {
        const KEY: &str = "server.metrics_token_env";
        let Some(name) = &self.metrics_token_env else {
            return Ok(None);
        };
        let name = name.trim();
        if name.is_empty() {
            return Err(ConfigError::new(KEY, "names no environment variable"));
        }
        let value = secrets
            .var(name)
            .ok_or_else(|| ConfigError::new(KEY, format!("the environment variable `{name}` is not set")))?;
        let value = value.trim();
        if value.is_empty() {
            return Err(ConfigError::new(
                KEY,
                format!("the environment variable `{name}` is empty"),
            ));
        }
        Ok(Some(MetricsToken(value.to_owned())))
    }
}

/// `[console]`: the agents' web console and its sign-in.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    /// Where people open the console (`https://desk.example.com`): the sign-in links
    /// `switchboard agent add` prints point there, and with `https` session cookies are
    /// marked `Secure`. Absent: `http://` and `server.listen`.
    #[serde(default)]
    pub public_url: Option<String>,
    /// How long a console session lasts after signing in (`12h`).
    #[serde(default)]
    pub session_lifetime: Option<String>,
    /// How long a sign-in link stays valid (`72h`).
    #[serde(default)]
    pub link_lifetime: Option<String>,
    /// Failed sign-ins in a row that lock an agent out (5).
    #[serde(default)]
    pub max_failed_sign_ins: Option<u32>,
    /// How long such a lock lasts (`15m`).
    #[serde(default)]
    pub lockout: Option<String>,
}

/// The console's settings, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSettings {
    /// Without a trailing slash.
    pub public_url: String,
    pub secure_cookies: bool,
    pub policy: crate::domain::people::SignInPolicy,
}

impl ConsoleConfig {
    pub fn validate(&self, listen: SocketAddr) -> Result<ConsoleSettings, ConfigError> {
        let public_url = match &self.public_url {
            None => format!("http://{listen}"),
            Some(url) => {
                let trimmed = url.trim().trim_end_matches('/');
                let valid = reqwest::Url::parse(trimmed)
                    .is_ok_and(|parsed| matches!(parsed.scheme(), "http" | "https") && parsed.host().is_some());
                if !valid {
                    return Err(ConfigError::new(
                        "console.public_url",
                        format!("`{url}` is not an http or https URL such as https://desk.example.com"),
                    ));
                }
                trimmed.to_owned()
            }
        };
        let lasting = |key: &str, value: &Option<String>, default: &str| {
            let value = duration(key, value.as_deref().unwrap_or(default))?;
            if value < Duration::from_secs(60) {
                return Err(ConfigError::new(key, "must be at least a minute"));
            }
            Ok(value.as_millis() as i64)
        };
        let max_failures = self.max_failed_sign_ins.unwrap_or(5);
        if max_failures == 0 {
            return Err(ConfigError::new("console.max_failed_sign_ins", "must be at least 1"));
        }
        Ok(ConsoleSettings {
            secure_cookies: public_url.starts_with("https://"),
            public_url,
            policy: crate::domain::people::SignInPolicy {
                max_failures: i64::from(max_failures),
                lockout_ms: lasting("console.lockout", &self.lockout, "15m")?,
                session_ms: lasting("console.session_lifetime", &self.session_lifetime, "12h")?,
                link_ms: lasting("console.link_lifetime", &self.link_lifetime, "72h")?,
            },
        })
    }
}

/// `[agents]`: what agents and supervisors may see.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentsConfig {
    /// `team` (the default): agents and supervisors see their teams' conversations and
    /// those assigned to them, admins all; `all`: everyone sees every conversation.
    #[serde(default)]
    pub visibility: Option<String>,
}

impl AgentsConfig {
    pub fn validate(&self) -> Result<crate::domain::access::VisibilityPolicy, ConfigError> {
        use crate::domain::access::VisibilityPolicy;
        match self.visibility.as_deref() {
            None | Some("team") => Ok(VisibilityPolicy::Team),
            Some("all") => Ok(VisibilityPolicy::All),
            Some(other) => Err(ConfigError::new(
                "agents.visibility",
                format!("`{other}` is not `team` or `all`"),
            )),
        }
    }
}
