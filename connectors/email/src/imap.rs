//! The reading half: one IMAP session on one folder, over TLS or plain on loopback,
//! with the few commands the daemon's reader needs. What to do with the mail, and where
//! the reader stands, is the daemon's business.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_imap::extensions::idle::IdleResponse;
use futures_util::TryStreamExt;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::config::{Security, ServerSettings};

/// How long connecting, logging in or one command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

pub trait ImapStream: AsyncRead + AsyncWrite + Unpin + Send + fmt::Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + fmt::Debug> ImapStream for T {}

type Session = async_imap::Session<Box<dyn ImapStream>>;

#[derive(Debug, thiserror::Error)]
pub enum ImapError {
    #[error("connecting to {address}: {source}")]
    Connect { address: String, source: std::io::Error },
    #[error("TLS with {host}: {reason}")]
    Tls { host: String, reason: String },
    #[error("the server refused the login: {0}")]
    Login(String),
    #[error("{command}: {source}")]
    Command {
        command: &'static str,
        source: async_imap::error::Error,
    },
    #[error("{0} took longer than {COMMAND_TIMEOUT:?}")]
    Timeout(&'static str),
    #[error("the server closed the connection")]
    Closed,
    #[error("the folder `{0}` has no UIDVALIDITY; its mail cannot be tracked across sessions")]
    NoUidValidity(String),
}

impl ImapError {
    /// A wrong password or a missing folder will not fix itself by reconnecting at once.
    pub fn is_configuration(&self) -> bool {
        matches!(self, ImapError::Login(_) | ImapError::NoUidValidity(_))
    }
}

async fn timed<T>(
    what: &'static str,
    future: impl Future<Output = Result<T, async_imap::error::Error>>,
) -> Result<T, ImapError> {
    match tokio::time::timeout(COMMAND_TIMEOUT, future).await {
        Ok(result) => result.map_err(|source| ImapError::Command { command: what, source }),
        Err(_) => Err(ImapError::Timeout(what)),
    }
}

/// What SELECT says of the folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FolderState {
    pub uid_validity: u32,
    /// The UID the next mail will get, when the server says.
    pub uid_next: Option<u32>,
    pub exists: u32,
}

/// One mail as fetched: the whole of it, or only its headers when it is over the limit.
#[derive(Debug, Clone)]
pub struct FetchedMail {
    pub uid: u32,
    pub size: usize,
    pub raw: Vec<u8>,
    /// `raw` holds the headers only: the mail is larger than the limit.
    pub headers_only: bool,
}

/// How a wait for new mail ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Woke {
    /// The server announced a change (IDLE).
    Changed,
    /// The wait ran out: look anyway.
    Timeout,
}

pub struct ImapSession {
    session: Session,
    idle: bool,
}

impl fmt::Debug for ImapSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImapSession").field("idle", &self.idle).finish()
    }
}

