//! The sending half: replies and status updates as Telegram messages, within Telegram's
//! limits (about 1 message/s per private chat, 20/min per group, 30/s per bot). A send
//! waits for its slot here, so bursts are smoothed instead of answered with 429s; a 429
//! that comes anyway is retried through the outbox after the time Telegram names.
//!
//! A status update goes as MarkdownV2 when the desk rendered it so (plain text if Telegram
//! cannot parse it), with the scores 1–5 as buttons when it asks for satisfaction.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use switchboard_connector_core::{CsatQuestion, OutboundChannel, OutboundMessage, Receipt, SendError};
use teloxide::payloads::{SendDocumentSetters, SendMessageSetters, SendPhotoSetters};
use teloxide::prelude::Requester;
use teloxide::types::{
    ChatId, InlineKeyboardButton, InlineKeyboardMarkup, InputFile, MessageId, ParseMode, ReplyParameters, ThreadId,
};
use teloxide::{ApiError, Bot, RequestError};
use tokio::time::Instant;

use crate::client::describe;
use crate::config::Limits;

/// Room for jitter between our clock and Telegram's counting (scheduling, the network):
/// every interval is kept 3 % longer than the limit, so no second or minute as Telegram
/// measures it sees one message too many.
const MARGIN: f64 = 1.03;

/// Telegram's longest message text, in UTF-16 code units.
pub const MAX_TEXT_UNITS: usize = 4096;

#[derive(Clone)]
pub struct TelegramSender {
    bot: Bot,
    limiter: Arc<Limiter>,
}

impl std::fmt::Debug for TelegramSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelegramSender").finish_non_exhaustive()
    }
}

/// Where a conversation's messages go: a private chat (the customer's user id is its
/// chat id) or a group, maybe a forum topic in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Destination {
    pub chat: i64,
    pub topic: Option<i32>,
    pub group: bool,
}

impl Destination {
    /// From the conversation's thread key (`chat:<id>` or `chat:<id>:topic:<n>`, set for
    /// group conversations) or else the recipient's id.
    pub fn of(message: &OutboundMessage) -> Option<Destination> {
        if let Some(thread) = message.thread.as_deref().and_then(|t| t.strip_prefix("chat:")) {
            let (chat, topic) = match thread.split_once(":topic:") {
                Some((chat, topic)) => (chat, Some(topic.parse().ok()?)),
                None => (thread, None),
            };
            return Some(Destination {
                chat: chat.parse().ok()?,
                topic,
                group: true,
            });
        }
        Some(Destination {
            chat: message.recipient.parse().ok()?,
            topic: None,
            group: false,
        })
    }
}

impl TelegramSender {
    pub fn new(bot: Bot, limits: Limits) -> TelegramSender {
        TelegramSender {
            bot,
            limiter: Arc::new(Limiter::new(limits)),
        }
    }

