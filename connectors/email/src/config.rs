//! An email inbox's configuration (`[inboxes.<key>.email]`), validated before any
//! connection is made. Passwords come from the environment or a file, never the config.

use std::fmt;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde::Deserialize;
pub use switchboard_connector_core::KeyError;
use switchboard_connector_core::SecretSource;

use crate::parse::Limits;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// The support address: replies and status updates leave From it, and its domain
    /// names our Message-IDs.
    pub address: String,
    /// The name shown with the address (`Acme Support <support@acme.example>`).
    pub display_name: Option<String>,
    pub imap: ServerConfig,
    pub smtp: ServerConfig,
    /// The IMAP folder read.
    #[serde(default = "default_folder")]
    pub folder: String,
    /// On the first start (and after the server renumbers the folder), mail this old or
    /// newer is imported; `0s` imports only what arrives from then on.
    #[serde(default = "default_backfill")]
    pub backfill: String,
    /// The backfill takes only unread mail.
    #[serde(default = "default_true")]
    pub backfill_unseen_only: bool,
    /// How often to look for new mail when the server has no IDLE.
    #[serde(default = "default_poll_interval")]
    pub poll_interval: String,
    /// A mail larger than this is not imported; the conversation shows that it came.
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: usize,
    /// The attachments of one mail together; those past it are listed, not kept.
    #[serde(default = "default_max_attachment_bytes")]
    pub max_attachment_bytes: usize,
    /// How recent an open conversation must be for a mail with the same subject (and no
    /// other link) to join it.
    #[serde(default = "default_thread_window")]
    pub thread_window: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub host: String,
    /// The protocol's usual port for the security when absent (IMAP 993/143, SMTP
    /// 465/587/25).
    pub port: Option<u16>,
    /// `tls`, `starttls` (SMTP only) or `plain` (loopback hosts only).
    #[serde(default = "default_security")]
    pub security: String,
    /// The login; the inbox address when absent.
    pub user: Option<String>,
    /// The environment variable holding the password.
    pub password_env: Option<String>,
    /// A file holding the password (trailing newline ignored).
    pub password_file: Option<String>,
    /// PEM certificates of a private CA to trust besides the public roots, for a mail
    /// server whose certificate the company signs itself.
    pub ca_file: Option<String>,
}

fn default_folder() -> String {
    "INBOX".into()
}

fn default_backfill() -> String {
    "7d".into()
}

fn default_true() -> bool {
    true
}

fn default_poll_interval() -> String {
    "30s".into()
}

fn default_max_message_bytes() -> usize {
    25 * 1024 * 1024
}

fn default_max_attachment_bytes() -> usize {
    20 * 1024 * 1024
}

fn default_thread_window() -> String {
    "14d".into()
}

fn default_security() -> String {
    "tls".into()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    Tls,
    StartTls,
    Plain,
}

/// A password, kept out of logs and debug output.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(pub String);

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub user: String,
    /// `None`: the server takes mail without a login (an SMTP relay on loopback).
    pub password: Option<Password>,
    /// PEM certificates trusted besides the public roots (`ca_file`), checked at load.
    pub extra_roots_pem: Option<Vec<u8>>,
}

/// A validated email inbox.
#[derive(Debug, Clone)]
pub struct EmailSettings {
    pub address: String,
    pub display_name: Option<String>,
    /// The address's domain, which names our Message-IDs.
    pub domain: String,
    pub imap: ServerSettings,
    pub smtp: ServerSettings,
    pub folder: String,
    pub backfill: Duration,
    pub backfill_unseen_only: bool,
    pub poll_interval: Duration,
    pub max_message_bytes: usize,
    pub limits: Limits,
    pub thread_window: Duration,
}

fn key_error(key: impl Into<String>, problem: impl Into<String>) -> KeyError {
    KeyError {
        key: key.into(),
        problem: problem.into(),
    }
}

fn duration(key: &str, text: &str) -> Result<Duration, KeyError> {
    humantime::parse_duration(text)
        .map_err(|err| key_error(key, format!("`{text}` is not a duration such as `30s` or `7d`: {err}")))
}

