//! One raw mail as IMAP delivers it, through the email connector's normalization
//! (mail-parser, HTML to text, quotes, bounces). The first byte picks a small attachment
//! limit now and then, so the dropping path is reached too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_connector_email::{Limits, parse};

fuzz_target!(|raw: &[u8]| {
    let limits = match raw.first() {
        Some(b) if b % 4 == 0 => Limits {
            max_attachment_bytes: usize::from(*b) * 16,
        },
        _ => Limits::default(),
    };
    let _ = parse(raw, limits);
});
