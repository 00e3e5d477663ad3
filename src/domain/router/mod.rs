//! Routing: rules from config, each evaluated against a new conversation's first
//! message, a default team for what no rule claims. Pure code: the store calls it
//! inside the ingest transaction, and `route explain` calls it to show its work.
//!
//! Every rule is evaluated, so independent concerns combine: a billing rule picks the
//! team, a VIP rule raises the priority. The first matching rule that names a team
//! decides the team; the priority is the highest any matching rule sets (`normal` when
//! none does); labels are the union, in rule order.
//!
//! The sections rules are compiled from are in [`config`].

pub mod config;

use std::collections::BTreeMap;

use regex::Regex;
use serde::Serialize;
use serde_json::Value;
use switchboard_connector_core::ChannelKind;

use crate::model::Priority;

#[derive(Debug, Clone)]
pub enum RouteCondition {
    Inbox(Vec<String>),
    Channel(Vec<ChannelKind>),
    /// Searched in the subject and the text.
    Text(Regex),
    /// Named keyword sets (`[keywords]` in config), any of which must occur.
    Keywords(Vec<KeywordSet>),
    /// Lowercase tags; a tag matches itself and its regional variants.
    Language(Vec<String>),
    /// Contact attributes that must equal these values.
    Metadata(BTreeMap<String, String>),
    /// The contact's `value_tier` attribute is one of these.
    ValueTier(Vec<String>),
    /// The contact's `flags` attribute (a list, or one string) holds one of these.
    Flags(Vec<String>),
}

/// Keywords in many languages compiled into one case-insensitive pattern. In scripts
/// that separate words with spaces (Latin, Greek, Cyrillic) a keyword must start a word,
/// so `charge` finds "charged" but not "discharge"; in Thai, Chinese or Japanese, which
/// write words together, and in Arabic, where articles and conjunctions join the word
/// ("والفاتورة"), it may occur anywhere.
#[derive(Debug, Clone)]
pub struct KeywordSet {
    pub name: String,
    pattern: Regex,
}

impl KeywordSet {
    pub fn new(name: &str, keywords: &[String]) -> Result<KeywordSet, String> {
        let (mut word_starts, mut anywhere) = (Vec::new(), Vec::new());
        for keyword in keywords {
            let keyword = keyword.trim();
            let Some(first) = keyword.chars().next() else {
                return Err("keywords must not be empty".into());
            };
            let list = if spaced_script(first) {
                &mut word_starts
            } else {
                &mut anywhere
            };
            list.push(regex::escape(keyword));
        }
        // Longest first, so the match reported is the most specific keyword.
        for list in [&mut word_starts, &mut anywhere] {
            list.sort_by_key(|keyword| std::cmp::Reverse(keyword.len()));
        }
        // "Starts a word" is written `(?:^|\W)`, not `\b`: a Unicode `\b` keeps the
        // regex crate off its fast engine whenever the text has a non-ASCII character,
        // which made a Thai or German email take 100 times longer to route.
        let mut alternatives = Vec::new();
        if !word_starts.is_empty() {
            alternatives.push(format!(r"(?:^|\W)({})", word_starts.join("|")));
        }
        if !anywhere.is_empty() {
            alternatives.push(format!("({})", anywhere.join("|")));
        }
        if alternatives.is_empty() {
            return Err("list at least one keyword".into());
        }
        let pattern = regex::RegexBuilder::new(&format!("(?i){}", alternatives.join("|")))
            .size_limit(1 << 22)
            .build()
            .map_err(|err| format!("cannot be compiled: {err}"))?;
        Ok(KeywordSet {
            name: name.to_owned(),
            pattern,
        })
    }

    /// The keyword found, without the character before it.
    fn find<'t>(&self, text: &'t str) -> Option<&'t str> {
        let captures = self.pattern.captures(text)?;
        captures.iter().skip(1).flatten().next().map(|found| found.as_str())
    }
}

fn spaced_script(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(c, '\u{00C0}'..='\u{024F}' | '\u{0370}'..='\u{03FF}' | '\u{0400}'..='\u{04FF}')
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

/// Where a new conversation goes, and which rules said so (`rule` is the one that chose
/// the team; `None`: the default team).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteDecision {
    pub rule: Option<String>,
    pub matched: Vec<String>,
    pub team: String,
    pub priority: Priority,
    pub labels: Vec<String>,
}

