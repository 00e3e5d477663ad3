//! A Telegram inbox's configuration (`[inboxes.<key>.telegram]`), validated before any
//! request. The bot token comes from the environment or a file: it is a password, and it
//! never appears in a URL we log or in a webhook address.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;
pub use switchboard_connector_core::KeyError;
use switchboard_connector_core::SecretSource;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelegramConfig {
    /// The environment variable holding the bot token (from @BotFather).
    pub token_env: Option<String>,
    /// A file holding the bot token.
    pub token_file: Option<String>,
    /// `polling` (default: works behind NAT, no public URL) or `webhook`.
    #[serde(default = "default_mode")]
    pub mode: String,
    /// For `webhook`: the public base URL the daemon is reached at; Telegram posts to
    /// `<webhook_url>/hooks/<inbox key>`.
    pub webhook_url: Option<String>,
    /// The Bot API server; tests point it at their fake.
    #[serde(default = "default_api_url")]
    pub api_url: String,
    /// Sent in answer to `/start`, instead of the acknowledgement.
    pub greeting: Option<String>,
    /// Files larger than this are listed, not fetched (the Bot API serves up to 20 MB).
    #[serde(default = "default_max_file_bytes")]
    pub max_file_bytes: u64,
    /// How long one `getUpdates` is held open by Telegram when there is nothing new.
    #[serde(default = "default_poll_timeout")]
    pub poll_timeout: String,
    /// The least time between two messages to one private chat (Telegram: about 1 s).
    #[serde(default = "default_chat_interval")]
    pub chat_interval: String,
    /// Messages per minute to one group (Telegram: 20).
    #[serde(default = "default_group_per_minute")]
    pub group_per_minute: u32,
    /// Messages per second for the whole bot (Telegram: 30).
    #[serde(default = "default_bot_per_second")]
    pub bot_per_second: u32,
}

fn default_mode() -> String {
    "polling".into()
}

fn default_api_url() -> String {
    "https://api.telegram.org".into()
}

fn default_max_file_bytes() -> u64 {
    20 * 1024 * 1024
}

fn default_poll_timeout() -> String {
    "30s".into()
}

fn default_chat_interval() -> String {
    "1s".into()
}

fn default_group_per_minute() -> u32 {
    20
}

fn default_bot_per_second() -> u32 {
    30
}

#[derive(Clone, PartialEq, Eq)]
pub struct Token(pub String);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(***)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Polling,
    /// The full URL Telegram posts updates to.
    Webhook {
        url: String,
    },
}

#[derive(Debug, Clone)]
pub struct TelegramSettings {
    pub token: Token,
    pub mode: Mode,
    pub api_url: String,
    pub greeting: Option<String>,
    pub max_file_bytes: u64,
    pub poll_timeout: Duration,
    pub limits: Limits,
}

/// Telegram's sending limits, as this inbox keeps them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub chat_interval: Duration,
    pub group_per_minute: u32,
    pub bot_per_second: u32,
}

fn key_error(key: &str, problem: impl Into<String>) -> KeyError {
    KeyError {
        key: key.to_owned(),
        problem: problem.into(),
    }
}

fn duration(key: &str, text: &str) -> Result<Duration, KeyError> {
    humantime::parse_duration(text)
        .map_err(|err| key_error(key, format!("`{text}` is not a duration such as `1s`: {err}")))
}

/// The shape of a token from @BotFather: `<bot id>:<35 or so URL-safe characters>`.
fn looks_like_token(token: &str) -> bool {
    token.split_once(':').is_some_and(|(id, secret)| {
        !id.is_empty()
            && id.bytes().all(|b| b.is_ascii_digit())
            && secret.len() >= 20
            && secret
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    })
}

