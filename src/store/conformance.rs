//! The store suite: what every backend must do, run against the one
//! `SWITCHBOARD_TEST_STORE` names (`sqlite` by default; CI runs it so). A new backend
//! passes these before any rule runs on it: migrations from an empty database, units of
//! work that apply whole or not at all and in order, the dedupe key, threading lookups
//! that never cross contacts, patches that write only what they name, the outbox's claims
//! under leases and per-destination room, deliveries settled once, clocks falling due,
//! event deliveries claimed in order per subscription and conversation.
//!
//! Written against [`Store`], [`Tx`] and [`Queries`](crate::query::Queries) alone: the
//! rules above them have tests of their own.

use std::sync::Arc;

use super::testing::{self, Seeded, TestStore};
use super::*;
use crate::model::clock::{ClockKind, ClockState, SlaClock};
use crate::model::{ActorKind, DeliveryStatus, Direction, MessageKind, Priority, Status};
use crate::query::{ConversationFilter, Visibility};

const NOW: i64 = 1_800_000_000_000;

fn plan(held: Vec<i64>, budgets: Vec<(i64, u32)>, cap: u32) -> ClaimPlan {
    ClaimPlan {
        held,
        budgets: budgets.into_iter().collect(),
        cap,
    }
}

/// The daemon the claims of these tests are made for, unless they name another.
const HOLDER: &str = "daemon-a";
/// How long their leases last.
const LEASED_FOR: i64 = 60_000;

async fn claim(store: &TestStore, now: i64, limit: u32, plan: ClaimPlan) -> Vec<Delivery> {
    claim_as(store, HOLDER, now, limit, plan).await
}

async fn claim_as(store: &TestStore, holder: &'static str, now: i64, limit: u32, plan: ClaimPlan) -> Vec<Delivery> {
    store
        .store
        .unit(move |tx| {
            let lease = Lease {
                holder,
                until: now + LEASED_FOR,
            };
            tx.claim_deliveries(now, limit, lease, &plan)
        })
        .await
        .unwrap()
}

async fn settle(store: &TestStore, id: i64, settlement: Settlement<'static>, now: i64) -> Option<OutboxRow> {
    store
        .store
        .unit(move |tx| tx.settle_delivery(id, settlement, now))
        .await
        .unwrap()
}

fn everything() -> ConversationFilter {
    ConversationFilter::visible_to(Visibility::All)
}

#[tokio::test]
async fn a_new_database_is_migrated_and_opening_it_again_keeps_what_it_holds() {
    let store = testing::with_shop().await;
    store.converse("ada", "Hello", None, NOW).await;
    let TestStore {
        dir, store, queries, ..
    } = store;
    drop((store, queries));
    let (_, queries) = testing::open(&dir).await;
    let page = queries.conversations(&everything(), None, 10).await.unwrap();
    assert_eq!(page.conversations.len(), 1);
    assert_eq!(page.conversations[0].contact.external_id, "ada");
}

#[tokio::test]
async fn a_unit_of_work_that_fails_leaves_no_trace() {
    let store = testing::with_shop().await;
    let shop = store.shop.clone();
    let failed: Result<(), StoreError> = store
        .store
        .unit(move |tx| {
            let contact = ContactRecord {
                name: Some("Half".into()),
                ..testing::blank_contact()
            };
            let id = tx.insert_contact(&contact, NOW)?;
            tx.insert_identity(id, &shop, "half", NOW)?;
            Err(StoreError::NotFound("what the unit wanted"))
        })
        .await;
    assert!(matches!(failed, Err(StoreError::NotFound(_))));
    let shop_id = store.shop.id;
    let found = store.store.unit(move |tx| tx.identity(shop_id, "half")).await.unwrap();
    assert_eq!(found, None, "the contact written before the failure is gone");
}

#[tokio::test]
async fn units_run_in_order_each_seeing_the_ones_before() {
    let store = testing::with_shop().await;
    let shop = store.shop.clone();
    let shop_id = shop.id;
    type Unit = Box<dyn Fn(&mut dyn Tx) -> StoreResult<Option<i64>> + Send>;
    let works: Vec<Unit> = vec![
        Box::new(move |tx| {
            let id = tx.insert_contact(&testing::blank_contact(), NOW)?;
            Ok(Some(tx.insert_identity(id, &shop, "ada", NOW)?))
        }),
        Box::new(move |tx| Ok(tx.identity(shop_id, "ada")?.map(|found| found.identity_id))),
    ];
    let results = store.store.units_in_order(works.into_iter()).await;
    let inserted = results[0].as_ref().unwrap();
    assert!(inserted.is_some());
    assert_eq!(
        results[1].as_ref().unwrap(),
        inserted,
        "the second unit sees the first's identity"
    );
}

#[tokio::test]
async fn a_second_message_with_a_known_channel_id_is_a_conflict_and_the_first_is_found() {
    let store = testing::with_shop().await;
    let seeded = store.converse("ada", "Hello", None, NOW).await;
    let (shop, conversation) = (store.shop.id, seeded.conversation_id);
    let found = store
        .store
        .unit(move |tx| tx.message_by_external_id(shop, &format!("ada-{NOW}")))
        .await
        .unwrap();
    assert_eq!(
        found.map(|m| (m.id, m.conversation_id)),
        Some((seeded.message_id, conversation))
    );
    let again = store
        .store
        .unit(move |tx| {
            let external_id = format!("ada-{NOW}");
            let message = NewMessage {
                conversation_id: conversation,
                inbox_id: shop,
                direction: crate::model::Direction::Inbound,
                kind: crate::model::MessageKind::Message,
                author_kind: crate::model::ActorKind::Contact,
                author_id: None,
                text: "Hello",
                html: None,
                external_id: Some(&external_id),
                language: None,
                metadata: None,
            };
            tx.insert_message(&message, NOW + 1)
        })
        .await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
}

#[tokio::test]
async fn lookups_find_only_the_contacts_own_conversations() {
    let store = testing::with_shop().await;
    let ada = store.converse("ada", "Order 7", None, NOW).await;
    let bob = store.converse("bob", "Hi", None, NOW).await;
    let shop = store.shop.id;
    let (theirs, own, open) = store
        .store
        .unit(move |tx| {
            let theirs = tx.find_conversation(ConversationLookup::Own {
                id: ada.conversation_id,
                contact_id: bob.contact_id,
                inbox_id: shop,
            })?;
            let own = tx.find_conversation(ConversationLookup::Own {
                id: ada.conversation_id,
                contact_id: ada.contact_id,
                inbox_id: shop,
            })?;
            let open = tx.find_conversation(ConversationLookup::OpenUnthreaded {
                contact_id: bob.contact_id,
                inbox_id: shop,
            })?;
            Ok::<_, StoreError>((theirs, own, open))
        })
        .await
        .unwrap();
    assert_eq!(theirs, None, "another contact's conversation is never theirs");
    assert_eq!(own.map(|c| (c.id, c.status)), Some((ada.conversation_id, Status::Open)));
    assert_eq!(open.map(|c| c.id), Some(bob.conversation_id));
}

#[tokio::test]
async fn an_auto_replys_lookup_takes_a_live_or_recently_resolved_conversation_of_the_contacts_own() {
    let store = testing::with_shop().await;
    let ada = store.converse("ada", "Order 7", None, NOW).await;
    // Bob's open conversation is the inbox's latest: it is never Ada's.
    store.converse("bob", "Hi", None, NOW + 5).await;
    let shop = store.shop.id;
    let found = store
        .store
        .unit(move |tx| {
            let latest = |tx: &mut dyn Tx, contact_id: i64, resolved_since: i64| {
                tx.find_conversation(ConversationLookup::LatestLive {
                    contact_id,
                    inbox_id: shop,
                    resolved_since,
                })
                .map(|found| found.map(|c| (c.id, c.status)))
            };
            let open = latest(tx, ada.contact_id, NOW + 100)?;
            let resolved = ConversationPatch {
                status: Some(Status::Resolved),
                resolved_at: Some(Some(NOW + 10)),
                ..ConversationPatch::default()
            };
            tx.update_conversation(ada.conversation_id, &resolved)?;
            let recent = latest(tx, ada.contact_id, NOW + 10)?;
            let old = latest(tx, ada.contact_id, NOW + 11)?;
            let closed = ConversationPatch {
                status: Some(Status::Closed),
                ..ConversationPatch::default()
            };
            tx.update_conversation(ada.conversation_id, &closed)?;
            let gone = latest(tx, ada.contact_id, 0)?;
            Ok::<_, StoreError>((open, recent, old, gone))
        })
        .await
        .unwrap();
    let (open, recent, old, gone) = found;
    assert_eq!(open, Some((ada.conversation_id, Status::Open)), "open, however old");
    assert_eq!(recent, Some((ada.conversation_id, Status::Resolved)));
    assert_eq!(old, None, "resolved before the window");
    assert_eq!(gone, None, "a closed one never, and never Bob's");
}

#[tokio::test]
async fn a_patch_writes_only_what_it_names() {
    let store = testing::with_shop().await;
    let id = store.converse("ada", "Hallo", None, NOW).await.conversation_id;
    let patch = |patch: ConversationPatch| {
        let store = Arc::clone(&store.store);
        async move { store.unit(move |tx| tx.update_conversation(id, &patch)).await.unwrap() }
    };
    patch(ConversationPatch {
        language_if_unset: Some("de".into()),
        ..ConversationPatch::default()
    })
    .await;
    patch(ConversationPatch {
        priority: Some(Priority::High),
        language_if_unset: Some("en".into()),
        ..ConversationPatch::default()
    })
    .await;
    let summary = store.queries.conversation(id).await.unwrap().conversation;
    assert_eq!(summary.priority, Priority::High);
    assert_eq!(summary.language.as_deref(), Some("de"), "a language already set stays");
    assert_eq!(summary.status, Status::Open, "what the patch did not name is unchanged");
    let loaded = store.store.unit(move |tx| tx.conversation(id)).await.unwrap().unwrap();
    assert_eq!((loaded.priority, loaded.status), (Priority::High, Status::Open));
}

