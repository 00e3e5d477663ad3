//! A closed-loop HTTP/1.1 load generator: N clients, each on its own keep-alive
//! connection, each sending its next request as soon as the previous one is answered.
//! Built on hyper's connection API directly so the generator spends as little of the
//! machine's two cores as it can: what it spends, both the daemon and the bare endpoint
//! lose alike.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// What one client sends, and what it makes of the answer.
pub trait Workload: Send + Sync + 'static {
    fn request(&self, client: usize, seq: u64) -> Request<Full<Bytes>>;

    /// Whether the answer counts as acknowledged.
    fn accepted(&self, status: StatusCode) -> bool {
        status.is_success()
    }

    /// Called for every accepted answer, with the time the request was sent.
    fn on_accepted(&self, _started: Instant, _body: &Bytes) {}
}

/// Latencies in microseconds, up to one minute.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

pub struct LoadResult {
    pub clients: usize,
    pub elapsed: Duration,
    pub accepted: u64,
    pub errors: u64,
    /// The first few error descriptions, to say what went wrong.
    pub error_samples: Vec<String>,
    pub latency_us: Histogram<u64>,
}

impl LoadResult {
    pub fn per_second(&self) -> f64 {
        self.accepted as f64 / self.elapsed.as_secs_f64()
    }

    pub fn percentile_ms(&self, percentile: f64) -> f64 {
        self.latency_us.value_at_quantile(percentile / 100.0) as f64 / 1000.0
    }
}

struct ClientResult {
    accepted: u64,
    errors: u64,
    error_samples: Vec<String>,
    latency_us: Histogram<u64>,
}

/// Runs `clients` closed-loop clients against `address` for `duration`. Requests still
/// in flight at the end are awaited and counted, so `accepted` is exactly what the
/// server acknowledged.
pub async fn run(address: SocketAddr, clients: usize, duration: Duration, workload: Arc<dyn Workload>) -> LoadResult {
    run_with(&[address], clients, duration, None, None, workload).await
}

/// Like [`run`] against several servers of one desk: client i sends to server i mod n,
/// so the load is split evenly (clients alternate between two daemons).
pub async fn run_across(
    addresses: &[SocketAddr],
    clients: usize,
    duration: Duration,
    workload: Arc<dyn Workload>,
) -> LoadResult {
    run_with(addresses, clients, duration, None, None, workload).await
}

/// Like [`run`], but the clients stop once `total` requests have been sent between them
/// (or after `limit`, whichever comes first): for queueing a fixed amount of work as fast
/// as the server takes it.
pub async fn run_count(
    address: SocketAddr,
    clients: usize,
    total: u64,
    limit: Duration,
    workload: Arc<dyn Workload>,
) -> LoadResult {
    let budget = Arc::new(AtomicU64::new(total));
    run_with(&[address], clients, limit, None, Some(budget), workload).await
}

/// Like [`run`], but the clients together offer `per_second` requests, evenly spaced,
/// whatever the answers' speed. A request's latency counts from when it was due, not
/// from when a late client got round to sending it, so a server that falls behind
/// shows it (no coordinated omission).
pub async fn run_paced(
    address: SocketAddr,
    clients: usize,
    duration: Duration,
    per_second: f64,
    workload: Arc<dyn Workload>,
) -> LoadResult {
    run_with(&[address], clients, duration, Some(per_second), None, workload).await
}

/// [`run_paced`] across several servers, as [`run_across`] splits them.
pub async fn run_paced_across(
    addresses: &[SocketAddr],
    clients: usize,
    duration: Duration,
    per_second: f64,
    workload: Arc<dyn Workload>,
) -> LoadResult {
    run_with(addresses, clients, duration, Some(per_second), None, workload).await
}

