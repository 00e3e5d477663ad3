//! The store suite: what every backend must do, run against the one
//! `SWITCHBOARD_TEST_STORE` names (`sqlite` by default; CI runs it so). A new backend
//! passes these before any rule runs on it: migrations from an empty database, units of
//! work that apply whole or not at all, ingest and its dedupe, threading lookups, the
//! outbox's claims under leases, clocks falling due, deliveries settled once, event
//! subscriptions fanned out and claimed in order.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::json;
use switchboard_connector_core::Receipt;

use super::testing::{self, TestStore, message, plain_desk};
use super::*;
use crate::domain::DeskError;
use crate::domain::deliveries;
use crate::model::clock::{ClockKind, ClockState, SlaClock};
use crate::model::{DeliveryStatus, Priority, Status};
use crate::query::{AssigneeFilter, ConversationFilter};

const NOW: i64 = 1_800_000_000_000;

async fn shop() -> TestStore {
    testing::with_shop(plain_desk()).await
}

fn plan(held: Vec<i64>, budgets: Vec<(i64, u32)>, cap: u32) -> ClaimPlan {
    ClaimPlan {
        held,
        budgets: budgets.into_iter().collect(),
        cap,
    }
}

async fn claim(store: &TestStore, now: i64, limit: u32, plan: ClaimPlan) -> Vec<Delivery> {
    store
        .store
        .unit(move |tx| tx.claim_deliveries(now, limit, now + 60_000, &plan))
        .await
        .unwrap()
}

async fn record(store: &TestStore, outbox_id: i64, result: DeliveryResult, now: i64) {
    store
        .store
        .unit(move |tx| deliveries::record(tx, outbox_id, &result, now))
        .await
        .unwrap()
}

#[tokio::test]
async fn a_new_database_is_migrated_and_opening_it_again_keeps_what_it_holds() {
    let store = shop().await;
    store.ingest(message("m1", "ada", "Hello"), NOW).await;
    let dir = store.dir;
    drop(store.service);
    drop(store.store);
    drop(store.queries);
    let (_, queries) = testing::open(&dir).await;
    let filter = ConversationFilter {
        team: None,
        statuses: vec![],
        assignee: AssigneeFilter::Anyone,
        inbox: None,
    };
    let page = queries.conversations(&filter, None, 10).await.unwrap();
    assert_eq!(page.conversations.len(), 1);
    assert_eq!(page.conversations[0].last_message.as_ref().unwrap().text, "Hello");
}

#[tokio::test]
async fn a_unit_of_work_that_fails_leaves_no_trace() {
    let store = shop().await;
    let shop = store.shop.clone();
    let failed: Result<(), DeskError> = store
        .store
        .unit(move |tx| {
            let contact = ContactRecord {
                contact_id: 0,
                identity_id: 0,
                name: Some("Half".into()),
                email: None,
                language: None,
                metadata: BTreeMap::new(),
                unreachable: false,
            };
            let id = tx.insert_contact(&contact, NOW)?;
            tx.insert_identity(id, &shop, "half", NOW)?;
            Err(DeskError::Conflict("refused after writing".into()))
        })
        .await;
    assert!(matches!(failed, Err(DeskError::Conflict(_))));
    let shop_id = store.shop.id;
    let found = store.store.unit(move |tx| tx.identity(shop_id, "half")).await.unwrap();
    assert_eq!(found, None, "the contact written before the refusal is gone");
}

#[tokio::test]
async fn units_run_in_order_each_seeing_the_ones_before() {
    let store = shop().await;
    let first = store.context(NOW);
    let second = store.context(NOW + 1);
    let outcomes = store
        .service
        .ingest_in_order(vec![
            (first, message("m1", "ada", "Hello")),
            (second, message("m2", "ada", "Are you there?")),
        ])
        .await;
    let ids: Vec<i64> = outcomes.iter().map(|o| o.as_ref().unwrap().conversation_id).collect();
    assert_eq!(
        ids[0], ids[1],
        "the second message joined the conversation the first opened"
    );
    assert!(outcomes[0].as_ref().unwrap().created_conversation);
    assert!(!outcomes[1].as_ref().unwrap().created_conversation);
}

