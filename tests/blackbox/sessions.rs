//! Sign-in for people through the HTTP API: one-time links, the lockout after failed
//! attempts, password changes and deactivation ending sessions and tokens, and the
//! protections of the sign-in itself.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::Daemon;

const PASSWORD: &str = "a long enough password";

struct Session {
    cookie: String,
    csrf: String,
}

async fn post(daemon: &Daemon, path: &str, body: Value) -> (StatusCode, Value, Option<String>) {
    let response = reqwest::Client::new()
        .post(daemon.url(path))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let cookie = response
        .headers()
        .get("set-cookie")
        .map(|value| value.to_str().unwrap().to_owned());
    (status, response.json().await.unwrap_or(Value::Null), cookie)
}

fn session_from(body: &Value, set_cookie: Option<String>) -> Session {
    let set_cookie = set_cookie.expect("a session sets its cookie");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(attribute), "{attribute} missing from {set_cookie}");
    }
    let cookie = crate::harness::session_cookie(&set_cookie);
    Session {
        cookie,
        csrf: body["csrf_token"].as_str().unwrap().to_owned(),
    }
}

async fn set_up(daemon: &Daemon, link: &str) -> Session {
    let (status, body, cookie) = post(
        daemon,
        "/api/v1/session/setup",
        json!({"token": link, "password": PASSWORD}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    session_from(&body, cookie)
}

async fn sign_in(daemon: &Daemon, name: &str, password: &str) -> (StatusCode, Value, Option<String>) {
    post(daemon, "/api/v1/session", json!({"name": name, "password": password})).await
}

async fn with_session(
    daemon: &Daemon,
    method: reqwest::Method,
    path: &str,
    session: &Session,
    body: Option<Value>,
) -> StatusCode {
    let mut request = reqwest::Client::new()
        .request(method, daemon.url(path))
        .header("cookie", format!("switchboard_session={}", session.cookie))
        .header("x-csrf-token", &session.csrf);
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap().status()
}

#[tokio::test]
async fn a_sign_in_link_works_once_and_sets_a_password_that_signs_in() {
    let daemon = Daemon::start("http://127.0.0.1:9/unused").await;
    let (_, link) = daemon.agent_with_link("ada", "support", "agent");

    // Too short a password is refused, naming the field, and spends nothing.
    let (status, body, _) = post(
        &daemon,
        "/api/v1/session/setup",
        json!({"token": link, "password": "short"}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["error"]["message"].as_str().unwrap().contains("`password`"),
        "{body}"
    );

    let session = set_up(&daemon, &link).await;
    let status = with_session(&daemon, reqwest::Method::GET, "/api/v1/agents/me", &session, None).await;
    assert_eq!(status, StatusCode::OK);
    // The link is spent.
    let (status, body, _) = post(
        &daemon,
        "/api/v1/session/setup",
        json!({"token": link, "password": PASSWORD}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("`token`"), "{body}");

    let (status, body, cookie) = sign_in(&daemon, "ada", PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["agent"]["name"], "ada");
    session_from(&body, cookie);

    // A new link replaces an unused one.
    let first = daemon.cli(&["agent", "link", "ada"]);
    let second = daemon.cli(&["agent", "link", "ada"]);
    let token_of = |output: &std::process::Output| {
        let stderr = String::from_utf8_lossy(&output.stderr).to_string();
        stderr.split_once("/setup#").unwrap().1.trim().to_owned()
    };
    let (first, second) = (token_of(&first), token_of(&second));
    let (status, _, _) = post(
        &daemon,
        "/api/v1/session/setup",
        json!({"token": first, "password": PASSWORD}),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "the replaced link still worked"
    );
    set_up(&daemon, &second).await;
}

#[tokio::test]
async fn failed_sign_ins_lock_the_agent_out_and_read_alike_for_unknown_names() {
    let daemon = Daemon::start("http://127.0.0.1:9/unused").await;
    let (_, link) = daemon.agent_with_link("ada", "support", "agent");
    set_up(&daemon, &link).await;

    let (status, unknown, _) = sign_in(&daemon, "nobody", PASSWORD).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, wrong, _) = sign_in(&daemon, "ada", "not the password").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(unknown, wrong, "an unknown name reads as a wrong password");

    // Five failures in a row (the default) lock: even the right password is refused.
    for _ in 1..4 {
        let (status, _, _) = sign_in(&daemon, "ada", "not the password").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, body, _) = sign_in(&daemon, "ada", "not the password").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"]["code"], "sign_in_locked");
    let response = reqwest::Client::new()
        .post(daemon.url("/api/v1/session"))
        .json(&json!({"name": "ada", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((800..=900).contains(&retry_after), "Retry-After {retry_after}");

    // An admin's new link lets them set a new password, which clears the lock.
    let output = daemon.cli(&["agent", "link", "ada"]);
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    set_up(&daemon, stderr.split_once("/setup#").unwrap().1.trim()).await;
    let (status, _, _) = sign_in(&daemon, "ada", PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_sign_in_from_another_site_or_as_a_form_is_refused() {
    let daemon = Daemon::start("http://127.0.0.1:9/unused").await;
    let (_, link) = daemon.agent_with_link("ada", "support", "agent");
    set_up(&daemon, &link).await;
    let http = reqwest::Client::new();
    let form = http
        .post(daemon.url("/api/v1/session"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("name=ada&password={PASSWORD}"))
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let elsewhere = http
        .post(daemon.url("/api/v1/session"))
        .header("origin", "https://evil.example")
        .json(&json!({"name": "ada", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), StatusCode::FORBIDDEN);
    assert!(elsewhere.headers().get("set-cookie").is_none());
}

#[tokio::test]
async fn a_password_change_ends_every_other_session() {
    let daemon = Daemon::start("http://127.0.0.1:9/unused").await;
    let (token, link) = daemon.agent_with_link("ada", "support", "agent");
    let laptop = set_up(&daemon, &link).await;
    let (_, body, cookie) = sign_in(&daemon, "ada", PASSWORD).await;
    let phone = session_from(&body, cookie);

    let new_password = "another long password";
    let wrong = with_session(
        &daemon,
        reqwest::Method::PUT,
        "/api/v1/agents/me/password",
        &laptop,
        Some(json!({"current_password": "wrong", "password": new_password})),
    )
    .await;
    assert_eq!(wrong, StatusCode::UNPROCESSABLE_ENTITY);
    let response = reqwest::Client::new()
        .put(daemon.url("/api/v1/agents/me/password"))
        .header("cookie", format!("switchboard_session={}", laptop.cookie))
        .header("x-csrf-token", &laptop.csrf)
        .json(&json!({"current_password": PASSWORD, "password": new_password}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let set_cookie = response
        .headers()
        .get("set-cookie")
        .map(|v| v.to_str().unwrap().to_owned());
    let body: Value = response.json().await.unwrap();
    let renewed = session_from(&body, set_cookie);

    for (which, session) in [("laptop", &laptop), ("phone", &phone)] {
        let status = with_session(&daemon, reqwest::Method::GET, "/api/v1/agents/me", session, None).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "the {which}'s old session still works"
        );
    }
    let status = with_session(&daemon, reqwest::Method::GET, "/api/v1/agents/me", &renewed, None).await;
    assert_eq!(status, StatusCode::OK);
    // The API token is the integration's, not a session: it keeps working.
    let (status, _) = daemon.api(reqwest::Method::GET, "/agents/me", &token, None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = sign_in(&daemon, "ada", PASSWORD).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the old password still signs in");
}

#[tokio::test]
async fn deactivating_an_agent_ends_their_sessions_and_refuses_their_token() {
    let daemon = Daemon::start("http://127.0.0.1:9/unused").await;
    let admin = daemon.agent("root", "support", "admin");
    let (token, link) = daemon.agent_with_link("ada", "support", "agent");
    let session = set_up(&daemon, &link).await;

    // Only admins manage agents.
    let (status, _) = daemon
        .api(reqwest::Method::POST, "/agents/root/deactivate", &token, None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = daemon
        .api(reqwest::Method::POST, "/agents/ada/deactivate", &admin, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["active"], false);
    let status = with_session(&daemon, reqwest::Method::GET, "/api/v1/agents/me", &session, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = daemon.api(reqwest::Method::GET, "/agents/me", &token, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = sign_in(&daemon, "ada", PASSWORD).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // No link is issued for a deactivated agent.
    let (status, _) = daemon
        .api(reqwest::Method::POST, "/agents/ada/sign-in-link", &admin, None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT);

    // Reactivated, the token works again and a new link lets them back in.
    let (status, _) = daemon
        .api(reqwest::Method::POST, "/agents/ada/activate", &admin, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = daemon.api(reqwest::Method::GET, "/agents/me", &token, None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = daemon
        .api(reqwest::Method::POST, "/agents/ada/sign-in-link", &admin, None)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let url = body["url"].as_str().unwrap();
    set_up(&daemon, url.split_once("/setup#").unwrap().1).await;
}