/// Three customers of the shop, each with a reply queued for its callback.
async fn three_replies() -> TestStore {
    let store = testing::with_shop().await;
    for customer in ["ada", "bob", "cy"] {
        store.converse(customer, "Hello", Some("Hi"), NOW).await;
    }
    store
}

#[tokio::test]
async fn a_claim_gives_each_destination_its_room_and_none_to_a_held_one() {
    let store = three_replies().await;
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
    let store = testing::with_shop().await;
    let seeded = store.converse("ada", "Hello", Some("First"), NOW).await;
    let (shop, conversation) = (store.shop.id, seeded.conversation_id);
    store
        .store
        .unit(move |tx| {
            let second = NewMessage {
                conversation_id: conversation,
                inbox_id: shop,
                direction: crate::model::Direction::Outbound,
                kind: crate::model::MessageKind::Reply,
                author_kind: crate::model::ActorKind::System,
                author_id: None,
                text: "Second",
                html: None,
                external_id: None,
                language: None,
                metadata: None,
            };
            let id = tx.insert_message(&second, NOW)?;
            tx.insert_outbox(id, conversation, shop, NOW, NOW + 60_000)
        })
        .await
        .unwrap();
    let first = claim(&store, NOW, 10, plan(vec![], vec![], 16)).await;
    assert_eq!(
        first.iter().map(|d| d.message.text.as_str()).collect::<Vec<_>>(),
        ["First"]
    );
    assert!(
        claim(&store, NOW, 10, plan(vec![], vec![], 16)).await.is_empty(),
        "the second waits"
    );
    settle(
        &store,
        first[0].outbox_id,
        Settlement::Sent {
            receipt: "{}",
            external_id: None,
        },
        NOW + 1,
    )
    .await;
    let second = claim(&store, NOW + 1, 10, plan(vec![], vec![], 16)).await;
    assert_eq!(
        second.iter().map(|d| d.message.text.as_str()).collect::<Vec<_>>(),
        ["Second"]
    );
    assert_eq!(second[0].attempts, 1);
    assert_eq!(second[0].message.recipient, "ada");
}

#[tokio::test]
async fn a_lease_released_puts_the_row_back_and_its_next_claim_counts_another_attempt() {
    let store = three_replies().await;
    let claimed = claim(&store, NOW, 1, plan(vec![], vec![], 16)).await;
    assert_eq!(claimed[0].attempts, 1);
    let released = store
        .store
        .unit(|tx| tx.release_deliveries(i64::MAX, NOW + 1))
        .await
        .unwrap();
    assert_eq!(released, 1);
    let again = claim(&store, NOW + 1, 1, plan(vec![], vec![], 16)).await;
    assert_eq!((again[0].outbox_id, again[0].attempts), (claimed[0].outbox_id, 2));
}

#[tokio::test]
async fn a_renewed_lease_is_kept_and_one_that_ran_out_is_taken_over() {
    let store = testing::with_shop().await;
    for customer in ["ada", "bob"] {
        store.converse(customer, "Hello", Some("Reply"), NOW).await;
    }
    let of_a = claim_as(&store, "daemon-a", NOW, 1, plan(vec![], vec![], 16)).await;
    let of_b = claim_as(&store, "daemon-b", NOW, 1, plan(vec![], vec![], 16)).await;
    assert_eq!((of_a.len(), of_b.len()), (1, 1));
    // Daemon a lives and renews; daemon b died: its lease runs out.
    let renewed = store
        .store
        .unit(|tx| {
            tx.renew_deliveries(Lease {
                holder: "daemon-a",
                until: NOW + 2 * LEASED_FOR,
            })
        })
        .await
        .unwrap();
    assert_eq!(renewed, 1);
    let later = NOW + LEASED_FOR + 1;
    let released = store
        .store
        .unit(move |tx| tx.release_deliveries(later, later))
        .await
        .unwrap();
    assert_eq!(released, 1, "only the lease that ran out");
    let taken_over = claim_as(&store, "daemon-a", later, 10, plan(vec![], vec![], 16)).await;
    assert_eq!(
        taken_over.iter().map(|d| (d.outbox_id, d.attempts)).collect::<Vec<_>>(),
        [(of_b[0].outbox_id, 2)]
    );
    // The live daemon's send still settles as its own.
    let settled = settle(
        &store,
        of_a[0].outbox_id,
        Settlement::Sent {
            receipt: "{}",
            external_id: None,
        },
        later,
    )
    .await;
    assert!(settled.is_some());
}

#[tokio::test]
async fn a_claim_given_back_unsent_counts_no_attempt_and_waits_for_its_time() {
    let store = three_replies().await;
    let claimed = claim(&store, NOW, 1, plan(vec![], vec![], 16)).await;
    let id = claimed[0].outbox_id;
    let back = settle(
        &store,
        id,
        Settlement::Unclaimed {
            not_before: NOW + 30_000,
        },
        NOW + 1,
    )
    .await;
    assert_eq!(
        back.map(|row| (row.status, row.attempts)),
        Some((DeliveryStatus::Scheduled, 0))
    );
    let early = claim(&store, NOW + 29_999, 3, plan(vec![], vec![], 16)).await;
    assert!(early.iter().all(|d| d.outbox_id != id), "it waits out the pause");
    let later = claim(&store, NOW + 30_000, 3, plan(vec![], vec![], 16)).await;
    let again = later
        .iter()
        .find(|d| d.outbox_id == id)
        .expect("claimable once the pause is over");
    assert_eq!(again.attempts, 1, "the unsent claim did not count");
}

#[tokio::test]
async fn a_delivery_is_settled_once_and_a_retry_waits_for_its_time() {
    let store = three_replies().await;
    let claimed = claim(&store, NOW, 3, plan(vec![], vec![], 16)).await;
    let (sent, retried, failed) = (claimed[0].outbox_id, claimed[1].outbox_id, claimed[2].outbox_id);
    assert!(
        settle(
            &store,
            sent,
            Settlement::Sent {
                receipt: "{}",
                external_id: None,
            },
            NOW + 1
        )
        .await
        .is_some()
    );
    let late = Settlement::Failed { error: "late" };
    assert_eq!(
        settle(&store, sent, late, NOW + 2).await,
        None,
        "a settled row stays settled"
    );
    let retry = Settlement::RetryAt {
        at: NOW + 5_000,
        error: "HTTP 503",
    };
    // The attempt got two of the message's parts out; a late, smaller count changes
    // nothing.
    store
        .store
        .unit(move |tx| {
            tx.set_parts_sent(retried, 2)?;
            tx.set_parts_sent(retried, 1)
        })
        .await
        .unwrap();
    settle(&store, retried, retry, NOW + 1).await;
    let gone = settle(&store, failed, Settlement::Failed { error: "HTTP 400" }, NOW + 1).await;
    assert_eq!(
        gone.map(|row| (row.status, row.attempts)),
        Some((DeliveryStatus::Failed, 1))
    );
    assert_eq!(store.queries.delivery(sent).await.unwrap().status, DeliveryStatus::Sent);
    assert_eq!(
        store.queries.delivery(failed).await.unwrap().last_error.as_deref(),
        Some("HTTP 400")
    );
    assert!(claim(&store, NOW + 4_999, 3, plan(vec![], vec![], 16)).await.is_empty());
    let after = store.store.unit(|tx| tx.next_delivery_after(NOW + 1)).await.unwrap();
    assert_eq!(after, Some(NOW + 5_000), "the retry is the next row due");
    let due = claim(&store, NOW + 5_000, 3, plan(vec![], vec![], 16)).await;
    assert_eq!(
        due.iter()
            .map(|d| (d.outbox_id, d.attempts, d.message.parts_sent))
            .collect::<Vec<_>>(),
        [(retried, 2, 2)],
        "the retry starts after the parts that went"
    );
}

#[tokio::test]
async fn a_channels_reports_move_a_sent_message_forward_only_and_a_failure_fails_it() {
    use switchboard_connector_core::{DeliveryReport, DeliveryState};

    let store = three_replies().await;
    let claimed = claim(&store, NOW, 3, plan(vec![], vec![], 16)).await;
    let (read, failed, skipped) = (&claimed[0], &claimed[1], claimed[2].outbox_id);
    let inbox = read.inbox_id;
    for (row, wamid) in [(read.outbox_id, "wamid.READ"), (failed.outbox_id, "wamid.FAILED")] {
        let sent = Settlement::Sent {
            receipt: "{}",
            external_id: Some(wamid),
        };
        settle(&store, row, sent, NOW + 1).await.unwrap();
    }
    let not_owed = Settlement::Skipped {
        reason: "no template for csat.requested in en",
    };
    let row = settle(&store, skipped, not_owed, NOW + 1).await.unwrap();
    assert_eq!(row.status, DeliveryStatus::Skipped);
    let kept = store.queries.delivery(skipped).await.unwrap();
    assert_eq!(kept.last_error.as_deref(), Some("no template for csat.requested in en"));

    let report = |external_id: &'static str, state: DeliveryState| {
        let report = DeliveryReport {
            external_id: external_id.into(),
            state,
            error: None,
            at_ms: Some(NOW),
        };
        let store = store.store.clone();
        async move {
            store
                .unit(move |tx| tx.record_delivery_report(inbox, &report, NOW + 2))
                .await
                .unwrap()
        }
    };
    assert!(report("wamid.READ", DeliveryState::Read).await);
    assert!(
        !report("wamid.READ", DeliveryState::Delivered).await,
        "delivered after read"
    );
    assert!(!report("wamid.READ", DeliveryState::Sent).await);
    // A report on a message whose send is not recorded (yet) is kept for when it is.
    assert!(report("wamid.UNKNOWN", DeliveryState::Delivered).await);

    let fail = |external_id: &'static str| {
        let store = store.store.clone();
        async move {
            store
                .unit(move |tx| tx.fail_sent_delivery(inbox, external_id, "131026 undeliverable", NOW + 3))
                .await
                .unwrap()
        }
    };
    let row = fail("wamid.FAILED").await.expect("the sent row fails");
    assert_eq!((row.id, row.status), (failed.outbox_id, DeliveryStatus::Failed));
    assert_eq!(fail("wamid.FAILED").await, None, "failed once");
    assert_eq!(fail("wamid.UNKNOWN").await, None, "no sent row holds it");

    // A failure the channel reported is found from the row its send recorded, for the
    // send that is recorded after the report.
    let reported = |outbox_id: i64| {
        let store = store.store.clone();
        async move { store.unit(move |tx| tx.reported_failure(outbox_id)).await.unwrap() }
    };
    assert_eq!(reported(read.outbox_id).await, None, "read is no failure");
    assert_eq!(reported(skipped).await, None, "a skipped row has no channel id");
    assert!(report("wamid.FAILED", DeliveryState::Failed).await);
    assert_eq!(reported(failed.outbox_id).await, Some(None), "failed, without an error");

    let detail = store.queries.conversation(read.message.conversation_id).await.unwrap();
    let message = detail
        .messages
        .iter()
        .find(|message| message.id == read.message.message_id)
        .unwrap();
    let delivery = message.delivery.as_ref().unwrap();
    assert_eq!(
        (delivery.status, delivery.channel_state.as_deref()),
        (DeliveryStatus::Sent, Some("read"))
    );
}