    /// Sends the message's parts (its text, in one or more messages, then each file)
    /// after the first `message.parts_sent`, which earlier attempts sent. A failure says
    /// how many parts had gone by then, counting those.
    async fn send_all(&self, message: &OutboundMessage, to: Destination) -> Result<Receipt, (u32, RequestError)> {
        let already = message.parts_sent;
        let mut went = 0u32;
        let chat = ChatId(to.chat);
        // In a group, answer the customer's own message, so the group sees whom we answer.
        let reply_to = message
            .in_reply_to
            .as_deref()
            .filter(|_| to.group)
            .and_then(|key| key.rsplit_once(':'))
            .and_then(|(_, id)| id.parse().ok())
            .map(|id| ReplyParameters {
                message_id: MessageId(id),
                allow_sending_without_reply: Some(true),
                ..ReplyParameters::new(MessageId(id))
            });
        let keyboard = message
            .update
            .as_ref()
            .and_then(|update| update.csat.as_ref())
            .map(csat_keyboard);
        let mut last = None;
        // A status update's MarkdownV2 is one message, and an update has no files: it
        // never went part-way, so a resumed send has no markup to choose.
        if let Some(markdown) = markdown_of(message).filter(|_| already == 0) {
            let text = Text {
                text: markdown.to_owned(),
                markdown: true,
                reply_to: reply_to.clone(),
                keyboard: keyboard.clone(),
            };
            match self.send_text(to, text).await {
                Ok(id) => {
                    last = Some(id);
                    went += 1;
                }
                // A template (or a variable it failed to escape) the desk got wrong must not
                // cost the customer the update: the plain text says the same.
                Err(err) if refused_markup(&err) => tracing::warn!(
                    message_id = message.message_id,
                    event = message.update.as_ref().map_or("", |update| update.event.as_str()),
                    error = %describe(&err),
                    "Telegram cannot parse the status update's MarkdownV2; sending it as plain text"
                ),
                Err(err) => return Err((went, err)),
            }
        }
        if last.is_none() {
            let parts = split_text(&message.text);
            let count = parts.len();
            for (index, part) in parts.into_iter().enumerate() {
                if went < already {
                    went += 1;
                    continue;
                }
                let text = Text {
                    text: part,
                    markdown: false,
                    reply_to: reply_to.clone().filter(|_| index == 0),
                    // Under the last part, where the customer's reading ends.
                    keyboard: keyboard.clone().filter(|_| index + 1 == count),
                };
                last = Some(self.send_text(to, text).await.map_err(|err| (went, err))?);
                went += 1;
            }
        }
        for attachment in &message.attachments {
            if went < already {
                went += 1;
                continue;
            }
            self.limiter.wait_turn(to).await;
            let file = InputFile::memory(attachment.data.clone()).file_name(attachment.filename.clone());
            let topic = to.topic.map(|topic| ThreadId(MessageId(topic)));
            // A picture shows inline as a photo (Telegram takes up to 10 MB so, and
            // recompresses it); anything else, or a larger picture, goes as a file.
            let sent = if is_photo(&attachment.content_type, attachment.data.len()) {
                let mut request = self.bot.send_photo(chat, file);
                if let Some(topic) = topic {
                    request = request.message_thread_id(topic);
                }
                request.await
            } else {
                let mut request = self.bot.send_document(chat, file);
                if let Some(topic) = topic {
                    request = request.message_thread_id(topic);
                }
                request.await
            }
            .map_err(|err| (went, err))?;
            last = Some(sent.id);
            went += 1;
        }
        let external_id = last.map(|id| format!("{}:{}", to.chat, id.0));
        Ok(Receipt {
            detail: format!("Telegram message {}", external_id.as_deref().unwrap_or("-")),
            external_id,
            thread_id: None,
        })
    }

    /// One `sendMessage`, in its turn.
    async fn send_text(&self, to: Destination, text: Text) -> Result<MessageId, RequestError> {
        self.limiter.wait_turn(to).await;
        let mut request = self.bot.send_message(ChatId(to.chat), text.text);
        if text.markdown {
            request = request.parse_mode(ParseMode::MarkdownV2);
        }
        if let Some(topic) = to.topic {
            request = request.message_thread_id(ThreadId(MessageId(topic)));
        }
        if let Some(reply) = text.reply_to {
            request = request.reply_parameters(reply);
        }
        if let Some(keyboard) = text.keyboard {
            request = request.reply_markup(keyboard);
        }
        Ok(request.await?.id)
    }
}

/// One text message to send and what goes with it.
struct Text {
    text: String,
    /// Whether `text` is MarkdownV2 rather than plain.
    markdown: bool,
    reply_to: Option<ReplyParameters>,
    keyboard: Option<InlineKeyboardMarkup>,
}

/// The status update's MarkdownV2, when it has one that fits in one message.
///
/// A longer one goes as plain text instead of being split: a cut must fall neither inside
/// an escape (`\.`) nor inside an entity (a `*bold*` cut in two fails to parse in both
/// halves), which means parsing the markup here as Telegram does. Status updates are
/// short, and the plain text says the same, so the simple rule costs only formatting.
/// The source length bounds the parsed length Telegram checks, so what fits here fits there.
fn markdown_of(message: &OutboundMessage) -> Option<&str> {
    let markdown = message.update.as_ref()?.markdown_v2.as_deref()?;
    (markdown.encode_utf16().count() <= MAX_TEXT_UNITS).then_some(markdown)
}

/// Whether Telegram refused a text for its markup (a 400 `can't parse entities`), which
/// plain text would cure. teloxide names the error when the description starts as
/// Telegram words it today; the fallback catches a rewording it does not know.
fn refused_markup(error: &RequestError) -> bool {
    match error {
        RequestError::Api(ApiError::CantParseEntities(_)) => true,
        RequestError::Api(ApiError::Unknown(description)) => description.contains("can't parse entities"),
        _ => false,
    }
}

/// One row of the scores 1–5 as buttons whose data names the question and the score.
fn csat_keyboard(question: &CsatQuestion) -> InlineKeyboardMarkup {
    let row: Vec<InlineKeyboardButton> = (1..=5u8)
        .map(|score| InlineKeyboardButton::callback(format!("{score} ⭐"), question.callback_data(score)))
        .collect();
    InlineKeyboardMarkup::new([row])
}

