//! Every HTTP error is JSON: `{"error": {"code": "...", "message": "..."}}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::domain::DeskError;
use crate::store::StoreError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    /// Stable and machine-readable: clients branch on it.
    pub code: &'static str,
    /// For the person reading it: what is wrong and what to change.
    pub message: String,
    /// Seconds after which the same request may succeed (`Retry-After`).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// Tells the sender when to try again: whole seconds, at least 1.
    pub fn retry_after(mut self, after: std::time::Duration) -> ApiError {
        let seconds = after.as_secs() + u64::from(after.subsec_nanos() > 0);
        self.retry_after = Some(seconds.max(1));
        self
    }

    pub fn not_found(what: &str) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("{what} not found"))
    }

    /// A field or parameter the caller must change; the message names it.
    pub fn invalid(field: &str, problem: impl std::fmt::Display) -> ApiError {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            format!("`{field}` {problem}"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code, "message": self.message}});
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> ApiError {
        match err {
            StoreError::NotFound(what) => ApiError::not_found(what),
            StoreError::Invalid { field, problem } => ApiError::invalid(field, problem),
            StoreError::Conflict(cause) => {
                tracing::warn!(%cause, "a write lost to another while serving a request");
                ApiError::new(
                    StatusCode::CONFLICT,
                    "conflict",
                    "another change got there first; nothing was changed, read again and retry",
                )
            }
            StoreError::Transient(cause) => {
                tracing::error!(%cause, "storage unavailable while serving a request");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "storage_unavailable",
                    "storage is unavailable; nothing was changed, try again",
                )
            }
            StoreError::Fatal(cause) => {
                tracing::error!(%cause, "storage failure while serving a request");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "storage_failure",
                    "the store failed; nothing was changed, and retrying will not help until an operator looks",
                )
            }
        }
    }
}

impl From<DeskError> for ApiError {
    fn from(err: DeskError) -> ApiError {
        match err {
            DeskError::NotFound(what) => ApiError::not_found(what),
            DeskError::Invalid { field, problem } => ApiError::invalid(field, problem),
            DeskError::Conflict(message) => ApiError::new(StatusCode::CONFLICT, "conflict", message),
            DeskError::Forbidden(message) => ApiError::new(StatusCode::FORBIDDEN, "forbidden", message),
            DeskError::Store(err) => ApiError::from(err),
        }
    }
}
