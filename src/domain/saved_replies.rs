//! Saved replies: texts an agent sends often (a refund's steps, a greeting), kept once
//! per team or per agent, found by a shortcut, with a body per language and
//! placeholders filled for the conversation at hand. Sending one is an ordinary reply:
//! [`render`] makes its text, and the reply rule stores and sends it like typed text.
//!
//! Placeholders are `{{ contact.name }}` and the others of [`PLACEHOLDERS`], with an
//! optional `| default: "text"` for a value the conversation may lack (Liquid's form,
//! which agents coming from Chatwoot know). No template language: agents write these in
//! a composer, where Jinja's `{%` and `{#` would make ordinary text (`{#42}`) a syntax
//! error, and a loop an agent wrote would cost every send. A body is checked when it is
//! saved, so an unknown placeholder never reaches a customer.

use std::collections::BTreeMap;

use crate::domain::access::{self, Caller};
use crate::domain::desk::Desk;
use crate::domain::{DeskError, DeskResult};
use crate::store::{AgentSelector, ReplyScope, SavedReply, Tx};

/// What a body may name, in the order the console offers them.
pub const PLACEHOLDERS: [&str; 7] = [
    "contact.name",
    "contact.first_name",
    "contact.email",
    "conversation.reference",
    "conversation.subject",
    "agent.name",
    "team.name",
];

/// The longest shortcut, in characters: a word or two typed after `/`.
pub const MAX_SHORTCUT: usize = 40;
/// The longest title, in characters.
pub const MAX_TITLE: usize = 200;
/// The longest body, in bytes: the longest reply a body can become, less room for the
/// values its placeholders take.
pub const MAX_BODY: usize = 60 * 1024;
/// The longest reply a saved reply may fill to, in bytes: the reply endpoint's limit.
pub const MAX_REPLY: usize = 64 * 1024;
/// Languages one saved reply may hold.
pub const MAX_BODIES: usize = 30;

/// A shortcut as stored: lowercase letters, digits, `-` and `_`, starting with a letter
/// or digit. Uppercase is taken and lowered, so `/Refund` finds `refund`.
pub fn shortcut(text: &str) -> Result<String, String> {
    let text = text.trim().trim_start_matches('/').to_lowercase();
    if text.is_empty() || text.chars().count() > MAX_SHORTCUT {
        return Err(format!("must be 1 to {MAX_SHORTCUT} characters, such as `refund`"));
    }
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_';
    if !text.chars().all(allowed) || !text.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(format!(
            "`{text}` may hold only lowercase letters, digits, `-` and `_`, starting with a letter or digit"
        ));
    }
    Ok(text)
}

pub fn title(text: &str) -> Result<String, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("must not be empty".into());
    }
    if text.chars().count() > MAX_TITLE {
        return Err(format!("is longer than {MAX_TITLE} characters"));
    }
    if text.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(text.to_owned())
}

/// A language tag as bodies are keyed: lowercase, `-` between parts (`pt-br`).
pub fn language(text: &str) -> Result<String, String> {
    let tag = text.trim().to_ascii_lowercase().replace('_', "-");
    let valid = (2..=35).contains(&tag.len())
        && tag
            .split('-')
            .all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric()))
        && tag.chars().take_while(|c| *c != '-').all(|c| c.is_ascii_alphabetic());
    if valid {
        Ok(tag)
    } else {
        Err(format!("`{text}` is not a language tag such as `en` or `pt-BR`"))
    }
}

/// A body as stored (trimmed), once every placeholder in it is one [`render`] fills.
pub fn body(text: &str) -> Result<String, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("must not be empty".into());
    }
    if text.len() > MAX_BODY {
        return Err(format!("must be at most {MAX_BODY} bytes"));
    }
    pieces(text)?;
    Ok(text.to_owned())
}

/// A piece of a body: text as written, or a placeholder with its default.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece<'a> {
    Text(&'a str),
    Value { name: &'a str, default: Option<&'a str> },
}

