//! `/api/v1/contacts/{id}/export` and `/erase` (admins): a person's data handed over
//! whole, or erased; `/api/v1/privacy/audit`: who did either, when and why. The rules
//! are in `domain/privacy`; here, HTTP only.

use std::sync::Arc;

use axum::Json;
use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::v1::{Authenticated, JsonObject, caller, id_param, page_limit, parse_id, reject_unknown};
use super::{ApiError, AppState, PathParam};
use crate::domain::access;
use crate::domain::events::Actor;
use crate::domain::privacy::archive;

/// `GET /api/v1/contacts/{id}/export` → the archive (`application/gzip`, a tar of
/// `contact.json` and the attachments).
pub async fn export(
    State(state): State<Arc<AppState>>,
    Authenticated(agent): Authenticated,
    PathParam(id): PathParam,
) -> Result<Response, ApiError> {
    access::may_handle_personal_data(&caller(&state, &agent))?;
    let id = parse_id(&id, "contact")?;
    let now = state.clock.now_ms();
    let export = state.service.export_contact(id, Actor::agent(agent.id), now).await?;
    // Compressing the attachments is CPU work: off the async workers.
    let bytes = tokio::task::spawn_blocking(move || archive::archive(&export, now))
        .await
        .map_err(|err| {
            tracing::error!(%err, "building an export archive stopped");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "export_failed",
                "the archive could not be built",
            )
        })?
        .map_err(|err| {
            tracing::error!(%err, "building an export archive failed");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "export_failed",
                "the archive could not be built",
            )
        })?;
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"contact-{id}.tar.gz\""))
        .unwrap_or_else(|_| HeaderValue::from_static("attachment"));
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("application/gzip")),
            (header::CONTENT_DISPOSITION, disposition),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        bytes,
    )
        .into_response())
}

/// `POST /api/v1/contacts/{id}/erase` with `{"reason": "…"}` → what was erased.
pub async fn erase(
    State(state): State<Arc<AppState>>,
    Authenticated(agent): Authenticated,
    PathParam(id): PathParam,
    JsonObject(object): JsonObject,
) -> Result<Response, ApiError> {
    access::may_handle_personal_data(&caller(&state, &agent))?;
    let id = parse_id(&id, "contact")?;
    reject_unknown(object.keys(), &["reason"], "field")?;
    let reason = match object.get("reason") {
        Some(Value::String(reason)) => reason.as_str(),
        Some(_) => return Err(ApiError::invalid("reason", "must be a string")),
        None => {
            return Err(ApiError::invalid(
                "reason",
                "is required: say why (a request or ticket reference, no personal data)",
            ));
        }
    };
    let erasure = state
        .service
        .erase_contact(id, Actor::agent(agent.id), reason, state.clock.now_ms())
        .await?;
    // `contact.erased` was queued for subscribers; queued replies to the person are gone.
    state.changed();
    Ok(Json(erasure).into_response())
}

/// `GET /api/v1/privacy/audit?contact=ID&before=ID&limit=N` → `{"entries": [...]}`,
/// newest first.
pub async fn audit(
    State(state): State<Arc<AppState>>,
    Authenticated(agent): Authenticated,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    access::may_handle_personal_data(&caller(&state, &agent))?;
    reject_unknown(params.keys(), &["contact", "before", "limit"], "query parameter")?;
    let (contact, before) = (id_param(&params, "contact")?, id_param(&params, "before")?);
    let limit = page_limit(params.get("limit").map(String::as_str))?;
    let entries = state.queries.privacy_audit(contact, before, limit).await?;
    Ok(Json(json!({"entries": entries})).into_response())
}
