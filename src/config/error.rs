//! The configuration error and the few value checks every area's validation shares.
//! A leaf: it imports nothing else from the crate, so each area's `config.rs` can use it
//! without importing the top-level assembly that imports them.

use std::time::Duration;

/// A configuration problem and the key (dotted path) or source that causes it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration key `{key}`: {problem}")]
pub struct ConfigError {
    pub key: String,
    pub problem: String,
}

impl ConfigError {
    pub fn new(key: impl Into<String>, problem: impl Into<String>) -> ConfigError {
        ConfigError {
            key: key.into(),
            problem: problem.into(),
        }
    }
}

/// A duration as people write it (`30s`, `5m`, `4days`); the error names `key`.
pub(crate) fn duration(key: &str, text: &str) -> Result<Duration, ConfigError> {
    humantime::parse_duration(text)
        .map_err(|err| ConfigError::new(key, format!("`{text}` is not a duration such as `30s` or `5m`: {err}")))
}

/// A duration above zero and at most a year (366 days).
pub(crate) fn positive_duration(key: &str, text: &str) -> Result<Duration, ConfigError> {
    let value = duration(key, text)?;
    if value.is_zero() || value > Duration::from_secs(366 * 86_400) {
        return Err(ConfigError::new(key, "must be longer than zero and at most a year"));
    }
    Ok(value)
}

/// Keys that appear in URLs and in rules: lowercase letters, digits, `-` and `_`.
pub(crate) fn check_key(what: &str, key: &str) -> Result<(), ConfigError> {
    let ok = !key.is_empty()
        && key.len() <= 64
        && key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(ConfigError::new(
            format!("{what}.{key}"),
            "keys are 1 to 64 characters of lowercase letters, digits, `-` and `_`",
        ))
    }
}
