//! The hook and the sender against the fake Graph API: signed deliveries in, files
//! fetched, everything committed before the 200; messages, files, CSAT lists and
//! templates out, and Meta's refusals classified.

use std::time::Duration;

use http::{HeaderMap, Method};
use serde_json::{Value, json};
use switchboard_connector_core::{
    Connector, CsatQuestion, DeliveryState, HookBody, HookHead, OutboundAttachment, OutboundKind, OutboundMessage,
    SendError, StatusUpdate,
};
use switchboard_connector_whatsapp::{WhatsappConfig, WhatsappConnector, WhatsappSettings};
use switchboard_test_compliance::RecordingSink;
use switchboard_test_whatsapp::{Failure, FakeWhatsapp, PHONE_NUMBER_ID, image_message, signed, status, text_message};

const TOKEN: &str = "EAAG-test-token";
const APP_SECRET: &str = "app-secret-for-tests";
const CUSTOMER: &str = "4915112345678";

fn settings(fake: &FakeWhatsapp) -> WhatsappSettings {
    let config: WhatsappConfig = serde_json::from_value(json!({
        "phone_number_id": PHONE_NUMBER_ID,
        "access_token_env": "WA_TOKEN", "app_secret_env": "WA_SECRET", "verify_token_env": "WA_VERIFY",
        "api_base": fake.api_base(),
        "max_media_bytes": 1024,
        "pair_interval": "10ms",
        "pair_rate_wait": "50ms",
        "templates": {"resolved": {"en": {"name": "case_resolved", "language": "en_US", "parameters": ["conversation_id"]}}},
    }))
    .unwrap();
    let env = |name: &str| match name {
        "WA_TOKEN" => Some(TOKEN.to_owned()),
        "WA_SECRET" => Some(APP_SECRET.to_owned()),
        "WA_VERIFY" => Some("verify-me".to_owned()),
        _ => None,
    };
    config.validate(&env).unwrap()
}

fn post_headers(signature: &str, length: usize) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", "application/json".parse().unwrap());
    headers.insert("content-length", length.to_string().parse().unwrap());
    headers.insert("x-hub-signature-256", signature.parse().unwrap());
    headers
}

async fn deliver(
    connector: &WhatsappConnector,
    body: &Value,
    sink: &RecordingSink,
) -> Result<u16, (u16, &'static str)> {
    let signed = signed(APP_SECRET, body);
    let headers = post_headers(&signed.signature, signed.body.len());
    let head = HookHead {
        method: &Method::POST,
        query: None,
        headers: &headers,
        now_ms: 0,
    };
    let hook = connector.hook().unwrap();
    let limit = hook.admit(&head).map_err(|err| (err.status, err.code))?;
    assert!(signed.body.len() <= limit);
    hook.handle(&head, &signed.body, sink)
        .await
        .map(|reply| reply.status)
        .map_err(|err| (err.status, err.code))
}

fn batch(items: &[Value]) -> Value {
    switchboard_test_whatsapp::webhook::batch(PHONE_NUMBER_ID, items)
}

#[tokio::test]
async fn a_signed_batch_is_stored_with_its_file_and_statuses() {
    let fake = FakeWhatsapp::start(TOKEN).await;
    let connector = WhatsappConnector::new(&settings(&fake)).unwrap();
    fake.host_media("777", "image/jpeg", b"\xff\xd8small".to_vec());
    fake.host_media("778", "image/jpeg", vec![0u8; 4096]);
    let sink = RecordingSink::new();
    let body = batch(&[
        text_message(CUSTOMER, "Ada", "wamid.1", "Hello"),
        image_message(CUSTOMER, "Ada", "wamid.2", "777", Some("my receipt")),
        image_message(CUSTOMER, "Ada", "wamid.3", "778", None),
        status("wamid.out", "read", &[]),
    ]);
    assert_eq!(deliver(&connector, &body, &sink).await, Ok(200));
    let messages = sink.messages();
    assert_eq!(messages.len(), 3);
    assert_eq!(messages[0].text, "Hello");
    assert_eq!(messages[1].text, "my receipt");
    assert_eq!(messages[1].attachments[0].data, b"\xff\xd8small");
    assert_eq!(messages[1].attachments[0].filename, "image-777.jpg");
    // Over max_media_bytes: kept, and the file listed as not fetched.
    assert!(messages[2].attachments.is_empty());
    assert!(
        messages[2].details["files_not_fetched"][0]["error"]
            .as_str()
            .unwrap()
            .contains("over this inbox's limit")
    );
    let reports = sink.reports();
    assert_eq!(reports[0].state, DeliveryState::Read);
}

