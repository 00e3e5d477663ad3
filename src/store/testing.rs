//! For tests: a fresh store of the backend `SWITCHBOARD_TEST_STORE` names (`sqlite`, the
//! default, or `postgres`: a new database on the test binary's private cluster), with one
//! team and one webhook inbox, and conversations put in it through [`Tx`] alone (no
//! rules), so the store's tests need nothing above the store.

use std::collections::BTreeMap;
use std::sync::Arc;

use switchboard_connector_core::ChannelKind;

use crate::model::{ActorKind, Direction, MessageKind, Priority, Role};
use crate::query::Queries;
use crate::store::postgres::PgStore;
use crate::store::sqlite::SqliteStore;
use crate::store::{
    ContactRecord, InboxRef, InboxSpec, NewAgent, NewConversation, NewMessage, Store, StoreError, TeamSpec, Tx,
};

/// The variable that chooses the backend the store tests run against.
pub const BACKEND_VARIABLE: &str = "SWITCHBOARD_TEST_STORE";

pub struct TestStore {
    /// Holds the database files of a backend that has them.
    pub dir: tempfile::TempDir,
    pub store: Arc<dyn Store>,
    pub queries: Arc<dyn Queries>,
    /// The webhook inbox `shop`.
    pub shop: InboxRef,
    /// The team `support`.
    pub support: i64,
}

/// A store of the chosen backend, migrated from nothing (or from what `dir` holds).
pub async fn open(dir: &tempfile::TempDir) -> (Arc<dyn Store>, Arc<dyn Queries>) {
    let backend = std::env::var(BACKEND_VARIABLE).unwrap_or_else(|_| "sqlite".into());
    match backend.as_str() {
        "sqlite" => {
            let url = format!("sqlite://{}", dir.path().join("store.db").display());
            let store = Arc::new(SqliteStore::open(&url).await.expect("the SQLite store opens"));
            (Arc::clone(&store) as Arc<dyn Store>, store as Arc<dyn Queries>)
        }
        "postgres" => {
            // The database's URL is kept in `dir`, so that opening the same `dir` again
            // opens the same database.
            let noted = dir.path().join("postgres-url");
            let url = match std::fs::read_to_string(&noted) {
                Ok(url) => url,
                Err(_) => {
                    let cluster = switchboard_test_postgres::Cluster::shared().await;
                    let url = cluster.fresh_database().await;
                    std::fs::write(&noted, &url).expect("the URL noted");
                    url
                }
            };
            let settings = crate::store::config::StorageSettings {
                url,
                backend: crate::store::config::Backend::Postgres,
                max_connections: 8,
                connect_timeout: std::time::Duration::from_secs(5),
            };
            let store = Arc::new(PgStore::open(&settings).await.expect("the PostgreSQL store opens"));
            (Arc::clone(&store) as Arc<dyn Store>, store as Arc<dyn Queries>)
        }
        other => panic!("{BACKEND_VARIABLE}={other}: no such backend; this build has sqlite and postgres"),
    }
}

/// A store with team `support` and webhook inbox `shop`.
pub async fn with_shop() -> TestStore {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let (store, queries) = open(&dir).await;
    let (shop, support) = store
        .unit(|tx| {
            tx.deactivate_catalog()?;
            let team = TeamSpec {
                key: "support".into(),
                name: "Support".into(),
                tier: 0,
            };
            tx.upsert_team(&team, 0)?;
            let shop = inbox(tx, "shop", "Shop", crate::channels::registry::known::WEBHOOK)?;
            let support = tx.team("support")?.expect("the team exists").id;
            Ok::<_, StoreError>((shop, support))
        })
        .await
        .expect("the catalog is written");
    TestStore {
        dir,
        store,
        queries,
        shop,
        support,
    }
}

/// Makes inbox `key` of `channel` exist, as the catalog would.
pub(super) fn inbox(tx: &mut dyn Tx, key: &str, name: &str, channel: ChannelKind) -> Result<InboxRef, StoreError> {
    let spec = InboxSpec {
        key: key.into(),
        name: name.into(),
        channel,
    };
    let (id, channel) = tx.upsert_inbox(&spec, 0)?;
    Ok(InboxRef {
        id,
        key: spec.key,
        name: spec.name,
        channel,
    })
}

/// What [`TestStore::converse`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seeded {
    pub contact_id: i64,
    pub conversation_id: i64,
    /// The customer's message.
    pub message_id: i64,
}

impl TestStore {
    /// An agent of `support`; returns their id.
    pub async fn agent(&self, name: &str) -> i64 {
        let agent = NewAgent {
            name: name.into(),
            role: Role::Agent,
            teams: vec!["support".into()],
            token_hash: name.as_bytes().to_vec(),
            first_token: Some("first".into()),
            capacity: None,
            available: true,
            languages: Vec::new(),
        };
        let team = self.support;
        self.store
            .unit(move |tx| tx.insert_agent(&agent, &[team], 0))
            .await
            .expect("the agent is created")
    }

    /// A customer's message opening a conversation in `shop` at `now`, and a reply to it
    /// queued in the outbox when `reply` says what it says.
    pub async fn converse(&self, sender: &str, text: &str, reply: Option<&str>, now: i64) -> Seeded {
        let (shop, team) = (self.shop.clone(), self.support);
        let (sender, text, reply) = (sender.to_owned(), text.to_owned(), reply.map(str::to_owned));
        self.store
            .unit(move |tx| converse(tx, &shop, team, &sender, &text, reply.as_deref(), now))
            .await
            .expect("the conversation is written")
    }
}

/// A contact about whom nothing is known, to insert.
pub fn blank_contact() -> ContactRecord {
    ContactRecord {
        contact_id: 0,
        identity_id: 0,
        name: None,
        email: None,
        language: None,
        metadata: BTreeMap::new(),
        unreachable: false,
    }
}

pub(super) fn converse(
    tx: &mut dyn Tx,
    shop: &InboxRef,
    team: i64,
    sender: &str,
    text: &str,
    reply: Option<&str>,
    now: i64,
) -> Result<Seeded, StoreError> {
    let contact_id = tx.insert_contact(&blank_contact(), now)?;
    let identity_id = tx.insert_identity(contact_id, shop, sender, now)?;
    let conversation_id = tx.insert_conversation(&NewConversation {
        inbox_id: shop.id,
        contact_id,
        identity_id,
        thread_key: None,
        subject: None,
        priority: Priority::Normal,
        team_id: Some(team),
        tier: 0,
        labels: &[],
        language: None,
        now,
    })?;
    let message = |direction, kind, author_kind, text, external_id| NewMessage {
        conversation_id,
        inbox_id: shop.id,
        direction,
        kind,
        author_kind,
        // As ingest writes it: the customer's messages name them.
        author_id: (author_kind == ActorKind::Contact).then_some(contact_id),
        text,
        html: None,
        external_id,
        language: None,
        metadata: None,
    };
    let external_id = format!("{sender}-{now}");
    let inbound = message(
        Direction::Inbound,
        MessageKind::Message,
        ActorKind::Contact,
        text,
        Some(external_id.as_str()),
    );
    let message_id = tx.insert_message(&inbound, now)?;
    if let Some(reply) = reply {
        let outbound = message(Direction::Outbound, MessageKind::Reply, ActorKind::System, reply, None);
        let reply_id = tx.insert_message(&outbound, now)?;
        tx.insert_outbox(reply_id, conversation_id, shop.id, now, now + 60_000)?;
    }
    Ok(Seeded {
        contact_id,
        conversation_id,
        message_id,
    })
}
