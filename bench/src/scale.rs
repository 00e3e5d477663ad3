//! Scale: agents' list and detail queries with a million messages in the store.
//!
//! Posting a million signed messages would take the whole time budget, so the store is
//! seeded directly, in the daemon's own schema (its migrations ran first), with the
//! shape a busy desk accumulates over a year: ten messages a conversation alternating
//! customer and agent, every reply with its delivered outbox row, two events a
//! conversation, three teams, twenty agents. As at a real desk, the work in progress is
//! the newest 6 % of conversations (open, pending, snoozed; 40 % of them unassigned) and
//! the history behind it is resolved or closed, nearly all of it by an agent. The daemon
//! is then restarted on that store and queried through its API, as agents would.
//!
//! On PostgreSQL (`--store postgres`, `postgres-2`) the same desk is seeded into the schema
//! of `migrations/postgres/0001_initial.sql` by `INSERT … SELECT` over `generate_series`
//! (the rows made in the server, as SQLite's are by a recursive CTE), then vacuumed and
//! analyzed as autovacuum would have done to a year's history; with two daemons the
//! agents alternate between them.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure};
use serde_json::{Value, json};

use crate::desk::{Desk, Postgres, Store};
use crate::load::{self, LoadResult};
use crate::report::load_json;
use crate::workloads::{QueueQueries, mix};

/// Messages per conversation; the conversation count follows from the message count.
pub(crate) const MESSAGES_PER_CONVERSATION: u64 = 10;
/// Agents querying at once.
pub(crate) const AGENTS: usize = 4;
/// Agents the history is assigned to, the bench agent among them.
const AGENTS_AT_DESK: i64 = 20;
/// When the seeded history starts (2026-01-01), and one conversation per minute after it.
const HISTORY_START_MS: i64 = 1_767_225_600_000;
const MINUTE_MS: i64 = 60_000;

pub struct ScaleFigures {
    pub messages: u64,
    pub conversations: u64,
    pub seed_seconds: f64,
    pub store_bytes: u64,
    pub list: LoadResult,
    pub detail: LoadResult,
    pub search: LoadResult,
    pub contacts: LoadResult,
    pub reports: LoadResult,
    /// The same reports read by one supervisor at a time.
    pub reports_alone: LoadResult,
    pub peak_rss_mib: f64,
}

impl ScaleFigures {
    pub fn to_json(&self) -> Value {
        json!({
            "messages": self.messages,
            "conversations": self.conversations,
            "seed_seconds": self.seed_seconds,
            "store_bytes": self.store_bytes,
            "list": load_json(&self.list),
            "detail": load_json(&self.detail),
            "search": load_json(&self.search),
            "contacts": load_json(&self.contacts),
            "reports": load_json(&self.reports),
            "reports_alone": load_json(&self.reports_alone),
            "peak_rss_mib": self.peak_rss_mib,
        })
    }
}

fn last_activity_at(conversation: u64) -> i64 {
    HISTORY_START_MS + conversation as i64 * MINUTE_MS + (MESSAGES_PER_CONVERSATION as i64 - 1) * 1000
}

