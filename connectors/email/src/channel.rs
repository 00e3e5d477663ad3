//! The email channel as the daemon registers it: its declaration, SMTP out, and the
//! reader of each inbox: an IMAP session that takes every new mail of the folder, in UID
//! order, and moves the inbox's cursor (`imap:<folder>` = `uidvalidity:last_uid`) only
//! after the mails before it are committed. A restart or a dropped connection resumes
//! from the cursor; a mail read twice is recognised by its Message-ID, so nothing is
//! missed and nothing is stored twice.

use std::sync::Arc;
use std::time::Duration;

use switchboard_connector_core::{
    BoxFuture, Capabilities, Channel, ChannelKind, ChannelSpec, Connector, CsatStyle, CursorStore, Formats,
    IdentityScope, IngestSink, KeyError, MessageSender, RateLimits, Reader, ReaderContext, SecretSource, SinkError,
};

use crate::config::{EmailConfig, EmailSettings};
use crate::imap::{self, FetchedMail, ImapError, ImapSession, Woke};
use crate::inbound::{Disposition, disposition, too_large};
use crate::smtp::SmtpSender;

static SPEC: ChannelSpec = ChannelSpec {
    name: "email",
    capabilities: Capabilities {
        // An address names one person whatever inbox they write to.
        identity: IdentityScope::Global,
        vouches_for_sender: false,
        files_in: true,
        files_out: true,
        threads_by_ids: true,
        structured_updates: false,
        formats: Formats {
            subject: true,
            html: true,
            markdown_v2: false,
        },
        csat: CsatStyle::Links,
        // Only a `From` the mail gave is an address to write to automatically.
        updates_need_address: true,
        reply_window: None,
        limits: RateLimits {
            per_inbox_per_second: None,
            per_recipient_interval: None,
        },
    },
};

/// Email over IMAP and SMTP (`[inboxes.KEY.email]`).
pub struct Email;

impl Channel for Email {
    type Config = EmailConfig;
    type Settings = EmailSettings;
    const KIND: ChannelKind = ChannelKind::of(&SPEC);

    fn validate(config: &EmailConfig, _inbox_key: &str, secrets: &dyn SecretSource) -> Result<EmailSettings, KeyError> {
        config.validate(secrets)
    }

    fn build(settings: &EmailSettings, inbox_key: &str) -> Result<Arc<dyn Connector>, KeyError> {
        Ok(Arc::new(EmailInbox {
            key: inbox_key.to_owned(),
            sender: SmtpSender::new(settings)?,
            cursor_name: format!("imap:{}", settings.folder),
            settings: Arc::new(settings.clone()),
        }))
    }
}

struct EmailInbox {
    key: String,
    settings: Arc<EmailSettings>,
    sender: SmtpSender,
    cursor_name: String,
}

impl Connector for EmailInbox {
    fn kind(&self) -> ChannelKind {
        Email::KIND
    }

    fn reader(&self) -> Option<&dyn Reader> {
        Some(self)
    }

    fn sender(&self) -> &dyn MessageSender {
        &self.sender
    }
}

impl Reader for EmailInbox {
    /// A mailbox is read by one daemon at a time.
    fn exclusive(&self) -> bool {
        true
    }

    /// Reads the folder until shutdown, reconnecting with backoff after any failure.
    fn run<'a>(&'a self, context: ReaderContext<'a>) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let reader = Session {
                inbox: self,
                sink: context.sink,
                cursors: context.cursors,
            };
            let mut backoff = BACKOFF_FIRST;
            loop {
                let mut connected = false;
                let result = tokio::select! {
                    result = reader.session(&mut connected) => result,
                    () = context.shutdown.cancelled() => return,
                };
                if connected {
                    backoff = BACKOFF_FIRST;
                }
                let Err(err) = result;
                let wait = match &err {
                    ReadError::Imap(imap) if imap.is_configuration() => BACKOFF_CONFIGURATION,
                    _ => backoff,
                };
                tracing::warn!(inbox = %self.key, error = %err, retry_in = ?wait, "email inbox: reading stopped");
                // Jitter, so inboxes on one server do not reconnect in step.
                let wait = wait.mul_f64(0.8 + fastrand::f64() * 0.4);
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = context.shutdown.cancelled() => return,
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        })
    }
}

