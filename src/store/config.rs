//! `[storage]`: which database the store opens.

use serde::Deserialize;

use crate::config::error::ConfigError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// Store URL. `sqlite://PATH` (relative paths are from the working directory; the
    /// file and its folder are created when missing).
    #[serde(default = "default_storage_url")]
    pub url: String,
}

fn default_storage_url() -> String {
    "sqlite://data/switchboard.db".into()
}

impl Default for StorageConfig {
    fn default() -> StorageConfig {
        StorageConfig {
            url: default_storage_url(),
        }
    }
}

impl StorageConfig {
    /// The store URL, refused unless a backend here speaks it (SQLite alone, today).
    pub fn validate(&self) -> Result<String, ConfigError> {
        if !self.url.starts_with("sqlite:") {
            return Err(ConfigError::new(
                "storage.url",
                format!(
                    "`{}` is not supported: use a sqlite:// URL such as sqlite://data/switchboard.db",
                    self.url
                ),
            ));
        }
        Ok(self.url.clone())
    }
}
