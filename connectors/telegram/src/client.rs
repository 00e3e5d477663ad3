//! The Bot API calls the daemon makes besides sending: who the bot is, updates (long
//! polling), files, the webhook registration, answering button presses. Errors never
//! carry a URL: the token is part of every Bot API address.

use std::time::Duration;

use serde_json::{Value, json};
use teloxide::net::Download;
use teloxide::prelude::Requester;
use teloxide::types::{CallbackQueryId, FileId, Update};
use teloxide::{Bot, RequestError};

use crate::config::TelegramSettings;
use crate::normalize::{BotIdentity, FileRef, read_update};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("the Bot API refused {call}: {description}")]
    Api { call: &'static str, description: String },
    #[error("the Bot API asked to wait {0:?}")]
    RetryAfter(Duration),
    #[error("cannot reach the Bot API for {call}: {reason}")]
    Network { call: &'static str, reason: String },
    #[error("{0}")]
    File(String),
}

/// A reqwest error without its URL.
pub(crate) fn network_reason(err: &reqwest::Error) -> String {
    let reason = err.to_string();
    match err.url() {
        Some(url) => reason.replace(url.as_str(), "<Bot API>"),
        None => reason,
    }
}

/// A teloxide error in words that hold no URL (and so no token).
pub(crate) fn describe(error: &RequestError) -> String {
    match error {
        RequestError::Api(api) => api.to_string(),
        RequestError::RetryAfter(seconds) => format!("retry after {} s", seconds.seconds()),
        RequestError::MigrateToChatId(chat) => format!("the group became supergroup {}", chat.0),
        RequestError::Network(err) => network_reason(err),
        RequestError::InvalidJson { .. } => "the Bot API answered with JSON teloxide cannot read".into(),
        RequestError::Io(err) => err.to_string(),
    }
}

fn client_error(call: &'static str, error: RequestError) -> ClientError {
    match &error {
        RequestError::RetryAfter(seconds) => ClientError::RetryAfter(seconds.duration()),
        RequestError::Api(_) => ClientError::Api {
            call,
            description: describe(&error),
        },
        _ => ClientError::Network {
            call,
            reason: describe(&error),
        },
    }
}

/// The teloxide bot for an inbox, on its API server.
pub fn bot(settings: &TelegramSettings, http: reqwest::Client) -> Result<Bot, String> {
    let url = reqwest::Url::parse(&format!("{}/", settings.api_url)).map_err(|err| format!("api_url: {err}"))?;
    Ok(Bot::with_client(settings.token.0.clone(), http).set_api_url(url))
}

pub async fn identity(bot: &Bot) -> Result<BotIdentity, ClientError> {
    let me = bot.get_me().await.map_err(|err| client_error("getMe", err))?;
    Ok(BotIdentity {
        id: me.id.0,
        username: me.username.clone().unwrap_or_default(),
    })
}

/// One update as `getUpdates` gave it: read, or not readable (kept for the log).
#[derive(Debug)]
pub enum Fetched {
    Update(Box<Update>),
    /// An entry this version cannot read: skipped, its id still moves the offset.
    Unreadable {
        update_id: Option<i64>,
        error: String,
    },
}

/// `getUpdates` from `offset`, held open up to `timeout`. Entries are read one by one,
/// so one malformed entry costs that entry, not the batch.
pub async fn updates(
    http: &reqwest::Client,
    settings: &TelegramSettings,
    offset: i64,
    timeout: Duration,
) -> Result<Vec<Fetched>, ClientError> {
    let call = "getUpdates";
    let url = format!("{}/bot{}/getUpdates", settings.api_url, settings.token.0);
    let body = json!({
        "offset": offset,
        "timeout": timeout.as_secs(),
        "allowed_updates": ["message", "edited_message", "callback_query", "my_chat_member"],
    });
    let response = http
        .post(url)
        .json(&body)
        .timeout(timeout + Duration::from_secs(15))
        .send()
        .await
        .map_err(|err| ClientError::Network {
            call,
            reason: err.without_url().to_string(),
        })?;
    let answer: Value = response.json().await.map_err(|err| ClientError::Network {
        call,
        reason: err.without_url().to_string(),
    })?;
    if answer["ok"] != true {
        if let Some(seconds) = answer["parameters"]["retry_after"].as_u64() {
            return Err(ClientError::RetryAfter(Duration::from_secs(seconds)));
        }
        return Err(ClientError::Api {
            call,
            description: answer["description"].as_str().unwrap_or("no description").to_owned(),
        });
    }
    let Some(entries) = answer["result"].as_array() else {
        return Err(ClientError::Api {
            call,
            description: "the answer has no result list".into(),
        });
    };
    Ok(entries
        .iter()
        .map(|entry| match read_update(entry) {
            Ok(update) => Fetched::Update(Box::new(update)),
            Err(error) => Fetched::Unreadable {
                update_id: entry["update_id"].as_i64(),
                error,
            },
        })
        .collect())
}

/// Downloads a file the customer sent, refusing one over `max_bytes` before fetching.
pub async fn fetch_file(bot: &Bot, file: &FileRef, max_bytes: u64) -> Result<Vec<u8>, ClientError> {
    if file.size > max_bytes {
        return Err(ClientError::File(format!(
            "{} is {} bytes, over this inbox's limit of {max_bytes}",
            file.filename, file.size
        )));
    }
    let meta = bot
        .get_file(FileId(file.file_id.clone()))
        .await
        .map_err(|err| client_error("getFile", err))?;
    if u64::from(meta.meta.size) > max_bytes {
        return Err(ClientError::File(format!(
            "{} is {} bytes, over this inbox's limit of {max_bytes}",
            file.filename, meta.meta.size
        )));
    }
    let mut bytes = Vec::with_capacity(meta.meta.size as usize);
    bot.download_file(&meta.path, &mut bytes)
        .await
        .map_err(|err| ClientError::Network {
            call: "file download",
            reason: match err {
                teloxide::DownloadError::Network(err) => network_reason(&err),
                teloxide::DownloadError::Io(err) => err.to_string(),
            },
        })?;
    Ok(bytes)
}

/// Registers the webhook with its secret (checked on every request), or removes it
/// for long polling (Telegram refuses `getUpdates` while a webhook is set).
pub async fn set_webhook(bot: &Bot, url: Option<(&str, &str)>) -> Result<(), ClientError> {
    match url {
        Some((url, secret)) => {
            let url = reqwest::Url::parse(url).map_err(|err| ClientError::Api {
                call: "setWebhook",
                description: format!("webhook_url: {err}"),
            })?;
            teloxide::payloads::SetWebhookSetters::secret_token(bot.set_webhook(url), secret.to_owned())
                .await
                .map_err(|err| client_error("setWebhook", err))?;
        }
        None => {
            bot.delete_webhook()
                .await
                .map_err(|err| client_error("deleteWebhook", err))?;
        }
    }
    Ok(())
}

pub async fn answer_callback(bot: &Bot, query_id: &str) -> Result<(), ClientError> {
    bot.answer_callback_query(CallbackQueryId(query_id.to_owned()))
        .await
        .map_err(|err| client_error("answerCallbackQuery", err))?;
    Ok(())
}
