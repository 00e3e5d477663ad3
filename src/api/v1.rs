//! `/api/v1`: what agents and consoles use. Bearer tokens from `switchboard agent add`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use serde::Serialize;
use serde_json::{Map, Value, json};
use switchboard_connector_core::OutboundAttachment;
use switchboard_connector_webhook::inbound::BASE64;

use super::error::ApiError;
use super::{AppState, PathParam};
use crate::auth::hash_token;
use crate::domain::access::{self, Caller};
use crate::domain::desk::Desk;
use crate::domain::escalation::{Escalation, EscalationTarget};
use crate::domain::lifecycle::{ConversationChanges, LabelChanges, NewAgentMessage};
use crate::model::{Priority, Status, Timestamp};
use crate::query::{Agent, AssigneeFilter, ConversationDetail, ConversationFilter, ConversationPage, Cursor};
use crate::query::{ListOrder, ReplyWindow, SlaFilter, TeamCounts};
use crate::store::AgentSelector;

const DEFAULT_PAGE: u32 = 25;
const MAX_PAGE: u32 = 100;
/// The longest reply or note accepted, in bytes.
const MAX_TEXT: usize = 64 * 1024;
const MAX_ATTACHMENTS: usize = 10;
/// The files of one message together: what most mail servers take, after base64.
const MAX_ATTACHMENT_BYTES: usize = 10 * 1024 * 1024;
/// A reply's body: its files in base64 (4/3 of their size) plus text and JSON.
const MAX_MESSAGE_BODY: usize = MAX_ATTACHMENT_BYTES / 3 * 4 + 2 * MAX_TEXT + 64 * 1024;

pub fn router() -> super::Routes {
    super::Routes::new()
        .route(
            "/session",
            get(super::sessions::current)
                .post(super::sessions::sign_in)
                .delete(super::sessions::sign_out),
        )
        .route("/session/setup", axum::routing::post(super::sessions::set_up))
        .route("/stream", get(super::stream::stream))
        .route("/queues", get(queue_counts))
        .route("/agents", get(agents).post(super::agents::create))
        .route("/agents/me", get(me))
        .route("/agents/{agent}", axum::routing::patch(super::agents::update))
        .route(
            "/agents/{agent}/tokens",
            get(super::agents::tokens).post(super::agents::issue_token),
        )
        .route(
            "/agents/{agent}/tokens/{token}",
            axum::routing::delete(super::agents::revoke_token),
        )
        .route("/audit", get(super::agents::audit))
        .route("/reports/overview", get(super::reports::overview))
        .route("/reports/conversations", get(super::reports::conversations))
        .route("/mentions", get(super::mentions::list))
        .route("/mentions/read", axum::routing::post(super::mentions::mark_read))
        .route(
            "/agents/me/password",
            axum::routing::put(super::sessions::change_password),
        )
        .route(
            "/agents/{agent}/sign-in-link",
            axum::routing::post(super::agents::issue_link),
        )
        .route("/agents/{agent}/deactivate", axum::routing::post(deactivate))
        .route("/agents/{agent}/activate", axum::routing::post(activate))
        .route("/agents/{agent}/availability", axum::routing::put(set_availability))
        .route("/conversations/{id}/escalate", axum::routing::post(escalate))
        .route("/route/explain", axum::routing::post(explain_route))
        .route("/route/replay", axum::routing::post(replay_route))
        .route("/teams", get(teams))
        .route("/labels", get(labels))
        .route("/conversations", get(list_conversations))
        .route("/search", get(search))
        .route("/conversations/{id}", get(conversation).patch(update_conversation))
        .route(
            "/conversations/{id}/messages",
            axum::routing::post(add_message).layer(DefaultBodyLimit::max(MAX_MESSAGE_BODY)),
        )
        .route("/attachments/{id}", get(attachment))
        .route("/deliveries", get(super::deliveries::list))
        .route("/deliveries/{id}/retry", axum::routing::post(super::deliveries::retry))
        .route(
            "/subscriptions",
            get(super::subscriptions::list).post(super::subscriptions::create),
        )
        .route(
            "/subscriptions/{id}",
            get(super::subscriptions::get)
                .patch(super::subscriptions::update)
                .delete(super::subscriptions::delete),
        )
        .route(
            "/subscriptions/{id}/ping",
            axum::routing::post(super::subscriptions::ping),
        )
        .route("/contacts", get(super::contacts::list))
        .route(
            "/contacts/{id}",
            get(super::contacts::show).patch(super::contacts::update),
        )
        .route("/contacts/{id}/merge", axum::routing::post(super::contacts::merge))
        .route("/contacts/{id}/export", get(super::privacy::export))
        .route("/contacts/{id}/erase", axum::routing::post(super::privacy::erase))
        .route("/privacy/audit", get(super::privacy::audit))
        .route(
            "/saved-replies",
            get(super::saved_replies::list).post(super::saved_replies::create),
        )
        .route(
            "/saved-replies/{id}",
            get(super::saved_replies::show)
                .patch(super::saved_replies::update)
                .delete(super::saved_replies::delete),
        )
        .route("/saved-replies/{id}/render", get(super::saved_replies::render))
}

/// The agent a bearer token belongs to.
pub struct Authenticated(pub Agent);

/// Who a request acts for, as the access layer judges it.
pub(super) fn caller(state: &AppState, agent: &Agent) -> Caller {
    Caller {
        id: agent.id,
        role: agent.role,
        teams: agent.teams.clone(),
        policy: state.settings.visibility,
    }
}

