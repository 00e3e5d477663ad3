//! `switchboard migrate`: a desk on SQLite copied whole into an empty PostgreSQL
//! database, so that a desk that started on the embedded default can move to several
//! daemons on one server without losing a conversation, a delivery or an agent's token.
//!
//! The order of work makes every refusal change nothing: the URLs, the source file and
//! the claim on it (no daemon serves it while it is copied), then the target's emptiness,
//! and only then the schema of each side brought to this build's latest (the daemon's own
//! `SqliteStore::open` and `PgStore::open`).
//!
//! The copy is one PostgreSQL transaction: every desk table locked, checked empty again,
//! its foreign keys and secondary indexes taken off ([`Deferred`]), filled table by table
//! in foreign-key order with `COPY … FROM STDIN` (text format), ids kept, each table's
//! rows counted against the rows read; then the indexes built and the foreign keys added
//! back, checked against what was copied. Only then are the identity
//! sequences moved past the copied ids and the transaction committed: a failure anywhere
//! leaves the target as it was (the sequences aside: see [`continue_ids`]). `ANALYZE`
//! follows, so the planner knows the tables' sizes from the first query on.
//!
//! SQLite is read by a blocking thread through rusqlite, in one read transaction (one
//! snapshot of the whole desk) and primary-key order, encoded into chunks the async side
//! sends on while the next chunk is read: the two run on two cores at once.
//!
//! The tables and their columns are read from the source's schema, not listed here, so
//! a table a later migration adds is copied without a change here; a table or column
//! PostgreSQL's schema lacks is refused by name rather than dropped.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

use rusqlite::types::ValueRef;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};
use tokio::sync::mpsc;

use super::StoreError;
use super::config::{Backend, StorageConfig};
use super::postgres::PgStore;
use super::sqlite::{SqliteStore, claim_for_serving};

/// How much encoded COPY data one chunk holds: large enough that a chunk's round through
/// the channel and the socket is a small part of its cost, small enough that the reader
/// running ahead holds a few MiB.
const CHUNK_BYTES: usize = 1 << 20;
/// Chunks the reader may run ahead of the sender.
const CHUNKS_AHEAD: usize = 4;
/// How long taking the target's tables may wait for a transaction holding them (a daemon
/// started on the target meanwhile) before the migration gives up naming that.
const LOCK_PATIENCE: &str = "5s";
/// The migrations' bookkeeping, which each side keeps for itself.
const MIGRATIONS_TABLE: &str = "_sqlx_migrations";

/// One table copied.
#[derive(Debug, Clone)]
pub struct Copied {
    pub table: String,
    /// Rows read from SQLite.
    pub read: u64,
    /// Rows in the PostgreSQL table after the copy (counted, not taken from COPY's answer).
    pub stored: u64,
    pub elapsed: Duration,
}

/// A migration committed.
#[derive(Debug, Clone)]
pub struct Migrated {
    /// In the order they were copied (foreign-key order).
    pub tables: Vec<Copied>,
    /// Building the secondary indexes and checking the foreign keys after the copy.
    pub checked: Duration,
    /// From the first check to the commit.
    pub elapsed: Duration,
    /// How long `ANALYZE` took after the commit, or why it failed (the desk is migrated
    /// either way; the operator runs it again).
    pub analyzed: Result<Duration, String>,
}

impl Migrated {
    pub fn rows(&self) -> u64 {
        self.tables.iter().map(|table| table.read).sum()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// The source cannot be migrated (not SQLite, missing, served by a daemon).
    #[error("--from: {0}")]
    Source(String),
    /// The target cannot be migrated into (not PostgreSQL, unreachable, in use).
    #[error("--to: {0}")]
    Target(String),
    #[error(
        "--to: the database already holds desk data (rows in {}); migrate only into an empty database, \
         nothing was changed",
        tables.join(", ")
    )]
    TargetNotEmpty { tables: Vec<String> },
    /// The two schemas disagree where data would be lost: a build whose migrations differ.
    #[error("the SQLite and PostgreSQL schemas differ: {0}; nothing was copied")]
    Schema(String),
    /// A value PostgreSQL cannot hold, with where it is and how to change it.
    #[error("{table} {key}: `{column}` {problem}; nothing was copied")]
    Value {
        table: String,
        key: String,
        column: String,
        problem: String,
    },
    #[error(
        "{table}: {read} rows read from SQLite but {stored} in PostgreSQL after the copy; \
         nothing was committed"
    )]
    Count { table: String, read: u64, stored: u64 },
    #[error("copying {table}: {source}; nothing was committed")]
    Copy { table: String, source: StoreError },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Copies the SQLite desk at `from` (`sqlite://PATH`) into the empty PostgreSQL database
