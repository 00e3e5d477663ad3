//! The facts reports are made of, read with `store::report_views`' SQL in one
//! `REPEATABLE READ` snapshot.

use futures_util::StreamExt;
use sqlx::{PgConnection, PgPool};

use crate::store::postgres::binary_copy::{BinaryRows, int8, text};

use crate::model::clock::ClockKind;
use crate::query::reports::{
    ClockMetFact, EventFact, EventKind, Grouping, ReportConversation, ReportRequest, ResponseFact, SLOT_MS,
    StoredFacts, TallyFact, Timeline,
};
use crate::store::columns::vocabulary;
use crate::store::report_views::{
    AGENT_NAMES, CLOCKS_MET, EDGE_MESSAGES, EVENTS, INBOX_NAMES, Names, RESPONSES, TALLIES, TEAM_NAMES,
    conversations_sql, edge_tally, in_range, missing, slots,
};
use crate::store::{StoreError, StoreResult};

async fn timeline(conn: &mut PgConnection, from: i64, to: i64) -> StoreResult<Timeline> {
    let events: Vec<(i64, i64, String, String)> =
        sqlx::query_as(EVENTS).bind(from).bind(to).fetch_all(&mut *conn).await?;
    let responses: Vec<(i64, i64, i64, bool, Option<String>)> = sqlx::query_as(RESPONSES)
        .bind(from)
        .bind(to)
        .fetch_all(&mut *conn)
        .await?;
    let (whole, edges) = slots(from, to);
    let mut tallies = Vec::new();
    if let Some((first, end)) = whole {
        let rows: Vec<(i64, i64, i64, i64, i64, i64)> = sqlx::query_as(TALLIES)
            .bind(first)
            .bind(end)
            .fetch_all(&mut *conn)
            .await?;
        tallies.extend(
            rows.into_iter().map(
                |(slot, conversation_id, inbound, outbound, automated, notes)| TallyFact {
                    conversation_id,
                    at: slot * SLOT_MS,
                    counts: [inbound, outbound, automated, notes],
                },
            ),
        );
    }
    for (slot, start, end) in edges {
        let rows: Vec<(i64, String, String, i64)> = sqlx::query_as(EDGE_MESSAGES)
            .bind(slot)
            .bind(start)
            .bind(end)
            .fetch_all(&mut *conn)
            .await?;
        for (conversation_id, direction, kind, count) in rows {
            tallies.push(edge_tally(conversation_id, &direction, &kind, count, start)?);
        }
    }
    Ok(Timeline::new(
        events
            .into_iter()
            .filter_map(|(conversation_id, at, kind, data)| {
                EventKind::of(&kind, &data).map(|kind| EventFact {
                    conversation_id,
                    at,
                    kind,
                })
            })
            .collect(),
        responses
            .into_iter()
            .map(|(conversation_id, waited_from, answered_at, first, sla)| ResponseFact {
                conversation_id,
                waited_from,
                answered_at,
                first,
                sla_breached: sla.map(|sla| sla == "breached"),
            })
            .collect(),
        tallies,
    ))
}

async fn clocks_met(conn: &mut PgConnection, from: i64, to: i64) -> StoreResult<Vec<ClockMetFact>> {
    let clocks: Vec<(i64, String, i64)> = sqlx::query_as(CLOCKS_MET)
        .bind(from)
        .bind(to)
        .fetch_all(&mut *conn)
        .await?;
    clocks
        .into_iter()
        .map(|(conversation_id, clock, at)| {
            Ok(ClockMetFact {
                conversation_id,
                clock: vocabulary(ClockKind::parse, &clock)?,
                at,
            })
        })
        .collect()
}

async fn names(conn: &mut PgConnection) -> StoreResult<Names> {
    Ok(Names::new(
        sqlx::query_as(TEAM_NAMES).fetch_all(&mut *conn).await?,
        sqlx::query_as(AGENT_NAMES).fetch_all(&mut *conn).await?,
        sqlx::query_as(INBOX_NAMES).fetch_all(&mut *conn).await?,
    ))
}

