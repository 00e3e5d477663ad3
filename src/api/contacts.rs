//! `/api/v1/contacts`: finding a person, their page (every channel identity and their
//! conversations), an agent's corrections, and two contacts merged into one. Who may see
//! a contact follows their conversations: an agent sees the people of the conversations
//! they may read. The rules are in `domain/contacts`; here, HTTP only.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use serde_json::{Map, Value, json};

use super::v1::{Authenticated, JsonObject, caller, page_limit, parse_id, reject_unknown};
use super::{ApiError, AppState, PathParam};
use crate::domain::access;
use crate::domain::contacts::{ContactPatch, FLAGS};
use crate::domain::events::Actor;
use crate::query::{ContactDetail, ContactPage, ContactSearch};

/// The longest search text, name, email or attribute key.
const MAX_TEXT: usize = 200;
const MAX_FLAGS: usize = 20;
const MAX_FLAG: usize = 40;

/// `GET /api/v1/contacts?q=…&cursor=…&limit=…`
pub async fn list(
    State(state): State<Arc<AppState>>,
    Authenticated(agent): Authenticated,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<ContactPage>, ApiError> {
    reject_unknown(params.keys(), &["q", "cursor", "limit"], "query parameter")?;
    let param = |name: &str| {
        params
            .get(name)
            .map(|value| value.trim())
            .filter(|value| !value.is_empty())
    };
    let text = param("q").map(str::to_lowercase);
    if let Some(text) = &text {
        // The indexes are of three-character pieces; a username's `@` does not count.
        let length = text.trim_start_matches('@').chars().count();
        if length < 3 {
            return Err(ApiError::invalid("q", "needs at least 3 characters"));
        }
        if length > MAX_TEXT {
            return Err(ApiError::invalid("q", format!("is longer than {MAX_TEXT} characters")));
        }
    }
    let after = param("cursor")
        .map(|cursor| {
            cursor
                .parse::<i64>()
                .ok()
                .filter(|id| *id > 0)
                .ok_or_else(|| ApiError::invalid("cursor", "is not a cursor this API returned"))
        })
        .transpose()?;
    let limit = page_limit(param("limit"))?;
    let search = ContactSearch {
        text,
        visible_to: access::visibility(&caller(&state, &agent)),
    };
    Ok(Json(state.queries.contacts(&search, after, limit).await?))
}

/// `GET /api/v1/contacts/{id}`
pub async fn show(
    State(state): State<Arc<AppState>>,
    Authenticated(agent): Authenticated,
    PathParam(id): PathParam,
) -> Result<Json<ContactDetail>, ApiError> {
    let id = parse_id(&id, "contact")?;
    let visible_to = access::visibility(&caller(&state, &agent));
    Ok(Json(state.queries.contact(id, &visible_to).await?))
}

/// `PATCH /api/v1/contacts/{id}` with any of `name`, `email`, `language`, `time_zone`
/// (`null` clears each), `attributes` (an object; a `null` value removes its key) and
/// `flags` (a list that replaces the contact's).
pub async fn update(
    State(state): State<Arc<AppState>>,
    Authenticated(agent): Authenticated,
    PathParam(id): PathParam,
    JsonObject(object): JsonObject,
) -> Result<Json<ContactDetail>, ApiError> {
    let id = parse_id(&id, "contact")?;
    reject_unknown(
        object.keys(),
        &["name", "email", "language", "time_zone", "attributes", "flags"],
        "field",
    )?;
    // Before the values are judged: a contact the caller may not see does not exist.
    let visible_to = access::visibility(&caller(&state, &agent));
    state.queries.contact(id, &visible_to).await?;
    let patch = patch_of(&object)?;
    if patch == ContactPatch::default() {
        return Err(ApiError::invalid(
            "the body",
            "must change at least one of name, email, language, time_zone, attributes, flags",
        ));
    }
    state.service.edit_contact(id, patch, state.clock.now_ms()).await?;
    state.changed();
    Ok(Json(state.queries.contact(id, &visible_to).await?))
}

/// `POST /api/v1/contacts/{id}/merge` with `{"from": other}`: `other` becomes part of
/// this contact. The caller must see both.
pub async fn merge(
    State(state): State<Arc<AppState>>,
    Authenticated(agent): Authenticated,
    PathParam(id): PathParam,
    JsonObject(object): JsonObject,
) -> Result<Json<Value>, ApiError> {
    let into = parse_id(&id, "contact")?;
    reject_unknown(object.keys(), &["from"], "field")?;
    let from = match object.get("from") {
        Some(Value::Number(number)) => number
            .as_i64()
            .filter(|id| *id > 0)
            .ok_or_else(|| ApiError::invalid("from", "must be a contact id"))?,
        Some(_) => return Err(ApiError::invalid("from", "must be a contact id")),
        None => {
            return Err(ApiError::invalid(
                "from",
                "is required: the contact to merge into this one",
            ));
        }
    };
    let visible_to = access::visibility(&caller(&state, &agent));
    state.queries.contact(into, &visible_to).await?;
    state
        .queries
        .contact(from, &visible_to)
        .await
        .map_err(|_| ApiError::invalid("from", format!("is not a contact you can see (#{from})")))?;
    let merged = state
        .service
        .merge_contacts(into, from, Actor::agent(agent.id), state.clock.now_ms())
        .await?;
    state.changed();
    let contact = state.queries.contact(into, &visible_to).await?;
    Ok(Json(json!({
        "merged": {
            "from": merged.merged,
            "identities": merged.identities,
            "conversations": merged.conversations,
        },
        "contact": contact,
    })))
}

/// A string field that may be cleared with `null`, checked by `valid`.
fn nullable(
    object: &Map<String, Value>,
    field: &'static str,
    valid: impl Fn(&str) -> Result<String, String>,
) -> Result<Option<Option<String>>, ApiError> {
    match object.get(field) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(text)) => valid(text.trim())
            .map(|value| Some(Some(value)))
            .map_err(|problem| ApiError::invalid(field, problem)),
        Some(_) => Err(ApiError::invalid(field, "must be a string or null")),
    }
}