/// at `to`; `on_table` hears of each table as it is copied, before the commit.
pub async fn migrate(from: &str, to: &str, mut on_table: impl FnMut(&Copied)) -> Result<Migrated, MigrateError> {
    let started = Instant::now();
    let source = source_path(from)?;
    let target = target_options(to)?;
    // Held until the copy is over: a daemon starting on the file meanwhile is refused.
    let _claim = claim_for_serving(from).map_err(|err| match err {
        StoreError::Invalid { .. } => MigrateError::Source(format!(
            "{} is being served by a running switchboard daemon: stop it (SIGTERM) and run migrate again",
            source.display()
        )),
        other => MigrateError::Store(other),
    })?;
    let mut conn = PgConnection::connect_with(&target)
        .await
        .map_err(|err| MigrateError::Target(format!("cannot connect: {err}")))?;
    let filled = tables_with_rows(&mut conn).await?;
    if !filled.is_empty() {
        return Err(MigrateError::TargetNotEmpty { tables: filled });
    }

    // The daemon's own opening: each side migrated to this build's latest schema.
    drop(SqliteStore::open(from).await.map_err(|err| {
        MigrateError::Source(format!(
            "cannot open {} as a switchboard database: {err}",
            source.display()
        ))
    })?);
    let settings = StorageConfig {
        url: to.to_owned(),
        ..StorageConfig::default()
    }
    .validate()
    .map_err(|err| MigrateError::Target(err.to_string()))?;
    drop(PgStore::open(&settings).await.map_err(|err| match err {
        StoreError::Invalid { problem, .. } => MigrateError::Target(problem),
        other => MigrateError::Store(other),
    })?);

    let (reader, source_tables) = tokio::task::spawn_blocking(move || Reader::open(&source))
        .await
        .map_err(|err| StoreError::fatal(format!("reading the SQLite schema panicked: {err}")))??;
    let target_columns = target_schema(&mut conn).await?;
    let plan = plan(source_tables, &target_columns)?;

    let mut tx = conn.begin().await.map_err(StoreError::from)?;
    take_tables(&mut tx, &plan).await?;
    let deferred = Deferred::take_off(&mut tx, &plan).await?;
    let (sender, mut chunks) = mpsc::channel(CHUNKS_AHEAD);
    let reading = {
        let plan = plan.clone();
        tokio::task::spawn_blocking(move || reader.read(&plan, &sender))
    };
    let mut copied = Vec::with_capacity(plan.len());
    for table in &plan {
        let done = copy_table(&mut tx, table, &mut chunks).await;
        let done = match done {
            Ok(done) => done,
            // The reader's own error explains a closed channel better than the channel.
            Err(error) => {
                drop(chunks);
                return Err(match reading.await {
                    Ok(Err(reader_error)) => reader_error,
                    _ => error,
                });
            }
        };
        on_table(&done);
        if done.read != done.stored {
            return Err(MigrateError::Count {
                table: done.table,
                read: done.read,
                stored: done.stored,
            });
        }
        copied.push(done);
    }
    reading
        .await
        .map_err(|err| StoreError::fatal(format!("reading SQLite panicked: {err}")))??;
    let checking = Instant::now();
    deferred.put_back(&mut tx).await?;
    let checked = checking.elapsed();
    continue_ids(&mut tx, &plan).await?;
    tx.commit().await.map_err(StoreError::from)?;
    let elapsed = started.elapsed();
    // Statistics for the planner now, as after a restore: autovacuum would gather them
    // only a while later, and the first agents' queries would be planned without them.
    let analyzing = Instant::now();
    let analyzed = sqlx::query("ANALYZE")
        .execute(&mut conn)
        .await
        .map(|_| analyzing.elapsed())
        .map_err(|err| err.to_string());
    Ok(Migrated {
        tables: copied,
        checked,
        elapsed,
        analyzed,
    })
}