impl FromRequestParts<Arc<AppState>> for Authenticated {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        let unauthorized = |message: &str| {
            let mut response = ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).into_response();
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            response
        };
        let agent = match bearer_token(&parts.headers) {
            Some(token) => match state.queries.agent_by_token_hash(&hash_token(token)).await {
                Ok(Some(agent)) => agent,
                Ok(None) => return Err(unauthorized("the token is not valid")),
                Err(err) => return Err(ApiError::from(err).into_response()),
            },
            // A person at the console: the session cookie, with its CSRF token.
            None => match super::sessions::session_token(&parts.headers) {
                Some(cookie) => {
                    super::sessions::session_of(state, parts, cookie)
                        .await
                        .map_err(IntoResponse::into_response)?
                        .agent
                }
                None => {
                    return Err(unauthorized(
                        "send `Authorization: Bearer <token>` (`switchboard agent add` creates tokens), or sign in",
                    ));
                }
            },
        };
        super::door::check_rate(state.door.api_per_agent.as_ref(), &agent.id, "with this token")
            .map_err(IntoResponse::into_response)?;
        Ok(Authenticated(agent))
    }
}

/// The token of `Authorization: Bearer <token>`, when the request has one.
pub(super) fn bearer_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        // The scheme name is case-insensitive (RFC 9110).
        .and_then(|(scheme, token)| scheme.eq_ignore_ascii_case("bearer").then_some(token))
        .map(str::trim)
        .filter(|token| !token.is_empty())
}

/// An optional query parameter holding a positive id (`before`, `contact`): `422` naming
/// it otherwise.
pub(super) fn id_param(params: &HashMap<String, String>, name: &str) -> Result<Option<i64>, ApiError> {
    params
        .get(name)
        .map(|text| {
            text.parse::<i64>()
                .ok()
                .filter(|id| *id > 0)
                .ok_or_else(|| ApiError::invalid(name, "must be a positive id"))
        })
        .transpose()
}

/// A list's `limit` parameter: a page of 1 to 100, 25 when absent.
pub(super) fn page_limit(value: Option<&str>) -> Result<u32, ApiError> {
    match value {
        None => Ok(DEFAULT_PAGE),
        Some(text) => text
            .parse::<u32>()
            .ok()
            .filter(|limit| (1..=MAX_PAGE).contains(limit))
            .ok_or_else(|| ApiError::invalid("limit", format!("must be a number from 1 to {MAX_PAGE}"))),
    }
}

pub(super) fn parse_id(text: &str, what: &str) -> Result<i64, ApiError> {
    text.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::not_found(what))
}

/// A JSON object request body. Every refusal is JSON: unreadable or too large (axum's
/// default 2 MiB limit), not JSON, or not an object.
pub struct JsonObject(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let body = Bytes::from_request(request, state).await.map_err(|rejection| {
            let code = if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                "body_too_large"
            } else {
                "unreadable_body"
            };
            ApiError::new(rejection.status(), code, rejection.body_text())
        })?;
        json_object(&body).map(JsonObject)
    }
}

/// A request body that must be one JSON object.
pub(super) fn json_object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(ApiError::invalid("the body", "must be a JSON object")),
        Err(err) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("the body is not valid JSON: {err}"),
        )),
    }
}

pub(super) fn reject_unknown<'a>(
    keys: impl Iterator<Item = &'a String>,
    known: &[&str],
    what: &str,
) -> Result<(), ApiError> {
    for key in keys {
        if !known.contains(&key.as_str()) {
            return Err(ApiError::invalid(
                key,
                format!("is not a {what}; known: {}", known.join(", ")),
            ));
        }
    }
    Ok(())
}

/// An agent named by id (digits) or by name.
fn agent_selector(text: &str) -> AgentSelector {
    match text.parse::<i64>() {
        Ok(id) => AgentSelector::Id(id),
        Err(_) => AgentSelector::Name(text.to_owned()),
    }
}

async fn me(Authenticated(agent): Authenticated) -> Json<Agent> {
    Json(agent)
}

/// Every agent with their availability and load: the supervisors' view.
async fn agents(
    State(state): State<Arc<AppState>>,
    Authenticated(agent): Authenticated,
) -> Result<Json<Value>, ApiError> {
    access::may_supervise(&caller(&state, &agent))?;
    Ok(Json(json!({"agents": state.queries.agents().await?})))
}

/// The label catalogue with each label's open conversations the caller may see; labels
/// on conversations but not in the catalogue (free-form, or from before it) follow.
async fn labels(
    State(state): State<Arc<AppState>>,
    Authenticated(agent): Authenticated,
) -> Result<Json<Value>, ApiError> {
    let visible_to = access::visibility(&caller(&state, &agent));
    let mut counts: HashMap<String, i64> = state.queries.label_counts(&visible_to).await?.into_iter().collect();
    let catalog = &state.service.desk().labels;
    let mut labels: Vec<Value> = catalog
        .labels()
        .map(|label| {
            let mut value = json!(label);
            value["open_conversations"] = json!(counts.remove(&label.name).unwrap_or(0));
            value["in_catalogue"] = json!(true);
            value
        })
        .collect();
    let mut others: Vec<(String, i64)> = counts.into_iter().collect();
    others.sort();
    labels.extend(others.into_iter().map(|(name, open)| {
        json!({"name": name, "color": null, "description": null, "built_in": false,
               "open_conversations": open, "in_catalogue": false})
    }));
    Ok(Json(json!({"free_form": catalog.is_free_form(), "labels": labels})))
}