fn tls_connector(settings: &ServerSettings) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(pem) = &settings.extra_roots_pem {
        // Checked when the config was loaded.
        for certificate in CertificateDer::pem_slice_iter(pem).flatten() {
            let _ = roots.add(certificate);
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// Connects, reads the greeting, logs in, and learns whether the server has IDLE.
pub async fn connect(settings: &ServerSettings) -> Result<ImapSession, ImapError> {
    let address = format!("{}:{}", settings.host, settings.port);
    let tcp = match tokio::time::timeout(COMMAND_TIMEOUT, TcpStream::connect(&address)).await {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(source)) => return Err(ImapError::Connect { address, source }),
        Err(_) => return Err(ImapError::Timeout("connect")),
    };
    let _ = tcp.set_nodelay(true);
    let stream: Box<dyn ImapStream> = match settings.security {
        Security::Plain => Box::new(tcp),
        Security::Tls | Security::StartTls => {
            let host = settings.host.clone();
            let name = rustls::pki_types::ServerName::try_from(host.clone()).map_err(|err| ImapError::Tls {
                host: host.clone(),
                reason: err.to_string(),
            })?;
            let tls = tokio::time::timeout(COMMAND_TIMEOUT, tls_connector(settings).connect(name, tcp))
                .await
                .map_err(|_| ImapError::Timeout("TLS handshake"))?
                .map_err(|err| ImapError::Tls {
                    host,
                    reason: err.to_string(),
                })?;
            Box::new(tls)
        }
    };
    let mut client = async_imap::Client::new(stream);
    // The client does not read the greeting itself; LOGIN before it confuses the parser.
    match tokio::time::timeout(COMMAND_TIMEOUT, client.read_response()).await {
        Ok(Ok(Some(_))) => {}
        Ok(Ok(None)) => return Err(ImapError::Closed),
        Ok(Err(source)) => {
            return Err(ImapError::Command {
                command: "greeting",
                source: source.into(),
            });
        }
        Err(_) => return Err(ImapError::Timeout("greeting")),
    }
    let password = settings.password.as_ref().map(|p| p.0.as_str()).unwrap_or_default();
    let mut session = match tokio::time::timeout(COMMAND_TIMEOUT, client.login(&settings.user, password)).await {
        Ok(Ok(session)) => session,
        Ok(Err((async_imap::error::Error::No(reason), _))) => return Err(ImapError::Login(reason)),
        Ok(Err((source, _))) => {
            return Err(ImapError::Command {
                command: "LOGIN",
                source,
            });
        }
        Err(_) => return Err(ImapError::Timeout("LOGIN")),
    };
    let idle = timed("CAPABILITY", session.capabilities()).await?.has_str("IDLE");
    Ok(ImapSession { session, idle })
}

impl ImapSession {
    pub fn supports_idle(&self) -> bool {
        self.idle
    }

    pub async fn select(&mut self, folder: &str) -> Result<FolderState, ImapError> {
        let mailbox = timed("SELECT", self.session.select(folder)).await?;
        let uid_validity = mailbox
            .uid_validity
            .ok_or_else(|| ImapError::NoUidValidity(folder.to_owned()))?;
        Ok(FolderState {
            uid_validity,
            uid_next: mailbox.uid_next,
            exists: mailbox.exists,
        })
    }

    /// UIDs above `last_uid`, ascending.
    pub async fn uids_after(&mut self, last_uid: u32) -> Result<Vec<u32>, ImapError> {
        let query = format!("UID {}:*", last_uid.saturating_add(1));
        // `n:*` names the highest UID even when it is below n: filter.
        let mut uids: Vec<u32> = timed("UID SEARCH", self.session.uid_search(query))
            .await?
            .into_iter()
            .filter(|uid| *uid > last_uid)
            .collect();
        uids.sort_unstable();
        Ok(uids)
    }

    /// UIDs of mail received since `unix_seconds` (the server's day granularity),
    /// unread only when asked, ascending.
    pub async fn uids_since(&mut self, unix_seconds: i64, unseen_only: bool) -> Result<Vec<u32>, ImapError> {
        let mut query = format!("SINCE {}", imap_date(unix_seconds));
        if unseen_only {
            query.push_str(" UNSEEN");
        }
        let mut uids: Vec<u32> = timed("UID SEARCH", self.session.uid_search(query))
            .await?
            .into_iter()
            .collect();
        uids.sort_unstable();
        Ok(uids)
    }

    /// The highest UID in the folder, 0 when empty.
    pub async fn highest_uid(&mut self) -> Result<u32, ImapError> {
        Ok(timed("UID SEARCH", self.session.uid_search("ALL"))
            .await?
            .into_iter()
            .max()
            .unwrap_or(0))
    }

    /// Fetches these mails without marking them read (BODY.PEEK): the mailbox stays as
    /// the people who also read it left it. Mails over `max_bytes` come as headers only.
    pub async fn fetch(&mut self, uids: &[u32], max_bytes: usize) -> Result<Vec<FetchedMail>, ImapError> {
        if uids.is_empty() {
            return Ok(Vec::new());
        }
        let set = uid_set(uids);
        let sizes: Vec<(u32, usize)> = {
            let stream = timed("UID FETCH", self.session.uid_fetch(&set, "(UID RFC822.SIZE)")).await?;
            let fetched: Vec<_> = timed("UID FETCH", stream.try_collect::<Vec<_>>()).await?;
            fetched
                .iter()
                .filter_map(|fetch| Some((fetch.uid?, fetch.size? as usize)))
                .collect()
        };
        let (small, large): (Vec<_>, Vec<_>) = sizes.iter().partition(|(_, size)| *size <= max_bytes);
        let mut mails = Vec::with_capacity(sizes.len());
        for (part, items, headers_only) in [
            (&small, "(UID BODY.PEEK[])", false),
            (&large, "(UID BODY.PEEK[HEADER])", true),
        ] {
            if part.is_empty() {
                continue;
            }
            let set = uid_set(&part.iter().map(|(uid, _)| *uid).collect::<Vec<_>>());
            let stream = timed("UID FETCH", self.session.uid_fetch(&set, items)).await?;
            let fetched: Vec<_> = timed("UID FETCH", stream.try_collect::<Vec<_>>()).await?;
            for fetch in &fetched {
                let Some(uid) = fetch.uid else { continue };
                let raw = if headers_only { fetch.header() } else { fetch.body() };
                let Some(raw) = raw else { continue };
                let size = part
                    .iter()
                    .find(|(u, _)| *u == uid)
                    .map_or(raw.len(), |(_, size)| *size);
                mails.push(FetchedMail {
                    uid,
                    size,
                    raw: raw.to_vec(),
                    headers_only,
                });
            }
        }
        mails.sort_by_key(|mail| mail.uid);
        Ok(mails)
    }

    /// Waits for the folder to change: IDLE where the server has it (woken as soon as
    /// mail arrives), otherwise simply `timeout`. A connection that drops during the
    /// wait is an error, so the caller reconnects.
    pub async fn wait(self, timeout: Duration) -> Result<(ImapSession, Woke), ImapError> {
        if !self.idle {
            let mut session = self;
            tokio::time::sleep(timeout).await;
            // A poll must still notice a dead connection, or the next SEARCH would.
            timed("NOOP", session.session.noop()).await?;
            return Ok((session, Woke::Timeout));
        }
        let mut handle = self.session.idle();
        timed("IDLE", handle.init()).await?;
        let (wait, _stop) = handle.wait_with_timeout(timeout);
        let response = wait.await.map_err(|source| ImapError::Command {
            command: "IDLE",
            source,
        })?;
        let woke = match response {
            IdleResponse::NewData(_) => Woke::Changed,
            IdleResponse::Timeout => Woke::Timeout,
            // We never interrupt: this is the stream ending, a dropped connection.
            IdleResponse::ManualInterrupt => return Err(ImapError::Closed),
        };
        let session = timed("DONE", handle.done()).await?;
        Ok((ImapSession { session, idle: true }, woke))
    }

    pub async fn logout(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(5), self.session.logout()).await;
    }
}

/// `1,3:5,9`: a compact UID set for one command.
fn uid_set(uids: &[u32]) -> String {
    let mut sorted = uids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out = String::new();
    let mut index = 0;
    while index < sorted.len() {
        let start = sorted[index];
        let mut end = start;
        while index + 1 < sorted.len() && sorted[index + 1] == end + 1 {
            index += 1;
            end = sorted[index];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        index += 1;
    }
    out
}

/// An IMAP date (`24-Nov-2026`) for a Unix time, UTC.
fn imap_date(unix_seconds: i64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    // Howard Hinnant's civil_from_days.
    let days = unix_seconds.div_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{day}-{}-{year}", MONTHS[(month - 1) as usize])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_sets_are_compact() {
        assert_eq!(uid_set(&[5, 1, 2, 3, 9, 10, 12]), "1:3,5,9:10,12");
        assert_eq!(uid_set(&[7]), "7");
    }

    #[test]
    fn imap_dates_are_utc_days() {
        assert_eq!(imap_date(0), "1-Jan-1970");
        assert_eq!(imap_date(1_795_996_800), "30-Nov-2026");
        assert_eq!(imap_date(951_782_400), "29-Feb-2000");
    }
}