/// The file a `sqlite://PATH` URL names, which must exist: opening would create it.
fn source_path(url: &str) -> Result<PathBuf, MigrateError> {
    if Backend::of(url) != Some(Backend::Sqlite) {
        // The URL is not repeated: it may be a PostgreSQL URL with its password.
        return Err(MigrateError::Source(
            "not a SQLite URL: give the desk's database as sqlite://PATH (its storage.url)".into(),
        ));
    }
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)
        .map_err(|err| MigrateError::Source(format!("not a SQLite URL ({err})")))?;
    let path = options.get_filename().to_owned();
    if path.as_os_str().is_empty() || path.as_os_str() == ":memory:" || !path.is_file() {
        return Err(MigrateError::Source(format!(
            "no SQLite database at {}: give the path the daemon's storage.url names",
            path.display()
        )));
    }
    Ok(path)
}

fn target_options(url: &str) -> Result<PgConnectOptions, MigrateError> {
    if Backend::of(url) != Some(Backend::Postgres) {
        return Err(MigrateError::Target(
            "not a PostgreSQL URL: give an empty database as postgres://USER:PASSWORD@HOST:PORT/DATABASE".into(),
        ));
    }
    Ok(PgConnectOptions::from_str(url)
        .map_err(|err| MigrateError::Target(format!("not a PostgreSQL URL ({err})")))?
        .application_name("switchboard migrate"))
}

/// The tables of the target's schema that hold a row, the migrations' bookkeeping aside.
async fn tables_with_rows(conn: &mut PgConnection) -> Result<Vec<String>, MigrateError> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables
         WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' AND table_name <> $1
         ORDER BY table_name",
    )
    .bind(MIGRATIONS_TABLE)
    .fetch_all(&mut *conn)
    .await
    .map_err(StoreError::from)?;
    let mut filled = Vec::new();
    for table in tables {
        let any: bool = sqlx::query_scalar(&format!("SELECT EXISTS (SELECT 1 FROM {})", quoted(&table)))
            .fetch_one(&mut *conn)
            .await
            .map_err(StoreError::from)?;
        if any {
            filled.push(table);
        }
    }
    Ok(filled)
}

/// How a column's values are written for PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Integer,
    /// SQLite's 0 and 1.
    Boolean,
    Text,
    Bytes,
}

impl Kind {
    fn of(data_type: &str) -> Option<Kind> {
        match data_type {
            "bigint" | "integer" | "smallint" => Some(Kind::Integer),
            "boolean" => Some(Kind::Boolean),
            "text" | "character varying" | "character" => Some(Kind::Text),
            "bytea" => Some(Kind::Bytes),
            _ => None,
        }
    }
}

/// A PostgreSQL column: its type and whether it draws from a sequence.
struct TargetColumn {
    data_type: String,
    identity: bool,
}

async fn target_schema(
    conn: &mut PgConnection,
) -> Result<HashMap<String, HashMap<String, TargetColumn>>, MigrateError> {
    let rows: Vec<(String, String, String, bool)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text, data_type::text,
                is_identity = 'YES' OR COALESCE(column_default LIKE 'nextval(%', FALSE)
         FROM information_schema.columns WHERE table_schema = current_schema()",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(StoreError::from)?;
    let mut tables: HashMap<String, HashMap<String, TargetColumn>> = HashMap::new();
    for (table, column, data_type, identity) in rows {
        tables
            .entry(table)
            .or_default()
            .insert(column, TargetColumn { data_type, identity });
    }
    Ok(tables)
}

/// A table as SQLite has it.
#[derive(Debug, Clone)]
struct SourceTable {
    name: String,
    columns: Vec<String>,
    /// The primary key's columns in key order; empty for a table keyed by rowid alone.
    key: Vec<usize>,
    /// The tables its foreign keys refer to.
    refers_to: Vec<String>,
}

/// A table to copy: its columns with how each is written, in the SELECT's and the COPY's order.
#[derive(Debug, Clone)]
struct TablePlan {
    name: String,
    columns: Vec<(String, Kind)>,
    key: Vec<usize>,
    /// Columns whose sequence must continue after the copied ids.
    identities: Vec<String>,
}

