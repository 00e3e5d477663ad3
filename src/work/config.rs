//! `[outbox]` and `[subscriptions]`: how the workers retry, pace and give up on sends,
//! and where event subscriptions may deliver.

use std::time::Duration;

use serde::Deserialize;

use crate::config::error::{ConfigError, duration, positive_duration};
use crate::work::events::UrlPolicy;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxConfig {
    /// Waits before each retry of a failed send (`5s`, `2m`, `1h`); after the last one the
    /// message fails for good. A channel's own `retry-after` wins when it is longer.
    #[serde(default = "default_retry_schedule")]
    pub retry_schedule: Vec<String>,
    /// A message not delivered this long after it was queued fails for good.
    #[serde(default = "default_expire_after")]
    pub expire_after: String,
    /// Sends in flight at once, across all inboxes.
    #[serde(default = "default_concurrency")]
    pub concurrency: u32,
    /// How long shutdown waits for sends in flight; what does not finish is sent again
    /// after the restart.
    #[serde(default = "default_shutdown_grace")]
    pub shutdown_grace: String,
    /// Sends in flight at once to one inbox's destination, so a slow one cannot take
    /// every slot.
    #[serde(default = "default_inbox_concurrency")]
    pub inbox_concurrency: u32,
    /// Consecutive transient failures of one inbox's destination that pause it.
    #[serde(default = "default_breaker_failures")]
    pub breaker_failures: u32,
    /// How long a paused destination waits before one probe; doubles while probes fail,
    /// up to 10 minutes.
    #[serde(default = "default_breaker_pause")]
    pub breaker_pause: String,
}

fn default_shutdown_grace() -> String {
    "10s".into()
}

fn default_inbox_concurrency() -> u32 {
    16
}

fn default_breaker_failures() -> u32 {
    5
}

fn default_breaker_pause() -> String {
    "30s".into()
}

/// The Standard Webhooks schedule: the first attempt at once, then these waits (about
/// three days in all, within the default `expire_after`).
fn default_retry_schedule() -> Vec<String> {
    ["5s", "5m", "30m", "2h", "5h", "10h", "14h", "20h", "24h"]
        .map(String::from)
        .to_vec()
}

fn default_expire_after() -> String {
    "4days".into()
}

fn default_concurrency() -> u32 {
    32
}

impl Default for OutboxConfig {
    fn default() -> OutboxConfig {
        OutboxConfig {
            retry_schedule: default_retry_schedule(),
            expire_after: default_expire_after(),
            concurrency: default_concurrency(),
            shutdown_grace: default_shutdown_grace(),
            inbox_concurrency: default_inbox_concurrency(),
            breaker_failures: default_breaker_failures(),
            breaker_pause: default_breaker_pause(),
        }
    }
}

/// `[outbox]`, validated.
#[derive(Debug, Clone)]
pub struct OutboxSettings {
    pub retry_schedule: Vec<Duration>,
    pub expire_after: Duration,
    pub concurrency: usize,
    pub shutdown_grace: Duration,
    pub inbox_concurrency: u32,
    pub breaker_failures: u32,
    pub breaker_pause: Duration,
}

impl OutboxConfig {
    pub fn validate(&self) -> Result<OutboxSettings, ConfigError> {
        let retry_schedule = self
            .retry_schedule
            .iter()
            .enumerate()
            .map(|(index, text)| duration(&format!("outbox.retry_schedule[{index}]"), text))
            .collect::<Result<Vec<_>, _>>()?;
        let expire_after = duration("outbox.expire_after", &self.expire_after)?;
        if expire_after.is_zero() {
            return Err(ConfigError::new("outbox.expire_after", "must be longer than zero"));
        }
        if self.concurrency == 0 || self.concurrency > 10_000 {
            return Err(ConfigError::new("outbox.concurrency", "must be between 1 and 10000"));
        }
        Ok(OutboxSettings {
            retry_schedule,
            expire_after,
            concurrency: self.concurrency as usize,
            shutdown_grace: duration("outbox.shutdown_grace", &self.shutdown_grace)?,
            inbox_concurrency: match self.inbox_concurrency {
                0 => return Err(ConfigError::new("outbox.inbox_concurrency", "must be at least 1")),
                n => n,
            },
            breaker_failures: match self.breaker_failures {
                0 => return Err(ConfigError::new("outbox.breaker_failures", "must be at least 1")),
                n => n,
            },
            breaker_pause: positive_duration("outbox.breaker_pause", &self.breaker_pause)?,
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionsConfig {
    /// Hosts (names or IP addresses) subscriptions may point at although they are inside
    /// the network (loopback, private ranges, link-local): refused otherwise.
    #[serde(default)]
    pub allow_hosts: Vec<String>,
    /// How long one delivery POST may take before it counts as failed.
    #[serde(default = "default_subscription_timeout")]
    pub timeout: String,
}

fn default_subscription_timeout() -> String {
    "10s".into()
}

impl Default for SubscriptionsConfig {
    fn default() -> SubscriptionsConfig {
        SubscriptionsConfig {
            allow_hosts: Vec::new(),
            timeout: default_subscription_timeout(),
        }
    }
}

/// `[subscriptions]`, validated.
#[derive(Debug, Clone)]
pub struct SubscriptionSettings {
    pub policy: UrlPolicy,
    pub timeout: Duration,
}

impl SubscriptionsConfig {
    pub fn validate(&self) -> Result<SubscriptionSettings, ConfigError> {
        let timeout = positive_duration("subscriptions.timeout", &self.timeout)?;
        if timeout > Duration::from_secs(60) {
            return Err(ConfigError::new("subscriptions.timeout", "must be at most 60s"));
        }
        Ok(SubscriptionSettings {
            policy: UrlPolicy {
                allow_hosts: self
                    .allow_hosts
                    .iter()
                    .map(|host| host.trim().trim_start_matches('[').trim_end_matches(']').to_owned())
                    .collect(),
            },
            timeout,
        })
    }
}