pub async fn run(
    binary: &Path,
    store: Store,
    postgres: &Postgres,
    messages: u64,
    duration: Duration,
) -> anyhow::Result<ScaleFigures> {
    let conversations = (messages / MESSAGES_PER_CONVERSATION).max(1);
    let messages = conversations * MESSAGES_PER_CONVERSATION;
    // Every seeded reply is already delivered: nothing is sent to this address.
    let mut desk = Desk::start(binary, store, postgres, "http://127.0.0.1:9/unused", "").await?;
    let token = desk.first().agent("bench", "support")?;
    desk.stop()?;

    let started = Instant::now();
    match (desk.sqlite(), desk.postgres_url()) {
        (Some(database), _) => tokio::task::spawn_blocking(move || seed(&database, conversations)).await??,
        (None, Some(url)) => seed_postgres(url, conversations).await?,
        (None, None) => unreachable!("a desk has a store"),
    }
    let seed_seconds = started.elapsed().as_secs_f64();
    let store_bytes = desk.store_bytes().await?;

    desk.restart(binary).await?;
    let addresses = desk.addresses();
    let host = addresses[0].to_string();
    let list_paths = list_paths(conversations);
    for &address in &addresses {
        check_seed(address, &host, &token, &list_paths, conversations).await?;
    }
    // Each kind of query by the agents at once for the scenario's duration.
    let measure = async |paths: Vec<String>| {
        let queries = QueueQueries {
            host: host.clone(),
            token: token.clone(),
            paths,
        };
        load::run_across(&addresses, AGENTS, duration, Arc::new(queries)).await
    };
    let list = measure(list_paths).await;
    let detail = measure(detail_paths(conversations)).await;
    let search = measure(search_paths(conversations)).await;
    let contacts = measure(contact_paths(conversations)).await;
    let reports = measure(report_paths()).await;
    let reports_alone = load::run_across(
        &addresses,
        1,
        duration,
        Arc::new(QueueQueries {
            host: host.clone(),
            token: token.clone(),
            paths: report_paths(),
        }),
    )
    .await;
    let peak_rss_mib = desk.peak_rss_mib();
    desk.finish().await?;
    Ok(ScaleFigures {
        messages,
        conversations,
        seed_seconds,
        store_bytes,
        list,
        detail,
        search,
        contacts,
        reports,
        reports_alone,
        peak_rss_mib,
    })
}

/// The listings agents run, from their queues to a page far back in the history (the
/// migrate scenario runs the same on the migrated desk).
pub(crate) fn list_paths(conversations: u64) -> Vec<String> {
    let middle = last_activity_at(conversations / 2);
    vec![
        "/api/v1/conversations".to_owned(),
        "/api/v1/conversations?status=open".to_owned(),
        "/api/v1/conversations?team=billing&status=open".to_owned(),
        "/api/v1/conversations?team=support&status=open,pending".to_owned(),
        "/api/v1/conversations?team=technical&status=resolved&limit=100".to_owned(),
        "/api/v1/conversations?assignee=none&status=open&limit=50".to_owned(),
        "/api/v1/conversations?assignee=me&status=open,pending".to_owned(),
        // An agent's whole history, newest first: the one listing left to sort.
        "/api/v1/conversations?assignee=me".to_owned(),
        "/api/v1/conversations?inbox=shop&status=pending".to_owned(),
        // A page from the middle of the history, as when scrolling far back.
        format!("/api/v1/conversations?cursor={middle}.{}", conversations / 2),
        format!(
            "/api/v1/conversations?team=billing&status=closed&cursor={middle}.{}",
            conversations / 2
        ),
    ]
}

/// What agents search for: an order number (a conversation's id: a few conversations
/// hold it as part of their text), a word every message holds (the newest matches
/// win), two words of one reply, and a word no message holds (the whole index read).
pub(crate) fn search_paths(conversations: u64) -> Vec<String> {
    (0..4096u64)
        .map(|draw| {
            // Three digits at least: a shorter number is no search of its own.
            let order = (mix(draw) % conversations + 1).max(100.min(conversations));
            match draw % 4 {
                0 => format!("/api/v1/search?q={order}"),
                1 => "/api/v1/search?q=arrived&status=open".to_owned(),
                2 => format!("/api/v1/search?q=patience+{order}"),
                _ => "/api/v1/search?q=zanzibar".to_owned(),
            }
        })
        .collect()
}

/// Finding a customer by name or email (a part of it), and opening their page.
pub(crate) fn contact_paths(conversations: u64) -> Vec<String> {
    (0..4096u64)
        .map(|draw| {
            let customer = mix(draw) % conversations + 1;
            match draw % 3 {
                0 => format!("/api/v1/contacts?q=customer{customer}%40"),
                1 => format!("/api/v1/contacts?q=Customer+{customer}"),
                _ => format!("/api/v1/contacts/{customer}"),
            }
        })
        .collect()
}