/// The source's tables in an order where each comes after those it refers to, each
/// matched with the target's columns.
fn plan(
    source: Vec<SourceTable>,
    target: &HashMap<String, HashMap<String, TargetColumn>>,
) -> Result<Vec<TablePlan>, MigrateError> {
    let mut plans = Vec::with_capacity(source.len());
    for table in foreign_key_order(source)? {
        let Some(columns) = target.get(&table.name) else {
            return Err(MigrateError::Schema(format!(
                "PostgreSQL has no table `{}`",
                table.name
            )));
        };
        let mut planned = Vec::with_capacity(table.columns.len());
        for column in &table.columns {
            let Some(target_column) = columns.get(column) else {
                return Err(MigrateError::Schema(format!(
                    "PostgreSQL's `{}` has no column `{column}`",
                    table.name
                )));
            };
            let kind = Kind::of(&target_column.data_type).ok_or_else(|| {
                MigrateError::Schema(format!(
                    "`{}.{column}` is {} on PostgreSQL, which migrate does not write",
                    table.name, target_column.data_type
                ))
            })?;
            planned.push((column.clone(), kind));
        }
        let identities = table
            .columns
            .iter()
            .filter(|column| columns.get(*column).is_some_and(|column| column.identity))
            .cloned()
            .collect();
        plans.push(TablePlan {
            name: table.name,
            columns: planned,
            key: table.key,
            identities,
        });
    }
    Ok(plans)
}

/// Tables ordered so that each follows the tables it refers to, otherwise in the order
/// SQLite created them (which reads like the schema).
fn foreign_key_order(mut remaining: Vec<SourceTable>) -> Result<Vec<SourceTable>, MigrateError> {
    let mut placed: HashSet<String> = HashSet::new();
    let mut ordered = Vec::with_capacity(remaining.len());
    while !remaining.is_empty() {
        let ready = remaining.iter().position(|table| {
            table
                .refers_to
                .iter()
                .all(|other| *other == table.name || placed.contains(other))
        });
        let Some(ready) = ready else {
            let names: Vec<&str> = remaining.iter().map(|table| table.name.as_str()).collect();
            return Err(MigrateError::Schema(format!(
                "the foreign keys of {} refer to tables SQLite does not have, or to each other in a circle",
                names.join(", ")
            )));
        };
        let table = remaining.remove(ready);
        placed.insert(table.name.clone());
        ordered.push(table);
    }
    Ok(ordered)
}

/// Locks every table copied into until the commit (a daemon started on the target
/// meanwhile waits), then checks them empty again under the lock: the check before the
/// source was opened may be stale. The lock is the one `ALTER TABLE` takes, so that
/// [`Deferred`] never waits for a lock of its own.
async fn take_tables(tx: &mut PgConnection, plan: &[TablePlan]) -> Result<(), MigrateError> {
    let names: Vec<String> = plan.iter().map(|table| quoted(&table.name)).collect();
    let statements = [
        format!("SET LOCAL lock_timeout = '{LOCK_PATIENCE}'"),
        // A large desk's COPY may take longer than a server's default for statements.
        "SET LOCAL statement_timeout = 0".to_owned(),
    ];
    for statement in statements {
        sqlx::query(&statement)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from)?;
    }
    let locked = sqlx::query(&format!("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE", names.join(", ")))
        .execute(&mut *tx)
        .await;
    if let Err(err) = locked {
        let busy = err
            .as_database_error()
            .and_then(|err| err.code())
            .is_some_and(|code| code == "55P03");
        return Err(if busy {
            MigrateError::Target(format!(
                "its tables are in use by another connection (a daemon?) for more than {LOCK_PATIENCE}; \
                 stop what uses the database and run migrate again"
            ))
        } else {
            MigrateError::Store(err.into())
        });
    }
    let filled = tables_with_rows(tx).await?;
    if !filled.is_empty() {
        return Err(MigrateError::TargetNotEmpty { tables: filled });
    }
    Ok(())
}

/// The foreign keys and secondary indexes of the tables copied into, taken off for the
/// copy and put back after it, as `pg_restore` does: each foreign key is then checked by
/// one join and each index built by one sort, instead of a lookup and an index insertion
/// per row (a 200,000-message desk: 2.2 s instead of 7.6 s). The definitions are
/// PostgreSQL's own (`pg_get_constraintdef`, `pg_get_indexdef`: what `pg_dump` writes),
/// names kept, all inside the copy's transaction: a failure or a violated key leaves the
/// schema as it was. Primary keys and unique constraints stay: foreign keys need them.
struct Deferred {
    /// `(table, constraint, definition)`.
    foreign_keys: Vec<(String, String, String)>,
    /// `(index, CREATE INDEX statement)`.
    indexes: Vec<(String, String)>,
}