fn plain_text(text: &str) -> Result<String, String> {
    if text.is_empty() {
        return Err("must not be empty; use null to clear it".into());
    }
    if text.chars().count() > MAX_TEXT {
        return Err(format!("is longer than {MAX_TEXT} characters"));
    }
    if text.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(text.to_owned())
}

fn patch_of(object: &Map<String, Value>) -> Result<ContactPatch, ApiError> {
    let mut patch = ContactPatch {
        name: nullable(object, "name", plain_text)?,
        email: nullable(object, "email", |text| {
            let email = plain_text(text)?;
            match email.split_once('@') {
                Some((local, domain)) if !local.is_empty() && domain.contains('.') && !email.contains(' ') => Ok(email),
                _ => Err("is not an email address".into()),
            }
        })?,
        language: nullable(object, "language", |text| {
            let tag = text.to_ascii_lowercase().replace('_', "-");
            let valid = (2..=35).contains(&tag.len())
                && tag
                    .split('-')
                    .all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric()))
                && tag.chars().take_while(|c| *c != '-').all(|c| c.is_ascii_alphabetic());
            if valid {
                Ok(tag)
            } else {
                Err(format!("`{text}` is not a language tag such as `en` or `pt-br`"))
            }
        })?,
        time_zone: nullable(object, "time_zone", |text| match jiff::tz::TimeZone::get(text) {
            Ok(_) => Ok(text.to_owned()),
            Err(_) => Err(format!("`{text}` is not a time zone such as `Europe/Rome`")),
        })?,
        ..ContactPatch::default()
    };
    match object.get("attributes") {
        None => {}
        Some(Value::Object(attributes)) => {
            let mut changes = BTreeMap::new();
            for (key, value) in attributes {
                if key.is_empty() || key.chars().count() > MAX_TEXT || key.chars().any(char::is_control) {
                    return Err(ApiError::invalid(
                        "attributes",
                        format!("has a key that is empty, longer than {MAX_TEXT} characters or not plain text"),
                    ));
                }
                if key == FLAGS {
                    return Err(ApiError::invalid("attributes", "sets `flags`; use the `flags` field"));
                }
                changes.insert(key.clone(), (!value.is_null()).then(|| value.clone()));
            }
            patch.attributes = changes;
        }
        Some(_) => return Err(ApiError::invalid("attributes", "must be an object")),
    }
    match object.get("flags") {
        None => {}
        Some(Value::Array(items)) => {
            let mut flags: Vec<String> = Vec::new();
            for item in items {
                let Some(flag) = item.as_str().map(str::trim).filter(|flag| {
                    !flag.is_empty() && flag.chars().count() <= MAX_FLAG && !flag.chars().any(char::is_control)
                }) else {
                    return Err(ApiError::invalid(
                        "flags",
                        format!("must be strings of 1 to {MAX_FLAG} characters, such as \"vip\""),
                    ));
                };
                let flag = flag.to_lowercase();
                if !flags.contains(&flag) {
                    flags.push(flag);
                }
            }
            if flags.len() > MAX_FLAGS {
                return Err(ApiError::invalid("flags", format!("holds more than {MAX_FLAGS}")));
            }
            patch.flags = Some(flags);
        }
        Some(_) => return Err(ApiError::invalid("flags", "must be a list of strings")),
    }
    Ok(patch)
}