async fn run_with(
    addresses: &[SocketAddr],
    clients: usize,
    duration: Duration,
    per_second: Option<f64>,
    budget: Option<Arc<AtomicU64>>,
    workload: Arc<dyn Workload>,
) -> LoadResult {
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = (0..clients)
        .map(|client| {
            let workload = Arc::clone(&workload);
            let budget = budget.clone();
            // Client i of n sends the requests due at (i + k n) / rate.
            let pace = per_second.map(|rate| Pace {
                first: started + Duration::from_secs_f64(client as f64 / rate),
                interval: Duration::from_secs_f64(clients as f64 / rate),
            });
            let address = addresses[client % addresses.len()];
            tokio::spawn(async move { run_client(address, client, deadline, pace, budget, workload).await })
        })
        .collect();
    let mut result = LoadResult {
        clients,
        elapsed: Duration::ZERO,
        accepted: 0,
        errors: 0,
        error_samples: Vec::new(),
        latency_us: histogram(),
    };
    for task in tasks {
        let client = task.await.expect("a load client panicked");
        result.accepted += client.accepted;
        result.errors += client.errors;
        result
            .latency_us
            .add(&client.latency_us)
            .expect("same histogram bounds");
        for sample in client.error_samples {
            if result.error_samples.len() < 5 {
                result.error_samples.push(sample);
            }
        }
    }
    result.elapsed = started.elapsed();
    result
}

/// One request on a connection of its own: for checks outside the measurement.
pub async fn fetch(address: SocketAddr, request: Request<Full<Bytes>>) -> Result<(StatusCode, Bytes), String> {
    let mut sender = connect(address).await?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|err| format!("request: {err}"))?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|err| format!("body: {err}"))?;
    Ok((status, body.to_bytes()))
}

pub type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

pub type Connection = hyper::client::conn::http1::Connection<TokioIo<TcpStream>, Full<Bytes>>;

/// A kept-alive HTTP/1.1 connection to `address`, Nagle off, driven by a task of its own.
async fn connect(address: SocketAddr) -> Result<Sender, String> {
    let (sender, connection) = handshake(address).await?;
    tokio::spawn(connection);
    Ok(sender)
}

/// A kept-alive HTTP/1.1 connection to `address`, Nagle off; the caller drives the
/// connection (a future), which saves a task's wake-up per frame when it reads a stream.
pub async fn handshake(address: SocketAddr) -> Result<(Sender, Connection), String> {
    let stream = TcpStream::connect(address)
        .await
        .map_err(|err| format!("connect: {err}"))?;
    stream.set_nodelay(true).map_err(|err| format!("nodelay: {err}"))?;
    hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|err| format!("handshake: {err}"))
}

#[derive(Clone, Copy)]
struct Pace {
    first: Instant,
    interval: Duration,
}

async fn run_client(
    address: SocketAddr,
    client: usize,
    deadline: Instant,
    pace: Option<Pace>,
    budget: Option<Arc<AtomicU64>>,
    workload: Arc<dyn Workload>,
) -> ClientResult {
    let mut result = ClientResult {
        accepted: 0,
        errors: 0,
        error_samples: Vec::new(),
        latency_us: histogram(),
    };
    let failed = |result: &mut ClientResult, what: String| {
        result.errors += 1;
        if result.error_samples.len() < 3 {
            result.error_samples.push(what);
        }
    };
    let mut sender: Option<Sender> = None;
    let mut seq = 0u64;
    while Instant::now() < deadline {
        let current = match sender.as_mut() {
            Some(current) => current,
            None => match connect(address).await {
                Ok(new) => sender.insert(new),
                Err(err) => {
                    failed(&mut result, err);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let sent = match pace {
            Some(pace) => {
                let due = pace.first + pace.interval * seq as u32;
                if due >= deadline {
                    break;
                }
                tokio::time::sleep_until(due.into()).await;
                due
            }
            None => Instant::now(),
        };
        // Taken once the connection is up, so a failed connect does not use up a request.
        if let Some(budget) = &budget
            && budget
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| left.checked_sub(1))
                .is_err()
        {
            break;
        }
        let request = workload.request(client, seq);
        seq += 1;
        let response = match current.send_request(request).await {
            Ok(response) => response,
            Err(err) => {
                failed(&mut result, format!("request: {err}"));
                sender = None;
                continue;
            }
        };
        let status = response.status();
        let body = match response.into_body().collect().await {
            Ok(body) => body.to_bytes(),
            Err(err) => {
                failed(&mut result, format!("body: {err}"));
                sender = None;
                continue;
            }
        };
        let latency = sent.elapsed();
        if workload.accepted(status) {
            result.accepted += 1;
            result.latency_us.saturating_record(latency.as_micros() as u64);
            workload.on_accepted(sent, &body);
        } else {
            failed(
                &mut result,
                format!("HTTP {status}: {}", String::from_utf8_lossy(&body)),
            );
        }
    }
    result
}
