//! `GET /api/v1/stream`: Server-Sent Events of what the caller may see (new
//! conversations and messages, assignments, escalations, SLA warnings, status changes),
//! resumable with `Last-Event-ID`. Consoles and integrations read the same stream.
//!
//! One [`StreamHub`] reads what was committed, once for every connection, and hands it
//! on through a broadcast channel; each connection judges visibility for its caller.
//! A connection that resumes, or falls behind the channel, reads what it missed from
//! the store itself, so the hub never holds history: its memory does not grow with the
//! number of agents or with their slowness.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;

use super::AppState;
use super::error::ApiError;
use super::v1::{Authenticated, caller, reject_unknown};
use crate::auth::hash_token;
use crate::domain::access::{self, Caller};
use crate::query::{Queries, StreamChange, StreamItem, StreamPosition};

/// Items the broadcast channel holds for connections that have not read them yet; one
/// that falls further behind reads from the store instead.
const CHANNEL_CAPACITY: usize = 4096;
/// Rows of each kind read at once.
const BATCH: u32 = 500;
/// A resumed connection further behind than this is told to reload instead
/// (`stream.reset`) rather than replaying a day of the desk.
const MAX_REPLAY: usize = 10_000;
/// How often the hub looks for changes nobody woke it for (a clock that fired).
const POLL: Duration = Duration::from_millis(500);
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// What one write to a connection carries at most when it is behind: events waiting in
/// its channel go out together, one system call instead of one each.
const MAX_WRITE: usize = 64 * 1024;

/// One committed change, ready to send: its whole event written once for every
/// connection, with the position before and after it.
pub struct Told {
    item: StreamItem,
    before: StreamPosition,
    after: StreamPosition,
    frame: Bytes,
}

/// An event as the wire carries it. The data is one line: JSON as serde writes it has no
/// line breaks.
fn frame(id: StreamPosition, kind: &str, data: &str) -> String {
    format!("id: {}\nevent: {kind}\ndata: {data}\n\n", id.encode())
}

/// Reads what was committed and hands it to every connection.
pub struct StreamHub {
    /// Taken at shutdown, which ends every connection's stream.
    sender: Mutex<Option<broadcast::Sender<Arc<Told>>>>,
    wakeup: Notify,
    /// Counts changes to agents (deactivated, teams or role changed, a token revoked):
    /// each connection checks its caller again at once.
    agents_changed: tokio::sync::watch::Sender<u64>,
}

impl Default for StreamHub {
    fn default() -> StreamHub {
        StreamHub {
            sender: Mutex::new(Some(broadcast::channel(CHANNEL_CAPACITY).0)),
            wakeup: Notify::new(),
            agents_changed: tokio::sync::watch::Sender::new(0),
        }
    }
}

impl StreamHub {
    /// An agent changed: every connection asks again who its caller is and what they may
    /// see. Other daemons' changes are seen at each connection's keep-alive.
    pub fn agents_changed(&self) {
        self.agents_changed.send_modify(|count| *count = count.wrapping_add(1));
    }

    /// Something was committed: look now rather than at the next poll.
    pub fn wake(&self) {
        self.wakeup.notify_one();
    }

    fn subscribe(&self) -> Option<broadcast::Receiver<Arc<Told>>> {
        let sender = self.sender.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        sender.as_ref().map(broadcast::Sender::subscribe)
    }

    fn listeners(&self) -> usize {
        let sender = self.sender.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        sender.as_ref().map_or(0, broadcast::Sender::receiver_count)
    }

    fn publish(&self, told: Told) {
        let sender = self.sender.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(sender) = sender.as_ref() {
            // No receiver is no error: nobody is listening right now.
            let _ = sender.send(Arc::new(told));
        }
    }

    /// Until `shutdown`: reads what was committed after the last look and publishes it.
    pub async fn run(self: Arc<Self>, queries: Arc<dyn Queries>, shutdown: CancellationToken) {
        let mut head = match queries.stream_head().await {
            Ok(head) => head,
            Err(err) => {
                tracing::error!(error = %err, "the live stream cannot read where the desk stands");
                StreamPosition::default()
            }
        };
        loop {
            let polled = tokio::select! {
                () = shutdown.cancelled() => break,
                () = self.wakeup.notified() => false,
                () = tokio::time::sleep(POLL) => true,
            };
            // With nobody listening a commit costs the hub nothing; the poll keeps its
            // head near the store's, so the first listener's start is read quickly.
            if !polled && self.listeners() == 0 {
                continue;
            }
            if let Err(err) = self.look(queries.as_ref(), &mut head).await {
                tracing::warn!(error = %err, "the live stream could not read the latest changes; trying again");
            }
        }
        // Every connection's receiver now ends, and with it its response.
        self.sender
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
    }