impl Deferred {
    async fn take_off(tx: &mut PgConnection, plan: &[TablePlan]) -> Result<Deferred, MigrateError> {
        let tables: Vec<String> = plan.iter().map(|table| table.name.clone()).collect();
        let foreign_keys: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT t.relname::text, c.conname::text, pg_get_constraintdef(c.oid)
             FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid
             WHERE c.contype = 'f' AND t.relnamespace = current_schema()::regnamespace AND t.relname = ANY($1)
             ORDER BY t.relname, c.conname",
        )
        .bind(&tables)
        .fetch_all(&mut *tx)
        .await
        .map_err(StoreError::from)?;
        // Not the indexes behind a constraint (primary keys, unique constraints).
        let indexes: Vec<(String, String)> = sqlx::query_as(
            "SELECT x.relname::text, pg_get_indexdef(i.indexrelid)
             FROM pg_index i JOIN pg_class x ON x.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid
             WHERE t.relnamespace = current_schema()::regnamespace AND t.relname = ANY($1)
               AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
             ORDER BY x.relname",
        )
        .bind(&tables)
        .fetch_all(&mut *tx)
        .await
        .map_err(StoreError::from)?;
        for (table, constraint, _) in &foreign_keys {
            let statement = format!("ALTER TABLE {} DROP CONSTRAINT {}", quoted(table), quoted(constraint));
            sqlx::query(&statement)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from)?;
        }
        for (index, _) in &indexes {
            sqlx::query(&format!("DROP INDEX {}", quoted(index)))
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from)?;
        }
        Ok(Deferred { foreign_keys, indexes })
    }

    /// Builds the indexes and adds the foreign keys back, each checked against the rows
    /// copied (a unique index or a key the data breaks fails the migration, naming it).
    async fn put_back(self, tx: &mut PgConnection) -> Result<(), MigrateError> {
        for (index, statement) in self.indexes {
            sqlx::query(&statement)
                .execute(&mut *tx)
                .await
                .map_err(|err| MigrateError::Copy {
                    table: format!("the index {index}"),
                    source: err.into(),
                })?;
        }
        for (table, constraint, definition) in self.foreign_keys {
            let statement = format!(
                "ALTER TABLE {} ADD CONSTRAINT {} {definition}",
                quoted(&table),
                quoted(&constraint)
            );
            sqlx::query(&statement)
                .execute(&mut *tx)
                .await
                .map_err(|err| MigrateError::Copy {
                    table: format!("{table} (its foreign key {constraint})"),
                    source: err.into(),
                })?;
        }
        Ok(())
    }
}

/// What the reader hands the sender.
enum Piece {
    /// Rows encoded for COPY's text format, whole lines.
    Rows(Vec<u8>),
    /// The table is read: this many rows.
    End(u64),
}

type Chunks = mpsc::Receiver<Result<Piece, MigrateError>>;

/// One table through COPY; its rows then counted in the same transaction.
async fn copy_table(tx: &mut PgConnection, table: &TablePlan, chunks: &mut Chunks) -> Result<Copied, MigrateError> {
    let started = Instant::now();
    let failed = |source: sqlx::Error| MigrateError::Copy {
        table: table.name.clone(),
        source: source.into(),
    };
    let columns: Vec<String> = table.columns.iter().map(|(name, _)| quoted(name)).collect();
    let statement = format!("COPY {} ({}) FROM STDIN", quoted(&table.name), columns.join(", "));
    let mut copy = tx.copy_in_raw(&statement).await.map_err(failed)?;
    let read = loop {
        match chunks.recv().await {
            Some(Ok(Piece::Rows(bytes))) => {
                copy.send(bytes).await.map_err(failed)?;
            }
            Some(Ok(Piece::End(rows))) => break rows,
            Some(Err(error)) => {
                // The transaction is rolled back anyway; the abort only ends the COPY cleanly.
                let _ = copy.abort("switchboard migrate stopped").await;
                return Err(error);
            }
            None => {
                let _ = copy.abort("switchboard migrate stopped").await;
                return Err(MigrateError::Store(StoreError::fatal(format!(
                    "reading {} from SQLite stopped",
                    table.name
                ))));
            }
        }
    };
    copy.finish().await.map_err(failed)?;
    let stored: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {}", quoted(&table.name)))
        .fetch_one(&mut *tx)
        .await
        .map_err(failed)?;
    Ok(Copied {
        table: table.name.clone(),
        read,
        stored: u64::try_from(stored).unwrap_or_default(),
        elapsed: started.elapsed(),
    })
}