/// The caller's queue tabs counted: open conversations assigned to them, unassigned,
/// their team's, and all they may see.
async fn queue_counts(
    State(state): State<Arc<AppState>>,
    Authenticated(agent): Authenticated,
) -> Result<Json<Value>, ApiError> {
    let visible_to = access::visibility(&caller(&state, &agent));
    let mut counts = serde_json::to_value(state.queries.queue_counts(agent.id, &visible_to).await?)
        .map_err(|err| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", err.to_string()))?;
    counts["mentions"] = json!(state.queries.unread_mentions(agent.id, &visible_to).await?);
    Ok(Json(counts))
}

async fn deactivate(
    State(state): State<Arc<AppState>>,
    Authenticated(admin): Authenticated,
    PathParam(who): PathParam,
) -> Result<Response, ApiError> {
    super::agents::set_active(state, admin, who, false).await
}

async fn activate(
    State(state): State<Arc<AppState>>,
    Authenticated(admin): Authenticated,
    PathParam(who): PathParam,
) -> Result<Response, ApiError> {
    super::agents::set_active(state, admin, who, true).await
}

/// `{"available": true}`: queues may assign to the agent (and do, at once, if theirs
/// has conversations waiting); `false`: no new assignments, current ones stay. `me`
/// for oneself; supervisors and admins may set anyone's (an agent who left without
/// signing off).
async fn set_availability(
    State(state): State<Arc<AppState>>,
    Authenticated(caller): Authenticated,
    PathParam(who): PathParam,
    JsonObject(object): JsonObject,
) -> Result<Json<Agent>, ApiError> {
    reject_unknown(object.keys(), &["available"], "field")?;
    let available = match object.get("available") {
        Some(Value::Bool(available)) => *available,
        Some(_) => return Err(ApiError::invalid("available", "must be true or false")),
        None => return Err(ApiError::invalid("available", "is required")),
    };
    let target = if who == "me" {
        caller.id
    } else {
        crate::domain::access::may_set_others_availability(&super::v1::caller(&state, &caller))?;
        agent_id_of(&state, &who).await?
    };
    state
        .service
        .set_availability(target, available, state.clock.now_ms())
        .await?;
    let agent = state.queries.agent(target).await?;
    // Becoming available may have assigned waiting conversations.
    state.changed();
    Ok(Json(agent))
}

/// The id of the agent a path names by id or name; `404` when there is none.
pub(super) async fn agent_id_of(state: &AppState, who: &str) -> Result<i64, ApiError> {
    let selector = agent_selector(who);
    state
        .queries
        .agents()
        .await?
        .into_iter()
        .find(|agent| match &selector {
            AgentSelector::Id(id) => agent.id == *id,
            AgentSelector::Name(name) => agent.name == *name,
        })
        .map(|agent| agent.id)
        .ok_or_else(|| ApiError::not_found("agent"))
}

/// `{"to": {"team": "billing"} | {"tier": "next"}, "summary": "…", "reason"?: "…"}`.
async fn escalate(
    State(state): State<Arc<AppState>>,
    Authenticated(agent): Authenticated,
    PathParam(id): PathParam,
    JsonObject(object): JsonObject,
) -> Result<Response, ApiError> {
    let conversation_id = parse_id(&id, "conversation")?;
    reject_unknown(object.keys(), &["to", "summary", "reason"], "field")?;
    check_visible(&state, &agent, conversation_id).await?;
    let to = match object.get("to") {
        Some(Value::Object(to)) => {
            reject_unknown(to.keys(), &["team", "tier"], "field of `to`")?;
            match (to.get("team"), to.get("tier")) {
                (Some(Value::String(team)), None) if !team.trim().is_empty() => {
                    EscalationTarget::Team(team.trim().to_owned())
                }
                (None, Some(Value::String(tier))) if tier == "next" => EscalationTarget::NextTier,
                (None, Some(_)) => return Err(ApiError::invalid("to.tier", "must be \"next\"")),
                (Some(_), None) => return Err(ApiError::invalid("to.team", "must be a team key")),
                _ => {
                    return Err(ApiError::invalid(
                        "to",
                        "must name one of {\"team\": KEY} or {\"tier\": \"next\"}",
                    ));
                }
            }
        }
        Some(_) => {
            return Err(ApiError::invalid(
                "to",
                "must be {\"team\": KEY} or {\"tier\": \"next\"}",
            ));
        }
        None => return Err(ApiError::invalid("to", "is required")),
    };
    let summary = match object.get("summary") {
        Some(Value::String(text)) if !text.trim().is_empty() => text.trim().to_owned(),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            return Err(ApiError::invalid(
                "summary",
                "is required: tell the receiving team what happened and what is needed, so the customer is not asked again",
            ));
        }
        Some(_) => return Err(ApiError::invalid("summary", "must be a string")),
    };
    if summary.len() > MAX_TEXT {
        return Err(ApiError::invalid(
            "summary",
            format!("must be at most {MAX_TEXT} bytes"),
        ));
    }
    let reason = match object.get("reason") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) if text.len() <= 200 => Some(text.trim().to_owned()),
        Some(_) => return Err(ApiError::invalid("reason", "must be a string of at most 200 bytes")),
    };
    state
        .service
        .escalate(Escalation {
            conversation_id,
            agent: caller(&state, &agent),
            to,
            summary,
            reason,
            now: state.clock.now_ms(),
        })
        .await?;
    let detail = state.queries.conversation(conversation_id).await?;
    state.changed();
    Ok(Json(detail).into_response())
}