/// One condition of one rule, as `route explain` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ConditionTrace {
    pub condition: String,
    pub matched: bool,
    /// What matched (the keyword found, the language seen), or what was there instead.
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RuleTrace {
    pub rule: String,
    pub matched: bool,
    /// Conditions in order, up to the first that failed (later ones are not evaluated).
    pub conditions: Vec<ConditionTrace>,
    pub team: Option<String>,
    pub priority: Option<Priority>,
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

    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    pub fn route(&self, input: &RouteInput<'_>) -> RouteDecision {
        self.decide(
            self.rules
                .iter()
                .filter(|rule| rule.conditions.iter().all(|condition| condition.holds(input).0)),
        )
    }

    /// The same decision as [`Router::route`], with every rule's evaluation.
    pub fn explain(&self, input: &RouteInput<'_>) -> (RouteDecision, Vec<RuleTrace>) {
        let mut traces = Vec::with_capacity(self.rules.len());
        let mut matched = Vec::new();
        for rule in &self.rules {
            let mut conditions = Vec::new();
            let mut all = true;
            for condition in &rule.conditions {
                let (holds, detail) = condition.holds(input);
                conditions.push(ConditionTrace {
                    condition: condition.describe(),
                    matched: holds,
                    detail,
                });
                if !holds {
                    all = false;
                    break;
                }
            }
            if all {
                matched.push(rule);
            }
            traces.push(RuleTrace {
                rule: rule.name.clone(),
                matched: all,
                conditions,
                team: rule.action.team.clone(),
                priority: rule.action.priority,
                labels: rule.action.labels.clone(),
            });
        }
        (self.decide(matched.into_iter()), traces)
    }

    fn decide<'r>(&self, matching: impl Iterator<Item = &'r Rule>) -> RouteDecision {
        let mut decision = RouteDecision {
            rule: None,
            matched: Vec::new(),
            team: self.default_team.clone(),
            priority: Priority::Normal,
            labels: Vec::new(),
        };
        let mut priority = None;
        for rule in matching {
            decision.matched.push(rule.name.clone());
            if decision.rule.is_none()
                && let Some(team) = &rule.action.team
            {
                decision.rule = Some(rule.name.clone());
                decision.team.clone_from(team);
            }
            priority = priority.max(rule.action.priority);
            for label in &rule.action.labels {
                if !decision.labels.contains(label) {
                    decision.labels.push(label.clone());
                }
            }
        }
        decision.priority = priority.unwrap_or(Priority::Normal);
        decision
    }
}

impl RouteCondition {
    /// Whether it holds, and what it saw.
    fn holds(&self, input: &RouteInput<'_>) -> (bool, Option<String>) {
        match self {
            RouteCondition::Inbox(keys) => (keys.iter().any(|key| key == input.inbox), Some(input.inbox.to_owned())),
            RouteCondition::Channel(kinds) => (kinds.contains(&input.channel), Some(input.channel.to_string())),
            RouteCondition::Text(regex) => {
                let found = input
                    .subject
                    .and_then(|subject| regex.find(subject))
                    .or_else(|| regex.find(input.text));
                (found.is_some(), found.map(|found| found.as_str().to_owned()))
            }
            RouteCondition::Keywords(sets) => {
                let found = sets.iter().find_map(|set| {
                    input
                        .subject
                        .and_then(|subject| set.find(subject))
                        .or_else(|| set.find(input.text))
                        .map(|keyword| format!("{}: {keyword}", set.name))
                });
                (found.is_some(), found)
            }
            RouteCondition::Language(tags) => {
                let holds = input.language.is_some_and(|language| {
                    let language = language.to_ascii_lowercase().replace('_', "-");
                    tags.iter()
                        .any(|tag| language == *tag || language.starts_with(&format!("{tag}-")))
                });
                (holds, input.language.map(str::to_owned))
            }
            RouteCondition::Metadata(wanted) => (
                wanted.iter().all(|(key, value)| {
                    input
                        .metadata
                        .get(key)
                        .is_some_and(|actual| value_equals(actual, value))
                }),
                None,
            ),
            RouteCondition::ValueTier(tiers) => {
                let tier = input.metadata.get("value_tier").and_then(Value::as_str);
                (
                    tier.is_some_and(|tier| tiers.iter().any(|wanted| wanted.eq_ignore_ascii_case(tier))),
                    tier.map(str::to_owned),
                )
            }
            RouteCondition::Flags(wanted) => {
                let flags: Vec<&str> = match input.metadata.get("flags") {
                    Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
                    Some(Value::String(one)) => vec![one.as_str()],
                    _ => Vec::new(),
                };
                let found = flags
                    .iter()
                    .find(|flag| wanted.iter().any(|w| w.eq_ignore_ascii_case(flag)));
                (found.is_some(), (!flags.is_empty()).then(|| flags.join(", ")))
            }
        }
    }

