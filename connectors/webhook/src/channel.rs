//! The webhook channel as the daemon registers it: its declaration, its hook (signed
//! JSON in) and its sender (a signed callback out).

use std::sync::Arc;

use http::header;
use switchboard_connector_core::{
    BoxFuture, Capabilities, Channel, ChannelKind, ChannelSpec, Connector, CsatStyle, Formats, Hook, HookError,
    HookHead, HookReply, IdentityScope, IngestOptions, IngestSink, KeyError, MessageSender, RateLimits, SecretSource,
};

use crate::config::{WebhookConfig, WebhookSettings};
use crate::inbound::{BodyError, parse_body_with};
use crate::outbound::WebhookSender;
use crate::signature::check_headers;

static SPEC: ChannelSpec = ChannelSpec {
    name: "webhook",
    capabilities: Capabilities {
        // The ids are the app's own users: one app's user 42 is not another's.
        identity: IdentityScope::PerInbox,
        vouches_for_sender: true,
        files_in: true,
        files_out: false,
        threads_by_ids: false,
        structured_updates: true,
        formats: Formats {
            subject: false,
            html: false,
            markdown_v2: false,
        },
        csat: CsatStyle::Structured,
        updates_need_address: false,
        reply_window: None,
        limits: RateLimits {
            per_inbox_per_second: None,
            per_recipient_interval: None,
        },
    },
};

/// The generic webhook channel (`[inboxes.KEY.webhook]`).
pub struct Webhook;

impl Channel for Webhook {
    type Config = WebhookConfig;
    type Settings = WebhookSettings;
    const KIND: ChannelKind = ChannelKind::of(&SPEC);

    fn validate(
        config: &WebhookConfig,
        _inbox_key: &str,
        _secrets: &dyn SecretSource,
    ) -> Result<WebhookSettings, KeyError> {
        config.validate()
    }

    fn build(settings: &WebhookSettings, _inbox_key: &str) -> Result<Arc<dyn Connector>, KeyError> {
        // Redirects are not followed: a moved callback is a configuration problem for
        // the operator, not something to chase with a signed body.
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|err| KeyError::new("callback_url", format!("cannot build an HTTP client: {err}")))?;
        Ok(Arc::new(WebhookConnector {
            settings: settings.clone(),
            sender: WebhookSender::new(client, settings.clone()),
        }))
    }
}

struct WebhookConnector {
    settings: WebhookSettings,
    sender: WebhookSender,
}

impl Connector for WebhookConnector {
    fn kind(&self) -> ChannelKind {
        Webhook::KIND
    }

    fn hook(&self) -> Option<&dyn Hook> {
        Some(self)
    }

    fn sender(&self) -> &dyn MessageSender {
        &self.sender
    }
}

/// Bodies larger than this are verified on a blocking thread: an HMAC over megabytes
/// would otherwise hold an async worker that other requests are waiting for.
const VERIFY_INLINE_BYTES: usize = 64 * 1024;

impl Hook for WebhookConnector {
    /// Everything the headers can tell is checked before a byte of the body is read: an
    /// unsigned caller learns nothing else and holds no memory.
    fn admit(&self, head: &HookHead<'_>) -> Result<usize, HookError> {
        if head.method != http::Method::POST {
            return Err(HookError::new(405, "method_not_allowed", "send a POST"));
        }
        let limit = self.settings.max_body_bytes;
        let declared = head
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|length| length > limit as u64) {
            return Err(HookError::new(
                413,
                "body_too_large",
                format!("the body is larger than {limit} bytes"),
            ));
        }
        self.signed(head)?;
        let content_type = head
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let media_type = content_type.split(';').next().unwrap_or("").trim();
        if !media_type.eq_ignore_ascii_case("application/json") {
            return Err(HookError::new(
                415,
                "unsupported_media_type",
                format!("send `Content-Type: application/json`, not `{content_type}`"),
            ));
        }
        Ok(limit)
    }

    fn handle<'a>(
        &'a self,
        head: &'a HookHead<'a>,
        body: &'a [u8],
        sink: &'a dyn IngestSink,
    ) -> BoxFuture<'a, Result<HookReply, HookError>> {
        Box::pin(async move {
            let signed = self.signed(head)?;
            let verified = if body.len() <= VERIFY_INLINE_BYTES {
                signed.verify(&self.settings.secrets, body)
            } else {
                // The blocking thread needs its own copies: made only here.
                let (bytes, secrets) = (body.to_vec(), self.settings.secrets.clone());
                tokio::task::spawn_blocking(move || signed.verify(&secrets, &bytes))
                    .await
                    .map_err(|err| HookError::new(500, "internal", format!("verifying the signature: {err}")))?
            };
            verified.map_err(|err| HookError::new(401, err.code(), err.to_string()))?;
            let message = parse_body_with(body, &self.settings.limits).map_err(|err| match err {
                BodyError::NotJson(_) => HookError::new(400, "invalid_json", err.to_string()),
                BodyError::InvalidField { .. } => HookError::new(422, "invalid_field", err.to_string()),
            })?;
            let ingested = sink.ingest(message, IngestOptions::default()).await?;
            let status = if ingested.duplicate { 200 } else { 202 };
            let body =
                serde_json::to_value(ingested).map_err(|err| HookError::new(500, "internal", err.to_string()))?;
            Ok(HookReply::json(status, body))
        })
    }
}

impl WebhookConnector {
    fn signed(&self, head: &HookHead<'_>) -> Result<crate::signature::SignedHeaders, HookError> {
        check_headers(
            head.headers,
            head.now_ms.div_euclid(1000),
            self.settings.timestamp_tolerance_secs,
        )
        .map_err(|err| HookError::new(401, err.code(), err.to_string()))
    }
}
