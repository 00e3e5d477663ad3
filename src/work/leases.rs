//! Work only one daemon at a time may do: reading an IMAP mailbox, polling a Telegram
//! bot. Several daemons on one store each run [`run_leased`] for every such reader; the
//! one that holds the reader's lease runs it, renewing the lease while it lives; the
//! others wait and take the lease over when it runs out (its holder died), then the
//! reader resumes from the cursor stored with what it had committed.
//!
//! A holder that cannot renew stops its reader before the lease can run out, so two
//! readers overlap only if a daemon stalls longer than the margin; what they would both
//! read is deduplicated by the channel's message id anyway.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::domain::service::Service;
use crate::model::millis;

/// How long a reader's lease lasts unless renewed: a dead daemon's reader is taken over
/// this long after its last renewal, at the latest.
pub const LEASE: Duration = Duration::from_secs(20);
/// How often the holder renews, and how often the others look whether it ran out.
pub const RENEW_EVERY: Duration = Duration::from_secs(5);
/// A holder that could not renew stops its reader this long before the lease runs out.
const MARGIN: Duration = Duration::from_secs(5);

/// Runs `reader` whenever this daemon holds the lease `name`, until `shutdown`. `reader`
/// gets a token that is cancelled when the lease is lost or the daemon stops, and must
/// return soon after. At shutdown the lease is given up, so another daemon takes the
/// reader over at once.
pub async fn run_leased<R, F>(
    service: Service,
    clock: Arc<dyn Clock>,
    name: String,
    holder: Arc<str>,
    shutdown: CancellationToken,
    reader: R,
) where
    R: Fn(CancellationToken) -> F,
    F: Future<Output = ()>,
{
    let take = |now: i64| service.take_lease(name.clone(), Arc::clone(&holder), now, now + millis(LEASE));
    while !shutdown.is_cancelled() {
        let taken = take(clock.now_ms()).await.unwrap_or_else(|error| {
            tracing::warn!(lease = %name, %error, "could not take the lease; trying again");
            false
        });
        if !taken {
            tokio::select! {
                () = tokio::time::sleep(RENEW_EVERY) => {}
                () = shutdown.cancelled() => return,
            }
            continue;
        }
        tracing::info!(lease = %name, "holding the lease: reading here");
        let mut held_until = clock.now_ms() + millis(LEASE);
        let stop_reading = shutdown.child_token();
        let reading = reader(stop_reading.clone());
        tokio::pin!(reading);
        let lost = loop {
            tokio::select! {
                () = &mut reading => break false,
                () = tokio::time::sleep(RENEW_EVERY) => {}
            }
            let now = clock.now_ms();
            match take(now).await {
                Ok(true) => held_until = now + millis(LEASE),
                Ok(false) => {
                    tracing::warn!(lease = %name, "the lease went to another daemon; reading stops here");
                    break true;
                }
                Err(error) if held_until - now > millis(MARGIN) => {
                    tracing::warn!(lease = %name, %error, "could not renew the lease; trying again");
                }
                Err(error) => {
                    tracing::error!(lease = %name, %error, "could not renew the lease in time; reading stops here");
                    break true;
                }
            }
        };
        if lost {
            // Still reading: stop it and wait until it lets go. (A reader that ended,
            // at shutdown or by itself, is done: awaiting it again would panic.)
            stop_reading.cancel();
            reading.await;
        } else {
            // Shutdown (or a reader that ended): let another daemon take over now.
            if let Err(error) = service.drop_lease(name.clone(), Arc::clone(&holder)).await {
                tracing::warn!(lease = %name, %error, "could not give the lease up; it runs out by itself");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::domain::desk::Desk;

    #[tokio::test]
    async fn a_reader_stopped_by_shutdown_ends_cleanly_and_another_daemon_takes_its_lease_at_once() {
        let test = crate::store::testing::with_shop().await;
        let service = Service::new(
            Arc::clone(&test.store),
            Arc::new(Desk::plain(&[("support", "Support")])),
        );
        let clock = Arc::new(ManualClock::new(1_000_000));
        let shutdown = CancellationToken::new();
        let (started, reading) = tokio::sync::oneshot::channel::<()>();
        let started = std::sync::Mutex::new(Some(started));
        let task = tokio::spawn(run_leased(
            service.clone(),
            clock.clone(),
            "reader:mail".into(),
            Arc::from("first"),
            shutdown.clone(),
            move |stop: CancellationToken| {
                let started = started.lock().unwrap().take();
                async move {
                    if let Some(started) = started {
                        let _ = started.send(());
                    }
                    stop.cancelled().await;
                }
            },
        ));
        reading.await.expect("the reader runs");
        shutdown.cancel();
        task.await.expect("run_leased ends without panicking");
        let now = clock.now_ms();
        assert!(
            service
                .take_lease("reader:mail".into(), Arc::from("second"), now, now + millis(LEASE))
                .await
                .unwrap(),
            "the lease was given up, not left to run out"
        );
    }
}
