//! The automated acknowledgement's template (minijinja), checked at start so a typo is
//! a config error rather than a failed acknowledgement at run time.

use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;

/// What the acknowledgement template can use.
#[derive(Debug, Clone, Serialize)]
pub struct AckContext {
    pub contact: AckContact,
    pub conversation: AckConversation,
    pub inbox: AckInbox,
}

#[derive(Debug, Clone, Serialize)]
pub struct AckContact {
    pub name: Option<String>,
    pub email: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AckConversation {
    pub id: i64,
    /// `#42`: what the customer quotes when they write about it.
    pub reference: String,
    pub team: String,
    pub priority: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct AckInbox {
    pub key: String,
    pub name: String,
}

#[derive(Debug, Clone)]
pub struct AckTemplate {
    env: Environment<'static>,
}

const NAME: &str = "acknowledgement";

impl AckTemplate {
    /// Compiles the template and renders it with sample values, once with every
    /// optional value given and once with none, so an unknown variable or a filter
    /// that fails on a missing value is caught now (strict undefined behaviour).
    pub fn compile(source: &str) -> Result<AckTemplate, String> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        // A value the customer did not give (a contact without a name) prints as
        // nothing, not as the word "none".
        env.set_formatter(|out, state, value| {
            if value.is_none() {
                Ok(())
            } else {
                minijinja::escape_formatter(out, state, value)
            }
        });
        env.add_template_owned(NAME, source.to_owned())
            .map_err(|err| format!("does not compile: {err}"))?;
        let template = AckTemplate { env };
        for sample in [AckContext::sample(), AckContext::sample_without_optionals()] {
            let rendered = template
                .render(&sample)
                .map_err(|err| format!("does not render: {err}"))?;
            if rendered.trim().is_empty() {
                return Err("renders to empty text".into());
            }
        }
        Ok(template)
    }

    pub fn render(&self, context: &AckContext) -> Result<String, String> {
        let template = self.env.get_template(NAME).map_err(|err| err.to_string())?;
        template
            .render(context)
            .map(|text| text.trim().to_owned())
            .map_err(|err| format!("{err:#}"))
    }
}

impl AckContext {
    fn sample() -> AckContext {
        AckContext {
            contact: AckContact {
                name: Some("Ada".into()),
                email: Some("ada@example.com".into()),
            },
            conversation: AckConversation {
                id: 1,
                reference: "#1".into(),
                team: "Support".into(),
                priority: "normal".into(),
            },
            inbox: AckInbox {
                key: "shop".into(),
                name: "Shop".into(),
            },
        }
    }

    /// The same, for a contact the channel told us nothing about.
    fn sample_without_optionals() -> AckContext {
        AckContext {
            contact: AckContact {
                name: None,
                email: None,
            },
            ..AckContext::sample()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_reference_and_optional_name() {
        let template = AckTemplate::compile(
            "Hi{% if contact.name %} {{ contact.name }}{% endif %}, ref {{ conversation.reference }}",
        )
        .unwrap();
        assert_eq!(template.render(&AckContext::sample()).unwrap(), "Hi Ada, ref #1");
        assert_eq!(
            template.render(&AckContext::sample_without_optionals()).unwrap(),
            "Hi, ref #1"
        );
    }

    #[test]
    fn a_missing_optional_value_prints_as_nothing() {
        let template = AckTemplate::compile("Dear {{ contact.name }}, ref {{ conversation.reference }}").unwrap();
        assert_eq!(
            template.render(&AckContext::sample_without_optionals()).unwrap(),
            "Dear , ref #1"
        );
    }

    #[test]
    fn a_filter_that_fails_on_a_missing_value_is_caught_at_start() {
        let err = AckTemplate::compile("{{ contact.email | split('@') | first }}").unwrap_err();
        assert!(err.contains("render"), "{err}");
    }

    #[test]
    fn refuses_unknown_variables_and_syntax_errors() {
        assert!(
            AckTemplate::compile("{{ conversation.nope }}")
                .unwrap_err()
                .contains("render")
        );
        assert!(AckTemplate::compile("{{ oops").unwrap_err().contains("compile"));
        assert!(AckTemplate::compile("   ").unwrap_err().contains("empty"));
    }
}
