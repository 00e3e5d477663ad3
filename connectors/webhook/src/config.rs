//! A webhook inbox's configuration, and its validation before any I/O.

use std::time::Duration;

use reqwest::Url;
use serde::Deserialize;
pub use switchboard_connector_core::KeyError;

use crate::inbound::BodyLimits;
use crate::signature::Secret;

/// The `[inboxes.<key>.webhook]` table: the inbox speaks the generic webhook channel.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// The inbox's Standard Webhooks secret, `whsec_<base64>` of 24 to 64 random bytes.
    /// Inbound requests must be signed with it; callbacks are signed with it.
    pub secret: String,
    /// Secrets still accepted on inbound requests while senders move to a new `secret`.
    #[serde(default)]
    pub previous_secrets: Vec<String>,
    /// Where replies and status updates are POSTed (http or https).
    pub callback_url: String,
    /// The largest inbound body accepted, in bytes; larger bodies get 413.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// How far `webhook-timestamp` may be from now, in seconds, before a request is
    /// refused as a possible replay.
    #[serde(default = "default_timestamp_tolerance_secs")]
    pub timestamp_tolerance_secs: u32,
    /// How long one callback POST may take, in seconds, before it counts as failed.
    #[serde(default = "default_callback_timeout_secs")]
    pub callback_timeout_secs: u32,
    /// Attachments one message may carry; more are refused with 422.
    #[serde(default = "default_max_attachments")]
    pub max_attachments: usize,
    /// The largest `metadata` object one message may carry, in bytes of JSON; it is
    /// merged into the contact, so this also bounds what one message adds to it.
    #[serde(default = "default_max_metadata_bytes")]
    pub max_metadata_bytes: usize,
}

fn default_max_attachments() -> usize {
    BodyLimits::default().max_attachments
}

fn default_max_metadata_bytes() -> usize {
    BodyLimits::default().max_metadata_bytes
}

fn default_max_body_bytes() -> usize {
    10 * 1024 * 1024
}

fn default_timestamp_tolerance_secs() -> u32 {
    300
}

fn default_callback_timeout_secs() -> u32 {
    10
}

/// A validated webhook inbox.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// The current secret first: it signs callbacks.
    pub secrets: Vec<Secret>,
    pub callback_url: Url,
    pub max_body_bytes: usize,
    pub timestamp_tolerance_secs: i64,
    pub callback_timeout: Duration,
    pub limits: BodyLimits,
}

impl WebhookSettings {
    pub fn signing_secret(&self) -> &Secret {
        &self.secrets[0]
    }
}

impl WebhookConfig {
    pub fn validate(&self) -> Result<WebhookSettings, KeyError> {
        let key_error = |key: String, problem: String| KeyError { key, problem };
        let mut secrets = vec![Secret::parse(&self.secret).map_err(|problem| key_error("secret".into(), problem))?];
        for (index, previous) in self.previous_secrets.iter().enumerate() {
            secrets.push(
                Secret::parse(previous).map_err(|problem| key_error(format!("previous_secrets[{index}]"), problem))?,
            );
        }
        let callback_url = Url::parse(&self.callback_url)
            .map_err(|err| key_error("callback_url".into(), format!("is not a URL: {err}")))?;
        if !matches!(callback_url.scheme(), "http" | "https") || callback_url.host().is_none() {
            return Err(key_error(
                "callback_url".into(),
                "must be an http:// or https:// URL with a host".into(),
            ));
        }
        if self.max_body_bytes < 1024 {
            return Err(key_error("max_body_bytes".into(), "must be at least 1024".into()));
        }
        if self.timestamp_tolerance_secs == 0 {
            return Err(key_error(
                "timestamp_tolerance_secs".into(),
                "must be at least 1".into(),
            ));
        }
        if self.callback_timeout_secs == 0 {
            return Err(key_error("callback_timeout_secs".into(), "must be at least 1".into()));
        }
        if self.max_metadata_bytes < 2 {
            return Err(key_error(
                "max_metadata_bytes".into(),
                "must be at least 2 (an empty object)".into(),
            ));
        }
        Ok(WebhookSettings {
            secrets,
            callback_url,
            max_body_bytes: self.max_body_bytes,
            timestamp_tolerance_secs: i64::from(self.timestamp_tolerance_secs),
            callback_timeout: Duration::from_secs(u64::from(self.callback_timeout_secs)),
            limits: BodyLimits {
                max_attachments: self.max_attachments,
                max_metadata_bytes: self.max_metadata_bytes,
                ..BodyLimits::default()
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> WebhookConfig {
        WebhookConfig {
            secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
            previous_secrets: vec![],
            callback_url: "http://127.0.0.1:9000/cb".into(),
            max_body_bytes: default_max_body_bytes(),
            timestamp_tolerance_secs: default_timestamp_tolerance_secs(),
            callback_timeout_secs: default_callback_timeout_secs(),
            max_attachments: default_max_attachments(),
            max_metadata_bytes: default_max_metadata_bytes(),
        }
    }

    #[test]
    fn accepts_a_good_config() {
        let settings = config().validate().unwrap();
        assert_eq!(settings.callback_url.as_str(), "http://127.0.0.1:9000/cb");
        assert_eq!(settings.secrets.len(), 1);
    }

    #[test]
    fn names_the_bad_key() {
        let mut bad = config();
        bad.previous_secrets = vec!["whsec_nope!".into()];
        assert_eq!(bad.validate().unwrap_err().key, "previous_secrets[0]");
        let mut bad = config();
        bad.callback_url = "ftp://example.com/x".into();
        assert_eq!(bad.validate().unwrap_err().key, "callback_url");
        let mut bad = config();
        bad.secret = "plain".into();
        assert_eq!(bad.validate().unwrap_err().key, "secret");
    }
}