#[tokio::test]
async fn a_message_delivered_twice_is_stored_once() {
    let store = shop().await;
    let first = store.ingest(message("m1", "ada", "Hello"), NOW).await;
    let again = store.ingest(message("m1", "ada", "Hello"), NOW + 5).await;
    assert!(!first.duplicate && again.duplicate);
    assert_eq!(
        (again.conversation_id, again.message_id),
        (first.conversation_id, first.message_id)
    );
    let detail = store.queries.conversation(first.conversation_id).await.unwrap();
    let inbound = detail
        .messages
        .iter()
        .filter(|m| m.external_id.as_deref() == Some("m1"));
    assert_eq!(inbound.count(), 1);
}

#[tokio::test]
async fn lookups_find_only_the_contacts_own_conversations() {
    let store = shop().await;
    let mut keyed = message("m1", "ada", "Order 7");
    keyed.thread = Some("order-7".into());
    let ada = store.ingest(keyed, NOW).await;
    let bob = store.ingest(message("m2", "bob", "Hi"), NOW).await;
    let shop = store.shop.id;
    let (ada_contact, bob_contact) = store
        .store
        .unit(move |tx| {
            let ada = tx.identity(shop, "ada")?.unwrap().contact_id;
            let bob = tx.identity(shop, "bob")?.unwrap().contact_id;
            Ok::<_, StoreError>((ada, bob))
        })
        .await
        .unwrap();
    let (by_key, theirs, unthreaded) = store
        .store
        .unit(move |tx| {
            let by_key = tx.find_conversation(ConversationLookup::ThreadKey {
                contact_id: ada_contact,
                inbox_id: shop,
                key: "order-7",
            })?;
            let theirs = tx.find_conversation(ConversationLookup::Own {
                id: ada.conversation_id,
                contact_id: bob_contact,
                inbox_id: shop,
            })?;
            let unthreaded = tx.find_conversation(ConversationLookup::OpenUnthreaded {
                contact_id: bob_contact,
                inbox_id: shop,
            })?;
            Ok::<_, StoreError>((by_key, theirs, unthreaded))
        })
        .await
        .unwrap();
    assert_eq!(
        by_key.map(|c| (c.id, c.status)),
        Some((ada.conversation_id, Status::Open))
    );
    assert_eq!(theirs, None, "another contact's conversation is never theirs");
    assert_eq!(unthreaded.map(|c| c.id), Some(bob.conversation_id));
}

#[tokio::test]
async fn a_patch_writes_only_what_it_names() {
    let store = shop().await;
    let mut german = message("m1", "ada", "Hallo");
    german.language = Some("de".into());
    let opened = store.ingest(german, NOW).await;
    let id = opened.conversation_id;
    store
        .store
        .unit(move |tx| {
            let patch = ConversationPatch {
                priority: Some(Priority::High),
                language_if_unset: Some("en".into()),
                ..ConversationPatch::default()
            };
            tx.update_conversation(id, &patch)
        })
        .await
        .unwrap();
    let detail = store.queries.conversation(id).await.unwrap();
    let summary = &detail.conversation;
    assert_eq!(summary.priority, Priority::High);
    assert_eq!(summary.language.as_deref(), Some("de"), "a language already set stays");
    assert_eq!(summary.status, Status::Open, "what the patch did not name is unchanged");
}

/// Three customers of the shop, each with an acknowledgement queued for its callback.
async fn three_acknowledgements() -> TestStore {
    let store = shop().await;
    for customer in ["ada", "bob", "cy"] {
        store.ingest(message(customer, customer, "Hello"), NOW).await;
    }
    store
}

