//! The HTTP interface: `/hooks/{inbox}` for channels, `/api/v1` for agents, and
//! `/healthz` and `/readyz` for whoever runs the daemon. Its `[server]` section is in
//! [`config`].

mod agents;
pub mod config;
mod console;
mod contacts;
mod csat;
mod deliveries;
pub mod door;
mod error;
mod hooks;
mod mentions;
pub mod metrics;
mod privacy;
mod reports;
mod saved_replies;
pub mod serve;
mod sessions;
pub mod stream;
mod subscriptions;
mod v1;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::{FromRequestParts, MatchedPath, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::routing::{MethodRouter, get, post};
use serde_json::json;
use tokio::sync::Notify;

pub use error::ApiError;

use crate::clock::Clock;
use crate::config::Settings;
use crate::domain::ingest::{IngestContext, IngestOutcome};
use crate::domain::service::Service;
use crate::query::Queries;
use crate::store::InboxRef;
use crate::work::scheduler::SchedulerHandle;

/// What every handler shares.
pub struct AppState {
    pub settings: Settings,
    /// The desk's operations: every change goes through here, one unit of work each.
    pub service: Service,
    /// What agents and admins are shown.
    pub queries: Arc<dyn Queries>,
    /// The finished days' report facts, kept between reports.
    pub reports: Arc<crate::query::report_cache::ReportCache>,
    pub clock: Arc<dyn Clock>,
    /// Each configured inbox's connector, by key (as in `/hooks/{key}`) and by id; the
    /// outbox sends through the same ones.
    pub channels: Arc<crate::channels::Channels>,
    /// Poked after a commit that queued outbound messages, so they leave at once.
    pub outbox_wakeup: Arc<Notify>,
    /// The outbox's view of each inbox's destination, for `/metrics`.
    pub destinations: Arc<crate::work::destinations::Destinations>,
    /// Wakes the event dispatcher when a commit may have told subscribers something.
    pub events_wakeup: Arc<Notify>,
    /// Whether any subscription is active: only then is the event dispatcher woken.
    pub subscribed: AtomicBool,
    /// Wakes the SLA scheduler when a commit scheduled something sooner than it planned.
    pub scheduler: Arc<SchedulerHandle>,
    /// Cleared when shutdown begins, so `/readyz` tells load balancers to stop sending.
    pub ready: AtomicBool,
    /// Rate limits and the memory request bodies may hold.
    pub door: door::Door,
    /// The live stream's reader; woken after every commit a console may want to hear of.
    pub stream: Arc<stream::StreamHub>,
    /// Password hashes computed at once: each takes ~20 MiB and a core for tens of
    /// milliseconds, so a burst of sign-ins waits here instead of starving the daemon.
    pub password_hashing: tokio::sync::Semaphore,
    /// Counters since start for `/metrics`: messages received, HTTP responses by route,
    /// ingest time; and the pull readers' state, which the readers write.
    pub metrics: metrics::Metrics,
}

impl AppState {
    /// When a message queued at `now` stops being worth sending.
    pub fn expires_at(&self, now: i64) -> i64 {
        now.saturating_add(self.settings.outbox.expire_after.as_millis() as i64)
    }

    /// Tells the outbox and the SLA scheduler what an ingest into `inbox` committed for
    /// them, and counts the message when it is new.
    pub fn committed(&self, inbox: &InboxRef, outcome: &IngestOutcome) {
        if !outcome.duplicate {
            self.metrics.received(&inbox.key);
        }
        if outcome.queued_outbound {
            self.outbox_wakeup.notify_one();
        }
        if !outcome.duplicate {
            self.tell_subscribers();
            self.stream.wake();
        }
        self.scheduler.scheduled(outcome.next_sla_fire);
    }

    /// Pokes the event dispatcher when there is anyone to tell.
    pub fn tell_subscribers(&self) {
        if self.subscribed.load(Ordering::Relaxed) {
            self.events_wakeup.notify_one();
        }
    }