/// Mails fetched per command: the cursor moves after each batch.
const FETCH_BATCH: usize = 50;
/// Re-issue IDLE this often (RFC 2177 asks for less than 29 minutes) and look anyway.
const IDLE_RENEW: Duration = Duration::from_secs(25 * 60);
const BACKOFF_FIRST: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// A refused login retries slowly: the password will not change by itself.
const BACKOFF_CONFIGURATION: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
enum ReadError {
    #[error(transparent)]
    Imap(#[from] ImapError),
    #[error("store: {0}")]
    Store(#[from] SinkError),
}

struct Session<'a> {
    inbox: &'a EmailInbox,
    sink: &'a dyn IngestSink,
    cursors: &'a dyn CursorStore,
}

enum Never {}

impl Session<'_> {
    /// One session: connect, catch up from the cursor, then wait for mail and repeat.
    /// Returns only with the error that ended it.
    async fn session(&self, connected: &mut bool) -> Result<Never, ReadError> {
        let settings = &self.inbox.settings;
        let mut session = imap::connect(&settings.imap).await?;
        let folder = session.select(&settings.folder).await?;
        *connected = true;
        let _up = self.sink.reader_connected();
        tracing::info!(
            inbox = %self.inbox.key,
            folder = %settings.folder,
            messages = folder.exists,
            idle = session.supports_idle(),
            "email inbox: connected"
        );
        let cursor = self
            .cursors
            .get(&self.inbox.cursor_name)
            .await?
            .and_then(|value| parse_cursor(&value));
        let mut last_uid = match cursor {
            Some((validity, last_uid)) if validity == folder.uid_validity => last_uid,
            previous => {
                if previous.is_some() {
                    tracing::warn!(
                        inbox = %self.inbox.key,
                        "email inbox: the server renumbered the folder (UIDVALIDITY changed); \
                         reading the backfill window again, known mails are recognised by Message-ID"
                    );
                }
                // Mail arriving during the backfill gets a UID above this mark and is
                // read right after.
                let mark = match folder.uid_next {
                    Some(next) => next.saturating_sub(1),
                    None => session.highest_uid().await?,
                };
                self.backfill(&mut session, mark).await?;
                self.save_cursor(folder.uid_validity, mark).await?;
                mark
            }
        };
        let timeout = if session.supports_idle() {
            IDLE_RENEW
        } else {
            settings.poll_interval
        };
        loop {
            let uids = session.uids_after(last_uid).await?;
            self.sink.reader_polled();
            for batch in uids.chunks(FETCH_BATCH) {
                let mails = session.fetch(batch, settings.max_message_bytes).await?;
                self.take(mails).await?;
                // Every UID of the batch is committed (or was not there any more).
                last_uid = batch.iter().copied().max().unwrap_or(last_uid);
                self.save_cursor(folder.uid_validity, last_uid).await?;
            }
            let woke;
            (session, woke) = session.wait(timeout).await?;
            if woke == Woke::Changed {
                tracing::debug!(inbox = %self.inbox.key, "email inbox: the server announced a change");
            }
        }
    }

    /// The first start: mail of the backfill window up to `mark`, with progress.
    async fn backfill(&self, session: &mut ImapSession, mark: u32) -> Result<(), ReadError> {
        let settings = &self.inbox.settings;
        if settings.backfill.is_zero() {
            return Ok(());
        }
        let now = self.sink.now_ms() / 1000;
        let since = now - i64::try_from(settings.backfill.as_secs()).unwrap_or(i64::MAX / 2);
        let uids: Vec<u32> = session
            .uids_since(since, settings.backfill_unseen_only)
            .await?
            .into_iter()
            .filter(|uid| *uid <= mark)
            .collect();
        tracing::info!(
            inbox = %self.inbox.key,
            mails = uids.len(),
            window = %humantime::format_duration(settings.backfill),
            unseen_only = settings.backfill_unseen_only,
            "email inbox: backfill started"
        );
        let mut done = 0;
        for batch in uids.chunks(FETCH_BATCH) {
            self.take(session.fetch(batch, settings.max_message_bytes).await?)
                .await?;
            done += batch.len();
            tracing::info!(inbox = %self.inbox.key, done, of = uids.len(), "email inbox: backfill progress");
        }
        Ok(())
    }

    /// Stores a batch of mails in UID order; returns once all are committed (or known
    /// not to be needed).
    async fn take(&self, mails: Vec<FetchedMail>) -> Result<(), ReadError> {
        // MIME decoding of a large mail is CPU work; keep it off the async workers, and
        // let the mails of a batch decode side by side.
        let normalizing: Vec<_> = mails
            .into_iter()
            .map(|mail| {
                let settings = Arc::clone(&self.inbox.settings);
                let uid = mail.uid;
                let disposition = tokio::task::spawn_blocking(move || {
                    if mail.headers_only {
                        Disposition::Ingest(Box::new(too_large(&mail.raw, mail.size, &settings)))
                    } else {
                        disposition(&mail.raw, &settings)
                    }
                });
                (uid, disposition)
            })
            .collect();
        let mut batch = Vec::with_capacity(normalizing.len());
        let mut uids = Vec::with_capacity(normalizing.len());
        for (uid, disposition) in normalizing {
            let disposition = disposition
                .await
                .map_err(|err| SinkError::Failed(format!("mail normalization failed: {err}")))?;
            match disposition {
                Disposition::Ingest(message) => {
                    batch.push(*message);
                    uids.push(uid);
                }
                Disposition::Skip(reason) => {
                    tracing::debug!(inbox = %self.inbox.key, uid, reason, "email inbox: mail skipped");
                }
            }
        }
        let outcomes = self.sink.ingest_batch(batch).await;
        let mut failure = None;
        for (uid, outcome) in uids.into_iter().zip(outcomes) {
            match outcome {
                Ok(outcome) => {
                    tracing::debug!(
                        inbox = %self.inbox.key,
                        uid,
                        conversation_id = outcome.conversation_id,
                        message_id = outcome.message_id,
                        duplicate = outcome.duplicate,
                        "email inbox: mail taken"
                    );
                }
                Err(err) => {
                    failure.get_or_insert(err);
                }
            }
        }
        // The cursor stays before the batch: it is read again, and what was committed
        // is recognised by its Message-ID.
        match failure {
            Some(err) => Err(err.into()),
            None => Ok(()),
        }
    }

    async fn save_cursor(&self, uid_validity: u32, last_uid: u32) -> Result<(), SinkError> {
        self.cursors
            .set(&self.inbox.cursor_name, format!("{uid_validity}:{last_uid}"))
            .await
    }
}

fn parse_cursor(value: &str) -> Option<(u32, u32)> {
    let (validity, last) = value.split_once(':')?;
    Some((validity.parse().ok()?, last.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        assert_eq!(parse_cursor("1700000000:42"), Some((1_700_000_000, 42)));
        assert_eq!(parse_cursor("garbage"), None);
    }
}
