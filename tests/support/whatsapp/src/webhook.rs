//! Webhook bodies as Meta delivers them (shaped like the Cloud API fixtures), and the
//! `X-Hub-Signature-256` that signs them.

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

/// The business number's id the helpers' bodies name (as in the fixtures).
pub const PHONE_NUMBER_ID: &str = "1122334455667";
/// The business number's display form in `metadata`.
pub const DISPLAY_PHONE_NUMBER: &str = "15550001111";

/// A body ready to POST: the bytes and the header value that signs them.
#[derive(Debug, Clone)]
pub struct SignedWebhook {
    pub body: Vec<u8>,
    /// `sha256=<hex>`, for `X-Hub-Signature-256`.
    pub signature: String,
}

/// `sha256=<hex HMAC-SHA256(app_secret, body)>`, as Meta computes it.
pub fn signature(app_secret: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(app_secret.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    let hex: String = tag.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("sha256={hex}")
}

/// Serializes `body` and signs it with `app_secret`.
pub fn signed(app_secret: &str, body: &Value) -> SignedWebhook {
    let bytes = serde_json::to_vec(body).expect("a JSON value serializes");
    SignedWebhook {
        signature: signature(app_secret, &bytes),
        body: bytes,
    }
}

/// One delivery of `value` (a change of field `messages`) for `phone_number_id`.
pub fn envelope(phone_number_id: &str, value: Value) -> Value {
    let mut value = value;
    value["messaging_product"] = json!("whatsapp");
    value["metadata"] = json!({
        "display_phone_number": DISPLAY_PHONE_NUMBER,
        "phone_number_id": phone_number_id,
    });
    json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"value": value, "field": "messages"}]}],
    })
}

/// Several messages and statuses in one delivery, each its own change, as Meta batches.
pub fn batch(phone_number_id: &str, deliveries: &[Value]) -> Value {
    let changes: Vec<Value> = deliveries
        .iter()
        .flat_map(|delivery| delivery["entry"][0]["changes"].as_array().cloned().unwrap_or_default())
        .map(|mut change| {
            change["value"]["metadata"]["phone_number_id"] = json!(phone_number_id);
            change
        })
        .collect();
    json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": changes}],
    })
}

fn message_value(from: &str, name: &str, message: Value) -> Value {
    json!({
        "contacts": [{"profile": {"name": name}, "wa_id": from}],
        "messages": [message],
    })
}

fn now_secs() -> String {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
        .to_string()
}

/// A customer's text.
pub fn text_message(from: &str, name: &str, wamid: &str, text: &str) -> Value {
    envelope(
        PHONE_NUMBER_ID,
        message_value(
            from,
            name,
            json!({"from": from, "id": wamid, "timestamp": now_secs(), "text": {"body": text}, "type": "text"}),
        ),
    )
}

/// A customer's picture, its bytes hosted with [`crate::FakeWhatsapp::host_media`] under
/// `media_id`.
pub fn image_message(from: &str, name: &str, wamid: &str, media_id: &str, caption: Option<&str>) -> Value {
    let mut image = json!({"mime_type": "image/jpeg", "sha256": "4654+8g=", "id": media_id});
    if let Some(caption) = caption {
        image["caption"] = json!(caption);
    }
    envelope(
        PHONE_NUMBER_ID,
        message_value(
            from,
            name,
            json!({"from": from, "id": wamid, "timestamp": now_secs(), "type": "image", "image": image}),
        ),
    )
}

/// A press of a list row or reply button whose id is `id` (a CSAT callback, say).
pub fn list_reply(from: &str, name: &str, wamid: &str, id: &str, title: &str) -> Value {
    envelope(
        PHONE_NUMBER_ID,
        message_value(
            from,
            name,
            json!({"from": from, "id": wamid, "timestamp": now_secs(), "type": "interactive",
                   "interactive": {"type": "list_reply", "list_reply": {"id": id, "title": title}}}),
        ),
    )
}

/// A delivery status for one of the business's messages; `errors` are `(code, title)`
/// pairs, given for `failed`.
pub fn status(wamid: &str, state: &str, errors: &[(i64, &str)]) -> Value {
    let mut status = json!({
        "id": wamid,
        "status": state,
        "timestamp": now_secs(),
        "recipient_id": "4915112345678",
    });
    if !errors.is_empty() {
        status["errors"] = errors
            .iter()
            .map(|(code, title)| {
                json!({
                    "code": code,
                    "title": title,
                    "message": title,
                    "error_data": {"details": title},
                    "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/",
                })
            })
            .collect();
    }
    envelope(PHONE_NUMBER_ID, json!({"statuses": [status]}))
}

/// POSTs a signed body to a hook on loopback and returns the status answered.
///
/// # Panics
/// If `url` is not on loopback (tests must not reach out), or on a connection error.
pub async fn post_webhook(url: &str, app_secret: &str, body: &Value) -> u16 {
    let parsed = reqwest::Url::parse(url).unwrap_or_else(|err| panic!("fake WhatsApp: bad hook URL {url:?}: {err}"));
    let host = parsed
        .host_str()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let loopback = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    assert!(
        loopback,
        "fake WhatsApp: refusing to post a webhook off loopback: {url}"
    );
    let signed = signed(app_secret, body);
    reqwest::Client::new()
        .post(parsed)
        .header("content-type", "application/json")
        .header("x-hub-signature-256", signed.signature)
        .body(signed.body)
        .send()
        .await
        .unwrap_or_else(|err| panic!("fake WhatsApp: webhook POST to {url} failed: {err}"))
        .status()
        .as_u16()
}