#[tokio::test]
async fn a_claim_says_whether_the_channels_reply_window_is_still_open() {
    let store = testing::with_shop().await;
    let support = store.support;
    let day = 24 * 60 * 60 * 1000;
    store
        .store
        .unit(move |tx| {
            // WhatsApp carries free-form messages for 24 hours after the customer's last.
            let whatsapp = crate::channels::kind("whatsapp").expect("WhatsApp is registered");
            let wa = testing::inbox(tx, "wa", "WhatsApp", whatsapp)?;
            testing::converse(
                tx,
                &wa,
                support,
                "4915100000001",
                "Hello",
                Some("Hi"),
                NOW - day + 60_000,
            )?;
            testing::converse(
                tx,
                &wa,
                support,
                "4915100000002",
                "Hello",
                Some("Hi"),
                NOW - day - 60_000,
            )?;
            Ok::<_, StoreError>(())
        })
        .await
        .unwrap();
    let claimed = claim(&store, NOW, 10, plan(vec![], vec![], 16)).await;
    let mut windows: Vec<(String, bool)> = claimed
        .iter()
        .map(|delivery| (delivery.message.recipient.clone(), delivery.message.window_open))
        .collect();
    windows.sort();
    assert_eq!(
        windows,
        [("4915100000001".into(), true), ("4915100000002".into(), false)]
    );
}

#[tokio::test]
async fn clocks_fall_due_in_order_of_their_next_moment() {
    let store = three_replies().await;
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
    let clocks = [(1, clock(NOW + 300)), (2, clock(NOW + 100)), (3, clock(NOW + 200))];
    store
        .store
        .unit(move |tx| {
            for (conversation, clock) in &clocks {
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
    assert_eq!(saved, [clock(NOW + 100)], "a clock reads back as it was saved");
}

#[tokio::test]
async fn the_queue_head_comes_with_its_members_languages_and_each_ones_language_and_wait() {
    let store = testing::with_shop().await;
    let ada = store.agent("ada").await;
    let team = store.support;
    let members = store
        .store
        .unit(move |tx| {
            tx.set_agent_languages(ada, &["th".into(), "en".into()])?;
            tx.available_agents(team)
        })
        .await
        .unwrap();
    assert_eq!(
        members
            .iter()
            .map(|member| (member.id, member.languages.clone()))
            .collect::<Vec<_>>(),
        [(ada, vec!["th".to_owned(), "en".to_owned()])]
    );

    // The queue's head, in order, each with its language and since when it waits; and a
    // language wait is a timer like the follow-ups.
    let shop = store.shop.clone();
    let (queue, head, due) = store
        .store
        .unit(move |tx| {
            let mut ids = Vec::new();
            for (n, (language, priority)) in [
                (Some("th"), Priority::Normal),
                (None, Priority::Normal),
                (Some("ar"), Priority::High),
            ]
            .into_iter()
            .enumerate()
            {
                let contact_id = tx.insert_contact(&testing::blank_contact(), NOW)?;
                let identity_id = tx.insert_identity(contact_id, &shop, &format!("c{n}"), NOW)?;
                ids.push(tx.insert_conversation(&NewConversation {
                    inbox_id: shop.id,
                    contact_id,
                    identity_id,
                    thread_key: None,
                    subject: None,
                    priority,
                    team_id: Some(team),
                    tier: 0,
                    labels: &[],
                    language,
                    now: NOW + n as i64,
                })?);
            }
            tx.set_timer(ids[0], "language_wait", NOW + 300_000)?;
            let queue = tx.waiting(team, 10)?;
            let head = tx.waiting(team, 1)?;
            let due = tx.due_timers(NOW + 300_000, 10)?;
            Ok::<_, StoreError>((queue, head, due))
        })
        .await
        .unwrap();
    let seen: Vec<(Option<&str>, i64)> = queue
        .iter()
        .map(|queued| (queued.language.as_deref(), queued.queued_at))
        .collect();
    assert_eq!(
        seen,
        [(Some("ar"), NOW + 2), (Some("th"), NOW), (None, NOW + 1)],
        "urgent first, then oldest"
    );
    assert_eq!(head, queue[..1]);
    assert_eq!(due, [(queue[1].id, "language_wait".to_owned())]);
}

#[tokio::test]
async fn event_deliveries_go_in_order_per_conversation_and_a_disabled_subscription_gets_only_pings() {
    let store = testing::with_shop().await;
    let admin = store.agent("admin").await;
    let ada = store.converse("ada", "Hello", None, NOW).await.conversation_id;
    let subscription = store
        .store
        .unit(move |tx| {
            let id = tx.insert_subscription(
                &NewSubscription {
                    url: "http://crm.example/hooks".into(),
                    events: vec!["conversation.created".into(), "message.created".into()],
                    secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
                    description: None,
                    created_by: admin,
                },
                NOW,
            )?;
            assert_eq!(tx.subscribers()?.iter().map(|s| s.id).collect::<Vec<_>>(), [id]);
            for event in ["conversation.created", "message.created"] {
                tx.queue_event(id, Some(ada), event, &format!("{{\"type\":\"{event}\"}}"), NOW)?;
            }
            Ok::<_, StoreError>(id)
        })
        .await
        .unwrap();
    let claim_events = |now: i64| {
        let store = Arc::clone(&store.store);
        async move {
            let claimed = store
                .unit(move |tx| {
                    let lease = Lease {
                        holder: HOLDER,
                        until: now + LEASED_FOR,
                    };
                    tx.claim_events(now, 10, lease, &[])
                })
                .await
                .unwrap();
            claimed.into_iter().map(|d| (d.id, d.event_type)).collect::<Vec<_>>()
        }
    };
    let first = claim_events(NOW + 1).await;
    assert_eq!(
        first.iter().map(|(_, kind)| kind.as_str()).collect::<Vec<_>>(),
        ["conversation.created"]
    );
    assert!(
        claim_events(NOW + 1).await.is_empty(),
        "the conversation's next event waits"
    );
    let sent = first[0].0;
    let settled = store
        .store
        .unit(move |tx| {
            tx.settle_event(
                sent,
                Settlement::Sent {
                    receipt: "{}",
                    external_id: None,
                },
                NOW + 2,
            )
        })
        .await
        .unwrap();
    assert_eq!(settled, Some(subscription));
    assert_eq!(
        claim_events(NOW + 2)
            .await
            .iter()
            .map(|(_, kind)| kind.as_str())
            .collect::<Vec<_>>(),
        ["message.created"]
    );
    store
        .store
        .unit(move |tx| {
            assert!(tx.disable_subscription(subscription, "the receiver answered 410", NOW + 3)?);
            assert!(
                !tx.disable_subscription(subscription, "again", NOW + 3)?,
                "already disabled"
            );
            tx.queue_event(subscription, Some(ada), "message.created", "{}", NOW + 3)?;
            tx.queue_event(subscription, None, "ping", "{}", NOW + 3)?;
            tx.drop_waiting_events(subscription, Waiting::ExceptPings, "disabled", NOW + 3)
        })
        .await
        .unwrap();
    assert_eq!(
        claim_events(NOW + 4)
            .await
            .iter()
            .map(|(_, kind)| kind.as_str())
            .collect::<Vec<_>>(),
        ["ping"]
    );
    let listed = store.queries.subscription(subscription).await.unwrap();
    assert_eq!(
        (listed.active, listed.disabled_reason.as_deref()),
        (false, Some("the receiver answered 410"))
    );
}

/// Ada's conversation with a file she sent, an event with her words in it, and a reply
/// queued to her; Bob's conversation beside it, holding the same file.
async fn ada_and_bob(store: &TestStore) -> (Seeded, Seeded) {
    let ada = store
        .converse("ada", "Unique phrase zebra-quartz", Some("Hi Ada"), NOW)
        .await;
    let bob = store.converse("bob", "Hello from Bob", None, NOW).await;
    let (ada_message, bob_message, ada_conversation) = (ada.message_id, bob.message_id, ada.conversation_id);
    store
        .store
        .unit(move |tx| {
            let invoice = NewAttachment {
                filename: "invoice.pdf",
                content_type: "application/pdf",
                data: b"%PDF shared bytes",
            };
            let own = NewAttachment {
                filename: "passport.png",
                content_type: "image/png",
                data: b"ada's own bytes",
            };
            tx.insert_attachment(ada_message, invoice, NOW)?;
            tx.insert_attachment(ada_message, own, NOW)?;
            tx.insert_attachment(bob_message, invoice, NOW)?;
            let data = serde_json::json!({"summary": "zebra-quartz", "kind": "functional"});
            tx.insert_event(
                &EventRow {
                    conversation_id: ada_conversation,
                    kind: "conversation.escalated",
                    actor_kind: crate::model::ActorKind::System,
                    actor_id: None,
                    data: &data,
                },
                NOW,
            )
        })
        .await
        .unwrap();
    (ada, bob)
}

#[tokio::test]
async fn an_export_holds_the_contacts_messages_files_and_events_and_nobody_elses() {
    let store = testing::with_shop().await;
    let (ada, _) = ada_and_bob(&store).await;
    let contact = ada.contact_id;
    let export = store
        .store
        .unit(move |tx| tx.contact_export(contact))
        .await
        .unwrap()
        .expect("ada exists");
    assert_eq!(export.contact.id, contact);
    assert_eq!(export.identities.len(), 1);
    assert_eq!(export.identities[0].external_id, "ada");
    assert_eq!(export.conversations.len(), 1, "bob's conversation is not hers");
    let conversation = &export.conversations[0];
    let texts: Vec<&str> = conversation.messages.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["Unique phrase zebra-quartz", "Hi Ada"]);
    let files: Vec<(&str, &[u8])> = conversation.messages[0]
        .attachments
        .iter()
        .map(|a| (a.filename.as_str(), a.data.as_slice()))
        .collect();
    assert_eq!(
        files,
        [
            ("invoice.pdf", &b"%PDF shared bytes"[..]),
            ("passport.png", b"ada's own bytes")
        ]
    );
    assert_eq!(conversation.events.len(), 1);
    assert_eq!(conversation.events[0].data["summary"], "zebra-quartz");
    let nobody = store.store.unit(|tx| tx.contact_export(999_999)).await.unwrap();
    assert_eq!(nobody, None);
}

#[tokio::test]
async fn erasing_leaves_an_anonymous_shell_that_still_counts_and_spares_other_contacts_files() {
    let store = testing::with_shop().await;
    let (ada, bob) = ada_and_bob(&store).await;
    let waiting_before = store.queries.team_counts().await.unwrap()[0].waiting;
    let (contact, conversation) = (ada.contact_id, ada.conversation_id);
    let (erased, identities) = store
        .store
        .unit(move |tx| {
            let erased = tx.erase_conversation_content(conversation, NOW + 1)?;
            Ok::<_, StoreError>((erased, tx.erase_contact_record(contact, NOW + 1)?))
        })
        .await
        .unwrap();
    assert_eq!(
        erased,
        ErasedContent {
            messages: 2,
            attachments: 2,
            queued_dropped: 1,
            event_deliveries_dropped: 0
        }
    );
    assert_eq!(identities, 1);
    assert_eq!(
        store.store.unit(move |tx| tx.contact_erased_at(contact)).await.unwrap(),
        Some(Some(NOW + 1))
    );
    let export = store
        .store
        .unit(move |tx| tx.contact_export(contact))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(export.contact.name, None);
    assert_eq!(
        export.identities[0].external_id,
        format!("erased:{}", export.identities[0].id)
    );
    let shell = &export.conversations[0];
    assert!(shell.erased_at.is_some());
    assert!(
        shell
            .messages
            .iter()
            .all(|m| m.text.is_empty() && m.attachments.is_empty())
    );
    assert_eq!(shell.messages.len(), 2, "the messages stay as counted shells");
    // Nothing of hers is found by her channel id any more, nothing queued leaves to her.
    let shop = store.shop.id;
    assert_eq!(
        store.store.unit(move |tx| tx.identity(shop, "ada")).await.unwrap(),
        None
    );
    assert!(
        claim(&store, NOW + 2, 10, plan(vec![], vec![], 10)).await.is_empty(),
        "her queued reply was dropped"
    );
    assert_eq!(
        store.queries.team_counts().await.unwrap()[0].waiting,
        waiting_before,
        "the open conversation still counts in its team's queue"
    );
    // The file bob also holds stays for him; hers alone is gone.
    let bob_contact = bob.contact_id;
    let bob_export = store
        .store
        .unit(move |tx| tx.contact_export(bob_contact))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        bob_export.conversations[0].messages[0].attachments[0].data,
        b"%PDF shared bytes"
    );
}

#[tokio::test]
async fn reports_go_with_an_erased_conversation_and_unmatched_ones_after_a_while() {
    use switchboard_connector_core::{DeliveryReport, DeliveryState};

    let store = three_replies().await;
    let claimed = claim(&store, NOW, 3, plan(vec![], vec![], 16)).await;
    let inbox = claimed[0].inbox_id;
    for (delivery, wamid) in claimed.iter().zip(["wamid.ADA", "wamid.BOB"]) {
        let sent = Settlement::Sent {
            receipt: "{}",
            external_id: Some(wamid),
        };
        settle(&store, delivery.outbox_id, sent, NOW + 1).await.unwrap();
    }
    let report = |external_id: &'static str, state: DeliveryState, at: i64| {
        let store = store.store.clone();
        let report = DeliveryReport {
            external_id: external_id.into(),
            state,
            error: None,
            at_ms: Some(at),
        };
        async move {
            store
                .unit(move |tx| tx.record_delivery_report(inbox, &report, at))
                .await
                .unwrap()
        }
    };
    // Whether the desk still knows an id it was told `read` of: a `delivered` then
    // changes nothing, and is kept as new for an id it forgot.
    let known = |external_id: &'static str, at: i64| {
        let delivered = report(external_id, DeliveryState::Delivered, at);
        async move { !delivered.await }
    };
    let prune = |before: i64| {
        let store = store.store.clone();
        async move { store.unit(move |tx| tx.prune_delivery_reports(before)).await.unwrap() }
    };
    for wamid in ["wamid.ADA", "wamid.BOB", "wamid.NOT-OURS"] {
        assert!(report(wamid, DeliveryState::Read, NOW + 2).await);
    }
    // Another tool's message, which no send of ours carries, goes once it is older than
    // the cut; ours stay.
    assert_eq!(prune(NOW + 2).await, 0, "nothing is older than the cut");
    assert_eq!(prune(NOW + 3).await, 1);
    assert!(!known("wamid.NOT-OURS", NOW + 4).await);
    assert!(known("wamid.ADA", NOW + 4).await && known("wamid.BOB", NOW + 4).await);

    // Erasing ada's conversation forgets the reports on what was sent to her: the id
    // encodes her number. Bob's stay.
    let ada = claimed[0].message.conversation_id;
    store
        .store
        .unit(move |tx| tx.erase_conversation_content(ada, NOW + 5))
        .await
        .unwrap();
    assert!(!known("wamid.ADA", NOW + 6).await, "ada's report was erased");
    assert!(known("wamid.BOB", NOW + 6).await);
}