#[tokio::test]
async fn a_claim_gives_each_destination_its_room_and_none_to_a_held_one() {
    let store = three_acknowledgements().await;
    let shop = store.shop.id;
    assert!(
        claim(&store, NOW, 10, plan(vec![shop], vec![], 16)).await.is_empty(),
        "paused"
    );
    assert_eq!(
        claim(&store, NOW, 10, plan(vec![], vec![(shop, 1)], 16)).await.len(),
        1,
        "probing"
    );
    assert_eq!(claim(&store, NOW, 10, plan(vec![], vec![], 1)).await.len(), 1);
    assert_eq!(claim(&store, NOW, 10, plan(vec![], vec![], 16)).await.len(), 1);
    assert!(
        claim(&store, NOW, 10, plan(vec![], vec![], 16)).await.is_empty(),
        "all three in flight"
    );
}

#[tokio::test]
async fn a_conversations_messages_are_claimed_one_at_a_time_in_order() {
    let store = shop().await;
    let opened = store.ingest(message("m1", "ada", "Hello"), NOW).await;
    let reply = crate::domain::lifecycle::NewAgentMessage {
        conversation_id: opened.conversation_id,
        agent_id: store.agent("ana").await,
        text: "Hi Ada".into(),
        private: false,
        attachments: vec![],
        now: NOW + 1,
        expires_at: NOW + 60_000,
    };
    store.service.add_agent_message(reply).await.unwrap();
    let first = claim(&store, NOW + 2, 10, plan(vec![], vec![], 16)).await;
    assert_eq!(first.len(), 1, "the reply waits behind the acknowledgement");
    assert_eq!(
        first[0].message.kind,
        switchboard_connector_core::OutboundKind::StatusUpdate
    );
    assert!(claim(&store, NOW + 2, 10, plan(vec![], vec![], 16)).await.is_empty());
    record(
        &store,
        first[0].outbox_id,
        DeliveryResult::Sent(Receipt::default()),
        NOW + 3,
    )
    .await;
    let second = claim(&store, NOW + 3, 10, plan(vec![], vec![], 16)).await;
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].message.text, "Hi Ada");
    assert_eq!(second[0].attempts, 1);
}

#[tokio::test]
async fn a_lease_released_puts_the_row_back_and_its_next_claim_counts_another_attempt() {
    let store = three_acknowledgements().await;
    let claimed = claim(&store, NOW, 1, plan(vec![], vec![], 16)).await;
    assert_eq!(claimed[0].attempts, 1);
    let released = store
        .store
        .unit(move |tx| tx.release_deliveries(NOW + 1))
        .await
        .unwrap();
    assert_eq!(released, 1);
    let again = claim(&store, NOW + 1, 1, plan(vec![], vec![], 16)).await;
    assert_eq!((again[0].outbox_id, again[0].attempts), (claimed[0].outbox_id, 2));
}

#[tokio::test]
async fn a_delivery_is_settled_once_and_a_retry_waits_for_its_time() {
    let store = three_acknowledgements().await;
    let claimed = claim(&store, NOW, 3, plan(vec![], vec![], 16)).await;
    let (sent, retried, failed) = (claimed[0].outbox_id, claimed[1].outbox_id, claimed[2].outbox_id);
    record(&store, sent, DeliveryResult::Sent(Receipt::default()), NOW + 1).await;
    // A second word on a settled row changes nothing.
    let late = DeliveryResult::Failed { error: "late".into() };
    record(&store, sent, late, NOW + 2).await;
    let retry = DeliveryResult::RetryAt {
        at: NOW + 5_000,
        error: "HTTP 503".into(),
    };
    record(&store, retried, retry, NOW + 1).await;
    let gone = DeliveryResult::Failed {
        error: "HTTP 400".into(),
    };
    record(&store, failed, gone, NOW + 1).await;
    let status = |id| {
        let queries = Arc::clone(&store.queries);
        async move { queries.delivery(id).await.unwrap() }
    };
    assert_eq!(status(sent).await.status, DeliveryStatus::Sent);
    assert_eq!(status(failed).await.status, DeliveryStatus::Failed);
    assert_eq!(status(failed).await.last_error.as_deref(), Some("HTTP 400"));
    assert!(claim(&store, NOW + 4_999, 3, plan(vec![], vec![], 16)).await.is_empty());
    assert_eq!(store.store.next_delivery_due(&[]).await.unwrap(), Some(NOW + 5_000));
    let due = claim(&store, NOW + 5_000, 3, plan(vec![], vec![], 16)).await;
    assert_eq!(
        due.iter().map(|d| (d.outbox_id, d.attempts)).collect::<Vec<_>>(),
        [(retried, 2)]
    );
}