impl OutboundChannel for TelegramSender {
    async fn send(&self, message: &OutboundMessage) -> Result<Receipt, SendError> {
        let Some(to) = Destination::of(message) else {
            return Err(SendError::permanent(format!(
                "`{}` is not a Telegram chat id",
                message.recipient
            )));
        };
        self.send_all(message, to)
            .await
            .map_err(|(went, err)| classify(&err).after_parts(went))
    }
}

fn is_photo(content_type: &str, size: usize) -> bool {
    matches!(content_type, "image/jpeg" | "image/png" | "image/webp") && size <= 10 * 1024 * 1024
}

/// A 429 waits the time Telegram names; blocked, deactivated or kicked means the
/// customer is gone from this bot; other refusals will not change on a retry; network
/// trouble will.
fn classify(error: &RequestError) -> SendError {
    let reason = describe(error);
    match error {
        RequestError::RetryAfter(seconds) => SendError::Transient {
            reason: format!("Telegram: too many requests, {reason}"),
            retry_after: Some(seconds.duration()),
        },
        RequestError::Api(
            ApiError::BotBlocked
            | ApiError::UserDeactivated
            | ApiError::BotKicked
            | ApiError::BotKickedFromSupergroup
            | ApiError::CantInitiateConversation,
        ) => SendError::Unreachable {
            reason: format!("Telegram: {reason}"),
        },
        RequestError::Api(_) | RequestError::MigrateToChatId(_) => SendError::permanent(format!("Telegram: {reason}")),
        RequestError::Network(_) | RequestError::Io(_) | RequestError::InvalidJson { .. } => {
            SendError::transient(format!("Telegram: {reason}"))
        }
    }
}

/// Splits a text into parts Telegram takes, at a paragraph, line or word break where
/// one is near the limit, so no word is cut in two.
pub fn split_text(text: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut rest = text;
    while rest.encode_utf16().count() > MAX_TEXT_UNITS {
        // The longest prefix within the limit, on a char boundary.
        let mut units = 0;
        let mut end = 0;
        for (index, c) in rest.char_indices() {
            units += c.len_utf16();
            if units > MAX_TEXT_UNITS {
                break;
            }
            end = index + c.len_utf8();
        }
        let window = &rest[..end];
        // A break in the last quarter of the window; otherwise cut at the limit.
        let floor = end * 3 / 4;
        let cut = ["\n\n", "\n", " "]
            .iter()
            .find_map(|separator| window.rfind(separator).filter(|at| *at >= floor))
            .unwrap_or(end);
        let (part, tail) = rest.split_at(cut);
        parts.push(part.trim_end().to_owned());
        rest = tail.trim_start();
    }
    if !rest.trim_end().is_empty() || parts.is_empty() {
        parts.push(rest.trim_end().to_owned());
    }
    parts
}

/// Per chat and per bot send schedules. A turn is reserved under the lock and waited
/// for outside it.
struct Limiter {
    limits: Limits,
    state: Mutex<LimiterState>,
}

#[derive(Default)]
struct LimiterState {
    /// The earliest next send per chat.
    chat_next: HashMap<i64, Instant>,
    /// Each group's sends of the last minute.
    group_sends: HashMap<i64, VecDeque<Instant>>,
    /// The bot's next free slot: slots are spaced 1/limit apart.
    bot_next: Option<Instant>,
    /// When the bot's sends of the last second really left. A send woken late by a busy
    /// machine leaves after its slot while the next one leaves on time, so slots alone
    /// let 31 sends fit in 997 ms; this window is checked as each one leaves.
    bot_departures: VecDeque<Instant>,
}

impl Limiter {
    fn new(limits: Limits) -> Limiter {
        Limiter {
            limits,
            state: Mutex::new(LimiterState::default()),
        }
    }

    /// Waits until a message to `to` may leave, and takes that slot.
    async fn wait_turn(&self, to: Destination) {
        // The chat's turn first: waiting for it must not hold a bot slot others could use.
        let chat_turn = self.reserve_chat(to, Instant::now());
        tokio::time::sleep_until(chat_turn).await;
        let bot_turn = self.reserve_bot(to, Instant::now());
        tokio::time::sleep_until(bot_turn).await;
        while let Some(later) = self.depart(Instant::now()) {
            tokio::time::sleep_until(later).await;
        }
    }

