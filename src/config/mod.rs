//! Configuration: `config/switchboard.toml`, then `SWITCHBOARD__SECTION__KEY` environment
//! overrides (for keys holding one value, and `outbox.retry_schedule` as a comma-separated
//! list; lists and the `[[rules]]` array come from the file), deserialized into
//! [`RawConfig`] (unknown keys refused) and validated into [`Settings`] before any I/O.
//! Every error names the key to change.
//!
//! Each area's sections and their validation sit beside the code that uses them
//! (`api/config.rs`, `store/config.rs`, `work/config.rs`, `channels/config.rs`,
//! `domain/{desk,router,updates}/config.rs`); this module only reads the file and
//! assembles. [`error`] is the leaf they all share, so none of them imports this one.

pub mod error;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use switchboard_connector_core::{ChannelKind, ProcessSecrets, SecretSource};

use crate::api::config::{DoorSettings, ServerConfig};
use crate::channels::config::{InboxConfig, InboxSettings, validate_inboxes};
use crate::domain::desk::Desk;
use crate::domain::desk::config::{
    BusinessHoursConfig, SlaConfig, SlaPolicyConfig, TeamConfig, TeamSettings, validate_desk, validate_teams,
};
use crate::domain::privacy::config::{PrivacyConfig, PrivacySettings};
use crate::domain::router::Router;
use crate::domain::router::config::{RoutingConfig, RuleConfig, validate_rules};
use crate::domain::updates::config::{CsatConfig, UpdatesConfig, missing_templates, validate_updates};
use crate::store::config::StorageConfig;
use crate::work::config::{OutboxConfig, OutboxSettings, SubscriptionSettings, SubscriptionsConfig};

pub use error::ConfigError;

/// The prefix of environment overrides: `SWITCHBOARD__SERVER__LISTEN=127.0.0.1:9090`.
pub const ENV_PREFIX: &str = "SWITCHBOARD";
/// The default config file, relative to the working directory.
pub const DEFAULT_PATH: &str = "config/switchboard.toml";

/// The whole file, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// The HTTP listener.
    #[serde(default)]
    pub server: ServerConfig,
    /// The agents' web console and its sign-in.
    #[serde(default)]
    pub console: crate::api::config::ConsoleConfig,
    /// Who sees which conversations.
    #[serde(default)]
    pub agents: crate::api::config::AgentsConfig,
    /// The database.
    #[serde(default)]
    pub storage: StorageConfig,
    /// The daemon's own logs.
    #[serde(default)]
    pub log: LogConfig,
    /// Retries, pacing and expiry of outbound messages.
    #[serde(default)]
    pub outbox: OutboxConfig,
    /// Automated status updates to customers: which events, templates, guards.
    #[serde(default)]
    pub updates: UpdatesConfig,
    /// The satisfaction question after resolution.
    #[serde(default)]
    pub csat: CsatConfig,
    /// Where event subscriptions may deliver.
    #[serde(default)]
    pub subscriptions: SubscriptionsConfig,
    /// The retention policy: finished conversations erased past an age.
    #[serde(default)]
    pub privacy: PrivacyConfig,
    /// The default team and the languages detection chooses among.
    pub routing: RoutingConfig,
    /// Team queues by key (`[teams.billing]`).
    pub teams: BTreeMap<String, TeamConfig>,
    /// Channel endpoints by key (`[inboxes.shop]`); the key appears in `/hooks/{key}`.
    #[serde(default)]
    pub inboxes: BTreeMap<String, InboxConfig>,
    /// Routing rules, all evaluated: see [`crate::domain::router`] for how matches combine.
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
    /// The label catalogue: `[labels.<name>]` with a colour and a description.
    #[serde(default)]
    pub labels: BTreeMap<String, crate::domain::labels::LabelConfig>,
    /// Named keyword lists in any languages, for rules' `when.keywords`.
    #[serde(default)]
    pub keywords: BTreeMap<String, Vec<String>>,
    /// Named weekly calendars teams refer to (`[business_hours.office]`).
    #[serde(default)]
    pub business_hours: BTreeMap<String, BusinessHoursConfig>,
    /// Named SLA policies teams refer to (`[sla_policies.standard]`).
    #[serde(default)]
    pub sla_policies: BTreeMap<String, SlaPolicyConfig>,
    /// The cap on how long any conversation stays open.
    #[serde(default)]
    pub sla: SlaConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// A tracing filter: `info`, or per module, `info,switchboard::work::outbox=debug`.
    #[serde(default = "default_log_level")]
    pub level: String,
    /// `text` for people, `json` for log collectors.
    #[serde(default = "default_log_format")]
    pub format: String,
}