/// Whether a host name stays on this machine: plain text is allowed only there.
fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl EmailConfig {
    /// `secrets` reads the environment variables and files the config names (injected so
    /// tests need not change the process environment).
    pub fn validate(&self, secrets: &dyn SecretSource) -> Result<EmailSettings, KeyError> {
        let address = self.address.trim().to_lowercase();
        let domain = address
            .split_once('@')
            .filter(|(local, domain)| {
                !local.is_empty()
                    && (domain.contains('.') || *domain == "localhost")
                    && !domain.contains('@')
                    && !address.contains(char::is_whitespace)
            })
            .map(|(_, domain)| domain.to_owned())
            .ok_or_else(|| key_error("address", format!("`{}` is not an email address", self.address)))?;
        let imap = self.imap.validate("imap", &address, false, secrets)?;
        if imap.password.is_none() {
            return Err(key_error(
                "imap.password_env",
                "IMAP needs a password: set password_env or password_file",
            ));
        }
        let smtp = self.smtp.validate("smtp", &address, true, secrets)?;
        if self.folder.trim().is_empty() {
            return Err(key_error("folder", "must not be empty"));
        }
        let poll_interval = duration("poll_interval", &self.poll_interval)?;
        if poll_interval < Duration::from_secs(1) {
            return Err(key_error("poll_interval", "must be at least 1s"));
        }
        let backfill = duration("backfill", &self.backfill)?;
        // An IMAP date before the year 1 is no date: keep the window to what a mailbox holds.
        if backfill > Duration::from_secs(100 * 365 * 86_400) {
            return Err(key_error("backfill", "must be at most 100 years"));
        }
        if self.max_message_bytes < 64 * 1024 {
            return Err(key_error("max_message_bytes", "must be at least 65536"));
        }
        Ok(EmailSettings {
            address,
            display_name: self
                .display_name
                .as_deref()
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(str::to_owned),
            domain,
            imap,
            smtp,
            folder: self.folder.trim().to_owned(),
            backfill,
            backfill_unseen_only: self.backfill_unseen_only,
            poll_interval,
            max_message_bytes: self.max_message_bytes,
            limits: Limits {
                max_attachment_bytes: self.max_attachment_bytes,
            },
            thread_window: duration("thread_window", &self.thread_window)?,
        })
    }
}

impl ServerConfig {
    fn validate(
        &self,
        section: &str,
        address: &str,
        smtp: bool,
        secrets: &dyn SecretSource,
    ) -> Result<ServerSettings, KeyError> {
        let at = |key: &str| format!("{section}.{key}");
        let host = self.host.trim();
        if host.is_empty() || host.contains(char::is_whitespace) {
            return Err(key_error(at("host"), "must be a host name or IP address"));
        }
        let security = match self.security.as_str() {
            "tls" => Security::Tls,
            "starttls" if smtp => Security::StartTls,
            "plain" => Security::Plain,
            other => {
                let accepted = if smtp {
                    "`tls`, `starttls` or `plain`"
                } else {
                    "`tls` or `plain`"
                };
                return Err(key_error(at("security"), format!("`{other}` is not {accepted}")));
            }
        };
        if security == Security::Plain && !is_loopback(host) {
            return Err(key_error(
                at("security"),
                format!("`plain` sends the password unencrypted; it is allowed only to loopback hosts, not `{host}`"),
            ));
        }
        let port = self.port.unwrap_or(match (smtp, security) {
            (false, Security::Tls) => 993,
            (false, _) => 143,
            (true, Security::Tls) => 465,
            (true, Security::StartTls) => 587,
            (true, Security::Plain) => 25,
        });
        if port == 0 {
            return Err(key_error(at("port"), "must be 1 to 65535"));
        }
        let password = match (&self.password_env, &self.password_file) {
            (Some(_), Some(_)) => {
                return Err(key_error(
                    at("password_file"),
                    "set password_env or password_file, not both",
                ));
            }
            (Some(name), None) => Some(Password(
                secrets.var(name).filter(|value| !value.is_empty()).ok_or_else(|| {
                    key_error(
                        at("password_env"),
                        format!("the environment variable `{name}` is not set"),
                    )
                })?,
            )),
            (None, Some(path)) => {
                let text = secrets
                    .read_file(path)
                    .and_then(|bytes| String::from_utf8(bytes).map_err(std::io::Error::other))
                    .map_err(|err| key_error(at("password_file"), format!("cannot read `{path}`: {err}")))?;
                let password = text.trim_end_matches(['\r', '\n']).to_owned();
                if password.is_empty() {
                    return Err(key_error(at("password_file"), format!("`{path}` is empty")));
                }
                Some(Password(password))
            }
            (None, None) => None,
        };
        let extra_roots_pem = match &self.ca_file {
            None => None,
            Some(_) if security == Security::Plain => {
                return Err(key_error(at("ca_file"), "applies to `tls` and `starttls` only"));
            }
            Some(path) => {
                let pem = secrets
                    .read_file(path)
                    .map_err(|err| key_error(at("ca_file"), format!("cannot read `{path}`: {err}")))?;
                let certificates = CertificateDer::pem_slice_iter(&pem)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|err| key_error(at("ca_file"), format!("`{path}` is not PEM: {err}")))?;
                if certificates.is_empty() {
                    return Err(key_error(
                        at("ca_file"),
                        format!("`{path}` holds no certificate (-----BEGIN CERTIFICATE-----)"),
                    ));
                }
                Some(pem)
            }
        };
        Ok(ServerSettings {
            host: host.to_owned(),
            port,
            security,
            user: self.user.clone().unwrap_or_else(|| address.to_owned()),
            password,
            extra_roots_pem,
        })
    }
}