    /// Records a send leaving at `now`, or says when it may: never more than the bot's
    /// limit in any window of a second (with the margin) of real departures.
    fn depart(&self, now: Instant) -> Option<Instant> {
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let window = Duration::from_secs(1).mul_f64(MARGIN);
        let departures = &mut state.bot_departures;
        while departures.front().is_some_and(|left| *left + window <= now) {
            departures.pop_front();
        }
        let limit = self.limits.bot_per_second as usize;
        if departures.len() >= limit {
            return Some(departures[departures.len() - limit] + window);
        }
        departures.push_back(now);
        None
    }

    fn reserve_chat(&self, to: Destination, now: Instant) -> Instant {
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut turn = state.chat_next.get(&to.chat).copied().unwrap_or(now).max(now);
        if to.group {
            let minute = Duration::from_secs(60).mul_f64(MARGIN);
            let sends = state.group_sends.entry(to.chat).or_default();
            while sends.front().is_some_and(|sent| *sent + minute <= now) {
                sends.pop_front();
            }
            let limit = self.limits.group_per_minute as usize;
            if sends.len() >= limit {
                turn = turn.max(sends[sends.len() - limit] + minute);
            }
            sends.push_back(turn);
        }
        let interval = if to.group {
            Duration::ZERO
        } else {
            self.limits.chat_interval.mul_f64(MARGIN)
        };
        state.chat_next.insert(to.chat, turn + interval);
        turn
    }