    /// After an agent's change (status, team, assignee, availability): it may have
    /// queued status updates and moved clocks or follow-ups.
    pub fn changed(&self) {
        self.outbox_wakeup.notify_one();
        self.tell_subscribers();
        self.stream.wake();
        self.scheduler.nudge();
    }

    /// What ingest needs for a message arriving now in `inbox`, every channel alike.
    pub fn ingest_context(&self, inbox: &InboxRef) -> IngestContext {
        let now = self.clock.now_ms();
        IngestContext {
            inbox: inbox.clone(),
            router: Arc::clone(&self.settings.router),
            greeting: false,
            now,
            expires_at: self.expires_at(now),
        }
    }
}

/// A router that keeps the templates of its routes, so that `/metrics` counts each from
/// a table fixed before the first request.
pub struct Routes {
    router: Router<Arc<AppState>>,
    templates: Vec<String>,
}

impl Routes {
    fn new() -> Routes {
        Routes {
            router: Router::new(),
            templates: Vec::new(),
        }
    }

    fn route(mut self, path: &str, method_router: MethodRouter<Arc<AppState>>) -> Routes {
        self.templates.push(path.to_owned());
        self.router = self.router.route(path, method_router);
        self
    }

    fn nest(mut self, prefix: &str, routes: Routes) -> Routes {
        self.templates
            .extend(routes.templates.into_iter().map(|path| format!("{prefix}{path}")));
        self.router = self.router.nest(prefix, routes.router);
        self
    }

    fn merge(mut self, routes: Routes) -> Routes {
        self.templates.extend(routes.templates);
        self.router = self.router.merge(routes.router);
        self
    }

    /// Every route's template, as axum's `MatchedPath` names it.
    pub fn templates(&self) -> impl Iterator<Item = String> + '_ {
        self.templates.iter().cloned()
    }
}

/// The routes of the HTTP interface, before they are given the state.
pub fn routes() -> Routes {
    Routes::new()
        .route("/healthz", get(|| async { axum::Json(json!({"status": "ok"})) }))
        .route("/readyz", get(ready))
        .route("/metrics", get(deliveries::metrics))
        .route("/hooks/{inbox}", post(hooks::receive).get(hooks::receive))
        .route("/csat/{token}", get(csat::show).post(csat::answer))
        .nest("/api/v1", v1::router())
        .merge(console::router())
}

pub fn router(routes: Routes, state: Arc<AppState>) -> Router {
    routes
        .router
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this endpoint does not take that method",
            )
        })
        .layer(axum::middleware::from_fn_with_state(Arc::clone(&state), count_response))
        .with_state(state)
}

/// Counts every answer of the HTTP interface by its route's template and status class,
/// for `/metrics`. The layer wraps each route after matching, so the template is known;
/// the fallback has none.
async fn count_response(
    State(state): State<Arc<AppState>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let route = state
        .metrics
        .route(request.extensions().get::<MatchedPath>().map(MatchedPath::as_str));
    let response = next.run(request).await;
    state.metrics.responded(route, response.status());
    response
}

/// The one path parameter of a route, refused as JSON (axum's own rejection is plain
/// text) when it is not valid UTF-8.
pub struct PathParam(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(PathParam(value)),
            Err(rejection) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_path",
                rejection.body_text(),
            )),
        }
    }
}

async fn ready(State(state): State<Arc<AppState>>) -> Result<axum::Json<serde_json::Value>, ApiError> {
    if !state.ready.load(Ordering::Relaxed) {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "the daemon is shutting down",
        ));
    }
    // The probe is a real write: a full, read-only or locked disk fails it, where a read
    // would still pass and every message would be refused behind a 200 here.
    if let Err(err) = state.service.store().ping().await {
        tracing::warn!(error = %err, "not ready: the store cannot take a write");
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "storage_unavailable",
            format!("the store cannot take a write: {err}"),
        ));
    }
    Ok(axum::Json(json!({"status": "ready"})))
}