/// What routing would do with a sample message (see [`crate::domain::explain`]); stores nothing.
async fn explain_route(
    State(state): State<Arc<AppState>>,
    _agent: Authenticated,
    JsonObject(object): JsonObject,
) -> Result<Json<crate::domain::explain::Explanation>, ApiError> {
    let sample = crate::domain::explain::Sample::parse(&object, &state.settings.inbox_kinds())
        .map_err(|err| ApiError::invalid(&err.field, err.problem))?;
    // Which language rule of assignment applies depends on who is on shift now.
    let agents = state.queries.agents().await?;
    Ok(Json(crate::domain::explain::explain(
        &state.settings.router,
        &state.settings.desk,
        &sample,
        state.clock.now_ms(),
        Some(&agents),
    )))
}

/// The most examples `POST /route/replay` shows of each kind of change.
const MAX_REPLAY_EXAMPLES: u64 = 1000;

/// What-if routing (see [`crate::domain::replay`]): `{"since": "7d", "config": "<TOML>",
/// "examples"?: 5}`, the conversations opened since then through the running config and
/// the posted one; stores nothing. Supervisors and admins.
async fn replay_route(
    State(state): State<Arc<AppState>>,
    Authenticated(agent): Authenticated,
    JsonObject(object): JsonObject,
) -> Result<Json<crate::domain::replay::ReplayReport>, ApiError> {
    use crate::domain::replay::{Replay, Routing};
    access::may_replay_routing(&caller(&state, &agent))?;
    reject_unknown(object.keys(), &["since", "config", "examples"], "field")?;
    let text = |field: &str| match object.get(field) {
        Some(Value::String(text)) => Ok(text.as_str()),
        _ => Err(ApiError::invalid(field, "is required, a string")),
    };
    let since = crate::domain::replay::parse_since(text("since")?, state.clock.now_ms())
        .map_err(|problem| ApiError::invalid("since", problem))?;
    let examples = match object.get("examples") {
        None | Some(Value::Null) => 5,
        Some(value) => value
            .as_u64()
            .filter(|count| *count <= MAX_REPLAY_EXAMPLES)
            .ok_or_else(|| {
                ApiError::invalid(
                    "examples",
                    format!("must be a whole number up to {MAX_REPLAY_EXAMPLES}"),
                )
            })?,
    };
    let changed = crate::config::from_toml(text("config")?, &EnvironmentOnly).map_err(|err| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            format!("`config` key `{}`: {}", err.key, err.problem),
        )
    })?;
    let running = Routing {
        router: &state.settings.router,
        desk: &state.settings.desk,
    };
    let after = Routing {
        router: &changed.router,
        desk: &changed.desk,
    };
    let report = crate::query::replay(
        state.queries.as_ref(),
        since,
        Replay::new(running, after, since, examples as usize),
    )
    .await?;
    Ok(Json(report))
}

/// The secrets a config posted to the API names: the daemon's environment variables, but
/// no file, so a request cannot make the daemon read its disk.
struct EnvironmentOnly;

impl switchboard_connector_core::SecretSource for EnvironmentOnly {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }

    fn read_file(&self, path: &str) -> std::io::Result<Vec<u8>> {
        Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!(
                "{path}: files are not read for a config posted to the API; name the secret inline or by environment variable, or use `switchboard route replay`"
            ),
        ))
    }
}

async fn teams(State(state): State<Arc<AppState>>, _agent: Authenticated) -> Result<Json<Value>, ApiError> {
    let summaries: Vec<TeamSummary> = state
        .queries
        .team_counts()
        .await?
        .into_iter()
        .map(|counts| TeamSummary::of(counts, &state.settings.desk))
        .collect();
    Ok(Json(json!({"teams": summaries})))
}

/// A team as `/api/v1/teams` shows it: its queue counted, with its policy.
#[derive(Debug, Serialize)]
struct TeamSummary {
    key: String,
    name: String,
    department: String,
    tier: i64,
    assignment: &'static str,
    /// Where `{"tier": "next"}` goes.
    escalates_to: Option<String>,
    /// Open conversations nobody is assigned to: the queue.
    waiting: i64,
    /// Open conversations an agent holds.
    assigned: i64,
    /// Unresolved conversations (open, pending, snoozed) with an SLA breach.
    breached: i64,
    /// Unresolved conversations with a clock past its warning, not yet breached.
    at_risk: i64,
    /// When the longest-waiting conversation of the queue entered it.
    oldest_waiting_since: Option<Timestamp>,
    /// Members marked available, and all members.
    agents_available: i64,
    agents: i64,
}

impl TeamSummary {
    fn of(counts: TeamCounts, desk: &Desk) -> TeamSummary {
        let policy = desk.team(&counts.key);
        TeamSummary {
            department: policy.map_or_else(|| counts.key.clone(), |team| team.department.clone()),
            assignment: policy.map_or("manual", |team| team.assignment.as_str()),
            escalates_to: policy.and_then(|team| team.next_tier.clone()),
            name: counts.name,
            tier: counts.tier,
            waiting: counts.waiting,
            assigned: counts.assigned,
            breached: counts.breached,
            at_risk: counts.at_risk,
            oldest_waiting_since: counts.oldest_waiting_since,
            agents_available: counts.agents_available,
            agents: counts.agents,
            key: counts.key,
        }
    }
}

/// The list's filters, as the list and the search take them.
const FILTERS: [&str; 10] = [
    "team", "status", "assignee", "inbox", "priority", "label", "channel", "sla", "sort", "contact",
];

