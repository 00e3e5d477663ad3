//! The HTTP listener: HTTP/1.1 connections with a deadline for every request's headers
//! (which also closes a connection kept alive but silent), a limit on open connections,
//! and the peer's address on every request for the rate limits.
//!
//! axum's own `serve` has neither timer nor limit: silent connections were held until
//! the process ran out of file descriptors, and then `/healthz` and the outbox failed
//! with it.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tower_service::Service;

use super::config::DoorSettings;

/// Descriptors kept back from the connection limit for the store, the outbox's and the
/// readers' own connections, and log files.
const RESERVED_DESCRIPTORS: usize = 128;

/// The most a connection's read buffer holds, and so the largest request head.
const MAX_READ_BUFFER: usize = 16 * 1024;

/// How often "connection limit reached" is logged while it holds.
const LIMIT_LOG_EVERY: Duration = Duration::from_secs(10);

/// The connection limit the daemon can keep: `configured`, lowered to leave
/// [`RESERVED_DESCRIPTORS`] of the process's open-file limit free.
pub fn connection_limit(configured: usize, open_files: Option<usize>) -> usize {
    match open_files {
        Some(files) if files <= RESERVED_DESCRIPTORS * 2 => configured.min(files / 2).max(1),
        Some(files) => configured.min(files - RESERVED_DESCRIPTORS),
        None => configured,
    }
}

/// The soft open-file limit, read from `/proc/self/limits` (no libc call needed).
fn open_file_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|line| line.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// One open connection: how many requests it is serving, and how to close it.
struct Connection {
    requests: AtomicUsize,
    close: CancellationToken,
}

#[derive(Default)]
struct Connections {
    /// By accept order, so the first idle one found is the oldest.
    open: Mutex<BTreeMap<u64, Arc<Connection>>>,
    closed: Notify,
}

impl Connections {
    fn len(&self) -> usize {
        self.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).len()
    }

    /// Tells the oldest connection with no request in progress to close; false when every
    /// connection is serving one or closing already. It stays counted until its task has
    /// ended: only then is its descriptor free, and a burst of new connections accepted
    /// against closes still under way ran the process out of descriptors.
    fn close_oldest_idle(&self) -> bool {
        let open = self.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let idle = open
            .values()
            .find(|connection| connection.requests.load(Ordering::Acquire) == 0 && !connection.close.is_cancelled());
        match idle {
            Some(connection) => {
                connection.close.cancel();
                true
            }
            None => false,
        }
    }

    fn remove(&self, id: u64) {
        self.open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(&id);
        self.closed.notify_one();
    }
}

/// Counts a request as in progress on its connection until dropped.
struct InProgress(Arc<Connection>);

impl InProgress {
    fn start(connection: &Arc<Connection>) -> InProgress {
        connection.requests.fetch_add(1, Ordering::AcqRel);
        InProgress(Arc::clone(connection))
    }
}

impl Drop for InProgress {
    fn drop(&mut self) {
        self.0.requests.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Serves `app` on `listener` until `shutdown`, then lets open requests finish (the
/// caller bounds that with its grace: dropping this future closes every connection).
pub async fn serve(listener: TcpListener, app: Router, door: &DoorSettings, shutdown: CancellationToken) {
    let limit = connection_limit(door.max_connections, open_file_limit());
    if limit < door.max_connections {
        tracing::warn!(
            configured = door.max_connections,
            limit,
            "server.max_connections lowered to fit the open-file limit"
        );
    }
    let connections = Arc::new(Connections::default());
    let mut tasks = JoinSet::new();
    let mut next_id = 0u64;
    let mut last_limit_log: Option<Instant> = None;
    'serving: loop {
        // Room first, then accept: at the limit an idle connection makes way, and when
        // none is idle the next one waits in the listen queue.
        while connections.len() >= limit {
            let closed = connections.closed.notified();
            let made_room = connections.close_oldest_idle();
            if last_limit_log.is_none_or(|at| at.elapsed() >= LIMIT_LOG_EVERY) {
                last_limit_log = Some(Instant::now());
                tracing::warn!(
                    limit,
                    closed_idle = made_room,
                    "connection limit reached (server.max_connections); {}",
                    if made_room {
                        "closing the oldest idle connection"
                    } else {
                        "new connections wait until one closes"
                    }
                );
            }
            // Either way, room is made when a connection's task has ended.
            tokio::select! {
                () = closed => {}
                () = shutdown.cancelled() => break 'serving,
            }
        }
        while tasks.try_join_next().is_some() {}
        let accepted = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of descriptors or a connection reset before it was taken: the
                // listener itself is fine, so wait a moment rather than spin.
                tracing::warn!(error = %err, "accepting a connection failed");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(50)) => continue,
                    () = shutdown.cancelled() => break,
                }
            }
        };
        let id = next_id;
        next_id += 1;
        let connection = Arc::new(Connection {
            requests: AtomicUsize::new(0),
            close: CancellationToken::new(),
        });
        connections
            .open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(id, Arc::clone(&connection));
        tasks.spawn(serve_connection(
            stream,
            peer,
            app.clone(),
            door.header_timeout,
            Arc::clone(&connection),
            Arc::clone(&connections),
            id,
            shutdown.clone(),
        ));
    }
    drop(listener);
    while tasks.join_next().await.is_some() {}
}

