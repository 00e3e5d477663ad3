//! Status-update templates as configured: compiled and rendered with every event's
//! sample fields on every channel (`UpdatePolicy::compile`, what the daemon does at
//! start). The input is `event NUL language NUL text [NUL subject [NUL html [NUL markdown]]]`,
//! the event picked by the first byte of its part.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use switchboard::domain::updates::{TemplateSource, TemplateSources, UpdateEvent, UpdatePolicy, UpdateSettings};

/// The settings of a desk without an `[updates]` table: every event but `assigned`.
static SETTINGS: LazyLock<UpdateSettings> = LazyLock::new(|| UpdatePolicy::defaults().settings);

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.split('\0');
    let event = parts.next().unwrap_or_default();
    let event = UpdateEvent::parse(event).unwrap_or_else(|| {
        let index = event.bytes().next().map_or(0, usize::from);
        UpdateEvent::ALL[index % UpdateEvent::ALL.len()]
    });
    let language = parts.next().unwrap_or("en").to_owned();
    let source = TemplateSource {
        text: parts.next().unwrap_or_default().to_owned(),
        subject: parts.next().map(str::to_owned),
        html: parts.next().map(str::to_owned),
        markdown: parts.next().map(str::to_owned),
    };
    let sources = TemplateSources::from([((event, language), source)]);
    let _ = UpdatePolicy::compile(SETTINGS.clone(), sources);
});
