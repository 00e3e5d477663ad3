//! A Bot API update as polling or the webhook delivers it: read as the connector reads
//! it (`read_update_bytes`, into teloxide's `Update`), then the Telegram connector's
//! normalization.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_connector_telegram::{BotIdentity, normalize, read_update_bytes};

fuzz_target!(|json: &[u8]| {
    let Ok(update) = read_update_bytes(json) else {
        return;
    };
    let bot = BotIdentity {
        id: 5_000_000_001,
        username: "ShopHelpBot".into(),
    };
    let _ = normalize(&update, &bot);
});
