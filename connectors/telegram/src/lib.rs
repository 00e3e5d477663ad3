//! # Switchboard's Telegram channel
//!
//! - [`normalize`]: a Bot API update as the conversation model takes it (pure).
//! - [`client`]: the Bot API calls besides sending (getMe, getUpdates read entry by
//!   entry, files, the webhook, button answers); errors never carry the token.
//! - [`config`]: the `[inboxes.<key>.telegram]` table and its validation.
//! - [`send`]: [`TelegramSender`], replies through teloxide within Telegram's rate
//!   limits, long texts split at 4096 characters; status updates in MarkdownV2 (plain
//!   text when Telegram cannot parse it) with the CSAT scores as buttons.

pub mod channel;
pub mod client;
pub mod config;
pub mod normalize;
pub mod send;

pub use channel::Telegram;
pub use config::{TelegramConfig, TelegramSettings};
pub use normalize::{BotIdentity, FileRef, Normalized, normalize, read_update, read_update_bytes};
pub use send::TelegramSender;
