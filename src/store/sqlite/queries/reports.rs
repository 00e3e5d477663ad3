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
    ClockMetFact, EventFact, EventKind, ReportFacts, ReportRequest, ResponseFact, SLOT_MS, TallyFact,
};
use crate::store::columns::vocabulary;
use crate::store::report_views::{
    CLOCKS_MET, EDGE_MESSAGES, EVENTS, RESPONSES, TALLIES, Visible, conversations_sql, edge_tally, finish, in_range,
    missing, slots,
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

fn timeline(tx: &Transaction<'_>, from: i64, to: i64) -> StoreResult<ReportFacts> {
    let mut facts = ReportFacts::default();
    let mut events = tx.prepare_cached(EVENTS)?;
    let mut rows = events.query(params![from, to])?;
    while let Some(row) = rows.next()? {
        let kind: String = row.get(2)?;
        let data: String = row.get(3)?;
        if let Some(kind) = EventKind::of(&kind, &data) {
            facts.events.push(EventFact {
                conversation_id: row.get(0)?,
                at: row.get(1)?,
                kind,
            });
        }
    }
    let mut responses = tx.prepare_cached(RESPONSES)?;
    let mut rows = responses.query(params![from, to])?;
    while let Some(row) = rows.next()? {
        let sla: Option<String> = row.get(4)?;
        facts.responses.push(ResponseFact {
            conversation_id: row.get(0)?,
            waited_from: row.get(1)?,
            answered_at: row.get(2)?,
            first: row.get(3)?,
            sla_breached: sla.map(|sla| sla == "breached"),
        });
    }
    let (whole, edges) = slots(from, to);
    if let Some((first, end)) = whole {
        let mut tallies = tx.prepare_cached(TALLIES)?;
        let mut rows = tallies.query(params![first, end])?;
        while let Some(row) = rows.next()? {
            let slot: i64 = row.get(0)?;
            facts.tallies.push(TallyFact {
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
            facts
                .tallies
                .push(edge_tally(row.get(0)?, &direction, &kind, row.get(3)?, start)?);
        }
    }
    let mut clocks = tx.prepare_cached(CLOCKS_MET)?;
    let mut rows = clocks.query(params![from, to])?;
    while let Some(row) = rows.next()? {
        let clock: String = row.get(1)?;
        facts.clocks_met.push(ClockMetFact {
            conversation_id: row.get(0)?,
            clock: vocabulary(ClockKind::parse, &clock)?,
            at: row.get(2)?,
        });
    }
    Ok(facts)
}

fn conversations(tx: &Transaction<'_>, sql: &str, bind: impl rusqlite::Params) -> StoreResult<Vec<Visible>> {
    let mut statement = tx.prepare_cached(sql)?;
    let rows = statement.query_map(bind, |row| {
        Ok(Visible::of((
            row.get(0)?,
            row.get(1)?,
            row.get(2)?,
            row.get(3)?,
            row.get(4)?,
            row.get(5)?,
            row.get(6)?,
            row.get(7)?,
            row.get(8)?,
            row.get(9)?,
            row.get(10)?,
        )))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The facts of the request's range, in one read transaction so the reads agree.
pub fn report_facts(conn: &mut Connection, request: &ReportRequest) -> StoreResult<ReportFacts> {
    let tx = conn.transaction()?;
    let facts = timeline(&tx, request.from, request.to)?;
    let mut rows = conversations(
        &tx,
        &conversations_sql(request.grouping, in_range(request.from, request.to)),
        params![request.from, request.to],
    )?;
    let missing = missing(&facts, &rows);
    if !missing.is_empty() {
        let ids: Vec<String> = missing.iter().map(i64::to_string).collect();
        let ids = format!("[{}]", ids.join(","));
        rows.extend(conversations(
            &tx,
            &conversations_sql(request.grouping, "c.id IN (SELECT value FROM json_each($1))"),
            params![ids],
        )?);
    }
    tx.finish()?;
    Ok(finish(facts, rows, &request.visible_to))
}
