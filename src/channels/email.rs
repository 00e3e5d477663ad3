//! The reader of each email inbox: an IMAP session that takes every new mail of the
//! folder into the store, in UID order, and moves the inbox's cursor
//! (`uidvalidity:last_uid`) only after the mails before it are committed. A restart or
//! a dropped connection resumes from the cursor; a mail read twice is recognised by its
//! Message-ID, so nothing is missed and nothing is stored twice.

use std::sync::Arc;
use std::time::{Duration, Instant};

use switchboard_connector_core::ChannelKind;
use switchboard_connector_email::EmailSettings;
use switchboard_connector_email::imap::{self, FetchedMail, ImapError, ImapSession, Woke};
use switchboard_connector_email::inbound::{Disposition, disposition, too_large};
use tokio_util::sync::CancellationToken;

use crate::api::AppState;
use crate::api::metrics::ReaderStatus;
use crate::domain::DeskError;
use crate::store::{InboxRef, StoreError};

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
    Store(#[from] DeskError),
}

/// Reads one inbox until `shutdown`, reconnecting with backoff after any failure.
pub async fn run(state: Arc<AppState>, inbox: InboxRef, settings: Arc<EmailSettings>, shutdown: CancellationToken) {
    let reader = Reader {
        cursor_name: format!("imap:{}", settings.folder),
        state,
        inbox,
        settings,
    };
    let mut backoff = BACKOFF_FIRST;
    loop {
        let mut connected = false;
        let result = tokio::select! {
            result = reader.session(&mut connected) => result,
            () = shutdown.cancelled() => return,
        };
        if connected {
            backoff = BACKOFF_FIRST;
        }
        let Err(err) = result;
        let wait = match &err {
            ReadError::Imap(imap) if imap.is_configuration() => BACKOFF_CONFIGURATION,
            _ => backoff,
        };
        tracing::warn!(inbox = %reader.inbox.key, error = %err, retry_in = ?wait, "email inbox: reading stopped");
        // Jitter, so inboxes on one server do not reconnect in step.
        let wait = wait.mul_f64(0.8 + fastrand::f64() * 0.4);
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = shutdown.cancelled() => return,
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

struct Reader {
    state: Arc<AppState>,
    inbox: InboxRef,
    settings: Arc<EmailSettings>,
    cursor_name: String,
}

enum Never {}

impl Reader {
    /// One session: connect, catch up from the cursor, then wait for mail and repeat.
    /// Returns only with the error that ended it.
    async fn session(&self, connected: &mut bool) -> Result<Never, ReadError> {
        let mut session = imap::connect(&self.settings.imap).await?;
        let folder = session.select(&self.settings.folder).await?;
        *connected = true;
        let status = self.state.metrics.reader(&self.inbox.key);
        let _up = status.map(ReaderStatus::connected);
        tracing::info!(
            inbox = %self.inbox.key,
            folder = %self.settings.folder,
            messages = folder.exists,
            idle = session.supports_idle(),
            "email inbox: connected"
        );
        let cursor = self
            .state
            .service
            .store()
            .channel_cursor(self.inbox.id, &self.cursor_name)
            .await
            .map_err(DeskError::from)?
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
            self.settings.poll_interval
        };
        loop {
            let uids = session.uids_after(last_uid).await?;
            if let Some(status) = status {
                status.polled(self.state.clock.now_ms());
            }
            for batch in uids.chunks(FETCH_BATCH) {
                let mails = session.fetch(batch, self.settings.max_message_bytes).await?;
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
        if self.settings.backfill.is_zero() {
            return Ok(());
        }
        let now = self.state.clock.now_ms() / 1000;
        let since = now - i64::try_from(self.settings.backfill.as_secs()).unwrap_or(i64::MAX / 2);
        let uids: Vec<u32> = session
            .uids_since(since, self.settings.backfill_unseen_only)
            .await?
            .into_iter()
            .filter(|uid| *uid <= mark)
            .collect();
        tracing::info!(
            inbox = %self.inbox.key,
            mails = uids.len(),
            window = %humantime::format_duration(self.settings.backfill),
            unseen_only = self.settings.backfill_unseen_only,
            "email inbox: backfill started"
        );
        let mut done = 0;
        for batch in uids.chunks(FETCH_BATCH) {
            self.take(session.fetch(batch, self.settings.max_message_bytes).await?)
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
                let settings = Arc::clone(&self.settings);
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
                .map_err(|err| DeskError::Store(StoreError::fatal(format!("mail normalization failed: {err}"))))?;
            match disposition {
                Disposition::Ingest(message) => {
                    batch.push((self.state.ingest_context(&self.inbox), *message));
                    uids.push(uid);
                }
                Disposition::Skip(reason) => {
                    tracing::debug!(inbox = %self.inbox.key, uid, reason, "email inbox: mail skipped");
                }
            }
        }
        let started = Instant::now();
        let outcomes = self.state.service.ingest_in_order(batch).await;
        // The mails of a batch commit together: each waited as long as the batch.
        let took = started.elapsed();
        let mut failure = None;
        for (uid, outcome) in uids.into_iter().zip(outcomes) {
            match outcome {
                Ok(outcome) => {
                    self.state.metrics.ingested(ChannelKind::Email, took);
                    self.state.committed(&self.inbox, &outcome);
                    tracing::debug!(
                        inbox = %self.inbox.key,
                        uid,
                        conversation_id = outcome.conversation_id,
                        message_id = outcome.message_id,
                        duplicate = outcome.duplicate,
                        new_conversation = outcome.created_conversation,
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

    async fn save_cursor(&self, uid_validity: u32, last_uid: u32) -> Result<(), DeskError> {
        let value = format!("{uid_validity}:{last_uid}");
        self.state
            .service
            .set_channel_cursor(
                self.inbox.id,
                self.cursor_name.clone(),
                value,
                self.state.clock.now_ms(),
            )
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
