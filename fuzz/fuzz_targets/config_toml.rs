//! A config file's text through the daemon's reading and validation
//! (`switchboard::config::from_toml`): any text gives `Settings` or a `ConfigError`
//! naming a key, never a panic. No file and no environment is read: every secret a
//! config names is a well-formed stand-in, so validation goes past the inboxes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_connector_core::SecretSource;

struct StandIns;

impl SecretSource for StandIns {
    fn var(&self, _name: &str) -> Option<String> {
        Some("123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw".to_owned())
    }

    fn read_file(&self, _path: &str) -> std::io::Result<Vec<u8>> {
        Ok(b"123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw\n".to_vec())
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = switchboard::config::from_toml(text, &StandIns);
});