/// Moves every identity sequence past the largest copied id, so the next conversation,
/// message or agent gets a new id. Last before the commit because `setval` is not undone
/// by a rollback: a failure after it would leave an empty target whose ids start later,
/// which is harmless.
async fn continue_ids(tx: &mut PgConnection, plan: &[TablePlan]) -> Result<(), MigrateError> {
    for table in plan {
        for column in &table.identities {
            sqlx::query(&format!(
                "SELECT setval(pg_get_serial_sequence($1, $2), MAX({column})) FROM {table} HAVING MAX({column}) IS NOT NULL",
                column = quoted(column),
                table = quoted(&table.name),
            ))
            .bind(&table.name)
            .bind(column)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from)?;
        }
    }
    Ok(())
}

/// A name in double quotes. The names come from the databases' own schemas; quoting
/// keeps a column named like a keyword (`key`, `text`) a column.
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The source, read on a blocking thread inside one read transaction.
struct Reader {
    conn: rusqlite::Connection,
}

impl Reader {
    /// Opens the file read-only, starts the snapshot and reads its tables' shapes.
    fn open(path: &Path) -> Result<(Reader, Vec<SourceTable>), MigrateError> {
        let conn = rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|err| MigrateError::Source(format!("cannot open {}: {err}", path.display())))?;
        let sqlite = |err: rusqlite::Error| MigrateError::Source(format!("reading {}: {err}", path.display()));
        // A deferred transaction: its snapshot is taken by the first read, just below,
        // and every table is then read as of that moment.
        conn.execute_batch("BEGIN").map_err(sqlite)?;
        let names: Vec<String> = conn
            .prepare(
                // Ordinary tables only: the search index (a virtual table and its shadow
                // tables) is derived data, which PostgreSQL keeps in its own indexes.
                "SELECT name FROM sqlite_master
                 WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name <> ?1
                   AND name IN (SELECT name FROM pragma_table_list WHERE schema = 'main' AND type = 'table')
                 ORDER BY rowid",
            )
            .and_then(|mut statement| {
                statement
                    .query_map([MIGRATIONS_TABLE], |row| row.get(0))?
                    .collect::<Result<_, _>>()
            })
            .map_err(sqlite)?;
        let mut tables = Vec::with_capacity(names.len());
        for name in names {
            let mut keyed: Vec<(i64, usize)> = Vec::new();
            let mut columns = Vec::new();
            let mut statement = conn
                .prepare("SELECT name, pk FROM pragma_table_info(?1) ORDER BY cid")
                .map_err(sqlite)?;
            let mut rows = statement.query([&name]).map_err(sqlite)?;
            while let Some(row) = rows.next().map_err(sqlite)? {
                let pk: i64 = row.get(1).map_err(sqlite)?;
                if pk > 0 {
                    keyed.push((pk, columns.len()));
                }
                columns.push(row.get::<_, String>(0).map_err(sqlite)?);
            }
            keyed.sort_unstable();
            let refers_to: Vec<String> = conn
                .prepare("SELECT DISTINCT \"table\" FROM pragma_foreign_key_list(?1)")
                .and_then(|mut statement| statement.query_map([&name], |row| row.get(0))?.collect())
                .map_err(sqlite)?;
            tables.push(SourceTable {
                name,
                columns,
                key: keyed.into_iter().map(|(_, index)| index).collect(),
                refers_to,
            });
        }
        Ok((Reader { conn }, tables))
    }

    /// Reads every table of `plan` in order, each in primary-key order (ids ascending),
    /// into chunks for the sender; stops when the sender is gone.
    fn read(self, plan: &[TablePlan], chunks: &mpsc::Sender<Result<Piece, MigrateError>>) -> Result<(), MigrateError> {
        for table in plan {
            match self.read_table(table, chunks) {
                Ok(true) => {}
                // The sender stopped (it failed, and says why): nothing more to read.
                Ok(false) => return Ok(()),
                Err(error) => {
                    let _ = chunks.blocking_send(Err(MigrateError::Source(error.to_string())));
                    return Err(error);
                }
            }
        }
        Ok(())
    }

    /// One table; `false` when the sender is gone.
    fn read_table(
        &self,
        table: &TablePlan,
        chunks: &mpsc::Sender<Result<Piece, MigrateError>>,
    ) -> Result<bool, MigrateError> {
        let columns: Vec<String> = table.columns.iter().map(|(name, _)| quoted(name)).collect();
        let order: Vec<String> = if table.key.is_empty() {
            vec!["rowid".to_owned()]
        } else {
            table.key.iter().map(|&index| columns[index].clone()).collect()
        };
        let select = format!(
            "SELECT {} FROM {} ORDER BY {}",
            columns.join(", "),
            quoted(&table.name),
            order.join(", ")
        );
        let sqlite = |err: rusqlite::Error| MigrateError::Source(format!("reading {}: {err}", table.name));
        let mut statement = self.conn.prepare(&select).map_err(sqlite)?;
        let mut rows = statement.query([]).map_err(sqlite)?;
        let mut buffer = Vec::with_capacity(CHUNK_BYTES + CHUNK_BYTES / 8);
        let mut count = 0u64;
        while let Some(row) = rows.next().map_err(sqlite)? {
            for (index, (column, kind)) in table.columns.iter().enumerate() {
                if index > 0 {
                    buffer.push(b'\t');
                }
                let value = row.get_ref(index).map_err(sqlite)?;
                if let Err(problem) = encode(&mut buffer, *kind, value) {
                    return Err(MigrateError::Value {
                        table: table.name.clone(),
                        key: describe_key(table, row),
                        column: column.clone(),
                        problem,
                    });
                }
            }
            buffer.push(b'\n');
            count += 1;
            if buffer.len() >= CHUNK_BYTES {
                let full = std::mem::replace(&mut buffer, Vec::with_capacity(CHUNK_BYTES + CHUNK_BYTES / 8));
                if chunks.blocking_send(Ok(Piece::Rows(full))).is_err() {
                    return Ok(false);
                }
            }
        }
        if !buffer.is_empty() && chunks.blocking_send(Ok(Piece::Rows(buffer))).is_err() {
            return Ok(false);
        }
        Ok(chunks.blocking_send(Ok(Piece::End(count))).is_ok())
    }
}