    fn describe(&self) -> String {
        match self {
            RouteCondition::Inbox(keys) => format!("inbox is one of {}", keys.join(", ")),
            RouteCondition::Channel(kinds) => format!(
                "channel is one of {}",
                kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", ")
            ),
            RouteCondition::Text(regex) => format!("text matches /{}/", regex.as_str()),
            RouteCondition::Keywords(sets) => format!(
                "text has a keyword of {}",
                sets.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
            ),
            RouteCondition::Language(tags) => format!("language is one of {}", tags.join(", ")),
            RouteCondition::Metadata(wanted) => format!(
                "contact has {}",
                wanted
                    .iter()
                    .map(|(k, v)| format!("{k} = {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            RouteCondition::ValueTier(tiers) => format!("contact value tier is one of {}", tiers.join(", ")),
            RouteCondition::Flags(flags) => format!("contact is flagged {}", flags.join(" or ")),
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

    /// CONFIGURATION.md shows the shipped rules: each TOML block there is the file's own
    /// text, and the Italian examples after it route as it says.
    #[test]
    fn the_shipped_rules_in_the_docs_are_the_files_and_route_italian_as_they_say() {
        let doc = include_str!("../../../docs/CONFIGURATION.md");
        let shipped = include_str!("../../../config/switchboard.toml");
        let section = doc
            .split("The shipped rules (")
            .nth(1)
            .and_then(|rest| rest.split("So an Italian").next())
            .expect("CONFIGURATION.md shows the shipped rules");
        let blocks: Vec<&str> = section
            .split("```toml\n")
            .skip(1)
            .filter_map(|block| block.split("```").next())
            .collect();
        assert_eq!(blocks.len(), 2, "{section}");
        for block in blocks {
            assert!(shipped.contains(block), "not in config/switchboard.toml:\n{block}");
        }
        let settings = crate::config::from_toml(shipped, &switchboard_connector_core::ProcessSecrets).unwrap();
        let metadata = BTreeMap::new();
        for (text, team, priority) in [
            ("mi avete addebitato due volte", "billing", Priority::High),
            ("il sito è down", "technical", Priority::Urgent),
            ("il pacco non è mai arrivato", "support", Priority::High),
        ] {
            let decision = settings.router.route(&RouteInput {
                inbox: "shop",
                channel: crate::channels::registry::known::WEBHOOK,
                subject: None,
                text,
                language: Some("it"),
                metadata: &metadata,
            });
            assert_eq!((decision.team.as_str(), decision.priority), (team, priority), "{text}");
        }
    }

    fn keywords(name: &str, words: &[&str]) -> KeywordSet {
        KeywordSet::new(name, &words.iter().map(|w| w.to_string()).collect::<Vec<_>>()).unwrap()
    }

    fn router() -> Router {
        Router::new(
            vec![
                (
                    "vip".into(),
                    vec![RouteCondition::Flags(vec!["vip".into()])],
                    RouteAction {
                        team: None,
                        priority: Some(Priority::High),
                        labels: vec!["vip".into()],
                    },
                ),
                (
                    "billing".into(),
                    vec![RouteCondition::Keywords(vec![keywords(
                        "billing",
                        &["refund", "charged twice", "คืนเงิน", "استرداد", "Rechnung"],
                    )])],
                    RouteAction {
                        team: Some("billing".into()),
                        priority: None,
                        labels: vec!["billing".into()],
                    },
                ),
                (
                    "outage".into(),
                    vec![RouteCondition::Keywords(vec![keywords(
                        "outage",
                        &["outage", "is down", "ระบบล่ม", "معطل"],
                    )])],
                    RouteAction {
                        team: Some("technical".into()),
                        priority: Some(Priority::Urgent),
                        labels: vec![],
                    },
                ),
                (
                    "enterprise webhook".into(),
                    vec![
                        RouteCondition::Channel(vec![crate::channels::registry::known::WEBHOOK]),
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

    fn input<'a>(text: &'a str, metadata: &'a BTreeMap<String, Value>) -> RouteInput<'a> {
        RouteInput {
            inbox: "shop",
            channel: crate::channels::registry::known::WEBHOOK,
            subject: None,
            text,
            language: None,
            metadata,
        }
    }

    #[test]
    fn unmatched_messages_go_to_the_default_team() {
        let none = BTreeMap::new();
        let decision = router().route(&input("hello", &none));
        assert_eq!(
            decision,
            RouteDecision {
                rule: None,
                matched: vec![],
                team: "general".into(),
                priority: Priority::Normal,
                labels: vec![]
            }
        );
    }

    #[test]
    fn keywords_match_in_english_thai_arabic_and_german() {
        let none = BTreeMap::new();
        for text in [
            "I was charged twice for my order",
            "ขอคืนเงินค่าสินค้าด้วยครับ",
            "أريد استرداد المبلغ من فضلكم",
            "Meine RECHNUNG stimmt nicht",
        ] {
            assert_eq!(router().route(&input(text, &none)).team, "billing", "{text}");
        }
        for text in ["เว็บไซต์ระบบล่มตั้งแต่เช้า", "التطبيق معطل منذ الصباح", "The shop is down"]
        {
            let decision = router().route(&input(text, &none));
            assert_eq!(
                (decision.team.as_str(), decision.priority),
                ("technical", Priority::Urgent),
                "{text}"
            );
        }
    }

    #[test]
    fn latin_keywords_must_start_a_word() {
        let none = BTreeMap::new();
        assert_eq!(router().route(&input("refunded yesterday?", &none)).team, "billing");
        assert_eq!(router().route(&input("nonrefundable ticket", &none)).team, "general");
        assert_eq!(router().route(&input("(refund) asap", &none)).team, "billing");
        // The detail is the keyword, without the character before it.
        let (_, traces) = router().explain(&input("I was Charged Twice.", &none));
        assert_eq!(
            traces[1].conditions[0].detail.as_deref(),
            Some("billing: Charged Twice")
        );
    }

    #[test]
    fn matching_rules_combine_team_priority_and_labels() {
        let vip = BTreeMap::from([("flags".to_string(), json!(["verified", "VIP"]))]);
        let decision = router().route(&input("refund please", &vip));
        assert_eq!(decision.rule.as_deref(), Some("billing"));
        assert_eq!(decision.matched, vec!["vip", "billing"]);
        assert_eq!((decision.team.as_str(), decision.priority), ("billing", Priority::High));
        assert_eq!(decision.labels, vec!["vip", "billing"]);
        // Outage's urgent beats VIP's high; billing named a team first.
        let decision = router().route(&input("refund: your shop is down", &vip));
        assert_eq!(
            (decision.team.as_str(), decision.priority),
            ("billing", Priority::Urgent)
        );
    }

    #[test]
    fn metadata_numbers_compare_by_their_text() {
        let big = BTreeMap::from([("seats".to_string(), json!(500))]);
        let decision = router().route(&input("hi", &big));
        assert_eq!(
            (decision.team.as_str(), decision.priority),
            ("enterprise", Priority::Urgent)
        );
    }

    #[test]
    fn explain_shows_every_rule_and_agrees_with_route() {
        let big = BTreeMap::from([("seats".to_string(), json!(500))]);
        let (decision, traces) = router().explain(&input("ขอคืนเงิน", &big));
        assert_eq!(decision, router().route(&input("ขอคืนเงิน", &big)));
        assert_eq!(traces.len(), 4);
        assert!(!traces[0].matched && traces[0].conditions.len() == 1);
        assert_eq!(traces[1].conditions[0].detail.as_deref(), Some("billing: คืนเงิน"));
        assert!(traces[3].matched && traces[3].conditions.len() == 3);
        assert_eq!(decision.team, "billing");
    }
}
