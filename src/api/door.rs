//! What the HTTP door allows before any handler does work: request rates per key (token
//! buckets), body bytes held in memory by all requests together, and reading a body
//! within a deadline. Each refusal is a JSON error the sender can act on (429 or 503 with
//! `Retry-After`, 408, 413).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use http_body_util::BodyExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::config::DoorSettings;
use super::error::ApiError;

/// The door's state, shared by every request.
pub struct Door {
    pub budget: BodyBudget,
    pub body_timeout: Duration,
    pub hook_per_inbox: Option<RateLimiter<String>>,
    pub hook_per_address: Option<RateLimiter<std::net::IpAddr>>,
    /// Keyed by the agent a token belongs to.
    pub api_per_agent: Option<RateLimiter<i64>>,
}

impl Door {
    pub fn new(settings: &DoorSettings) -> Door {
        Door {
            budget: BodyBudget::new(settings.max_buffered_body_bytes),
            body_timeout: settings.body_timeout,
            hook_per_inbox: RateLimiter::new(settings.hook_per_inbox),
            hook_per_address: RateLimiter::new(settings.hook_per_address),
            api_per_agent: RateLimiter::new(settings.api_per_token),
        }
    }
}

/// Keys whose buckets are full again are forgotten once this many are held, so a sender
/// cycling through addresses cannot grow the table without bound.
const PRUNE_AT: usize = 10_000;

/// A token bucket per key: `rate` requests a second on average, bursts of `2 × rate`.
/// Hand-written: it is forty lines, and the crates that do it bring a dozen more.
pub struct RateLimiter<K> {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<K, Bucket>>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl<K: Hash + Eq + Clone> RateLimiter<K> {
    /// `None` when `per_second` is 0 (the limit is off).
    pub fn new(per_second: u32) -> Option<RateLimiter<K>> {
        (per_second > 0).then(|| RateLimiter {
            rate: f64::from(per_second),
            burst: 2.0 * f64::from(per_second),
            buckets: Mutex::new(HashMap::new()),
        })
    }

    /// Takes one request's token for `key` at `now`, or says how long until one is free.
    pub fn take(&self, key: &K, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if buckets.len() >= PRUNE_AT {
            let (rate, burst) = (self.rate, self.burst);
            buckets.retain(|_, bucket| bucket.tokens + now.duration_since(bucket.at).as_secs_f64() * rate < burst);
        }
        let bucket = buckets.entry(key.clone()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / self.rate))
        }
    }
}

/// Refuses with 429 when `limiter` has no token for `key`.
pub fn check_rate<K: Hash + Eq + Clone>(limiter: Option<&RateLimiter<K>>, key: &K, what: &str) -> Result<(), ApiError> {
    match limiter.map(|limiter| limiter.take(key, Instant::now())) {
        Some(Err(after)) => Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("too many requests {what}; retry after the time in Retry-After"),
        )
        .retry_after(after)),
        _ => Ok(()),
    }
}

/// The body bytes all requests may hold in memory together.
#[derive(Clone)]
pub struct BodyBudget(Arc<Semaphore>);

/// A body read whole, and the budget it holds until dropped.
pub struct HeldBody {
    pub bytes: Bytes,
    _held: Option<OwnedSemaphorePermit>,
}

impl BodyBudget {
    pub fn new(bytes: usize) -> BodyBudget {
        BodyBudget(Arc::new(Semaphore::new(bytes.min(Semaphore::MAX_PERMITS))))
    }

    /// Bytes not held by any request now.
    pub fn available(&self) -> usize {
        self.0.available_permits()
    }

