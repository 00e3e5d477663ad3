//! A WhatsApp inbox's configuration (`[inboxes.<key>.whatsapp]`), validated before any
//! request. The three secrets (the access token that sends, the app secret that signs
//! Meta's webhooks, the verify token of the subscription handshake) come from the
//! environment or files, never from the table itself.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use switchboard_connector_core::{KeyError, SecretSource};

/// The status update events a template may be configured for.
pub const EVENTS: [&str; 9] = [
    "received",
    "out_of_hours",
    "assigned",
    "escalated",
    "waiting_reminder",
    "resolved",
    "auto_closed",
    "csat.requested",
    "greeting",
];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhatsappConfig {
    /// The business phone number's id in the Cloud API (digits, from the app's WhatsApp
    /// settings; not the phone number itself). Messages go out from it, and webhook
    /// changes for any other number are ignored.
    pub phone_number_id: String,
    /// The environment variable holding the access token (a system user's token).
    pub access_token_env: Option<String>,
    /// A file holding the access token.
    pub access_token_file: Option<String>,
    /// The environment variable holding the Meta app secret, which signs webhooks.
    pub app_secret_env: Option<String>,
    /// A file holding the Meta app secret.
    pub app_secret_file: Option<String>,
    /// The environment variable holding the verify token typed into the app's webhook
    /// settings, which Meta echoes in the subscription handshake.
    pub verify_token_env: Option<String>,
    /// A file holding the verify token.
    pub verify_token_file: Option<String>,
    /// The Graph API server; tests point it at their fake.
    #[serde(default = "default_api_base")]
    pub api_base: String,
    /// The Graph API version in every path (`v21.0`).
    #[serde(default = "default_api_version")]
    pub api_version: String,
    /// The largest webhook body accepted, in bytes; larger ones get 413. Meta batches
    /// at most a few dozen changes, far below the default.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// Customers' files larger than this are listed with the message, not fetched
    /// (WhatsApp carries up to 16 MB of audio or video, 100 MB of documents).
    #[serde(default = "default_max_media_bytes")]
    pub max_media_bytes: u64,
    /// Messages per second through this number (the Cloud API's default throughput is
    /// 80; Meta raises it for some numbers).
    #[serde(default = "default_numbers_per_second")]
    pub numbers_per_second: u32,
    /// The least time between two messages to one customer (Meta's pair rate limit).
    #[serde(default = "default_pair_interval")]
    pub pair_interval: String,
    /// How long to wait before retrying a message Meta refused with its pair rate
    /// limit (error 131056).
    #[serde(default = "default_pair_rate_wait")]
    pub pair_rate_wait: String,
    /// The language whose template goes when an update's language has none configured
    /// (a primary tag such as `en`). Unset: such an update is skipped outside the
    /// customer service window.
    pub fallback_language: Option<String>,
    /// Approved message templates, per status update event and per language primary tag
    /// (`[templates.resolved.de]`): what goes instead of free text when the customer's
    /// last message is more than 24 hours old.
    #[serde(default)]
    pub templates: BTreeMap<String, BTreeMap<String, TemplateConfig>>,
}

/// One approved template, as WhatsApp Manager shows it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateConfig {
    /// The template's name (lowercase letters, digits and `_`).
    pub name: String,
    /// The template's language code as approved (`en_US`, `de`, `pt_BR`).
    pub language: String,
    /// The status update's fields (docs/UPDATES.md) filled into the body's `{{1}}`,
    /// `{{2}}`, … in this order; `team.name` reads a nested one (`reference`, `team.name`).
    #[serde(default)]
    pub parameters: Vec<String>,
}

fn default_api_base() -> String {
    "https://graph.facebook.com".into()
}

fn default_api_version() -> String {
    "v21.0".into()
}

fn default_max_body_bytes() -> usize {
    1024 * 1024
}

fn default_max_media_bytes() -> u64 {
    16 * 1024 * 1024
}

fn default_numbers_per_second() -> u32 {
    80
}

fn default_pair_interval() -> String {
    "6s".into()
}

fn default_pair_rate_wait() -> String {
    "6s".into()
}

/// A secret read at validation. Its `Debug` never shows it, so it cannot leak into logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// A validated WhatsApp inbox.
#[derive(Debug, Clone)]
pub struct WhatsappSettings {
    pub phone_number_id: String,
    pub access_token: Secret,
    pub app_secret: Secret,
    pub verify_token: Secret,
    /// Without a trailing `/`.
    pub api_base: String,
    pub api_version: String,
    pub max_body_bytes: usize,
    pub max_media_bytes: u64,
    pub limits: Limits,
    pub templates: Templates,
}

