//! An inbound webhook body, as the listener hands it over after the signature check:
//! any bytes give an `InboundMessage` or a `BodyError`, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    let _ = switchboard_connector_webhook::parse_body(body);
});
