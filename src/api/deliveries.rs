//! Delivery visibility and control: failed deliveries listed and retried through the
//! agent API, the outbox's gauges on `/metrics` for Prometheus.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::v1::{Authenticated, page_limit, parse_id, reject_unknown};
use super::{ApiError, AppState, PathParam};
use crate::model::DeliveryStatus;
use crate::query::{DeliveryPage, DeliveryRecord};

/// `GET /api/v1/deliveries?status=failed&limit=25&cursor=…`, newest first.
pub async fn list(
    State(state): State<Arc<AppState>>,
    _agent: Authenticated,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<DeliveryPage>, ApiError> {
    reject_unknown(params.keys(), &["status", "cursor", "limit"], "query parameter")?;
    let param = |name: &str| {
        params
            .get(name)
            .map(|value| value.trim())
            .filter(|value| !value.is_empty())
    };
    let status = match param("status") {
        None | Some("all") => None,
        Some(name) => Some(DeliveryStatus::parse(name).ok_or_else(|| {
            ApiError::invalid(
                "status",
                format!("is `{name}`; use all or one of {}", DeliveryStatus::names()),
            )
        })?),
    };
    let before = param("cursor")
        .map(|cursor| {
            cursor
                .parse::<i64>()
                .map_err(|_| ApiError::invalid("cursor", "is not a cursor this API returned"))
        })
        .transpose()?;
    let limit = page_limit(param("limit"))?;
    Ok(Json(state.queries.deliveries(status, before, limit).await?))
}

/// `POST /api/v1/deliveries/{id}/retry`: a failed delivery goes again, now.
pub async fn retry(
    State(state): State<Arc<AppState>>,
    Authenticated(agent): Authenticated,
    PathParam(id): PathParam,
) -> Result<Json<DeliveryRecord>, ApiError> {
    let id = parse_id(&id, "delivery")?;
    let now = state.clock.now_ms();
    state
        .service
        .retry_delivery(id, agent.id, now, state.expires_at(now))
        .await?;
    // Read before the outbox is woken, so the answer is what the retry did, not how far
    // the next attempt has got.
    let retried = state.queries.delivery(id).await;
    state.outbox_wakeup.notify_one();
    Ok(Json(retried?))
}

/// `GET /metrics`: the outbox's gauges, then the queue and SLA per team, in the
/// Prometheus text format.
pub async fn metrics(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Some(token) = &state.settings.metrics_token
        && !super::v1::bearer_token(&headers).is_some_and(|given| token.accepts(given))
    {
        let mut response = ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "send the metrics token as `Authorization: Bearer <token>`",
        )
        .into_response();
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return response;
    }
    let queries = &state.queries;
    let read = tokio::try_join!(
        queries.outbox_gauges(),
        queries.team_counts(),
        queries.sla_event_counts(),
        queries.subscription_backlogs(),
    );
    let (gauges, teams, sla_events, backlogs) = match read {
        Ok(read) => read,
        Err(err) => return ApiError::from(err).into_response(),
    };
    let oldest_age = gauges
        .oldest_unsent_at
        .map_or(0.0, |at| (state.clock.now_ms() - at).max(0) as f64 / 1000.0);
    let mut text = String::from(
        "# HELP switchboard_outbox_deliveries Outbound deliveries (replies and status updates) by status.\n\
         # TYPE switchboard_outbox_deliveries gauge\n",
    );
    for (status, count) in [
        ("scheduled", gauges.scheduled),
        ("in_flight", gauges.in_flight),
        ("sent", gauges.sent),
        ("failed", gauges.failed),
        ("skipped", gauges.skipped),
    ] {
        text.push_str(&format!(
            "switchboard_outbox_deliveries{{status=\"{status}\"}} {count}\n"
        ));
    }
    let now = state.clock.now_ms();
    let views = state.destinations.views();
    if !views.is_empty() {
        text.push_str(
            "# HELP switchboard_outbox_destination_paused 1 while an inbox's destination is paused by its circuit breaker.\n\
             # TYPE switchboard_outbox_destination_paused gauge\n",
        );
        let key_of = |id: i64| {
            state
                .channels
                .get(id)
                .map_or_else(|| id.to_string(), |inbox| inbox.reference.key.clone())
        };
        for view in &views {
            let paused = view.paused_until.is_some_and(|until| until > now);
            text.push_str(&format!(
                "switchboard_outbox_destination_paused{{inbox=\"{}\"}} {}\n",
                key_of(view.key),
                u8::from(paused)
            ));
        }
        text.push_str(
            "# HELP switchboard_outbox_destination_failures Consecutive transient failures of an inbox's destination.\n\
             # TYPE switchboard_outbox_destination_failures gauge\n",
        );
        for view in &views {
            text.push_str(&format!(
                "switchboard_outbox_destination_failures{{inbox=\"{}\"}} {}\n",
                key_of(view.key),
                view.consecutive_failures
            ));
        }
    }
    text.push_str(&format!(
        "# HELP switchboard_outbox_oldest_unsent_age_seconds Age of the oldest delivery not yet sent or failed; 0 when none waits.\n\
         # TYPE switchboard_outbox_oldest_unsent_age_seconds gauge\n\
         switchboard_outbox_oldest_unsent_age_seconds {oldest_age:.3}\n"
    ));
    super::metrics::render_teams(&mut text, &teams, now);
    super::metrics::render_sla_events(&mut text, &teams, &sla_events);
    super::metrics::render_subscriptions(&mut text, &backlogs, now);
    state.metrics.render(&mut text);
    text.push_str(&format!(
        "# HELP switchboard_delivery_reports_pruned_total Channel reports (WhatsApp statuses) forgotten since the daemon started because no recorded send carried them for a day: messages another tool sent from the number, or sends erased since.\n\
         # TYPE switchboard_delivery_reports_pruned_total counter\n\
         switchboard_delivery_reports_pruned_total {}\n",
        state.scheduler.reports_pruned.load(std::sync::atomic::Ordering::Relaxed)
    ));
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        text,
    )
        .into_response()
}
