//! The WhatsApp channel passes the connector compliance suite: Meta's real webhook
//! bodies (tests/fixtures/SOURCES.md) signed and handed to the hook, their files served
//! by the fake Graph API; and its sends against the fake's Graph errors.

use std::sync::Arc;

use http::{HeaderMap, Method};
use serde_json::json;
use switchboard_connector_core::{BoxFuture, Channel, Connector, HookHead, OutboundKind, StatusUpdate};
use switchboard_connector_whatsapp::{Whatsapp, WhatsappConfig};
use switchboard_test_compliance::{
    Fixture, Inbound, RecordingSink, SendCase, Verdict, check_inbound, check_send_errors, outbound, stage,
};
use switchboard_test_whatsapp::{Failure, FakeWhatsapp, signed};

const TOKEN: &str = "EAAG-compliance-token";
const APP_SECRET: &str = "app-secret-for-the-compliance-suite";
const CUSTOMER: &str = "4915112345678";

/// Real bodies that each carry a customer's message (statuses and reactions removed are
/// not messages; tests/normalize.rs covers them).
const FIXTURES: &[&str] = &[
    "whatsapp-cloud-messages-text.json",
    "whatsapp-cloud-messages-image.json",
    "whatsapp-cloud-messages-document.json",
    "whatsapp-cloud-messages-location.json",
    "whatsapp-cloud-messages-contacts.json",
    "whatsapp-cloud-messages-interactive-button_reply.json",
    "whatsapp-cloud-messages-reply-context.json",
];

fn connector(fake: &FakeWhatsapp, phone_number_id: &str) -> Arc<dyn Connector> {
    let config: WhatsappConfig = serde_json::from_value(json!({
        "phone_number_id": phone_number_id,
        "access_token_env": "WA_TOKEN", "app_secret_env": "WA_SECRET", "verify_token_env": "WA_VERIFY",
        "api_base": fake.api_base(),
        "pair_interval": "0s",
        "pair_rate_wait": "1s",
    }))
    .unwrap();
    let env = |name: &str| match name {
        "WA_TOKEN" => Some(TOKEN.to_owned()),
        "WA_SECRET" => Some(APP_SECRET.to_owned()),
        "WA_VERIFY" => Some("verify-me".to_owned()),
        _ => None,
    };
    let settings = Whatsapp::validate(&config, "shop-wa", &env).unwrap();
    Whatsapp::build(&settings, "shop-wa").unwrap()
}

struct Hooked {
    connector: Arc<dyn Connector>,
}

fn fixture_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

impl Inbound for Hooked {
    fn fixtures(&self) -> Vec<Fixture> {
        Fixture::read(&fixture_dir(), FIXTURES)
    }

    fn deliver<'a>(&'a self, fixture: &'a Fixture, sink: &'a RecordingSink) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            let body: serde_json::Value = serde_json::from_slice(&fixture.bytes).unwrap();
            let signed = signed(APP_SECRET, &body);
            let mut headers = HeaderMap::new();
            headers.insert("content-type", "application/json".parse().unwrap());
            headers.insert("x-hub-signature-256", signed.signature.parse().unwrap());
            let head = HookHead {
                method: &Method::POST,
                query: None,
                headers: &headers,
                now_ms: 1_795_000_000_000,
            };
            let hook = self.connector.hook().expect("a WhatsApp inbox takes hooks");
            let limit = hook.admit(&head).expect("a signed JSON POST is admitted");
            assert!(signed.body.len() <= limit);
            match hook.handle(&head, &signed.body, sink).await {
                Ok(reply) => reply.status == 200,
                Err(_) => false,
            }
        })
    }
}

/// The phone number id the fixtures were sent to, and the media they name, served.
fn fixtures_number(fake: &FakeWhatsapp) -> String {
    let mut number = None;
    for name in FIXTURES {
        let body: serde_json::Value =
            serde_json::from_slice(&std::fs::read(fixture_dir().join(name)).unwrap()).unwrap();
        let value = &body["entry"][0]["changes"][0]["value"];
        number = value["metadata"]["phone_number_id"].as_str().map(str::to_owned);
        for message in value["messages"].as_array().into_iter().flatten() {
            for kind in ["image", "document", "audio", "video", "sticker"] {
                if let (Some(id), Some(mime)) = (message[kind]["id"].as_str(), message[kind]["mime_type"].as_str()) {
                    fake.host_media(id, mime, format!("the {kind} of {name}").into_bytes());
                }
            }
        }
    }
    number.expect("the fixtures name their number")
}

#[tokio::test]
async fn the_whatsapp_channel_normalizes_dedupes_and_acknowledges_only_after_commit() {
    let fake = FakeWhatsapp::start(TOKEN).await;
    let number = fixtures_number(&fake);
    check_inbound(&Hooked {
        connector: connector(&fake, &number),
    })
    .await;
}

#[tokio::test]
async fn the_whatsapp_channel_classifies_its_send_errors() {
    let fake = FakeWhatsapp::start(TOKEN).await;
    let connector = connector(&fake, switchboard_test_whatsapp::PHONE_NUMBER_ID);
    let fail = |failure: Failure| {
        let fake = &fake;
        stage(move || fake.fail_next_sends(Some(CUSTOMER), failure.clone(), 1))
    };
    let reply = || outbound(CUSTOMER, "Your parcel left the warehouse.");
    let late_update = {
        let mut message = outbound(CUSTOMER, "How did we do?");
        message.kind = OutboundKind::StatusUpdate;
        message.window_open = false;
        message.update = Some(StatusUpdate {
            event: "csat.requested".into(),
            language: Some("en".into()),
            ..StatusUpdate::default()
        });
        message
    };
    check_send_errors(
        connector.sender(),
        vec![
            SendCase {
                name: "the Graph API takes it",
                stage: stage(|| {}),
                message: reply(),
                expect: Verdict::Sent,
            },
            SendCase {
                name: "the pair rate limit (131056)",
                stage: fail(Failure::pair_rate_limit()),
                message: reply(),
                expect: Verdict::Transient,
            },
            SendCase {
                name: "the number's throughput (130429)",
                stage: fail(Failure::throughput()),
                message: reply(),
                expect: Verdict::Transient,
            },
            SendCase {
                name: "the 24-hour window closed at Meta (131047)",
                stage: fail(Failure::re_engagement()),
                message: reply(),
                expect: Verdict::Permanent,
            },
            SendCase {
                name: "the customer cannot get WhatsApp messages (131026)",
                stage: fail(Failure::undeliverable()),
                message: reply(),
                expect: Verdict::Unreachable,
            },
            SendCase {
                name: "a status update outside the window with no template",
                stage: stage(|| {}),
                message: late_update,
                expect: Verdict::Skipped,
            },
        ],
    )
    .await;
}
