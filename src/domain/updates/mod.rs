//! Automated status updates: which steps of a conversation tell the customer, in which
//! language, and how each template renders for each channel.
//!
//! Templates are minijinja, per event and language, compiled at start and rendered with
//! sample values of every event (once with every optional value, once with none) so an
//! unknown variable or a syntax error is a configuration error naming the template and
//! line, never a failed update at send time. Variables a template prints are escaped for
//! the part it renders: HTML for `html`, Telegram MarkdownV2 for `markdown`, nothing for
//! `text` and `subject`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde::Serialize;
use switchboard_connector_core::{ChannelKind, CsatStyle};

use crate::channels::registry::REGISTERED;

pub mod config;
pub mod send;
#[cfg(test)]
mod shipped;

/// A step of a conversation that can send the customer an update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateEvent {
    /// A new conversation: the acknowledgement with its reference.
    Received,
    /// A new conversation opened by Telegram's `/start`: sent instead of `received`.
    Greeting,
    /// A new or reopened conversation while its team is closed: when it answers next.
    OutOfHours,
    /// A person took the conversation.
    Assigned,
    /// Passed to another team (escalated or transferred); never the internal summary.
    Escalated,
    /// The conversation has waited on the customer for `waiting_reminder_after`.
    WaitingReminder,
    Resolved,
    /// Resolved by the desk after `auto_close_after` waiting on the customer.
    AutoClosed,
    /// The satisfaction question that follows `resolved`.
    Csat,
}

impl UpdateEvent {
    pub const ALL: [UpdateEvent; 9] = [
        UpdateEvent::Received,
        UpdateEvent::Greeting,
        UpdateEvent::OutOfHours,
        UpdateEvent::Assigned,
        UpdateEvent::Escalated,
        UpdateEvent::WaitingReminder,
        UpdateEvent::Resolved,
        UpdateEvent::AutoClosed,
        UpdateEvent::Csat,
    ];

    /// The name in configuration and in the rate-limit record.
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateEvent::Received => "received",
            UpdateEvent::Greeting => "greeting",
            UpdateEvent::OutOfHours => "out_of_hours",
            UpdateEvent::Assigned => "assigned",
            UpdateEvent::Escalated => "escalated",
            UpdateEvent::WaitingReminder => "waiting_reminder",
            UpdateEvent::Resolved => "resolved",
            UpdateEvent::AutoClosed => "auto_closed",
            UpdateEvent::Csat => "csat",
        }
    }

    /// The name channels see (the webhook's `event`).
    pub fn wire_name(self) -> &'static str {
        match self {
            UpdateEvent::Csat => "csat.requested",
            other => other.as_str(),
        }
    }

    pub fn parse(name: &str) -> Option<UpdateEvent> {
        UpdateEvent::ALL.into_iter().find(|event| event.as_str() == name)
    }
}

/// What a customer's reply after resolution does when it is not a score.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterResolution {
    /// The reply reopens the resolved conversation.
    Reopen,
    /// The reply starts a new conversation; the resolved one stays resolved.
    NewConversation,
}

#[derive(Debug, Clone)]
pub struct CsatPolicy {
    /// Where the links in satisfaction emails point (`{public_url}/csat/{token}`);
    /// without it, email customers answer with a digit.
    pub public_url: Option<String>,
    /// How long after the question a score, or a reply that reopens, is taken.
    pub answer_window: Duration,
    pub after_resolution: AfterResolution,
}

/// The parts a template set has besides its text.
#[derive(Debug, Clone, Copy, Default)]
struct Parts {
    subject: bool,
    html: bool,
    markdown: bool,
}

/// One language's templates for an event, as configured.
#[derive(Debug, Clone, Default)]
pub struct TemplateSource {
    pub text: String,
    pub subject: Option<String>,
    pub html: Option<String>,
    pub markdown: Option<String>,
}

