//! The Telegram channel as the daemon registers it: its declaration, and each inbox's
//! inbound side, long polling (the default) or the webhook, with what happens to one
//! update either way. In polling mode the inbox's offset (cursor `updates`) moves past an
//! update only after it is committed; a crash re-reads it, and the message's
//! `(inbox, chat:message)` key makes the second reading a duplicate.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use subtle::ConstantTimeEq;
use switchboard_connector_core::{
    BoxFuture, Capabilities, Channel, ChannelKind, ChannelSpec, Connector, CsatStyle, CursorStore, Formats, Hook,
    HookError, HookHead, HookReply, IdentityScope, InboundAttachment, IngestOptions, IngestSink, KeyError,
    MessageSender, RateLimits, Reader, ReaderContext, SecretSource, SinkError,
};
use teloxide::Bot;
use teloxide::types::{Update, UpdateKind};

use crate::client::{self, ClientError, Fetched};
use crate::config::{Mode, TelegramConfig, TelegramSettings};
use crate::normalize::{BotIdentity, Normalized, normalize, read_update_bytes};
use crate::send::TelegramSender;

static SPEC: ChannelSpec = ChannelSpec {
    name: "telegram",
    capabilities: Capabilities {
        // A Telegram user id names one person in every bot.
        identity: IdentityScope::Global,
        vouches_for_sender: false,
        files_in: true,
        files_out: true,
        // A reply in a group quotes the customer's message by its id.
        threads_by_ids: true,
        structured_updates: false,
        formats: Formats {
            subject: false,
            html: false,
            markdown_v2: true,
        },
        csat: CsatStyle::Buttons,
        updates_need_address: false,
        reply_window: None,
        limits: RateLimits {
            per_inbox_per_second: Some(30),
            per_recipient_interval: Some(Duration::from_secs(1)),
        },
    },
};

const CURSOR: &str = "updates";
const BACKOFF_FIRST: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// The largest Telegram update accepted: updates carry file ids, not files.
const MAX_UPDATE_BYTES: usize = 1024 * 1024;

/// The Telegram Bot API channel (`[inboxes.KEY.telegram]`).
pub struct Telegram;

impl Channel for Telegram {
    type Config = TelegramConfig;
    type Settings = TelegramSettings;
    const KIND: ChannelKind = ChannelKind::of(&SPEC);

    fn validate(
        config: &TelegramConfig,
        inbox_key: &str,
        secrets: &dyn SecretSource,
    ) -> Result<TelegramSettings, KeyError> {
        let settings = config.validate(inbox_key, secrets)?;
        if settings.greeting.is_some() {
            return Err(KeyError::new(
                "greeting",
                "moved: write it as [updates.templates.greeting.LANGUAGE] text = \"…\"",
            ));
        }
        Ok(settings)
    }

    fn build(settings: &TelegramSettings, inbox_key: &str) -> Result<Arc<dyn Connector>, KeyError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|err| KeyError::new("token", format!("cannot build the HTTP client: {err}")))?;
        let bot = client::bot(settings, http.clone()).map_err(|err| KeyError::new("api_base", err))?;
        Ok(Arc::new(TelegramInbox {
            key: inbox_key.to_owned(),
            sender: TelegramSender::new(bot.clone(), settings.limits),
            settings: settings.clone(),
            bot,
            identity: OnceLock::new(),
            secret: webhook_secret(&settings.token.0, inbox_key),
            http,
        }))
    }
}

/// What a Telegram inbox needs at run time, shared by its reader, its webhook handler
/// and its sender (one bot, one connection pool).
struct TelegramInbox {
    key: String,
    settings: TelegramSettings,
    bot: Bot,
    sender: TelegramSender,
    /// Learned from `getMe` at start; the webhook answers 503 until then.
    identity: OnceLock<BotIdentity>,
    /// Registered with `setWebhook`, checked on every webhook request; derived from the
    /// bot token (see [`webhook_secret`]), so every daemon serving the inbox agrees.
    secret: String,
    http: reqwest::Client,
}

impl Connector for TelegramInbox {
    fn kind(&self) -> ChannelKind {
        Telegram::KIND
    }

    fn hook(&self) -> Option<&dyn Hook> {
        matches!(self.settings.mode, Mode::Webhook { .. }).then_some(self as &dyn Hook)
    }

    fn reader(&self) -> Option<&dyn Reader> {
        Some(self)
    }

    fn sender(&self) -> &dyn MessageSender {
        &self.sender
    }
}

