//! # The connector compliance suite
//!
//! What every channel must do, checked the same way for each. A connector's own test
//! (`connectors/<channel>/tests/compliance.rs`) describes how its source hands it an
//! input ([`Inbound`]) and which send failures its fakes can stage ([`SendCase`]); the
//! checks here do the rest:
//!
//! - [`check_inbound`]: every fixture normalizes into stored messages with ids and a
//!   sender; the same input delivered twice carries the same ids (so the store's
//!   `(inbox, external id)` key makes the repeat one message); and a store that cannot
//!   commit gets the input back later, unacknowledged, with nothing taken.
//! - [`check_send_errors`]: each staged failure is classified as the contract says
//!   (transient, permanent, unreachable, skipped) and a good send returns a receipt.
//!
//! [`RecordingSink`] stands in for the daemon's store: it commits in memory, dedupes by
//! external id as the store does, and can be told to refuse.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::time::Duration;

use switchboard_connector_core::{
    BoxFuture, CursorStore, DeliveryReport, InboundMessage, IngestOptions, IngestSink, Ingested, MessageSender,
    OutboundMessage, Reader, ReaderContext, SendError, SinkError,
};
use tokio_util::sync::CancellationToken;

/// How long a check waits for a connector before it fails.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// The daemon's store as a connector sees it, in memory.
#[derive(Debug, Default)]
pub struct RecordingSink {
    state: Mutex<Recorded>,
    /// Ingests to refuse (`SinkError::Unavailable`) before taking any.
    refusing: AtomicUsize,
    now_ms: AtomicI64,
    polls: AtomicUsize,
}

#[derive(Debug, Default)]
struct Recorded {
    /// Committed messages, one per external id, in the order first taken.
    messages: Vec<InboundMessage>,
    /// Every external id offered, refused or not, in order.
    offered: Vec<String>,
    refused: usize,
    reports: Vec<DeliveryReport>,
    unreachable: Vec<(String, String)>,
    cursors: BTreeMap<String, String>,
}

impl RecordingSink {
    pub fn new() -> RecordingSink {
        RecordingSink {
            now_ms: AtomicI64::new(1_795_000_000_000),
            ..RecordingSink::default()
        }
    }

    /// The next `count` ingests fail as a store that is down would.
    pub fn refuse(&self, count: usize) {
        self.refusing.store(count, Ordering::SeqCst);
    }

    pub fn messages(&self) -> Vec<InboundMessage> {
        self.state.lock().unwrap().messages.clone()
    }

    /// Every external id offered so far, taken or refused.
    pub fn offered(&self) -> Vec<String> {
        self.state.lock().unwrap().offered.clone()
    }

    /// How many ingests were refused.
    pub fn refused(&self) -> usize {
        self.state.lock().unwrap().refused
    }

    pub fn reports(&self) -> Vec<DeliveryReport> {
        self.state.lock().unwrap().reports.clone()
    }

    pub fn unreachable(&self) -> Vec<(String, String)> {
        self.state.lock().unwrap().unreachable.clone()
    }

    pub fn cursors(&self) -> BTreeMap<String, String> {
        self.state.lock().unwrap().cursors.clone()
    }

    /// How many times a reader said it looked at its source.
    pub fn polls(&self) -> usize {
        self.polls.load(Ordering::SeqCst)
    }

    fn take(&self, message: InboundMessage) -> Result<Ingested, SinkError> {
        let mut state = self.state.lock().unwrap();
        state.offered.push(message.external_id.clone());
        let refuse = self
            .refusing
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| left.checked_sub(1))
            .is_ok();
        if refuse {
            state.refused += 1;
            return Err(SinkError::Unavailable(
                "the compliance sink refuses, as a store that is down".into(),
            ));
        }
        let known = state
            .messages
            .iter()
            .position(|stored| stored.external_id == message.external_id);
        let (index, duplicate) = match known {
            Some(index) => (index, true),
            None => {
                state.messages.push(message);
                (state.messages.len() - 1, false)
            }
        };
        Ok(Ingested {
            conversation_id: 1,
            message_id: index as i64 + 1,
            duplicate,
        })
    }
}

