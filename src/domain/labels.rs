//! The label catalogue (`[labels.<name>]`): the labels a desk uses, each with a colour
//! agents recognise at a glance and a description of when it applies. Rules and agents add
//! labels from it; `overdue` (put on by the `sla.max_open` cap) is always in it.
//!
//! A desk that configures no `[labels]` keeps free-form labels: any label an agent types
//! is taken, as before the catalogue. Declaring one table closes the catalogue: rules are
//! checked against it at start and agents' additions at once; labels a conversation
//! carried before stay until removed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::error::ConfigError;
use crate::domain::clocks::OVERDUE_LABEL;

/// Longest label, in characters: the API's limit too.
pub const MAX_LABEL_CHARS: usize = 50;
const MAX_DESCRIPTION_CHARS: usize = 200;
const DEFAULT_COLOR: &str = "#64748b";

/// `[labels.<name>]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelConfig {
    /// `#rgb` or `#rrggbb`.
    pub color: Option<String>,
    pub description: Option<String>,
}

/// A label of the catalogue, as `GET /api/v1/labels` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Label {
    pub name: String,
    pub color: String,
    pub description: Option<String>,
    /// Put on by the desk itself (`overdue`), whether configured or not.
    pub built_in: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelCatalog {
    labels: BTreeMap<String, Label>,
    /// No `[labels]` table: any label is taken.
    free_form: bool,
}

impl Default for LabelCatalog {
    fn default() -> LabelCatalog {
        LabelCatalog::validate(&BTreeMap::new()).expect("the built-in labels are valid")
    }
}

/// 1 to 50 characters, none of them a control character, no `,` (lists filter by one
/// label, and a comma would read as two), not blank at either end.
pub fn check_name(name: &str) -> Result<(), String> {
    let count = name.chars().count();
    if count == 0 || count > MAX_LABEL_CHARS || name.trim() != name {
        return Err(format!(
            "`{name}` must be 1 to {MAX_LABEL_CHARS} characters without spaces at either end"
        ));
    }
    if name.chars().any(|c| c.is_control() || c == ',') {
        return Err(format!("`{name}` must hold no control character or comma"));
    }
    Ok(())
}

fn check_color(color: &str) -> bool {
    let Some(hex) = color.strip_prefix('#') else {
        return false;
    };
    matches!(hex.len(), 3 | 6) && hex.chars().all(|c| c.is_ascii_hexdigit())
}

impl LabelCatalog {
    pub fn validate(config: &BTreeMap<String, LabelConfig>) -> Result<LabelCatalog, ConfigError> {
        let mut labels = BTreeMap::new();
        labels.insert(
            OVERDUE_LABEL.to_owned(),
            Label {
                name: OVERDUE_LABEL.to_owned(),
                color: "#b91c1c".into(),
                description: Some("Unresolved longer than `sla.max_open` allows".into()),
                built_in: true,
            },
        );
        for (name, label) in config {
            let at = |field: &str| format!("labels.{name}.{field}");
            check_name(name).map_err(|problem| ConfigError::new(format!("labels.{name}"), problem))?;
            let color = label.color.clone().unwrap_or_else(|| DEFAULT_COLOR.into());
            if !check_color(&color) {
                return Err(ConfigError::new(
                    at("color"),
                    format!("`{color}` is not a colour such as `#0ea5e9` or `#09f`"),
                ));
            }
            let description = label
                .description
                .as_deref()
                .map(str::trim)
                .filter(|text| !text.is_empty());
            if description.is_some_and(|text| text.chars().count() > MAX_DESCRIPTION_CHARS) {
                return Err(ConfigError::new(
                    at("description"),
                    format!("must be at most {MAX_DESCRIPTION_CHARS} characters"),
                ));
            }
            labels.insert(
                name.clone(),
                Label {
                    name: name.clone(),
                    color: color.to_ascii_lowercase(),
                    description: description.map(str::to_owned),
                    built_in: name == OVERDUE_LABEL,
                },
            );
        }
        Ok(LabelCatalog {
            labels,
            free_form: config.is_empty(),
        })
    }

    /// Every label of the catalogue, by name.
    pub fn labels(&self) -> impl Iterator<Item = &Label> {
        self.labels.values()
    }

    pub fn is_free_form(&self) -> bool {
        self.free_form
    }

    /// Whether a rule or an agent may add `name`; the refusal lists what may be added.
    pub fn check(&self, name: &str) -> Result<(), String> {
        check_name(name)?;
        if self.free_form || self.labels.contains_key(name) {
            return Ok(());
        }
        let known: Vec<&str> = self.labels.keys().map(String::as_str).collect();
        Err(format!(
            "`{name}` is not in the label catalogue ([labels]); labels are: {}",
            known.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog(entries: &[(&str, Option<&str>)]) -> Result<LabelCatalog, ConfigError> {
        let config = entries
            .iter()
            .map(|(name, color)| {
                let label = LabelConfig {
                    color: color.map(str::to_owned),
                    description: None,
                };
                ((*name).to_owned(), label)
            })
            .collect();
        LabelCatalog::validate(&config)
    }

    #[test]
    fn without_a_catalogue_labels_are_free_and_overdue_is_always_listed() {
        let free = LabelCatalog::default();
        assert!(free.is_free_form());
        assert!(free.check("anything").is_ok());
        assert!(free.check("a,b").is_err(), "a comma is never a label");
        assert_eq!(
            free.labels().map(|label| label.name.as_str()).collect::<Vec<_>>(),
            ["overdue"]
        );
    }

    #[test]
    fn a_catalogue_admits_its_labels_and_names_the_others() {
        let closed = catalog(&[("billing", Some("#0EA5E9")), ("vip", None)]).unwrap();
        assert!(closed.check("billing").is_ok() && closed.check("overdue").is_ok());
        let refused = closed.check("refund").unwrap_err();
        assert!(refused.contains("billing, overdue, vip"), "{refused}");
        let billing = closed.labels().find(|label| label.name == "billing").unwrap();
        assert_eq!(billing.color, "#0ea5e9");
        assert!(closed.labels().find(|label| label.name == "vip").unwrap().color == DEFAULT_COLOR);
    }

    #[test]
    fn bad_colours_and_names_are_refused_with_their_key() {
        let err = catalog(&[("billing", Some("blue"))]).unwrap_err();
        assert_eq!(err.key, "labels.billing.color");
        let err = catalog(&[(" padded", None)]).unwrap_err();
        assert_eq!(err.key, "labels. padded");
        let long = "x".repeat(51);
        assert!(catalog(&[(long.as_str(), None)]).is_err());
    }
}