#[tokio::test]
async fn retention_finds_finished_conversations_past_the_age_oldest_first_and_not_twice() {
    let store = testing::with_shop().await;
    let old = store.converse("ada", "old", None, NOW).await.conversation_id;
    let older = store.converse("bob", "older", None, NOW).await.conversation_id;
    let open = store.converse("cy", "still open", None, NOW).await.conversation_id;
    let recent = store.converse("dee", "recent", None, NOW).await.conversation_id;
    let resolve = |id: i64, at: i64| {
        let store = Arc::clone(&store.store);
        async move {
            let patch = ConversationPatch {
                status: Some(Status::Resolved),
                resolved_at: Some(Some(at)),
                ..ConversationPatch::default()
            };
            store.unit(move |tx| tx.update_conversation(id, &patch)).await.unwrap()
        }
    };
    resolve(old, NOW + 2_000).await;
    resolve(older, NOW + 1_000).await;
    resolve(recent, NOW + 9_000).await;
    let due = store.store.unit(|tx| tx.retention_due(NOW + 5_000, 10)).await.unwrap();
    let ids: Vec<i64> = due.iter().map(|(id, _)| *id).collect();
    assert_eq!(
        ids,
        [older, old],
        "finished before the age, oldest first; not {open} or {recent}"
    );
    store
        .store
        .unit(move |tx| tx.erase_conversation_content(older, NOW + 6_000))
        .await
        .unwrap();
    let again = store.store.unit(|tx| tx.retention_due(NOW + 5_000, 10)).await.unwrap();
    assert_eq!(again.iter().map(|(id, _)| *id).collect::<Vec<_>>(), [old]);
}

#[tokio::test]
async fn the_audit_trail_takes_a_row_per_action() {
    let store = testing::with_shop().await;
    let contact = store.converse("ada", "hi", None, NOW).await.contact_id;
    let ids = store
        .store
        .unit(move |tx| {
            let details = serde_json::json!({"conversations": 1});
            let record = |action| PrivacyRecord {
                contact_id: contact,
                action,
                actor_kind: crate::model::ActorKind::Agent,
                actor_id: Some(1),
                reason: Some("ticket 7"),
                details: &details,
            };
            Ok::<_, StoreError>((
                tx.insert_privacy_record(&record("export"), NOW)?,
                tx.insert_privacy_record(&record("erase"), NOW)?,
            ))
        })
        .await
        .unwrap();
    assert!(ids.1 > ids.0);
    let other = store.converse("bob", "hi", None, NOW).await.contact_id;
    let details = serde_json::json!({});
    store
        .store
        .unit(move |tx| {
            let record = PrivacyRecord {
                contact_id: other,
                action: "export",
                actor_kind: crate::model::ActorKind::System,
                actor_id: None,
                reason: None,
                details: &details,
            };
            tx.insert_privacy_record(&record, NOW)
        })
        .await
        .unwrap();
    let ada = store.queries.privacy_audit(Some(contact), None, 10).await.unwrap();
    let actions: Vec<&str> = ada.iter().map(|entry| entry.action.as_str()).collect();
    assert_eq!(actions, ["erase", "export"], "hers alone, newest first");
    assert_eq!(ada[0].reason.as_deref(), Some("ticket 7"));
    assert_eq!(ada[0].details["conversations"], 1);
    let all = store.queries.privacy_audit(None, None, 10).await.unwrap();
    assert_eq!(all.len(), 3);
    let older = store.queries.privacy_audit(None, Some(all[0].id), 1).await.unwrap();
    assert_eq!(older[0].id, all[1].id, "a page after the last seen id");
}

