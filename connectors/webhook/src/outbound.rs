//! Replies and status updates POSTed to the inbox's `callback_url`, signed like inbound
//! requests, and the one place that decides which failures are worth a retry.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::StatusCode;
use reqwest::header::{CONTENT_TYPE, RETRY_AFTER};
use serde_json::json;
use switchboard_connector_core::{OutboundChannel, OutboundMessage, Receipt, SendError};

use crate::config::WebhookSettings;
use crate::signature::{HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP};

/// The callback body's `type`.
pub const OUTBOUND_TYPE: &str = "message.outbound";

/// Sends one inbox's outbound messages. Cheap to clone: the HTTP client is shared.
#[derive(Debug, Clone)]
pub struct WebhookSender {
    client: reqwest::Client,
    settings: WebhookSettings,
}

impl WebhookSender {
    /// `client` should not follow redirects: a callback that moved is a configuration
    /// problem the operator must see, not something to chase with a signed body.
    pub fn new(client: reqwest::Client, settings: WebhookSettings) -> WebhookSender {
        WebhookSender { client, settings }
    }

    /// The JSON body of a callback. A status update adds its `event` and structured
    /// `fields`, so the receiving app can show its own UI instead of the text.
    pub fn body(message: &OutboundMessage) -> Vec<u8> {
        let mut body = json!({
            "type": OUTBOUND_TYPE,
            "conversation_id": message.conversation_id,
            "message_id": message.message_id,
            "to": {"id": message.recipient},
            "thread": message.thread,
            "text": message.text,
            "kind": message.kind.as_str(),
        });
        if let Some(update) = &message.update {
            body["event"] = json!(update.event);
            body["fields"] = update.fields.clone();
        }
        body.to_string().into_bytes()
    }
}

impl OutboundChannel for WebhookSender {
    async fn send(&self, message: &OutboundMessage) -> Result<Receipt, SendError> {
        let request = SignedPost {
            url: self.settings.callback_url.clone(),
            timeout: self.settings.callback_timeout,
            secret: self.settings.signing_secret(),
            id: &message.delivery_id,
            body: WebhookSender::body(message),
        };
        let (status, retry_after) = request.send(&self.client).await?;
        classify_status(status, retry_after)
    }
}

/// One Standard Webhooks request: the body signed with its id and this attempt's time.
pub struct SignedPost<'a> {
    pub url: reqwest::Url,
    pub timeout: Duration,
    pub secret: &'a crate::signature::Secret,
    /// Stable across retries of the same payload, so the receiver can drop one it
    /// already processed.
    pub id: &'a str,
    pub body: Vec<u8>,
}

impl SignedPost<'_> {
    /// POSTs it; returns the receiver's status and the `Retry-After` it named, or the
    /// transport failure (always transient).
    pub async fn send(self, client: &reqwest::Client) -> Result<(StatusCode, Option<Duration>), SendError> {
        // The spec signs each attempt with its own send time.
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let signature = self.secret.sign(self.id, timestamp, &self.body);
        let response = client
            .post(self.url)
            .timeout(self.timeout)
            .header(CONTENT_TYPE, "application/json")
            .header(HEADER_ID, self.id)
            .header(HEADER_TIMESTAMP, timestamp.to_string())
            .header(HEADER_SIGNATURE, signature)
            .body(self.body)
            .send()
            .await
            .map_err(classify_transport_error)?;
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(parse_retry_after);
        Ok((response.status(), retry_after))
    }
}

fn classify_transport_error(err: reqwest::Error) -> SendError {
    // Connection refused, reset, DNS and timeouts all clear up by themselves when the
    // receiver comes back; only a URL we cannot even build would not, and validation
    // already refused those at start.
    let what = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    // Without the URL: a token in its query must not reach `last_error` or a log.
    let err = err.without_url();
    SendError::transient(format!("{what}: {}", error_chain(&err)))
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Decides what a receiver's answer means for this message.
///
/// 2xx is delivered. 408, 425, 429 and 5xx are the receiver being busy or down: retry,
/// after `Retry-After` when it says. Any other status (a 4xx, or a redirect we do not
/// follow) means the receiver refuses this request as it is: retrying the same signed
/// body cannot change that, so the message fails with the status as its reason and an
/// operator can retry it after fixing the receiver.
pub fn classify_status(status: StatusCode, retry_after: Option<Duration>) -> Result<Receipt, SendError> {
    if status.is_success() {
        return Ok(Receipt {
            external_id: None,
            detail: format!("HTTP {}", status.as_u16()),
            thread_id: None,
        });
    }
    let reason = format!("callback answered HTTP {status}");
    let transient = status.is_server_error()
        || matches!(
            status,
            StatusCode::REQUEST_TIMEOUT | StatusCode::TOO_EARLY | StatusCode::TOO_MANY_REQUESTS
        );
    if transient {
        Err(SendError::Transient { reason, retry_after })
    } else {
        Err(SendError::Permanent { reason })
    }
}

/// `Retry-After` in delta-seconds. The HTTP-date form is rare for webhooks and is read
/// as "not said": the retry schedule then applies.
fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_connector_core::OutboundKind;

    #[test]
    fn success_is_a_receipt() {
        assert_eq!(classify_status(StatusCode::ACCEPTED, None).unwrap().detail, "HTTP 202");
    }

    #[test]
    fn busy_or_down_receivers_are_retried_with_their_retry_after() {
        for status in [500, 502, 503, 504, 408, 425, 429] {
            let status = StatusCode::from_u16(status).unwrap();
            let verdict = classify_status(status, Some(Duration::from_secs(7))).unwrap_err();
            assert_eq!(
                verdict,
                SendError::Transient {
                    reason: format!("callback answered HTTP {status}"),
                    retry_after: Some(Duration::from_secs(7))
                }
            );
        }
    }

    #[test]
    fn refusals_and_redirects_fail_for_good() {
        for status in [301, 400, 401, 403, 404, 410, 413, 422] {
            let verdict = classify_status(StatusCode::from_u16(status).unwrap(), None).unwrap_err();
            assert!(matches!(verdict, SendError::Permanent { .. }), "{status}: {verdict:?}");
        }
    }

    #[test]
    fn retry_after_takes_seconds_only() {
        assert_eq!(parse_retry_after(" 120 "), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }

    #[test]
    fn the_body_has_the_documented_shape() {
        let message = OutboundMessage {
            delivery_id: "msg_7".into(),
            conversation_id: 3,
            message_id: 7,
            recipient: "user-42".into(),
            thread: Some("order-1".into()),
            subject: None,
            text: "Hello".into(),
            kind: OutboundKind::StatusUpdate,
            in_reply_to: None,
            references: vec![],
            attachments: vec![],
            update: None,
            window_open: true,
            parts_sent: 0,
        };
        let body: serde_json::Value = serde_json::from_slice(&WebhookSender::body(&message)).unwrap();
        assert_eq!(
            body,
            json!({"type": "message.outbound", "conversation_id": 3, "message_id": 7, "to": {"id": "user-42"},
                   "thread": "order-1", "text": "Hello", "kind": "status_update"})
        );
    }
}
