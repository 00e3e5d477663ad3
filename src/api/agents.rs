//! Agents as admins manage them through the API: created in one or more teams, their teams,
//! role and languages changed, deactivated and reactivated, sign-in links and API tokens issued,
//! tokens revoked, and the audit log of all of it (`GET /api/v1/audit`).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::error::ApiError;
use super::v1::{Authenticated, JsonObject, agent_id_of, caller, id_param, page_limit, reject_unknown};
use super::{AppState, PathParam};
use crate::auth::{generate_token, hash_token, link_url, random_secret};
use crate::domain::access;
use crate::domain::agents::{AgentChanges, language_skills};
use crate::model::Role;
use crate::query::Agent;
use crate::store::NewAgent;

const MAX_NAME_CHARS: usize = 100;
const MAX_LABEL_CHARS: usize = 100;

fn internal(err: impl std::fmt::Display) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", err.to_string())
}

/// Secrets are shown once: no cache may keep the answer that carries one.
fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn admin(state: &AppState, agent: &Agent) -> Result<(), ApiError> {
    Ok(access::may_manage_agents(&caller(state, agent))?)
}

/// `"teams": ["billing", "technical"]`: team keys, the home team first.
fn teams_of(value: &Value) -> Result<Vec<String>, ApiError> {
    let Value::Array(items) = value else {
        return Err(ApiError::invalid("teams", "must be an array of team keys"));
    };
    items
        .iter()
        .map(|item| match item {
            Value::String(key) if !key.trim().is_empty() => Ok(key.trim().to_owned()),
            _ => Err(ApiError::invalid("teams", "must be an array of team keys")),
        })
        .collect()
}

/// `"languages": ["th", "en"]`: the languages the agent reads, checked and made lowercase
/// as stored; `[]` for none.
fn languages_of(value: &Value) -> Result<Vec<String>, ApiError> {
    let shape = || {
        ApiError::invalid(
            "languages",
            "must be an array of language tags such as [\"th\", \"en\"]",
        )
    };
    let Value::Array(items) = value else {
        return Err(shape());
    };
    let tags: Vec<String> = items
        .iter()
        .map(|item| item.as_str().map(str::to_owned).ok_or_else(shape))
        .collect::<Result<_, _>>()?;
    Ok(language_skills(&tags)?)
}

fn role_of(value: &Value) -> Result<Role, ApiError> {
    value
        .as_str()
        .and_then(Role::parse)
        .ok_or_else(|| ApiError::invalid("role", format!("must be one of {}", Role::names())))
}

/// A token's label, 1 to 100 characters: what the token is for ("CRM sync").
fn label_of(object: &Map<String, Value>, field: &str) -> Result<Option<String>, ApiError> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(label))
            if !label.trim().is_empty()
                && label.trim().chars().count() <= MAX_LABEL_CHARS
                && !label.chars().any(char::is_control) =>
        {
            Ok(Some(label.trim().to_owned()))
        }
        Some(_) => Err(ApiError::invalid(
            field,
            format!("must be a label of 1 to {MAX_LABEL_CHARS} characters"),
        )),
    }
}