/// Meta's sending limits, as this inbox keeps them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub numbers_per_second: u32,
    pub pair_interval: Duration,
    pub pair_rate_wait: Duration,
}

/// A template ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub name: String,
    pub language: String,
    pub parameters: Vec<String>,
}

/// The configured templates, by event and by language primary tag.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Templates {
    by_event: BTreeMap<String, BTreeMap<String, Template>>,
    fallback_language: Option<String>,
}

impl Templates {
    /// The template for `event` in `language` (any BCP 47 tag; its primary tag counts),
    /// or in the fallback language when that one has none.
    pub fn find(&self, event: &str, language: Option<&str>) -> Option<&Template> {
        let languages = self.by_event.get(event)?;
        language
            .map(primary_tag)
            .and_then(|tag| languages.get(&tag))
            .or_else(|| languages.get(self.fallback_language.as_deref()?))
    }
}

/// `pt-BR` → `pt`; `DE` → `de`.
pub fn primary_tag(language: &str) -> String {
    language
        .split(['-', '_'])
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

fn is_primary_tag(tag: &str) -> bool {
    (2..=3).contains(&tag.len()) && tag.bytes().all(|b| b.is_ascii_lowercase())
}

/// Meta's template language codes: `en`, `en_US`, `fil`, `zh_HK`.
fn is_template_language(code: &str) -> bool {
    let (language, region) = match code.split_once('_') {
        Some((language, region)) => (language, Some(region)),
        None => (code, None),
    };
    is_primary_tag(language)
        && region
            .is_none_or(|region| (2..=4).contains(&region.len()) && region.bytes().all(|b| b.is_ascii_alphanumeric()))
}

fn is_template_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 512
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn duration(key: &str, text: &str) -> Result<Duration, KeyError> {
    humantime::parse_duration(text)
        .map_err(|err| KeyError::new(key, format!("`{text}` is not a duration such as `6s`: {err}")))
}

/// A TOML key as the operator writes it: `csat.requested` needs quotes inside a path.
fn toml_key(key: &str) -> String {
    if key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        key.to_owned()
    } else {
        format!("\"{}\"", key.replace('"', "\\\""))
    }
}

/// Reads one secret named by its `<name>_env` or `<name>_file` key (exactly one).
fn secret(
    name: &str,
    env: &Option<String>,
    file: &Option<String>,
    secrets: &dyn SecretSource,
) -> Result<Secret, KeyError> {
    let env_key = format!("{name}_env");
    let file_key = format!("{name}_file");
    let (key, value) = match (env, file) {
        (Some(_), Some(_)) => {
            return Err(KeyError::new(
                file_key,
                format!("set {name}_env or {name}_file, not both"),
            ));
        }
        (None, None) => {
            return Err(KeyError::new(
                env_key,
                format!(
                    "the {} is required: set {name}_env or {name}_file",
                    name.replace('_', " ")
                ),
            ));
        }
        (Some(variable), None) => (
            env_key,
            secrets.var(variable).ok_or_else(|| {
                KeyError::new(
                    format!("{name}_env"),
                    format!("the environment variable `{variable}` is not set"),
                )
            })?,
        ),
        (None, Some(path)) => (
            file_key,
            secrets
                .read_file(path)
                .and_then(|bytes| String::from_utf8(bytes).map_err(std::io::Error::other))
                .map_err(|err| KeyError::new(format!("{name}_file"), format!("cannot read `{path}`: {err}")))?,
        ),
    };
    let value = value.trim();
    // Never echo it: a mistyped secret is still most of a secret.
    if value.is_empty() {
        return Err(KeyError::new(key, "names an empty value"));
    }
    if value.chars().any(char::is_control) {
        return Err(KeyError::new(key, "holds control characters"));
    }
    Ok(Secret(value.to_owned()))
}