/// Everything about status updates, validated: the settings and the compiled templates.
#[derive(Debug, Clone)]
pub struct UpdatePolicy {
    pub settings: UpdateSettings,
    env: Environment<'static>,
    templates: HashMap<UpdateEvent, BTreeMap<String, Parts>>,
}

/// A template problem: which template (`updates.templates.resolved.th.text`) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    pub key: String,
    pub problem: String,
}

/// An update rendered for one channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub language: String,
    pub text: String,
    pub subject: Option<String>,
    pub html: Option<String>,
    pub markdown_v2: Option<String>,
}

/// When updates go out and to whom, as configuration gives it.
#[derive(Debug, Clone)]
pub struct UpdateSettings {
    pub enabled: BTreeSet<UpdateEvent>,
    /// At most one update of a kind per conversation within this window.
    pub window: Duration,
    pub default_language: String,
    pub waiting_reminder_after: Option<Duration>,
    pub auto_close_after: Option<Duration>,
    pub inbox_off: HashMap<String, BTreeSet<UpdateEvent>>,
    pub inbox_language: HashMap<String, String>,
    pub team_off: HashMap<String, BTreeSet<UpdateEvent>>,
    pub csat: CsatPolicy,
    /// When a queued update stops being worth sending (the outbox's `expire_after`).
    pub expire_after: Duration,
}

/// `(event, language) → templates`; built-in English fills what is not given.
pub type TemplateSources = BTreeMap<(UpdateEvent, String), TemplateSource>;

const TEXT: &str = "text";
const SUBJECT: &str = "subject";
const HTML: &str = "html";
const MARKDOWN: &str = "markdown";

fn template_name(event: UpdateEvent, language: &str, part: &str) -> String {
    format!("updates.templates.{}.{language}.{part}", event.as_str())
}

/// Telegram's MarkdownV2 reserves these; a value printed into a MarkdownV2 template must
/// have each escaped, or Telegram refuses the message.
const MARKDOWN_V2_RESERVED: &[char] = &[
    '_', '*', '[', ']', '(', ')', '~', '`', '>', '#', '+', '-', '=', '|', '{', '}', '.', '!', '\\',
];

pub fn escape_markdown_v2(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if MARKDOWN_V2_RESERVED.contains(&c) {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|name| {
        if name.ends_with(".html") {
            AutoEscape::Html
        } else if name.ends_with(".markdown") {
            AutoEscape::Custom("markdown_v2")
        } else {
            AutoEscape::None
        }
    });
    // A value the customer did not give (a contact without a name) prints as nothing,
    // not as the word "none"; MarkdownV2 templates get every value escaped.
    env.set_formatter(|out, state, value| {
        if value.is_none() {
            return Ok(());
        }
        if let AutoEscape::Custom("markdown_v2") = state.auto_escape() {
            if value.is_safe() {
                return write!(out, "{value}").map_err(minijinja::Error::from);
            }
            return write!(out, "{}", escape_markdown_v2(&value.to_string())).map_err(minijinja::Error::from);
        }
        minijinja::escape_formatter(out, state, value)
    });
    env
}

/// `line 2 (`{{ conversation.nope }}`): undefined value`: minijinja does not name the
/// variable, so the line's own text shows which it is.
fn describe(source: Option<&str>, err: &minijinja::Error) -> String {
    let what = match err.detail() {
        Some(detail) => format!("{}: {detail}", err.kind()),
        None => err.kind().to_string(),
    };
    let Some(line) = err.line() else { return what };
    match source.and_then(|source| source.lines().nth(line.saturating_sub(1))) {
        Some(text) if !text.trim().is_empty() => format!("line {line} (`{}`): {what}", text.trim()),
        _ => format!("line {line}: {what}"),
    }
}

