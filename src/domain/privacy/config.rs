//! `[privacy]`: the retention policy.

use std::time::Duration;

use serde::Deserialize;

use crate::config::error::{ConfigError, duration};

/// The shortest retention accepted: a typo such as `1s` would otherwise erase every
/// conversation the moment it is resolved.
const MIN_RETENTION: Duration = Duration::from_secs(24 * 60 * 60);

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivacyConfig {
    /// Erase resolved and closed conversations this long after they ended (`365days`),
    /// once a day; a contact left with only erased conversations is erased whole. Absent:
    /// nothing is erased by age.
    #[serde(default)]
    pub erase_resolved_after: Option<String>,
}

/// The validated `[privacy]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrivacySettings {
    pub erase_resolved_after: Option<Duration>,
}

impl PrivacyConfig {
    pub fn validate(&self) -> Result<PrivacySettings, ConfigError> {
        const KEY: &str = "privacy.erase_resolved_after";
        let erase_resolved_after = match &self.erase_resolved_after {
            None => None,
            Some(text) => {
                let age = duration(KEY, text)?;
                if age < MIN_RETENTION {
                    return Err(ConfigError::new(
                        KEY,
                        format!("`{text}` is shorter than a day; write e.g. `365days`, or leave it out"),
                    ));
                }
                Some(age)
            }
        };
        Ok(PrivacySettings { erase_resolved_after })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validate(value: Option<&str>) -> Result<PrivacySettings, ConfigError> {
        PrivacyConfig {
            erase_resolved_after: value.map(str::to_owned),
        }
        .validate()
    }

    #[test]
    fn retention_is_off_unless_set_and_never_shorter_than_a_day() {
        assert_eq!(validate(None).unwrap().erase_resolved_after, None);
        assert_eq!(
            validate(Some("365days")).unwrap().erase_resolved_after,
            Some(Duration::from_secs(365 * 86_400))
        );
        let short = validate(Some("1h")).unwrap_err();
        assert_eq!(short.key, "privacy.erase_resolved_after");
        assert!(validate(Some("soon")).is_err());
    }
}
