//! Reports for supervisors and admins: the desk's figures for a range of time, grouped,
//! as JSON or CSV, and the conversations behind any figure (docs/REPORTS.md).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use super::v1::{Authenticated, caller, page_limit, reject_unknown};
use crate::domain::access;
use crate::model::Timestamp;
use crate::query::Visibility;
use crate::query::reports::{self, Calendars, Figure, Figures, Grouping, Interval, Report, Shape};

/// The longest range one report reads.
const MAX_RANGE_MS: i64 = 366 * 86_400_000;

/// `from`/`to`: an instant (`2026-12-01T08:00:00Z`) or a date (`2026-12-01`, its
/// midnight in `time_zone`, UTC when absent).
fn instant(params: &HashMap<String, String>, name: &str, zone: &jiff::tz::TimeZone) -> Result<i64, ApiError> {
    let Some(text) = params.get(name).map(|text| text.trim()) else {
        return Err(ApiError::invalid(name, "is required: an instant or a date"));
    };
    if let Ok(at) = text.parse::<jiff::Timestamp>() {
        return Ok(at.as_millisecond());
    }
    text.parse::<jiff::civil::Date>()
        .ok()
        .and_then(|date| {
            zone.to_ambiguous_timestamp(date.to_datetime(jiff::civil::Time::midnight()))
                .compatible()
                .ok()
        })
        .map(|at| at.as_millisecond())
        .ok_or_else(|| {
            ApiError::invalid(
                name,
                format!("`{text}` is not an instant such as 2026-12-01T08:00:00Z or a date such as 2026-12-01"),
            )
        })
}

struct Range {
    from: i64,
    to: i64,
    time_zone: String,
    zone: jiff::tz::TimeZone,
    grouping: Option<Grouping>,
}

fn range(params: &HashMap<String, String>) -> Result<Range, ApiError> {
    let time_zone = params.get("time_zone").cloned().unwrap_or_else(|| "UTC".into());
    let zone = jiff::tz::TimeZone::get(&time_zone).map_err(|_| {
        ApiError::invalid(
            "time_zone",
            format!("`{time_zone}` is not a time zone such as Europe/Berlin"),
        )
    })?;
    let from = instant(params, "from", &zone)?;
    let to = instant(params, "to", &zone)?;
    if to <= from {
        return Err(ApiError::invalid("to", "must be after `from`"));
    }
    if to - from > MAX_RANGE_MS {
        return Err(ApiError::invalid("to", "must be at most 366 days after `from`"));
    }
    let grouping = params
        .get("by")
        .map(|by| {
            Grouping::parse(by)
                .ok_or_else(|| ApiError::invalid("by", format!("`{by}` is not one of {}", Grouping::NAMES)))
        })
        .transpose()?;
    Ok(Range {
        from,
        to,
        time_zone,
        zone,
        grouping,
    })
}

async fn facts(state: &AppState, agent: &crate::query::Agent, range: &Range) -> Result<reports::ReportFacts, ApiError> {
    let caller = caller(state, agent);
    access::may_supervise(&caller)?;
    Ok(state
        .reports
        .facts(
            state.queries.as_ref(),
            range.from,
            range.to,
            range.grouping,
            &access::visibility(&caller),
            state.clock.now_ms(),
        )
        .await?)
}

/// The business hours of every team not open around the clock.
fn calendars(state: &AppState) -> Calendars {
    state
        .service
        .desk()
        .teams
        .iter()
        .filter(|(_, team)| !team.hours.is_always())
        .map(|(key, team)| (key.clone(), Arc::clone(&team.hours)))
        .collect()
}

