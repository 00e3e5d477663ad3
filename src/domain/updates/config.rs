//! `[updates]` and `[csat]`: which events send the customer an update, the templates, and
//! the satisfaction question. What inboxes and teams turn off (and an inbox's language)
//! comes in as plain values, so the updates need not know how those are configured.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use serde::Deserialize;

use crate::config::error::{ConfigError, duration, positive_duration};
use crate::domain::updates::{AfterResolution, CsatPolicy, TemplateSource, UpdateEvent, UpdatePolicy, UpdateSettings};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdatesConfig {
    /// The events that send an update (each inbox and team can turn any off):
    /// `received`, `greeting`, `out_of_hours`, `assigned`, `escalated`,
    /// `waiting_reminder`, `resolved`, `auto_closed`, `csat`.
    #[serde(default = "default_update_events")]
    pub events: Vec<String>,
    /// At most one update of a kind per conversation within this window.
    #[serde(default = "default_update_window")]
    pub window: String,
    /// The language of updates whose contact's language and inbox's have no template.
    #[serde(default = "default_update_language")]
    pub default_language: String,
    /// Remind a customer the desk waits on (status pending) after this long; none when absent.
    #[serde(default = "default_waiting_reminder_after")]
    pub waiting_reminder_after: Option<String>,
    /// Resolve a conversation still pending after this long; never when absent.
    pub auto_close_after: Option<String>,
    /// `[updates.templates.EVENT.LANGUAGE]` with `text` and optional `subject`, `html`,
    /// `markdown` (Telegram MarkdownV2); built-in English fills what is not given.
    #[serde(default)]
    pub templates: BTreeMap<String, BTreeMap<String, TemplateConfig>>,
}

fn default_update_events() -> Vec<String> {
    UpdateEvent::ALL
        .into_iter()
        .filter(|event| *event != UpdateEvent::Assigned)
        .map(|event| event.as_str().to_owned())
        .collect()
}

fn default_update_window() -> String {
    "1h".into()
}

fn default_update_language() -> String {
    "en".into()
}

fn default_waiting_reminder_after() -> Option<String> {
    Some("48h".into())
}