async fn list_conversations(
    State(state): State<Arc<AppState>>,
    Authenticated(agent): Authenticated,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<ConversationPage>, ApiError> {
    let known: Vec<&str> = FILTERS.iter().copied().chain(["cursor", "limit"]).collect();
    reject_unknown(params.keys(), &known, "query parameter")?;
    let filter = conversation_filter(&params, &caller(&state, &agent))?;
    let param = |name: &str| {
        params
            .get(name)
            .map(|value| value.trim())
            .filter(|value| !value.is_empty())
    };
    let after = param("cursor")
        .map(|cursor| {
            Cursor::decode(cursor).ok_or_else(|| ApiError::invalid("cursor", "is not a cursor this API returned"))
        })
        .transpose()?;
    let limit = page_limit(param("limit"))?;
    Ok(Json(state.queries.conversations(&filter, after, limit).await?))
}

/// `GET /api/v1/search?q=…` with the list's filters and `limit`: the conversations whose
/// messages (notes included) or subject hold every word of `q`, newest match first.
async fn search(
    State(state): State<Arc<AppState>>,
    Authenticated(agent): Authenticated,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<crate::query::search::SearchPage>, ApiError> {
    // Search orders by its matches: `sort` is the list's only.
    let known: Vec<&str> = FILTERS
        .iter()
        .copied()
        .filter(|name| *name != "sort")
        .chain(["q", "limit"])
        .collect();
    reject_unknown(params.keys(), &known, "query parameter")?;
    let text = params.get("q").map(String::as_str).unwrap_or_default();
    let terms = crate::query::search::terms(text).map_err(|problem| ApiError::invalid("q", problem.0))?;
    let filter = conversation_filter(&params, &caller(&state, &agent))?;
    let limit = page_limit(
        params
            .get("limit")
            .map(|value| value.trim())
            .filter(|value| !value.is_empty()),
    )?;
    let request = crate::query::search::SearchRequest { terms, filter, limit };
    Ok(Json(state.queries.search(&request).await?))
}

/// The list's filters from the query string, limited to what the caller may see.
fn conversation_filter(params: &HashMap<String, String>, caller: &Caller) -> Result<ConversationFilter, ApiError> {
    // An empty value is the same as leaving the parameter out.
    let param = |name: &str| {
        params
            .get(name)
            .map(|value| value.trim())
            .filter(|value| !value.is_empty())
    };
    let statuses = match param("status") {
        None | Some("all") => Vec::new(),
        Some(list) => list
            .split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .map(|name| {
                Status::parse(name).ok_or_else(|| {
                    ApiError::invalid(
                        "status",
                        format!("has `{name}`; use all or some of {}", Status::names()),
                    )
                })
            })
            .collect::<Result<_, _>>()?,
    };
    let assignee = match param("assignee") {
        None | Some("any") => AssigneeFilter::Anyone,
        Some("none") => AssigneeFilter::Nobody,
        Some("me") => AssigneeFilter::Agent(AgentSelector::Id(caller.id)),
        Some(other) => AssigneeFilter::Agent(agent_selector(other)),
    };
    let priorities = match param("priority") {
        None => Vec::new(),
        Some(list) => list
            .split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .map(|name| {
                Priority::parse(name).ok_or_else(|| {
                    ApiError::invalid("priority", format!("has `{name}`; use some of {}", Priority::names()))
                })
            })
            .collect::<Result<_, _>>()?,
    };
    let channel = param("channel")
        .map(|name| {
            crate::channels::kind(name).ok_or_else(|| {
                ApiError::invalid(
                    "channel",
                    format!("`{name}` is not one of {}", crate::channels::registry::names()),
                )
            })
        })
        .transpose()?;
    let sla = match param("sla") {
        None => None,
        Some("at_risk") => Some(SlaFilter::AtRisk),
        Some("breached") => Some(SlaFilter::Breached),
        Some(other) => {
            return Err(ApiError::invalid(
                "sla",
                format!("`{other}` is not at_risk or breached"),
            ));
        }
    };
    let order = match param("sort") {
        None | Some("newest") => ListOrder::Newest,
        Some("oldest") => ListOrder::Oldest,
        Some(other) => return Err(ApiError::invalid("sort", format!("`{other}` is not newest or oldest"))),
    };
    let filter = ConversationFilter {
        // `mine`: any of the caller's teams; else keys separated by commas.
        teams: match param("team") {
            None => Vec::new(),
            Some("mine") => caller.teams.clone(),
            Some(keys) => keys
                .split(',')
                .map(str::trim)
                .filter(|key| !key.is_empty())
                .map(str::to_owned)
                .collect(),
        },
        statuses,
        assignee,
        inbox: param("inbox").map(str::to_owned),
        priorities,
        label: param("label").map(str::to_owned),
        channel,
        contact: param("contact")
            .map(|id| {
                id.parse::<i64>()
                    .map_err(|_| ApiError::invalid("contact", "must be a contact's id"))
            })
            .transpose()?,
        sla,
        order,
        visible_to: access::visibility(caller),
    };
    Ok(filter)
}

async fn conversation(
    State(state): State<Arc<AppState>>,
    Authenticated(agent): Authenticated,
    PathParam(id): PathParam,
) -> Result<Response, ApiError> {
    let id = parse_id(&id, "conversation")?;
    Ok(Json(readable(&state, &agent, id).await?).into_response())
}

/// The conversation's detail, when the caller may read it; `404` as for one that does
/// not exist otherwise.
async fn readable(state: &AppState, agent: &Agent, id: i64) -> Result<ConversationDetail, ApiError> {
    let mut detail = state.queries.conversation(id).await?;
    let conversation = &detail.conversation;
    access::check_read(
        &caller(state, agent),
        conversation.team.as_ref().map(|team| team.key.as_str()),
        conversation.assignee.as_ref().map(|assignee| assignee.id),
    )?;
    // The same rule as the reply's refusal (domain/lifecycle.rs), so a console can say so
    // before the agent writes.
    let capabilities = conversation.channel.capabilities();
    if let Some(window) = capabilities.reply_window {
        let wrote_at = detail.customer_wrote_at();
        detail.reply_window = Some(ReplyWindow {
            open: capabilities.window_open(wrote_at, state.clock.now_ms()),
            closes_at: wrote_at
                .map(|at| Timestamp(at.saturating_add(i64::try_from(window.as_millis()).unwrap_or(i64::MAX)))),
        });
    }
    Ok(detail)
}

/// `404` as for a conversation that does not exist, unless the caller may read it: the
/// check before a change, which reads only whose the conversation is.
async fn check_visible(state: &AppState, agent: &Agent, id: i64) -> Result<(Option<String>, Option<i64>), ApiError> {
    let (team, assignee) = state.queries.conversation_owner(id).await?;
    access::check_read(&caller(state, agent), team.as_deref(), assignee)?;
    Ok((team, assignee))
}

async fn add_message(
    State(state): State<Arc<AppState>>,
    Authenticated(agent): Authenticated,
    PathParam(id): PathParam,
    JsonObject(object): JsonObject,
) -> Result<Response, ApiError> {
    let conversation_id = parse_id(&id, "conversation")?;
    reject_unknown(
        object.keys(),
        &["text", "private", "attachments", "saved_reply"],
        "field",
    )?;
    let owner = check_visible(&state, &agent, conversation_id).await?;
    let saved_reply = match object.get("saved_reply") {
        None | Some(Value::Null) => None,
        Some(Value::Number(number)) => Some(
            number
                .as_i64()
                .filter(|id| *id > 0)
                .ok_or_else(|| ApiError::invalid("saved_reply", "must be a saved reply's id"))?,
        ),
        Some(_) => return Err(ApiError::invalid("saved_reply", "must be a saved reply's id")),
    };
    // With a saved reply, `text` is the agent's edit of it; without, the saved reply is
    // filled for this conversation as it is stored (an empty text here).
    let text = match (object.get("text"), saved_reply) {
        (Some(Value::String(text)), _) if !text.trim().is_empty() => text.trim().to_owned(),
        (Some(Value::String(_)), _) => return Err(ApiError::invalid("text", "must not be empty")),
        (None | Some(Value::Null), Some(_)) => String::new(),
        (Some(_), _) => return Err(ApiError::invalid("text", "must be a string")),
        (None, None) => return Err(ApiError::invalid("text", "is required (or `saved_reply`)")),
    };
    if text.len() > MAX_TEXT {
        return Err(ApiError::invalid("text", format!("must be at most {MAX_TEXT} bytes")));
    }
    let private = match object.get("private") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(private)) => *private,
        Some(_) => return Err(ApiError::invalid("private", "must be true or false")),
    };
    let attachments = match object.get("attachments") {
        None | Some(Value::Null) => Vec::new(),
        Some(value) => parse_attachments(value)?,
    };
    let mentions = if private {
        mentions_in(&state, &agent, &owner, &text).await?
    } else {
        Vec::new()
    };
    let now = state.clock.now_ms();
    let new = NewAgentMessage {
        conversation_id,
        agent_id: agent.id,
        text,
        private,
        attachments,
        saved_reply: None,
        language: None,
        mentions,
        now,
        expires_at: state.expires_at(now),
    };
    let message_id = match saved_reply {
        None => state.service.add_agent_message(new).await?,
        Some(saved_reply) => {
            state
                .service
                .add_saved_reply_message(caller(&state, &agent), saved_reply, new)
                .await?
        }
    };
    // Read before the outbox is woken: the answer shows the reply as it was stored.
    let message = state.queries.message(message_id).await;
    if !private {
        state.outbox_wakeup.notify_one();
        state.tell_subscribers();
    }
    // Notes too: teammates' consoles show them.
    state.stream.wake();
    Ok((StatusCode::CREATED, Json(message?)).into_response())
}

