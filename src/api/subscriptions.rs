//! `/api/v1/subscriptions` (admins): integrations told of the desk's events.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use switchboard_connector_webhook::Secret;

use super::v1::{Authenticated, JsonObject, parse_id, reject_unknown};
use super::{ApiError, AppState, PathParam};
use crate::domain::access;
use crate::domain::events::EventType;
use crate::query::Agent;
use crate::store::{NewSubscription, Subscription};
use crate::work::events::new_secret;

fn admin(state: &AppState, agent: &Agent) -> Result<(), ApiError> {
    Ok(access::may_manage_subscriptions(&super::v1::caller(state, agent))?)
}

/// A subscription as listed: its secret is shown once, when created.
fn listed(mut subscription: Subscription) -> Subscription {
    subscription.secret.clear();
    subscription
}

/// `{"url": "https://crm.example.com/hooks", "events": ["conversation.created"],
/// "secret"?: "whsec_…", "description"?: "…"}` → 201 with the secret.
pub async fn create(
    State(state): State<Arc<AppState>>,
    Authenticated(agent): Authenticated,
    JsonObject(object): JsonObject,
) -> Result<Response, ApiError> {
    admin(&state, &agent)?;
    reject_unknown(object.keys(), &["url", "events", "secret", "description"], "field")?;
    let url = match object.get("url") {
        Some(Value::String(url)) => url.trim().to_owned(),
        Some(_) => return Err(ApiError::invalid("url", "must be a string")),
        None => return Err(ApiError::invalid("url", "is required")),
    };
    state
        .settings
        .subscriptions
        .policy
        .check(&url)
        .await
        .map_err(|problem| ApiError::invalid("url", problem))?;
    let names = match object.get("events") {
        Some(Value::Array(names)) if !names.is_empty() => names,
        Some(_) => return Err(ApiError::invalid("events", "must be a non-empty array of event types")),
        None => return Err(ApiError::invalid("events", "is required")),
    };
    let mut events = Vec::new();
    for (index, name) in names.iter().enumerate() {
        let event = name.as_str().and_then(EventType::parse).ok_or_else(|| {
            let known: Vec<&str> = EventType::SUBSCRIBABLE.iter().map(|event| event.as_str()).collect();
            ApiError::invalid(
                &format!("events[{index}]"),
                format!("is not an event type; use {}", known.join(", ")),
            )
        })?;
        if !events.contains(&event.as_str().to_owned()) {
            events.push(event.as_str().to_owned());
        }
    }
    let secret = match object.get("secret") {
        None | Some(Value::Null) => new_secret()
            .map_err(|err| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "no_randomness", err.to_string()))?,
        Some(Value::String(secret)) => {
            Secret::parse(secret).map_err(|problem| ApiError::invalid("secret", problem))?;
            secret.clone()
        }
        Some(_) => return Err(ApiError::invalid("secret", "must be a string")),
    };
    let description = match object.get("description") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(text.trim().to_owned()).filter(|text| !text.is_empty()),
        Some(_) => return Err(ApiError::invalid("description", "must be a string")),
    };
    let subscription = state
        .service
        .create_subscription(
            NewSubscription {
                url,
                events,
                secret,
                description,
                created_by: agent.id,
            },
            state.clock.now_ms(),
        )
        .await?;
    state.subscribed.store(true, Ordering::Relaxed);
    Ok((StatusCode::CREATED, Json(subscription)).into_response())
}

pub async fn list(
    State(state): State<Arc<AppState>>,
    Authenticated(agent): Authenticated,
) -> Result<Json<Value>, ApiError> {
    admin(&state, &agent)?;
    let subscriptions: Vec<Subscription> = state.queries.subscriptions().await?.into_iter().map(listed).collect();
    Ok(Json(json!({ "subscriptions": subscriptions })))
}

/// One subscription with its latest deliveries.
pub async fn get(
    State(state): State<Arc<AppState>>,
    Authenticated(agent): Authenticated,
    PathParam(id): PathParam,
) -> Result<Json<Value>, ApiError> {
    admin(&state, &agent)?;
    let id = parse_id(&id, "subscription")?;
    let subscription = listed(state.queries.subscription(id).await?);
    let deliveries = state.queries.subscription_deliveries(id, 50).await?;
    let mut body = serde_json::to_value(subscription).unwrap_or(Value::Null);
    body["deliveries"] = serde_json::to_value(deliveries).unwrap_or(Value::Null);
    Ok(Json(body))
}

/// `{"active": true}` enables a subscription again (its waiting events resume);
/// `false` disables it.
pub async fn update(
    State(state): State<Arc<AppState>>,
    Authenticated(agent): Authenticated,
    PathParam(id): PathParam,
    JsonObject(object): JsonObject,
) -> Result<Json<Subscription>, ApiError> {
    admin(&state, &agent)?;
    let id = parse_id(&id, "subscription")?;
    reject_unknown(object.keys(), &["active"], "field")?;
    let active = match object.get("active") {
        Some(Value::Bool(active)) => *active,
        Some(_) => return Err(ApiError::invalid("active", "must be true or false")),
        None => return Err(ApiError::invalid("active", "is required")),
    };
    let subscription = state
        .service
        .set_subscription_active(Some(agent.id), id, active, state.clock.now_ms())
        .await?;
    if active {
        state.subscribed.store(true, Ordering::Relaxed);
        state.tell_subscribers();
    }
    Ok(Json(listed(subscription)))
}

pub async fn delete(
    State(state): State<Arc<AppState>>,
    Authenticated(agent): Authenticated,
    PathParam(id): PathParam,
) -> Result<StatusCode, ApiError> {
    admin(&state, &agent)?;
    let id = parse_id(&id, "subscription")?;
    state
        .service
        .delete_subscription(Some(agent.id), id, state.clock.now_ms())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Queues a signed `ping` event (sent even while the subscription is disabled, to check
/// the receiver before enabling it again); the delivery shows in the subscription.
pub async fn ping(
    State(state): State<Arc<AppState>>,
    Authenticated(agent): Authenticated,
    PathParam(id): PathParam,
) -> Result<Response, ApiError> {
    admin(&state, &agent)?;
    let id = parse_id(&id, "subscription")?;
    let delivery = state.service.ping_subscription(id, state.clock.now_ms()).await?;
    state.events_wakeup.notify_one();
    Ok((StatusCode::ACCEPTED, Json(json!({"delivery_id": delivery}))).into_response())
}