/// Each team's queue now, of the teams the caller sees (a supervisor their own).
async fn queue_now(state: &AppState, agent: &crate::query::Agent) -> Result<Vec<Value>, ApiError> {
    let visible = access::visibility(&caller(state, agent));
    let now = state.clock.now_ms();
    Ok(state
        .queries
        .team_counts()
        .await?
        .into_iter()
        .filter(|team| match &visible {
            Visibility::All => true,
            Visibility::Teams { teams, .. } => teams.contains(&team.key),
        })
        .map(|team| {
            json!({
                "team": team.key,
                "waiting": team.waiting,
                "oldest_waiting_since": team.oldest_waiting_since,
                "oldest_waiting_ms": team.oldest_waiting_since.map(|since| (now - since.0).max(0)),
                "at_risk": team.at_risk,
                "breached": team.breached,
            })
        })
        .collect())
}

/// `GET /api/v1/reports/overview?from=&to=&time_zone=&by=&interval=&format=json|csv`.
pub async fn overview(
    State(state): State<Arc<AppState>>,
    Authenticated(agent): Authenticated,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    reject_unknown(
        params.keys(),
        &["from", "to", "time_zone", "by", "interval", "format"],
        "query parameter",
    )?;
    let csv = match params.get("format").map(String::as_str) {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => return Err(ApiError::invalid("format", format!("`{other}` is not json or csv"))),
    };
    let range = range(&params)?;
    let buckets = params
        .get("interval")
        .map(|name| {
            let interval = Interval::parse(name)
                .ok_or_else(|| ApiError::invalid("interval", format!("`{name}` is not one of {}", Interval::NAMES)))?;
            reports::buckets(range.from, range.to, &range.zone, interval).ok_or_else(|| {
                ApiError::invalid(
                    "interval",
                    format!(
                        "`{name}` cuts the range into more than {} buckets: shorten the range or take a longer interval",
                        reports::MAX_BUCKETS
                    ),
                )
            })
        })
        .transpose()?;
    let facts = facts(&state, &agent, &range).await?;
    let calendars = calendars(&state);
    let report = reports::report(
        &facts,
        &Shape {
            from: range.from,
            to: range.to,
            grouped: range.grouping.is_some(),
            buckets: buckets.as_deref(),
            calendars: &calendars,
        },
    );
    if csv {
        let mut response = as_csv(&report, range.from, range.to).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/csv; charset=utf-8"),
        );
        response.headers_mut().insert(
            header::CONTENT_DISPOSITION,
            HeaderValue::from_static("attachment; filename=\"report.csv\""),
        );
        return Ok(response);
    }
    let queue = queue_now(&state, &agent).await?;
    let mut body = json!({
        "from": Timestamp(range.from),
        "to": Timestamp(range.to),
        "time_zone": range.time_zone,
        "by": params.get("by"),
        "interval": params.get("interval"),
        "queue": queue,
    });
    if let (Value::Object(body), Ok(Value::Object(report))) = (&mut body, serde_json::to_value(&report)) {
        body.extend(report);
    }
    Ok(Json(body).into_response())
}

/// A figure's JSON as CSV cells: nested names joined by `_` (`first_response_median_ms`,
/// `sla_first_response_share_met`), shares with four decimals, `null` empty.
fn flatten(prefix: &str, value: &Value, cells: &mut Vec<(String, String)>) {
    let name = |key: &str| {
        if prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{prefix}_{key}")
        }
    };
    match value {
        Value::Object(fields) => {
            for (key, field) in fields {
                flatten(&name(key), field, cells);
            }
        }
        Value::Null => cells.push((prefix.to_owned(), String::new())),
        Value::Number(number) if number.is_f64() => {
            cells.push((prefix.to_owned(), format!("{:.4}", number.as_f64().unwrap_or_default())));
        }
        other => cells.push((prefix.to_owned(), other.to_string())),
    }
}