/// `POST /api/v1/agents` (admins): `{"name", "role"?, "teams", "capacity"?, "available"?,
/// "languages"?, "token"?: "label"}`. Answers the agent with a one-time sign-in link and, when `token`
/// names one, an API token: both shown only this once.
pub async fn create(
    State(state): State<Arc<AppState>>,
    Authenticated(admin_agent): Authenticated,
    JsonObject(object): JsonObject,
) -> Result<Response, ApiError> {
    admin(&state, &admin_agent)?;
    reject_unknown(
        object.keys(),
        &["name", "role", "teams", "capacity", "available", "languages", "token"],
        "field",
    )?;
    let name = match object.get("name") {
        Some(Value::String(name))
            if !name.trim().is_empty()
                && name.trim().chars().count() <= MAX_NAME_CHARS
                && !name.chars().any(char::is_control) =>
        {
            name.trim().to_owned()
        }
        Some(_) => {
            return Err(ApiError::invalid(
                "name",
                format!("must be 1 to {MAX_NAME_CHARS} characters"),
            ));
        }
        None => return Err(ApiError::invalid("name", "is required")),
    };
    let role = object.get("role").map(role_of).transpose()?.unwrap_or(Role::Agent);
    let teams = match object.get("teams") {
        Some(value) => teams_of(value)?,
        None => return Err(ApiError::invalid("teams", "is required")),
    };
    let capacity = match object.get("capacity") {
        None | Some(Value::Null) => None,
        Some(value) => Some(
            value
                .as_u64()
                .filter(|capacity| (1..=1000).contains(capacity))
                .map(|capacity| capacity as u32)
                .ok_or_else(|| ApiError::invalid("capacity", "must be a number from 1 to 1000"))?,
        ),
    };
    let available = match object.get("available") {
        None => false,
        Some(Value::Bool(available)) => *available,
        Some(_) => return Err(ApiError::invalid("available", "must be true or false")),
    };
    let languages = match object.get("languages") {
        None | Some(Value::Null) => Vec::new(),
        Some(value) => languages_of(value)?,
    };
    let token_label = label_of(&object, "token")?;
    // Without a token the agent still needs a unique value in the column it replaces.
    let token = generate_token().map_err(internal)?;
    let now = state.clock.now_ms();
    let agent_id = state
        .service
        .create_agent(
            NewAgent {
                name,
                role,
                teams,
                token_hash: hash_token(&token),
                first_token: token_label.clone(),
                capacity,
                available,
                languages,
            },
            Some(admin_agent.id),
            now,
        )
        .await?;
    let link = sign_in_link(&state, admin_agent.id, agent_id).await?;
    state.changed();
    let agent = state.queries.agent(agent_id).await?;
    let mut body = json!({"agent": agent, "sign_in_link": link});
    if token_label.is_some() {
        body["token"] = json!(token);
    }
    tracing::info!(agent_id, by = admin_agent.id, "agent created");
    Ok(no_store((StatusCode::CREATED, Json(body)).into_response()))
}

/// `PATCH /api/v1/agents/{agent}` (admins): `{"teams"?, "role"?, "languages"?}`.
pub async fn update(
    State(state): State<Arc<AppState>>,
    Authenticated(admin_agent): Authenticated,
    PathParam(who): PathParam,
    JsonObject(object): JsonObject,
) -> Result<Json<Agent>, ApiError> {
    admin(&state, &admin_agent)?;
    reject_unknown(object.keys(), &["teams", "role", "languages"], "field")?;
    let changes = AgentChanges {
        teams: object.get("teams").map(teams_of).transpose()?,
        role: object.get("role").map(role_of).transpose()?,
        languages: object.get("languages").map(languages_of).transpose()?,
    };
    if changes.teams.is_none() && changes.role.is_none() && changes.languages.is_none() {
        return Err(ApiError::invalid(
            "body",
            "must change at least one of teams, role, languages",
        ));
    }
    let agent_id = agent_id_of(&state, &who).await?;
    state
        .service
        .update_agent(Some(admin_agent.id), agent_id, changes, state.clock.now_ms())
        .await?;
    state.changed();
    state.stream.agents_changed();
    Ok(Json(state.queries.agent(agent_id).await?))
}

/// `POST /api/v1/agents/{agent}/deactivate` and `/activate` (admins). A deactivated
/// agent's sessions end and their tokens are refused from the next request; their open
/// conversations go back to the queue (`returned_to_queue`).
pub async fn set_active(
    state: Arc<AppState>,
    admin_agent: Agent,
    who: String,
    active: bool,
) -> Result<Response, ApiError> {
    admin(&state, &admin_agent)?;
    let agent_id = agent_id_of(&state, &who).await?;
    if agent_id == admin_agent.id && !active {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            "an admin cannot deactivate themselves; ask another admin",
        ));
    }
    let outcome = state
        .service
        .set_agent_active(Some(admin_agent.id), agent_id, active, state.clock.now_ms())
        .await?;
    state.changed();
    state.stream.agents_changed();
    let mut body = serde_json::to_value(state.queries.agent(agent_id).await?).map_err(internal)?;
    body["returned_to_queue"] = json!(outcome.returned);
    Ok(Json(body).into_response())
}