impl Default for UpdatesConfig {
    fn default() -> UpdatesConfig {
        UpdatesConfig {
            events: default_update_events(),
            window: default_update_window(),
            default_language: default_update_language(),
            waiting_reminder_after: default_waiting_reminder_after(),
            auto_close_after: None,
            templates: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateConfig {
    /// Every channel: the plain-text body.
    pub text: String,
    /// Email only.
    pub subject: Option<String>,
    /// Email only; the text, escaped, when absent.
    pub html: Option<String>,
    /// Telegram only, MarkdownV2 with every variable escaped; plain text when absent.
    pub markdown: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsatConfig {
    /// The daemon's public address, for the five links in satisfaction emails
    /// (`https://support.example.com`); without it email customers reply with a digit.
    pub public_url: Option<String>,
    /// How long after the question a score is taken (and a reply reopens).
    #[serde(default = "default_csat_answer_window")]
    pub answer_window: String,
    /// What a reply after resolution that is not a score does: `reopen` or
    /// `new_conversation`.
    #[serde(default = "default_after_resolution")]
    pub reply_after_resolution: String,
}

fn default_csat_answer_window() -> String {
    "7days".into()
}

fn default_after_resolution() -> String {
    "reopen".into()
}

impl Default for CsatConfig {
    fn default() -> CsatConfig {
        CsatConfig {
            public_url: None,
            answer_window: default_csat_answer_window(),
            reply_after_resolution: default_after_resolution(),
        }
    }
}

/// `[updates]` and `[csat]` validated and the templates compiled. `inboxes` holds each
/// inbox's key, `updates_off` and `language`; `teams` each team's key and `updates_off`;
/// `expire_after` is the outbox's, after which a queued update is not worth sending.
pub fn validate_updates(
    updates: &UpdatesConfig,
    csat: &CsatConfig,
    inboxes: &[(&str, &[String], Option<&str>)],
    teams: &[(&str, &[String])],
    expire_after: Duration,
) -> Result<UpdatePolicy, ConfigError> {
    let events = |key: &str, names: &[String]| {
        names
            .iter()
            .enumerate()
            .map(|(index, name)| {
                UpdateEvent::parse(name).ok_or_else(|| {
                    let known: Vec<&str> = UpdateEvent::ALL.iter().map(|event| event.as_str()).collect();
                    ConfigError::new(
                        format!("{key}[{index}]"),
                        format!("`{name}` is not an update event; events are: {}", known.join(", ")),
                    )
                })
            })
            .collect::<Result<BTreeSet<_>, _>>()
    };
    let language = |key: &str, tag: &str| {
        let tag = tag.trim().to_ascii_lowercase().replace('_', "-");
        let shaped =
            tag.split('-').next().is_some_and(|primary| {
                (2..=3).contains(&primary.len()) && primary.chars().all(|c| c.is_ascii_lowercase())
            }) && tag
                .split('-')
                .all(|part| !part.is_empty() && part.len() <= 8 && part.chars().all(|c| c.is_ascii_alphanumeric()));
        if shaped {
            Ok(tag)
        } else {
            Err(ConfigError::new(
                key,
                format!("`{tag}` is not a language tag such as `en`, `th` or `pt-br`"),
            ))
        }
    };
    let optional_duration =
        |key: &str, text: &Option<String>| text.as_deref().map(|text| positive_duration(key, text)).transpose();
    let mut inbox_off = HashMap::new();
    let mut inbox_language = HashMap::new();
    for &(key, updates_off, tag) in inboxes {
        inbox_off.insert(
            key.to_owned(),
            events(&format!("inboxes.{key}.updates_off"), updates_off)?,
        );
        if let Some(tag) = tag {
            inbox_language.insert(key.to_owned(), language(&format!("inboxes.{key}.language"), tag)?);
        }
    }
    let mut team_off = HashMap::new();
    for &(key, updates_off) in teams {
        team_off.insert(
            key.to_owned(),
            events(&format!("teams.{key}.updates_off"), updates_off)?,
        );
    }
    let mut templates = BTreeMap::new();
    for (event_name, languages) in &updates.templates {
        let event = UpdateEvent::parse(event_name).ok_or_else(|| {
            ConfigError::new(
                format!("updates.templates.{event_name}"),
                "is not an update event; see `updates.events` for the names",
            )
        })?;
        for (tag, template) in languages {
            let tag = language(&format!("updates.templates.{event_name}.{tag}"), tag)?;
            templates.insert(
                (event, tag),
                TemplateSource {
                    text: template.text.clone(),
                    subject: template.subject.clone(),
                    html: template.html.clone(),
                    markdown: template.markdown.clone(),
                },
            );
        }
    }
    let public_url = match &csat.public_url {
        None => None,
        Some(url) => {
            let parsed = reqwest::Url::parse(url)
                .ok()
                .filter(|url| matches!(url.scheme(), "http" | "https"));
            if parsed.is_none() {
                return Err(ConfigError::new(
                    "csat.public_url",
                    format!("`{url}` is not an http(s) URL such as https://support.example.com"),
                ));
            }
            Some(url.trim_end_matches('/').to_owned())
        }
    };
    let after_resolution = match csat.reply_after_resolution.as_str() {
        "reopen" => AfterResolution::Reopen,
        "new_conversation" => AfterResolution::NewConversation,
        other => {
            return Err(ConfigError::new(
                "csat.reply_after_resolution",
                format!("`{other}` is not `reopen` or `new_conversation`"),
            ));
        }
    };
    let settings = UpdateSettings {
        enabled: events("updates.events", &updates.events)?,
        window: duration("updates.window", &updates.window)?,
        default_language: language("updates.default_language", &updates.default_language)?,
        waiting_reminder_after: optional_duration("updates.waiting_reminder_after", &updates.waiting_reminder_after)?,
        auto_close_after: optional_duration("updates.auto_close_after", &updates.auto_close_after)?,
        inbox_off,
        inbox_language,
        team_off,
        csat: CsatPolicy {
            public_url,
            answer_window: positive_duration("csat.answer_window", &csat.answer_window)?,
            after_resolution,
        },
        expire_after,
    };
    UpdatePolicy::compile(settings, templates).map_err(|err| ConfigError::new(err.key, err.problem))
}

/// Warnings, not errors (the desk runs, in another language): every event `updates.events`
/// sends, in every language the desk routes on or detects, should have its templates, or
/// those customers get that update in the fallback language. `languages` holds each tag
/// with the key that names it (`routing.detect_languages`, `rules[2].when.language`); a
/// tag named twice is reported once, under its first key.
pub fn missing_templates(policy: &UpdatePolicy, languages: &[(String, String)]) -> Vec<ConfigError> {
    let mut seen = BTreeSet::new();
    let mut warnings = Vec::new();
    for (tag, named_by) in languages {
        let tag = tag.trim().to_ascii_lowercase().replace('_', "-");
        if !seen.insert(tag.clone()) {
            continue;
        }
        for event in UpdateEvent::ALL {
            if !policy.settings.enabled.contains(&event) || policy.has_template(event, &tag) {
                continue;
            }
            let fallback = policy.language(event, Some(&tag), "");
            warnings.push(ConfigError::new(
                format!("updates.templates.{}.{tag}", event.as_str()),
                format!(
                    "no template, so `{}` updates to customers in `{tag}` ({named_by}) go out in `{fallback}`",
                    event.as_str()
                ),
            ));
        }
    }
    warnings
}
