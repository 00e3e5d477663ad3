//! Routing: ordered rules from config, first match wins, a default team catches the
//! rest. Pure code: the store calls it inside the ingest transaction.

use std::collections::BTreeMap;

use regex::Regex;
use serde_json::Value;
use switchboard_connector_core::ChannelKind;

use crate::model::Priority;

#[derive(Debug, Clone)]
pub enum RouteCondition {
    Inbox(Vec<String>),
    Channel(Vec<ChannelKind>),
    /// Searched in the subject and the text.
    Text(Regex),
    /// Lowercase tags; a tag matches itself and its regional variants.
    Language(Vec<String>),
    /// Contact attributes that must equal these values.
    Metadata(BTreeMap<String, String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteAction {
    pub team: Option<String>,
    pub priority: Option<Priority>,
    pub labels: Vec<String>,
}

#[derive(Debug, Clone)]
struct Rule {
    name: String,
    conditions: Vec<RouteCondition>,
    action: RouteAction,
}

/// What the router looks at.
#[derive(Debug, Clone, Copy)]
pub struct RouteInput<'a> {
    pub inbox: &'a str,
    pub channel: ChannelKind,
    pub subject: Option<&'a str>,
    pub text: &'a str,
    pub language: Option<&'a str>,
    /// The contact's attributes after this message's were merged in.
    pub metadata: &'a BTreeMap<String, Value>,
}

/// Where a new conversation goes, and which rule said so (`None`: the default team).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteDecision {
    pub rule: Option<String>,
    pub team: String,
    pub priority: Priority,
    pub labels: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Router {
    rules: Vec<Rule>,
    default_team: String,
}

impl Router {
    /// Built from validated config: team keys in actions exist, regexes compiled.
    pub fn new(rules: Vec<(String, Vec<RouteCondition>, RouteAction)>, default_team: String) -> Router {
        let rules = rules
            .into_iter()
            .map(|(name, conditions, action)| Rule {
                name,
                conditions,
                action,
            })
            .collect();
        Router { rules, default_team }
    }

    pub fn route(&self, input: &RouteInput<'_>) -> RouteDecision {
        match self
            .rules
            .iter()
            .find(|rule| rule.conditions.iter().all(|condition| condition.holds(input)))
        {
            Some(rule) => RouteDecision {
                rule: Some(rule.name.clone()),
                team: rule.action.team.clone().unwrap_or_else(|| self.default_team.clone()),
                priority: rule.action.priority.unwrap_or(Priority::Normal),
                labels: rule.action.labels.clone(),
            },
            None => RouteDecision {
                rule: None,
                team: self.default_team.clone(),
                priority: Priority::Normal,
                labels: Vec::new(),
            },
        }
    }
}

impl RouteCondition {
    fn holds(&self, input: &RouteInput<'_>) -> bool {
        match self {
            RouteCondition::Inbox(keys) => keys.iter().any(|key| key == input.inbox),
            RouteCondition::Channel(kinds) => kinds.contains(&input.channel),
            RouteCondition::Text(regex) => {
                input.subject.is_some_and(|subject| regex.is_match(subject)) || regex.is_match(input.text)
            }
            RouteCondition::Language(tags) => input.language.is_some_and(|language| {
                let language = language.to_ascii_lowercase().replace('_', "-");
                tags.iter()
                    .any(|tag| language == *tag || language.starts_with(&format!("{tag}-")))
            }),
            RouteCondition::Metadata(wanted) => wanted.iter().all(|(key, value)| {
                input
                    .metadata
                    .get(key)
                    .is_some_and(|actual| value_equals(actual, value))
            }),
        }
    }
}

/// Config values are strings; contact attributes may be numbers or booleans too.
fn value_equals(actual: &Value, wanted: &str) -> bool {
    match actual {
        Value::String(text) => text == wanted,
        Value::Number(number) => number.to_string() == wanted,
        Value::Bool(flag) => wanted.parse::<bool>() == Ok(*flag),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn router() -> Router {
        Router::new(
            vec![
                (
                    "vip".into(),
                    vec![RouteCondition::Metadata(BTreeMap::from([(
                        "tier".into(),
                        "vip".into(),
                    )]))],
                    RouteAction {
                        team: None,
                        priority: Some(Priority::High),
                        labels: vec!["vip".into()],
                    },
                ),
                (
                    "german billing".into(),
                    vec![
                        RouteCondition::Text(Regex::new("(?i)rechnung|refund").unwrap()),
                        RouteCondition::Language(vec!["de".into()]),
                    ],
                    RouteAction {
                        team: Some("billing".into()),
                        priority: None,
                        labels: vec![],
                    },
                ),
                (
                    "enterprise webhook".into(),
                    vec![
                        RouteCondition::Channel(vec![ChannelKind::Webhook]),
                        RouteCondition::Inbox(vec!["shop".into()]),
                        RouteCondition::Metadata(BTreeMap::from([("seats".into(), "500".into())])),
                    ],
                    RouteAction {
                        team: Some("enterprise".into()),
                        priority: Some(Priority::Urgent),
                        labels: vec![],
                    },
                ),
            ],
            "general".into(),
        )
    }

    fn input<'a>(text: &'a str, language: Option<&'a str>, metadata: &'a BTreeMap<String, Value>) -> RouteInput<'a> {
        RouteInput {
            inbox: "shop",
            channel: ChannelKind::Webhook,
            subject: None,
            text,
            language,
            metadata,
        }
    }

    #[test]
    fn unmatched_messages_go_to_the_default_team() {
        let none = BTreeMap::new();
        let decision = router().route(&input("hello", None, &none));
        assert_eq!(
            decision,
            RouteDecision {
                rule: None,
                team: "general".into(),
                priority: Priority::Normal,
                labels: vec![]
            }
        );
    }

    #[test]
    fn all_conditions_must_hold_and_regional_languages_match() {
        let none = BTreeMap::new();
        assert_eq!(
            router()
                .route(&input("Meine Rechnung ist falsch", Some("de-AT"), &none))
                .team,
            "billing"
        );
        assert_eq!(
            router()
                .route(&input("Meine Rechnung ist falsch", Some("en"), &none))
                .team,
            "general"
        );
        assert_eq!(
            router()
                .route(&input("Meine Rechnung ist falsch", Some("dex"), &none))
                .team,
            "general"
        );
    }

    #[test]
    fn first_match_wins_and_a_rule_without_team_uses_the_default() {
        let vip = BTreeMap::from([("tier".to_string(), json!("vip"))]);
        let decision = router().route(&input("refund please", Some("de"), &vip));
        assert_eq!(decision.rule.as_deref(), Some("vip"));
        assert_eq!((decision.team.as_str(), decision.priority), ("general", Priority::High));
    }

    #[test]
    fn metadata_numbers_compare_by_their_text() {
        let big = BTreeMap::from([("seats".to_string(), json!(500))]);
        let decision = router().route(&input("hi", None, &big));
        assert_eq!(
            (decision.team.as_str(), decision.priority),
            ("enterprise", Priority::Urgent)
        );
    }
}