#[tokio::test]
async fn a_bad_signature_stores_nothing_and_a_busy_store_answers_503() {
    let fake = FakeWhatsapp::start(TOKEN).await;
    let connector = WhatsappConnector::new(&settings(&fake)).unwrap();
    let sink = RecordingSink::new();
    let body = serde_json::to_vec(&text_message(CUSTOMER, "Ada", "wamid.1", "Hello")).unwrap();
    let forged = switchboard_test_whatsapp::signature("another secret", &body);
    let headers = post_headers(&forged, body.len());
    let head = HookHead {
        method: &Method::POST,
        query: None,
        headers: &headers,
        now_ms: 0,
    };
    let hook = connector.hook().unwrap();
    let err = hook.handle(&head, &body, &sink).await.unwrap_err();
    assert_eq!((err.status, err.code), (401, "invalid_signature"));
    assert!(sink.messages().is_empty());

    let mut unsigned = headers.clone();
    unsigned.remove("x-hub-signature-256");
    let head = HookHead {
        headers: &unsigned,
        ..head
    };
    assert_eq!(hook.admit(&head).unwrap_err().code, "missing_signature");

    let busy = RecordingSink::new();
    busy.refuse(usize::MAX);
    let text = text_message(CUSTOMER, "Ada", "wamid.1", "Hello");
    assert_eq!(
        deliver(&connector, &text, &busy).await,
        Err((503, "storage_unavailable"))
    );
}

#[tokio::test]
async fn the_subscription_handshake_echoes_the_challenge() {
    let fake = FakeWhatsapp::start(TOKEN).await;
    let connector = WhatsappConnector::new(&settings(&fake)).unwrap();
    let headers = HeaderMap::new();
    let head = HookHead {
        method: &Method::GET,
        query: Some("hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=verify-me"),
        headers: &headers,
        now_ms: 0,
    };
    let hook = connector.hook().unwrap();
    assert_eq!(hook.admit(&head), Ok(0));
    let reply = hook.handle(&head, b"", &RecordingSink::new()).await.unwrap();
    assert_eq!((reply.status, reply.body), (200, HookBody::Text("1158201444".into())));
    let wrong = HookHead {
        query: Some("hub.mode=subscribe&hub.challenge=1&hub.verify_token=guess"),
        ..head
    };
    assert_eq!(
        hook.handle(&wrong, b"", &RecordingSink::new())
            .await
            .unwrap_err()
            .status,
        403
    );
}

fn outbound(kind: OutboundKind, text: &str, window_open: bool) -> OutboundMessage {
    OutboundMessage {
        delivery_id: "d1".into(),
        conversation_id: 42,
        message_id: 7,
        recipient: CUSTOMER.into(),
        thread: None,
        subject: None,
        text: text.into(),
        kind,
        in_reply_to: None,
        references: vec![],
        attachments: vec![],
        update: None,
        window_open,
        parts_sent: 0,
    }
}

/// The `resolved` update of conversation 42, in English (the settings have its template).
fn resolved_update(window_open: bool) -> OutboundMessage {
    let mut resolved = outbound(OutboundKind::StatusUpdate, "Case 42 resolved", window_open);
    resolved.update = Some(StatusUpdate {
        event: "resolved".into(),
        language: Some("en".into()),
        fields: json!({"conversation_id": 42}),
        ..StatusUpdate::default()
    });
    resolved
}

#[tokio::test]
async fn replies_files_csat_lists_and_templates_reach_the_graph_api() {
    let fake = FakeWhatsapp::start(TOKEN).await;
    let connector = WhatsappConnector::new(&settings(&fake)).unwrap();
    let sender = connector.sender();

    let receipt = sender
        .send(&outbound(OutboundKind::Reply, "Hi Ada", true))
        .await
        .unwrap();
    let mut with_file = outbound(OutboundKind::Reply, "Your invoice", true);
    with_file.attachments = vec![OutboundAttachment {
        filename: "invoice.pdf".into(),
        content_type: "application/pdf".into(),
        data: b"%PDF-1.7".to_vec(),
    }];
    sender.send(&with_file).await.unwrap();
    let mut csat = outbound(OutboundKind::StatusUpdate, "How did we do?", true);
    csat.update = Some(StatusUpdate {
        event: "csat.requested".into(),
        csat: Some(CsatQuestion { token: "tok".into() }),
        ..StatusUpdate::default()
    });
    sender.send(&csat).await.unwrap();
    let resolved = resolved_update(false);
    sender.send(&resolved).await.unwrap();

    let sent = fake.wait_for_sent(4, Duration::from_secs(5)).await;
    assert_eq!(receipt.external_id.as_deref(), Some(sent[0].id.as_str()));
    assert_eq!(sent[0].text(), Some("Hi Ada"));
    assert_eq!(sent[0].body["text"]["preview_url"], false);
    assert_eq!(sent[1].kind, "document");
    assert_eq!(sent[1].body["document"]["caption"], "Your invoice");
    assert_eq!(sent[1].body["document"]["filename"], "invoice.pdf");
    let uploads = fake.uploads();
    assert_eq!(sent[1].body["document"]["id"], json!(uploads[0].media_id));
    assert_eq!(uploads[0].bytes, b"%PDF-1.7");
    assert_eq!(sent[2].body["interactive"]["type"], "list");
    assert_eq!(sent[3].body["template"]["name"], "case_resolved");
    assert_eq!(sent[3].body["template"]["components"][0]["parameters"][0]["text"], "42");

    let mut unconfigured = resolved.clone();
    unconfigured.update.as_mut().unwrap().event = "assigned".into();
    assert!(matches!(
        sender.send(&unconfigured).await,
        Err(SendError::Skipped { .. })
    ));
}