/// Settings for unit tests: `support@example.com` on plain loopback servers.
#[cfg(test)]
pub(crate) fn test_settings() -> EmailSettings {
    let server = ServerSettings {
        host: "127.0.0.1".into(),
        port: 2525,
        security: Security::Plain,
        user: "support@example.com".into(),
        password: Some(Password("secret".into())),
        extra_roots_pem: None,
    };
    EmailSettings {
        address: "support@example.com".into(),
        display_name: Some("Example Support".into()),
        domain: "example.com".into(),
        imap: server.clone(),
        smtp: server,
        folder: "INBOX".into(),
        backfill: Duration::ZERO,
        backfill_unseen_only: true,
        poll_interval: Duration::from_secs(30),
        max_message_bytes: 1 << 20,
        limits: Limits::default(),
        thread_window: Duration::from_secs(3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(security: &str) -> ServerConfig {
        ServerConfig {
            host: "127.0.0.1".into(),
            port: Some(1143),
            security: security.into(),
            user: None,
            password_env: Some("IMAP_PASSWORD".into()),
            password_file: None,
            ca_file: None,
        }
    }

    fn config() -> EmailConfig {
        EmailConfig {
            address: "Support@Example.COM".into(),
            display_name: Some("Example Support".into()),
            imap: server("plain"),
            smtp: ServerConfig {
                password_env: None,
                ..server("plain")
            },
            folder: default_folder(),
            backfill: default_backfill(),
            backfill_unseen_only: true,
            poll_interval: default_poll_interval(),
            max_message_bytes: default_max_message_bytes(),
            max_attachment_bytes: default_max_attachment_bytes(),
            thread_window: default_thread_window(),
        }
    }

    fn env(name: &str) -> Option<String> {
        (name == "IMAP_PASSWORD").then(|| "secret".to_owned())
    }

    #[test]
    fn accepts_a_good_config() {
        let settings = config().validate(&env).unwrap();
        assert_eq!(settings.address, "support@example.com");
        assert_eq!(settings.domain, "example.com");
        assert_eq!(settings.imap.user, "support@example.com");
        assert_eq!(settings.imap.password, Some(Password("secret".into())));
        assert_eq!(settings.smtp.password, None);
        assert_eq!(settings.backfill, Duration::from_secs(7 * 86_400));
        assert_eq!(format!("{:?}", settings.imap.password), "Some(Password(***))");
    }

    #[test]
    fn names_the_bad_key() {
        let mut bad = config();
        bad.address = "support".into();
        assert_eq!(bad.validate(&env).unwrap_err().key, "address");

        let mut bad = config();
        bad.imap.host = "imap.example.com".into();
        assert_eq!(bad.validate(&env).unwrap_err().key, "imap.security");

        let mut bad = config();
        bad.imap.security = "starttls".into();
        assert_eq!(bad.validate(&env).unwrap_err().key, "imap.security");

        let mut bad = config();
        bad.imap.password_env = Some("UNSET_VARIABLE".into());
        let err = bad.validate(&env).unwrap_err();
        assert_eq!(err.key, "imap.password_env");
        assert!(err.problem.contains("UNSET_VARIABLE"), "{}", err.problem);

        let mut bad = config();
        bad.imap.password_env = None;
        assert_eq!(bad.validate(&env).unwrap_err().key, "imap.password_env");

        let mut bad = config();
        bad.smtp.password_file = Some("/nonexistent/password".into());
        assert_eq!(bad.validate(&env).unwrap_err().key, "smtp.password_file");

        let mut bad = config();
        bad.imap.ca_file = Some("/etc/hostname".into());
        assert_eq!(bad.validate(&env).unwrap_err().key, "imap.ca_file");

        let mut bad = config();
        bad.backfill = "a week".into();
        assert_eq!(bad.validate(&env).unwrap_err().key, "backfill");
        bad.backfill = "5000years".into();
        assert_eq!(bad.validate(&env).unwrap_err().key, "backfill");
    }

    #[test]
    fn default_ports_follow_the_security() {
        let mut good = config();
        good.imap = ServerConfig {
            host: "imap.example.com".into(),
            port: None,
            ..server("tls")
        };
        good.smtp = ServerConfig {
            host: "smtp.example.com".into(),
            port: None,
            ..server("starttls")
        };
        let settings = good.validate(&env).unwrap();
        assert_eq!((settings.imap.port, settings.smtp.port), (993, 587));
    }
}