/// Conversations opened at random over the whole history.
/// What a supervisor reads of the seeded year (2026): the overview, and the same by agent.
pub(crate) fn report_paths() -> Vec<String> {
    let year = "from=2026-01-01&to=2027-01-01&time_zone=Europe/Berlin";
    vec![
        format!("/api/v1/reports/overview?{year}"),
        format!("/api/v1/reports/overview?{year}&by=agent"),
    ]
}

pub(crate) fn detail_paths(conversations: u64) -> Vec<String> {
    (0..4096u64)
        .map(|draw| format!("/api/v1/conversations/{}", mix(draw) % conversations + 1))
        .collect()
}

/// Every listing the agents will run finds conversations, and a conversation reads
/// back whole: the seed is data the daemon understands, so the timings measure work.
pub(crate) async fn check_seed(
    address: std::net::SocketAddr,
    host: &str,
    token: &str,
    list_paths: &[String],
    conversations: u64,
) -> anyhow::Result<()> {
    let workload = QueueQueries {
        host: host.to_owned(),
        token: token.to_owned(),
        paths: Vec::new(),
    };
    let get = |path: String| {
        let request = workload.get(&path);
        async move {
            match load::fetch(address, request).await {
                Ok((status, body)) if status.is_success() => Ok(serde_json::from_slice::<Value>(&body)?),
                Ok((status, body)) => bail!("{path}: HTTP {status}: {}", String::from_utf8_lossy(&body)),
                Err(error) => bail!("{path}: {error}"),
            }
        }
    };
    for path in list_paths {
        let page = get(path.clone()).await?;
        let found = page["conversations"].as_array().map_or(0, Vec::len);
        ensure!(found > 0, "the seeded store answers {path} with no conversations");
    }
    // Support's conversations (every third) are the bench agent's to see.
    let support = (conversations / 2 / 3 * 3).max(3);
    let found = get(format!("/api/v1/search?q=patience+{support}")).await?;
    ensure!(
        found["results"].as_array().is_some_and(|results| !results.is_empty()),
        "searching the seeded store for order {support} finds nothing: {found}"
    );
    let found = get(format!("/api/v1/contacts?q=customer{support}%40")).await?;
    ensure!(
        found["contacts"].as_array().is_some_and(|contacts| contacts.len() == 1),
        "looking customer {support} up finds {found}"
    );
    let detail = get(format!("/api/v1/conversations/{}", conversations / 2)).await?;
    let messages = detail["messages"].as_array().map_or(0, Vec::len) as u64;
    let events = detail["events"].as_array().map_or(0, Vec::len);
    // Created, routed, and resolved: the middle of the history is long resolved.
    ensure!(
        messages == MESSAGES_PER_CONVERSATION && events == 3,
        "a seeded conversation reads back with {messages} messages and {events} events"
    );
    Ok(())
}

/// What the daemon keeps for reports as it writes (migration 0022): the messages
/// by quarter hour, each reply that answered a waiting customer (the first one
/// waited since the conversation opened, each next one since the message before
/// it), and the resolution of every conversation resolved or closed. Both seeds run
/// them after their own statements.
const REPORT_FACTS: [&str; 3] = [
    "INSERT INTO message_tallies (slot, conversation_id, inbound, outbound, automated, notes)
         SELECT created_at / 900000, conversation_id,
                SUM(CASE WHEN direction = 'inbound' THEN 1 ELSE 0 END),
                SUM(CASE WHEN direction = 'outbound' AND kind <> 'status_update' THEN 1 ELSE 0 END),
                SUM(CASE WHEN kind = 'status_update' THEN 1 ELSE 0 END),
                SUM(CASE WHEN direction = 'note' THEN 1 ELSE 0 END)
         FROM messages GROUP BY 1, 2",
    "INSERT INTO responses (message_id, conversation_id, waited_from, answered_at, first, sla)
         SELECT m.id, m.conversation_id,
                CASE WHEN m.id - (m.conversation_id - 1) * :per - 1 = 3 THEN m.created_at - 3000
                     ELSE m.created_at - 1000 END,
                m.created_at, m.id - (m.conversation_id - 1) * :per - 1 = 3, NULL
         FROM messages m WHERE m.kind = 'reply'",
    "INSERT INTO events (conversation_id, kind, actor_kind, actor_id, data, created_at)
         SELECT id, 'conversation.status_changed', 'agent', :agent, '{\"from\":\"open\",\"to\":\"resolved\"}',
                resolved_at
         FROM conversations WHERE resolved_at IS NOT NULL ORDER BY id",
];