fn default_log_level() -> String {
    "info".into()
}

fn default_log_format() -> String {
    "text".into()
}

impl Default for LogConfig {
    fn default() -> LogConfig {
        LogConfig {
            level: default_log_level(),
            format: default_log_format(),
        }
    }
}

impl LogConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !matches!(self.format.as_str(), "text" | "json") {
            return Err(ConfigError::new(
                "log.format",
                format!("`{}` is not `text` or `json`", self.format),
            ));
        }
        if let Err(err) = tracing_subscriber::EnvFilter::try_new(&self.level) {
            return Err(ConfigError::new(
                "log.level",
                format!("`{}` is not a log filter: {err}", self.level),
            ));
        }
        Ok(())
    }
}

/// Everything the daemon needs, validated.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub http_shutdown_grace: Duration,
    /// Timeouts, connection, memory and rate limits at the HTTP door.
    pub door: DoorSettings,
    /// The bearer token `/metrics` asks for, if any (`server.metrics_token_env`).
    pub metrics_token: Option<crate::api::config::MetricsToken>,
    /// The console's address and sign-in policy.
    pub console: crate::api::config::ConsoleSettings,
    /// Whose conversations agents and supervisors see (`agents.visibility`).
    pub visibility: crate::domain::access::VisibilityPolicy,
    pub storage: crate::store::config::StorageSettings,
    pub log_level: String,
    pub log_json: bool,
    pub outbox: OutboxSettings,
    pub teams: Vec<TeamSettings>,
    pub inboxes: Vec<InboxSettings>,
    pub router: Arc<Router>,
    pub desk: Arc<Desk>,
    pub subscriptions: SubscriptionSettings,
    pub privacy: PrivacySettings,
    /// What runs but deserves a look, each naming its key: `check-config` prints them,
    /// `serve` logs them at start (an update event without a template in a language the
    /// desk routes on or detects).
    pub warnings: Vec<ConfigError>,
}

impl Settings {
    /// Each inbox's key and channel kind, in config order: what `route explain` checks a
    /// sample's inbox against.
    pub fn inbox_kinds(&self) -> Vec<(&str, ChannelKind)> {
        self.inboxes
            .iter()
            .map(|inbox| (inbox.key.as_str(), inbox.channel.kind()))
            .collect()
    }
}

/// Reads the file and the environment and validates the result.
pub fn load(path: &Path) -> Result<Settings, ConfigError> {
    load_raw(path)?.validate()
}

/// Reads the file and the environment, refusing unknown keys and values of the wrong
/// type, without validating the values.
pub fn load_raw(path: &Path) -> Result<RawConfig, ConfigError> {
    if !path.is_file() {
        return Err(ConfigError::new(
            "--config",
            format!("no config file at {}", path.display()),
        ));
    }
    let environment = config::Environment::with_prefix(ENV_PREFIX)
        .separator("__")
        .try_parsing(true)
        .list_separator(",")
        .with_list_parse_key("outbox.retry_schedule");
    config::Config::builder()
        .add_source(config::File::from(path).format(config::FileFormat::Toml))
        .add_source(environment)
        .build()
        .and_then(|config| config.try_deserialize::<RawConfig>())
        .map_err(|err| {
            let file = path.display().to_string();
            let origin = format!("(set in {file} or a {ENV_PREFIX}__ variable)");
            describe_config_crate_error(err, &file, &origin)
        })
}

