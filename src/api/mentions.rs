//! An agent's mentions: the internal notes that `@name` them, newest first, and marking
//! them read. Each agent sees their own, in the conversations they may still read.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use super::v1::{Authenticated, JsonObject, caller, id_param, page_limit, reject_unknown};
use crate::domain::access;

/// `GET /api/v1/mentions?unread=true&before=&limit=`.
pub async fn list(
    State(state): State<Arc<AppState>>,
    Authenticated(agent): Authenticated,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    reject_unknown(params.keys(), &["unread", "before", "limit"], "query parameter")?;
    let unread_only = match params.get("unread").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(ApiError::invalid("unread", "must be true or false")),
    };
    let before = id_param(&params, "before")?;
    let limit = page_limit(params.get("limit").map(String::as_str))?;
    let visible_to = access::visibility(&caller(&state, &agent));
    let mentions = state
        .queries
        .mentions(agent.id, &visible_to, unread_only, before, limit)
        .await?;
    let unread = state.queries.unread_mentions(agent.id, &visible_to).await?;
    Ok(Json(json!({"unread": unread, "mentions": mentions})))
}

/// `POST /api/v1/mentions/read` `{"ids": [..]}` or `{"all": true}`: `{"marked": n}`.
pub async fn mark_read(
    State(state): State<Arc<AppState>>,
    Authenticated(agent): Authenticated,
    JsonObject(object): JsonObject,
) -> Result<Json<Value>, ApiError> {
    reject_unknown(object.keys(), &["ids", "all"], "field")?;
    let ids = match (object.get("ids"), object.get("all")) {
        (Some(Value::Array(items)), None) => Some(
            items
                .iter()
                .map(|item| item.as_i64().filter(|id| *id > 0))
                .collect::<Option<Vec<i64>>>()
                .filter(|ids| !ids.is_empty() && ids.len() <= 1000)
                .ok_or_else(|| ApiError::invalid("ids", "must be 1 to 1000 mention ids"))?,
        ),
        (Some(_), None) => return Err(ApiError::invalid("ids", "must be 1 to 1000 mention ids")),
        (None, Some(Value::Bool(true))) => None,
        (None, Some(_)) => return Err(ApiError::invalid("all", "must be true")),
        (Some(_), Some(_)) => return Err(ApiError::invalid("all", "cannot be given with `ids`")),
        (None, None) => return Err(ApiError::invalid("ids", "is required (or `all`: true)")),
    };
    let marked = state
        .service
        .mark_mentions_read(agent.id, ids, state.clock.now_ms())
        .await?;
    Ok(Json(json!({"marked": marked})))
}
