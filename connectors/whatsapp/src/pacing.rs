//! Meta's sending limits, kept by waiting: at most `numbers_per_second` messages leave
//! the inbox's number each second, and one customer gets at most one message per
//! `pair_interval`. A send waits for its turn here instead of drawing error 130429 or
//! 131056; one that draws them anyway goes back to the outbox with the wait Meta implies.
//!
//! The pair interval is kept as configured, without a margin: Meta tolerates short
//! bursts to one customer, and an operator who sees 131056 can lengthen it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::Limits;

/// Above this many remembered customers, those whose turn has passed are forgotten, so
/// the map stays the size of the customers written to in the last `pair_interval`.
const PRUNE_ABOVE: usize = 4096;

#[derive(Debug)]
pub(crate) struct Pacer {
    /// The time between two of the number's sends.
    spacing: Duration,
    pair_interval: Duration,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// The number's next free slot.
    number_next: Option<Instant>,
    /// Each customer's earliest next message.
    customer_next: HashMap<String, Instant>,
}

impl Pacer {
    pub(crate) fn new(limits: &Limits) -> Pacer {
        Pacer {
            spacing: Duration::from_secs(1) / limits.numbers_per_second.max(1),
            pair_interval: limits.pair_interval,
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is a schedule: one a panicking holder left behind is still usable.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Waits until a message to `customer` may leave, and takes that turn.
    pub(crate) async fn wait_turn(&self, customer: &str) {
        // The customer's turn first, then a slot of the number from that moment: a
        // message waiting out its pair interval must not hold a slot others could use.
        loop {
            let customer_turn = self.customer_turn(customer, Instant::now());
            if customer_turn <= Instant::now() {
                break;
            }
            tokio::time::sleep_until(customer_turn).await;
        }
        let slot = self.take_slot(customer, Instant::now());
        tokio::time::sleep_until(slot).await;
    }

    fn customer_turn(&self, customer: &str, now: Instant) -> Instant {
        self.state()
            .customer_next
            .get(customer)
            .copied()
            .unwrap_or(now)
            .max(now)
    }

    /// Reserves the number's next slot at or after `now` for `customer`, and moves the
    /// customer's next turn a pair interval past it.
    fn take_slot(&self, customer: &str, now: Instant) -> Instant {
        let mut state = self.state();
        let slot = state.number_next.unwrap_or(now).max(now);
        state.number_next = Some(slot + self.spacing);
        if state.customer_next.len() > PRUNE_ABOVE {
            state.customer_next.retain(|_, next| *next > now);
        }
        let next = slot + self.pair_interval;
        let entry = state.customer_next.entry(customer.to_owned()).or_insert(next);
        *entry = (*entry).max(next);
        slot
    }

    /// Meta refused a message to `customer` for its pair rate: no message goes to them
    /// before `wait` has passed.
    pub(crate) fn hold(&self, customer: &str, wait: Duration) {
        let until = Instant::now() + wait;
        let mut state = self.state();
        let entry = state.customer_next.entry(customer.to_owned()).or_insert(until);
        *entry = (*entry).max(until);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pacer(per_second: u32) -> Pacer {
        Pacer::new(&Limits {
            numbers_per_second: per_second,
            pair_interval: Duration::from_secs(6),
            pair_rate_wait: Duration::from_secs(6),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn one_customer_gets_one_message_per_pair_interval() {
        let pacer = pacer(80);
        let start = Instant::now();
        let mut turns = Vec::new();
        for _ in 0..3 {
            pacer.wait_turn("4915112345678").await;
            turns.push(Instant::now() - start);
        }
        assert_eq!(turns, [Duration::ZERO, Duration::from_secs(6), Duration::from_secs(12)]);
    }

    #[tokio::test(start_paused = true)]
    async fn the_number_sends_at_most_its_throughput() {
        let pacer = pacer(10);
        let start = Instant::now();
        for customer in 0..21 {
            pacer.wait_turn(&customer.to_string()).await;
        }
        // Slots 100 ms apart: the 21st leaves at 2 s.
        assert_eq!(Instant::now() - start, Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn a_customer_waiting_out_the_pair_interval_blocks_nobody_else() {
        let pacer = std::sync::Arc::new(pacer(80));
        pacer.wait_turn("a").await;
        let start = Instant::now();
        let waiting = tokio::spawn({
            let pacer = pacer.clone();
            async move { pacer.wait_turn("a").await }
        });
        tokio::task::yield_now().await;
        pacer.wait_turn("b").await;
        assert!(Instant::now() - start < Duration::from_millis(50));
        waiting.await.unwrap();
        assert_eq!(Instant::now() - start, Duration::from_secs(6));
    }

    #[tokio::test(start_paused = true)]
    async fn a_hold_after_a_pair_rate_refusal_delays_the_next_turn() {
        let pacer = pacer(80);
        let start = Instant::now();
        pacer.hold("a", Duration::from_secs(9));
        pacer.wait_turn("a").await;
        assert_eq!(Instant::now() - start, Duration::from_secs(9));
    }
}