/// The secret Telegram sends with each webhook call: an HMAC of the inbox's key under the
/// bot token. Several daemons behind one load balancer register the same webhook, and
/// the last `setWebhook` wins; a random secret per start would leave the others refusing
/// every update. Only whoever holds the bot token can compute it, and a new token gives
/// a new secret.
pub fn webhook_secret(bot_token: &str, inbox_key: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac =
        <Hmac<sha2::Sha256> as Mac>::new_from_slice(bot_token.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(b"switchboard telegram webhook secret\0");
    mac.update(inbox_key.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Telegram's webhook POST. Only a request carrying the secret registered with
/// `setWebhook` counts (403 otherwise, nothing stored). An update we cannot read is
/// acknowledged with 200 and logged: Telegram would otherwise resend it forever and
/// hold back every later update of the bot.
impl Hook for TelegramInbox {
    fn admit(&self, head: &HookHead<'_>) -> Result<usize, HookError> {
        if head.method != http::Method::POST {
            return Err(HookError::new(405, "method_not_allowed", "send a POST"));
        }
        let given = head
            .headers
            .get("x-telegram-bot-api-secret-token")
            .map(|value| value.as_bytes())
            .unwrap_or_default();
        if !bool::from(given.ct_eq(self.secret.as_bytes())) {
            return Err(HookError::new(
                403,
                "invalid_secret_token",
                "the X-Telegram-Bot-Api-Secret-Token header is missing or wrong",
            ));
        }
        Ok(MAX_UPDATE_BYTES)
    }

    fn handle<'a>(
        &'a self,
        _head: &'a HookHead<'a>,
        body: &'a [u8],
        sink: &'a dyn IngestSink,
    ) -> BoxFuture<'a, Result<HookReply, HookError>> {
        Box::pin(async move {
            let update: Update = match read_update_bytes(body) {
                Ok(update) => update,
                Err(err) => {
                    tracing::warn!(inbox = %self.key, error = %err, "telegram webhook: an update could not be read; skipped");
                    return Ok(HookReply::json(200, serde_json::json!({"skipped": true})));
                }
            };
            self.take(sink, &update).await?;
            Ok(HookReply::json(200, serde_json::json!({"ok": true})))
        })
    }
}

impl Reader for TelegramInbox {
    /// Only one daemon may call `getUpdates`; every daemon registers the same webhook.
    fn exclusive(&self) -> bool {
        matches!(self.settings.mode, Mode::Polling)
    }

    /// Learns who the bot is, then polls or registers the webhook, retrying with backoff
    /// whatever fails, until shutdown.
    fn run<'a>(&'a self, context: ReaderContext<'a>) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let mut backoff = BACKOFF_FIRST;
            loop {
                let result = tokio::select! {
                    result = self.serve(context.sink, context.cursors, &mut backoff) => result,
                    () = context.shutdown.cancelled() => return,
                };
                if let Err(err) = result {
                    tokio::select! {
                        () = pause(&mut backoff, "reading updates", &self.key, &err) => {}
                        () = context.shutdown.cancelled() => return,
                    }
                }
            }
        })
    }
}

async fn pause(backoff: &mut Duration, what: &str, key: &str, error: &(dyn std::fmt::Display + Sync)) {
    tracing::warn!(inbox = %key, %error, retry_in = ?*backoff, "telegram inbox: {what} failed");
    // Jitter, so several bots do not retry in step.
    tokio::time::sleep(backoff.mul_f64(0.8 + fastrand::f64() * 0.4)).await;
    *backoff = (*backoff * 2).min(BACKOFF_MAX);
}

impl TelegramInbox {
    async fn serve(
        &self,
        sink: &dyn IngestSink,
        cursors: &dyn CursorStore,
        backoff: &mut Duration,
    ) -> Result<(), SinkError> {
        let key = &self.key;
        let identity = loop {
            match client::identity(&self.bot).await {
                Ok(identity) => break identity,
                Err(err) => pause(backoff, "getMe", key, &err).await,
            }
        };
        tracing::info!(inbox = %key, bot = %identity.username, "telegram inbox: connected");
        let _ = self.identity.set(identity);
        *backoff = BACKOFF_FIRST;
        match &self.settings.mode {
            Mode::Webhook { url } => {
                while let Err(err) = client::set_webhook(&self.bot, Some((url, &self.secret))).await {
                    pause(backoff, "setWebhook", key, &err).await;
                }
                tracing::info!(inbox = %key, "telegram inbox: webhook registered");
                // Updates arrive at /hooks/{inbox}; nothing else to do here.
                std::future::pending::<()>().await;
                Ok(())
            }
            Mode::Polling => {
                // Telegram refuses getUpdates while a webhook is set (from an earlier mode).
                while let Err(err) = client::set_webhook(&self.bot, None).await {
                    pause(backoff, "deleteWebhook", key, &err).await;
                }
                self.poll(sink, cursors, backoff).await
            }
        }
    }

