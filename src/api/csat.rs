//! The satisfaction page that CSAT emails link to: `GET /csat/{token}?score=N` shows the
//! choice with room for a comment, `POST /csat/{token}` records it.
//!
//! The link itself records nothing: mail scanners (Outlook Safe Links, antivirus
//! gateways) open every link in a message, and would otherwise answer for the customer.
//! The customer confirms with one click, and may add a comment.

use std::sync::Arc;

use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;

use super::{AppState, PathParam};
use crate::domain::DeskError;
use crate::query::CsatPage;
use crate::store::{StoreError, StoreResult};

/// Longest comment kept: a paragraph, not an essay pasted by a bot.
const MAX_COMMENT: usize = 4000;

#[derive(Debug, Deserialize)]
pub struct Chosen {
    score: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Answer {
    score: Option<String>,
    comment: Option<String>,
}

pub async fn show(
    State(state): State<Arc<AppState>>,
    PathParam(token): PathParam,
    Query(chosen): Query<Chosen>,
) -> Response {
    match page(&state, &token).await {
        Ok(page) if !page.open => error_page(Problem::Closed),
        Ok(page) => {
            let preselected = chosen.score.as_deref().and_then(score).or(page.score);
            Html(form_page(&token, &page, preselected, None)).into_response()
        }
        Err(err) => error_page(Problem::of_store(&err)),
    }
}

/// What the page for `token` shows now.
async fn page(state: &AppState, token: &str) -> StoreResult<CsatPage> {
    let window = crate::model::millis(state.settings.desk.updates.settings.csat.answer_window);
    let asked_since = state.clock.now_ms().saturating_sub(window);
    state.queries.csat_page(token, asked_since).await
}

pub async fn answer(
    State(state): State<Arc<AppState>>,
    PathParam(token): PathParam,
    form: Result<Form<Answer>, FormRejection>,
) -> Response {
    let Ok(Form(answer)) = form else {
        return (
            StatusCode::BAD_REQUEST,
            Html(page_html(
                "Sorry",
                "<p>We could not read your answer. Please use the form on the page the link opened.</p>",
            )),
        )
            .into_response();
    };
    let Some(chosen) = answer.score.as_deref().and_then(score) else {
        return match page(&state, &token).await {
            Ok(page) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                Html(form_page(
                    &token,
                    &page,
                    None,
                    Some("Please choose a score from 1 to 5."),
                )),
            )
                .into_response(),
            Err(err) => error_page(Problem::of_store(&err)),
        };
    };
    let comment = answer
        .comment
        .map(|comment| comment.chars().take(MAX_COMMENT).collect::<String>());
    let answered = state
        .service
        .answer_csat(token.clone(), chosen, comment, state.clock.now_ms())
        .await;
    match answered {
        Ok(()) => match page(&state, &token).await {
            Ok(page) => {
                state.tell_subscribers();
                Html(page_html(
                    "Thank you",
                    &format!(
                        "<p>We recorded your rating of {chosen} out of 5 for conversation #{}.</p>",
                        page.conversation_id
                    ),
                ))
                .into_response()
            }
            Err(err) => error_page(Problem::of_store(&err)),
        },
        Err(DeskError::Store(err)) => error_page(Problem::of_store(&err)),
        Err(DeskError::NotFound(_)) => error_page(Problem::Unknown),
        Err(_) => error_page(Problem::Closed),
    }
}

/// Why the page cannot take an answer.
enum Problem {
    /// No question has this token.
    Unknown,
    /// The question was answered too late, or its conversation reopened.
    Closed,
    Unavailable,
}

impl Problem {
    fn of_store(err: &StoreError) -> Problem {
        match err {
            StoreError::NotFound(_) => Problem::Unknown,
            _ => {
                tracing::error!(error = %err, "csat page: storage failure");
                Problem::Unavailable
            }
        }
    }
}

fn score(text: &str) -> Option<u8> {
    text.trim().parse().ok().filter(|score| (1..=5).contains(score))
}

fn form_page(token: &str, page: &CsatPage, preselected: Option<u8>, problem: Option<&str>) -> String {
    let mut body = String::new();
    if let Some(problem) = problem {
        body.push_str(&format!("<p role=\"alert\"><strong>{}</strong></p>", escape(problem)));
    }
    body.push_str(&format!(
        "<p>How satisfied are you with our help on conversation #{}?</p>\
         <form method=\"post\" action=\"/csat/{}\"><p>",
        page.conversation_id,
        escape(token)
    ));
    for value in 1..=5u8 {
        let checked = if preselected == Some(value) { " checked" } else { "" };
        body.push_str(&format!(
            "<label><input type=\"radio\" name=\"score\" value=\"{value}\"{checked}> {value}</label> "
        ));
    }
    body.push_str(&format!(
        "</p><p>1 is poor, 5 is excellent.</p>\
         <p><label>Anything to add? (optional)<br><textarea name=\"comment\" rows=\"4\" cols=\"50\" maxlength=\"{MAX_COMMENT}\">{}</textarea></label></p>\
         <p><button type=\"submit\">Send</button></p></form>",
        escape(page.comment.as_deref().unwrap_or(""))
    ));
    page_html("How did we do?", &body)
}

fn error_page(problem: Problem) -> Response {
    let (status, text) = match problem {
        Problem::Unknown => (
            StatusCode::NOT_FOUND,
            "This link is not valid (any more). If you wanted to rate our help, reply to our message instead.",
        ),
        Problem::Closed => (
            StatusCode::GONE,
            "This question is closed: the time to answer has passed, or the conversation was \
             opened again. Thank you all the same.",
        ),
        Problem::Unavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            "We could not record your answer just now. Please try again in a minute.",
        ),
    };
    (status, Html(page_html("Sorry", &format!("<p>{}</p>", escape(text))))).into_response()
}

fn page_html(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
         <meta name=\"robots\" content=\"noindex\"><title>{title}</title></head>\
         <body style=\"font-family: sans-serif; max-width: 40em; margin: 2em auto\"><h1>{title}</h1>{body}</body></html>",
        title = escape(title)
    )
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
