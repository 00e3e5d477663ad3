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
use crate::query::reports::{self, Figure, Figures, Grouping, ReportRequest};

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
        grouping,
    })
}

async fn facts(state: &AppState, agent: &crate::query::Agent, range: &Range) -> Result<reports::ReportFacts, ApiError> {
    let caller = caller(state, agent);
    access::may_supervise(&caller)?;
    let request = ReportRequest {
        from: range.from,
        to: range.to,
        grouping: range.grouping,
        visible_to: access::visibility(&caller),
    };
    Ok(state.queries.report_facts(&request).await?)
}

/// `GET /api/v1/reports/overview?from=&to=&time_zone=&by=&format=json|csv`.
pub async fn overview(
    State(state): State<Arc<AppState>>,
    Authenticated(agent): Authenticated,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    reject_unknown(
        params.keys(),
        &["from", "to", "time_zone", "by", "format"],
        "query parameter",
    )?;
    let csv = match params.get("format").map(String::as_str) {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => return Err(ApiError::invalid("format", format!("`{other}` is not json or csv"))),
    };
    let range = range(&params)?;
    let facts = facts(&state, &agent, &range).await?;
    let (total, groups) = reports::report(&facts, range.from, range.to, range.grouping.is_some());
    if csv {
        let mut rows = vec![("total".to_owned(), &total)];
        rows.extend(
            groups
                .iter()
                .map(|group| (group.key.clone().unwrap_or_default(), &group.figures)),
        );
        let mut response = as_csv(&rows).into_response();
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
    let by = params.get("by").cloned();
    Ok(Json(json!({
        "from": Timestamp(range.from),
        "to": Timestamp(range.to),
        "time_zone": range.time_zone,
        "by": by,
        "total": total,
        "groups": groups,
    }))
    .into_response())
}

/// The figures as CSV: one row for the total, one per group; a column per number.
fn as_csv(rows: &[(String, &Figures)]) -> String {
    let columns = [
        "opened",
        "resolved",
        "reopened",
        "messages_in",
        "messages_out",
        "automated_updates",
        "notes",
        "first_response_count",
        "first_response_median_ms",
        "first_response_p90_ms",
        "first_response_average_ms",
        "resolution_count",
        "resolution_median_ms",
        "resolution_p90_ms",
        "resolution_average_ms",
        "escalations",
        "escalated",
        "transfers",
        "transferred",
        "resolved_without_transfer",
        "sla_warnings",
        "sla_breaches",
        "breached",
        "csat_asked",
        "csat_answers",
        "csat_response_rate",
        "csat_average",
    ];
    let mut out = format!("group,{}\r\n", columns.join(","));
    let opt = |value: Option<i64>| value.map(|value| value.to_string()).unwrap_or_default();
    let share = |value: Option<f64>| value.map(|value| format!("{value:.4}")).unwrap_or_default();
    for (label, figures) in rows {
        let cells = [
            figures.opened.to_string(),
            figures.resolved.to_string(),
            figures.reopened.to_string(),
            figures.messages_in.to_string(),
            figures.messages_out.to_string(),
            figures.automated_updates.to_string(),
            figures.notes.to_string(),
            figures.first_response.count.to_string(),
            opt(figures.first_response.median_ms),
            opt(figures.first_response.p90_ms),
            opt(figures.first_response.average_ms),
            figures.resolution.count.to_string(),
            opt(figures.resolution.median_ms),
            opt(figures.resolution.p90_ms),
            opt(figures.resolution.average_ms),
            figures.escalations.to_string(),
            figures.escalated.to_string(),
            figures.transfers.to_string(),
            figures.transferred.to_string(),
            share(figures.resolved_without_transfer),
            figures.sla_warnings.to_string(),
            figures.sla_breaches.to_string(),
            figures.breached.to_string(),
            figures.csat.asked.to_string(),
            figures.csat.answers.to_string(),
            share(figures.csat.response_rate),
            share(figures.csat.average),
        ];
        let _ = write!(out, "{},{}\r\n", csv_field(label), cells.join(","));
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