impl UpdatePolicy {
    /// What a desk without an `[updates]` table sends: every event but `assigned`,
    /// in English.
    pub fn defaults() -> UpdatePolicy {
        let settings = UpdateSettings {
            enabled: UpdateEvent::ALL
                .into_iter()
                .filter(|event| *event != UpdateEvent::Assigned)
                .collect(),
            window: Duration::from_secs(3600),
            default_language: "en".into(),
            waiting_reminder_after: None,
            auto_close_after: None,
            inbox_off: HashMap::new(),
            inbox_language: HashMap::new(),
            team_off: HashMap::new(),
            csat: CsatPolicy {
                public_url: None,
                answer_window: Duration::from_secs(7 * 86_400),
                after_resolution: AfterResolution::Reopen,
            },
            expire_after: Duration::from_secs(86_400),
        };
        UpdatePolicy::compile(settings, TemplateSources::new()).expect("the built-in templates compile")
    }

    /// Compiles every template and renders it with each event's samples.
    pub fn compile(settings: UpdateSettings, configured: TemplateSources) -> Result<UpdatePolicy, TemplateError> {
        let mut templates = default_templates();
        templates.extend(configured);
        let mut env = environment();
        let mut available: HashMap<UpdateEvent, BTreeMap<String, Parts>> = HashMap::new();
        for ((event, language), template) in templates {
            let mut parts = Parts::default();
            let mut add = |part: &str, text: Option<String>| -> Result<bool, TemplateError> {
                let Some(text) = text else { return Ok(false) };
                let name = template_name(event, &language, part);
                env.add_template_owned(name.clone(), text.clone())
                    .map_err(|err| TemplateError {
                        key: name,
                        problem: describe(Some(&text), &err),
                    })?;
                Ok(true)
            };
            add(TEXT, Some(template.text))?;
            parts.subject = add(SUBJECT, template.subject)?;
            parts.html = add(HTML, template.html)?;
            parts.markdown = add(MARKDOWN, template.markdown)?;
            available.entry(event).or_default().insert(language, parts);
        }
        let policy = UpdatePolicy {
            settings,
            env,
            templates: available,
        };
        policy.check_samples()?;
        Ok(policy)
    }