/// A body cut into text and placeholders; what is wrong with the first bad placeholder.
fn pieces(text: &str) -> Result<Vec<Piece<'_>>, String> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        if open > 0 {
            pieces.push(Piece::Text(&rest[..open]));
        }
        let inner_start = open + 2;
        let Some(close) = rest[inner_start..].find("}}") else {
            return Err(format!(
                "has `{{{{` without `}}}}`; placeholders are written {{{{ contact.name }}}}; known: {}",
                PLACEHOLDERS.join(", ")
            ));
        };
        let inner = &rest[inner_start..inner_start + close];
        pieces.push(placeholder(inner)?);
        rest = &rest[inner_start + close + 2..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest));
    }
    Ok(pieces)
}

/// `contact.name` or `contact.name | default: "there"`.
fn placeholder(inner: &str) -> Result<Piece<'_>, String> {
    let (name, filter) = match inner.split_once('|') {
        Some((name, filter)) => (name.trim(), Some(filter.trim())),
        None => (inner.trim(), None),
    };
    if !PLACEHOLDERS.contains(&name) {
        return Err(format!(
            "has an unknown placeholder `{{{{{}}}}}`; known: {}",
            inner.trim(),
            PLACEHOLDERS.join(", ")
        ));
    }
    let default = match filter {
        None => None,
        Some(filter) => {
            let quoted = filter.strip_prefix("default:").map(str::trim).and_then(|value| {
                ['"', '\''].into_iter().find_map(|quote| {
                    value
                        .strip_prefix(quote)
                        .and_then(|value| value.strip_suffix(quote))
                        .filter(|value| !value.contains(quote))
                })
            });
            match quoted {
                Some(default) => Some(default),
                None => {
                    return Err(format!(
                        "has `{{{{{}}}}}`: the only filter is `default: \"text\"`",
                        inner.trim()
                    ));
                }
            }
        }
    };
    Ok(Piece::Value { name, default })
}

/// What the placeholders of one conversation are; `None` where it has no such value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Values {
    pub contact_name: Option<String>,
    pub contact_email: Option<String>,
    pub reference: String,
    pub subject: Option<String>,
    pub agent_name: String,
    pub team_name: Option<String>,
}

impl Values {
    fn get(&self, name: &str) -> Option<String> {
        let present = |value: &Option<String>| value.clone().filter(|value| !value.trim().is_empty());
        match name {
            "contact.name" => present(&self.contact_name),
            "contact.first_name" => {
                present(&self.contact_name).and_then(|name| name.split_whitespace().next().map(str::to_owned))
            }
            "contact.email" => present(&self.contact_email),
            "conversation.reference" => Some(self.reference.clone()),
            "conversation.subject" => present(&self.subject),
            "agent.name" => Some(self.agent_name.clone()),
            "team.name" => present(&self.team_name),
            _ => None,
        }
    }
}

/// A body made text for one conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filled {
    pub text: String,
    /// Placeholders the conversation had no value for and no default filled (left
    /// empty), for the agent to check before sending.
    pub missing: Vec<String>,
}

/// Fills a body's placeholders. A body that was stored passed [`body`]; one that somehow
/// did not is sent as written rather than not at all.
pub fn fill(body: &str, values: &Values) -> Filled {
    let Ok(pieces) = pieces(body) else {
        return Filled {
            text: body.to_owned(),
            missing: Vec::new(),
        };
    };
    let mut text = String::with_capacity(body.len() + 64);
    let mut missing = Vec::new();
    for piece in pieces {
        match piece {
            Piece::Text(part) => text.push_str(part),
            Piece::Value { name, default } => match values.get(name).or(default.map(str::to_owned)) {
                Some(value) => text.push_str(&value),
                None => {
                    if !missing.iter().any(|seen| seen == name) {
                        missing.push(name.to_owned());
                    }
                }
            },
        }
    }
    Filled { text, missing }
}