impl IngestSink for RecordingSink {
    fn ingest(&self, message: InboundMessage, _options: IngestOptions) -> BoxFuture<'_, Result<Ingested, SinkError>> {
        Box::pin(async move { self.take(message) })
    }

    fn now_ms(&self) -> i64 {
        self.now_ms.load(Ordering::SeqCst)
    }

    fn unreachable(&self, external_id: String, reason: String) -> BoxFuture<'_, Result<(), SinkError>> {
        Box::pin(async move {
            self.state.lock().unwrap().unreachable.push((external_id, reason));
            Ok(())
        })
    }

    fn delivery_report(&self, report: DeliveryReport) -> BoxFuture<'_, Result<(), SinkError>> {
        Box::pin(async move {
            self.state.lock().unwrap().reports.push(report);
            Ok(())
        })
    }

    fn reader_polled(&self) {
        self.polls.fetch_add(1, Ordering::SeqCst);
    }
}

impl CursorStore for RecordingSink {
    fn get<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<String>, SinkError>> {
        Box::pin(async move { Ok(self.state.lock().unwrap().cursors.get(name).cloned()) })
    }

    fn set<'a>(&'a self, name: &'a str, value: String) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            self.state.lock().unwrap().cursors.insert(name.to_owned(), value);
            Ok(())
        })
    }
}

/// One real input of the channel: a hook body, an update, a mail.
#[derive(Debug, Clone)]
pub struct Fixture {
    pub name: String,
    pub bytes: Vec<u8>,
}

impl Fixture {
    pub fn new(name: impl Into<String>, bytes: impl Into<Vec<u8>>) -> Fixture {
        Fixture {
            name: name.into(),
            bytes: bytes.into(),
        }
    }

    /// The files `names` of `dir`, in that order.
    pub fn read(dir: &std::path::Path, names: &[&str]) -> Vec<Fixture> {
        names
            .iter()
            .map(|name| {
                let bytes = std::fs::read(dir.join(name)).unwrap_or_else(|err| panic!("fixture {name}: {err}"));
                Fixture::new(*name, bytes)
            })
            .collect()
    }
}

/// How a channel's source hands its connector an input, and how the connector tells the
/// source it has it.
pub trait Inbound {
    /// Real inputs of the channel, each carrying at least one customer message.
    fn fixtures(&self) -> Vec<Fixture>;

    /// Hands `fixture` to the connector as its source would (a signed POST to the hook,
    /// an update or mail for its reader) with `sink` as the store, and returns once the
    /// connector has acknowledged it to the source (`true`: a 2xx, a cursor moved past
    /// it) or has given it back (`false`: an error answer, a cursor left before it, after
    /// the sink refused). Returns within [`DEADLINE`].
    fn deliver<'a>(&'a self, fixture: &'a Fixture, sink: &'a RecordingSink) -> BoxFuture<'a, bool>;
}

/// Normalize, dedupe, acknowledge only after commit: every fixture, in order.
pub async fn check_inbound(inbound: &dyn Inbound) {
    let fixtures = inbound.fixtures();
    assert!(!fixtures.is_empty(), "a connector must bring fixtures");
    for fixture in &fixtures {
        let name = &fixture.name;
        // Normalizes: the input becomes messages a conversation can hold.
        let sink = RecordingSink::new();
        assert!(
            within(inbound.deliver(fixture, &sink)).await,
            "{name}: not acknowledged"
        );
        let first = sink.messages();
        assert!(!first.is_empty(), "{name}: acknowledged, but no message was taken");
        for message in &first {
            assert!(!message.external_id.is_empty(), "{name}: a message without an id");
            assert!(
                !message.sender.external_id.is_empty(),
                "{name}: a message without a sender id"
            );
            assert!(
                !message.text.trim().is_empty() || !message.attachments.is_empty() || message.csat.is_some(),
                "{name}: a message with no text, file or score: {message:?}"
            );
        }
        // Dedupes: the same input again carries the same ids, so it is one message.
        assert!(
            within(inbound.deliver(fixture, &sink)).await,
            "{name}: the repeat was not acknowledged"
        );
        let ids = |messages: &[InboundMessage]| -> BTreeSet<String> {
            messages.iter().map(|message| message.external_id.clone()).collect()
        };
        let offered: BTreeSet<String> = sink.offered().into_iter().collect();
        assert_eq!(offered, ids(&first), "{name}: the repeat carried other ids");
        assert_eq!(
            sink.messages().len(),
            first.len(),
            "{name}: the repeat was stored again"
        );

        // Acknowledges after commit: a store that cannot commit gets it back.
        let down = RecordingSink::new();
        down.refuse(usize::MAX);
        assert!(
            !within(inbound.deliver(fixture, &down)).await,
            "{name}: acknowledged although nothing was committed"
        );
        assert!(down.refused() > 0, "{name}: the sink was never asked");
        assert!(down.messages().is_empty(), "{name}: stored although refused");
        down.refuse(0);
        assert!(
            within(inbound.deliver(fixture, &down)).await,
            "{name}: not acknowledged once the store was back"
        );
        assert_eq!(
            ids(&down.messages()),
            ids(&first),
            "{name}: the redelivery lost a message"
        );
    }
}

