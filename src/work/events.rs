//! Event subscriptions for integrations (a CRM, Zendesk, Jira): which URLs may receive
//! them, and the lane that delivers them per Standard Webhooks from their own durable
//! queue (`event_deliveries`), retried on the outbox's schedule, in order per
//! subscription and conversation (see [`crate::work::dispatch`] for the loop).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::StatusCode;
use reqwest::Url;
use switchboard_connector_core::{Receipt, SendError};
use switchboard_connector_webhook::Secret;
use switchboard_connector_webhook::outbound::SignedPost;

use crate::clock::Clock;
pub use crate::domain::events::EventType;
use crate::domain::{DeskResult, deliveries};
use crate::model::millis;
use crate::store::{ClaimPlan, DeliveryResult, EventDelivery, Lease, Settlement, StoreResult, Tx};
use crate::work::config::OutboxSettings;
use crate::work::destinations::SendOutcome;
use crate::work::dispatch::{Lane, after_transient_failure};

/// A fresh signing secret: 32 random bytes, as Standard Webhooks writes them.
pub fn new_secret() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(format!("whsec_{}", STANDARD.encode(bytes)))
}

/// Which hosts subscriptions may point at. Addresses inside the network (loopback,
/// private ranges, link-local, the cloud metadata service) are refused unless listed:
/// a subscription is an admin telling the daemon to POST wherever they like, and the
/// daemon usually sits where those addresses reach things no admin of the desk should.
#[derive(Debug, Clone, Default)]
pub struct UrlPolicy {
    /// Host names or IP addresses allowed even though they are inside the network.
    pub allow_hosts: Vec<String>,
}