impl TelegramConfig {
    /// `inbox_key` builds the webhook address; `secrets` reads the token's environment
    /// variable or file.
    pub fn validate(&self, inbox_key: &str, secrets: &dyn SecretSource) -> Result<TelegramSettings, KeyError> {
        let token = match (&self.token_env, &self.token_file) {
            (Some(_), Some(_)) => return Err(key_error("token_file", "set token_env or token_file, not both")),
            (None, None) => {
                return Err(key_error(
                    "token_env",
                    "the bot token is required: set token_env or token_file",
                ));
            }
            (Some(name), None) => secrets
                .var(name)
                .filter(|value| !value.is_empty())
                .ok_or_else(|| key_error("token_env", format!("the environment variable `{name}` is not set")))?,
            (None, Some(path)) => secrets
                .read_file(path)
                .and_then(|bytes| String::from_utf8(bytes).map_err(std::io::Error::other))
                .map_err(|err| key_error("token_file", format!("cannot read `{path}`: {err}")))?
                .trim()
                .to_owned(),
        };
        if !looks_like_token(&token) {
            // Never echo it: a mistyped token is still most of a secret.
            let key = if self.token_env.is_some() {
                "token_env"
            } else {
                "token_file"
            };
            return Err(key_error(
                key,
                "does not hold a bot token (`<digits>:<secret>` from @BotFather)",
            ));
        }
        let api_url = self.api_url.trim_end_matches('/').to_owned();
        if !(api_url.starts_with("https://") || api_url.starts_with("http://")) {
            return Err(key_error("api_url", "must be an http:// or https:// URL"));
        }
        let mode = match self.mode.as_str() {
            "polling" => Mode::Polling,
            "webhook" => {
                let Some(base) = &self.webhook_url else {
                    return Err(key_error(
                        "webhook_url",
                        "webhook mode needs the public base URL Telegram can reach, e.g. https://desk.example.com",
                    ));
                };
                if !base.starts_with("https://") && !base.starts_with("http://") {
                    return Err(key_error("webhook_url", "must be an https:// URL"));
                }
                Mode::Webhook {
                    url: format!("{}/hooks/{inbox_key}", base.trim_end_matches('/')),
                }
            }
            other => return Err(key_error("mode", format!("`{other}` is not `polling` or `webhook`"))),
        };
        let chat_interval = duration("chat_interval", &self.chat_interval)?;
        if self.group_per_minute == 0 {
            return Err(key_error("group_per_minute", "must be at least 1"));
        }
        if self.bot_per_second == 0 {
            return Err(key_error("bot_per_second", "must be at least 1"));
        }
        let poll_timeout = duration("poll_timeout", &self.poll_timeout)?;
        if poll_timeout > Duration::from_secs(50) {
            return Err(key_error("poll_timeout", "must be at most 50s"));
        }
        Ok(TelegramSettings {
            token: Token(token),
            mode,
            api_url,
            greeting: self.greeting.clone().filter(|greeting| !greeting.trim().is_empty()),
            max_file_bytes: self.max_file_bytes,
            poll_timeout,
            limits: Limits {
                chat_interval,
                group_per_minute: self.group_per_minute,
                bot_per_second: self.bot_per_second,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> TelegramConfig {
        TelegramConfig {
            token_env: Some("BOT_TOKEN".into()),
            token_file: None,
            mode: default_mode(),
            webhook_url: None,
            api_url: default_api_url(),
            greeting: None,
            max_file_bytes: default_max_file_bytes(),
            poll_timeout: default_poll_timeout(),
            chat_interval: default_chat_interval(),
            group_per_minute: default_group_per_minute(),
            bot_per_second: default_bot_per_second(),
        }
    }

    fn env(name: &str) -> Option<String> {
        (name == "BOT_TOKEN").then(|| "123456:ABCdefGhIJKlmnoPQRstuVWXyz_0123456".to_owned())
    }

    #[test]
    fn accepts_a_good_config() {
        let settings = config().validate("shop-bot", &env).unwrap();
        assert_eq!(settings.mode, Mode::Polling);
        assert_eq!(format!("{:?}", settings.token), "Token(***)");
        let mut webhook = config();
        webhook.mode = "webhook".into();
        webhook.webhook_url = Some("https://desk.example.com/".into());
        assert_eq!(
            webhook.validate("shop-bot", &env).unwrap().mode,
            Mode::Webhook {
                url: "https://desk.example.com/hooks/shop-bot".into()
            }
        );
    }

    #[test]
    fn names_the_bad_key_without_echoing_the_token() {
        let mut bad = config();
        bad.token_env = Some("UNSET".into());
        assert_eq!(bad.validate("k", &env).unwrap_err().key, "token_env");
        let not_a_token = |_: &str| Some("hunter2".to_owned());
        let err = config().validate("k", &not_a_token).unwrap_err();
        assert_eq!(err.key, "token_env");
        assert!(!err.problem.contains("hunter2"));
        let mut bad = config();
        bad.mode = "webhook".into();
        assert_eq!(bad.validate("k", &env).unwrap_err().key, "webhook_url");
        let mut bad = config();
        bad.mode = "push".into();
        assert_eq!(bad.validate("k", &env).unwrap_err().key, "mode");
    }
}
