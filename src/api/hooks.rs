//! `POST /hooks/{inbox}`: channel ingress for webhook inboxes and Telegram inboxes in
//! webhook mode. The sender gets its 2xx only after the message is committed; any error
//! stores nothing.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use subtle::ConstantTimeEq;
use switchboard_connector_telegram::config::Mode;
use switchboard_connector_webhook::{BodyError, WebhookSettings, parse_body, verify};
use teloxide::types::Update;

use super::error::ApiError;
use super::{AppState, PathParam};
use crate::channels::config::ChannelSettings;
use crate::channels::telegram::TelegramInbox;

pub async fn receive(
    State(state): State<Arc<AppState>>,
    PathParam(inbox_key): PathParam,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let Some(inbox) = state.inboxes.get(&inbox_key) else {
        return Err(ApiError::not_found(&format!("inbox `{inbox_key}`")));
    };
    match &inbox.settings.channel {
        ChannelSettings::Webhook(settings) => receive_webhook(&state, inbox, settings, &headers, body).await,
        // Mail arrives over IMAP; a POST here is somebody guessing keys.
        ChannelSettings::Email(_) => Err(ApiError::not_found(&format!("inbox `{inbox_key}`"))),
        ChannelSettings::Telegram(channel) => {
            let Some(telegram) = state.telegram.get(&inbox_key) else {
                return Err(ApiError::not_found(&format!("inbox `{inbox_key}`")));
            };
            if !matches!(channel.settings.mode, Mode::Webhook { .. }) {
                return Err(ApiError::not_found(&format!("inbox `{inbox_key}`")));
            }
            receive_telegram(&state, telegram, &headers, body).await
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
    let bytes = match Limited::new(body, MAX_TELEGRAM_UPDATE).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(err) if err.downcast_ref::<LengthLimitError>().is_some() => {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("the body is larger than {MAX_TELEGRAM_UPDATE} bytes"),
            ));
        }
        Err(err) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "unreadable_body",
                format!("the body could not be read: {err}"),
            ));
        }
    };
    let update: Update = match serde_json::from_slice(&bytes) {
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
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the body is larger than {limit} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(too_large());
    }
    let bytes = match Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(err) if err.downcast_ref::<LengthLimitError>().is_some() => return Err(too_large()),
        Err(err) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "unreadable_body",
                format!("the body could not be read: {err}"),
            ));
        }
    };

    // Authenticate before looking inside: an unsigned caller learns nothing else.
    let now_ms = state.clock.now_ms();
    verify(
        &settings.secrets,
        headers,
        &bytes,
        now_ms.div_euclid(1000),
        settings.timestamp_tolerance_secs,
    )
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
    let message = parse_body(&bytes).map_err(|err| match err {
        BodyError::NotJson(_) => ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", err.to_string()),
        BodyError::InvalidField { .. } => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", err.to_string())
        }
    })?;

    let outcome = state
        .service
        .ingest(state.ingest_context(&inbox.reference), message)
        .await?;
    state.committed(&outcome);
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
