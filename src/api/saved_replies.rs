//! `/api/v1/saved-replies`: an agent's own saved replies and their teams', made,
//! changed, removed, and filled for a conversation. Sending one is the reply endpoint's
//! `saved_reply` field. The rules are in `domain/saved_replies`; here, HTTP only.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::v1::{Authenticated, JsonObject, caller, parse_id, reject_unknown};
use super::{ApiError, AppState, PathParam};
use crate::domain::access;
use crate::domain::saved_replies::{self as rules, Changes, Draft, MAX_BODIES};
use crate::query::saved_replies::matching;
use crate::query::{Agent, SavedReplyView};
use crate::store::ReplyScope;

/// The longest search text.
const MAX_QUERY: usize = 200;

/// `GET /api/v1/saved-replies?q=…`: the caller's own and their teams', best match first.
pub async fn list(
    State(state): State<Arc<AppState>>,
    Authenticated(agent): Authenticated,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    reject_unknown(params.keys(), &["q"], "query parameter")?;
    let text = params.get("q").map(|text| text.trim()).filter(|text| !text.is_empty());
    if text.is_some_and(|text| text.chars().count() > MAX_QUERY) {
        return Err(ApiError::invalid("q", format!("is longer than {MAX_QUERY} characters")));
    }
    let teams = access::saved_replies_seen(&caller(&state, &agent));
    let replies = state.queries.saved_replies(agent.id, &teams).await?;
    Ok(Json(json!({"saved_replies": matching(replies, text)})))
}

/// `GET /api/v1/saved-replies/{id}`
pub async fn show(
    State(state): State<Arc<AppState>>,
    Authenticated(agent): Authenticated,
    PathParam(id): PathParam,
) -> Result<Json<SavedReplyView>, ApiError> {
    let id = parse_id(&id, "saved reply")?;
    Ok(Json(visible(&state, &agent, id).await?))
}

/// The saved reply, or `404` as for one that does not exist when the caller may not see
/// it (someone else's personal reply, another team's).
async fn visible(state: &AppState, agent: &Agent, id: i64) -> Result<SavedReplyView, ApiError> {
    let reply = state.queries.saved_reply(id).await?;
    let scope = match (&reply.team, reply.owner_id) {
        (Some(team), _) => ReplyScope::Team(team.clone()),
        (None, Some(owner)) => ReplyScope::Personal(owner),
        (None, None) => return Err(ApiError::not_found("saved reply")),
    };
    if !access::may_see_saved_reply(&caller(state, agent), &scope) {
        return Err(ApiError::not_found("saved reply"));
    }
    Ok(reply)
}

/// `POST /api/v1/saved-replies` with `shortcut`, `title`, `bodies` and optionally
/// `fallback` and `team` (a team's reply; without, the caller's own).
pub async fn create(
    State(state): State<Arc<AppState>>,
    Authenticated(agent): Authenticated,
    JsonObject(object): JsonObject,
) -> Result<Response, ApiError> {
    reject_unknown(
        object.keys(),
        &["shortcut", "title", "bodies", "fallback", "team"],
        "field",
    )?;
    let shortcut = match object.get("shortcut") {
        Some(Value::String(text)) => rules::shortcut(text).map_err(|problem| ApiError::invalid("shortcut", problem))?,
        Some(_) => return Err(ApiError::invalid("shortcut", "must be a string such as \"refund\"")),
        None => return Err(ApiError::invalid("shortcut", "is required")),
    };
    let title = match object.get("title") {
        None | Some(Value::Null) => shortcut.clone(),
        Some(Value::String(text)) => rules::title(text).map_err(|problem| ApiError::invalid("title", problem))?,
        Some(_) => return Err(ApiError::invalid("title", "must be a string")),
    };
    let bodies = match object.get("bodies") {
        Some(value) => bodies(value, false)?
            .into_iter()
            .filter_map(|(language, body)| body.map(|body| (language, body)))
            .collect::<BTreeMap<_, _>>(),
        None => {
            return Err(ApiError::invalid(
                "bodies",
                "is required: {\"en\": \"text\", \"it\": \"testo\"}, one text per language",
            ));
        }
    };
    if bodies.is_empty() {
        return Err(ApiError::invalid("bodies", "must hold at least one language's text"));
    }
    let scope = match object.get("team") {
        None | Some(Value::Null) => ReplyScope::Personal(agent.id),
        Some(Value::String(team)) if !team.trim().is_empty() => ReplyScope::Team(team.trim().to_owned()),
        Some(_) => {
            return Err(ApiError::invalid(
                "team",
                "must be a team's key, or absent for your own",
            ));
        }
    };
    let draft = Draft {
        scope,
        shortcut,
        title,
        bodies,
        fallback: fallback(&object)?,
    };
    let id = state
        .service
        .create_saved_reply(caller(&state, &agent), draft, state.clock.now_ms())
        .await?;
    let reply = state.queries.saved_reply(id).await?;
    Ok((StatusCode::CREATED, Json(reply)).into_response())
}