    async fn poll(
        &self,
        sink: &dyn IngestSink,
        cursors: &dyn CursorStore,
        backoff: &mut Duration,
    ) -> Result<(), SinkError> {
        let key = &self.key;
        let mut offset: i64 = cursors
            .get(CURSOR)
            .await?
            .and_then(|value| value.parse().ok())
            .unwrap_or(0);
        let mut up = None;
        loop {
            let fetched = match client::updates(&self.http, &self.settings, offset, self.settings.poll_timeout).await {
                Ok(fetched) => {
                    *backoff = BACKOFF_FIRST;
                    sink.reader_polled();
                    // Down again when this ends: an error, a lost lease, shutdown.
                    if up.is_none() {
                        up = Some(sink.reader_connected());
                    }
                    fetched
                }
                Err(ClientError::RetryAfter(wait)) => {
                    tokio::time::sleep(wait).await;
                    continue;
                }
                Err(err) => {
                    up = None;
                    pause(backoff, "getUpdates", key, &err).await;
                    continue;
                }
            };
            for entry in fetched {
                let update_id = match entry {
                    Fetched::Update(update) => {
                        let update_id = i64::from(update.id.0);
                        // A store failure ends the batch before the offset moves: the
                        // update is read again after the pause.
                        if let Err(err) = self.take(sink, &update).await {
                            pause(backoff, "storing an update", key, &err).await;
                            break;
                        }
                        update_id
                    }
                    Fetched::Unreadable { update_id, error } => {
                        tracing::warn!(inbox = %key, ?update_id, %error, "telegram inbox: an update could not be read; skipped");
                        match update_id {
                            Some(id) => id,
                            None => continue,
                        }
                    }
                };
                offset = offset.max(update_id + 1);
                cursors.set(CURSOR, offset.to_string()).await?;
            }
        }
    }

    /// Takes one update: the customer's message stored (its files fetched first), a
    /// button press answered and stored, a block recorded. Returns once committed.
    async fn take(&self, sink: &dyn IngestSink, update: &Update) -> Result<(), SinkError> {
        let key = &self.key;
        let Some(identity) = self.identity.get() else {
            // 503 for a webhook: Telegram sends the update again later.
            return Err(SinkError::Unavailable("the bot's identity is not known yet".into()));
        };
        let (mut message, files, start) = match normalize(update, identity) {
            Normalized::Message { message, files, start } => (message, files, start),
            Normalized::Callback { query_id, message } => {
                // The customer's client shows a spinner until the press is answered.
                if let Err(err) = client::answer_callback(&self.bot, &query_id).await {
                    tracing::warn!(inbox = %key, error = %err, "telegram inbox: answering a button press failed");
                }
                (message, Vec::new(), false)
            }
            Normalized::Unreachable { external_id, reason } => {
                sink.unreachable(external_id, reason).await?;
                tracing::info!(inbox = %key, "telegram inbox: a customer blocked the bot");
                return Ok(());
            }
            Normalized::Ignored(_) if matches!(update.kind, UpdateKind::Error(_)) => {
                tracing::warn!(inbox = %key, update_id = update.id.0, "telegram inbox: an update could not be read; skipped");
                return Ok(());
            }
            Normalized::Ignored(reason) => {
                tracing::debug!(inbox = %key, update_id = update.id.0, reason, "telegram inbox: update skipped");
                return Ok(());
            }
        };
        let mut missing = Vec::new();
        for file in &files {
            match client::fetch_file(&self.bot, file, self.settings.max_file_bytes).await {
                Ok(data) => message.attachments.push(InboundAttachment {
                    filename: file.filename.clone(),
                    content_type: file.content_type.clone(),
                    data,
                }),
                // The message still counts; the agent sees which file did not come.
                Err(err) => {
                    tracing::warn!(inbox = %key, error = %err, "telegram inbox: a file could not be fetched");
                    missing.push(serde_json::json!({"filename": file.filename, "error": err.to_string()}));
                }
            }
        }
        if !missing.is_empty() {
            message
                .details
                .insert("files_not_fetched".into(), serde_json::Value::Array(missing));
        }
        let ingested = sink.ingest(*message, IngestOptions { greeting: start }).await?;
        tracing::debug!(
            inbox = %key,
            update_id = update.id.0,
            conversation_id = ingested.conversation_id,
            duplicate = ingested.duplicate,
            "telegram inbox: update taken"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::webhook_secret;

    #[test]
    fn the_webhook_secret_is_the_same_for_every_daemon_and_differs_per_inbox_and_token() {
        let token = "123456:ABCDEFGHIJKLMNOPQRSTUVWXYZ";
        let secret = webhook_secret(token, "shop-bot");
        assert_eq!(secret, webhook_secret(token, "shop-bot"));
        assert_eq!(secret.len(), 64);
        // Telegram takes 1 to 256 characters of A-Z, a-z, 0-9, `_` and `-`.
        assert!(secret.bytes().all(|byte| byte.is_ascii_hexdigit()));
        assert_ne!(secret, webhook_secret(token, "other-bot"));
        assert_ne!(secret, webhook_secret("123456:ZYXWVUTSRQPONMLKJIHGFEDCBA", "shop-bot"));
    }
}