    async fn look(&self, queries: &dyn Queries, head: &mut StreamPosition) -> crate::store::StoreResult<()> {
        // The head is read before the listeners are counted: a connection that
        // subscribes after the count reads from the store up to at least this head
        // itself, so skipping to it loses nothing for anyone.
        if self.listeners() == 0 {
            *head = queries.stream_head().await?;
            return Ok(());
        }
        loop {
            let items = queries.stream_after(*head, BATCH).await?;
            let full = items.len() >= BATCH as usize;
            for item in items {
                let before = *head;
                *head = head.past(&item);
                let frame = frame(*head, item.kind(), &payload(&item).to_string());
                self.publish(Told {
                    item,
                    before,
                    after: *head,
                    frame: Bytes::from(frame),
                });
            }
            if !full {
                return Ok(());
            }
        }
    }
}

/// What an item's `data` line carries.
fn payload(item: &StreamItem) -> Value {
    let conversation = &item.conversation;
    match &item.change {
        StreamChange::Event(event) => json!({
            "conversation_id": conversation.id,
            "conversation": conversation,
            "event": event,
        }),
        StreamChange::Message(message) => json!({
            "conversation_id": conversation.id,
            "conversation": conversation,
            "message": message,
        }),
    }
}

fn visible(caller: &Caller, item: &StreamItem) -> bool {
    access::may_read(caller, item.conversation.team.as_deref(), item.conversation.assignee_id)
}

/// One connection: what it has told (or skipped as not its caller's) and what it is
/// about to.
struct Connection {
    state: Arc<AppState>,
    caller: Caller,
    /// What the connection was opened with, checked again whenever agents change.
    credential: Credential,
    agents_changed: tokio::sync::watch::Receiver<u64>,
    receiver: broadcast::Receiver<Arc<Told>>,
    told: StreamPosition,
    /// Read from the store while catching up.
    replay: VecDeque<StreamItem>,
    replayed: usize,
    /// Whether the store has nothing newer than `told` that the channel will not bring.
    caught_up: bool,
    ready_sent: bool,
}

enum Next {
    Send(Bytes),
    Skip,
    End,
}

impl Connection {
    /// The item's event for this connection, if it has not told it and may see it.
    fn event_for(&mut self, item: &StreamItem) -> Option<Bytes> {
        if self.told.covers(item) {
            return None;
        }
        self.told = self.told.past(item);
        visible(&self.caller, item).then(|| Bytes::from(frame(self.told, item.kind(), &payload(item).to_string())))
    }

    /// A live item: the hub's frame as it is when this connection stands where the hub
    /// stood before it (the usual case), else written for this connection.
    fn live(&mut self, told: &Told) -> Option<Bytes> {
        if self.told != told.before {
            return self.event_for(&told.item);
        }
        self.told = told.after;
        visible(&self.caller, &told.item).then(|| told.frame.clone())
    }

    async fn next(&mut self) -> Next {
        if let Some(item) = self.replay.pop_front() {
            return self.event_for(&item).map_or(Next::Skip, Next::Send);
        }
        if !self.caught_up {
            match self.state.queries.stream_after(self.told, BATCH).await {
                Ok(items) if items.is_empty() => self.caught_up = true,
                Ok(items) => {
                    self.replayed += items.len();
                    if self.replayed > MAX_REPLAY {
                        return self.reset().await;
                    }
                    self.replay.extend(items);
                    return Next::Skip;
                }
                Err(err) => {
                    tracing::warn!(error = %err, "a stream could not read what it missed; ending it");
                    return Next::End;
                }
            }
        }
        if !self.ready_sent {
            self.ready_sent = true;
            self.replayed = 0;
            let data = json!({"position": self.told.encode()}).to_string();
            return Next::Send(Bytes::from(frame(self.told, "stream.ready", &data)));
        }
        let received = tokio::select! {
            received = tokio::time::timeout(KEEP_ALIVE, self.receiver.recv()) => received,
            _ = self.agents_changed.changed() => {
                return if self.still_allowed().await { Next::Skip } else { Next::End };
            }
        };
        let first = match received {
            Err(_) => {
                if !self.still_allowed().await {
                    return Next::End;
                }
                return Next::Send(Bytes::from_static(b": keep-alive\n\n"));
            }
            Ok(Ok(told)) => told,
            Ok(Err(broadcast::error::RecvError::Lagged(missed))) => {
                tracing::debug!(missed, "a stream fell behind; reading what it missed from the store");
                self.caught_up = false;
                return Next::Skip;
            }
            Ok(Err(broadcast::error::RecvError::Closed)) => return Next::End,
        };
        let Some(frame) = self.live(&first) else {
            return Next::Skip;
        };
        // What else waits goes out in the same write.
        let mut batch: Option<Vec<u8>> = None;
        loop {
            let size = batch.as_ref().map_or(frame.len(), Vec::len);
            if size >= MAX_WRITE {
                break;
            }
            match self.receiver.try_recv() {
                Ok(told) => {
                    if let Some(next) = self.live(&told) {
                        batch.get_or_insert_with(|| frame.to_vec()).extend_from_slice(&next);
                    }
                }
                Err(broadcast::error::TryRecvError::Lagged(_)) => {
                    self.caught_up = false;
                    break;
                }
                Err(broadcast::error::TryRecvError::Empty | broadcast::error::TryRecvError::Closed) => break,
            }
        }
        Next::Send(batch.map_or(frame, Bytes::from))
    }

