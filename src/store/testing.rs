//! For tests: a fresh store of the backend `SWITCHBOARD_TEST_STORE` names (`sqlite`, the
//! default), with one team and one webhook inbox, and messages to put in it.

use std::sync::Arc;

use switchboard_connector_core::{ChannelKind, InboundMessage, Sender};

use crate::domain::desk::Desk;
use crate::domain::ingest::{IngestContext, IngestOutcome};
use crate::domain::router::Router;
use crate::domain::service::Service;
use crate::model::Role;
use crate::query::Queries;
use crate::store::sqlite::SqliteStore;
use crate::store::{InboxRef, InboxSpec, NewAgent, Store, TeamSpec};

/// The variable that chooses the backend the store tests run against.
pub const BACKEND_VARIABLE: &str = "SWITCHBOARD_TEST_STORE";

pub struct TestStore {
    /// Holds the database files of a backend that has them.
    pub dir: tempfile::TempDir,
    pub store: Arc<dyn Store>,
    pub queries: Arc<dyn Queries>,
    pub service: Service,
    /// The webhook inbox `shop`.
    pub shop: InboxRef,
}

/// A store of the chosen backend, migrated from nothing.
pub async fn open(dir: &tempfile::TempDir) -> (Arc<dyn Store>, Arc<dyn Queries>) {
    let backend = std::env::var(BACKEND_VARIABLE).unwrap_or_else(|_| "sqlite".into());
    match backend.as_str() {
        "sqlite" => {
            let url = format!("sqlite://{}", dir.path().join("store.db").display());
            let store = Arc::new(SqliteStore::open(&url).await.expect("the SQLite store opens"));
            (Arc::clone(&store) as Arc<dyn Store>, store as Arc<dyn Queries>)
        }
        other => panic!("{BACKEND_VARIABLE}={other}: no such backend; this build has sqlite"),
    }
}

/// A store with team `support` and webhook inbox `shop`, running `desk`'s rules.
pub async fn with_shop(desk: Desk) -> TestStore {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let (store, queries) = open(&dir).await;
    let service = Service::new(Arc::clone(&store), Arc::new(desk));
    let teams = vec![TeamSpec {
        key: "support".into(),
        name: "Support".into(),
        tier: 0,
    }];
    let inboxes = vec![InboxSpec {
        key: "shop".into(),
        name: "Shop".into(),
        channel: ChannelKind::Webhook,
    }];
    let catalog = service
        .sync_catalog(teams, inboxes, 0)
        .await
        .expect("the catalog syncs");
    TestStore {
        dir,
        store,
        queries,
        service,
        shop: catalog.inboxes["shop"].clone(),
    }
}

/// A desk of one team, `support`, that assigns by hand and runs no SLA clocks.
pub fn plain_desk() -> Desk {
    Desk::plain(&[("support", "Support")])
}

/// A customer message: `id` is its channel id, `sender` the customer's.
pub fn message(id: &str, sender: &str, text: &str) -> InboundMessage {
    InboundMessage {
        external_id: id.into(),
        sender: Sender {
            external_id: sender.into(),
            ..Sender::default()
        },
        text: text.into(),
        ..InboundMessage::default()
    }
}

impl TestStore {
    /// What ingest knows of a message arriving at `now` in `shop`.
    pub fn context(&self, now: i64) -> IngestContext {
        IngestContext {
            inbox: self.shop.clone(),
            router: Arc::new(Router::new(vec![], "support".into())),
            greeting: false,
            now,
            expires_at: now + 60_000,
        }
    }

    /// An available agent of `support`; returns their id.
    pub async fn agent(&self, name: &str) -> i64 {
        let agent = NewAgent {
            name: name.into(),
            role: Role::Agent,
            team: "support".into(),
            token_hash: name.as_bytes().to_vec(),
            capacity: None,
            available: true,
        };
        self.service.create_agent(agent, 0).await.expect("the agent is created")
    }

    pub async fn ingest(&self, message: InboundMessage, now: i64) -> IngestOutcome {
        self.service
            .ingest(self.context(now), message)
            .await
            .expect("the message is stored")
    }
}
