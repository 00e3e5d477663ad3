//! The table of shipped templates in docs/UPDATES.md, generated from
//! config/switchboard.toml: every event in every language the shipped desk lists, and
//! each text as a customer reads it. The test fails when the doc and the file disagree;
//! `SWITCHBOARD_BLESS=1 cargo test --lib shipped_templates` rewrites the doc.

use std::fmt::Write as _;

use switchboard_connector_core::ProcessSecrets;

use super::{NextOpen, UpdateEvent, UpdatePolicy, UpdateVars};

const CONFIG: &str = include_str!("../../../config/switchboard.toml");
const DOC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/UPDATES.md");
const START: &str = "<!-- shipped-templates:start -->";
const END: &str = "<!-- shipped-templates:end -->";

/// Monday 2026-11-30 09:00 in Berlin: when the shipped office opens after a weekend.
const MONDAY_MORNING_MS: i64 = 1_796_025_600_000;

/// Markdown for the doc: the event × language table, then each event's texts.
fn tables(policy: &UpdatePolicy, configured: &dyn Fn(UpdateEvent, &str) -> bool, languages: &[String]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "| event | {} |", languages.join(" | "));
    let _ = writeln!(out, "|---|{}", "---|".repeat(languages.len()));
    for event in UpdateEvent::ALL {
        let cells: Vec<String> = languages
            .iter()
            .map(|language| {
                let parts = policy.templates[&event][language];
                let mut names = vec!["text"];
                names.extend(parts.subject.then_some("subject"));
                names.extend(parts.html.then_some("html"));
                names.extend(parts.markdown.then_some("markdown"));
                let source = if configured(event, language) {
                    "shipped"
                } else {
                    "built in"
                };
                format!("{source}: {}", names.join(", "))
            })
            .collect();
        let _ = writeln!(out, "| `{}` | {} |", event.as_str(), cells.join(" | "));
    }
    for event in UpdateEvent::ALL {
        let _ = writeln!(out, "\n#### `{}`\n", event.as_str());
        let _ = writeln!(out, "| language | text |");
        let _ = writeln!(out, "|---|---|");
        for language in languages {
            let mut vars = UpdateVars::sample(event, crate::channels::registry::known::WEBHOOK, true);
            if vars.next_open.is_some() {
                vars.next_open = NextOpen::at(MONDAY_MORNING_MS, "Europe/Berlin");
            }
            let name = super::template_name(event, language, super::TEXT);
            let text = policy.render_part(&name, &vars).expect("the shipped templates render");
            let text = text.replace('|', "\\|").replace('\n', "<br>");
            let _ = writeln!(out, "| {language} | {text} |");
        }
    }
    out
}

#[test]
fn shipped_templates_cover_every_event_in_every_language_and_match_the_doc() {
    let raw = crate::config::parse_toml(CONFIG).unwrap();
    let settings = raw.validate_with(&ProcessSecrets).unwrap();
    assert!(
        settings.warnings.is_empty(),
        "the shipped config warns: {:?}",
        settings.warnings
    );
    let policy = &settings.desk.updates;
    // English first (built in), then the desk's languages as the file lists them.
    let mut languages = vec!["en".to_owned()];
    for tag in &raw.routing.detect_languages {
        if !languages.contains(tag) {
            languages.push(tag.clone());
        }
    }
    for event in UpdateEvent::ALL {
        for language in &languages {
            assert!(
                policy.templates[&event].contains_key(language),
                "no `{}` template in `{language}`: add [updates.templates.{}.{language}]",
                event.as_str(),
                event.as_str()
            );
        }
    }
    let configured = |event: UpdateEvent, language: &str| {
        raw.updates
            .templates
            .get(event.as_str())
            .is_some_and(|languages| languages.contains_key(language))
    };
    let generated = tables(policy, &configured, &languages);

    let doc = std::fs::read_to_string(DOC).unwrap();
    let (Some(start), Some(end)) = (doc.find(START), doc.find(END)) else {
        panic!("docs/UPDATES.md lacks the {START} … {END} markers");
    };
    let body = start + START.len();
    let current = doc[body..end].trim();
    if current == generated.trim() {
        return;
    }
    if std::env::var("SWITCHBOARD_BLESS").is_ok_and(|value| value == "1") {
        let updated = format!("{}\n{}\n{}", &doc[..body], generated.trim(), &doc[end..]);
        std::fs::write(DOC, updated).unwrap();
        return;
    }
    panic!(
        "docs/UPDATES.md's shipped templates differ from config/switchboard.toml; \
         rewrite them with `SWITCHBOARD_BLESS=1 cargo test --lib shipped_templates`\n\
         generated:\n{generated}"
    );
}