    /// Whether the credential still lets its agent in (not revoked, signed out or
    /// deactivated); the caller's teams and role are read again with it.
    async fn still_allowed(&mut self) -> bool {
        let agent = match &self.credential {
            Credential::Token(hash) => self.state.queries.agent_by_token_hash(hash).await,
            Credential::Session(hash) => self
                .state
                .queries
                .session(hash, self.state.clock.now_ms())
                .await
                .map(|session| session.map(|session| session.agent)),
        };
        match agent {
            Ok(Some(agent)) => {
                self.caller = caller(&self.state, &agent);
                true
            }
            Ok(None) => false,
            // The store could not answer: keep the connection; the next check decides.
            Err(err) => {
                tracing::warn!(error = %err, "a stream could not check its caller again");
                true
            }
        }
    }

    /// Too far behind to replay: the client reloads what it shows and goes on from now.
    async fn reset(&mut self) -> Next {
        self.replay.clear();
        self.replayed = 0;
        match self.state.queries.stream_head().await {
            Ok(head) => {
                self.told = head;
                self.caught_up = false;
                let data = json!({"position": head.encode(), "reason": "too far behind; reload"}).to_string();
                Next::Send(Bytes::from(frame(head, "stream.reset", &data)))
            }
            Err(_) => Next::End,
        }
    }
}

/// The secret a connection was opened with, as stored (its SHA-256).
enum Credential {
    Token(Vec<u8>),
    Session(Vec<u8>),
}

impl Credential {
    /// The same choice [`Authenticated`] made: a bearer token first, else the session.
    fn of(headers: &HeaderMap) -> Option<Credential> {
        if let Some(token) = super::v1::bearer_token(headers) {
            return Some(Credential::Token(hash_token(token)));
        }
        super::sessions::session_token(headers).map(|cookie| Credential::Session(hash_token(cookie)))
    }
}

/// `GET /api/v1/stream`, with `Last-Event-ID` (or `?last_event_id=`) to resume.
pub async fn stream(
    State(state): State<Arc<AppState>>,
    Authenticated(agent): Authenticated,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    reject_unknown(params.keys(), &["last_event_id"], "query parameter")?;
    let resume_from = headers
        .get("last-event-id")
        .map(|value| value.to_str().unwrap_or_default().to_owned())
        .or_else(|| params.get("last_event_id").cloned())
        .filter(|value| !value.trim().is_empty());
    // Subscribed before the start is read: whatever commits from here on is either in
    // the store when the connection catches up, or in the channel, or both.
    let receiver = state.stream.subscribe().ok_or_else(|| {
        ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "the daemon is shutting down",
        )
    })?;
    let told = match resume_from {
        Some(text) => StreamPosition::decode(&text)
            .ok_or_else(|| ApiError::invalid("Last-Event-ID", "is not an id this stream sent"))?,
        None => state.queries.stream_head().await?,
    };
    let Some(credential) = Credential::of(&headers) else {
        return Err(ApiError::new(
            axum::http::StatusCode::UNAUTHORIZED,
            "unauthorized",
            "sign in or send a token",
        ));
    };
    let mut agents_changed = state.stream.agents_changed.subscribe();
    agents_changed.mark_unchanged();
    let connection = Connection {
        caller: caller(&state, &agent),
        credential,
        agents_changed,
        state,
        receiver,
        told,
        replay: VecDeque::new(),
        replayed: 0,
        caught_up: false,
        ready_sent: false,
    };
    let events = futures_util::stream::unfold(connection, |mut connection| async move {
        loop {
            match connection.next().await {
                Next::Send(bytes) => return Some((Ok::<Bytes, Infallible>(bytes), connection)),
                Next::Skip => continue,
                Next::End => return None,
            }
        }
    });
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream")),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            // Proxies that buffer (nginx) would hold the events back.
            (
                header::HeaderName::from_static("x-accel-buffering"),
                HeaderValue::from_static("no"),
            ),
        ],
        Body::from_stream(events),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_round_trip_and_refuse_what_the_stream_never_sent() {
        use crate::query::Mark;
        let sqlite = StreamPosition {
            event: Mark { tx: 0, id: 12 },
            message: Mark { tx: 0, id: 7 },
        };
        assert_eq!(
            sqlite.encode(),
            "12-7",
            "SQLite's positions read as before transactions were in them"
        );
        let postgres = StreamPosition {
            event: Mark { tx: 7401, id: 12 },
            message: Mark { tx: 7388, id: 7 },
        };
        assert_eq!(postgres.encode(), "7401.12-7388.7");
        for position in [sqlite, postgres] {
            assert_eq!(StreamPosition::decode(&position.encode()), Some(position));
        }
        for bad in [
            "", "12", "a-b", "-1-2", "1-", "1.2", "1..2-3", "1.-2-3", "x.1-2", "1.2.3-4",
        ] {
            assert_eq!(StreamPosition::decode(bad), None, "{bad}");
        }
    }
}
