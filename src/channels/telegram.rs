//! Each Telegram inbox's inbound side: long polling (the default) or the webhook
//! registration, and what happens to one update either way. In polling mode the inbox's
//! offset (`channel_cursors`, name `updates`) moves past an update only after it is
//! committed; a crash re-reads it, and the message's `(inbox, chat:message)` key makes
//! the second reading a duplicate.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use switchboard_connector_core::{ChannelKind, InboundAttachment};
use switchboard_connector_telegram::client::{self, ClientError, Fetched};
use switchboard_connector_telegram::config::Mode;
use switchboard_connector_telegram::{BotIdentity, Normalized, normalize};
use teloxide::Bot;
use teloxide::types::{Update, UpdateKind};
use tokio_util::sync::CancellationToken;

use crate::api::AppState;
use crate::channels::config::{ChannelSettings, TelegramChannel};
use crate::config::Settings;
use crate::domain::DeskError;
use crate::store::{Catalog, InboxRef, StoreError};

const CURSOR: &str = "updates";
const BACKOFF_FIRST: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// What a Telegram inbox needs at run time, shared by its reader and the webhook handler.
pub struct TelegramInbox {
    pub reference: InboxRef,
    pub channel: TelegramChannel,
    pub bot: Bot,
    /// Learned from `getMe` at start; the webhook answers 503 until then.
    pub identity: OnceLock<BotIdentity>,
    /// Registered with `setWebhook`, checked on every webhook request; derived from the
    /// bot token (see [`webhook_secret`]), so every daemon serving the inbox agrees.
    pub secret: String,
    pub http: reqwest::Client,
}