    /// Renders every template with its event's samples, on every channel.
    fn check_samples(&self) -> Result<(), TemplateError> {
        for (event, languages) in &self.templates {
            for (language, parts) in languages {
                for full in [true, false] {
                    for &channel in REGISTERED {
                        let vars = UpdateVars::sample(*event, channel, full);
                        for (part, present) in [
                            (TEXT, true),
                            (SUBJECT, parts.subject),
                            (HTML, parts.html),
                            (MARKDOWN, parts.markdown),
                        ] {
                            if !present {
                                continue;
                            }
                            let name = template_name(*event, language, part);
                            let rendered = self.render_part(&name, &vars).map_err(|problem| TemplateError {
                                key: name.clone(),
                                problem,
                            })?;
                            if part == TEXT && rendered.trim().is_empty() && !channel.capabilities().structured_updates
                            {
                                return Err(TemplateError {
                                    key: name,
                                    problem: format!("renders to empty text on the {channel} channel"),
                                });
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn render_part(&self, name: &str, vars: &UpdateVars) -> Result<String, String> {
        let template = self.env.get_template(name).map_err(|err| describe(None, &err))?;
        template
            .render(vars)
            .map(|text| text.trim().to_owned())
            .map_err(|err| describe(Some(template.source()), &err))
    }

    /// Whether `event` sends an update in this inbox for this team.
    pub fn sends(&self, event: UpdateEvent, inbox: &str, team: Option<&str>) -> bool {
        let settings = &self.settings;
        settings.enabled.contains(&event)
            && !settings.inbox_off.get(inbox).is_some_and(|off| off.contains(&event))
            && !team
                .and_then(|team| settings.team_off.get(team))
                .is_some_and(|off| off.contains(&event))
    }

    /// The language whose templates an update uses: the contact's (`pt-BR`, then `pt`),
    /// then the inbox's default, then the desk's default, then English.
    pub fn language(&self, event: UpdateEvent, contact: Option<&str>, inbox: &str) -> String {
        let Some(languages) = self.templates.get(&event) else {
            return "en".into();
        };
        let mut wanted: Vec<String> = Vec::new();
        if let Some(tag) = contact {
            let tag = tag.to_ascii_lowercase().replace('_', "-");
            if let Some((primary, _)) = tag.split_once('-') {
                let primary = primary.to_owned();
                wanted.push(tag);
                wanted.push(primary);
            } else {
                wanted.push(tag);
            }
        }
        if let Some(default) = self.settings.inbox_language.get(inbox) {
            wanted.push(default.clone());
        }
        wanted.push(self.settings.default_language.clone());
        wanted
            .into_iter()
            .find(|language| languages.contains_key(language))
            .unwrap_or_else(|| "en".into())
    }

    /// Whether `event` has templates for customers reading `tag` (`pt-BR` or `pt`), so
    /// that its updates need not fall back to another language.
    pub fn has_template(&self, event: UpdateEvent, tag: &str) -> bool {
        let tag = tag.trim().to_ascii_lowercase().replace('_', "-");
        let primary = tag.split('-').next().unwrap_or_default();
        self.templates
            .get(&event)
            .is_some_and(|languages| languages.contains_key(&tag) || languages.contains_key(primary))
    }

    /// Renders `event` for `vars.channel` in `language` (which [`Self::language`] chose).
    pub fn render(&self, event: UpdateEvent, language: &str, vars: &UpdateVars) -> Result<Rendered, String> {
        let parts = self
            .templates
            .get(&event)
            .and_then(|languages| languages.get(language))
            .copied()
            .ok_or_else(|| format!("no {} template in `{language}`", event.as_str()))?;
        let part = |name: &str| {
            self.render_part(&template_name(event, language, name), vars)
                .map_err(|problem| format!("{}: {problem}", template_name(event, language, name)))
        };
        let formats = vars.channel.capabilities().formats;
        Ok(Rendered {
            language: language.to_owned(),
            text: part(TEXT)?,
            subject: (parts.subject && formats.subject).then(|| part(SUBJECT)).transpose()?,
            html: (parts.html && formats.html).then(|| part(HTML)).transpose()?,
            markdown_v2: (parts.markdown && formats.markdown_v2)
                .then(|| part(MARKDOWN))
                .transpose()?,
        })
    }
}

/// What a template can use. Optional values are `none` when unknown (a contact without
/// a name, a conversation nobody holds): templates test them with `{% if … %}`.
#[derive(Debug, Clone, Serialize)]
pub struct UpdateVars {
    /// `received`, `out_of_hours`, … (the configuration's names).
    pub event: &'static str,
    pub channel: ChannelKind,
    pub contact: ContactVars,
    pub conversation: ConversationVars,
    pub team: TeamVars,
    /// The agent holding the conversation, when one does.
    pub agent: Option<AgentVars>,
    pub sla: SlaVars,
    pub inbox: InboxVars,
    /// When the team opens next (`out_of_hours` only).
    pub next_open: Option<NextOpen>,
    /// The satisfaction question (`csat` only).
    pub csat: Option<CsatVars>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ContactVars {
    pub name: Option<String>,
    pub email: Option<String>,
    pub language: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConversationVars {
    pub id: i64,
    /// `#42`: what the customer quotes when they write about it.
    pub reference: String,
    pub subject: Option<String>,
    pub status: String,
    pub priority: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct TeamVars {
    pub key: String,
    /// The display name (`Billing specialists`).
    pub name: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct AgentVars {
    pub name: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct SlaVars {
    /// The first-response target of the team and priority (`1h`), when there is one.
    pub first_response: Option<String>,
    /// The resolution target, when there is one.
    pub resolution: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct InboxVars {
    pub key: String,
    pub name: String,
}

/// A time in the customer's zone (the team's when the customer's is unknown).
#[derive(Debug, Clone, Serialize)]
pub struct NextOpen {
    /// RFC 3339 with the zone's offset.
    pub at: String,
    pub date: String,
    pub time: String,
    /// English day name (`Monday`); `weekday_number` (Monday 1 … Sunday 7) lets a
    /// template name the day in its own language.
    pub weekday: String,
    pub weekday_number: i8,
    pub time_zone: String,
}

impl NextOpen {
    /// `None` for an unknown zone name or a time out of range.
    pub fn at(ms: i64, time_zone: &str) -> Option<NextOpen> {
        let zone = jiff::tz::TimeZone::get(time_zone).ok()?;
        let zoned = jiff::Timestamp::from_millisecond(ms).ok()?.to_zoned_datetime(zone);
        Some(NextOpen {
            at: zoned.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string(),
            date: zoned.strftime("%Y-%m-%d").to_string(),
            time: zoned.strftime("%H:%M").to_string(),
            weekday: zoned.strftime("%A").to_string(),
            weekday_number: zoned.weekday().to_monday_one_offset(),
            time_zone: time_zone.to_owned(),
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct CsatVars {
    /// Five links, for scores 1 to 5 (email, when `csat.public_url` is set).
    pub links: Vec<String>,
}

impl UpdateVars {
    fn sample(event: UpdateEvent, channel: ChannelKind, full: bool) -> UpdateVars {
        let given = |text: &str| full.then(|| text.to_owned());
        UpdateVars {
            event: event.as_str(),
            channel,
            contact: ContactVars {
                name: given("Ada"),
                email: given("ada@example.com"),
                language: given("en"),
            },
            conversation: ConversationVars {
                id: 42,
                reference: "#42".into(),
                subject: given("Invoice"),
                status: "open".into(),
                priority: "normal".into(),
            },
            team: TeamVars {
                key: "support".into(),
                name: "Support".into(),
            },
            agent: (full || event == UpdateEvent::Assigned).then(|| AgentVars { name: "ana".into() }),
            sla: SlaVars {
                first_response: given("1h"),
                resolution: given("1day"),
            },
            inbox: InboxVars {
                key: "shop".into(),
                name: "Shop".into(),
            },
            next_open: (event == UpdateEvent::OutOfHours).then(|| NextOpen::at(0, "UTC").expect("UTC is known")),
            csat: (event == UpdateEvent::Csat).then(|| CsatVars {
                links: if full && channel.capabilities().csat == CsatStyle::Links {
                    (1..=5)
                        .map(|score| format!("https://example.com/csat/t?score={score}"))
                        .collect()
                } else {
                    Vec::new()
                },
            }),
        }
    }
}

/// Built-in English templates, so every event has one in the last fallback language.
fn default_templates() -> BTreeMap<(UpdateEvent, String), TemplateSource> {
    let hello = "Hello{% if contact.name %} {{ contact.name }}{% endif %},\n\n";
    let defaults: [(UpdateEvent, &str, String); 9] = [
        (
            UpdateEvent::Received,
            "We received your message",
            format!(
                "{hello}we received your message. Your reference is {{{{ conversation.reference }}}}; \
                 {{{{ team.name }}}} will get back to you{{% if sla.first_response %}} within \
                 {{{{ sla.first_response }}}}{{% else %}} soon{{% endif %}}."
            ),
        ),
        (
            UpdateEvent::Greeting,
            "Welcome",
            "Hello{% if contact.name %} {{ contact.name }}{% endif %}! Write your question here and \
             we will answer in this chat. Your reference is {{ conversation.reference }}."
                .into(),
        ),
        (
            UpdateEvent::OutOfHours,
            "We received your message",
            format!(
                "{hello}thank you for your message ({{{{ conversation.reference }}}}). {{{{ team.name }}}} is \
                 away right now; we are back on {{{{ next_open.weekday }}}} {{{{ next_open.date }}}} at \
                 {{{{ next_open.time }}}} ({{{{ next_open.time_zone }}}}) and will answer you then."
            ),
        ),
        (
            UpdateEvent::Assigned,
            "Your request is being handled",
            format!(
                "{hello}{{% if agent %}}{{{{ agent.name }}}}{{% else %}}someone from {{{{ team.name }}}}{{% endif %}} \
                 is now looking after your request {{{{ conversation.reference }}}}."
            ),
        ),
        (
            UpdateEvent::Escalated,
            "Your request was passed on",
            format!(
                "{hello}we have passed your request {{{{ conversation.reference }}}} to {{{{ team.name }}}}, \
                 who will continue from here."
            ),
        ),
        (
            UpdateEvent::WaitingReminder,
            "We are waiting for your answer",
            format!(
                "{hello}we are waiting for your answer about {{{{ conversation.reference }}}}. \
                 Just reply to this message to continue."
            ),
        ),
        (
            UpdateEvent::Resolved,
            "Your request is resolved",
            format!(
                "{hello}we have marked your request {{{{ conversation.reference }}}} as resolved. \
                 If anything is still open, just reply."
            ),
        ),
        (
            UpdateEvent::AutoClosed,
            "Your request was closed",
            format!(
                "{hello}we have not heard from you, so we closed your request {{{{ conversation.reference }}}}. \
                 Reply any time to open it again."
            ),
        ),
        (
            UpdateEvent::Csat,
            "How did we do?",
            "How satisfied are you with our help on {{ conversation.reference }}? \
             {% if channel == \"telegram\" %}Tap a score from 1 (poor) to 5 (excellent).\
             {% elif csat.links %}Choose a score from 1 (poor) to 5 (excellent):\n\
             {% for link in csat.links %}\n{{ loop.index }}: {{ link }}{% endfor %}\n\nor reply with a digit.\
             {% else %}Reply with a digit from 1 (poor) to 5 (excellent).{% endif %}"
                .into(),
        ),
    ];
    defaults
        .into_iter()
        .map(|(event, subject, text)| {
            let html = (event == UpdateEvent::Csat).then(|| {
                "<p>How satisfied are you with our help on {{ conversation.reference }}?</p>\
                 {% if csat.links %}<p>{% for link in csat.links %}<a href=\"{{ link }}\">{{ loop.index }}</a> \
                 {% endfor %}</p><p>1 is poor, 5 is excellent. You can also reply with a digit.</p>\
                 {% else %}<p>Reply with a digit from 1 (poor) to 5 (excellent).</p>{% endif %}"
                    .to_owned()
            });
            (
                (event, "en".to_owned()),
                TemplateSource {
                    text,
                    // The email channel adds the conversation's `[#42]` tag.
                    subject: Some(subject.to_owned()),
                    html,
                    markdown: None,
                },
            )
        })
        .collect()
}

/// Reads a customer's reply as a satisfaction score: a digit from 1 to 5 alone on the
/// first line (`4`, `4/5`, `4 stars`, `٤`, `๔`), any following lines being a comment.
/// "5 items are missing" is not a score: a sentence that starts with a digit is a reply.
pub fn parse_score(text: &str) -> Option<(u8, Option<String>)> {
    let text = text.trim();
    let (first, rest) = text.split_once('\n').unwrap_or((text, ""));
    let first = first
        .trim()
        .trim_end_matches(['.', '!', ',', ';', ':', '-', '–', '—', ' ', '⭐', '★']);
    let mut chars = first.chars();
    let score = digit_value(chars.next()?)?;
    let tail = chars.as_str().trim().to_lowercase();
    let tail_ok = matches!(
        tail.as_str(),
        "" | "/5" | "/ 5" | "of 5" | "out of 5" | "star" | "stars"
    );
    if !(1..=5).contains(&score) || !tail_ok {
        return None;
    }
    let comment = rest.trim();
    Some((score, (!comment.is_empty()).then(|| comment.to_owned())))
}

/// A decimal digit in the scripts customers type digits in: ASCII, Arabic-Indic,
/// Eastern Arabic-Indic (Persian), Thai, Devanagari, full-width.
fn digit_value(c: char) -> Option<u8> {
    let zeros = ['0', '\u{0660}', '\u{06F0}', '\u{0E50}', '\u{0966}', '\u{FF10}'];
    zeros.into_iter().find_map(|zero| {
        let offset = (c as u32).checked_sub(zero as u32)?;
        (offset < 10).then_some(offset as u8)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> UpdateSettings {
        UpdateSettings {
            enabled: UpdateEvent::ALL.into_iter().collect(),
            window: Duration::from_secs(600),
            default_language: "en".into(),
            waiting_reminder_after: None,
            auto_close_after: None,
            inbox_off: HashMap::new(),
            inbox_language: HashMap::from([("thai-shop".to_owned(), "th".to_owned())]),
            team_off: HashMap::from([("billing".to_owned(), BTreeSet::from([UpdateEvent::Assigned]))]),
            csat: CsatPolicy {
                public_url: None,
                answer_window: Duration::from_secs(86400),
                after_resolution: AfterResolution::Reopen,
            },
            expire_after: Duration::from_secs(86400),
        }
    }

    fn compile(templates: Vec<(UpdateEvent, &str, TemplateSource)>) -> Result<UpdatePolicy, TemplateError> {
        compile_with(settings(), templates)
    }

    fn compile_with(
        settings: UpdateSettings,
        templates: Vec<(UpdateEvent, &str, TemplateSource)>,
    ) -> Result<UpdatePolicy, TemplateError> {
        let templates = templates
            .into_iter()
            .map(|(event, language, source)| ((event, language.to_owned()), source))
            .collect();
        UpdatePolicy::compile(settings, templates)
    }

    fn text(text: &str) -> TemplateSource {
        TemplateSource {
            text: text.into(),
            ..TemplateSource::default()
        }
    }

    #[test]
    fn the_built_in_templates_render_on_every_channel() {
        let policy = compile(vec![]).unwrap();
        for event in UpdateEvent::ALL {
            for &channel in crate::channels::registry::REGISTERED {
                let rendered = policy
                    .render(event, "en", &UpdateVars::sample(event, channel, true))
                    .unwrap();
                assert!(rendered.text.contains("#42"), "{event:?} {channel}: {}", rendered.text);
                assert_eq!(rendered.subject.is_some(), channel.capabilities().formats.subject);
            }
        }
    }

    #[test]
    fn names_the_template_and_line_of_an_unknown_variable_or_bad_syntax() {
        let err = compile(vec![(
            UpdateEvent::Resolved,
            "th",
            text("สวัสดี\n{{ conversation.nope }}"),
        )])
        .unwrap_err();
        assert_eq!(err.key, "updates.templates.resolved.th.text");
        assert_eq!(err.problem, "line 2 (`{{ conversation.nope }}`): undefined value");

        let err = compile(vec![(
            UpdateEvent::Received,
            "ar",
            TemplateSource {
                text: "ok".into(),
                html: Some("<p>\n\n{% if %}</p>".into()),
                ..TemplateSource::default()
            },
        )])
        .unwrap_err();
        assert_eq!(err.key, "updates.templates.received.ar.html");
        assert!(
            err.problem.starts_with("line 3 (`{% if %}</p>`): syntax error"),
            "{}",
            err.problem
        );
    }

    #[test]
    fn a_variable_of_another_event_or_an_unguarded_optional_one_is_refused() {
        // `next_open` exists only for out-of-hours updates.
        let err = compile(vec![(UpdateEvent::Resolved, "en", text("{{ next_open.time }}"))]).unwrap_err();
        assert_eq!(err.key, "updates.templates.resolved.en.text");
        // A conversation nobody holds has no agent.
        assert!(compile(vec![(UpdateEvent::Escalated, "en", text("{{ agent.name }}"))]).is_err());
        assert!(
            compile(vec![(
                UpdateEvent::Escalated,
                "en",
                text("{% if agent %}{{ agent.name }}{% endif %} ok")
            )])
            .is_ok()
        );
    }

    #[test]
    fn languages_fall_back_from_contact_to_inbox_to_default() {
        let policy = compile(vec![
            (UpdateEvent::Resolved, "th", text("th")),
            (UpdateEvent::Resolved, "pt", text("pt")),
        ])
        .unwrap();
        assert_eq!(policy.language(UpdateEvent::Resolved, Some("pt-BR"), "shop"), "pt");
        assert_eq!(policy.language(UpdateEvent::Resolved, Some("de"), "thai-shop"), "th");
        assert_eq!(policy.language(UpdateEvent::Resolved, Some("de"), "shop"), "en");
        assert_eq!(policy.language(UpdateEvent::Received, Some("th"), "shop"), "en");
    }

    #[test]
    fn markdown_templates_escape_values_and_html_templates_escape_markup() {
        let policy = compile(vec![(
            UpdateEvent::Resolved,
            "en",
            TemplateSource {
                text: "Hi {{ contact.name }}".into(),
                html: Some("<b>{{ contact.name }}</b>".into()),
                markdown: Some("*{{ contact.name }}* \\#ok".into()),
                subject: None,
            },
        )])
        .unwrap();
        let mut vars = UpdateVars::sample(UpdateEvent::Resolved, crate::channels::registry::known::TELEGRAM, true);
        vars.contact.name = Some("A.B <x> (1)".into());
        let telegram = policy.render(UpdateEvent::Resolved, "en", &vars).unwrap();
        assert_eq!(telegram.markdown_v2.as_deref(), Some("*A\\.B <x\\> \\(1\\)* \\#ok"));
        assert_eq!(telegram.text, "Hi A.B <x> (1)");
        vars.channel = crate::channels::registry::known::EMAIL;
        let email = policy.render(UpdateEvent::Resolved, "en", &vars).unwrap();
        assert_eq!(email.html.as_deref(), Some("<b>A.B &lt;x&gt; (1)</b>"));
        assert_eq!(email.markdown_v2, None);
    }

    #[test]
    fn switches_per_inbox_and_team() {
        let mut config = settings();
        config
            .inbox_off
            .insert("shop".into(), BTreeSet::from([UpdateEvent::Resolved]));
        config.enabled.remove(&UpdateEvent::Greeting);
        let policy = compile_with(config, vec![]).unwrap();
        assert!(!policy.sends(UpdateEvent::Resolved, "shop", Some("support")));
        assert!(policy.sends(UpdateEvent::Resolved, "other", Some("support")));
        assert!(!policy.sends(UpdateEvent::Assigned, "other", Some("billing")));
        assert!(policy.sends(UpdateEvent::Assigned, "other", Some("support")));
        assert!(!policy.sends(UpdateEvent::Greeting, "other", None));
    }

    #[test]
    fn next_open_is_told_in_the_given_zone() {
        // Monday 2026-11-30 08:00 UTC.
        let ms = 1_796_025_600_000;
        let bangkok = NextOpen::at(ms, "Asia/Bangkok").unwrap();
        assert_eq!((bangkok.date.as_str(), bangkok.time.as_str()), ("2026-11-30", "15:00"));
        assert_eq!((bangkok.weekday.as_str(), bangkok.weekday_number), ("Monday", 1));
        assert_eq!(bangkok.at, "2026-11-30T15:00:00+07:00");
        assert!(NextOpen::at(ms, "Mars/Olympus").is_none());
    }

    #[test]
    fn reads_scores_and_refuses_sentences() {
        assert_eq!(parse_score("4"), Some((4, None)));
        assert_eq!(
            parse_score(" 5/5!\nQuick and kind.\n"),
            Some((5, Some("Quick and kind.".into())))
        );
        assert_eq!(parse_score("3 stars"), Some((3, None)));
        assert_eq!(parse_score("٤"), Some((4, None)));
        assert_eq!(parse_score("๒"), Some((2, None)));
        assert_eq!(parse_score("５"), Some((5, None)));
        for reply in ["5 items are missing", "0", "6", "10", "45", "", "great", "4 of 10"] {
            assert_eq!(parse_score(reply), None, "{reply}");
        }
    }
}
