//! `/hooks/{inbox}`: channel ingress for every inbox whose connector takes hooks (a
//! webhook inbox, a Telegram bot in webhook mode, a WhatsApp number). The connector
//! decides what the request means; this layer applies the door's rate limits and body
//! budget, and hands the connector the inbox's sink. The sender gets its 2xx only after
//! what it sent is committed; any error stores nothing.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use switchboard_connector_core::{HookBody, HookError, HookHead};

use super::door;
use super::error::ApiError;
use super::{AppState, PathParam};
use crate::channels::sink::InboxSink;

pub async fn receive(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    PathParam(inbox_key): PathParam,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let not_found = || ApiError::not_found(&format!("inbox `{inbox_key}`"));
    let Some(inbox) = state.channels.by_key(&inbox_key) else {
        return Err(not_found());
    };
    // Before anything is read: a sender over its rate costs a lookup, nothing more.
    door::check_rate(state.door.hook_per_address.as_ref(), &peer.ip(), "from this address")?;
    door::check_rate(state.door.hook_per_inbox.as_ref(), &inbox_key, "to this inbox")?;
    // A channel that takes no hooks (mail arrives over IMAP): a request is somebody
    // guessing keys.
    let Some(hook) = inbox.connector.hook() else {
        return Err(not_found());
    };
    let head = HookHead {
        method: &method,
        query: uri.query(),
        headers: &headers,
        now_ms: state.clock.now_ms(),
    };
    let limit = hook.admit(&head).map_err(refused)?;
    let body = state.door.budget.read(body, limit, state.door.body_timeout).await?;
    let sink = InboxSink {
        state: Arc::clone(&state),
        inbox: Arc::clone(inbox),
    };
    let reply = hook.handle(&head, &body.bytes, &sink).await.map_err(refused)?;
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK);
    Ok(match reply.body {
        HookBody::Json(value) => (status, Json(value)).into_response(),
        HookBody::Text(text) => (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response(),
    })
}

fn refused(err: HookError) -> ApiError {
    ApiError::new(
        StatusCode::from_u16(err.status).unwrap_or(StatusCode::BAD_REQUEST),
        err.code,
        err.message,
    )
}
