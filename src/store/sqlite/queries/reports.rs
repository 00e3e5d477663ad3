//! The facts reports are made of, read with `store::report_views`' SQL through rusqlite
//! on a blocking thread: a year of a desk is several hundred thousand rows, which sqlx's
//! SQLite driver hands over one by one across threads (about ten times the time rusqlite
//! takes, measured on the scale desk: 400,000 responses in 0.6–1.0 s against 0.1 s).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OpenFlags, Transaction, params};

use super::super::BUSY_TIMEOUT;
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

/// Read-only connections for long reads, kept between them.
pub struct BlockingReaders {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

/// How many idle connections are kept: as many as reports usually run at once.
const KEPT: usize = 4;

impl BlockingReaders {
    pub fn new(path: PathBuf) -> BlockingReaders {
        BlockingReaders {
            path,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Runs `job` on a read-only connection on a blocking thread, off the async workers.
    pub async fn read<T: Send + 'static>(
        self: &Arc<Self>,
        job: impl FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let readers = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let kept = readers.idle.lock().ok().and_then(|mut idle| idle.pop());
            let mut conn = match kept {
                Some(conn) => conn,
                None => {
                    let conn = Connection::open_with_flags(
                        &readers.path,
                        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                    )?;
                    conn.busy_timeout(BUSY_TIMEOUT)?;
                    conn
                }
            };
            let result = job(&mut conn);
            if let Ok(mut idle) = readers.idle.lock()
                && idle.len() < KEPT
            {
                idle.push(conn);
            }
            result
        })
        .await
        .map_err(|err| StoreError::fatal(format!("a report's read stopped: {err}")))?
    }
}

fn timeline(tx: &Transaction<'_>, from: i64, to: i64) -> StoreResult<Timeline> {
    let mut events = Vec::new();
    let mut statement = tx.prepare_cached(EVENTS)?;
    let mut rows = statement.query(params![from, to])?;
    while let Some(row) = rows.next()? {
        let kind: String = row.get(2)?;
        let data: String = row.get(3)?;
        if let Some(kind) = EventKind::of(&kind, &data) {
            events.push(EventFact {
                conversation_id: row.get(0)?,
                at: row.get(1)?,
                kind,
            });
        }
    }
    let mut responses = Vec::new();
    let mut statement = tx.prepare_cached(RESPONSES)?;
    let mut rows = statement.query(params![from, to])?;
    while let Some(row) = rows.next()? {
        let sla: Option<String> = row.get(4)?;
        responses.push(ResponseFact {
            conversation_id: row.get(0)?,
            waited_from: row.get(1)?,
            answered_at: row.get(2)?,
            first: row.get(3)?,
            sla_breached: sla.map(|sla| sla == "breached"),
        });
    }
    let mut tallies = Vec::new();
    let (whole, edges) = slots(from, to);
    if let Some((first, end)) = whole {
        let mut statement = tx.prepare_cached(TALLIES)?;
        let mut rows = statement.query(params![first, end])?;
        while let Some(row) = rows.next()? {
            let slot: i64 = row.get(0)?;
            tallies.push(TallyFact {
                conversation_id: row.get(1)?,
                at: slot * SLOT_MS,
                counts: [row.get(2)?, row.get(3)?, row.get(4)?, row.get(5)?],
            });
        }
    }
    let mut edge = tx.prepare_cached(EDGE_MESSAGES)?;
    for (slot, start, end) in edges {
        let mut rows = edge.query(params![slot, start, end])?;
        while let Some(row) = rows.next()? {
            let direction: String = row.get(1)?;
            let kind: String = row.get(2)?;
            tallies.push(edge_tally(row.get(0)?, &direction, &kind, row.get(3)?, start)?);
        }
    }
    Ok(Timeline::new(events, responses, tallies))
}

fn clocks_met(tx: &Transaction<'_>, from: i64, to: i64) -> StoreResult<Vec<ClockMetFact>> {
    let mut statement = tx.prepare_cached(CLOCKS_MET)?;
    let mut rows = statement.query(params![from, to])?;
    let mut facts = Vec::new();
    while let Some(row) = rows.next()? {
        let clock: String = row.get(1)?;
        facts.push(ClockMetFact {
            conversation_id: row.get(0)?,
            clock: vocabulary(ClockKind::parse, &clock)?,
            at: row.get(2)?,
        });
    }
    Ok(facts)
}

