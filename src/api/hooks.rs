//! `POST /hooks/{inbox}`: channel ingress for webhook inboxes and Telegram inboxes in
//! webhook mode. The sender gets its 2xx only after the message is committed; any error
//! stores nothing.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;
use switchboard_connector_core::ChannelKind;
use switchboard_connector_telegram::config::Mode;
use switchboard_connector_telegram::read_update_bytes;
use switchboard_connector_webhook::{BodyError, WebhookSettings, check_headers, parse_body_with};
use teloxide::types::Update;

use super::door;
use super::error::ApiError;
use super::{AppState, PathParam};
use crate::channels::config::ChannelSettings;
use crate::channels::telegram::TelegramInbox;

/// Bodies larger than this are verified on a blocking thread: an HMAC over megabytes
/// would otherwise hold an async worker that other requests are waiting for.
const VERIFY_INLINE_BYTES: usize = 64 * 1024;

pub async fn receive(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    PathParam(inbox_key): PathParam,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let Some(inbox) = state.inboxes.get(&inbox_key) else {
        return Err(ApiError::not_found(&format!("inbox `{inbox_key}`")));
    };
    // Before anything is read: a sender over its rate costs a lookup, nothing more.
    door::check_rate(state.door.hook_per_address.as_ref(), &peer.ip(), "from this address")?;
    door::check_rate(state.door.hook_per_inbox.as_ref(), &inbox_key, "to this inbox")?;
    receive_for(&state, inbox, &inbox_key, &headers, body).await
}

async fn receive_for(
    state: &AppState,
    inbox: &super::Inbox,
    inbox_key: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let not_found = || ApiError::not_found(&format!("inbox `{inbox_key}`"));
    match &inbox.settings.channel {
        ChannelSettings::Webhook(settings) => receive_webhook(state, inbox, settings, headers, body).await,
        // Mail arrives over IMAP; a POST here is somebody guessing keys.
        ChannelSettings::Email(_) => Err(not_found()),
        ChannelSettings::Telegram(channel) => {
            let Some(telegram) = state.telegram.get(inbox_key) else {
                return Err(not_found());
            };
            if !matches!(channel.settings.mode, Mode::Webhook { .. }) {
                return Err(not_found());
            }
            receive_telegram(state, telegram, headers, body).await
        }
    }
}

/// The largest Telegram update accepted: updates carry file ids, not files.
const MAX_TELEGRAM_UPDATE: usize = 1024 * 1024;

/// Telegram's webhook POST. Only a request carrying the secret registered with
/// `setWebhook` counts (403 otherwise, nothing stored). An update we cannot read is
/// acknowledged with 200 and logged: Telegram would otherwise resend it forever and
/// hold back every later update of the bot.
async fn receive_telegram(
    state: &AppState,
    telegram: &TelegramInbox,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let given = headers
        .get("x-telegram-bot-api-secret-token")
        .map(|value| value.as_bytes())
        .unwrap_or_default();
    if !bool::from(given.ct_eq(telegram.secret.as_bytes())) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "invalid_secret_token",
            "the X-Telegram-Bot-Api-Secret-Token header is missing or wrong",
        ));
    }
    let body = state
        .door
        .budget
        .read(body, MAX_TELEGRAM_UPDATE, state.door.body_timeout)
        .await?;
    let update: Update = match read_update_bytes(&body.bytes) {
        Ok(update) => update,
        Err(err) => {
            tracing::warn!(inbox = %telegram.reference.key, error = %err, "telegram webhook: an update could not be read; skipped");
            return Ok((StatusCode::OK, Json(serde_json::json!({"skipped": true}))).into_response());
        }
    };
    crate::channels::telegram::take(state, telegram, &update).await?;
    Ok((StatusCode::OK, Json(serde_json::json!({"ok": true}))).into_response())
}

async fn receive_webhook(
    state: &AppState,
    inbox: &super::Inbox,
    settings: &WebhookSettings,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let limit = settings.max_body_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the body is larger than {limit} bytes"),
        ));
    }

    // Everything the headers can tell is checked before a byte of the body is read: an
    // unsigned caller learns nothing else and holds no memory.
    let now_ms = state.clock.now_ms();
    let signed = check_headers(headers, now_ms.div_euclid(1000), settings.timestamp_tolerance_secs)
        .map_err(|err| ApiError::new(StatusCode::UNAUTHORIZED, err.code(), err.to_string()))?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    if !media_type.eq_ignore_ascii_case("application/json") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("send `Content-Type: application/json`, not `{content_type}`"),
        ));
    }

    let body = state.door.budget.read(body, limit, state.door.body_timeout).await?;
    let verified = if body.bytes.len() <= VERIFY_INLINE_BYTES {
        signed.verify(&settings.secrets, &body.bytes)
    } else {
        // The blocking thread needs its own handles: the secrets are copied only here.
        let (bytes, secrets) = (body.bytes.clone(), settings.secrets.clone());
        tokio::task::spawn_blocking(move || signed.verify(&secrets, &bytes))
            .await
            .map_err(|err| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    format!("verifying the signature: {err}"),
                )
            })?
    };
    verified.map_err(|err| ApiError::new(StatusCode::UNAUTHORIZED, err.code(), err.to_string()))?;

    let message = parse_body_with(&body.bytes, &settings.limits).map_err(|err| match err {
        BodyError::NotJson(_) => ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", err.to_string()),
        BodyError::InvalidField { .. } => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", err.to_string())
        }
    })?;
    drop(body);

    let started = std::time::Instant::now();
    let outcome = state
        .service
        .ingest(state.ingest_context(&inbox.reference), message)
        .await?;
    state.metrics.ingested(ChannelKind::Webhook, started.elapsed());
    state.committed(&inbox.reference, &outcome);
    if outcome.duplicate {
        tracing::debug!(inbox = %inbox.reference.key, message_id = outcome.message_id, "duplicate delivery acknowledged");
    } else {
        tracing::debug!(
            inbox = %inbox.reference.key,
            conversation_id = outcome.conversation_id,
            message_id = outcome.message_id,
            new_conversation = outcome.created_conversation,
            "message received"
        );
    }
    let status = if outcome.duplicate {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, Json(outcome)).into_response())
}
