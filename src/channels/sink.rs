//! What the daemon hands each connector: an [`InboxSink`], through which what arrives is
//! committed (and the outbox, scheduler, subscribers and consoles told), and the inbox's
//! cursors. Connectors see only the traits; this is the one place that binds them to the
//! desk's service and the daemon's counters.

use std::sync::Arc;
use std::time::Instant;

use switchboard_connector_core::{
    BoxFuture, CursorStore, DeliveryReport, InboundMessage, IngestOptions, IngestSink, Ingested, SinkError,
};

use crate::api::AppState;
use crate::channels::Inbox;
use crate::domain::DeskError;
use crate::domain::ingest::IngestOutcome;
use crate::store::StoreError;

/// One inbox's sink and cursor store.
pub struct InboxSink {
    pub state: Arc<AppState>,
    /// Shared with the daemon's table of inboxes: a sink per hook request copies nothing.
    pub inbox: Arc<Inbox>,
}

impl InboxSink {
    fn taken(&self, outcome: &IngestOutcome, took: std::time::Duration) -> Ingested {
        self.state.metrics.ingested(self.inbox.reference.channel, took);
        self.state.committed(&self.inbox.reference, outcome);
        Ingested {
            conversation_id: outcome.conversation_id,
            message_id: outcome.message_id,
            duplicate: outcome.duplicate,
        }
    }
}

/// How a refusal reads to a connector: its hook answers with the matching status.
pub fn sink_error(err: DeskError) -> SinkError {
    match err {
        DeskError::Invalid { field, problem } => SinkError::Invalid {
            field: field.to_owned(),
            problem,
        },
        DeskError::NotFound(what) => SinkError::Invalid {
            field: what.to_owned(),
            problem: "not found".into(),
        },
        DeskError::Conflict(message) | DeskError::Forbidden(message) => SinkError::Invalid {
            field: "message".into(),
            problem: message,
        },
        DeskError::Store(StoreError::Invalid { field, problem }) => SinkError::Invalid {
            field: field.to_owned(),
            problem,
        },
        DeskError::Store(StoreError::NotFound(what)) => SinkError::Invalid {
            field: what.to_owned(),
            problem: "not found".into(),
        },
        DeskError::Store(err @ (StoreError::Conflict(_) | StoreError::Transient(_))) => {
            tracing::warn!(error = %err, "storage unavailable while taking a channel's message");
            SinkError::Unavailable(err.to_string())
        }
        DeskError::Store(err @ StoreError::Fatal(_)) => {
            tracing::error!(error = %err, "storage failure while taking a channel's message");
            SinkError::Failed(err.to_string())
        }
    }
}

impl IngestSink for InboxSink {
    fn ingest(&self, message: InboundMessage, options: IngestOptions) -> BoxFuture<'_, Result<Ingested, SinkError>> {
        Box::pin(async move {
            let mut context = self.state.ingest_context(&self.inbox.reference);
            context.greeting = options.greeting;
            let started = Instant::now();
            let outcome = self.state.service.ingest(context, message).await.map_err(sink_error)?;
            Ok(self.taken(&outcome, started.elapsed()))
        })
    }

    fn ingest_batch(&self, messages: Vec<InboundMessage>) -> BoxFuture<'_, Vec<Result<Ingested, SinkError>>> {
        Box::pin(async move {
            let batch = messages
                .into_iter()
                .map(|message| (self.state.ingest_context(&self.inbox.reference), message))
                .collect();
            let started = Instant::now();
            let outcomes = self.state.service.ingest_in_order(batch).await;
            // The messages of a batch commit together: each waited as long as the batch.
            let took = started.elapsed();
            outcomes
                .into_iter()
                .map(|outcome| outcome.map(|outcome| self.taken(&outcome, took)).map_err(sink_error))
                .collect()
        })
    }

    fn now_ms(&self) -> i64 {
        self.state.clock.now_ms()
    }

    fn unreachable(&self, external_id: String, reason: String) -> BoxFuture<'_, Result<(), SinkError>> {
        Box::pin(async move {
            self.state
                .service
                .mark_unreachable(self.inbox.reference.id, external_id, reason, self.state.clock.now_ms())
                .await
                .map_err(sink_error)?;
            Ok(())
        })
    }

    fn delivery_report(&self, report: DeliveryReport) -> BoxFuture<'_, Result<(), SinkError>> {
        Box::pin(async move {
            let failed = self
                .state
                .service
                .delivery_report(self.inbox.reference.id, report, self.state.clock.now_ms())
                .await
                .map_err(sink_error)?;
            if failed {
                self.state.tell_subscribers();
                self.state.stream.wake();
            }
            Ok(())
        })
    }

    fn reader_connected(&self) -> Option<Box<dyn Send + Sync>> {
        let status = self.state.metrics.reader(&self.inbox.reference.key)?;
        Some(Box::new(status.connected()))
    }

    fn reader_polled(&self) {
        if let Some(status) = self.state.metrics.reader(&self.inbox.reference.key) {
            status.polled(self.state.clock.now_ms());
        }
    }
}

impl CursorStore for InboxSink {
    fn get<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<String>, SinkError>> {
        Box::pin(async move {
            self.state
                .service
                .store()
                .channel_cursor(self.inbox.reference.id, name)
                .await
                .map_err(|err| sink_error(err.into()))
        })
    }

    fn set<'a>(&'a self, name: &'a str, value: String) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            self.state
                .service
                .set_channel_cursor(
                    self.inbox.reference.id,
                    name.to_owned(),
                    value,
                    self.state.clock.now_ms(),
                )
                .await
                .map_err(sink_error)
        })
    }
}