impl WhatsappConfig {
    /// Pure: checks the table and reads the three secrets through `secrets`.
    pub fn validate(&self, secrets: &dyn SecretSource) -> Result<WhatsappSettings, KeyError> {
        let phone_number_id = self.phone_number_id.trim();
        if phone_number_id.is_empty()
            || phone_number_id.len() > 32
            || !phone_number_id.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(KeyError::new(
                "phone_number_id",
                "must be the phone number id from the app's WhatsApp settings (digits)",
            ));
        }
        let access_token = secret("access_token", &self.access_token_env, &self.access_token_file, secrets)?;
        let app_secret = secret("app_secret", &self.app_secret_env, &self.app_secret_file, secrets)?;
        let verify_token = secret("verify_token", &self.verify_token_env, &self.verify_token_file, secrets)?;
        let api_base = self.api_base.trim().trim_end_matches('/').to_owned();
        let host = api_base
            .strip_prefix("https://")
            .or_else(|| api_base.strip_prefix("http://"));
        if host.is_none_or(|host| host.is_empty() || host.contains(['?', '#', ' '])) {
            return Err(KeyError::new(
                "api_base",
                "must be an http:// or https:// URL with a host",
            ));
        }
        let version = self.api_version.trim();
        let digits = version.strip_prefix('v').unwrap_or_default();
        if digits.is_empty()
            || !digits.bytes().all(|b| b.is_ascii_digit() || b == b'.')
            || !digits.starts_with(|c: char| c.is_ascii_digit())
        {
            return Err(KeyError::new(
                "api_version",
                "must be a Graph API version such as `v21.0`",
            ));
        }
        if self.max_body_bytes < 1024 {
            return Err(KeyError::new("max_body_bytes", "must be at least 1024"));
        }
        if self.max_media_bytes == 0 {
            return Err(KeyError::new("max_media_bytes", "must be at least 1"));
        }
        if self.numbers_per_second == 0 {
            return Err(KeyError::new("numbers_per_second", "must be at least 1"));
        }
        let pair_interval = duration("pair_interval", &self.pair_interval)?;
        let pair_rate_wait = duration("pair_rate_wait", &self.pair_rate_wait)?;
        let fallback_language = match &self.fallback_language {
            None => None,
            Some(tag) if is_primary_tag(tag) => Some(tag.clone()),
            Some(_) => {
                return Err(KeyError::new(
                    "fallback_language",
                    "must be a language primary tag such as `en`",
                ));
            }
        };
        let templates = self.templates(fallback_language)?;
        Ok(WhatsappSettings {
            phone_number_id: phone_number_id.to_owned(),
            access_token,
            app_secret,
            verify_token,
            api_base,
            api_version: version.to_owned(),
            max_body_bytes: self.max_body_bytes,
            max_media_bytes: self.max_media_bytes,
            limits: Limits {
                numbers_per_second: self.numbers_per_second,
                pair_interval,
                pair_rate_wait,
            },
            templates,
        })
    }

    fn templates(&self, fallback_language: Option<String>) -> Result<Templates, KeyError> {
        let mut by_event = BTreeMap::new();
        for (event, languages) in &self.templates {
            let at = format!("templates.{}", toml_key(event));
            if !EVENTS.contains(&event.as_str()) {
                return Err(KeyError::new(
                    at,
                    format!("is not a status update event; one of {}", EVENTS.join(", ")),
                ));
            }
            let mut checked = BTreeMap::new();
            for (language, template) in languages {
                let at = format!("{at}.{}", toml_key(language));
                if !is_primary_tag(language) {
                    return Err(KeyError::new(at, "must be a language primary tag such as `en` or `de`"));
                }
                let name = template.name.trim();
                if !is_template_name(name) {
                    return Err(KeyError::new(
                        format!("{at}.name"),
                        "must be an approved template's name (lowercase letters, digits, `_`)",
                    ));
                }
                let code = template.language.trim();
                if !is_template_language(code) {
                    return Err(KeyError::new(
                        format!("{at}.language"),
                        "must be the template's language code as approved, such as `en_US` or `de`",
                    ));
                }
                for (index, parameter) in template.parameters.iter().enumerate() {
                    if parameter.trim().is_empty() {
                        return Err(KeyError::new(
                            format!("{at}.parameters[{index}]"),
                            "must name a field of the status update",
                        ));
                    }
                }
                checked.insert(
                    language.clone(),
                    Template {
                        name: name.to_owned(),
                        language: code.to_owned(),
                        parameters: template.parameters.iter().map(|p| p.trim().to_owned()).collect(),
                    },
                );
            }
            by_event.insert(event.clone(), checked);
        }
        Ok(Templates {
            by_event,
            fallback_language,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "WA_TOKEN" => Some("EAAG-token".into()),
            "WA_APP_SECRET" => Some("app-secret\n".into()),
            "WA_VERIFY" => Some("verify-me".into()),
            _ => None,
        }
    }

    fn config(extra: &str) -> WhatsappConfig {
        let text = format!(
            r#"{{"phone_number_id": "1122334455667", "access_token_env": "WA_TOKEN",
                "app_secret_env": "WA_APP_SECRET", "verify_token_env": "WA_VERIFY" {extra}}}"#
        );
        serde_json::from_str(&text).unwrap()
    }

    fn error(extra: &str) -> KeyError {
        config(extra).validate(&env).unwrap_err()
    }

    #[test]
    fn accepts_a_good_config_with_defaults() {
        let settings = config("").validate(&env).unwrap();
        assert_eq!(settings.api_base, "https://graph.facebook.com");
        assert_eq!(settings.api_version, "v21.0");
        assert_eq!(settings.max_body_bytes, 1024 * 1024);
        assert_eq!(settings.max_media_bytes, 16 * 1024 * 1024);
        assert_eq!(
            settings.limits,
            Limits {
                numbers_per_second: 80,
                pair_interval: Duration::from_secs(6),
                pair_rate_wait: Duration::from_secs(6),
            }
        );
        assert_eq!(settings.app_secret.expose(), "app-secret");
        assert_eq!(format!("{:?}", settings.access_token), "Secret(***)");
    }

    #[test]
    fn finds_templates_by_primary_tag_then_the_fallback_language() {
        let settings = config(
            r#", "fallback_language": "en", "templates": {
                "resolved": {"de": {"name": "case_resolved", "language": "de", "parameters": ["conversation_id"]},
                             "en": {"name": "case_resolved", "language": "en_US"}},
                "csat.requested": {"de": {"name": "csat_ask", "language": "de"}}}"#,
        )
        .validate(&env)
        .unwrap();
        let templates = &settings.templates;
        assert_eq!(templates.find("resolved", Some("de-AT")).unwrap().language, "de");
        assert_eq!(
            templates.find("resolved", Some("de")).unwrap().parameters,
            ["conversation_id"]
        );
        assert_eq!(templates.find("resolved", Some("fr")).unwrap().language, "en_US");
        assert_eq!(templates.find("resolved", None).unwrap().language, "en_US");
        assert_eq!(templates.find("csat.requested", Some("fr")), None);
        assert_eq!(templates.find("assigned", Some("de")), None);
    }

    #[test]
    fn names_the_offending_template_key() {
        let bad_name = r#", "templates": {"resolved": {"de": {"name": "Case Resolved", "language": "de"}}}"#;
        assert_eq!(error(bad_name).key, "templates.resolved.de.name");
        let bad_language = r#", "templates": {"resolved": {"de": {"name": "x", "language": "german"}}}"#;
        assert_eq!(error(bad_language).key, "templates.resolved.de.language");
        let bad_tag = r#", "templates": {"resolved": {"de-AT": {"name": "x", "language": "de"}}}"#;
        assert_eq!(error(bad_tag).key, "templates.resolved.de-AT");
        let unknown = r#", "templates": {"closed": {"de": {"name": "x", "language": "de"}}}"#;
        assert_eq!(error(unknown).key, "templates.closed");
        let quoted =
            r#", "templates": {"csat.requested": {"de": {"name": "x", "language": "de", "parameters": [" "]}}}"#;
        assert_eq!(error(quoted).key, "templates.\"csat.requested\".de.parameters[0]");
    }

    #[test]
    fn names_the_bad_key_without_echoing_secrets() {
        assert_eq!(error(r#", "access_token_file": "/x""#).key, "access_token_file");
        let mut missing = config("");
        missing.verify_token_env = None;
        assert_eq!(missing.validate(&env).unwrap_err().key, "verify_token_env");
        let mut unset = config("");
        unset.app_secret_env = Some("NOPE".into());
        assert_eq!(unset.validate(&env).unwrap_err().key, "app_secret_env");
        let mut digits = config("");
        digits.phone_number_id = "+49 30 1234".into();
        assert_eq!(digits.validate(&env).unwrap_err().key, "phone_number_id");
        assert_eq!(error(r#", "api_base": "graph.facebook.com""#).key, "api_base");
        assert_eq!(error(r#", "api_version": "21""#).key, "api_version");
        assert_eq!(error(r#", "pair_interval": "soon""#).key, "pair_interval");
        assert_eq!(error(r#", "numbers_per_second": 0"#).key, "numbers_per_second");
        assert_eq!(error(r#", "fallback_language": "en_US""#).key, "fallback_language");
    }

    #[test]
    fn refuses_unknown_keys() {
        let text = r#"{"phone_number_id": "1", "acess_token_env": "X"}"#;
        assert!(serde_json::from_str::<WhatsappConfig>(text).is_err());
    }
}