/// The body a reply uses: the contact's language (`pt-br`, then `pt`), then the desk's
/// default language, then the reply's fallback.
pub fn choose<'a>(reply: &'a SavedReply, contact: Option<&str>, desk_default: &str) -> (&'a str, &'a str) {
    let mut wanted: Vec<String> = Vec::new();
    if let Some(tag) = contact.and_then(|tag| language(tag).ok()) {
        if let Some((primary, _)) = tag.split_once('-') {
            let primary = primary.to_owned();
            wanted.push(tag);
            wanted.push(primary);
        } else {
            wanted.push(tag);
        }
    }
    wanted.push(desk_default.to_ascii_lowercase());
    wanted.push(reply.fallback.clone());
    for tag in &wanted {
        if let Some((language, body)) = reply.bodies.get_key_value(tag.as_str()) {
            return (language, body);
        }
    }
    // A stored reply always has its fallback; this is only the first body otherwise.
    reply
        .bodies
        .iter()
        .next()
        .map_or(("", ""), |(language, body)| (language, body))
}

/// A new saved reply, its fields checked one by one ([`shortcut`], [`title`],
/// [`language`], [`body`]).
#[derive(Debug, Clone)]
pub struct Draft {
    pub scope: ReplyScope,
    pub shortcut: String,
    pub title: String,
    pub bodies: BTreeMap<String, String>,
    /// `None`: the desk's default language when a body has it, else the only body.
    pub fallback: Option<String>,
}

/// Changes of a saved reply; `None` leaves a field. A body set to `None` is removed.
#[derive(Debug, Clone, Default)]
pub struct Changes {
    pub shortcut: Option<String>,
    pub title: Option<String>,
    pub bodies: BTreeMap<String, Option<String>>,
    pub fallback: Option<String>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.shortcut.is_none() && self.title.is_none() && self.bodies.is_empty() && self.fallback.is_none()
    }
}

/// The saved reply, when the caller may see it; `NotFound` otherwise, as if it did not
/// exist (someone else's personal replies are theirs alone).
fn visible(tx: &mut dyn Tx, caller: &Caller, id: i64) -> DeskResult<SavedReply> {
    match tx.saved_reply(id)? {
        Some(reply) if access::may_see_saved_reply(caller, &reply.scope) => Ok(reply),
        _ => Err(DeskError::NotFound("saved reply")),
    }
}

fn check_fallback(reply: &SavedReply) -> DeskResult<()> {
    if reply.bodies.is_empty() {
        return Err(DeskError::Invalid {
            field: "bodies",
            problem: "must hold at least one language's text".into(),
        });
    }
    if reply.bodies.len() > MAX_BODIES {
        return Err(DeskError::Invalid {
            field: "bodies",
            problem: format!("may hold at most {MAX_BODIES} languages"),
        });
    }
    if !reply.bodies.contains_key(&reply.fallback) {
        let languages: Vec<&str> = reply.bodies.keys().map(String::as_str).collect();
        return Err(DeskError::Invalid {
            field: "fallback",
            problem: format!("`{}` has no body; name one of {}", reply.fallback, languages.join(", ")),
        });
    }
    Ok(())
}

fn check_shortcut_free(tx: &mut dyn Tx, reply: &SavedReply) -> DeskResult<()> {
    match tx.saved_reply_by_shortcut(&reply.scope, &reply.shortcut)? {
        Some(other) if other != reply.id => Err(DeskError::Invalid {
            field: "shortcut",
            problem: format!(
                "`{}` is taken by saved reply #{other} of {}",
                reply.shortcut,
                scope_name(&reply.scope)
            ),
        }),
        _ => Ok(()),
    }
}

fn scope_name(scope: &ReplyScope) -> String {
    match scope {
        ReplyScope::Team(team) => format!("team `{team}`"),
        ReplyScope::Personal(_) => "your own".into(),
    }
}

