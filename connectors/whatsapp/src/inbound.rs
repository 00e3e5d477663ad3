//! The hook at `/hooks/<inbox>`: Meta's subscription handshake (GET) and its signed
//! webhook deliveries (POST).
//!
//! The head decides what it can before the body is read: a POST without a signature,
//! not JSON, or declared larger than `max_body_bytes` is refused at once; a GET needs no
//! body and is answered in [`Hook::handle`], where the handshake is checked (one place).
//!
//! A delivery is acknowledged only once everything it carries is committed: a store
//! that cannot take a message answers 503 and Meta delivers the batch again (what was
//! already stored is recognised by its wamid). A message the desk refuses as invalid is
//! logged and skipped, since a redelivery would be refused the same way.

use std::sync::Arc;

use serde_json::json;
use switchboard_connector_core::BoxFuture;
use switchboard_connector_core::{
    Hook, HookBody, HookError, HookHead, HookReply, InboundAttachment, IngestOptions, IngestSink, SinkError,
};

use crate::config::WhatsappSettings;
use crate::graph::Graph;
use crate::normalize::{Item, normalize};
use crate::signature::{self, SignatureError};

/// One inbox's hook.
#[derive(Debug)]
pub struct WhatsappHook {
    settings: Arc<WhatsappSettings>,
    graph: Graph,
}

impl WhatsappHook {
    /// `graph` fetches customers' files; the inbox's sender shares it (one pool).
    pub fn new(settings: Arc<WhatsappSettings>, graph: Graph) -> WhatsappHook {
        WhatsappHook { settings, graph }
    }

    fn handshake(&self, head: &HookHead<'_>) -> Result<HookReply, HookError> {
        match signature::handshake(head.query, self.settings.verify_token.expose().as_bytes()) {
            Ok(challenge) => Ok(HookReply {
                status: 200,
                body: HookBody::Text(challenge),
            }),
            Err(err) => {
                tracing::info!(error = %err, "whatsapp hook: a subscription handshake was refused");
                Err(HookError::new(403, "forbidden", err.to_string()))
            }
        }
    }

    async fn deliver(&self, head: &HookHead<'_>, body: &[u8], sink: &dyn IngestSink) -> Result<HookReply, HookError> {
        signature::verify(self.settings.app_secret.expose().as_bytes(), head.headers, body).map_err(signature_error)?;
        let items = normalize(body, &self.settings.phone_number_id)
            .map_err(|err| HookError::new(400, "invalid_json", err.to_string()))?;
        for item in items {
            match item {
                Item::Message { message, media } => {
                    let mut message = *message;
                    if let Some(media) = media {
                        match self.graph.fetch_media(&media, self.settings.max_media_bytes).await {
                            Ok(data) => message.attachments.push(InboundAttachment {
                                filename: media.filename,
                                content_type: media.mime_type,
                                data,
                            }),
                            // The message still counts; the agent sees which file did not come.
                            Err(err) => {
                                tracing::warn!(error = %err, "whatsapp hook: a customer's file could not be fetched");
                                message.details.insert(
                                    "files_not_fetched".into(),
                                    json!([{"filename": media.filename, "error": err.to_string()}]),
                                );
                            }
                        }
                    }
                    let external_id = message.external_id.clone();
                    match sink.ingest(message, IngestOptions::default()).await {
                        Ok(ingested) => tracing::debug!(
                            conversation_id = ingested.conversation_id,
                            duplicate = ingested.duplicate,
                            "whatsapp hook: message taken"
                        ),
                        Err(err) => skip_or_stop(err, &external_id)?,
                    }
                }
                Item::Status(report) => {
                    let external_id = report.external_id.clone();
                    if let Err(err) = sink.delivery_report(report).await {
                        skip_or_stop(err, &external_id)?;
                    }
                }
                Item::Ignored(reason) => tracing::debug!(reason, "whatsapp hook: item skipped"),
            }
        }
        Ok(HookReply::json(200, json!({"ok": true})))
    }
}

fn signature_error(err: SignatureError) -> HookError {
    HookError::new(401, err.code(), err.to_string())
}

/// A busy store stops the delivery (503, Meta retries); an invalid item is only skipped.
fn skip_or_stop(err: SinkError, external_id: &str) -> Result<(), HookError> {
    match err {
        err @ (SinkError::Unavailable(_) | SinkError::Failed(_)) => Err(err.into()),
        SinkError::Invalid { field, problem } => {
            tracing::warn!(
                external_id,
                field,
                problem,
                "whatsapp hook: the desk refused an item; skipped"
            );
            Ok(())
        }
    }
}

/// `application/json`, maybe with parameters (`; charset=utf-8`).
fn is_json(headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

impl Hook for WhatsappHook {
    fn admit(&self, head: &HookHead<'_>) -> Result<usize, HookError> {
        if head.method == http::Method::GET {
            return Ok(0);
        }
        if head.method != http::Method::POST {
            return Err(HookError::new(
                405,
                "method_not_allowed",
                "Meta's webhooks are a GET handshake and POST deliveries",
            ));
        }
        if !signature::has_signature(head.headers) {
            return Err(signature_error(SignatureError::Missing));
        }
        if !is_json(head.headers) {
            return Err(HookError::new(
                415,
                "unsupported_media_type",
                "the body must be `application/json`",
            ));
        }
        let declared = head
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<u64>().ok());
        if let Some(length) = declared
            && length > self.settings.max_body_bytes as u64
        {
            return Err(HookError::new(
                413,
                "body_too_large",
                format!(
                    "the body is {length} bytes, over this inbox's limit of {}",
                    self.settings.max_body_bytes
                ),
            ));
        }
        Ok(self.settings.max_body_bytes)
    }

    fn handle<'a>(
        &'a self,
        head: &'a HookHead<'a>,
        body: &'a [u8],
        sink: &'a dyn IngestSink,
    ) -> BoxFuture<'a, Result<HookReply, HookError>> {
        Box::pin(async move {
            if head.method == http::Method::GET {
                return self.handshake(head);
            }
            self.deliver(head, body, sink).await
        })
    }
}
