//! Sign-in for people: a password set through a one-time link, a session cookie
//! (`HttpOnly`, `SameSite=Strict`, `Secure` behind TLS) and the CSRF token every
//! state-changing request of that session repeats. API tokens stay for integrations;
//! both reach the same handlers through [`super::v1::Authenticated`].

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use super::AppState;
use super::error::ApiError;
use super::v1::{Authenticated, JsonObject, json_object, reject_unknown};
use crate::auth::{hash_password, hash_token, random_secret, verify_password};
use crate::domain::people::Refusal;
use crate::domain::service::NewSessionSecrets;
use crate::query::SessionView;

/// The session cookie's name.
pub const COOKIE: &str = "switchboard_session";
/// The header a session's state-changing requests carry their CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
const MIN_PASSWORD_CHARS: usize = 10;
/// Longer passwords only cost hashing time.
const MAX_PASSWORD_BYTES: usize = 1024;

/// A password checked against this when the name is unknown, so that an unknown name
/// takes as long to refuse as a wrong password.
const DECOY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c3dpdGNoYm9hcmRkZWNveQ$0E1qIs4X0fVj0sQ9vKZz3Hj0rBLqRlZ8aHdcpOt2p6E";

/// The session cookie's value, when the request has one.
pub fn session_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
}

/// The session a cookie stands for, checked for a request of `parts`: a state-changing
/// method must carry the session's CSRF token and, when the browser says where it comes
/// from, come from this origin.
pub async fn session_of(state: &AppState, parts: &Parts, token: &str) -> Result<SessionView, ApiError> {
    let session = state
        .queries
        .session(&hash_token(token), state.clock.now_ms())
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "the session has ended; sign in again",
            )
        })?;
    if !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS) {
        same_origin(&parts.headers)?;
        let sent = parts
            .headers
            .get(CSRF_HEADER)
            .map(HeaderValue::as_bytes)
            .unwrap_or_default();
        if !bool::from(sent.ct_eq(session.csrf_token.as_bytes())) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "csrf_failed",
                format!("a request of a console session must repeat its CSRF token in `{CSRF_HEADER}`"),
            ));
        }
    }
    Ok(session)
}

/// Refuses a request a browser marked as coming from another site.
fn same_origin(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|value| value.to_str().ok()) else {
        return Ok(());
    };
    let host = headers.get(header::HOST).and_then(|value| value.to_str().ok());
    let origin_host = origin.split_once("://").map(|(_, rest)| rest);
    if host.is_some() && origin_host == host {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        "cross_origin",
        format!("a request from `{origin}` may not act on this desk"),
    ))
}

/// `Set-Cookie` for a new session, or for clearing it (`None`).
fn session_cookie(state: &AppState, headers: &HeaderMap, value: Option<(&str, i64)>) -> HeaderValue {
    let behind_tls = state.settings.console.secure_cookies
        || headers
            .get("x-forwarded-proto")
            .is_some_and(|proto| proto.as_bytes().eq_ignore_ascii_case(b"https"));
    let secure = if behind_tls { "; Secure" } else { "" };
    let cookie = match value {
        Some((token, lifetime_ms)) => format!(
            "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
            lifetime_ms / 1000
        ),
        None => format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}"),
    };
    HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static("switchboard_session=; Max-Age=0"))
}

fn new_secrets() -> Result<(String, NewSessionSecrets), ApiError> {
    let failed = |err: getrandom::Error| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("no randomness for a session: {err}"),
        )
    };
    let token = random_secret().map_err(failed)?;
    let csrf_token = random_secret().map_err(failed)?;
    Ok((
        token.clone(),
        NewSessionSecrets {
            token_hash: hash_token(&token),
            csrf_token,
        },
    ))
}

/// The answer to a request that began a session: the cookie, and what the console needs.
async fn began(
    state: &AppState,
    headers: &HeaderMap,
    agent_id: i64,
    token: &str,
    csrf_token: &str,
    expires_at: i64,
) -> Result<Response, ApiError> {
    let agent = state.queries.agent(agent_id).await?;
    let lifetime = expires_at - state.clock.now_ms();
    let mut response = Json(json!({
        "agent": agent,
        "csrf_token": csrf_token,
        "expires_at": crate::model::Timestamp(expires_at),
    }))
    .into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        session_cookie(state, headers, Some((token, lifetime))),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

fn string_field<'a>(object: &'a serde_json::Map<String, Value>, field: &str) -> Result<&'a str, ApiError> {
    match object.get(field) {
        Some(Value::String(text)) if !text.is_empty() => Ok(text),
        Some(Value::String(_)) | None => Err(ApiError::invalid(field, "is required")),
        Some(_) => Err(ApiError::invalid(field, "must be a string")),
    }
}