/// Writes the history in one transaction. Not durable while it runs (synchronous off):
/// this is setup, not the measurement, and the daemon's own settings apply afterwards.
pub(crate) fn seed(database: &Path, conversations: u64) -> anyhow::Result<()> {
    let mut connection = rusqlite::Connection::open(database)?;
    connection.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF; PRAGMA cache_size = -262144;")?;
    let transaction = connection.transaction()?;
    let ids = |sql: &str| -> anyhow::Result<i64> { Ok(transaction.query_row(sql, [], |row| row.get(0))?) };
    let inbox = ids("SELECT id FROM inboxes WHERE key = 'shop'")?;
    let agent = ids("SELECT id FROM agents WHERE name = 'bench'")?;
    // The bench agent's colleagues: their token hashes are random, nobody logs in as them.
    transaction.execute(
        "WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < :colleagues)
         INSERT INTO agents (name, role, team_id, token_hash, created_at)
         SELECT 'agent ' || n, 'agent', (SELECT team_id FROM agents WHERE id = :agent), randomblob(32), 0 FROM seq",
        rusqlite::named_params! {":colleagues": AGENTS_AT_DESK - 1, ":agent": agent},
    )?;
    let first_colleague = agent + 1;
    let support = ids("SELECT id FROM teams WHERE key = 'support'")?;
    let billing = ids("SELECT id FROM teams WHERE key = 'billing'")?;
    let technical = ids("SELECT id FROM teams WHERE key = 'technical'")?;
    let per = MESSAGES_PER_CONVERSATION as i64;
    let params = rusqlite::named_params! {
        ":n": conversations as i64,
        ":inbox": inbox,
        ":agent": agent,
        ":first_colleague": first_colleague,
        ":desk": AGENTS_AT_DESK,
        ":active_from": conversations as i64 - conversations as i64 * 6 / 100,
        ":support": support,
        ":billing": billing,
        ":technical": technical,
        ":start": HISTORY_START_MS,
        ":minute": MINUTE_MS,
        ":per": per,
    };
    // One customer per conversation; conversation n is contact n and identity n.
    let statements = [
        "WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < :n)
         INSERT INTO contacts (id, name, email, language, created_at, updated_at)
         SELECT n, 'Customer ' || n, 'customer' || n || '@example.com',
                CASE n % 3 WHEN 0 THEN 'en' WHEN 1 THEN 'de' ELSE 'es' END,
                :start + n * :minute, :start + n * :minute
         FROM seq",
        "INSERT INTO contact_identities (id, contact_id, inbox_id, channel, external_id, created_at)
         SELECT id, id, :inbox, 'webhook', 'seed-customer-' || id, created_at FROM contacts",
        "INSERT INTO conversations (id, inbox_id, contact_id, identity_id, status, priority, team_id, assignee_id,
                                    labels, language, last_message_id, created_at, updated_at, last_activity_at,
                                    first_response_at, resolved_at)
         SELECT id, :inbox, id, id,
                CASE WHEN id <= :active_from THEN (CASE WHEN id % 4 = 0 THEN 'resolved' ELSE 'closed' END)
                     WHEN id % 20 < 12 THEN 'open' WHEN id % 20 < 17 THEN 'pending' ELSE 'snoozed' END,
                CASE id % 7 WHEN 0 THEN 'high' WHEN 1 THEN 'low' WHEN 2 THEN 'urgent' ELSE 'normal' END,
                CASE id % 3 WHEN 0 THEN :support WHEN 1 THEN :billing ELSE :technical END,
                CASE WHEN (id > :active_from AND id % 5 < 2) OR (id <= :active_from AND id % 33 = 0) THEN NULL
                     ELSE (SELECT CASE WHEN slot = 0 THEN :agent ELSE :first_colleague + slot - 1 END
                           -- A multiplicative hash: agents independent of the status pattern.
                           FROM (SELECT ((id * 2654435761) >> 7) % :desk AS slot)) END,
                '[]', language, id * :per, created_at, created_at + (:per - 1) * 1000,
                created_at + (:per - 1) * 1000, created_at + 1000,
                CASE WHEN id <= :active_from THEN created_at + (:per - 1) * 1000 END
         FROM contacts",
        // Message k of conversation c has id (c - 1) * per + k + 1: even k from the
        // customer, odd k a reply (the first of them the acknowledgement).
        "WITH RECURSIVE k(k) AS (SELECT 0 UNION ALL SELECT k + 1 FROM k WHERE k < :per - 1)
         INSERT INTO messages (id, conversation_id, inbox_id, direction, kind, author_kind, author_id, text,
                               external_id, language, created_at)
         SELECT (c.id - 1) * :per + k.k + 1, c.id, :inbox,
                CASE WHEN k.k % 2 = 0 THEN 'inbound' ELSE 'outbound' END,
                CASE WHEN k.k % 2 = 0 THEN 'message' WHEN k.k = 1 THEN 'status_update' ELSE 'reply' END,
                CASE WHEN k.k % 2 = 0 THEN 'contact' WHEN k.k = 1 THEN 'system' ELSE 'agent' END,
                CASE WHEN k.k % 2 = 0 THEN c.id WHEN k.k = 1 THEN NULL ELSE :agent END,
                CASE WHEN k.k % 2 = 0
                     THEN 'Hello, this is message ' || k.k || ' about my order ' || c.id || '. It has not arrived yet.'
                     ELSE 'Thanks for your patience, we are looking into order ' || c.id || ' and will update you.' END,
                CASE WHEN k.k % 2 = 0 THEN 'seed-' || c.id || '-' || k.k END,
                c.language, c.created_at + k.k * 1000
         FROM conversations c, k ORDER BY 1",
        "INSERT INTO outbox (message_id, conversation_id, inbox_id, status, attempts, next_attempt_at, expires_at,
                             receipt, sent_at, created_at, updated_at)
         SELECT id, conversation_id, inbox_id, 'sent', 1, created_at, created_at + 86400000, '{\"status\":202}',
                created_at + 50, created_at, created_at + 50
         FROM messages WHERE direction = 'outbound'",
        "INSERT INTO events (conversation_id, kind, actor_kind, actor_id, data, created_at)
         SELECT id, 'conversation.created', 'contact', contact_id, '{\"inbox\":\"shop\",\"channel\":\"webhook\"}', created_at
         FROM conversations
         UNION ALL
         SELECT id, 'conversation.routed', 'system', NULL,
                '{\"rule\":null,\"team\":\"support\",\"priority\":\"normal\",\"labels\":[]}', created_at
         FROM conversations
         ORDER BY 1, 2",
    ];
    for statement in statements.into_iter().chain(REPORT_FACTS) {
        let mut prepared = transaction.prepare(statement)?;
        // Each statement names only some of the parameters.
        let wanted: Vec<(&str, &dyn rusqlite::ToSql)> = params
            .iter()
            .filter(|(name, _)| prepared.parameter_index(name).ok().flatten().is_some())
            .copied()
            .collect();
        prepared.execute(wanted.as_slice())?;
    }
    transaction.commit()?;
    connection.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
    Ok(())
}