/// The report as CSV: a row for the total, one per group, and one per bucket of each
/// when the report has a series; `group` is empty for the total's rows, `from` and `to`
/// bound each row.
fn as_csv(report: &Report, from: i64, to: i64) -> String {
    let mut rows: Vec<(&str, Option<&str>, i64, i64, &Figures)> = vec![("total", None, from, to, &report.total)];
    for bucket in report.series.iter().flatten() {
        rows.push(("total", None, bucket.from.0, bucket.to.0, &bucket.figures));
    }
    for group in &report.groups {
        let key = Some(group.key.as_deref().unwrap_or(""));
        rows.push(("group", key, from, to, &group.figures));
        for bucket in group.series.iter().flatten() {
            rows.push(("group", key, bucket.from.0, bucket.to.0, &bucket.figures));
        }
    }
    let mut out = String::new();
    for (index, (row, group, from, to, figures)) in rows.into_iter().enumerate() {
        let mut cells = Vec::new();
        flatten("", &serde_json::to_value(figures).unwrap_or_default(), &mut cells);
        if index == 0 {
            let names: Vec<&str> = cells.iter().map(|(name, _)| name.as_str()).collect();
            let _ = write!(out, "row,group,from,to,{}\r\n", names.join(","));
        }
        let values: Vec<String> = cells.into_iter().map(|(_, value)| value).collect();
        let stamp = |at: i64| {
            serde_json::to_value(Timestamp(at))
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        };
        let _ = write!(
            out,
            "{row},{},{},{},{}\r\n",
            csv_field(group.unwrap_or("")),
            stamp(from),
            stamp(to),
            values.join(",")
        );
    }
    out
}

/// RFC 4180: a field with a comma, quote or line break is quoted, quotes doubled; one
/// starting with `=`, `+`, `-` or `@` is prefixed with `'` so a spreadsheet does not run
/// it as a formula (an agent's or a team's name is someone's text).
fn csv_field(text: &str) -> String {
    let guarded = if text.starts_with(['=', '+', '-', '@']) {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    if guarded.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", guarded.replace('"', "\"\""))
    } else {
        guarded
    }
}

/// `GET /api/v1/reports/conversations?figure=&from=&to=&time_zone=&by=&group=&after=&limit=`:
/// the conversations behind a figure (of one group with `by` and `group`; `group` empty
/// for the group without a value), ascending, paged by `after` (the last id seen).
pub async fn conversations(
    State(state): State<Arc<AppState>>,
    Authenticated(agent): Authenticated,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    reject_unknown(
        params.keys(),
        &["figure", "from", "to", "time_zone", "by", "group", "after", "limit"],
        "query parameter",
    )?;
    let figure = match params.get("figure") {
        Some(name) => Figure::parse(name)
            .ok_or_else(|| ApiError::invalid("figure", format!("`{name}` is not one of {}", Figure::NAMES)))?,
        None => {
            return Err(ApiError::invalid(
                "figure",
                format!("is required: one of {}", Figure::NAMES),
            ));
        }
    };
    let range = range(&params)?;
    let group = match (params.get("group"), range.grouping) {
        (Some(_), None) => return Err(ApiError::invalid("group", "needs `by`")),
        (Some(group), Some(_)) => Some(Some(group.as_str()).filter(|group| !group.is_empty())),
        (None, _) => None,
    };
    let after = super::v1::id_param(&params, "after")?.unwrap_or(0);
    let limit = page_limit(params.get("limit").map(String::as_str))? as usize;
    let facts = facts(&state, &agent, &range).await?;
    let ids = reports::drill_down(&facts, range.from, range.to, figure, group);
    let total = ids.len();
    let page: Vec<i64> = ids.into_iter().filter(|id| *id > after).take(limit + 1).collect();
    let more = page.len() > limit;
    let page: Vec<i64> = page.into_iter().take(limit).collect();
    let next = more.then(|| page.last().copied()).flatten();
    Ok(Json(
        json!({"count": total, "conversation_ids": page, "next_after": next}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_never_formulas() {
        assert_eq!(csv_field("billing"), "billing");
        assert_eq!(csv_field("Smith, Ada"), "\"Smith, Ada\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=HYPERLINK(1)"), "'=HYPERLINK(1)");
    }
}