/// The row's key as an operator finds it again: `(id 42)`, `(conversation_id 7, kind resolution)`.
fn describe_key(table: &TablePlan, row: &rusqlite::Row<'_>) -> String {
    let shown = |index: usize| -> String {
        match row.get_ref(index) {
            Ok(ValueRef::Integer(value)) => value.to_string(),
            Ok(ValueRef::Text(text)) => format!("'{}'", String::from_utf8_lossy(text)),
            Ok(ValueRef::Blob(bytes)) => format!("x'{}'", hex(bytes)),
            _ => "?".to_owned(),
        }
    };
    if table.key.is_empty() {
        return "(a row of a table without a primary key)".to_owned();
    }
    let parts: Vec<String> = table
        .key
        .iter()
        .map(|&index| format!("{} {}", table.columns[index].0, shown(index)))
        .collect();
    format!("({})", parts.join(", "))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Appends one value in COPY's text format (`\N` for NULL, backslash escapes), written as
/// the column's PostgreSQL type takes it; a value it cannot hold is described.
fn encode(out: &mut Vec<u8>, kind: Kind, value: ValueRef<'_>) -> Result<(), String> {
    match (kind, value) {
        (_, ValueRef::Null) => out.extend_from_slice(b"\\N"),
        // Writing to a Vec cannot fail.
        (Kind::Integer, ValueRef::Integer(number)) => drop(write!(out, "{number}")),
        (Kind::Boolean, ValueRef::Integer(0)) => out.push(b'f'),
        (Kind::Boolean, ValueRef::Integer(1)) => out.push(b't'),
        (Kind::Text, ValueRef::Text(text)) => encode_text(out, text)?,
        // SQLite keeps what it was given in a column of no strict type; a number in a
        // text column reads as its digits, as SQLite itself would show it.
        (Kind::Text, ValueRef::Integer(number)) => drop(write!(out, "{number}")),
        (Kind::Text, ValueRef::Real(number)) => drop(write!(out, "{number}")),
        (Kind::Bytes, ValueRef::Blob(bytes) | ValueRef::Text(bytes)) => {
            // bytea's hex input (`\x…`), its backslash escaped for COPY.
            const DIGITS: &[u8; 16] = b"0123456789abcdef";
            out.reserve(3 + bytes.len() * 2);
            out.extend_from_slice(b"\\\\x");
            for byte in bytes {
                out.push(DIGITS[usize::from(byte >> 4)]);
                out.push(DIGITS[usize::from(byte & 0x0f)]);
            }
        }
        (kind, other) => {
            return Err(format!(
                "holds {} where PostgreSQL takes {}",
                shown_value(other),
                match kind {
                    Kind::Integer => "an integer",
                    Kind::Boolean => "a boolean (SQLite's 0 or 1)",
                    Kind::Text => "text",
                    Kind::Bytes => "bytes",
                }
            ));
        }
    }
    Ok(())
}

fn shown_value(value: ValueRef<'_>) -> String {
    match value {
        ValueRef::Null => "NULL".to_owned(),
        ValueRef::Integer(number) => format!("the integer {number}"),
        ValueRef::Real(number) => format!("the number {number}"),
        ValueRef::Text(text) => format!("the text '{}'", String::from_utf8_lossy(text)),
        ValueRef::Blob(bytes) => format!("{} bytes of binary data", bytes.len()),
    }
}

/// Text, checked for what PostgreSQL's TEXT refuses (a NUL character, bytes that are not
/// UTF-8: SQLite stores both), with COPY's four special bytes escaped.
fn encode_text(out: &mut Vec<u8>, text: &[u8]) -> Result<(), String> {
    if std::str::from_utf8(text).is_err() {
        return Err(
            "holds bytes that are not UTF-8, which PostgreSQL's text cannot store; change the value in \
                    the SQLite file and run migrate again"
                .to_owned(),
        );
    }
    out.reserve(text.len());
    let mut plain_from = 0;
    for (at, &byte) in text.iter().enumerate() {
        let escaped: &[u8] = match byte {
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0 => {
                return Err(format!(
                    "holds a NUL character (byte {at} of the value), which PostgreSQL's text cannot store; \
                     change the value in the SQLite file and run migrate again"
                ));
            }
            _ => continue,
        };
        out.extend_from_slice(&text[plain_from..at]);
        out.extend_from_slice(escaped);
        plain_from = at + 1;
    }
    out.extend_from_slice(&text[plain_from..]);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(kind: Kind, value: ValueRef<'_>) -> Result<String, String> {
        let mut out = Vec::new();
        encode(&mut out, kind, value)?;
        Ok(String::from_utf8(out).unwrap())
    }

    #[test]
    fn values_are_written_as_copy_text_takes_them() {
        assert_eq!(encoded(Kind::Integer, ValueRef::Integer(-42)).unwrap(), "-42");
        assert_eq!(encoded(Kind::Text, ValueRef::Null).unwrap(), "\\N");
        assert_eq!(encoded(Kind::Boolean, ValueRef::Integer(0)).unwrap(), "f");
        assert_eq!(encoded(Kind::Boolean, ValueRef::Integer(1)).unwrap(), "t");
        assert_eq!(
            encoded(Kind::Text, ValueRef::Text("a\tb\nc\\N\rd é".as_bytes())).unwrap(),
            "a\\tb\\nc\\\\N\\rd é"
        );
        assert_eq!(
            encoded(Kind::Bytes, ValueRef::Blob(&[0x00, 0xab, 0x5c])).unwrap(),
            "\\\\x00ab5c"
        );
        assert_eq!(encoded(Kind::Bytes, ValueRef::Blob(&[])).unwrap(), "\\\\x");
    }

    #[test]
    fn values_postgresql_cannot_hold_are_refused_with_the_reason() {
        assert!(
            encoded(Kind::Boolean, ValueRef::Integer(2))
                .unwrap_err()
                .contains("0 or 1")
        );
        assert!(
            encoded(Kind::Integer, ValueRef::Text(b"12"))
                .unwrap_err()
                .contains("integer")
        );
        assert!(
            encoded(Kind::Text, ValueRef::Text(b"a\0b"))
                .unwrap_err()
                .contains("NUL")
        );
        assert!(
            encoded(Kind::Text, ValueRef::Text(&[0xff, 0xfe]))
                .unwrap_err()
                .contains("UTF-8")
        );
    }

    fn table(name: &str, refers_to: &[&str]) -> SourceTable {
        SourceTable {
            name: name.to_owned(),
            columns: vec!["id".to_owned()],
            key: vec![0],
            refers_to: refers_to.iter().map(|&other| other.to_owned()).collect(),
        }
    }

    #[test]
    fn tables_follow_those_they_refer_to_and_otherwise_keep_their_order() {
        let ordered = foreign_key_order(vec![
            table("messages", &["conversations"]),
            table("teams", &[]),
            table("conversations", &["teams", "conversations"]),
            table("blobs", &[]),
        ])
        .unwrap();
        let names: Vec<&str> = ordered.iter().map(|table| table.name.as_str()).collect();
        assert_eq!(names, ["teams", "conversations", "messages", "blobs"]);
        assert!(foreign_key_order(vec![table("a", &["b"]), table("b", &["a"])]).is_err());
    }
}