/// Stores a new saved reply; returns its id.
pub fn create(tx: &mut dyn Tx, desk: &Desk, caller: &Caller, draft: &Draft, now: i64) -> DeskResult<i64> {
    if let ReplyScope::Team(team) = &draft.scope
        && tx.team(team)?.is_none()
    {
        return Err(DeskError::Invalid {
            field: "team",
            problem: format!("`{team}` is not a configured team"),
        });
    }
    // A team that does not exist is a bad field for anyone; a real one, a question of
    // who may write its replies.
    access::may_manage_saved_reply(caller, &draft.scope)?;
    let desk_default = &desk.updates.settings.default_language;
    let fallback = match &draft.fallback {
        Some(fallback) => fallback.clone(),
        None if draft.bodies.contains_key(desk_default) => desk_default.clone(),
        None if draft.bodies.len() == 1 => draft.bodies.keys().next().cloned().unwrap_or_default(),
        None => {
            return Err(DeskError::Invalid {
                field: "fallback",
                problem: format!(
                    "is required when the bodies are in several languages and none is the desk's default (`{desk_default}`)"
                ),
            });
        }
    };
    let reply = SavedReply {
        id: 0,
        scope: draft.scope.clone(),
        shortcut: draft.shortcut.clone(),
        title: draft.title.clone(),
        bodies: draft.bodies.clone(),
        fallback,
        created_by: caller.id,
        created_at: now,
        updated_by: caller.id,
        updated_at: now,
    };
    check_fallback(&reply)?;
    check_shortcut_free(tx, &reply)?;
    Ok(tx.insert_saved_reply(&reply)?)
}

/// Applies an edit by someone who may manage the reply.
pub fn edit(tx: &mut dyn Tx, caller: &Caller, id: i64, changes: &Changes, now: i64) -> DeskResult<()> {
    let mut reply = visible(tx, caller, id)?;
    access::may_manage_saved_reply(caller, &reply.scope)?;
    if let Some(shortcut) = &changes.shortcut {
        reply.shortcut.clone_from(shortcut);
    }
    if let Some(title) = &changes.title {
        reply.title.clone_from(title);
    }
    for (language, body) in &changes.bodies {
        match body {
            Some(body) => reply.bodies.insert(language.clone(), body.clone()),
            None => reply.bodies.remove(language),
        };
    }
    if let Some(fallback) = &changes.fallback {
        reply.fallback.clone_from(fallback);
    }
    check_fallback(&reply)?;
    check_shortcut_free(tx, &reply)?;
    reply.updated_by = caller.id;
    reply.updated_at = now;
    Ok(tx.update_saved_reply(&reply)?)
}

pub fn delete(tx: &mut dyn Tx, caller: &Caller, id: i64) -> DeskResult<()> {
    let reply = visible(tx, caller, id)?;
    access::may_manage_saved_reply(caller, &reply.scope)?;
    tx.delete_saved_reply(id)?;
    Ok(())
}

/// A saved reply made text for one conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub saved_reply: i64,
    /// The language of the body used.
    pub language: String,
    pub text: String,
    pub missing: Vec<String>,
}