#[tokio::test]
async fn when_meta_says_the_window_closed_an_update_goes_by_its_template_and_a_reply_is_refused() {
    let fake = FakeWhatsapp::start(TOKEN).await;
    let connector = WhatsappConnector::new(&settings(&fake)).unwrap();
    let sender = connector.sender();
    // The desk thinks the window open; Meta, counting from its own record, does not.
    let resolved = resolved_update(true);
    fake.fail_next_sends(Some(CUSTOMER), Failure::re_engagement(), 1);
    let receipt = sender.send(&resolved).await.unwrap();
    let sent = fake.sent();
    assert_eq!(sent.len(), 1, "{sent:#?}");
    assert_eq!(sent[0].body["template"]["name"], "case_resolved");
    assert_eq!(receipt.external_id.as_deref(), Some(sent[0].id.as_str()));

    let mut unconfigured = resolved.clone();
    unconfigured.update.as_mut().unwrap().event = "assigned".into();
    fake.fail_next_sends(Some(CUSTOMER), Failure::re_engagement(), 1);
    let Err(SendError::Skipped { reason }) = sender.send(&unconfigured).await else {
        panic!("an update without a template is skipped");
    };
    assert!(reason.contains("templates.assigned.en"), "{reason}");

    let reply = outbound(OutboundKind::Reply, "Hi", true);
    fake.fail_next_sends(Some(CUSTOMER), Failure::re_engagement(), 1);
    let Err(SendError::Permanent { reason }) = sender.send(&reply).await else {
        panic!("a reply cannot go outside the window");
    };
    assert!(reason.contains("24-hour") && reason.contains("131047"), "{reason}");
    assert_eq!(fake.sent().len(), 1, "only the template went");
}

#[tokio::test]
async fn an_update_begun_inside_the_window_and_retried_outside_it_goes_whole_by_its_template() {
    let fake = FakeWhatsapp::start(TOKEN).await;
    let connector = WhatsappConnector::new(&settings(&fake)).unwrap();
    // Its first part went inside the window; the window closed before the retry.
    let mut resolved = resolved_update(false);
    resolved.parts_sent = 1;
    let receipt = connector.sender().send(&resolved).await.unwrap();
    let sent = fake.sent();
    assert_eq!(sent.len(), 1, "{sent:#?}");
    assert_eq!(sent[0].body["template"]["name"], "case_resolved");
    assert_eq!(receipt.external_id.as_deref(), Some(sent[0].id.as_str()));
}

#[tokio::test]
async fn metas_refusals_are_classified() {
    let fake = FakeWhatsapp::start(TOKEN).await;
    let connector = WhatsappConnector::new(&settings(&fake)).unwrap();
    let sender = connector.sender();
    let reply = outbound(OutboundKind::Reply, "Hi", true);

    fake.fail_next_sends(Some(CUSTOMER), Failure::pair_rate_limit(), 1);
    let Err(SendError::Transient { retry_after, .. }) = sender.send(&reply).await else {
        panic!("131056 is transient");
    };
    assert_eq!(retry_after, Some(Duration::from_millis(50)));

    fake.fail_next_sends(None, Failure::undeliverable(), 1);
    assert!(matches!(sender.send(&reply).await, Err(SendError::Unreachable { .. })));

    fake.fail_next_sends(None, Failure::re_engagement(), 1);
    let Err(SendError::Permanent { reason }) = sender.send(&reply).await else {
        panic!("131047 is permanent");
    };
    assert!(reason.contains("24-hour"), "{reason}");

    fake.fail_next_sends(None, Failure::something_went_wrong(), 1);
    assert!(matches!(sender.send(&reply).await, Err(SendError::Transient { .. })));
    assert!(fake.sent().is_empty());
}
