//! The daemon's side of the fake: a Telegram inbox of Switchboard's config that polls it.
//! Shared by the test crates that run the daemon with a bot (tests/blackbox,
//! tests/escalation).

use std::path::Path;

use crate::FakeTelegram;

/// A Telegram inbox `key` (TOML) polling `fake` as the bot `token`, written to a token
/// file in `dir`; `extra` adds to its table.
pub fn telegram_inbox(dir: &Path, key: &str, token: &str, fake: &FakeTelegram, extra: &str) -> String {
    let token_file = dir.join(format!("{key}.token"));
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    format!(
        r#"
[inboxes.{key}]
name = "Bot {key}"

[inboxes.{key}.telegram]
token_file = "{token_file}"
api_url = "{api}"
poll_timeout = "5s"
{extra}
"#,
        token_file = token_file.display(),
        api = fake.url().trim_end_matches('/'),
    )
}