/// The saved reply `id` filled for the conversation, as `caller` would send it. The
/// caller must see both; a conversation they may not read is `NotFound`, as elsewhere.
/// The preview and the send both come here, so what an agent previews is what leaves.
pub fn render(tx: &mut dyn Tx, desk: &Desk, caller: &Caller, id: i64, conversation_id: i64) -> DeskResult<Rendered> {
    let reply = visible(tx, caller, id)?;
    let conversation = tx
        .conversation(conversation_id)?
        .ok_or(DeskError::NotFound("conversation"))?;
    access::check_read(caller, conversation.team_key.as_deref(), conversation.assignee)?;
    let target = tx
        .update_target(conversation_id)?
        .ok_or(DeskError::NotFound("conversation"))?;
    let agent = tx
        .agent(&AgentSelector::Id(caller.id))?
        .ok_or(DeskError::NotFound("agent"))?;
    let values = Values {
        contact_name: target.contact_name,
        contact_email: target.contact_email,
        reference: crate::model::reference(conversation_id),
        subject: target.subject,
        agent_name: agent.name,
        team_name: target.team_name,
    };
    let (language, body) = choose(
        &reply,
        target.language.as_deref(),
        &desk.updates.settings.default_language,
    );
    let filled = fill(body, &values);
    Ok(Rendered {
        saved_reply: reply.id,
        language: language.to_owned(),
        text: filled.text,
        missing: filled.missing,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(bodies: &[(&str, &str)], fallback: &str) -> SavedReply {
        SavedReply {
            id: 1,
            scope: ReplyScope::Personal(1),
            shortcut: "refund".into(),
            title: "Refund".into(),
            bodies: bodies
                .iter()
                .map(|(language, body)| ((*language).to_owned(), (*body).to_owned()))
                .collect(),
            fallback: fallback.into(),
            created_by: 1,
            created_at: 0,
            updated_by: 1,
            updated_at: 0,
        }
    }

    fn values() -> Values {
        Values {
            contact_name: Some("Ada Lovelace".into()),
            contact_email: None,
            reference: "#42".into(),
            subject: None,
            agent_name: "bea".into(),
            team_name: Some("Billing".into()),
        }
    }

    #[test]
    fn placeholders_are_filled_with_spaces_or_without() {
        let filled = fill(
            "Ciao {{contact.first_name}}, {{ conversation.reference }} è chiusa. {{agent.name}} ({{ team.name }})",
            &values(),
        );
        assert_eq!(filled.text, "Ciao Ada, #42 è chiusa. bea (Billing)");
        assert!(filled.missing.is_empty());
    }

    #[test]
    fn a_missing_value_takes_its_default_or_is_left_empty_and_reported() {
        let values = Values {
            contact_name: None,
            ..values()
        };
        let filled = fill(
            "Hello {{ contact.name | default: \"there\" }}, {{contact.email}}!",
            &values,
        );
        assert_eq!(filled.text, "Hello there, !");
        assert_eq!(filled.missing, ["contact.email"]);
        let single = fill("Hi {{contact.name|default:'friend'}}", &values);
        assert_eq!(single.text, "Hi friend");
    }

    #[test]
    fn values_are_never_read_as_placeholders() {
        let values = Values {
            contact_name: Some("{{agent.name}}".into()),
            ..values()
        };
        assert_eq!(fill("Hi {{contact.name}}", &values).text, "Hi {{agent.name}}");
    }

    #[test]
    fn unknown_placeholders_and_filters_are_refused_when_saved() {
        let unknown = body("Hi {{ contact.phone }}").unwrap_err();
        assert!(unknown.contains("`{{contact.phone}}`"), "{unknown}");
        assert!(unknown.contains("contact.name"), "the known ones are listed: {unknown}");
        assert!(body("Hi {{ contact.name | upper }}").is_err());
        assert!(body("Hi {{ contact.name").unwrap_err().contains("without"));
        assert!(body("   ").is_err());
        // What is not a placeholder is plain text, braces and all.
        assert_eq!(body(" Ticket {#42} {% ok } ").unwrap(), "Ticket {#42} {% ok }");
    }

    #[test]
    fn shortcuts_are_lowercase_words() {
        assert_eq!(shortcut("/Refund-2_x").unwrap(), "refund-2_x");
        assert!(shortcut("").is_err());
        assert!(shortcut("two words").is_err());
        assert!(shortcut("-dash").is_err());
        assert!(shortcut("rückgabe").is_err());
        assert!(shortcut(&"a".repeat(MAX_SHORTCUT + 1)).is_err());
    }

    #[test]
    fn the_contacts_language_comes_first_then_the_desks_then_the_fallback() {
        let reply = reply(
            &[("it", "Ciao"), ("pt", "Olá"), ("fr", "Bonjour"), ("en", "Hello")],
            "fr",
        );
        assert_eq!(choose(&reply, Some("it"), "en"), ("it", "Ciao"));
        assert_eq!(choose(&reply, Some("IT"), "en"), ("it", "Ciao"));
        assert_eq!(choose(&reply, Some("pt-BR"), "en"), ("pt", "Olá"), "the primary tag");
        assert_eq!(choose(&reply, Some("de"), "en"), ("en", "Hello"), "the desk's language");
        assert_eq!(choose(&reply, None, "en"), ("en", "Hello"));
        assert_eq!(choose(&reply, Some("de"), "nl"), ("fr", "Bonjour"), "the fallback");
        assert_eq!(choose(&reply, Some("not a tag!"), "nl"), ("fr", "Bonjour"));
    }

    #[test]
    fn a_region_body_serves_only_its_region() {
        let reply = reply(&[("pt-br", "Oi"), ("en", "Hello")], "en");
        assert_eq!(choose(&reply, Some("pt-BR"), "en"), ("pt-br", "Oi"));
        assert_eq!(choose(&reply, Some("pt"), "en"), ("en", "Hello"));
    }
}
