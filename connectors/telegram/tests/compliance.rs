//! The Telegram channel passes the connector compliance suite: real updates (see
//! tests/fixtures/telegram/SOURCES.md) read by its long-polling reader from the fake Bot
//! API, the offset being its acknowledgement; and its sends against the fake's errors.

use std::sync::Arc;

use serde_json::Value;
use switchboard_connector_core::{BoxFuture, Channel, Connector};
use switchboard_connector_telegram::{Telegram, TelegramConfig};
use switchboard_test_compliance::{
    Fixture, Inbound, RecordingSink, SendCase, Verdict, check_inbound, check_send_errors, outbound, stage, until,
    while_reading,
};
use switchboard_test_telegram::{Failure, FakeTelegram};

const TOKEN: &str = "5000000001:AAHfake-token-for-the-shop-help-bot";
const CHAT: i64 = 424_242;

/// Real updates that each carry a customer's words.
const FIXTURES: &[&str] = &[
    "ntg-update-text.json",
    "tlx-update-private-text.json",
    "ntg-update-location.json",
    "ntg-update-contact.json",
];

fn connector(fake: &FakeTelegram) -> Arc<dyn Connector> {
    let config: TelegramConfig = serde_json::from_value(serde_json::json!({
        "token_env": "BOT_TOKEN",
        "api_url": fake.url().trim_end_matches('/'),
        "poll_timeout": "1s",
        "chat_interval": "0s",
    }))
    .unwrap();
    let token = |name: &str| (name == "BOT_TOKEN").then(|| TOKEN.to_owned());
    let settings = Telegram::validate(&config, "shop-bot", &token).unwrap();
    Telegram::build(&settings, "shop-bot").unwrap()
}

struct Polled {
    fake: FakeTelegram,
    connector: Arc<dyn Connector>,
}

impl Inbound for Polled {
    fn fixtures(&self) -> Vec<Fixture> {
        Fixture::read(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/telegram"),
            FIXTURES,
        )
    }

    /// Pushes the update to the fake and runs the reader until its offset moved past it
    /// (acknowledged) or the sink refused it.
    fn deliver<'a>(&'a self, fixture: &'a Fixture, sink: &'a RecordingSink) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            let update: Value = serde_json::from_slice(&fixture.bytes).unwrap();
            let update_id = self.fake.push_update(TOKEN, update);
            let refused_before = sink.refused();
            let reader = self.connector.reader().expect("a Telegram inbox has a reader");
            let offset = || -> i64 {
                sink.cursors()
                    .get("updates")
                    .and_then(|offset| offset.parse().ok())
                    .unwrap_or(0)
            };
            // Acknowledged: the offset moved past it. Given back: the sink refused it and
            // the offset stays before it, so Telegram keeps it.
            let what = format!("the reader to take {}", fixture.name);
            let watch = until(&what, || {
                (offset() > update_id || sink.refused() > refused_before).then(|| offset() > update_id)
            });
            while_reading(reader, sink, watch).await
        })
    }
}

#[tokio::test]
async fn the_telegram_channel_normalizes_dedupes_and_acknowledges_only_after_commit() {
    let fake = FakeTelegram::start().await;
    fake.add_bot(TOKEN, 5_000_000_001, "ShopHelpBot");
    let connector = connector(&fake);
    check_inbound(&Polled { fake, connector }).await;
}

#[tokio::test]
async fn the_telegram_channel_classifies_its_send_errors() {
    let fake = FakeTelegram::start().await;
    fake.add_bot(TOKEN, 5_000_000_001, "ShopHelpBot");
    let connector = connector(&fake);
    let fail = |failure: Failure| {
        let fake = &fake;
        stage(move || fake.fail_next(TOKEN, "sendMessage", Some(CHAT), failure.clone(), 1))
    };
    let message = || outbound(&CHAT.to_string(), "Your parcel left the warehouse.");
    check_send_errors(
        connector.sender(),
        vec![
            SendCase {
                name: "the chat takes it",
                stage: stage(|| {}),
                message: message(),
                expect: Verdict::Sent,
            },
            SendCase {
                name: "flood control",
                stage: fail(Failure::TooManyRequests { retry_after: 3 }),
                message: message(),
                expect: Verdict::Transient,
            },
            SendCase {
                name: "the chat is unknown",
                stage: fail(Failure::ChatNotFound),
                message: message(),
                expect: Verdict::Permanent,
            },
            SendCase {
                name: "the customer blocked the bot",
                stage: fail(Failure::Blocked),
                message: message(),
                expect: Verdict::Unreachable,
            },
        ],
    )
    .await;
}

#[tokio::test]
async fn a_send_that_fails_part_way_says_what_went_and_the_retry_resumes_after_it() {
    let fake = FakeTelegram::start().await;
    fake.add_bot(TOKEN, 5_000_000_001, "ShopHelpBot");
    let connector = connector(&fake);
    let sender = connector.sender();
    let mut message = outbound(&CHAT.to_string(), "Here is the invoice you asked for.");
    message.attachments = vec![switchboard_connector_core::OutboundAttachment {
        filename: "invoice.pdf".into(),
        content_type: "application/pdf".into(),
        data: b"%PDF-1.7".to_vec(),
    }];
    // The text goes; Telegram's flood control stops the file.
    fake.fail_next(
        TOKEN,
        "sendDocument",
        Some(CHAT),
        Failure::TooManyRequests { retry_after: 1 },
        1,
    );
    let failed = sender.send(&message).await.expect_err("the file was refused");
    assert!(failed.is_transient(), "{failed}");
    let (parts_sent, _) = failed.split_progress();
    assert_eq!(parts_sent, 1, "the text went");

    message.parts_sent = parts_sent;
    let receipt = sender.send(&message).await.expect("the retry sends the file");
    let accepted = |method: &str| fake.calls_to(TOKEN, method).iter().filter(|call| call.ok()).count();
    assert_eq!(
        (accepted("sendMessage"), accepted("sendDocument")),
        (1, 1),
        "each part once"
    );
    let document = fake
        .calls_to(TOKEN, "sendDocument")
        .into_iter()
        .find(|call| call.ok())
        .unwrap();
    assert_eq!(
        receipt.external_id,
        Some(format!("{CHAT}:{}", document.message_id().unwrap())),
        "the receipt names the last part"
    );
}