#[tokio::test]
async fn clocks_fall_due_in_order_of_their_next_moment() {
    let store = three_acknowledgements().await;
    let conversations: Vec<i64> = vec![1, 2, 3];
    let clock = |due_at: i64| SlaClock {
        kind: ClockKind::FirstResponse,
        state: ClockState::Running,
        target_ms: 3_600_000,
        warn_ms: None,
        elapsed_ms: 0,
        running_since: Some(NOW),
        started_at: NOW,
        stopped_at: None,
        warn_at: None,
        due_at: Some(due_at),
        warned_at: None,
        breached_at: None,
    };
    let clocks = [clock(NOW + 300), clock(NOW + 100), clock(NOW + 200)];
    store
        .store
        .unit(move |tx| {
            for (conversation, clock) in conversations.iter().zip(&clocks) {
                tx.save_clock(*conversation, clock)?;
            }
            Ok::<_, StoreError>(())
        })
        .await
        .unwrap();
    assert_eq!(store.store.next_sla_fire().await.unwrap(), Some(NOW + 100));
    let due = store.store.unit(|tx| tx.due_clocks(NOW + 250, 10)).await.unwrap();
    assert_eq!(due, [(2, ClockKind::FirstResponse), (3, ClockKind::FirstResponse)]);
    let saved = store.store.unit(|tx| tx.clocks(2)).await.unwrap();
    let first_response = saved.iter().find(|clock| clock.kind == ClockKind::FirstResponse);
    assert_eq!(
        first_response,
        Some(&clock(NOW + 100)),
        "a clock reads back as it was saved"
    );
}

#[tokio::test]
async fn subscribers_are_told_in_order_per_conversation_and_a_disabled_one_nothing_more() {
    let store = shop().await;
    let admin = store.agent("ada-admin").await;
    let subscription = store
        .service
        .create_subscription(
            NewSubscription {
                url: "http://crm.example/hooks".into(),
                events: vec!["conversation.created".into(), "message.created".into()],
                secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
                description: None,
                created_by: admin,
            },
            NOW,
        )
        .await
        .unwrap();
    store.ingest(message("m1", "ada", "Hello"), NOW).await;
    let claim_events = |now: i64| {
        let store = Arc::clone(&store.store);
        async move {
            store
                .unit(move |tx| tx.claim_events(now, 10, now + 60_000, &[]))
                .await
                .unwrap()
        }
    };
    let first = claim_events(NOW + 1).await;
    assert_eq!(
        first.iter().map(|d| d.event_type.as_str()).collect::<Vec<_>>(),
        ["conversation.created"],
        "the conversation's later events wait behind its first"
    );
    let payload: serde_json::Value = serde_json::from_slice(&first[0].payload).unwrap();
    assert_eq!(payload["type"], json!("conversation.created"));
    assert!(claim_events(NOW + 1).await.is_empty());
    let sent = DeliveryResult::Sent(Receipt::default());
    let id = first[0].id;
    store
        .store
        .unit(move |tx| deliveries::record_event(tx, id, &sent, None, NOW + 2))
        .await
        .unwrap();
    let next = claim_events(NOW + 2).await;
    assert!(next.iter().all(|d| d.event_type == "message.created") && !next.is_empty());
    // Disabled: what waits is dropped, a ping still goes.
    store
        .service
        .set_subscription_active(subscription.id, false, NOW + 3)
        .await
        .unwrap();
    store.ingest(message("m2", "bob", "Hi"), NOW + 3).await;
    store.service.ping_subscription(subscription.id, NOW + 4).await.unwrap();
    let after = claim_events(NOW + 5).await;
    assert_eq!(
        after.iter().map(|d| d.event_type.as_str()).collect::<Vec<_>>(),
        ["ping"]
    );
}