impl UrlPolicy {
    fn allowed(&self, host: &str) -> bool {
        self.allow_hosts
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(host))
    }

    /// Parses and checks `url`, resolving its host; the error says why it is refused.
    pub async fn check(&self, url: &str) -> Result<Url, String> {
        self.check_url(url).await.map_err(|problem| match problem {
            UrlProblem::Refused(why) | UrlProblem::Unresolved(why) => why,
        })
    }

    async fn check_url(&self, url: &str) -> Result<Url, UrlProblem> {
        let refused = |why: String| UrlProblem::Refused(why);
        let parsed = Url::parse(url).map_err(|err| refused(format!("is not a URL: {err}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(refused("must be an http or https URL".into()));
        }
        let host = parsed
            .host_str()
            .ok_or_else(|| refused("must name a host".into()))?
            .to_owned();
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if self.allowed(bare) {
            return Ok(parsed);
        }
        if bare.eq_ignore_ascii_case("metadata.google.internal") || bare.eq_ignore_ascii_case("localhost") {
            return Err(refused(format!("`{host}` is inside the network")));
        }
        let port = parsed.port_or_known_default().unwrap_or(443);
        let addresses: Vec<IpAddr> = match bare.parse::<IpAddr>() {
            Ok(address) => vec![address],
            Err(_) => tokio::net::lookup_host((bare, port))
                .await
                .map_err(|err| UrlProblem::Unresolved(format!("host `{host}` does not resolve: {err}")))?
                .map(|socket| socket.ip())
                .collect(),
        };
        match addresses.iter().find(|address| internal(address)) {
            Some(address) => Err(refused(format!(
                "points inside the network ({address}); list the host in subscriptions.allow_hosts to allow it"
            ))),
            None if addresses.is_empty() => Err(UrlProblem::Unresolved(format!("host `{host}` does not resolve"))),
            None => Ok(parsed),
        }
    }
}

/// Why a URL cannot be posted to now.
#[derive(Debug, Clone, PartialEq, Eq)]
enum UrlProblem {
    /// The policy refuses it: retrying cannot help.
    Refused(String),
    /// Its name did not resolve: DNS may be back in a minute.
    Unresolved(String),
}

/// The subscriptions client's resolver: the addresses it connects to are the ones the
/// policy checked, so a name that resolves elsewhere between the check and the connect
/// (DNS rebinding) still cannot reach inside the network.
#[derive(Debug, Clone)]
pub struct PolicyResolver {
    pub policy: UrlPolicy,
}

impl reqwest::dns::Resolve for PolicyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addresses: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed = policy.allowed(&host);
            let usable: Vec<std::net::SocketAddr> = addresses
                .into_iter()
                .filter(|address| allowed || !internal(&address.ip()))
                .collect();
            if usable.is_empty() {
                return Err(format!("`{host}` resolves only inside the network").into());
            }
            Ok(Box::new(usable.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Loopback, private, link-local (the metadata service's 169.254.169.254 among them),
/// shared (CGNAT), benchmarking, reserved, IETF protocol assignments, Azure's wire server,
/// unspecified, multicast, broadcast; in IPv6 also unique-local, site-local, and the
/// forms that carry an IPv4 address (mapped, compatible, NAT64, 6to4), judged by it.
fn internal(address: &IpAddr) -> bool {
    match address {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0 && c == 0)
                || (a == 198 && (b == 18 || b == 19))
                || a >= 240
                || [a, b, c, d] == [168, 63, 129, 16]
        }
        IpAddr::V6(v6) => {
            let segments = v6.segments();
            let embedded =
                |high: u16, low: u16| IpAddr::V4(std::net::Ipv4Addr::from((u32::from(high) << 16) | u32::from(low)));
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (segments[0] & 0xfe00) == 0xfc00
                || (segments[0] & 0xffc0) == 0xfe80
                || (segments[0] & 0xffc0) == 0xfec0
                || v6.to_ipv4_mapped().is_some_and(|v4| internal(&IpAddr::V4(v4)))
                // IPv4-compatible ::a.b.c.d, NAT64 64:ff9b::/96 and 64:ff9b:1::/48.
                || (segments[..6] == [0; 6] && internal(&embedded(segments[6], segments[7])))
                || (segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] && internal(&embedded(segments[6], segments[7])))
                || (segments[0] == 0x64 && segments[1] == 0xff9b && segments[2] == 1)
                // 6to4 2002:a.b.c.d::/48.
                || (segments[0] == 0x2002 && internal(&embedded(segments[1], segments[2])))
        }
    }
}

/// Queued events to their subscriptions' URLs, signed per Standard Webhooks.
pub struct EventLane {
    pub clock: Arc<dyn Clock>,
    pub settings: OutboxSettings,
    pub policy: UrlPolicy,
    pub timeout: Duration,
    pub client: reqwest::Client,
}

/// An event delivery's outcome for the store, and why its subscription stops, if it does.
#[derive(Debug, Clone)]
pub struct EventRecord {
    pub id: i64,
    pub result: DeliveryResult,
    pub disable: Option<String>,
    pub at: i64,
}

#[async_trait]
impl Lane for EventLane {
    type Item = EventDelivery;
    type Record = EventRecord;

    const NAME: &'static str = "event deliveries";

    fn destination(item: &EventDelivery) -> i64 {
        item.subscription_id
    }

    fn id(item: &EventDelivery) -> i64 {
        item.id
    }

    fn record(tx: &mut dyn Tx, record: &EventRecord) -> DeskResult<()> {
        deliveries::record_event(tx, record.id, &record.result, record.disable.as_deref(), record.at)
    }

    fn unclaim(tx: &mut dyn Tx, id: i64, not_before: i64, now: i64) -> StoreResult<()> {
        tx.settle_event(id, Settlement::Unclaimed { not_before }, now)
            .map(|_| ())
    }

    fn defer(tx: &mut dyn Tx, subscription_id: i64, until: i64, now: i64) -> StoreResult<()> {
        tx.defer_events(subscription_id, until, now)
    }

    fn claim(
        tx: &mut dyn Tx,
        now: i64,
        limit: u32,
        lease: Lease<'_>,
        plan: &ClaimPlan,
    ) -> StoreResult<Vec<EventDelivery>> {
        tx.claim_events(now, limit, lease, &plan.held)
    }

    fn release(tx: &mut dyn Tx, expired_before: i64, now: i64) -> StoreResult<u64> {
        tx.release_events(expired_before, now)
    }

    fn renew(tx: &mut dyn Tx, lease: Lease<'_>) -> StoreResult<u64> {
        tx.renew_events(lease)
    }

    fn next_due(tx: &mut dyn Tx, now: i64) -> StoreResult<Option<i64>> {
        tx.next_event_after(now)
    }

    async fn deliver(&self, delivery: EventDelivery) -> (EventRecord, SendOutcome) {
        let expires_at = delivery.created_at.saturating_add(millis(self.settings.expire_after));
        let outcome = if self.clock.now_ms() > expires_at {
            Err(SendError::permanent(
                "expired before it could be sent (outbox.expire_after)",
            ))
        } else {
            self.send(&delivery).await
        };
        let now = self.clock.now_ms();
        let for_breaker = SendOutcome::of(&outcome);
        let (result, disable) = match outcome {
            Ok(receipt) => (DeliveryResult::Sent(receipt), None),
            // The endpoint is gone for good (the receiver said 410, or the URL is no
            // longer allowed): stop telling it.
            Err(SendError::Unreachable { reason }) => (DeliveryResult::Failed { error: reason.clone() }, Some(reason)),
            Err(SendError::Permanent { reason } | SendError::Skipped { reason }) => {
                (DeliveryResult::Failed { error: reason }, None)
            }
            // An event is one POST: it has no parts, and its sender counts none.
            Err(partly @ SendError::PartlySent { .. }) => (
                DeliveryResult::Failed {
                    error: partly.to_string(),
                },
                None,
            ),
            Err(SendError::Transient { reason, retry_after }) => {
                let result = after_transient_failure(
                    &self.settings.retry_schedule,
                    delivery.attempts,
                    now,
                    expires_at,
                    retry_after,
                    reason,
                    fastrand::f64(),
                );
                // Every retry used up: the receiver is not coming back by itself.
                let disable = match &result {
                    DeliveryResult::Failed { error } => Some(format!("a delivery failed for good: {error}")),
                    _ => None,
                };
                (result, disable)
            }
        };
        if let Some(reason) = &disable {
            tracing::warn!(subscription = delivery.subscription_id, %reason, "subscription disabled");
        }
        let record = EventRecord {
            id: delivery.id,
            result,
            disable,
            at: now,
        };
        (record, for_breaker)
    }
}

impl EventLane {
    async fn send(&self, delivery: &EventDelivery) -> Result<Receipt, SendError> {
        // Checked again at each send (the client's resolver checks the address it
        // connects to as well): a name may resolve elsewhere than when it was added.
        let url = match self.policy.check_url(&delivery.url).await {
            Ok(url) => url,
            Err(UrlProblem::Unresolved(why)) => return Err(SendError::transient(why)),
            // The policy refuses it now: no later event can go either.
            Err(UrlProblem::Refused(why)) => {
                return Err(SendError::Unreachable {
                    reason: format!("the subscription's URL is not allowed now: it {why}"),
                });
            }
        };
        let secret = Secret::parse(&delivery.secret).map_err(SendError::permanent)?;
        let id = format!("evt_{}", delivery.id);
        let request = SignedPost {
            url,
            timeout: self.timeout,
            secret: &secret,
            id: &id,
            body: delivery.payload.clone(),
        };
        let (status, retry_after) = request.send(&self.client).await?;
        if status == StatusCode::GONE {
            return Err(SendError::Unreachable {
                reason: "the receiver answered HTTP 410 Gone: it asked to be told no more".into(),
            });
        }
        switchboard_connector_webhook::outbound::classify_status(status, retry_after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn addresses_inside_the_network_are_refused_unless_allowed() {
        let policy = UrlPolicy::default();
        for url in [
            "http://127.0.0.1:9000/hook",
            "http://10.1.2.3/hook",
            "http://192.168.0.10/hook",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]/hook",
            "http://[fe80::1]/hook",
            "http://[fd00:ec2::254]/",
            "http://[::ffff:10.0.0.1]/",
            "http://100.64.0.1/",
            "http://0.0.0.0/",
            "http://metadata.google.internal/computeMetadata/v1/",
            "http://localhost:8080/",
            "http://[64:ff9b::a00:5]/",
            "http://[2002:a00:1::]/",
            "http://[::a00:1]/",
            "http://[fec0::1]/",
            "http://198.18.0.1/",
            "http://240.0.0.1/",
            "http://168.63.129.16/",
        ] {
            assert!(policy.check(url).await.is_err(), "{url}");
        }
        assert!(policy.check("ftp://93.184.215.14/").await.is_err());
        assert!(policy.check("http://93.184.215.14/hook").await.is_ok());
        let allowed = UrlPolicy {
            allow_hosts: vec!["127.0.0.1".into(), "::1".into()],
        };
        assert!(allowed.check("http://127.0.0.1:9000/hook").await.is_ok());
        assert!(allowed.check("http://[::1]:9000/hook").await.is_ok());
        assert!(allowed.check("http://10.1.2.3/hook").await.is_err());
    }

    #[test]
    fn a_new_secret_is_one_standard_webhooks_accepts() {
        let secret = new_secret().unwrap();
        assert!(Secret::parse(&secret).is_ok(), "{secret}");
    }
}