/// The active agents a note's `@name`s mention. Each must be able to read the
/// conversation, else the note is refused naming them: a mention they could not open
/// would tell them nothing, and its excerpt would show them another team's case.
async fn mentions_in(
    state: &AppState,
    author: &Agent,
    (team, assignee): &(Option<String>, Option<i64>),
    text: &str,
) -> Result<Vec<i64>, ApiError> {
    if !text.contains('@') {
        return Ok(Vec::new());
    }
    let agents = state.queries.agents().await?;
    let active: Vec<&Agent> = agents.iter().filter(|agent| agent.active).collect();
    let ids = crate::domain::mentions::mentioned(text, active.iter().map(|agent| (agent.id, agent.name.as_str())));
    for id in ids.iter().filter(|id| **id != author.id) {
        let Some(mentioned) = active.iter().find(|agent| agent.id == *id) else {
            continue;
        };
        if !access::may_read(&caller(state, mentioned), team.as_deref(), *assignee) {
            return Err(ApiError::invalid(
                "text",
                format!(
                    "mentions @{}, who cannot see this conversation (team `{}`); transfer it, or mention \
                     someone of its team",
                    mentioned.name,
                    team.as_deref().unwrap_or("-")
                ),
            ));
        }
    }
    Ok(ids)
}

/// `[{"filename": …, "content_type": …, "data_base64": …}]` (the shape the webhook channel
/// takes), within the limits below.
fn parse_attachments(value: &Value) -> Result<Vec<OutboundAttachment>, ApiError> {
    let Some(items) = value.as_array() else {
        return Err(ApiError::invalid("attachments", "must be an array"));
    };
    if items.len() > MAX_ATTACHMENTS {
        return Err(ApiError::invalid(
            "attachments",
            format!("at most {MAX_ATTACHMENTS} files per message"),
        ));
    }
    let mut attachments = Vec::with_capacity(items.len());
    let mut total = 0;
    for (index, item) in items.iter().enumerate() {
        let at = |key: &str| format!("attachments[{index}].{key}");
        let Some(item) = item.as_object() else {
            return Err(ApiError::invalid(&format!("attachments[{index}]"), "must be an object"));
        };
        if let Some(unknown) = item
            .keys()
            .find(|key| !["filename", "content_type", "data_base64"].contains(&key.as_str()))
        {
            return Err(ApiError::invalid(
                &at(unknown),
                "is not a field; known: filename, content_type, data_base64",
            ));
        }
        let filename = match item.get("filename") {
            Some(Value::String(name))
                if !name.trim().is_empty() && name.len() <= 255 && !name.contains(['/', '\\']) =>
            {
                name.trim().to_owned()
            }
            Some(_) => {
                return Err(ApiError::invalid(
                    &at("filename"),
                    "must be a file name of 1 to 255 bytes without slashes",
                ));
            }
            None => return Err(ApiError::invalid(&at("filename"), "is required")),
        };
        let content_type = match item.get("content_type") {
            None | Some(Value::Null) => "application/octet-stream".to_owned(),
            Some(Value::String(kind)) if is_media_type(kind) => kind.trim().to_ascii_lowercase(),
            Some(_) => {
                return Err(ApiError::invalid(
                    &at("content_type"),
                    "must be a media type such as application/pdf",
                ));
            }
        };
        let data = match item.get("data_base64") {
            Some(Value::String(data)) => BASE64
                .decode(data)
                .map_err(|err| ApiError::invalid(&at("data_base64"), format!("is not standard base64: {err}")))?,
            Some(_) => return Err(ApiError::invalid(&at("data_base64"), "must be a base64 string")),
            None => return Err(ApiError::invalid(&at("data_base64"), "is required")),
        };
        total += data.len();
        if total > MAX_ATTACHMENT_BYTES {
            return Err(ApiError::invalid(
                "attachments",
                format!("the files of one message may total at most {MAX_ATTACHMENT_BYTES} bytes"),
            ));
        }
        attachments.push(OutboundAttachment {
            filename,
            content_type,
            data,
        });
    }
    Ok(attachments)
}

