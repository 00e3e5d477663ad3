//! Why the daemon writes SQLite through rusqlite on its own thread: the cost of one
//! statement through each driver on this machine, and of a durable commit.
//!
//! `cargo run --release -p switchboard-bench --bin sqlite-drivers`

use std::time::Instant;

use sqlx::Connection;

const STATEMENTS: i64 = 20_000;
const COMMITS: i64 = 2_000;

fn per(elapsed: std::time::Duration, count: i64) -> f64 {
    elapsed.as_secs_f64() * 1e6 / count as f64
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("sqlx.db").display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await?;
    sqlx::query("PRAGMA journal_mode = WAL").execute(&mut conn).await?;
    sqlx::query("PRAGMA synchronous = FULL").execute(&mut conn).await?;
    sqlx::query("CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT, b INTEGER)")
        .execute(&mut conn)
        .await?;
    let mut tx = conn.begin().await?;
    let started = Instant::now();
    for i in 0..STATEMENTS {
        sqlx::query("INSERT INTO t (a, b) VALUES (?, ?)")
            .bind("hello")
            .bind(i)
            .execute(&mut *tx)
            .await?;
    }
    let sqlx_insert = per(started.elapsed(), STATEMENTS);
    tx.commit().await?;
    let started = Instant::now();
    for i in 1..=STATEMENTS {
        let _: Option<i64> = sqlx::query_scalar("SELECT b FROM t WHERE id = ?")
            .bind(i)
            .fetch_optional(&mut conn)
            .await?;
    }
    let sqlx_select = per(started.elapsed(), STATEMENTS);
    let started = Instant::now();
    for i in 0..COMMITS {
        let mut tx = conn.begin().await?;
        sqlx::query("INSERT INTO t (a, b) VALUES (?, ?)")
            .bind("x")
            .bind(i)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
    }
    let sqlx_commit = per(started.elapsed(), COMMITS);

    let c = rusqlite::Connection::open(dir.path().join("rusqlite.db"))?;
    c.pragma_update(None, "journal_mode", "WAL")?;
    c.pragma_update(None, "synchronous", "FULL")?;
    c.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT, b INTEGER)", [])?;
    c.execute("BEGIN", [])?;
    let started = Instant::now();
    for i in 0..STATEMENTS {
        c.prepare_cached("INSERT INTO t (a, b) VALUES (?, ?)")?
            .execute(rusqlite::params!["hello", i])?;
    }
    let rusqlite_insert = per(started.elapsed(), STATEMENTS);
    c.execute("COMMIT", [])?;
    let started = Instant::now();
    for i in 1..=STATEMENTS {
        let _: i64 = c
            .prepare_cached("SELECT b FROM t WHERE id = ?")?
            .query_row([i], |r| r.get(0))?;
    }
    let rusqlite_select = per(started.elapsed(), STATEMENTS);
    let started = Instant::now();
    for i in 0..COMMITS {
        c.execute("BEGIN", [])?;
        c.prepare_cached("INSERT INTO t (a, b) VALUES (?, ?)")?
            .execute(rusqlite::params!["x", i])?;
        c.execute("COMMIT", [])?;
    }
    let rusqlite_commit = per(started.elapsed(), COMMITS);

    println!("microseconds per operation     sqlx 0.8   rusqlite");
    println!("INSERT inside a transaction  {sqlx_insert:>10.2} {rusqlite_insert:>10.2}");
    println!("SELECT by primary key        {sqlx_select:>10.2} {rusqlite_select:>10.2}");
    println!("1-row transaction, FULL sync {sqlx_commit:>10.2} {rusqlite_commit:>10.2}");
    Ok(())
}