/// `PATCH /api/v1/saved-replies/{id}` with any of `shortcut`, `title`, `bodies` (merged:
/// a language set to `null` is removed) and `fallback`.
pub async fn update(
    State(state): State<Arc<AppState>>,
    Authenticated(agent): Authenticated,
    PathParam(id): PathParam,
    JsonObject(object): JsonObject,
) -> Result<Json<SavedReplyView>, ApiError> {
    let id = parse_id(&id, "saved reply")?;
    // Before the values are judged: one the caller may not see does not exist.
    visible(&state, &agent, id).await?;
    if object.contains_key("team") {
        return Err(ApiError::invalid(
            "team",
            "cannot change; make a new saved reply where it belongs and remove this one",
        ));
    }
    reject_unknown(object.keys(), &["shortcut", "title", "bodies", "fallback"], "field")?;
    let text_of = |field: &'static str, check: fn(&str) -> Result<String, String>| match object.get(field) {
        None => Ok(None),
        Some(Value::String(text)) => check(text)
            .map(Some)
            .map_err(|problem| ApiError::invalid(field, problem)),
        Some(_) => Err(ApiError::invalid(field, "must be a string")),
    };
    let changes = Changes {
        shortcut: text_of("shortcut", rules::shortcut)?,
        title: text_of("title", rules::title)?,
        bodies: object
            .get("bodies")
            .map(|value| bodies(value, true))
            .transpose()?
            .unwrap_or_default(),
        fallback: fallback(&object)?,
    };
    if changes.is_empty() {
        return Err(ApiError::invalid(
            "the body",
            "must change at least one of shortcut, title, bodies, fallback",
        ));
    }
    state
        .service
        .edit_saved_reply(caller(&state, &agent), id, changes, state.clock.now_ms())
        .await?;
    Ok(Json(state.queries.saved_reply(id).await?))
}

/// `DELETE /api/v1/saved-replies/{id}`: `204`.
pub async fn delete(
    State(state): State<Arc<AppState>>,
    Authenticated(agent): Authenticated,
    PathParam(id): PathParam,
) -> Result<StatusCode, ApiError> {
    let id = parse_id(&id, "saved reply")?;
    state.service.delete_saved_reply(caller(&state, &agent), id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/saved-replies/{id}/render?conversation={id}`: the text the caller would
/// send in that conversation, in the language chosen for its contact.
pub async fn render(
    State(state): State<Arc<AppState>>,
    Authenticated(agent): Authenticated,
    PathParam(id): PathParam,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id, "saved reply")?;
    reject_unknown(params.keys(), &["conversation"], "query parameter")?;
    let conversation = match params.get("conversation").map(|text| text.trim()) {
        Some(text) => text
            .trim_start_matches('#')
            .parse::<i64>()
            .ok()
            .filter(|id| *id > 0)
            .ok_or_else(|| ApiError::invalid("conversation", "must be a conversation's id"))?,
        None => {
            return Err(ApiError::invalid(
                "conversation",
                "is required: the conversation to fill it for",
            ));
        }
    };
    let rendered = state
        .service
        .render_saved_reply(caller(&state, &agent), id, conversation)
        .await?;
    Ok(Json(json!({
        "saved_reply": rendered.saved_reply,
        "conversation_id": conversation,
        "language": rendered.language,
        "text": rendered.text,
        "missing": rendered.missing,
    })))
}

/// `{"en": "text", "it": "testo"}`, each language checked and lowercased, each body's
/// placeholders checked; `null` removes a language where `removable`.
fn bodies(value: &Value, removable: bool) -> Result<BTreeMap<String, Option<String>>, ApiError> {
    let Some(object) = value.as_object() else {
        return Err(ApiError::invalid(
            "bodies",
            "must be an object of language → text, such as {\"en\": \"Hello {{contact.name}}\"}",
        ));
    };
    if object.len() > MAX_BODIES {
        return Err(ApiError::invalid(
            "bodies",
            format!("may hold at most {MAX_BODIES} languages"),
        ));
    }
    let mut bodies = BTreeMap::new();
    for (key, body) in object {
        let field = format!("bodies.{key}");
        let language = rules::language(key).map_err(|problem| ApiError::invalid(&field, problem))?;
        let body = match body {
            Value::String(text) => Some(rules::body(text).map_err(|problem| ApiError::invalid(&field, problem))?),
            Value::Null if removable => None,
            _ if removable => return Err(ApiError::invalid(&field, "must be a text, or null to remove it")),
            _ => return Err(ApiError::invalid(&field, "must be a text")),
        };
        if bodies.insert(language.clone(), body).is_some() {
            return Err(ApiError::invalid(&field, format!("repeats the language `{language}`")));
        }
    }
    Ok(bodies)
}

fn fallback(object: &Map<String, Value>) -> Result<Option<String>, ApiError> {
    match object.get("fallback") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => rules::language(text)
            .map(Some)
            .map_err(|problem| ApiError::invalid("fallback", problem)),
        Some(_) => Err(ApiError::invalid(
            "fallback",
            "must be a language of `bodies`, such as \"en\"",
        )),
    }
}
