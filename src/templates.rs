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
    /// Compiles the template and renders it once with sample values, so an unknown
    /// variable is caught now (strict undefined behaviour).
    pub fn compile(source: &str) -> Result<AckTemplate, String> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.add_template_owned(NAME, source.to_owned())
            .map_err(|err| format!("does not compile: {err}"))?;
        let template = AckTemplate { env };
        let rendered = template
            .render(&AckContext::sample())
            .map_err(|err| format!("does not render: {err}"))?;
        if rendered.trim().is_empty() {
            return Err("renders to empty text".into());
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
        let mut context = AckContext::sample();
        assert_eq!(template.render(&context).unwrap(), "Hi Ada, ref #1");
        context.contact.name = None;
        assert_eq!(template.render(&context).unwrap(), "Hi, ref #1");
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
