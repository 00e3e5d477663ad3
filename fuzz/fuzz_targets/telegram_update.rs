//! A Bot API update as polling or the webhook delivers it: JSON into teloxide's `Update`
//! (as the connector reads it), then the Telegram connector's normalization.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_connector_telegram::{BotIdentity, normalize};
use teloxide::types::Update;

fuzz_target!(|json: &[u8]| {
    let Ok(update) = serde_json::from_slice::<Update>(json) else {
        return;
    };
    let bot = BotIdentity {
        id: 5_000_000_001,
        username: "ShopHelpBot".into(),
    };
    let _ = normalize(&update, &bot);
});