/// The conversations where `condition` holds, read with a binary COPY
/// ([`BinaryRows`]). COPY takes no parameters: `condition` has its values written in,
/// integers all.
async fn conversations(
    conn: &mut PgConnection,
    names: &mut Names,
    grouping: Option<Grouping>,
    condition: &str,
) -> StoreResult<Vec<ReportConversation>> {
    let statement = format!(
        "COPY ({}) TO STDOUT (FORMAT binary)",
        conversations_sql(grouping, condition)
    );
    let mut data = Vec::new();
    let mut chunks = conn.copy_out_raw(&statement).await?;
    while let Some(chunk) = chunks.next().await {
        data.extend_from_slice(&chunk?);
    }
    drop(chunks);
    let missing = |what: &str| StoreError::fatal(format!("a report's conversation without {what}"));
    let mut read = Vec::new();
    for row in BinaryRows::<13>::new(&data)? {
        let [
            id,
            team_id,
            assignee_id,
            inbox_id,
            language,
            priority,
            created_at,
            first_response_at,
            resolved_at,
            transfer_count,
            csat_score,
            csat_requested_at,
            csat_answered_at,
        ] = row?;
        read.push(names.conversation(
            grouping,
            (
                int8(id)?.ok_or_else(|| missing("an id"))?,
                int8(team_id)?,
                int8(assignee_id)?,
                int8(inbox_id)?.ok_or_else(|| missing("an inbox"))?,
                text(language)?,
                text(priority)?,
                int8(created_at)?.ok_or_else(|| missing("a creation time"))?,
                int8(first_response_at)?,
                int8(resolved_at)?,
                int8(transfer_count)?.unwrap_or_default(),
                int8(csat_score)?,
                int8(csat_requested_at)?,
                int8(csat_answered_at)?,
            ),
        ));
    }
    Ok(read)
}

async fn conversations_by_id(
    conn: &mut PgConnection,
    names: &mut Names,
    grouping: Option<Grouping>,
    ids: &[i64],
) -> StoreResult<Vec<ReportConversation>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<String> = ids.iter().map(i64::to_string).collect();
    let condition = format!("c.id IN ({})", ids.join(","));
    conversations(conn, names, grouping, &condition).await
}

/// A read-only transaction on one snapshot, so its reads agree.
async fn snapshot(pool: &PgPool) -> StoreResult<sqlx::Transaction<'static, sqlx::Postgres>> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

/// The timeline of `[from, to)`.
pub async fn report_timeline(pool: &PgPool, from: i64, to: i64) -> StoreResult<Timeline> {
    let mut tx = snapshot(pool).await?;
    let timeline = timeline(&mut tx, from, to).await?;
    tx.commit().await?;
    Ok(timeline)
}

/// The request's facts, in one snapshot so the reads agree.
pub async fn report_facts(pool: &PgPool, request: &ReportRequest) -> StoreResult<StoredFacts> {
    let mut tx = snapshot(pool).await?;
    let mut parts = Vec::new();
    for (from, to) in &request.timeline {
        parts.push(timeline(&mut tx, *from, *to).await?);
    }
    let timeline = Timeline::join(parts);
    let clocks_met = clocks_met(&mut tx, request.from, request.to).await?;
    let mut names = names(&mut tx).await?;
    let condition = in_range(request.from, request.to)
        .replace("$1", &request.from.to_string())
        .replace("$2", &request.to.to_string());
    let mut rows = conversations(&mut tx, &mut names, request.grouping, &condition).await?;
    let missing = missing(&timeline, &clocks_met, &rows);
    rows.extend(conversations_by_id(&mut tx, &mut names, request.grouping, &missing).await?);
    tx.commit().await?;
    Ok(StoredFacts {
        conversations: rows,
        timeline,
        clocks_met,
    })
}

/// The conversations `ids` names that exist.
pub async fn report_conversations(
    pool: &PgPool,
    grouping: Option<Grouping>,
    ids: &[i64],
) -> StoreResult<Vec<ReportConversation>> {
    let mut tx = snapshot(pool).await?;
    let mut names = names(&mut tx).await?;
    let rows = conversations_by_id(&mut tx, &mut names, grouping, ids).await?;
    tx.commit().await?;
    Ok(rows)
}
