//! What a Bot API update means for the conversation model, in pure code: a customer
//! message (with the files to fetch), an edit of one, a button press (a satisfaction
//! score among them), the customer blocking the bot, or nothing (with the reason, for the
//! log). `stop` and `/start` in a private chat also stop and resume status updates.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use switchboard_connector_core::{CsatAnswer, InboundMessage, Sender};
use teloxide::types::{
    ChatMemberKind, MediaKind, Message, MessageEntityKind, MessageKind, MessageOrigin, Update, UpdateKind,
};

/// The bot an inbox speaks as, from `getMe`: group messages count only when they
/// address it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BotIdentity {
    pub id: u64,
    pub username: String,
}

/// A file to download with `getFile` before the message is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRef {
    pub file_id: String,
    pub filename: String,
    pub content_type: String,
    /// As Telegram states it, to refuse an oversized file before downloading it.
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Normalized {
    /// A customer's message, or a new version of one (`message.edits`).
    Message {
        message: Box<InboundMessage>,
        files: Vec<FileRef>,
        /// `/start` in a private chat: the customer opened the bot.
        start: bool,
    },
    /// A button press: answered at once (the customer's client shows a spinner until
    /// then) and recorded as a message.
    Callback {
        query_id: String,
        message: Box<InboundMessage>,
    },
    /// The customer blocked the bot, or removed it from the chat.
    Unreachable { external_id: String, reason: String },
    /// Nothing for the desk (a service message, a channel post, a group message for
    /// somebody else, an update kind we do not take).
    Ignored(&'static str),
}

/// The dedupe key of a message: unique per chat, stable across redeliveries and across
/// polling and webhook.
pub fn message_key(message: &Message) -> String {
    format!("{}:{}", message.chat.id.0, message.id.0)
}

/// Update kinds whose reader in teloxide-core 0.13 unwraps who acted: an entry naming
/// neither field panics inside `serde_json::from_str::<Update>` (found by fuzzing).
const ACTOR_REQUIRED: [(&str, [&str; 2]); 2] = [
    ("message_reaction", ["user", "actor_chat"]),
    ("poll_answer", ["user", "voter_chat"]),
];

/// Reads one update, as polling and the webhook receive it. Every update is read from
/// one `Value` (so what is checked is what teloxide reads, duplicate keys included), and
/// a reaction or poll answer that names no actor is refused here instead of panicking
/// in teloxide's reader.
pub fn read_update(json: &Value) -> Result<Update, String> {
    for (kind, actors) in ACTOR_REQUIRED {
        if let Some(entry) = json.get(kind)
            && entry.is_object()
            && actors.iter().all(|actor| entry.get(actor).is_none_or(Value::is_null))
        {
            return Err(format!("`{kind}` names neither `{}` nor `{}`", actors[0], actors[1]));
        }
    }
    // From text: teloxide's update reader needs borrowed keys, which a `Value` lacks.
    serde_json::from_str(&json.to_string()).map_err(|err| err.to_string())
}

/// [`read_update`] from a request body.
pub fn read_update_bytes(body: &[u8]) -> Result<Update, String> {
    let json: Value = serde_json::from_slice(body).map_err(|err| err.to_string())?;
    read_update(&json)
}

pub fn normalize(update: &Update, bot: &BotIdentity) -> Normalized {
    match &update.kind {
        UpdateKind::Message(message) => from_message(message, bot, false),
        UpdateKind::EditedMessage(message) => from_message(message, bot, true),
        UpdateKind::CallbackQuery(query) => {
            let (thread, chat_details) = match &query.message {
                Some(origin) if !origin.chat().is_private() => {
                    (Some(format!("chat:{}", origin.chat().id.0)), json!(origin.chat().id.0))
                }
                Some(origin) => (None, json!(origin.chat().id.0)),
                None => (None, Value::Null),
            };
            let data = query.data.clone().unwrap_or_default();
            let mut details = BTreeMap::new();
            details.insert("callback_data".into(), json!(data));
            details.insert("chat_id".into(), chat_details);
            // A score button of a status update's satisfaction question; the store checks
            // the token, so forged or stale data is only a message.
            let csat = CsatAnswer::from_callback_data(&data);
            let text = match &csat {
                Some(answer) => format!("CSAT {}/5", answer.score),
                None => format!("[button] {data}"),
            };
            Normalized::Callback {
                query_id: query.id.0.clone(),
                message: Box::new(InboundMessage {
                    external_id: format!("callback:{}", query.id.0),
                    sender: sender_of(&query.from),
                    thread,
                    text,
                    language: query.from.language_code.clone(),
                    metadata: user_metadata(&query.from),
                    details,
                    csat,
                    ..InboundMessage::default()
                }),
            }
        }
        UpdateKind::MyChatMember(change) if change.chat.is_private() => match &change.new_chat_member.kind {
            ChatMemberKind::Banned(_) | ChatMemberKind::Left => Normalized::Unreachable {
                external_id: change.chat.id.0.to_string(),
                reason: "the customer blocked the bot".into(),
            },
            _ => Normalized::Ignored("the bot's membership changed"),
        },
        UpdateKind::MyChatMember(_) => Normalized::Ignored("the bot's group membership changed"),
        UpdateKind::ChannelPost(_) | UpdateKind::EditedChannelPost(_) => Normalized::Ignored("channel post"),
        UpdateKind::Error(_) => Normalized::Ignored("an update kind this version does not read"),
        _ => Normalized::Ignored("an update kind the desk does not take"),
    }
}

fn sender_of(user: &teloxide::types::User) -> Sender {
    let name = match &user.last_name {
        Some(last) => format!("{} {last}", user.first_name),
        None => user.first_name.clone(),
    };
    Sender {
        external_id: user.id.0.to_string(),
        name: Some(name.trim().to_owned()).filter(|name| !name.is_empty()),
        ..Sender::default()
    }
}

fn user_metadata(user: &teloxide::types::User) -> BTreeMap<String, Value> {
    let mut metadata = BTreeMap::new();
    if let Some(username) = &user.username {
        metadata.insert("telegram_username".into(), json!(username));
    }
    metadata
}

/// Whether a group message is meant for the bot: a mention, a command (for any bot, or
/// named for this one), or a reply to one of its messages.
fn addresses_bot(message: &Message, bot: &BotIdentity) -> bool {
    let mention = format!("@{}", bot.username).to_lowercase();
    let text = message.text().or(message.caption()).unwrap_or_default();
    if !bot.username.is_empty() && text.to_lowercase().contains(&mention) {
        return true;
    }
    let commands = message.entities().or(message.caption_entities()).unwrap_or_default();
    let command_for_us = commands.iter().any(|entity| {
        entity.kind == MessageEntityKind::BotCommand && {
            let command = utf16_slice(text, entity.offset, entity.length);
            match command.split_once('@') {
                Some((_, name)) => name.eq_ignore_ascii_case(&bot.username),
                None => true,
            }
        }
    });
    if command_for_us {
        return true;
    }
    message
        .reply_to_message()
        .and_then(|replied| replied.from.as_ref())
        .is_some_and(|author| author.id.0 == bot.id)
}

/// Entity offsets and lengths count UTF-16 code units, not bytes or chars.
fn utf16_slice(text: &str, offset: usize, length: usize) -> String {
    let units: Vec<u16> = text.encode_utf16().skip(offset).take(length).collect();
    String::from_utf16_lossy(&units)
}

fn from_message(message: &Message, bot: &BotIdentity, edited: bool) -> Normalized {
    let MessageKind::Common(common) = &message.kind else {
        return Normalized::Ignored("service message");
    };
    let Some(from) = &message.from else {
        return Normalized::Ignored("message without a sender");
    };
    if from.is_bot {
        return Normalized::Ignored("message from a bot");
    }
    let private = message.chat.is_private();
    if !private && !addresses_bot(message, bot) {
        return Normalized::Ignored("group message not addressed to the bot");
    }

    let mut files = Vec::new();
    let mut details = BTreeMap::new();
    details.insert("chat_id".into(), json!(message.chat.id.0));
    details.insert("message_id".into(), json!(message.id.0));
    let mut text = message.text().or(message.caption()).unwrap_or_default().to_owned();
    match &common.media_kind {
        MediaKind::Photo(photo) => {
            // Telegram sends every size it made; the largest is the customer's picture.
            if let Some(largest) = photo
                .photo
                .iter()
                .max_by_key(|size| u64::from(size.width) * u64::from(size.height))
            {
                files.push(FileRef {
                    file_id: largest.file.id.0.clone(),
                    filename: format!("photo-{}.jpg", message.id.0),
                    content_type: "image/jpeg".into(),
                    size: u64::from(largest.file.size),
                });
            }
        }
        MediaKind::Document(document) => files.push(FileRef {
            file_id: document.document.file.id.0.clone(),
            filename: document
                .document
                .file_name
                .clone()
                .unwrap_or_else(|| format!("document-{}", message.id.0)),
            content_type: document
                .document
                .mime_type
                .as_ref()
                .map_or_else(|| "application/octet-stream".to_owned(), ToString::to_string),
            size: u64::from(document.document.file.size),
        }),
        MediaKind::Voice(voice) => files.push(FileRef {
            file_id: voice.voice.file.id.0.clone(),
            filename: format!("voice-{}.ogg", message.id.0),
            content_type: voice
                .voice
                .mime_type
                .as_ref()
                .map_or_else(|| "audio/ogg".to_owned(), ToString::to_string),
            size: u64::from(voice.voice.file.size),
        }),
        MediaKind::Video(video) => files.push(FileRef {
            file_id: video.video.file.id.0.clone(),
            filename: video
                .video
                .file_name
                .clone()
                .unwrap_or_else(|| format!("video-{}.mp4", message.id.0)),
            content_type: video
                .video
                .mime_type
                .as_ref()
                .map_or_else(|| "video/mp4".to_owned(), ToString::to_string),
            size: u64::from(video.video.file.size),
        }),
        MediaKind::Sticker(sticker) => {
            text = format!("[sticker {}]", sticker.sticker.emoji.clone().unwrap_or_default()).replace(" ]", "]");
        }
        MediaKind::Location(location) => {
            let (latitude, longitude) = (location.location.latitude, location.location.longitude);
            text = format!("[location] {latitude}, {longitude}");
            details.insert("location".into(), json!({"latitude": latitude, "longitude": longitude}));
        }
        MediaKind::Contact(contact) => {
            let contact = &contact.contact;
            let name = format!(
                "{} {}",
                contact.first_name,
                contact.last_name.clone().unwrap_or_default()
            );
            text = format!("[contact] {} {}", name.trim(), contact.phone_number);
            details.insert(
                "contact".into(),
                json!({"name": name.trim(), "phone_number": contact.phone_number}),
            );
        }
        MediaKind::Text(_) => {}
        _ => {
            if text.is_empty() {
                return Normalized::Ignored("a message kind the desk does not take");
            }
        }
    }
    if let Some(origin) = message.forward_origin() {
        let who = match origin {
            MessageOrigin::User { sender_user, .. } => sender_user.first_name.clone(),
            MessageOrigin::HiddenUser { sender_user_name, .. } => sender_user_name.clone(),
            MessageOrigin::Chat { sender_chat, .. } => sender_chat.title().unwrap_or("a chat").to_owned(),
            MessageOrigin::Channel { chat, .. } => chat.title().unwrap_or("a channel").to_owned(),
        };
        details.insert("forwarded_from".into(), json!(who));
        text = format!("[forwarded from {who}]\n{text}");
    }
    if let Some(replied) = message.reply_to_message() {
        details.insert("reply_to_message_id".into(), json!(replied.id.0));
    }
    if text.is_empty() && files.is_empty() {
        return Normalized::Ignored("an empty message");
    }

    // A group conversation is the group's (and the forum topic's): replies go there.
    let thread = (!private).then(|| match message.thread_id.filter(|_| message.is_topic_message) {
        Some(topic) => format!("chat:{}:topic:{}", message.chat.id.0, topic.0.0),
        None => format!("chat:{}", message.chat.id.0),
    });
    let key = message_key(message);
    let (external_id, edits) = match (edited, message.edit_date()) {
        (true, Some(date)) => (format!("{key}:edit:{}", date.timestamp()), Some(key)),
        (true, None) => (format!("{key}:edit"), Some(key)),
        (false, _) => (key, None),
    };
    let start = private && !edited && text.trim_start().starts_with("/start");
    // Only the customer's own new words: not an edit, a caption or a forward of somebody's.
    let opt_out = if start {
        Some(false)
    } else if private
        && !edited
        && message.forward_origin().is_none()
        && message.text().is_some_and(|t| is_stop(t, bot))
    {
        Some(true)
    } else {
        None
    };
    Normalized::Message {
        message: Box::new(InboundMessage {
            external_id,
            sender: sender_of(from),
            thread,
            subject: None,
            text,
            html: None,
            attachments: Vec::new(),
            language: from.language_code.clone(),
            metadata: user_metadata(from),
            edits,
            details,
            opt_out,
            ..InboundMessage::default()
        }),
        files,
        start,
    }
}

/// `stop` or `/stop` (for any bot or named for this one) and nothing else: a sentence that
/// contains the word is a message for an agent, not an instruction.
fn is_stop(text: &str, bot: &BotIdentity) -> bool {
    let text = text.trim();
    if text.eq_ignore_ascii_case("stop") || text.eq_ignore_ascii_case("/stop") {
        return true;
    }
    match text.split_once('@') {
        Some((command, name)) => {
            command.eq_ignore_ascii_case("/stop")
                && !bot.username.is_empty()
                && name.eq_ignore_ascii_case(&bot.username)
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn bot() -> BotIdentity {
        BotIdentity {
            id: 111_111_111,
            username: "ShopHelpBot".into(),
        }
    }

    /// From text: teloxide's update reader needs borrowed keys, which a `Value` lacks.
    fn update(json: Value) -> Update {
        serde_json::from_str(&json.to_string()).unwrap_or_else(|err| panic!("{json}: {err}"))
    }

    /// Minimized from what the `telegram_update` fuzz target found: teloxide-core 0.13
    /// unwraps the actor of these kinds while reading.
    #[test]
    fn a_reaction_or_poll_answer_without_an_actor_is_refused_not_a_panic() {
        let reaction = json!({"update_id": 1, "message_reaction": {
            "chat": {"id": -100, "title": "Test", "type": "supergroup"},
            "message_id": 35, "date": 1721306082, "old_reaction": [], "new_reaction": []}});
        let err = read_update(&reaction).unwrap_err();
        assert_eq!(err, "`message_reaction` names neither `user` nor `actor_chat`");
        let answer = json!({"update_id": 2, "poll_answer": {"poll_id": "p", "option_ids": [0], "user": null}});
        let err = read_update_bytes(answer.to_string().as_bytes()).unwrap_err();
        assert_eq!(err, "`poll_answer` names neither `user` nor `voter_chat`");
    }

    #[test]
    fn a_reaction_with_its_user_is_read() {
        let reaction = json!({"update_id": 1, "message_reaction": {
            "chat": {"id": -100, "title": "Test", "type": "supergroup"},
            "user": customer(),
            "message_id": 35, "date": 1721306082, "old_reaction": [], "new_reaction": []}});
        let update = read_update(&reaction).unwrap();
        assert_eq!(
            normalize(&update, &bot()),
            Normalized::Ignored("an update kind the desk does not take")
        );
    }

    fn customer() -> Value {
        json!({"id": 222_222_222, "is_bot": false, "first_name": "Mario", "language_code": "it"})
    }

    /// A button press on one of the bot's messages in the customer's private chat, shaped
    /// like tests/fixtures/telegram/ntg-update-callback_query.json.
    fn callback(data: &str) -> Update {
        update(json!({
            "update_id": 2,
            "callback_query": {
                "id": "666728699048485871",
                "from": customer(),
                "message": {
                    "message_id": 69587,
                    "from": {"id": 111_111_111, "is_bot": true, "first_name": "Shop", "username": "ShopHelpBot"},
                    "chat": {"id": 222_222_222, "first_name": "Mario", "type": "private"},
                    "date": 1_584_984_711,
                    "text": "How did we do?",
                },
                "chat_instance": "1628661761791766620",
                "data": data,
            }
        }))
    }

    fn text_in(chat: Value, text: &str) -> Value {
        json!({
            "update_id": 306_197_398,
            "message": {"message_id": 154, "date": 1_581_448_857, "chat": chat, "from": customer(), "text": text}
        })
    }

    fn private_text(text: &str) -> Update {
        update(text_in(
            json!({"id": 222_222_222, "type": "private", "first_name": "Mario"}),
            text,
        ))
    }

    fn message(update: &Update) -> (InboundMessage, bool) {
        match normalize(update, &bot()) {
            Normalized::Message { message, start, .. } => (*message, start),
            other => panic!("expected a message, got {other:?}"),
        }
    }

    fn callback_message(update: &Update) -> InboundMessage {
        match normalize(update, &bot()) {
            Normalized::Callback { message, .. } => *message,
            other => panic!("expected a callback, got {other:?}"),
        }
    }

    #[test]
    fn a_csat_button_is_a_score_with_its_token() {
        let message = callback_message(&callback("csat:Zm9vYmFy:4"));
        let answer = message.csat.expect("a CSAT answer");
        assert_eq!((answer.token.as_deref(), answer.score), (Some("Zm9vYmFy"), 4));
        assert_eq!(message.text, "CSAT 4/5");
        assert_eq!(message.details["callback_data"], json!("csat:Zm9vYmFy:4"));
        assert_eq!(message.external_id, "callback:666728699048485871");
    }

    #[test]
    fn other_buttons_stay_plain_button_presses() {
        for data in ["thedata", "csat:Zm9vYmFy:9", "csat::3"] {
            let message = callback_message(&callback(data));
            assert_eq!(message.csat, None, "{data}");
            assert_eq!(message.text, format!("[button] {data}"));
            assert_eq!(message.details["callback_data"], json!(data));
        }
    }

    #[test]
    fn stop_in_a_private_chat_opts_out_of_status_updates() {
        for text in [
            "stop",
            "STOP",
            "  Stop\n",
            "/stop",
            "/Stop@shophelpbot",
            " /stop@ShopHelpBot ",
        ] {
            let (message, start) = message(&private_text(text));
            assert_eq!(message.opt_out, Some(true), "{text:?}");
            assert!(!start);
            assert_eq!(message.text, text, "the message itself is kept as written");
        }
    }

    #[test]
    fn only_a_bare_stop_opts_out() {
        for text in [
            "stop sending me these",
            "please stop",
            "/stop@OtherBot",
            "/stopp",
            "stop.",
        ] {
            assert_eq!(message(&private_text(text)).0.opt_out, None, "{text:?}");
        }
    }

    #[test]
    fn start_resumes_status_updates() {
        let (message, start) = message(&private_text("/start"));
        assert!(start);
        assert_eq!(message.opt_out, Some(false));
        assert_eq!(self::message(&private_text("hello")).0.opt_out, None);
    }

    #[test]
    fn stop_in_a_group_an_edit_a_caption_or_a_forward_is_no_opt_out() {
        // A group command for this bot is taken as a message, but a group is not the
        // customer's own channel to silence.
        let group = json!({"id": -1_001_234_567_890_i64, "type": "supergroup", "title": "Shop"});
        let (in_group, _) = message(&update(text_in(group, "/stop@ShopHelpBot")));
        assert_eq!(in_group.opt_out, None);

        let mut edited = text_in(
            json!({"id": 222_222_222, "type": "private", "first_name": "Mario"}),
            "stop",
        );
        edited["edited_message"] = edited["message"].take();
        edited.as_object_mut().unwrap().remove("message");
        edited["edited_message"]["edit_date"] = json!(1_581_448_900);
        assert_eq!(message(&update(edited)).0.opt_out, None);

        let mut forwarded = text_in(
            json!({"id": 222_222_222, "type": "private", "first_name": "Mario"}),
            "stop",
        );
        forwarded["message"]["forward_origin"] = json!({
            "type": "user",
            "date": 1_581_448_000,
            "sender_user": {"id": 333, "is_bot": false, "first_name": "Luigi"},
        });
        assert_eq!(message(&update(forwarded)).0.opt_out, None);

        let mut captioned = text_in(json!({"id": 222_222_222, "type": "private", "first_name": "Mario"}), "");
        let body = captioned["message"].as_object_mut().unwrap();
        body.remove("text");
        body.insert("caption".into(), json!("stop"));
        body.insert(
            "document".into(),
            json!({"file_id": "BQAC", "file_unique_id": "AgAD", "file_name": "x.pdf", "file_size": 3}),
        );
        assert_eq!(message(&update(captioned)).0.opt_out, None);
    }
}