#[tokio::test]
async fn sessions_last_until_they_expire_or_their_agent_is_deactivated() {
    let store = testing::with_shop().await;
    let agent = store.agent("ada").await;
    let hash = vec![7u8; 32];
    let stored = hash.clone();
    store
        .store
        .unit(move |tx| {
            let session = NewSession {
                token_hash: &stored,
                agent_id: agent,
                csrf_token: "csrf",
                expires_at: NOW + 1000,
            };
            tx.insert_session(&session, NOW)
        })
        .await
        .unwrap();
    let found = store.queries.session(&hash, NOW).await.unwrap().unwrap();
    assert_eq!((found.agent.id, found.csrf_token.as_str()), (agent, "csrf"));
    assert!(
        store.queries.session(&hash, NOW + 1000).await.unwrap().is_none(),
        "expired"
    );
    assert!(
        store.queries.session(&[1u8; 32], NOW).await.unwrap().is_none(),
        "unknown"
    );

    let changed = store
        .store
        .unit(move |tx| tx.set_agent_active(agent, false))
        .await
        .unwrap();
    assert!(changed);
    assert!(
        store.queries.session(&hash, NOW).await.unwrap().is_none(),
        "deactivated"
    );
    let agents = store.queries.agents().await.unwrap();
    assert!(!agents.iter().find(|a| a.id == agent).unwrap().active);
}

#[tokio::test]
async fn a_new_sign_in_link_replaces_the_unused_ones() {
    let store = testing::with_shop().await;
    let agent = store.agent("ada").await;
    let (first, second) = (vec![1u8; 32], vec![2u8; 32]);
    let hashes = (first, second.clone());
    let (old, new) = store
        .store
        .unit(move |tx| {
            tx.replace_sign_in_link(agent, &hashes.0, NOW + 10, NOW)?;
            tx.replace_sign_in_link(agent, &hashes.1, NOW + 10, NOW)?;
            Ok::<_, StoreError>((tx.sign_in_link(&hashes.0)?, tx.sign_in_link(&hashes.1)?))
        })
        .await
        .unwrap();
    assert_eq!(old, None);
    assert_eq!(
        new,
        Some(SignInLink {
            agent_id: agent,
            expires_at: NOW + 10,
            used_at: None
        })
    );
    let used = store
        .store
        .unit(move |tx| {
            tx.use_sign_in_link(&second, NOW + 1)?;
            tx.sign_in_link(&second)
        })
        .await
        .unwrap();
    assert_eq!(used.unwrap().used_at, Some(NOW + 1));
}

#[tokio::test]
async fn a_named_lease_has_one_holder_until_it_runs_out_or_is_given_up() {
    let store = testing::with_shop().await;
    let take = |holder: &'static str, now: i64| {
        let store = Arc::clone(&store.store);
        async move {
            store
                .unit(move |tx| tx.take_lease("reader:mail", holder, now, now + LEASED_FOR))
                .await
                .unwrap()
        }
    };
    assert!(take("daemon-a", NOW).await);
    assert!(!take("daemon-b", NOW + 1).await, "held by a");
    assert!(take("daemon-a", NOW + 10_000).await, "a renews");
    assert!(
        !take("daemon-b", NOW + LEASED_FOR).await,
        "renewed until NOW + 10 s + the lease"
    );
    let ran_out = NOW + 10_000 + LEASED_FOR + 1;
    assert!(take("daemon-b", ran_out).await, "taken over once it ran out");
    assert!(!take("daemon-a", ran_out + 1).await, "a lost it");
    let give_up = |holder: &'static str| {
        let store = Arc::clone(&store.store);
        async move {
            store
                .unit(move |tx| tx.drop_lease("reader:mail", holder))
                .await
                .unwrap()
        }
    };
    give_up("daemon-a").await;
    assert!(!take("daemon-a", ran_out + 2).await, "only its holder gives a lease up");
    give_up("daemon-b").await;
    assert!(take("daemon-a", ran_out + 3).await, "given up: taken at once");
    let cleared = store.store.unit(|tx| tx.clear_leases()).await.unwrap();
    assert_eq!(cleared, 1);
    assert!(take("daemon-b", ran_out + 4).await, "cleared: taken at once");
}

/// Several daemons write at once on a shared store, and a row can commit after one with a
/// later id. The stream must not pass the earlier row while its transaction runs: a
/// console that resumed from such a position would never show it. SQLite's one writer
/// commits in id order and cannot hold one unit open while another commits.
#[tokio::test]
async fn the_stream_tells_a_row_that_commits_after_a_later_one() {
    use std::sync::{Condvar, Mutex, mpsc};
    use std::time::Duration;

    let store = testing::with_shop().await;
    if store.store.exclusive() {
        return;
    }
    let start = store.queries.stream_head().await.unwrap();
    let gate = Arc::new((Mutex::new(false), Condvar::new()));
    let (inserted, inserted_seen) = mpsc::sync_channel::<i64>(4);
    let (shop, team) = (store.shop.clone(), store.support);
    let held_open = {
        let (store, gate) = (Arc::clone(&store.store), Arc::clone(&gate));
        tokio::spawn(async move {
            store
                .unit(move |tx| {
                    let seeded = testing::converse(tx, &shop, team, "early", "first written", None, NOW)?;
                    let _ = inserted.try_send(seeded.message_id);
                    let (open, released) = &*gate;
                    let deadline = std::time::Instant::now() + Duration::from_secs(30);
                    let mut open = open.lock().unwrap();
                    while !*open && std::time::Instant::now() < deadline {
                        open = released.wait_timeout(open, Duration::from_millis(100)).unwrap().0;
                    }
                    Ok::<_, StoreError>(seeded)
                })
                .await
                .unwrap()
        })
    };
    let first_id = tokio::task::spawn_blocking(move || inserted_seen.recv_timeout(Duration::from_secs(30)))
        .await
        .unwrap()
        .expect("the first unit wrote its message");
    let later = store
        .converse("late", "written second, committed first", None, NOW)
        .await;
    assert!(later.message_id > first_id, "the later unit drew the later id");

    let mut position = start;
    let mut told = Vec::new();
    for item in store.queries.stream_after(position, 100).await.unwrap() {
        position = position.past(&item);
        told.push(item);
    }
    {
        let (open, released) = &*gate;
        *open.lock().unwrap() = true;
        released.notify_all();
    }
    let early = held_open.await.unwrap();
    let messages_told = |told: &[crate::query::StreamItem]| -> Vec<i64> {
        told.iter()
            .filter_map(|item| match &item.change {
                crate::query::StreamChange::Message(message) => Some(message.id),
                crate::query::StreamChange::Event(_) => None,
            })
            .collect()
    };
    // A row is told once every transaction older than its own has ended, in any
    // database of the cluster (the tests' others run beside this one): read until both
    // are told, or the deadline.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        for item in store.queries.stream_after(position, 100).await.unwrap() {
            position = position.past(&item);
            told.push(item);
        }
        if messages_told(&told).len() >= 2 || std::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let messages = messages_told(&told);
    assert_eq!(
        messages,
        [early.message_id, later.message_id],
        "each message told once, in the order they became visible"
    );
    assert_eq!(
        store.queries.stream_head().await.unwrap(),
        position,
        "the head is where the reading stopped"
    );
}

#[tokio::test]
async fn a_merged_contact_hands_over_its_identities_and_conversations_and_is_left_empty() {
    let store = testing::with_shop().await;
    let ada = store.converse("ada", "Where is my parcel?", None, NOW).await;
    let lovelace = store.converse("lovelace", "Refund please", None, NOW + 1).await;
    store
        .store
        .unit(move |tx| {
            let mut record = testing::blank_contact();
            record.contact_id = lovelace.contact_id;
            record.name = Some("Ada Lovelace".into());
            record.email = Some("ada@example.com".into());
            record
                .metadata
                .insert("phone".into(), serde_json::json!("+39 333 1234"));
            tx.update_contact(&record, NOW + 2)
        })
        .await
        .unwrap();
    let moved = store
        .store
        .unit(move |tx| tx.move_contact(lovelace.contact_id, ada.contact_id, NOW + 3))
        .await
        .unwrap();
    assert_eq!(moved.identities, 1);
    assert_eq!(moved.conversations, [lovelace.conversation_id]);

    let (kept, gone) = store
        .store
        .unit(move |tx| Ok::<_, StoreError>((tx.contact(ada.contact_id)?, tx.contact(lovelace.contact_id)?)))
        .await
        .unwrap();
    assert_eq!(kept.unwrap().merged_into, None);
    let gone = gone.expect("a merged contact keeps its id");
    assert_eq!(gone.merged_into, Some(ada.contact_id));
    assert_eq!(
        (gone.record.name, gone.record.email, gone.record.metadata.len()),
        (None, None, 0),
        "nothing of the person stays on the merged record"
    );
    let page = store
        .queries
        .conversations(
            &ConversationFilter {
                contact: Some(ada.contact_id),
                ..everything()
            },
            None,
            10,
        )
        .await
        .unwrap();
    assert_eq!(page.conversations.len(), 2, "both conversations are the kept contact's");
    let message = store.queries.message(lovelace.message_id).await.unwrap();
    assert_eq!(
        message.author.id,
        Some(ada.contact_id),
        "what they wrote is the kept contact's"
    );

    let detail = store.queries.contact(ada.contact_id, &Visibility::All).await.unwrap();
    let identities: Vec<&str> = detail
        .contact
        .identities
        .iter()
        .map(|i| i.external_id.as_str())
        .collect();
    assert_eq!(identities, ["ada", "lovelace"]);
    assert_eq!(detail.conversations.len(), 2);
    let pointer = store
        .queries
        .contact(lovelace.contact_id, &Visibility::All)
        .await
        .unwrap();
    assert_eq!(pointer.merged_into, Some(ada.contact_id));
    assert!(pointer.contact.identities.is_empty() && pointer.conversations.is_empty());
}