/// Reads a TOML text alone (no file, no environment) the way [`load_raw`] reads a file:
/// the config fuzz target feeds it arbitrary text.
pub fn parse_toml(text: &str) -> Result<RawConfig, ConfigError> {
    config::Config::builder()
        .add_source(config::File::from_str(text, config::FileFormat::Toml))
        .build()
        .and_then(|config| config.try_deserialize::<RawConfig>())
        .map_err(|err| describe_config_crate_error(err, "(TOML text)", "(in the TOML text)"))
}

/// [`parse_toml`], then validation: a TOML text to [`Settings`] without any I/O, the
/// secrets it names read from `secrets`.
pub fn from_toml(text: &str, secrets: &dyn SecretSource) -> Result<Settings, ConfigError> {
    parse_toml(text)?.validate_with(secrets)
}

/// The config crate says "… for key `server`", "missing configuration field "x"" or
/// "… in FILE"; turn that into our key-first form so the operator sees what to change
/// first. An unknown field is named by its full key (`server.lisen`), the table it sits
/// in being only half the answer.
///
/// `source` names the text when no key can be (a TOML syntax error), `origin` says where
/// a key is set.
fn describe_config_crate_error(err: config::ConfigError, source: &str, origin: &str) -> ConfigError {
    let text = err.to_string();
    let between = |start: &str, end: char| {
        text.split(start)
            .nth(1)
            .and_then(|rest| rest.split(end).next())
            .map(str::to_owned)
    };
    let table = between("for key `", '`');
    let unknown = between("unknown field `", '`');
    let missing = between("missing configuration field \"", '"');
    let problem = text.split(" for key `").next().unwrap_or(&text).to_owned();
    let key = match (table, unknown, missing) {
        (_, _, Some(missing)) => Some(missing),
        (Some(table), Some(field), _) => Some(format!("{table}.{field}")),
        (None, Some(field), _) => Some(field),
        (table, None, None) => table,
    };
    match (key, &err) {
        (Some(key), _) => {
            let problem = if problem.starts_with("missing configuration field") {
                "is required".to_owned()
            } else {
                problem
            };
            ConfigError::new(dotted(&key), format!("{problem} {origin}"))
        }
        (None, config::ConfigError::FileParse { .. }) => ConfigError::new(source, text),
        (None, _) => ConfigError::new("(top level)", text),
    }
}

/// The config crate writes `rules[0]then`; we write `rules[0].then`.
fn dotted(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 4);
    let mut chars = key.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == ']' && chars.peek().is_some_and(|next| *next != '.' && *next != '[') {
            out.push('.');
        }
    }
    out
}

impl RawConfig {
    /// Validates with the secrets inboxes name read from the process's environment and
    /// disk.
    pub fn validate(&self) -> Result<Settings, ConfigError> {
        self.validate_with(&ProcessSecrets)
    }