fn names(tx: &Transaction<'_>) -> StoreResult<Names> {
    fn read<T>(
        tx: &Transaction<'_>,
        sql: &str,
        row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> StoreResult<Vec<T>> {
        Ok(tx.prepare_cached(sql)?.query_map([], row)?.collect::<Result<_, _>>()?)
    }
    Ok(Names::new(
        read(tx, TEAM_NAMES, |row| Ok((row.get(0)?, row.get(1)?)))?,
        read(tx, AGENT_NAMES, |row| Ok((row.get(0)?, row.get(1)?)))?,
        read(tx, INBOX_NAMES, |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?,
    ))
}

fn conversations(
    tx: &Transaction<'_>,
    names: &mut Names,
    grouping: Option<Grouping>,
    sql: &str,
    bind: impl rusqlite::Params,
) -> StoreResult<Vec<ReportConversation>> {
    let mut statement = tx.prepare_cached(sql)?;
    let mut rows = statement.query(bind)?;
    let mut read = Vec::new();
    while let Some(row) = rows.next()? {
        // Texts borrowed from the row: most are the same few values, held once by `names`.
        let text = |index: usize| -> StoreResult<Option<&str>> {
            row.get_ref(index)?
                .as_str_or_null()
                .map_err(|err| StoreError::fatal(format!("a conversation's column {index}: {err}")))
        };
        let language = text(4)?;
        let priority = text(5)?;
        read.push(names.conversation(
            grouping,
            (
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
                language,
                priority,
                row.get(6)?,
                row.get(7)?,
                row.get(8)?,
                row.get(9)?,
                row.get(10)?,
                row.get(11)?,
                row.get(12)?,
            ),
        ));
    }
    Ok(read)
}

fn conversations_by_id(
    tx: &Transaction<'_>,
    names: &mut Names,
    grouping: Option<Grouping>,
    ids: &[i64],
) -> StoreResult<Vec<ReportConversation>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<String> = ids.iter().map(i64::to_string).collect();
    conversations(
        tx,
        names,
        grouping,
        &conversations_sql(grouping, "c.id IN (SELECT value FROM json_each($1))"),
        params![format!("[{}]", ids.join(","))],
    )
}

/// The timeline of `[from, to)`.
pub fn report_timeline(conn: &mut Connection, from: i64, to: i64) -> StoreResult<Timeline> {
    let tx = conn.transaction()?;
    let timeline = timeline(&tx, from, to)?;
    tx.finish()?;
    Ok(timeline)
}

/// The request's facts, in one read transaction so the reads agree.
pub fn report_facts(conn: &mut Connection, request: &ReportRequest) -> StoreResult<StoredFacts> {
    let tx = conn.transaction()?;
    let mut parts = Vec::new();
    for (from, to) in &request.timeline {
        parts.push(timeline(&tx, *from, *to)?);
    }
    let timeline = Timeline::join(parts);
    let clocks_met = clocks_met(&tx, request.from, request.to)?;
    let mut names = names(&tx)?;
    let mut rows = conversations(
        &tx,
        &mut names,
        request.grouping,
        &conversations_sql(request.grouping, in_range(request.from, request.to)),
        params![request.from, request.to],
    )?;
    let missing = missing(&timeline, &clocks_met, &rows);
    rows.extend(conversations_by_id(&tx, &mut names, request.grouping, &missing)?);
    tx.finish()?;
    Ok(StoredFacts {
        conversations: rows,
        timeline,
        clocks_met,
    })
}

/// The conversations `ids` names that exist.
pub fn report_conversations(
    conn: &mut Connection,
    grouping: Option<Grouping>,
    ids: &[i64],
) -> StoreResult<Vec<ReportConversation>> {
    let tx = conn.transaction()?;
    let rows = conversations_by_id(&tx, &mut names(&tx)?, grouping, ids)?;
    tx.finish()?;
    Ok(rows)
}