#[tokio::test]
async fn contacts_are_found_by_name_email_phone_or_channel_id_and_agents_see_only_their_teams_people() {
    let store = testing::with_shop().await;
    let agent = store.agent("grace").await;
    let ada = store.converse("ada-7", "Hello", None, NOW).await;
    let bob = store.converse("bob-9", "Hi", None, NOW + 1).await;
    let twin = store.converse("ada-mail", "Me again", None, NOW + 2).await;
    for (contact, name, email, phone) in [
        (ada.contact_id, "Ada Lovelace", "ada@example.com", "+39 333 1234"),
        (bob.contact_id, "Bob 100%", "bob@example.com", "+44 20 7946"),
        (twin.contact_id, "A. L.", "ADA@example.com", "+1 555 0100"),
    ] {
        store
            .store
            .unit(move |tx| {
                let mut record = testing::blank_contact();
                record.contact_id = contact;
                record.name = Some(name.into());
                record.email = Some(email.into());
                record.metadata.insert("phone".into(), serde_json::json!(phone));
                tx.update_contact(&record, NOW + 3)
            })
            .await
            .unwrap();
    }
    let all = Visibility::All;
    let found = async |text: &str, visible_to: &Visibility| -> Vec<i64> {
        let search = crate::query::ContactSearch {
            text: Some(text.into()),
            visible_to: visible_to.clone(),
        };
        let page = store.queries.contacts(&search, None, 10).await.unwrap();
        page.contacts.iter().map(|contact| contact.id).collect()
    };
    assert_eq!(found("lovelace", &all).await, [ada.contact_id]);
    assert_eq!(
        found("ada@", &all).await,
        [twin.contact_id, ada.contact_id],
        "newest first"
    );
    assert_eq!(found("333 12", &all).await, [ada.contact_id]);
    assert_eq!(found("bob-9", &all).await, [bob.contact_id]);
    assert_eq!(
        found("100%", &all).await,
        [bob.contact_id],
        "a % in the text is a character"
    );
    assert_eq!(found("00%", &all).await, [bob.contact_id]);
    assert!(found("nobody", &all).await.is_empty());

    // Cursor pages, newest first.
    let everyone = crate::query::ContactSearch {
        text: None,
        visible_to: all.clone(),
    };
    let first = store.queries.contacts(&everyone, None, 2).await.unwrap();
    assert_eq!(first.contacts.len(), 2);
    let cursor: i64 = first.next_cursor.as_deref().unwrap().parse().unwrap();
    let second = store.queries.contacts(&everyone, Some(cursor), 2).await.unwrap();
    assert_eq!(
        second.contacts.iter().map(|c| c.id).collect::<Vec<_>>(),
        [ada.contact_id]
    );
    assert_eq!(second.next_cursor, None);

    // A search pages too.
    let ada_at = crate::query::ContactSearch {
        text: Some("ada@".into()),
        visible_to: all.clone(),
    };
    let first = store.queries.contacts(&ada_at, None, 1).await.unwrap();
    assert_eq!(
        first.contacts.iter().map(|c| c.id).collect::<Vec<_>>(),
        [twin.contact_id]
    );
    let cursor: i64 = first.next_cursor.as_deref().unwrap().parse().unwrap();
    let second = store.queries.contacts(&ada_at, Some(cursor), 1).await.unwrap();
    assert_eq!(
        second.contacts.iter().map(|c| c.id).collect::<Vec<_>>(),
        [ada.contact_id]
    );
    assert_eq!(second.next_cursor, None);

    // The detail suggests the same email address as a likely duplicate.
    let detail = store.queries.contact(ada.contact_id, &all).await.unwrap();
    assert_eq!(detail.possible_duplicates, [twin.contact_id]);

    // An agent of no team sees only the people of conversations assigned to them.
    let outsider = Visibility::Teams {
        agent_id: agent,
        teams: Vec::new(),
    };
    assert!(found("ada", &outsider).await.is_empty());
    assert!(matches!(
        store.queries.contact(ada.contact_id, &outsider).await,
        Err(StoreError::NotFound("contact"))
    ));
    let team = Visibility::Teams {
        agent_id: agent,
        teams: vec!["support".into()],
    };
    assert_eq!(found("bob", &team).await, [bob.contact_id]);
}

#[tokio::test]
async fn search_finds_a_word_inside_thai_arabic_and_italian_text_notes_and_subjects_within_what_the_caller_sees() {
    use crate::query::search::{SearchRequest, terms};

    let store = testing::with_shop().await;
    let agent = store.agent("grace").await;
    let thai = store
        .converse("somchai", "สวัสดีครับ ผมต้องการยกเลิกคำสั่งซื้อของผมครับ", None, NOW)
        .await;
    let arabic = store
        .converse("layla", "مرحبا، أريد استرداد المبلغ من فضلك", None, NOW + 1)
        .await;
    let (shop, team) = (store.shop.clone(), store.support);
    let italian = store
        .store
        .unit(move |tx| {
            let contact_id = tx.insert_contact(&testing::blank_contact(), NOW + 2)?;
            let identity_id = tx.insert_identity(contact_id, &shop, "giulia", NOW + 2)?;
            let conversation_id = tx.insert_conversation(&NewConversation {
                inbox_id: shop.id,
                contact_id,
                identity_id,
                thread_key: None,
                subject: Some("Spedizione in ritardo"),
                priority: Priority::Normal,
                team_id: Some(team),
                tier: 0,
                labels: &[],
                language: None,
                now: NOW + 2,
            })?;
            for (direction, kind, author_kind, author_id, text) in [
                (
                    crate::model::Direction::Inbound,
                    crate::model::MessageKind::Message,
                    crate::model::ActorKind::Contact,
                    Some(contact_id),
                    "Il pacco non è arrivato perché il corriere è in ritardo",
                ),
                (
                    crate::model::Direction::Note,
                    crate::model::MessageKind::Note,
                    crate::model::ActorKind::Agent,
                    Some(agent),
                    "Chiamare il corriere: tracking zx-4471",
                ),
            ] {
                tx.insert_message(
                    &NewMessage {
                        conversation_id,
                        inbox_id: shop.id,
                        direction,
                        kind,
                        author_kind,
                        author_id,
                        text,
                        html: None,
                        external_id: None,
                        language: None,
                        metadata: None,
                    },
                    NOW + 3,
                )?;
            }
            Ok::<_, StoreError>(conversation_id)
        })
        .await
        .unwrap();
    let search = async |query: &str, filter: ConversationFilter| -> Vec<(i64, Vec<String>)> {
        let request = SearchRequest {
            terms: terms(query).unwrap(),
            filter,
            limit: 10,
        };
        let page = store.queries.search(&request).await.unwrap();
        page.results
            .iter()
            .map(|result| {
                let mut marked: Vec<String> = result
                    .matches
                    .iter()
                    .chain(result.subject.as_ref().map(|_| None).into_iter().flatten())
                    .flat_map(|found| {
                        found.excerpt.highlights.iter().map(|[start, end]| {
                            found
                                .excerpt
                                .excerpt
                                .chars()
                                .skip(*start)
                                .take(end - start)
                                .collect::<String>()
                        })
                    })
                    .collect();
                if let Some(subject) = &result.subject {
                    marked.extend(subject.highlights.iter().map(|[start, end]| {
                        subject
                            .excerpt
                            .chars()
                            .skip(*start)
                            .take(end - start)
                            .collect::<String>()
                    }));
                }
                (result.conversation.id, marked)
            })
            .collect()
    };
    assert_eq!(
        search("ยกเลิก", everything()).await,
        [(thai.conversation_id, vec!["ยกเลิก".to_owned()])],
        "a Thai word from the middle of a sentence with no spaces"
    );
    assert_eq!(
        search("استرداد", everything()).await,
        [(arabic.conversation_id, vec!["استرداد".to_owned()])]
    );
    assert_eq!(
        search("perché corriere", everything()).await,
        [(italian, vec!["perché".to_owned(), "corriere".to_owned()])],
        "every word in one message (the note holds one of them only), marked in the order they occur"
    );
    assert_eq!(
        search("ZX-4471", everything()).await[0].0,
        italian,
        "notes are searched"
    );
    assert_eq!(
        search("ritardo spedizione", everything()).await,
        [(italian, vec!["Spedizione".to_owned(), "ritardo".to_owned()])],
        "the subject holds both words"
    );
    assert!(search("rimborso", everything()).await.is_empty());
    // The list's filters and the caller's visibility apply.
    let resolved_only = ConversationFilter {
        statuses: vec![Status::Resolved],
        ..everything()
    };
    assert!(search("ยกเลิก", resolved_only).await.is_empty());
    let outsider = ConversationFilter::visible_to(Visibility::Teams {
        agent_id: agent,
        teams: Vec::new(),
    });
    assert!(search("ยกเลิก", outsider).await.is_empty());
}