fn check_new_password(password: &str, name: &str) -> Result<(), ApiError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(ApiError::invalid(
            "password",
            format!("must be at least {MIN_PASSWORD_CHARS} characters"),
        ));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(ApiError::invalid(
            "password",
            format!("must be at most {MAX_PASSWORD_BYTES} bytes"),
        ));
    }
    if password.eq_ignore_ascii_case(name) {
        return Err(ApiError::invalid("password", "must not be the agent's name"));
    }
    Ok(())
}

/// Hashing is slow on purpose: it runs on the blocking pool, a few at a time, so that
/// sign-ins cannot take the workers from everything else.
async fn on_hashing_pool<T: Send + 'static>(
    state: &AppState,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    let _permit = state.password_hashing.acquire().await.map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "the daemon is shutting down",
        )
    })?;
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", format!("hashing: {err}")))
}

fn locked(until: i64, now: i64) -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "sign_in_locked",
        "too many failed sign-ins; wait, or ask an admin for a sign-in link",
    )
    .retry_after(std::time::Duration::from_millis((until - now).max(1000) as u64))
}

fn wrong() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "sign_in_failed",
        "the name or the password is wrong",
    )
}

/// The body of a request that may begin a session: JSON (see [`require_json`]), one
/// object, only the known fields.
fn json_body(headers: &HeaderMap, body: &[u8], known: &[&str]) -> Result<serde_json::Map<String, Value>, ApiError> {
    require_json(headers)?;
    let object = json_object(body)?;
    reject_unknown(object.keys(), known, "field")?;
    Ok(object)
}

fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    // A form another site posts cannot send this type without asking first (CORS), and
    // nothing here answers that question: no sign-in from elsewhere (login CSRF).
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.trim_start().to_ascii_lowercase().starts_with("application/json"));
    if json {
        return same_origin(headers);
    }
    Err(ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "json_required",
        "send `Content-Type: application/json`",
    ))
}

/// `POST /api/v1/session` `{"name", "password"}`: signs in.
pub async fn sign_in(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let object = json_body(&headers, &body, &["name", "password"])?;
    let name = string_field(&object, "name")?.trim().to_owned();
    let password = string_field(&object, "password")?.to_owned();
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(wrong());
    }
    let now = state.clock.now_ms();
    let policy = state.settings.console.policy;
    let candidate = state.service.sign_in_candidate(name, now).await?;
    let (agent_id, stored) = match candidate {
        Err(Refusal::LockedUntil(until)) => return Err(locked(until, now)),
        Err(Refusal::Wrong) => (None, None),
        Ok(credentials) => (Some(credentials.agent_id), credentials.password_hash),
    };
    let verified = on_hashing_pool(&state, move || {
        let stored = stored.as_deref();
        verify_password(&password, stored.unwrap_or(DECOY_HASH)) && stored.is_some()
    })
    .await?;
    let Some(agent_id) = agent_id else {
        return Err(wrong());
    };
    let (token, secrets) = new_secrets()?;
    let csrf_token = secrets.csrf_token.clone();
    let now = state.clock.now_ms();
    match state
        .service
        .finish_sign_in(policy, agent_id, verified, secrets, now)
        .await?
    {
        Ok(expires_at) => {
            tracing::info!(agent_id, "signed in");
            began(&state, &headers, agent_id, &token, &csrf_token, expires_at).await
        }
        Err(Refusal::LockedUntil(until)) => {
            tracing::warn!(agent_id, "sign-ins locked after repeated failures");
            Err(locked(until, now))
        }
        Err(Refusal::Wrong) => Err(wrong()),
    }
}

/// `GET /api/v1/session`: who is signed in, and the session's CSRF token.
pub async fn current(State(state): State<Arc<AppState>>, parts: Parts) -> Result<Response, ApiError> {
    let token = session_token(&parts.headers)
        .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "not signed in"))?;
    let session = session_of(&state, &parts, token).await?;
    let mut response = Json(json!({
        "agent": session.agent,
        "csrf_token": session.csrf_token,
        "expires_at": crate::model::Timestamp(session.expires_at),
    }))
    .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// `DELETE /api/v1/session`: signs out; the cookie stops working at once.