/// [`seed`] on PostgreSQL: the same rows, made in the server by `INSERT … SELECT` over
/// `generate_series` in one transaction (not durable while it runs: setup, not the
/// measurement), the identities moved past the ids given, then `VACUUM (ANALYZE)` and a
/// checkpoint, so that the queries find the steady state autovacuum keeps (visibility
/// map set, statistics current) and no seeding writes still pending.
async fn seed_postgres(url: &str, conversations: u64) -> anyhow::Result<()> {
    use sqlx::{Connection, Executor};
    let mut connection = sqlx::PgConnection::connect(url).await?;
    let mut transaction = connection.begin().await?;
    transaction.execute("SET LOCAL synchronous_commit = off").await?;
    let mut id = async |sql: &str| -> anyhow::Result<i64> {
        Ok(sqlx::query_scalar::<_, i64>(sql).fetch_one(&mut *transaction).await?)
    };
    let inbox = id("SELECT id FROM inboxes WHERE key = 'shop'").await?;
    let agent = id("SELECT id FROM agents WHERE name = 'bench'").await?;
    let support = id("SELECT id FROM teams WHERE key = 'support'").await?;
    let billing = id("SELECT id FROM teams WHERE key = 'billing'").await?;
    let technical = id("SELECT id FROM teams WHERE key = 'technical'").await?;
    let n = conversations as i64;
    let per = MESSAGES_PER_CONVERSATION as i64;
    // Every value is a number made here: written into the SQL where SQLite's seed has
    // named parameters (whole words: `:n` is not the start of `:null` in the JSON).
    let params: [(&str, i64); 13] = [
        (":first_colleague", agent + 1),
        (":active_from", n - n * 6 / 100),
        (":colleagues", AGENTS_AT_DESK - 1),
        (":technical", technical),
        (":support", support),
        (":billing", billing),
        (":minute", MINUTE_MS),
        (":inbox", inbox),
        (":agent", agent),
        (":start", HISTORY_START_MS),
        (":desk", AGENTS_AT_DESK),
        (":per", per),
        (":n", n),
    ];
    let statements = [
        // The bench agent's colleagues: their token hashes are random, nobody logs in as them.
        "INSERT INTO agents (name, role, team_id, token_hash, created_at)
         SELECT 'agent ' || n, 'agent', (SELECT team_id FROM agents WHERE id = :agent),
                sha256(convert_to('colleague ' || n || ' ' || random(), 'UTF8')), 0
         FROM generate_series(1, :colleagues) n",
        "INSERT INTO contacts (id, name, email, language, created_at, updated_at)
         SELECT n, 'Customer ' || n, 'customer' || n || '@example.com',
                CASE n % 3 WHEN 0 THEN 'en' WHEN 1 THEN 'de' ELSE 'es' END,
                :start + n * :minute, :start + n * :minute
         FROM generate_series(CAST(1 AS bigint), :n) n",
        "INSERT INTO contact_identities (id, contact_id, inbox_id, channel, external_id, created_at)
         SELECT id, id, :inbox, 'webhook', 'seed-customer-' || id, created_at FROM contacts",
        "INSERT INTO conversations (id, inbox_id, contact_id, identity_id, status, priority, team_id, assignee_id,
                                    labels, language, last_message_id, created_at, updated_at, last_activity_at,
                                    first_response_at, resolved_at)
         SELECT id, :inbox, id, id,
                CASE WHEN id <= :active_from THEN (CASE WHEN id % 4 = 0 THEN 'resolved' ELSE 'closed' END)
                     WHEN id % 20 < 12 THEN 'open' WHEN id % 20 < 17 THEN 'pending' ELSE 'snoozed' END,
                CASE id % 7 WHEN 0 THEN 'high' WHEN 1 THEN 'low' WHEN 2 THEN 'urgent' ELSE 'normal' END,
                CASE id % 3 WHEN 0 THEN :support WHEN 1 THEN :billing ELSE :technical END,
                CASE WHEN (id > :active_from AND id % 5 < 2) OR (id <= :active_from AND id % 33 = 0) THEN NULL
                     -- A multiplicative hash: agents independent of the status pattern.
                     WHEN ((id * 2654435761) >> 7) % :desk = 0 THEN :agent
                     ELSE :first_colleague + ((id * 2654435761) >> 7) % :desk - 1 END,
                '[]', language, id * :per, created_at, created_at + (:per - 1) * 1000,
                created_at + (:per - 1) * 1000, created_at + 1000,
                CASE WHEN id <= :active_from THEN created_at + (:per - 1) * 1000 END
         FROM contacts ORDER BY id",
        // Message k of conversation c has id (c - 1) * per + k + 1: even k from the
        // customer, odd k a reply (the first of them the acknowledgement).
        "INSERT INTO messages (id, conversation_id, inbox_id, direction, kind, author_kind, author_id, text,
                               external_id, language, created_at)
         SELECT (c.id - 1) * :per + k + 1, c.id, :inbox,
                CASE WHEN k % 2 = 0 THEN 'inbound' ELSE 'outbound' END,
                CASE WHEN k % 2 = 0 THEN 'message' WHEN k = 1 THEN 'status_update' ELSE 'reply' END,
                CASE WHEN k % 2 = 0 THEN 'contact' WHEN k = 1 THEN 'system' ELSE 'agent' END,
                CASE WHEN k % 2 = 0 THEN c.id WHEN k = 1 THEN NULL ELSE :agent END,
                CASE WHEN k % 2 = 0
                     THEN 'Hello, this is message ' || k || ' about my order ' || c.id || '. It has not arrived yet.'
                     ELSE 'Thanks for your patience, we are looking into order ' || c.id || ' and will update you.' END,
                CASE WHEN k % 2 = 0 THEN 'seed-' || c.id || '-' || k END,
                c.language, c.created_at + k * 1000
         FROM conversations c, generate_series(0, :per - 1) k ORDER BY 1",
        "INSERT INTO outbox (message_id, conversation_id, inbox_id, status, attempts, next_attempt_at, expires_at,
                             receipt, sent_at, created_at, updated_at)
         SELECT id, conversation_id, inbox_id, 'sent', 1, created_at, created_at + 86400000, '{\"status\":202}',
                created_at + 50, created_at, created_at + 50
         FROM messages WHERE direction = 'outbound' ORDER BY id",
        "INSERT INTO events (conversation_id, kind, actor_kind, actor_id, data, created_at)
         SELECT id, 'conversation.created', 'contact', contact_id, '{\"inbox\":\"shop\",\"channel\":\"webhook\"}', created_at
         FROM conversations
         UNION ALL
         SELECT id, 'conversation.routed', 'system', NULL,
                '{\"rule\":null,\"team\":\"support\",\"priority\":\"normal\",\"labels\":[]}', created_at
         FROM conversations
         ORDER BY 1, 2",
        // Given ids leave the identities behind: the next row the daemon adds takes the next one.
        "SELECT setval(pg_get_serial_sequence(name, 'id'), (SELECT max(id) FROM contacts))
         FROM unnest(ARRAY['contacts', 'contact_identities', 'conversations']) name",
        "SELECT setval(pg_get_serial_sequence('messages', 'id'), (SELECT max(id) FROM messages))",
    ];
    let named = regex::Regex::new(r":([a-z_]+)\b").expect("a valid pattern");
    for statement in statements.into_iter().chain(REPORT_FACTS) {
        // Any other `:word` (`"rule":null` in a JSON literal) stays as it is.
        let sql = named.replace_all(statement, |found: &regex::Captures| {
            params
                .iter()
                .find(|(name, _)| name[1..] == found[1])
                .map_or_else(|| found[0].to_owned(), |(_, value)| value.to_string())
        });
        transaction.execute(sql.as_ref()).await?;
    }
    transaction.commit().await?;
    connection.execute("VACUUM (ANALYZE)").await?;
    connection.execute("CHECKPOINT").await?;
    connection.close().await?;
    Ok(())
}