    /// Each area validates its own sections; what one needs of another's is passed as
    /// plain values. The order is the one operators have always seen: with several
    /// mistakes, the first reported stays the same.
    pub fn validate_with(&self, secrets: &dyn SecretSource) -> Result<Settings, ConfigError> {
        let (listen, http_shutdown_grace, door) = self.server.validate()?;
        let metrics_token = self.server.metrics_token(secrets)?;
        let console = self.console.validate(listen)?;
        let visibility = self.agents.validate()?;
        let storage = self.storage.validate()?;
        self.log.validate()?;
        let outbox = self.outbox.validate()?;
        let teams = validate_teams(&self.teams, &self.routing.default_team)?;
        let inboxes = validate_inboxes(&self.inboxes, secrets)?;
        let team_keys: Vec<&str> = teams.iter().map(|team| team.key.as_str()).collect();
        let inbox_keys: Vec<&str> = inboxes.iter().map(|inbox| inbox.key.as_str()).collect();
        let labels = crate::domain::labels::LabelCatalog::validate(&self.labels)?;
        let router = validate_rules(
            &self.routing,
            &self.rules,
            &self.keywords,
            &team_keys,
            &inbox_keys,
            &labels,
        )?;
        let inbox_updates: Vec<_> = self
            .inboxes
            .iter()
            .map(|(key, inbox)| (key.as_str(), inbox.updates_off.as_slice(), inbox.language.as_deref()))
            .collect();
        let team_updates: Vec<_> = self
            .teams
            .iter()
            .map(|(key, team)| (key.as_str(), team.updates_off.as_slice()))
            .collect();
        let updates = validate_updates(
            &self.updates,
            &self.csat,
            &inbox_updates,
            &team_updates,
            outbox.expire_after,
        )?;
        let warnings = missing_templates(&updates, &self.languages());
        let desk = validate_desk(
            &self.teams,
            &self.business_hours,
            &self.sla_policies,
            &self.sla,
            &self.routing.detect_languages,
            updates,
            labels,
        )?;
        let subscriptions = self.subscriptions.validate()?;
        let privacy = self.privacy.validate()?;

        Ok(Settings {
            listen,
            http_shutdown_grace,
            door,
            metrics_token,
            console,
            visibility,
            storage,
            log_level: self.log.level.clone(),
            log_json: self.log.format == "json",
            outbox,
            teams,
            inboxes,
            router: Arc::new(router),
            desk: Arc::new(desk),
            subscriptions,
            privacy,
            warnings,
        })
    }