#[tokio::test]
async fn agents_belong_to_several_teams_hold_several_tokens_and_admin_changes_are_logged() {
    let store = testing::with_shop().await;
    let ada = store.agent("ada").await;
    let (billing, agent) = store
        .store
        .unit(move |tx| {
            let team = TeamSpec {
                key: "billing".into(),
                name: "Billing".into(),
                tier: 0,
            };
            tx.upsert_team(&team, NOW)?;
            let billing = tx.team("billing")?.expect("billing exists").id;
            // Billing becomes ada's home team; support stays hers too.
            let support = tx.team("support")?.expect("support exists").id;
            tx.set_agent_teams(ada, &[billing, support])?;
            let agent = tx.agent(&AgentSelector::Id(ada))?.expect("ada exists");
            Ok::<_, StoreError>((billing, agent))
        })
        .await
        .unwrap();
    assert_eq!(agent.team_id, Some(billing));
    let keys: Vec<&str> = agent.teams.iter().map(|team| team.key.as_str()).collect();
    assert_eq!(keys, ["billing", "support"], "the home team first");
    let view = store.queries.agent(ada).await.unwrap();
    assert_eq!(view.team.as_deref(), Some("billing"));
    assert_eq!(view.teams, ["billing", "support"]);
    let members = store.store.unit(move |tx| tx.available_agents(billing)).await.unwrap();
    assert_eq!(members.iter().map(|member| member.id).collect::<Vec<_>>(), [ada]);

    // The first token (from `testing`) and a second one both let ada in; revoking the
    // first leaves the second.
    let first = b"ada".to_vec();
    let second = store
        .store
        .unit(move |tx| tx.insert_agent_token(ada, b"second", "CRM sync", NOW))
        .await
        .unwrap();
    for token in [&first[..], b"second"] {
        let found = store.queries.agent_by_token_hash(token).await.unwrap();
        assert_eq!(found.map(|agent| agent.id), Some(ada));
    }
    let tokens = store.queries.agent_tokens(ada).await.unwrap();
    let first_id = tokens[0].id;
    assert_eq!(
        tokens.iter().map(|token| token.label.as_str()).collect::<Vec<_>>(),
        ["first", "CRM sync"]
    );
    assert_eq!(tokens[1].id, second);
    let revoked = store
        .store
        .unit(move |tx| {
            let once = tx.revoke_agent_token(ada, first_id, NOW + 1)?;
            let twice = tx.revoke_agent_token(ada, first_id, NOW + 2)?;
            let not_hers = tx.revoke_agent_token(ada + 1, second, NOW + 2)?;
            Ok::<_, StoreError>((once, twice, not_hers))
        })
        .await
        .unwrap();
    assert_eq!(revoked, (true, false, false));
    assert!(store.queries.agent_by_token_hash(&first).await.unwrap().is_none());
    assert!(store.queries.agent_by_token_hash(b"second").await.unwrap().is_some());
    let tokens = store.queries.agent_tokens(ada).await.unwrap();
    assert_eq!(tokens[0].revoked_at.map(|at| at.0), Some(NOW + 1));

    // The audit log pages newest first and filters by the agent changed.
    store
        .store
        .unit(move |tx| {
            for action in ["agent.created", "token.issued", "agent.updated"] {
                let entry = AuditEntry {
                    actor_id: None,
                    action,
                    target_kind: "agent",
                    target_id: Some(ada),
                    details: serde_json::json!({"note": action}),
                };
                tx.insert_admin_audit(&entry, NOW)?;
            }
            let elsewhere = AuditEntry {
                actor_id: Some(ada),
                action: "subscription.deleted",
                target_kind: "subscription",
                target_id: Some(ada),
                details: serde_json::json!({}),
            };
            tx.insert_admin_audit(&elsewhere, NOW)?;
            Ok::<_, StoreError>(())
        })
        .await
        .unwrap();
    let page = store.queries.admin_audit(Some(ada), None, 2).await.unwrap();
    let actions: Vec<&str> = page.iter().map(|entry| entry.action.as_str()).collect();
    assert_eq!(actions, ["agent.updated", "token.issued"]);
    assert_eq!(page[0].details["note"], "agent.updated");
    let rest = store
        .queries
        .admin_audit(Some(ada), Some(page[1].id), 10)
        .await
        .unwrap();
    assert_eq!(rest.len(), 1);
    let all = store.queries.admin_audit(None, None, 10).await.unwrap();
    assert_eq!(all.len(), 4);
    assert_eq!(all[0].actor_name.as_deref(), Some("ada"));
}

#[tokio::test]
async fn agents_keep_the_languages_they_read() {
    let store = testing::with_shop().await;
    let ada = store.agent("ada").await;
    let team = store.support;
    let (ada_row, bob_row) = store
        .store
        .unit(move |tx| {
            tx.set_agent_languages(ada, &["th".into(), "en".into()])?;
            let bob = NewAgent {
                name: "bob".into(),
                role: crate::model::Role::Agent,
                teams: vec!["support".into()],
                token_hash: b"bob".to_vec(),
                first_token: None,
                capacity: None,
                available: true,
                languages: vec!["ar".into()],
            };
            let bob = tx.insert_agent(&bob, &[team], NOW)?;
            let ada_row = tx.agent(&AgentSelector::Id(ada))?.expect("ada exists");
            let bob_row = tx.agent(&AgentSelector::Id(bob))?.expect("bob exists");
            Ok::<_, StoreError>((ada_row, bob_row))
        })
        .await
        .unwrap();
    assert_eq!(
        (ada_row.languages, bob_row.languages),
        (vec!["th".to_owned(), "en".to_owned()], vec!["ar".to_owned()])
    );
    assert_eq!(store.queries.agent(ada).await.unwrap().languages, ["th", "en"]);
    assert_eq!(store.queries.agent(bob_row.id).await.unwrap().languages, ["ar"]);
    store
        .store
        .unit(move |tx| tx.set_agent_languages(ada, &[]))
        .await
        .unwrap();
    assert!(store.queries.agent(ada).await.unwrap().languages.is_empty());
}

#[tokio::test]
async fn saved_replies_keep_their_scope_and_shortcut_and_are_listed_to_who_may_see_them() {
    let store = testing::with_shop().await;
    let (ada, bob) = (store.agent("ada").await, store.agent("bob").await);
    let reply = move |scope: ReplyScope, by: i64| SavedReply {
        id: 0,
        scope,
        shortcut: "refund".into(),
        title: "Refund steps".into(),
        bodies: [
            ("en".to_owned(), "Hello {{contact.name}}".to_owned()),
            ("it".to_owned(), "Ciao {{contact.name}}, è già fatto.".to_owned()),
        ]
        .into_iter()
        .collect(),
        fallback: "en".into(),
        created_by: by,
        created_at: NOW,
        updated_by: by,
        updated_at: NOW,
    };
    let team = ReplyScope::Team("support".into());
    let (adas, bobs, teams) = (
        reply(ReplyScope::Personal(ada), ada),
        reply(ReplyScope::Personal(bob), bob),
        reply(team.clone(), bob),
    );
    let written = (adas.clone(), bobs.clone(), teams.clone());
    let (ada_id, bob_id, team_id) = store
        .store
        .unit(move |tx| {
            let (adas, bobs, teams) = &written;
            Ok::<_, StoreError>((
                tx.insert_saved_reply(adas)?,
                tx.insert_saved_reply(bobs)?,
                tx.insert_saved_reply(teams)?,
            ))
        })
        .await
        .unwrap();
    let (read, found) = store
        .store
        .unit(move |tx| {
            let team = ReplyScope::Team("support".into());
            Ok::<_, StoreError>((
                tx.saved_reply(team_id)?,
                [
                    tx.saved_reply_by_shortcut(&ReplyScope::Personal(ada), "refund")?,
                    tx.saved_reply_by_shortcut(&ReplyScope::Personal(bob), "refund")?,
                    tx.saved_reply_by_shortcut(&team, "refund")?,
                    tx.saved_reply_by_shortcut(&team, "other")?,
                    tx.saved_reply_by_shortcut(&ReplyScope::Team("billing".into()), "refund")?,
                ],
            ))
        })
        .await
        .unwrap();
    assert_eq!(read, Some(SavedReply { id: team_id, ..teams }), "read back as written");
    assert_eq!(
        found,
        [Some(ada_id), Some(bob_id), Some(team_id), None, None],
        "one shortcut in three scopes, each found in its own"
    );

    let mut changed = SavedReply {
        id: ada_id,
        title: "Refunds".into(),
        updated_by: ada,
        updated_at: NOW + 1,
        ..adas.clone()
    };
    changed.bodies.remove("it");
    let saved = changed.clone();
    store.store.unit(move |tx| tx.update_saved_reply(&saved)).await.unwrap();
    let view = store.queries.saved_reply(ada_id).await.unwrap();
    assert_eq!(
        (
            view.title.as_str(),
            view.bodies.len(),
            view.owner_id,
            view.team.as_deref()
        ),
        ("Refunds", 1, Some(ada), None)
    );
    assert_eq!((view.created_by.name.as_str(), view.updated_at.0), ("ada", NOW + 1));
    let team_view = store.queries.saved_reply(team_id).await.unwrap();
    assert_eq!(
        (
            team_view.team.as_deref(),
            team_view.owner_id,
            team_view.created_by.name.as_str()
        ),
        (Some("support"), None, "bob")
    );

    let ids = |replies: Vec<crate::query::SavedReplyView>| {
        let mut ids: Vec<i64> = replies.iter().map(|reply| reply.id).collect();
        ids.sort_unstable();
        ids
    };
    let support = crate::query::TeamsSeen::Only(vec!["support".into()]);
    let nothing = crate::query::TeamsSeen::Only(Vec::new());
    let all = crate::query::TeamsSeen::All;
    assert_eq!(
        ids(store.queries.saved_replies(ada, &support).await.unwrap()),
        [ada_id, team_id]
    );
    assert_eq!(ids(store.queries.saved_replies(ada, &nothing).await.unwrap()), [ada_id]);
    assert_eq!(
        ids(store.queries.saved_replies(bob, &all).await.unwrap()),
        [bob_id, team_id]
    );

    let deleted = store
        .store
        .unit(move |tx| {
            Ok::<_, StoreError>((
                tx.delete_saved_reply(bob_id)?,
                tx.delete_saved_reply(bob_id)?,
                tx.saved_reply(bob_id)?,
            ))
        })
        .await
        .unwrap();
    assert_eq!(deleted, (true, false, None));
    assert!(matches!(
        store.queries.saved_reply(bob_id).await,
        Err(StoreError::NotFound(_))
    ));
}