    fn reserve_bot(&self, to: Destination, now: Instant) -> Instant {
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let spacing = (Duration::from_secs(1) / self.limits.bot_per_second).mul_f64(MARGIN);
        let turn = state.bot_next.unwrap_or(now).max(now);
        state.bot_next = Some(turn + spacing);
        // The chat's interval counts from when the message really leaves.
        if !to.group {
            let next = state.chat_next.entry(to.chat).or_insert(turn);
            *next = (*next).max(turn + self.limits.chat_interval.mul_f64(MARGIN));
        }
        turn
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            chat_interval: Duration::from_secs(1),
            group_per_minute: 20,
            bot_per_second: 30,
        }
    }

    #[test]
    fn long_texts_split_at_word_breaks_within_the_limit() {
        let word = "Wörter ";
        let text = word.repeat(1500);
        let parts = split_text(&text);
        assert!(parts.len() >= 3);
        for part in &parts {
            assert!(part.encode_utf16().count() <= MAX_TEXT_UNITS);
            assert!(
                part.ends_with("Wörter"),
                "cut inside a word: …{}",
                &part[part.len() - 10..]
            );
        }
        assert_eq!(parts.join(" "), text.trim_end());
        assert_eq!(split_text("short"), vec!["short"]);
        // Emoji count two UTF-16 units each.
        let emoji = "😀".repeat(3000);
        assert!(
            split_text(&emoji)
                .iter()
                .all(|p| p.encode_utf16().count() <= MAX_TEXT_UNITS)
        );
    }

    #[test]
    fn destinations_come_from_the_thread_key_or_the_recipient() {
        let mut message = OutboundMessage {
            delivery_id: "msg_1".into(),
            conversation_id: 1,
            message_id: 1,
            recipient: "42".into(),
            thread: None,
            subject: None,
            text: "hi".into(),
            kind: switchboard_connector_core::OutboundKind::Reply,
            in_reply_to: None,
            references: vec![],
            attachments: vec![],
            update: None,
            window_open: true,
            parts_sent: 0,
        };
        assert_eq!(
            Destination::of(&message),
            Some(Destination {
                chat: 42,
                topic: None,
                group: false
            })
        );
        message.thread = Some("chat:-100123:topic:7".into());
        assert_eq!(
            Destination::of(&message),
            Some(Destination {
                chat: -100123,
                topic: Some(7),
                group: true
            })
        );
    }

    fn status_update(markdown: Option<&str>) -> OutboundMessage {
        OutboundMessage {
            delivery_id: "msg_2".into(),
            conversation_id: 1,
            message_id: 2,
            recipient: "42".into(),
            thread: None,
            subject: None,
            text: "Your request #1 was received.".into(),
            kind: switchboard_connector_core::OutboundKind::StatusUpdate,
            in_reply_to: None,
            references: vec![],
            attachments: vec![],
            update: Some(switchboard_connector_core::StatusUpdate {
                event: "received".into(),
                markdown_v2: markdown.map(str::to_owned),
                ..Default::default()
            }),
            window_open: true,
            parts_sent: 0,
        }
    }

    #[test]
    fn markdown_goes_out_only_when_it_fits_in_one_message() {
        let short = status_update(Some("Your request *\\#1* was received\\."));
        assert_eq!(markdown_of(&short), Some("Your request *\\#1* was received\\."));
        assert_eq!(markdown_of(&status_update(None)), None);
        let mut reply = status_update(None);
        reply.update = None;
        assert_eq!(markdown_of(&reply), None);
        // Exactly at the limit in UTF-16 units (emoji count two), then one over.
        let at_limit = "😀".repeat(MAX_TEXT_UNITS / 2);
        assert!(markdown_of(&status_update(Some(&at_limit))).is_some());
        let over = format!("{at_limit}x");
        assert_eq!(markdown_of(&status_update(Some(&over))), None);
    }

    #[test]
    fn only_a_markup_refusal_falls_back_to_plain_text() {
        let parse =
            "Bad Request: can't parse entities: Character '.' is reserved and must be escaped with the preceding '\\'";
        assert!(refused_markup(&RequestError::Api(ApiError::CantParseEntities(
            parse.into()
        ))));
        assert!(refused_markup(&RequestError::Api(ApiError::Unknown(
            "Bad Request: can't parse entities in message text".into()
        ))));
        assert!(!refused_markup(&RequestError::Api(ApiError::ChatNotFound)));
        assert!(!refused_markup(&RequestError::Api(ApiError::MessageIsTooLong)));
        assert!(!refused_markup(&RequestError::Api(ApiError::Unknown(
            "Bad Request: chat not found".into()
        ))));
    }

    #[test]
    fn a_csat_question_is_one_row_of_five_score_buttons() {
        let question = CsatQuestion {
            token: "Zm9vYmFy".into(),
        };
        let keyboard = csat_keyboard(&question);
        assert_eq!(keyboard.inline_keyboard.len(), 1);
        let row = &keyboard.inline_keyboard[0];
        let labels: Vec<&str> = row.iter().map(|button| button.text.as_str()).collect();
        assert_eq!(labels, ["1 ⭐", "2 ⭐", "3 ⭐", "4 ⭐", "5 ⭐"]);
        for (score, button) in (1..=5u8).zip(row) {
            let teloxide::types::InlineKeyboardButtonKind::CallbackData(data) = &button.kind else {
                panic!("not a callback button: {button:?}");
            };
            assert_eq!(data, &question.callback_data(score));
            let answer = switchboard_connector_core::CsatAnswer::from_callback_data(data).unwrap();
            assert_eq!(answer.score, score);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_chat_gets_one_message_a_second_and_the_bot_thirty() {
        let limiter = Limiter::new(limits());
        let start = Instant::now();
        let chat = Destination {
            chat: 1,
            topic: None,
            group: false,
        };
        let mut turns = Vec::new();
        for _ in 0..3 {
            limiter.wait_turn(chat).await;
            turns.push(Instant::now() - start);
        }
        assert_eq!(
            turns,
            vec![Duration::ZERO, Duration::from_millis(1030), Duration::from_millis(2060)]
        );

        let start = Instant::now();
        for chat in 100..160 {
            limiter
                .wait_turn(Destination {
                    chat,
                    topic: None,
                    group: false,
                })
                .await;
        }
        // 60 chats at 30/s, less the margin: 31 sends never fit in one second.
        let elapsed = Instant::now() - start;
        assert!(
            elapsed >= Duration::from_millis(2020) && elapsed <= Duration::from_millis(2080),
            "{elapsed:?}"
        );
    }

    #[test]
    fn sends_that_left_late_still_never_put_thirty_one_in_a_second() {
        let limiter = Limiter::new(limits());
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        // Thirty sends crowded together, as after a stall of the runtime.
        for n in 0..30 {
            assert_eq!(limiter.depart(at(n)), None);
        }
        assert_eq!(limiter.depart(at(500)), Some(at(1030)));
        assert_eq!(limiter.depart(at(1030)), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_group_gets_twenty_a_minute() {
        let limiter = Limiter::new(limits());
        let group = Destination {
            chat: -5,
            topic: None,
            group: true,
        };
        let start = Instant::now();
        for _ in 0..21 {
            limiter.wait_turn(group).await;
        }
        let elapsed = Instant::now() - start;
        assert!(
            elapsed >= Duration::from_secs(61) && elapsed < Duration::from_secs(62),
            "{elapsed:?}"
        );
    }
}
