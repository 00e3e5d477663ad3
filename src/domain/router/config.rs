//! `[routing]`, `[[rules]]` and the `[keywords]` lists rules name, compiled into the
//! [`Router`]. The team and inbox keys rules may refer to come in as plain lists.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::config::error::ConfigError;
use crate::domain::labels::LabelCatalog;
use crate::domain::router::{KeywordSet, RouteAction, RouteCondition, Router};
use crate::model::Priority;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingConfig {
    /// The team that takes every conversation no rule claims.
    pub default_team: String,
    /// The languages (ISO 639-1) detection chooses among when a channel gives none;
    /// all it knows when empty.
    #[serde(default)]
    pub detect_languages: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Shown in the routing event, so agents see why a conversation landed where it did.
    pub name: String,
    /// Conditions, all of which must hold; an empty `when` matches everything.
    #[serde(default)]
    pub when: RuleWhen,
    /// What a match does.
    pub then: RuleThen,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleWhen {
    /// Inbox keys.
    pub inbox: Option<Vec<String>>,
    /// Channel kinds: `webhook`, `email`, `telegram`.
    pub channel: Option<Vec<String>>,
    /// A regular expression searched in the subject and text (`(?i)` for any case).
    pub text: Option<String>,
    /// Language tags; `de` matches `de-AT`.
    pub language: Option<Vec<String>>,
    /// Contact attributes that must equal these values (`{ plan = "enterprise" }`).
    pub metadata: Option<BTreeMap<String, String>>,
    /// Names of `[keywords]` lists; any keyword of any of them must occur.
    pub keywords: Option<Vec<String>>,
    /// The contact's `value_tier` attribute is one of these.
    pub value_tier: Option<Vec<String>>,
    /// The contact's `flags` attribute holds one of these (`vip`, `influencer`).
    pub flags: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleThen {
    /// The team key to queue the conversation in; the default team when absent.
    pub team: Option<String>,
    /// `low`, `normal`, `high` or `urgent`.
    pub priority: Option<String>,
    /// Labels added to the conversation.
    #[serde(default)]
    pub labels: Vec<String>,
}

/// `[[rules]]` compiled into the router, with `[routing]` and the `[keywords]` lists the
/// rules name. `teams` and `inboxes` are the configured keys rules may refer to.
pub fn validate_rules(
    routing: &RoutingConfig,
    rules: &[RuleConfig],
    keywords: &BTreeMap<String, Vec<String>>,
    teams: &[&str],
    inboxes: &[&str],
    labels: &LabelCatalog,
) -> Result<Router, ConfigError> {
    let mut compiled = Vec::new();
    for (index, rule) in rules.iter().enumerate() {
        let at = |key: &str| format!("rules[{index}].{key}");
        if rule.name.trim().is_empty() {
            return Err(ConfigError::new(at("name"), "must not be empty"));
        }
        let mut conditions = Vec::new();
        if let Some(keys) = &rule.when.inbox {
            for (i, key) in keys.iter().enumerate() {
                if !inboxes.contains(&key.as_str()) {
                    return Err(ConfigError::new(
                        at(&format!("when.inbox[{i}]")),
                        format!("`{key}` is not an inbox"),
                    ));
                }
            }
            conditions.push(RouteCondition::Inbox(keys.clone()));
        }
        if let Some(kinds) = &rule.when.channel {
            let parsed = kinds
                .iter()
                .enumerate()
                .map(|(i, kind)| {
                    crate::channels::kind(kind).ok_or_else(|| {
                        ConfigError::new(
                            at(&format!("when.channel[{i}]")),
                            format!("`{kind}` is not one of {}", crate::channels::registry::names()),
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            conditions.push(RouteCondition::Channel(parsed));
        }
        if let Some(pattern) = &rule.when.text {
            let regex = regex::RegexBuilder::new(pattern)
                .size_limit(1 << 20)
                .build()
                .map_err(|err| ConfigError::new(at("when.text"), format!("is not a regular expression: {err}")))?;
            conditions.push(RouteCondition::Text(regex));
        }
        if let Some(languages) = &rule.when.language {
            conditions.push(RouteCondition::Language(
                languages.iter().map(|l| l.to_ascii_lowercase()).collect(),
            ));
        }
        if let Some(metadata) = &rule.when.metadata {
            conditions.push(RouteCondition::Metadata(metadata.clone()));
        }
        if let Some(names) = &rule.when.keywords {
            let mut sets = Vec::new();
            for (i, name) in names.iter().enumerate() {
                let Some(words) = keywords.get(name) else {
                    return Err(ConfigError::new(
                        at(&format!("when.keywords[{i}]")),
                        format!(
                            "`{name}` is not a [keywords] list; lists are: {}",
                            keyword_names(keywords)
                        ),
                    ));
                };
                sets.push(
                    KeywordSet::new(name, words)
                        .map_err(|problem| ConfigError::new(format!("keywords.{name}"), problem))?,
                );
            }
            conditions.push(RouteCondition::Keywords(sets));
        }
        if let Some(tiers) = &rule.when.value_tier {
            conditions.push(RouteCondition::ValueTier(tiers.clone()));
        }
        if let Some(flags) = &rule.when.flags {
            conditions.push(RouteCondition::Flags(flags.clone()));
        }

        let team = match &rule.then.team {
            Some(team) if !teams.contains(&team.as_str()) => {
                return Err(ConfigError::new(
                    at("then.team"),
                    format!("`{team}` is not a team; teams are: {}", teams.join(", ")),
                ));
            }
            other => other.clone(),
        };
        let priority = rule
            .then
            .priority
            .as_deref()
            .map(|p| {
                Priority::parse(p).ok_or_else(|| {
                    ConfigError::new(at("then.priority"), format!("`{p}` is not low, normal, high or urgent"))
                })
            })
            .transpose()?;
        for (i, label) in rule.then.labels.iter().enumerate() {
            labels
                .check(label)
                .map_err(|problem| ConfigError::new(at(&format!("then.labels[{i}]")), problem))?;
        }
        if team.is_none() && priority.is_none() && rule.then.labels.is_empty() {
            return Err(ConfigError::new(
                at("then"),
                "set at least one of team, priority, labels",
            ));
        }
        compiled.push((
            rule.name.trim().to_owned(),
            conditions,
            RouteAction {
                team,
                priority,
                labels: rule.then.labels.clone(),
            },
        ));
    }
    Ok(Router::new(compiled, routing.default_team.clone()))
}

/// The `[keywords]` list names, for messages that list them.
fn keyword_names(keywords: &BTreeMap<String, Vec<String>>) -> String {
    if keywords.is_empty() {
        return "(none defined)".into();
    }
    keywords.keys().map(String::as_str).collect::<Vec<_>>().join(", ")
}
