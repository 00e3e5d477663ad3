//! A WhatsApp Cloud API webhook body as Meta POSTs it, through the connector's
//! normalization (`switchboard_connector_whatsapp::normalize`): any bytes give items or a
//! body error, never a panic. The signature is checked before this in the hook, but the
//! app secret is the only thing standing between the internet and this parser.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    let _ = switchboard_connector_whatsapp::normalize(body, "1122334455667");
});
