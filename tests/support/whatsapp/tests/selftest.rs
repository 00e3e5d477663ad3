//! The fake answers a send as Meta does, records it, and serves hosted media.

use std::time::Duration;

use serde_json::{Value, json};
use switchboard_test_whatsapp::{Failure, FakeWhatsapp};

const TOKEN: &str = "EAAG-test-token";

fn text(to: &str, body: &str) -> Value {
    json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": to,
           "type": "text", "text": {"preview_url": false, "body": body}})
}

/// Posts a text to `to` through the fake's messages endpoint, with `token`.
async fn post_text(fake: &FakeWhatsapp, token: &str, to: &str, body: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/v21.0/1122334455667/messages", fake.api_base()))
        .bearer_auth(token)
        .json(&text(to, body))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_posted_message_is_answered_with_a_wamid_and_listed() {
    let fake = FakeWhatsapp::start(TOKEN).await;
    let answer: Value = post_text(&fake, TOKEN, "4915112345678", "Hello")
        .await
        .json()
        .await
        .unwrap();
    let sent = fake.wait_for_sent(1, Duration::from_secs(5)).await;
    assert_eq!(sent[0].to, "4915112345678");
    assert_eq!(sent[0].text(), Some("Hello"));
    assert_eq!(answer["messages"][0]["id"], json!(sent[0].id));
    assert_eq!(answer["contacts"][0]["wa_id"], "4915112345678");

    let wrong_token = post_text(&fake, "nope", "1", "x").await;
    assert_eq!(wrong_token.status(), 401);
    let error: Value = wrong_token.json().await.unwrap();
    assert_eq!(error["error"]["code"], 190);
}

#[tokio::test]
async fn scripted_failures_answer_graph_errors_then_stop() {
    let fake = FakeWhatsapp::start(TOKEN).await;
    fake.fail_next_sends(Some("4915112345678"), Failure::pair_rate_limit(), 1);
    let first = post_text(&fake, TOKEN, "4915112345678", "a").await;
    assert_eq!(first.status(), 400);
    let error: Value = first.json().await.unwrap();
    assert_eq!(error["error"]["code"], 131_056);
    let second = post_text(&fake, TOKEN, "4915112345678", "b").await;
    assert_eq!(second.status(), 200);
    assert_eq!(fake.sent().len(), 1);
}

#[tokio::test]
async fn hosted_media_is_served_through_its_url() {
    let fake = FakeWhatsapp::start(TOKEN).await;
    fake.host_media("65463453", "image/jpeg", b"\xff\xd8jpeg".to_vec());
    let client = reqwest::Client::new();
    let info: Value = client
        .get(format!("{}/v21.0/65463453", fake.api_base()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["file_size"], 6);
    let bytes = client
        .get(info["url"].as_str().unwrap())
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&bytes[..], b"\xff\xd8jpeg");
}