#[allow(clippy::too_many_arguments)]
async fn serve_connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    app: Router,
    header_timeout: Duration,
    connection: Arc<Connection>,
    connections: Arc<Connections>,
    id: u64,
    shutdown: CancellationToken,
) {
    let counted = Arc::clone(&connection);
    let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        let in_progress = InProgress::start(&counted);
        let mut app = app.clone();
        async move {
            let response = app.call(request.map(Body::new)).await;
            drop(in_progress);
            Ok::<_, Infallible>(response.unwrap_or_else(|never| match never {}))
        }
    });
    let served = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        // hyper's read buffer per connection, outside the body budget: a thousand
        // stalled uploads each held up to 400 KiB of it by default. Headers past this
        // size are refused (431), as nginx refuses past 8 KiB a line.
        .max_buf_size(MAX_READ_BUFFER)
        .serve_connection(TokioIo::new(stream), service);
    {
        // In a block of its own: the socket closes when `served` is dropped at its end,
        // before the connection stops being counted.
        tokio::pin!(served);
        tokio::select! {
            result = served.as_mut() => {
                if let Err(err) = result {
                    tracing::debug!(%peer, error = %err, "connection ended with an error");
                }
            }
            () = connection.close.cancelled() => {
                tracing::debug!(%peer, "idle connection closed to make room");
            }
            () = shutdown.cancelled() => {
                served.as_mut().graceful_shutdown();
                tokio::select! {
                    _ = served.as_mut() => {}
                    () = connection.close.cancelled() => {}
                }
            }
        }
    }
    connections.remove(id);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_leaves_descriptors_for_everything_else() {
        assert_eq!(connection_limit(1000, Some(1024)), 896);
        assert_eq!(connection_limit(1000, Some(20_000)), 1000);
        assert_eq!(connection_limit(1000, Some(200)), 100);
        assert_eq!(connection_limit(1000, None), 1000);
    }

    #[test]
    fn the_oldest_idle_connection_makes_room_and_busy_ones_stay() {
        let connections = Connections::default();
        let make = || {
            Arc::new(Connection {
                requests: AtomicUsize::new(0),
                close: CancellationToken::new(),
            })
        };
        let (busy, idle_old, idle_new) = (make(), make(), make());
        let request = InProgress::start(&busy);
        {
            let mut open = connections.open.lock().unwrap();
            open.insert(1, Arc::clone(&busy));
            open.insert(2, Arc::clone(&idle_old));
            open.insert(3, Arc::clone(&idle_new));
        }
        assert!(connections.close_oldest_idle());
        assert!(idle_old.close.is_cancelled() && !busy.close.is_cancelled());
        assert!(connections.close_oldest_idle());
        assert!(idle_new.close.is_cancelled());
        assert!(!connections.close_oldest_idle(), "the busy one stays");
        // Closing ones still count until their tasks end and remove them.
        assert_eq!(connections.len(), 3);
        drop(request);
        assert!(connections.close_oldest_idle());
        for id in [1, 2, 3] {
            connections.remove(id);
        }
        assert_eq!(connections.len(), 0);
    }
}