/// Runs a pulling channel's reader on `sink` until `watch` settles what became of an
/// input, then stops it: the frame of a reader's [`Inbound::deliver`].
pub async fn while_reading<T>(reader: &dyn Reader, sink: &RecordingSink, watch: impl Future<Output = T>) -> T {
    let shutdown = CancellationToken::new();
    let run = reader.run(ReaderContext {
        sink,
        cursors: sink,
        shutdown: shutdown.clone(),
    });
    let settled = tokio::select! {
        settled = watch => settled,
        () = run => panic!("the reader stopped by itself"),
    };
    shutdown.cancel();
    settled
}

/// Polls `probe` until it gives a value; fails the check past [`DEADLINE`].
pub async fn until<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "waited {DEADLINE:?} for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn within<T>(work: impl Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE + Duration::from_secs(5), work)
        .await
        .expect("the connector answered within the compliance deadline")
}

/// The contract's verdicts on a send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Sent,
    Transient,
    Permanent,
    Unreachable,
    Skipped,
}

impl Verdict {
    pub fn of(result: &Result<switchboard_connector_core::Receipt, SendError>) -> Verdict {
        match result {
            Ok(_) => Verdict::Sent,
            Err(error) => Verdict::of_error(error),
        }
    }

    fn of_error(error: &SendError) -> Verdict {
        match error {
            SendError::Transient { .. } => Verdict::Transient,
            SendError::Permanent { .. } => Verdict::Permanent,
            SendError::Unreachable { .. } => Verdict::Unreachable,
            SendError::Skipped { .. } => Verdict::Skipped,
            SendError::PartlySent { error, .. } => Verdict::of_error(error),
        }
    }
}

/// What a case does before its send: tells the channel's fake how to answer, stops a
/// server.
pub type Stage<'a> = Box<dyn Fn() -> BoxFuture<'a, ()> + 'a>;

/// A stage that only sets something up, at once.
pub fn stage<'a>(set_up: impl Fn() + Send + Sync + 'a) -> Stage<'a> {
    let set_up = std::sync::Arc::new(set_up);
    Box::new(move || {
        set_up();
        Box::pin(async {})
    })
}

/// One staged send: `stage` makes the channel answer a certain way, then `message` is
/// sent and must come back as `expect`.
pub struct SendCase<'a> {
    pub name: &'a str,
    pub stage: Stage<'a>,
    pub message: OutboundMessage,
    pub expect: Verdict,
}

/// Each case's send classified as expected. The cases must cover a good send, a failure
/// worth retrying and one that is not; `Unreachable` and `Skipped` too where the channel
/// has them (a bot a customer blocked, a reply window).
pub async fn check_send_errors(sender: &dyn MessageSender, cases: Vec<SendCase<'_>>) {
    let covered: BTreeSet<_> = cases.iter().map(|case| format!("{:?}", case.expect)).collect();
    for needed in ["Sent", "Transient", "Permanent"] {
        assert!(covered.contains(needed), "the cases must include a {needed} send");
    }
    for case in cases {
        (case.stage)().await;
        let result = within(sender.send(&case.message)).await;
        assert_eq!(Verdict::of(&result), case.expect, "{}: {result:?}", case.name);
        if let Err(
            SendError::Transient { reason, .. }
            | SendError::Permanent { reason }
            | SendError::Unreachable { reason }
            | SendError::Skipped { reason },
        ) = &result
        {
            assert!(!reason.trim().is_empty(), "{}: a verdict must say why", case.name);
        }
    }
}

/// A plain outbound message, for cases that need nothing more.
pub fn outbound(recipient: &str, text: &str) -> OutboundMessage {
    OutboundMessage {
        delivery_id: "msg_1".into(),
        conversation_id: 1,
        message_id: 1,
        recipient: recipient.into(),
        thread: None,
        subject: Some("Your request".into()),
        text: text.into(),
        kind: switchboard_connector_core::OutboundKind::Reply,
        in_reply_to: None,
        references: Vec::new(),
        attachments: Vec::new(),
        update: None,
        window_open: true,
        parts_sent: 0,
    }
}