pub async fn sign_out(State(state): State<Arc<AppState>>, parts: Parts) -> Result<Response, ApiError> {
    let token = session_token(&parts.headers)
        .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "not signed in"))?;
    session_of(&state, &parts, token).await?;
    state.service.end_session(hash_token(token)).await?;
    state.stream.agents_changed();
    let mut response = StatusCode::NO_CONTENT.into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, session_cookie(&state, &parts.headers, None));
    Ok(response)
}

/// `POST /api/v1/session/setup` `{"token", "password"}`: sets the password through a
/// one-time link and signs in.
pub async fn set_up(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let object = json_body(&headers, &body, &["token", "password"])?;
    let link_hash = hash_token(string_field(&object, "token")?);
    let password = string_field(&object, "password")?.to_owned();
    let now = state.clock.now_ms();
    // The link is checked before any hashing, so a guessed token costs nothing.
    let agent_id = state.service.sign_in_link_holder(link_hash.clone(), now).await?;
    let agent = state.queries.agent(agent_id).await?;
    check_new_password(&password, &agent.name)?;
    let password_hash = on_hashing_pool(&state, move || hash_password(&password))
        .await?
        .map_err(|err| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", err))?;
    let (token, secrets) = new_secrets()?;
    let csrf_token = secrets.csrf_token.clone();
    let (agent_id, expires_at) = state
        .service
        .set_password_with_link(state.settings.console.policy, link_hash, password_hash, secrets, now)
        .await?;
    tracing::info!(agent_id, "password set through a sign-in link");
    began(&state, &headers, agent_id, &token, &csrf_token, expires_at).await
}

/// `PUT /api/v1/agents/me/password` `{"current_password", "password"}`: every other
/// session of the agent ends.
pub async fn change_password(
    State(state): State<Arc<AppState>>,
    Authenticated(agent): Authenticated,
    headers: HeaderMap,
    JsonObject(object): JsonObject,
) -> Result<Response, ApiError> {
    reject_unknown(object.keys(), &["current_password", "password"], "field")?;
    let current = string_field(&object, "current_password")?.to_owned();
    let password = string_field(&object, "password")?.to_owned();
    check_new_password(&password, &agent.name)?;
    let now = state.clock.now_ms();
    let credentials = state
        .service
        .sign_in_candidate(agent.name.clone(), now)
        .await?
        .map_err(|refusal| match refusal {
            Refusal::LockedUntil(until) => locked(until, now),
            Refusal::Wrong => wrong(),
        })?;
    let stored = credentials.password_hash;
    // The new hash only when the current password is right: a wrong guess costs one hash.
    let password_hash = on_hashing_pool(&state, move || {
        let verified = stored.is_some_and(|stored| verify_password(&current, &stored));
        verified.then(|| hash_password(&password))
    })
    .await?
    .ok_or_else(|| ApiError::invalid("current_password", "is wrong"))?
    .map_err(|err| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", err))?;
    let (token, secrets) = new_secrets()?;
    let csrf_token = secrets.csrf_token.clone();
    let expires_at = state
        .service
        .replace_password(state.settings.console.policy, agent.id, password_hash, secrets, now)
        .await?;
    state.stream.agents_changed();
    tracing::info!(agent_id = agent.id, "password changed; other sessions ended");
    began(&state, &headers, agent.id, &token, &csrf_token, expires_at).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; switchboard_session=abc ; b=2"),
        );
        assert_eq!(session_token(&headers), Some("abc"));
        headers.insert(header::COOKIE, HeaderValue::from_static("switchboard_session="));
        assert_eq!(session_token(&headers), None);
    }

    #[test]
    fn a_request_from_another_origin_is_refused() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert!(
            same_origin(&headers).is_ok(),
            "no Origin: not a browser's cross-site request"
        );
        headers.insert(header::ORIGIN, HeaderValue::from_static("http://127.0.0.1:8080"));
        assert!(same_origin(&headers).is_ok());
        headers.insert(header::ORIGIN, HeaderValue::from_static("https://evil.example"));
        assert_eq!(same_origin(&headers).unwrap_err().code, "cross_origin");
    }

    #[test]
    fn the_decoy_hash_is_a_valid_argon2id_hash() {
        assert!(argon2::password_hash::PasswordHash::new(DECOY_HASH).is_ok());
        assert!(!verify_password("", DECOY_HASH));
    }
}