fn is_media_type(text: &str) -> bool {
    let token = |part: &str| {
        !part.is_empty()
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    text.trim()
        .split_once('/')
        .is_some_and(|(kind, subtype)| token(kind) && token(subtype))
}

async fn update_conversation(
    State(state): State<Arc<AppState>>,
    Authenticated(agent): Authenticated,
    PathParam(id): PathParam,
    JsonObject(object): JsonObject,
) -> Result<Response, ApiError> {
    let id = parse_id(&id, "conversation")?;
    reject_unknown(
        object.keys(),
        &["status", "priority", "assignee", "team", "summary", "labels"],
        "field",
    )?;
    // Before the values are judged: another team's conversation answers as one that does
    // not exist, whatever the body.
    check_visible(&state, &agent, id).await?;
    let string_of = |field: &str| -> Result<Option<&str>, ApiError> {
        match object.get(field) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.as_str())),
            Some(_) => Err(ApiError::invalid(field, "must be a string")),
        }
    };
    let mut changes = ConversationChanges {
        status: string_of("status")?
            .map(|s| {
                Status::parse(s)
                    .ok_or_else(|| ApiError::invalid("status", format!("must be one of {}", Status::names())))
            })
            .transpose()?,
        priority: string_of("priority")?
            .map(|p| {
                Priority::parse(p)
                    .ok_or_else(|| ApiError::invalid("priority", format!("must be one of {}", Priority::names())))
            })
            .transpose()?,
        assignee: None,
        team: string_of("team")?.map(str::to_owned),
        summary: string_of("summary")?.map(|summary| summary.trim().to_owned()),
        labels: object.get("labels").map(parse_label_changes).transpose()?,
    };
    if changes.summary.is_some() && changes.team.is_none() {
        return Err(ApiError::invalid(
            "summary",
            "goes with `team`: the summary of a transfer",
        ));
    }
    if changes.summary.as_ref().is_some_and(|summary| summary.len() > MAX_TEXT) {
        return Err(ApiError::invalid(
            "summary",
            format!("must be at most {MAX_TEXT} bytes"),
        ));
    }
    changes.assignee = match object.get("assignee") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(Value::String(name)) if name == "me" => Some(Some(AgentSelector::Id(agent.id))),
        Some(Value::String(name)) => Some(Some(agent_selector(name))),
        Some(Value::Number(number)) => {
            Some(Some(AgentSelector::Id(number.as_i64().ok_or_else(|| {
                ApiError::invalid("assignee", "must be an agent id, name, `me` or null")
            })?)))
        }
        Some(_) => return Err(ApiError::invalid("assignee", "must be an agent id, name, `me` or null")),
    };
    if changes.is_empty() {
        return Err(ApiError::invalid(
            "the body",
            "must change at least one of status, priority, assignee, team, labels",
        ));
    }
    state
        .service
        .update_conversation(id, agent.id, changes, state.clock.now_ms())
        .await?;
    state.changed();
    Ok(Json(state.queries.conversation(id).await?).into_response())
}