#[tokio::test]
async fn mentions_are_listed_to_their_agent_while_they_may_see_the_conversation_and_read_once() {
    let store = testing::with_shop().await;
    let (ada, lea) = (store.agent("ada").await, store.agent("lea").await);
    let seeded = store.converse("cust", "Where is my parcel?", None, NOW).await;
    let (first, second) = store
        .store
        .unit(move |tx| {
            let first = tx.insert_mention(seeded.message_id, seeded.conversation_id, lea, ada, NOW)?;
            let second = tx.insert_mention(seeded.message_id, seeded.conversation_id, lea, ada, NOW + 1)?;
            Ok::<_, StoreError>((first, second))
        })
        .await
        .unwrap();
    let support = Visibility::Teams {
        agent_id: lea,
        teams: vec!["support".into()],
    };
    let listed = store.queries.mentions(lea, &support, true, None, 10).await.unwrap();
    assert_eq!(
        listed.iter().map(|mention| mention.id).collect::<Vec<_>>(),
        [second, first]
    );
    assert_eq!(listed[0].excerpt, "Where is my parcel?");
    assert_eq!(listed[0].by["name"], "ada");
    assert_eq!(store.queries.unread_mentions(lea, &support).await.unwrap(), 2);
    let paged = store
        .queries
        .mentions(lea, &support, false, Some(second), 10)
        .await
        .unwrap();
    assert_eq!(paged.len(), 1);

    // Outside the conversation's team (and not its assignee), nothing is listed.
    let elsewhere = Visibility::Teams {
        agent_id: lea,
        teams: Vec::new(),
    };
    assert!(
        store
            .queries
            .mentions(lea, &elsewhere, false, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.queries.unread_mentions(lea, &elsewhere).await.unwrap(), 0);

    let marked = store
        .store
        .unit(move |tx| {
            let not_hers = tx.mark_mentions_read(ada, Some(&[first]), NOW + 2)?;
            let one = tx.mark_mentions_read(lea, Some(&[first]), NOW + 2)?;
            let again = tx.mark_mentions_read(lea, Some(&[first]), NOW + 3)?;
            let rest = tx.mark_mentions_read(lea, None, NOW + 3)?;
            Ok::<_, StoreError>((not_hers, one, again, rest))
        })
        .await
        .unwrap();
    assert_eq!(marked, (0, 1, 0, 1));
    assert_eq!(store.queries.unread_mentions(lea, &support).await.unwrap(), 0);
    let all = store.queries.mentions(lea, &support, false, None, 10).await.unwrap();
    assert_eq!(all[1].read_at.map(|at| at.0), Some(NOW + 2));
}

#[tokio::test]
async fn report_facts_are_the_ranges_conversations_events_responses_and_messages_under_the_readers_visibility() {
    use crate::query::reports::{EventKind, Grouping, ReportRequest, SLOT_MS};
    let store = testing::with_shop().await;
    let seeded = store
        .converse("ada", "Where is my parcel?", Some("On its way"), NOW)
        .await;
    let old = store.converse("bob", "Hello", None, NOW - 86_400_000).await;
    // Bob's conversation, opened the day before, is answered and resolved in the range:
    // its facts bring it into the report.
    let (old_id, seeded_id) = (old.conversation_id, seeded.conversation_id);
    store
        .store
        .unit(move |tx| {
            let inbox_id = tx.conversation(old_id)?.expect("bob's conversation").inbox_id;
            let message_id = tx.insert_message(
                &NewMessage {
                    conversation_id: old_id,
                    inbox_id,
                    direction: Direction::Outbound,
                    kind: MessageKind::Reply,
                    author_kind: ActorKind::Agent,
                    author_id: None,
                    text: "Hello Bob",
                    html: None,
                    external_id: None,
                    language: None,
                    metadata: None,
                },
                NOW,
            )?;
            tx.insert_response(&NewResponse {
                message_id,
                conversation_id: old_id,
                waited_from: NOW - 86_400_000,
                answered_at: NOW,
                first: true,
                sla_breached: Some(true),
            })?;
            tx.insert_event(
                &EventRow {
                    conversation_id: old_id,
                    kind: "conversation.status_changed",
                    actor_kind: ActorKind::System,
                    actor_id: None,
                    data: &serde_json::json!({"from": "open", "to": "resolved"}),
                },
                NOW,
            )?;
            Ok::<_, StoreError>(())
        })
        .await
        .unwrap();
    let request = |from: i64, to: i64| ReportRequest {
        from,
        to,
        grouping: Some(Grouping::Team),
        timeline: vec![(from, to)],
    };
    // A range around NOW that cuts two quarter hours, and the whole quarter from NOW.
    for (from, to) in [(NOW - 1, NOW + 1), (NOW, NOW + SLOT_MS)] {
        let facts = store.queries.report_facts(&request(from, to)).await.unwrap();
        let ids: Vec<i64> = facts.conversations.iter().map(|row| row.fact.id).collect();
        let mut expected = vec![seeded_id, old_id];
        expected.sort_unstable();
        assert_eq!(ids, expected, "bob's by its response and event");
        assert!(
            facts.conversations.iter().all(|row| {
                row.fact.key.as_deref() == Some("support") && row.fact.team.as_deref() == Some("support")
            })
        );
        let created: Vec<i64> = facts.conversations.iter().map(|row| row.fact.created_at).collect();
        assert!(created.contains(&NOW) && created.contains(&(NOW - 86_400_000)));
        let timeline = &facts.timeline;
        let mut counts = [0i64; 4];
        for tally in &timeline.tallies {
            assert!(from <= tally.at && tally.at < to, "{tally:?}");
            for (sum, count) in counts.iter_mut().zip(tally.counts) {
                *sum += count;
            }
        }
        assert_eq!(counts, [1, 2, 0, 0], "ada's message, the reply and bob's answer");
        assert_eq!(timeline.responses.len(), 1);
        assert_eq!(timeline.responses[0].sla_breached, Some(true));
        assert_eq!(
            timeline.events.iter().map(|event| event.kind).collect::<Vec<_>>(),
            [EventKind::Resolved]
        );
        assert_eq!(timeline.conversations(), expected.as_slice());
        assert_eq!(
            &store.queries.report_timeline(from, to).await.unwrap(),
            timeline,
            "the same timeline read alone"
        );
    }
    let before = store.queries.report_facts(&request(NOW - 2, NOW)).await.unwrap();
    assert!(before.conversations.is_empty() && before.timeline.is_empty());
    // Without a timeline to read, only the conversations with times of their own.
    let own = store
        .queries
        .report_facts(&ReportRequest {
            timeline: Vec::new(),
            ..request(NOW - 1, NOW + 1)
        })
        .await
        .unwrap();
    assert_eq!(
        own.conversations.iter().map(|row| row.fact.id).collect::<Vec<_>>(),
        [seeded_id]
    );
    let by_id = store
        .queries
        .report_conversations(Some(Grouping::Agent), &[old_id, old_id + seeded_id + 1])
        .await
        .unwrap();
    assert_eq!(by_id.len(), 1, "only those that exist");
    assert_eq!(
        (by_id[0].fact.id, by_id[0].fact.key.as_deref()),
        (old_id, None),
        "unassigned"
    );
    // Above the store, a reader sees the facts of what they may see only.
    let cache = crate::query::report_cache::ReportCache::new();
    let nobody = Visibility::Teams {
        agent_id: 0,
        teams: Vec::new(),
    };
    let hidden = cache
        .facts(store.queries.as_ref(), NOW - 1, NOW + 1, None, &nobody, NOW + 1)
        .await
        .unwrap();
    assert!(hidden.conversations.is_empty() && hidden.events().next().is_none() && hidden.tallies().next().is_none());
}

#[tokio::test]
async fn sla_events_are_counted_by_the_team_they_were_recorded_for_and_backlogs_by_subscription() {
    let store = testing::with_shop().await;
    let admin = store.agent("admin").await;
    let ada = store.converse("ada", "Hello", None, NOW).await.conversation_id;
    let bob = store.converse("bob", "Hi", None, NOW).await.conversation_id;
    assert!(store.queries.sla_event_counts().await.unwrap().is_empty());
    store
        .store
        .unit(move |tx| {
            // Bob's conversation moved from Billing to Support between its warning and
            // its breach: each counts for the team it was recorded in.
            for (conversation_id, kind, team) in [
                (ada, "sla.warning", Some("billing")),
                (ada, "sla.breached", Some("billing")),
                (bob, "sla.warning", Some("billing")),
                (bob, "sla.breached", Some("support")),
                (bob, "conversation.routed", Some("technical")),
                (bob, "sla.warning", None),
            ] {
                let data = serde_json::json!({"clock": "first_response", "team": team});
                tx.insert_event(
                    &EventRow {
                        conversation_id,
                        kind,
                        actor_kind: crate::model::ActorKind::System,
                        actor_id: None,
                        data: &data,
                    },
                    NOW,
                )?;
            }
            Ok::<_, StoreError>(())
        })
        .await
        .unwrap();
    let counts = |team: &str, warnings, breaches| crate::query::SlaEventCounts {
        team: team.into(),
        warnings,
        breaches,
    };
    assert_eq!(
        store.queries.sla_event_counts().await.unwrap(),
        [counts("billing", 2, 1), counts("support", 0, 1)]
    );

    let (quiet, busy, gone) = store
        .store
        .unit(move |tx| {
            let mut subscribe = || {
                tx.insert_subscription(
                    &NewSubscription {
                        url: "http://crm.example/hooks".into(),
                        events: vec!["message.created".into()],
                        secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
                        description: None,
                        created_by: admin,
                    },
                    NOW,
                )
            };
            let (quiet, busy, gone) = (subscribe()?, subscribe()?, subscribe()?);
            tx.queue_event(busy, Some(ada), "message.created", "{}", NOW + 10)?;
            tx.queue_event(busy, Some(ada), "message.created", "{}", NOW + 20)?;
            tx.delete_subscription(gone, NOW + 30)?;
            Ok::<_, StoreError>((quiet, busy, gone))
        })
        .await
        .unwrap();
    let backlog = |subscription_id, pending, oldest_pending_at| crate::query::SubscriptionBacklog {
        subscription_id,
        pending,
        oldest_pending_at,
    };
    assert_eq!(
        store.queries.subscription_backlogs().await.unwrap(),
        [backlog(quiet, 0, None), backlog(busy, 2, Some(NOW + 10))],
        "a deleted subscription ({gone}) is not listed"
    );
    // In flight is still waiting; once sent, the next one is the oldest.
    let claimed = store
        .store
        .unit(move |tx| {
            let lease = Lease {
                holder: HOLDER,
                until: NOW + 40 + LEASED_FOR,
            };
            tx.claim_events(NOW + 40, 10, lease, &[])
        })
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1, "one at a time per conversation");
    assert_eq!(
        store.queries.subscription_backlogs().await.unwrap(),
        [backlog(quiet, 0, None), backlog(busy, 2, Some(NOW + 10))]
    );
    let sent = claimed[0].id;
    store
        .store
        .unit(move |tx| {
            tx.settle_event(
                sent,
                Settlement::Sent {
                    receipt: "{}",
                    external_id: None,
                },
                NOW + 50,
            )
        })
        .await
        .unwrap();
    assert_eq!(
        store.queries.subscription_backlogs().await.unwrap(),
        [backlog(quiet, 0, None), backlog(busy, 1, Some(NOW + 20))]
    );
}
