//! Standard Webhooks headers and a body through the signature check the listener runs
//! before parsing: `switchboard_connector_webhook::verify`. The input is
//! `flags id NUL timestamp NUL signature NUL body`; headers that are not valid header
//! bytes are left out, as the HTTP server would refuse them. Flag bit 0 appends the real
//! signature of the input (so the matching path is reached), bit 1 checks against two
//! secrets (a rotation). "Now" is the spec's test-vector time, so its seed verifies.
#![no_main]

use std::sync::LazyLock;

use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use switchboard_connector_webhook::signature::{HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP};
use switchboard_connector_webhook::{Secret, verify};

const NOW: i64 = 1_614_265_330;
const TOLERANCE_SECS: i64 = 300;

static SECRETS: LazyLock<[Secret; 2]> = LazyLock::new(|| {
    [
        Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap(),
        Secret::parse("whsec_BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=").unwrap(),
    ]
});

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let mut fields = rest.splitn(4, |&b| b == 0);
    let id = fields.next().unwrap_or_default();
    let timestamp = fields.next().unwrap_or_default();
    let signature = fields.next().unwrap_or_default();
    let body = fields.next().unwrap_or_default();

    let mut signature = signature.to_vec();
    if flags & 1 == 1
        && let (Ok(id), Some(timestamp)) = (
            std::str::from_utf8(id),
            std::str::from_utf8(timestamp).ok().and_then(|t| t.trim().parse().ok()),
        )
    {
        signature.extend_from_slice(b" ");
        signature.extend_from_slice(SECRETS[0].sign(id.trim(), timestamp, body).as_bytes());
    }
    let mut headers = HeaderMap::new();
    for (name, value) in [(HEADER_ID, id), (HEADER_TIMESTAMP, timestamp), (HEADER_SIGNATURE, &signature)] {
        if let Ok(value) = HeaderValue::from_bytes(value) {
            headers.insert(name, value);
        }
    }
    let secrets = if flags & 2 == 2 { &SECRETS[..] } else { &SECRETS[..1] };
    let _ = verify(secrets, &headers, body, NOW, TOLERANCE_SECS);
});