/// `{"add": [...], "remove": [...]}`: labels of 1 to 50 characters, no control
/// characters; either list may be left out.
fn parse_label_changes(value: &Value) -> Result<LabelChanges, ApiError> {
    let Some(object) = value.as_object() else {
        return Err(ApiError::invalid(
            "labels",
            "must be {\"add\": [...], \"remove\": [...]}",
        ));
    };
    reject_unknown(object.keys(), &["add", "remove"], "field of `labels`")?;
    let list = |key: &str| -> Result<Vec<String>, ApiError> {
        let field = format!("labels.{key}");
        match object.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| match item.as_str().map(str::trim) {
                    Some(label)
                        if (1..=50).contains(&label.chars().count()) && !label.chars().any(char::is_control) =>
                    {
                        Ok(label.to_owned())
                    }
                    _ => Err(ApiError::invalid(&field, "must hold labels of 1 to 50 characters")),
                })
                .collect(),
            Some(_) => Err(ApiError::invalid(&field, "must be an array of labels")),
        }
    };
    let changes = LabelChanges {
        add: list("add")?,
        remove: list("remove")?,
    };
    if changes.add.is_empty() && changes.remove.is_empty() {
        return Err(ApiError::invalid("labels", "must add or remove at least one label"));
    }
    Ok(changes)
}

async fn attachment(
    State(state): State<Arc<AppState>>,
    Authenticated(agent): Authenticated,
    PathParam(id): PathParam,
) -> Result<Response, ApiError> {
    let id = parse_id(&id, "attachment")?;
    let attachment = state.queries.attachment(id).await?;
    access::check_read(
        &caller(&state, &agent),
        attachment.team.as_deref(),
        attachment.assignee_id,
    )
    .map_err(|_| ApiError::not_found("attachment"))?;
    let content_type = HeaderValue::from_str(&attachment.content_type)
        .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"));
    // Served as a download, never rendered: the bytes come from customers.
    let disposition = content_disposition(&attachment.filename);
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_DISPOSITION, disposition),
            (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
            // An HTML or SVG file opened anyway (a browser told to render it, a link
            // followed) runs with no origin, no scripts and no requests.
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("sandbox; default-src 'none'"),
            ),
        ],
        attachment.data,
    )
        .into_response())
}

/// The longest download name offered, in characters: file systems take 255 bytes, and a
/// name this long already says what the file is.
const MAX_DOWNLOAD_NAME_CHARS: usize = 120;

/// The name a download is offered under: the last part of what the sender called it
/// (never a path: `../../etc/passwd` becomes `passwd`), without control characters or
/// leading dots, cut to [`MAX_DOWNLOAD_NAME_CHARS`] keeping the extension, and
/// `attachment` when nothing is left.
fn download_name(filename: &str) -> String {
    let last = filename.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = last.chars().filter(|c| !c.is_control()).collect();
    let cleaned = cleaned.trim().trim_start_matches('.').trim();
    if cleaned.is_empty() {
        return "attachment".to_owned();
    }
    if cleaned.chars().count() <= MAX_DOWNLOAD_NAME_CHARS {
        return cleaned.to_owned();
    }
    let extension = cleaned
        .rsplit_once('.')
        .map(|(_, extension)| extension)
        .filter(|extension| (1..=10).contains(&extension.chars().count()));
    match extension {
        Some(extension) => {
            let keep = MAX_DOWNLOAD_NAME_CHARS - extension.chars().count() - 1;
            let stem: String = cleaned.chars().take(keep).collect();
            format!("{}.{extension}", stem.trim_end())
        }
        None => cleaned.chars().take(MAX_DOWNLOAD_NAME_CHARS).collect(),
    }
}

/// `attachment` with the name twice (RFC 6266): an ASCII fallback for old clients, and
/// `filename*` with the exact UTF-8 name percent-encoded.
fn content_disposition(filename: &str) -> HeaderValue {
    let filename = download_name(filename);
    let fallback: String = filename
        .chars()
        .map(|c| {
            if (c.is_ascii_graphic() || c == ' ') && c != '"' && c != '\\' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded: String = filename
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    HeaderValue::from_str(&format!(
        "attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn download_names_keep_non_ascii_and_cannot_break_the_header() {
        assert_eq!(
            content_disposition("Rechnung März.pdf"),
            "attachment; filename=\"Rechnung M_rz.pdf\"; filename*=UTF-8''Rechnung%20M%C3%A4rz.pdf"
        );
        assert_eq!(
            content_disposition("a\"b\r\nSet-Cookie: x.txt"),
            "attachment; filename=\"a_bSet-Cookie: x.txt\"; filename*=UTF-8''a%22bSet-Cookie%3A%20x.txt"
        );
    }

    #[test]
    fn download_names_are_never_paths_and_never_long() {
        assert_eq!(download_name("../../etc/passwd"), "passwd");
        assert_eq!(download_name("C:\\Users\\ada\\report.docx"), "report.docx");
        assert_eq!(download_name(".."), "attachment");
        assert_eq!(download_name(".htaccess"), "htaccess");
        assert_eq!(download_name("  \u{7}  "), "attachment");
        let long = format!("{}.pdf", "a".repeat(100_000));
        let name = download_name(&long);
        assert_eq!(name.chars().count(), MAX_DOWNLOAD_NAME_CHARS);
        assert!(name.ends_with("aaa.pdf"), "{name}");
        let header = content_disposition(&long);
        assert!(header.len() < 400, "{} bytes", header.len());
        let thai = "ใบแจ้งหนี้".repeat(40);
        assert_eq!(download_name(&thai).chars().count(), MAX_DOWNLOAD_NAME_CHARS);
    }
}