    /// Reads `body` within `deadline`, at most `limit` bytes, each chunk taken from the
    /// budget as it arrives: a body that would pass the budget is refused at once
    /// rather than waiting, so stalled uploads cannot queue everyone else behind them.
    pub async fn read(&self, body: Body, limit: usize, deadline: Duration) -> Result<HeldBody, ApiError> {
        let mut held: Option<OwnedSemaphorePermit> = None;
        let mut buffer: Vec<u8> = Vec::new();
        let mut body = body;
        let reading = async {
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|err| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "unreadable_body",
                        format!("the body could not be read: {err}"),
                    )
                })?;
                let Ok(chunk) = frame.into_data() else {
                    continue;
                };
                if buffer.len() + chunk.len() > limit {
                    return Err(ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "body_too_large",
                        format!("the body is larger than {limit} bytes"),
                    ));
                }
                // The budget counts what is allocated, not what is filled: a buffer
                // grows by doubling (bounded by the limit), and the growth is what is
                // taken from the budget.
                let needed = buffer.len() + chunk.len();
                if needed > buffer.capacity() {
                    let grown = needed.max(buffer.capacity() * 2).min(limit).max(needed);
                    let more = grown - buffer.capacity();
                    let permits = u32::try_from(more).unwrap_or(u32::MAX);
                    let Ok(permit) = Arc::clone(&self.0).try_acquire_many_owned(permits) else {
                        tracing::warn!(
                            held_bytes = buffer.capacity(),
                            "request bodies in memory reached server.max_buffered_body_bytes; refusing a body"
                        );
                        return Err(ApiError::new(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "busy",
                            "the server holds as many request bodies as it allows; retry shortly",
                        )
                        .retry_after(Duration::from_secs(1)));
                    };
                    match held.as_mut() {
                        Some(all) => all.merge(permit),
                        None => held = Some(permit),
                    }
                    buffer.reserve_exact(grown - buffer.len());
                }
                buffer.extend_from_slice(&chunk);
            }
            Ok(())
        };
        match tokio::time::timeout(deadline, reading).await {
            Ok(Ok(())) => Ok(HeldBody {
                bytes: Bytes::from(buffer),
                _held: held,
            }),
            Ok(Err(response)) => Err(response),
            Err(_) => Err(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                format!("the body did not arrive within {} s", deadline.as_secs_f64()),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let limiter = RateLimiter::new(10).unwrap();
        let start = Instant::now();
        for _ in 0..20 {
            assert!(limiter.take(&"inbox", start).is_ok());
        }
        let wait = limiter.take(&"inbox", start).unwrap_err();
        assert!(
            (Duration::from_millis(99)..=Duration::from_millis(101)).contains(&wait),
            "{wait:?}"
        );
        // Another key has its own bucket.
        assert!(limiter.take(&"other", start).is_ok());
        // A tenth of a second later one more is allowed, and only one.
        let later = start + Duration::from_millis(100);
        assert!(limiter.take(&"inbox", later).is_ok());
        assert!(limiter.take(&"inbox", later).is_err());
        assert!(RateLimiter::<&str>::new(0).is_none());
    }

    #[test]
    fn idle_keys_are_forgotten_when_the_table_is_full() {
        let limiter = RateLimiter::new(1).unwrap();
        let start = Instant::now();
        for key in 0..PRUNE_AT {
            limiter.take(&key, start).unwrap();
        }
        limiter.take(&PRUNE_AT, start + Duration::from_secs(10)).unwrap();
        assert_eq!(limiter.buckets.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn bodies_hold_the_budget_until_dropped_and_past_it_are_refused() {
        let budget = BodyBudget::new(1024 * 1024);
        let first = budget
            .read(Body::from(vec![b'a'; 700 * 1024]), usize::MAX, Duration::from_secs(5))
            .await
            .ok()
            .unwrap();
        assert_eq!(budget.available(), 1024 * 1024 - 700 * 1024);
        let refused = budget
            .read(Body::from(vec![b'b'; 400 * 1024]), usize::MAX, Duration::from_secs(5))
            .await
            .err()
            .unwrap();
        assert_eq!(
            (refused.status, refused.retry_after),
            (StatusCode::SERVICE_UNAVAILABLE, Some(1))
        );
        drop(first);
        assert_eq!(budget.available(), 1024 * 1024);
        let too_large = budget
            .read(Body::from(vec![b'c'; 2048]), 1024, Duration::from_secs(5))
            .await
            .err()
            .unwrap();
        assert_eq!(too_large.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(budget.available(), 1024 * 1024);
    }

    #[tokio::test]
    async fn a_body_that_stalls_is_cut_off_at_the_deadline() {
        use futures_util::StreamExt;
        let first = futures_util::stream::once(async { Ok::<_, std::io::Error>(Bytes::from_static(b"{\"id\":")) });
        let body = Body::from_stream(first.chain(futures_util::stream::pending()));
        let budget = BodyBudget::new(1024 * 1024);
        let refused = budget
            .read(body, usize::MAX, Duration::from_millis(50))
            .await
            .err()
            .unwrap();
        assert_eq!(refused.status, StatusCode::REQUEST_TIMEOUT);
        assert_eq!(budget.available(), 1024 * 1024);
    }
}
