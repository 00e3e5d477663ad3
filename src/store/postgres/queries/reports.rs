//! The facts reports are made of, read with `store::report_views`' SQL in one
//! `REPEATABLE READ` snapshot.

use sqlx::{PgConnection, PgPool};

use crate::model::clock::ClockKind;
use crate::query::reports::{
    ClockMetFact, EventFact, EventKind, ReportFacts, ReportRequest, ResponseFact, SLOT_MS, TallyFact,
};
use crate::store::StoreResult;
use crate::store::columns::vocabulary;
use crate::store::report_views::{
    CLOCKS_MET, ConversationRow, EDGE_MESSAGES, EVENTS, RESPONSES, TALLIES, Visible, conversations_sql, edge_tally,
    finish, in_range, missing, slots,
};

async fn timeline(conn: &mut PgConnection, from: i64, to: i64) -> StoreResult<ReportFacts> {
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
    let clocks: Vec<(i64, String, i64)> = sqlx::query_as(CLOCKS_MET)
        .bind(from)
        .bind(to)
        .fetch_all(&mut *conn)
        .await?;
    Ok(ReportFacts {
        conversations: Vec::new(),
        events: events
            .into_iter()
            .filter_map(|(conversation_id, at, kind, data)| {
                EventKind::of(&kind, &data).map(|kind| EventFact {
                    conversation_id,
                    at,
                    kind,
                })
            })
            .collect(),
        responses: responses
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
        clocks_met: clocks
            .into_iter()
            .map(|(conversation_id, clock, at)| {
                Ok(ClockMetFact {
                    conversation_id,
                    clock: vocabulary(ClockKind::parse, &clock)?,
                    at,
                })
            })
            .collect::<StoreResult<_>>()?,
    })
}

/// The facts of the request's range, in one snapshot so the reads agree.
pub async fn report_facts(pool: &PgPool, request: &ReportRequest) -> StoreResult<ReportFacts> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    let facts = timeline(&mut tx, request.from, request.to).await?;
    let rows: Vec<ConversationRow> =
        sqlx::query_as(&conversations_sql(request.grouping, in_range(request.from, request.to)))
            .bind(request.from)
            .bind(request.to)
            .fetch_all(&mut *tx)
            .await?;
    let mut rows: Vec<Visible> = rows.into_iter().map(Visible::of).collect();
    let missing = missing(&facts, &rows);
    if !missing.is_empty() {
        let more: Vec<ConversationRow> = sqlx::query_as(&conversations_sql(request.grouping, "c.id = ANY($1)"))
            .bind(&missing)
            .fetch_all(&mut *tx)
            .await?;
        rows.extend(more.into_iter().map(Visible::of));
    }
    tx.commit().await?;
    Ok(finish(facts, rows, &request.visible_to))
}