impl TelegramInbox {
    /// Whether the daemon asks Telegram for updates (one daemon at a time may), rather
    /// than Telegram posting them to the webhook (every daemon takes them).
    pub fn polls(&self) -> bool {
        matches!(self.channel.settings.mode, Mode::Polling)
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

/// The Telegram inboxes of this configuration, by key.
pub fn inboxes(settings: &Settings, catalog: &Catalog) -> anyhow::Result<HashMap<String, Arc<TelegramInbox>>> {
    let mut inboxes = HashMap::new();
    for inbox in &settings.inboxes {
        let (ChannelSettings::Telegram(channel), Some(reference)) = (&inbox.channel, catalog.inboxes.get(&inbox.key))
        else {
            continue;
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|err| anyhow::anyhow!("building the Telegram HTTP client: {err}"))?;
        let bot = client::bot(&channel.settings, http.clone())
            .map_err(|err| anyhow::anyhow!("inboxes.{}.telegram.{err}", inbox.key))?;
        inboxes.insert(
            inbox.key.clone(),
            Arc::new(TelegramInbox {
                reference: reference.clone(),
                channel: (**channel).clone(),
                bot,
                identity: OnceLock::new(),
                secret: webhook_secret(&channel.settings.token.0, &inbox.key),
                http,
            }),
        );
    }
    Ok(inboxes)
}

/// Runs one inbox until `shutdown`: learns who the bot is, then polls or registers the
/// webhook, retrying with backoff whatever fails.
pub async fn run(state: Arc<AppState>, inbox: Arc<TelegramInbox>, shutdown: CancellationToken) {
    let key = inbox.reference.key.clone();
    let mut backoff = BACKOFF_FIRST;
    loop {
        let result = tokio::select! {
            result = serve(&state, &inbox, &mut backoff) => result,
            () = shutdown.cancelled() => return,
        };
        if let Err(err) = result {
            tokio::select! {
                () = pause(&mut backoff, "reading updates", &key, &err) => {}
                () = shutdown.cancelled() => return,
            }
        }
    }
}

async fn pause(backoff: &mut Duration, what: &str, key: &str, error: &(dyn std::fmt::Display + Sync)) {
    tracing::warn!(inbox = %key, %error, retry_in = ?*backoff, "telegram inbox: {what} failed");
    // Jitter, so several bots do not retry in step.
    tokio::time::sleep(backoff.mul_f64(0.8 + fastrand::f64() * 0.4)).await;
    *backoff = (*backoff * 2).min(BACKOFF_MAX);
}

async fn serve(state: &AppState, inbox: &TelegramInbox, backoff: &mut Duration) -> Result<(), DeskError> {
    let key = &inbox.reference.key;
    let identity = loop {
        match client::identity(&inbox.bot).await {
            Ok(identity) => break identity,
            Err(err) => pause(backoff, "getMe", key, &err).await,
        }
    };
    tracing::info!(inbox = %key, bot = %identity.username, "telegram inbox: connected");
    let _ = inbox.identity.set(identity);
    *backoff = BACKOFF_FIRST;
    match &inbox.channel.settings.mode {
        Mode::Webhook { url } => {
            while let Err(err) = client::set_webhook(&inbox.bot, Some((url, &inbox.secret))).await {
                pause(backoff, "setWebhook", key, &err).await;
            }
            tracing::info!(inbox = %key, "telegram inbox: webhook registered");
            // Updates arrive at /hooks/{inbox}; nothing else to do here.
            std::future::pending::<()>().await;
            Ok(())
        }
        Mode::Polling => {
            // Telegram refuses getUpdates while a webhook is set (from an earlier mode).
            while let Err(err) = client::set_webhook(&inbox.bot, None).await {
                pause(backoff, "deleteWebhook", key, &err).await;
            }
            poll(state, inbox, backoff).await
        }
    }
}

async fn poll(state: &AppState, inbox: &TelegramInbox, backoff: &mut Duration) -> Result<(), DeskError> {
    let key = &inbox.reference.key;
    let mut offset: i64 = state
        .service
        .store()
        .channel_cursor(inbox.reference.id, CURSOR)
        .await?
        .and_then(|value| value.parse().ok())
        .unwrap_or(0);
    let status = state.metrics.reader(key);
    let mut up = None;
    loop {
        let fetched = match client::updates(
            &inbox.http,
            &inbox.channel.settings,
            offset,
            inbox.channel.settings.poll_timeout,
        )
        .await
        {
            Ok(fetched) => {
                *backoff = BACKOFF_FIRST;
                if let Some(status) = status {
                    status.polled(state.clock.now_ms());
                    // Down again when this ends: an error, a lost lease, shutdown.
                    up.get_or_insert_with(|| status.connected());
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
                    if let Err(err) = take(state, inbox, &update).await {
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
            state
                .service
                .set_channel_cursor(
                    inbox.reference.id,
                    CURSOR.into(),
                    offset.to_string(),
                    state.clock.now_ms(),
                )
                .await?;
        }
    }
}

/// Takes one update: the customer's message stored (its files fetched first), a button
/// press answered and stored, a block recorded. Returns once committed.
pub async fn take(state: &AppState, inbox: &TelegramInbox, update: &Update) -> Result<(), DeskError> {
    let key = &inbox.reference.key;
    let Some(identity) = inbox.identity.get() else {
        // 503 for a webhook: Telegram sends the update again later.
        return Err(StoreError::transient("the bot's identity is not known yet").into());
    };
    let (mut message, files, start) = match normalize(update, identity) {
        Normalized::Message { message, files, start } => (message, files, start),
        Normalized::Callback { query_id, message } => {
            // The customer's client shows a spinner until the press is answered.
            if let Err(err) = client::answer_callback(&inbox.bot, &query_id).await {
                tracing::warn!(inbox = %key, error = %err, "telegram inbox: answering a button press failed");
            }
            (message, Vec::new(), false)
        }
        Normalized::Unreachable { external_id, reason } => {
            state
                .service
                .mark_unreachable(inbox.reference.id, external_id, reason, state.clock.now_ms())
                .await?;
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
        match client::fetch_file(&inbox.bot, file, inbox.channel.settings.max_file_bytes).await {
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
    let mut context = state.ingest_context(&inbox.reference);
    context.greeting = start;
    let started = std::time::Instant::now();
    let outcome = state.service.ingest(context, *message).await?;
    state.metrics.ingested(ChannelKind::Telegram, started.elapsed());
    state.committed(&inbox.reference, &outcome);
    tracing::debug!(
        inbox = %key,
        update_id = update.id.0,
        conversation_id = outcome.conversation_id,
        duplicate = outcome.duplicate,
        "telegram inbox: update taken"
    );
    Ok(())
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