/// `POST /api/v1/agents/{agent}/sign-in-link` (admins): a new one-time link; the
/// agent's earlier unused links stop working.
pub async fn issue_link(
    State(state): State<Arc<AppState>>,
    Authenticated(admin_agent): Authenticated,
    PathParam(who): PathParam,
) -> Result<Response, ApiError> {
    admin(&state, &admin_agent)?;
    let agent_id = agent_id_of(&state, &who).await?;
    let mut body = sign_in_link(&state, admin_agent.id, agent_id).await?;
    body["agent_id"] = json!(agent_id);
    Ok(no_store((StatusCode::CREATED, Json(body)).into_response()))
}

/// A new one-time link for the agent, issued by `admin_id`: `{"url", "expires_at"}`.
async fn sign_in_link(state: &AppState, admin_id: i64, agent_id: i64) -> Result<Value, ApiError> {
    let token = random_secret().map_err(internal)?;
    let expires_at = state
        .service
        .issue_sign_in_link(
            state.settings.console.policy,
            Some(admin_id),
            agent_id,
            hash_token(&token),
            state.clock.now_ms(),
        )
        .await?;
    Ok(json!({
        "url": link_url(&state.settings.console.public_url, &token),
        "expires_at": crate::model::Timestamp(expires_at),
    }))
}

/// `GET /api/v1/agents/{agent}/tokens` (admins): labels and dates, never the tokens.
pub async fn tokens(
    State(state): State<Arc<AppState>>,
    Authenticated(admin_agent): Authenticated,
    PathParam(who): PathParam,
) -> Result<Json<Value>, ApiError> {
    admin(&state, &admin_agent)?;
    let agent_id = agent_id_of(&state, &who).await?;
    Ok(Json(json!({"tokens": state.queries.agent_tokens(agent_id).await?})))
}

/// `POST /api/v1/agents/{agent}/tokens` (admins): `{"label": "CRM sync"}`; the token is
/// in the answer, shown only this once.
pub async fn issue_token(
    State(state): State<Arc<AppState>>,
    Authenticated(admin_agent): Authenticated,
    PathParam(who): PathParam,
    JsonObject(object): JsonObject,
) -> Result<Response, ApiError> {
    admin(&state, &admin_agent)?;
    reject_unknown(object.keys(), &["label"], "field")?;
    let label = label_of(&object, "label")?.ok_or_else(|| ApiError::invalid("label", "is required"))?;
    let agent_id = agent_id_of(&state, &who).await?;
    let token = generate_token().map_err(internal)?;
    let id = state
        .service
        .issue_token(
            Some(admin_agent.id),
            agent_id,
            hash_token(&token),
            label.clone(),
            state.clock.now_ms(),
        )
        .await?;
    let body = json!({"id": id, "agent_id": agent_id, "label": label, "token": token});
    Ok(no_store((StatusCode::CREATED, Json(body)).into_response()))
}

/// `DELETE /api/v1/agents/{agent}/tokens/{id}` (admins): refused from the next request.
pub async fn revoke_token(
    State(state): State<Arc<AppState>>,
    Authenticated(admin_agent): Authenticated,
    Path((who, token)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    admin(&state, &admin_agent)?;
    let agent_id = agent_id_of(&state, &who).await?;
    let token_id = super::v1::parse_id(&token, "token")?;
    state
        .service
        .revoke_token(Some(admin_agent.id), agent_id, token_id, state.clock.now_ms())
        .await?;
    state.stream.agents_changed();
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/audit?agent=&before=&limit=` (admins): what admins did, newest first.
pub async fn audit(
    State(state): State<Arc<AppState>>,
    Authenticated(admin_agent): Authenticated,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    admin(&state, &admin_agent)?;
    reject_unknown(params.keys(), &["agent", "before", "limit"], "query parameter")?;
    let agent = match params.get("agent") {
        Some(who) => Some(agent_id_of(&state, who).await?),
        None => None,
    };
    let before = id_param(&params, "before")?;
    let limit = page_limit(params.get("limit").map(String::as_str))?;
    let entries = state.queries.admin_audit(agent, before, limit).await?;
    Ok(Json(json!({"entries": entries})))
}