    /// The languages the desk routes on or detects, each with the key naming it.
    fn languages(&self) -> Vec<(String, String)> {
        let mut languages = Vec::new();
        for (index, tag) in self.routing.detect_languages.iter().enumerate() {
            languages.push((tag.clone(), format!("routing.detect_languages[{index}]")));
        }
        for (rule, config) in self.rules.iter().enumerate() {
            for (index, tag) in config.when.language.iter().flatten().enumerate() {
                languages.push((tag.clone(), format!("rules[{rule}].when.language[{index}]")));
            }
        }
        for (key, inbox) in &self.inboxes {
            if let Some(tag) = &inbox.language {
                languages.push((tag.clone(), format!("inboxes.{key}.language")));
            }
        }
        languages.push((
            self.updates.default_language.clone(),
            "updates.default_language".to_owned(),
        ));
        languages
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::updates::UpdateEvent;
    use crate::model::Priority;
    use crate::model::clock::ClockKind;

    const MINIMAL: &str = r#"
        [routing]
        default_team = "support"
        [teams.support]
        name = "Support"
        [teams.billing]
        name = "Billing"
        [inboxes.shop.webhook]
        secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
        callback_url = "http://127.0.0.1:9/cb"
        [[rules]]
        name = "refunds"
        when = { text = "(?i)refund" }
        then = { team = "billing", priority = "high" }
    "#;

    fn raw(text: &str) -> Result<RawConfig, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, text).unwrap();
        load_raw(&path)
    }

    fn key_of_error(text: &str) -> String {
        match raw(text).and_then(|raw| raw.validate()) {
            Ok(_) => panic!("config was accepted:\n{text}"),
            Err(err) => err.key,
        }
    }

    #[test]
    fn an_event_without_a_template_in_a_language_the_desk_detects_or_routes_on_is_a_warning() {
        let text = MINIMAL.replace(
            "default_team = \"support\"",
            "default_team = \"support\"\ndetect_languages = [\"en\", \"it\"]",
        ) + r#"
        [[rules]]
        name = "austrian customers"
        when = { language = ["de-AT"] }
        then = { labels = ["austria"] }
        [updates]
        events = ["received", "resolved"]
        [updates.templates.received.it]
        text = "Abbiamo ricevuto il tuo messaggio: {{ conversation.reference }}"
        [updates.templates.resolved.de]
        text = "Ihre Anfrage {{ conversation.reference }} ist gelöst."
        "#;
        let settings = raw(&text).unwrap().validate().unwrap();
        let keys: Vec<&str> = settings.warnings.iter().map(|warning| warning.key.as_str()).collect();
        // English is built in; `de` covers `de-AT`; `assigned` is not sent.
        assert_eq!(
            keys,
            ["updates.templates.resolved.it", "updates.templates.received.de-at"]
        );
        assert_eq!(
            settings.warnings[0].to_string(),
            "configuration key `updates.templates.resolved.it`: no template, so `resolved` updates to \
             customers in `it` (routing.detect_languages[1]) go out in `en`"
        );
        assert!(raw(MINIMAL).unwrap().validate().unwrap().warnings.is_empty());
    }

    #[test]
    fn a_minimal_config_validates_with_defaults() {
        let settings = raw(MINIMAL).unwrap().validate().unwrap();
        assert_eq!(settings.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(settings.outbox.retry_schedule[0], Duration::from_secs(5));
        assert_eq!(settings.inboxes[0].key, "shop");
        assert!(
            settings
                .desk
                .updates
                .sends(UpdateEvent::Received, "shop", Some("billing"))
        );
    }

    #[test]
    fn the_shipped_default_config_validates() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_PATH);
        let settings = load(&path).unwrap();
        assert!(!settings.inboxes.is_empty() && settings.teams.len() >= 3);
    }

    /// Secrets from a table, files from nowhere: validation that must not touch the
    /// process's environment or disk.
    struct Vault(&'static [(&'static str, &'static str)]);

    impl SecretSource for Vault {
        fn var(&self, name: &str) -> Option<String> {
            self.0
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        }

        fn read_file(&self, path: &str) -> std::io::Result<Vec<u8>> {
            Err(std::io::Error::new(std::io::ErrorKind::NotFound, path.to_owned()))
        }
    }

    #[test]
    fn a_toml_text_validates_with_secrets_from_the_given_source() {
        let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/examples/telegram.toml"))
            .unwrap();
        let vault = Vault(&[("SHOP_BOT_TOKEN", "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw")]);
        let settings = from_toml(&text, &vault).unwrap();
        assert_eq!(settings.inboxes.len(), 1);
        let err = from_toml(&text, &Vault(&[])).unwrap_err();
        assert_eq!(err.key, "inboxes.shop-bot.telegram.token_env");
    }

    #[test]
    fn the_metrics_token_is_read_from_the_variable_named_and_refused_naming_the_key() {
        let text = format!("[server]\nmetrics_token_env = \"SCRAPE_TOKEN\"\n{MINIMAL}");
        let settings = from_toml(&text, &Vault(&[("SCRAPE_TOKEN", " s3cret\n")])).unwrap();
        let token = settings.metrics_token.expect("a metrics token");
        assert!(token.accepts("s3cret") && !token.accepts("s3cre") && !token.accepts(""));
        assert!(!format!("{token:?}").contains("s3cret"));
        for vault in [Vault(&[]), Vault(&[("SCRAPE_TOKEN", "  ")])] {
            assert_eq!(from_toml(&text, &vault).unwrap_err().key, "server.metrics_token_env");
        }
        assert!(from_toml(MINIMAL, &Vault(&[])).unwrap().metrics_token.is_none());
    }

    #[test]
    fn a_toml_syntax_error_names_the_text_and_a_bad_value_its_key() {
        let err = parse_toml("[routing\n").unwrap_err();
        assert_eq!(err.key, "(TOML text)");
        let err = parse_toml(&format!("{MINIMAL}\n[server]\nlisten = [1]")).unwrap_err();
        assert_eq!(err.key, "server.listen");
        assert!(err.problem.ends_with("(in the TOML text)"), "{err}");
    }

    #[test]
    fn unknown_keys_are_named() {
        assert_eq!(
            key_of_error(&format!("{MINIMAL}\n[server]\nlisten_on = \"x\"")),
            "server.listen_on"
        );
        assert_eq!(key_of_error(&format!("surprise = 1\n{MINIMAL}")), "surprise");
        let in_rule = MINIMAL.replace("when = { text", "when = { subject = \"x\", text");
        assert_eq!(key_of_error(&in_rule), "rules[0].when.subject");
    }

    #[test]
    fn missing_keys_are_named() {
        assert_eq!(
            key_of_error(&MINIMAL.replace("then = { team = \"billing\", priority = \"high\" }", "")),
            "rules[0].then"
        );
        assert_eq!(
            key_of_error(&MINIMAL.replace("default_team = \"support\"", "")),
            "routing.default_team"
        );
        let err = raw(&MINIMAL.replace("secret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"", "")).unwrap_err();
        assert_eq!(
            (err.key.as_str(), err.problem.starts_with("is required")),
            ("inboxes.shop.webhook.secret", true)
        );
        let err = raw(&format!("{MINIMAL}\n[server]\nlisten_on = \"x\"")).unwrap_err();
        assert!(err.problem.contains("listen_on"), "{err}");
        assert_eq!(
            key_of_error(&MINIMAL.replace("callback_url", "callback")),
            "inboxes.shop.webhook.callback"
        );
    }

    #[test]
    fn teams_form_departments_with_tiers_and_the_next_tier_is_found() {
        let text = format!(
            "{MINIMAL}
[teams.billing-l1]
name = \"Billing L1\"
department = \"billing\"
tier = 1
[teams.billing-l3]
name = \"Billing L3\"
department = \"billing\"
tier = 3
[teams.vip]
name = \"VIP desk\"
escalate_to = \"billing-l3\"
"
        );
        let desk = raw(&text).unwrap().validate().unwrap().desk;
        let next = |key: &str| desk.team(key).unwrap().next_tier.clone();
        assert_eq!(next("billing").as_deref(), Some("billing-l1"));
        assert_eq!(next("billing-l1").as_deref(), Some("billing-l3"));
        assert_eq!(next("billing-l3"), None);
        assert_eq!(next("vip").as_deref(), Some("billing-l3"));
        assert_eq!(next("support"), None);
    }

    #[test]
    fn sla_targets_per_priority_and_for_all() {
        let text = format!(
            "{MINIMAL}
[business_hours.office]
time_zone = \"Asia/Bangkok\"
week = {{ mon = \"09:00-18:00\", sat = \"closed\" }}
[sla_policies.standard]
time = \"calendar\"
resolution_time = \"business\"
first_response = {{ urgent = \"15m\", normal = \"4h\" }}
resolution = \"3days\"
on_breach = [\"raise_priority\"]
"
        )
        .replace(
            "name = \"Support\"",
            "name = \"Support\"\nsla = \"standard\"\nbusiness_hours = \"office\"",
        );
        let desk = raw(&text).unwrap().validate().unwrap().desk;
        let target = |kind, priority| desk.target(Some("support"), kind, priority).map(|t| t.target_ms);
        assert_eq!(target(ClockKind::FirstResponse, Priority::Urgent), Some(15 * 60_000));
        assert_eq!(target(ClockKind::FirstResponse, Priority::High), None);
        assert_eq!(target(ClockKind::Resolution, Priority::Low), Some(3 * 86_400_000));
        assert_eq!(target(ClockKind::NextResponse, Priority::Normal), None);
        // Calendar time: the office calendar is not used.
        let first = desk
            .target(Some("support"), ClockKind::FirstResponse, Priority::Normal)
            .unwrap();
        assert!(first.calendar.is_always());
        // …but resolution in the office's hours.
        let resolution = desk
            .target(Some("support"), ClockKind::Resolution, Priority::Normal)
            .unwrap();
        assert_eq!(resolution.calendar.time_zone(), "Asia/Bangkok");
        assert_eq!(first.warn_ms, Some(4 * 3_600_000 * 8 / 10));
        let actions = desk.breach_actions(Some("support"), ClockKind::FirstResponse);
        assert!(actions.raise_priority && !actions.escalate && !actions.notify);
        // No policy: only the cap.
        assert!(
            desk.target(Some("billing"), ClockKind::FirstResponse, Priority::Urgent)
                .is_none()
        );
        assert!(
            desk.target(Some("billing"), ClockKind::MaxOpen, Priority::Low)
                .is_some()
        );
    }

    #[test]
    fn bad_values_are_named() {
        let cases = [
            (
                MINIMAL.replace("default_team = \"support\"", "default_team = \"nobody\""),
                "routing.default_team",
            ),
            (
                MINIMAL.replace("team = \"billing\"", "team = \"biling\""),
                "rules[0].then.team",
            ),
            (
                MINIMAL.replace("priority = \"high\"", "priority = \"asap\""),
                "rules[0].then.priority",
            ),
            (MINIMAL.replace("(?i)refund", "(unclosed"), "rules[0].when.text"),
            (
                MINIMAL.replace("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "secret"),
                "inboxes.shop.webhook.secret",
            ),
            (format!("{MINIMAL}\n[server]\nlisten = \"localhost\""), "server.listen"),
            (
                format!("{MINIMAL}\n[outbox]\nretry_schedule = [\"5s\", \"soon\"]"),
                "outbox.retry_schedule[1]",
            ),
            (
                format!("{MINIMAL}\n[outbox]\nconcurrency = \"many\""),
                "outbox.concurrency",
            ),
            (format!("{MINIMAL}\n[storage]\nurl = \"mysql://x\""), "storage.url"),
            (
                format!("{MINIMAL}\n[updates.templates.received.th]\ntext = \"{{{{ oops\""),
                "updates.templates.received.th.text",
            ),
            (
                format!("{MINIMAL}\n[updates.templates.resolved.ar]\ntext = \"{{{{ conversation.nope }}}}\""),
                "updates.templates.resolved.ar.text",
            ),
            (
                format!("{MINIMAL}\n[updates.templates.solved.en]\ntext = \"ok\""),
                "updates.templates.solved",
            ),
            (
                format!("{MINIMAL}\n[updates]\nevents = [\"received\", \"sent\"]"),
                "updates.events[1]",
            ),
            (format!("{MINIMAL}\n[updates]\nwindow = \"soon\""), "updates.window"),
            (
                format!("{MINIMAL}\n[updates]\nauto_close_after = \"0s\""),
                "updates.auto_close_after",
            ),
            (
                format!("{MINIMAL}\n[console]\npublic_url = \"desk.example.com\""),
                "console.public_url",
            ),
            (format!("{MINIMAL}\n[console]\nlockout = \"1s\""), "console.lockout"),
            (
                format!("{MINIMAL}\n[agents]\nvisibility = \"some\""),
                "agents.visibility",
            ),
            (
                format!("{MINIMAL}\n[labels.billing]\ncolor = \"blue\""),
                "labels.billing.color",
            ),
            (
                format!(
                    "{}\n[labels.billing]\ncolor = \"#00f\"",
                    MINIMAL.replace("priority = \"high\" }", "labels = [\"refund\"] }")
                ),
                "rules[0].then.labels[0]",
            ),
            (
                format!("{MINIMAL}\n[console]\nsession_lifetime = \"forever\""),
                "console.session_lifetime",
            ),
            (
                format!("{MINIMAL}\n[console]\nmax_failed_sign_ins = 0"),
                "console.max_failed_sign_ins",
            ),
            (
                format!("{MINIMAL}\n[csat]\npublic_url = \"ftp://x\""),
                "csat.public_url",
            ),
            (
                format!("{MINIMAL}\n[csat]\nreply_after_resolution = \"ignore\""),
                "csat.reply_after_resolution",
            ),
            (
                MINIMAL.replace("name = \"Billing\"", "name = \"Billing\"\nupdates_off = [\"nope\"]"),
                "teams.billing.updates_off[0]",
            ),
            (MINIMAL.replace("[teams.billing]", "[teams.Billing]"), "teams.Billing"),
            (
                MINIMAL.replace("name = \"Billing\"", "name = \"Billing\"\ntier = 4"),
                "teams.billing.tier",
            ),
            (
                MINIMAL.replace("name = \"Billing\"", "name = \"Billing\"\nassignment = \"random\""),
                "teams.billing.assignment",
            ),
            (
                MINIMAL.replace("name = \"Billing\"", "name = \"Billing\"\nlanguage_wait = \"soon\""),
                "teams.billing.language_wait",
            ),
            (
                MINIMAL.replace("name = \"Billing\"", "name = \"Billing\"\nlanguage_wait = \"2days\""),
                "teams.billing.language_wait",
            ),
            (
                MINIMAL.replace("name = \"Billing\"", "name = \"Billing\"\nescalate_to = \"billing\""),
                "teams.billing.escalate_to",
            ),
            (
                MINIMAL.replace("name = \"Billing\"", "name = \"Billing\"\nbusiness_hours = \"office\""),
                "teams.billing.business_hours",
            ),
            (
                MINIMAL.replace("name = \"Billing\"", "name = \"Billing\"\nsla = \"gold\""),
                "teams.billing.sla",
            ),
            (
                format!(
                    "{MINIMAL}\n[business_hours.office]\ntime_zone = \"Mars/Olympus\"\nweek = {{ mon = \"09:00-17:00\" }}"
                ),
                "business_hours.office.time_zone",
            ),
            (
                format!("{MINIMAL}\n[business_hours.office]\ntime_zone = \"UTC\"\nweek = {{ mon = \"9 to 5\" }}"),
                "business_hours.office.week.mon",
            ),
            (
                format!("{MINIMAL}\n[sla_policies.gold]\nfirst_response = {{ asap = \"1h\" }}"),
                "sla_policies.gold.first_response.asap",
            ),
            (
                format!("{MINIMAL}\n[sla_policies.gold]\nresolution = \"0s\""),
                "sla_policies.gold.resolution",
            ),
            (
                format!("{MINIMAL}\n[sla_policies.gold]\nresolution_time = \"weekdays\""),
                "sla_policies.gold.resolution_time",
            ),
            (
                format!("{MINIMAL}\n[sla_policies.gold]\nwarning = 1.5"),
                "sla_policies.gold.warning",
            ),
            (
                format!("{MINIMAL}\n[sla_policies.gold]\non_breach = [\"escalate\", \"page\"]"),
                "sla_policies.gold.on_breach[1]",
            ),
            (
                format!("{MINIMAL}\n[sla_policies.gold]\nescalate_to = \"nobody\""),
                "sla_policies.gold.escalate_to",
            ),
            (format!("{MINIMAL}\n[sla]\nmax_open = \"5m\""), "sla.max_open"),
            (
                MINIMAL.replace(
                    "default_team = \"support\"",
                    "default_team = \"support\"\ndetect_languages = [\"en\", \"klingon\"]",
                ),
                "routing.detect_languages[1]",
            ),
            (
                MINIMAL.replace("when = { text = \"(?i)refund\" }", "when = { keywords = [\"money\"] }"),
                "rules[0].when.keywords[0]",
            ),
            (
                MINIMAL.replace("when = { text = \"(?i)refund\" }", "when = { keywords = [\"money\"] }")
                    + "\n[keywords]\nmoney = [\"refund\", \" \"]",
                "keywords.money",
            ),
        ];
        for (text, key) in cases {
            assert_eq!(key_of_error(&text), key, "config:\n{text}");
        }
    }
}
