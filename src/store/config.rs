//! `[storage]`: which database the store opens, and how many connections a daemon
//! keeps to a PostgreSQL server.

use std::time::Duration;

use serde::Deserialize;

use crate::config::error::{ConfigError, positive_duration};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// Store URL. `sqlite://PATH` (relative paths are from the working directory; the
    /// file and its folder are created when missing), or `postgres://USER:PASSWORD@HOST:PORT/DATABASE`
    /// (libpq's URL form; `?sslmode=require` and the other libpq parameters apply).
    #[serde(default = "default_storage_url")]
    pub url: String,
    /// PostgreSQL: the most connections this daemon holds. Each unit of work and each
    /// read holds one while it runs; several daemons on one server each hold their own,
    /// so keep their sum under the server's `max_connections`.
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// PostgreSQL: how long opening a connection, or waiting for a free one, may take
    /// before the request fails as unavailable.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: String,
}

fn default_storage_url() -> String {
    "sqlite://data/switchboard.db".into()
}

fn default_max_connections() -> u32 {
    16
}

fn default_connect_timeout() -> String {
    "5s".into()
}

impl Default for StorageConfig {
    fn default() -> StorageConfig {
        StorageConfig {
            url: default_storage_url(),
            max_connections: default_max_connections(),
            connect_timeout: default_connect_timeout(),
        }
    }
}

/// Which backend a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn of(url: &str) -> Option<Backend> {
        if url.starts_with("sqlite:") {
            Some(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Backend::Postgres)
        } else {
            None
        }
    }
}

/// `[storage]`, checked.
#[derive(Debug, Clone)]
pub struct StorageSettings {
    pub url: String,
    pub backend: Backend,
    pub max_connections: u32,
    pub connect_timeout: Duration,
}

impl StorageSettings {
    /// The URL without its password, for messages and logs.
    pub fn shown_url(&self) -> String {
        let hidden = self.url.split_once("://").and_then(|(scheme, rest)| {
            let (credentials, host) = rest.rsplit_once('@')?;
            let (user, _password) = credentials.split_once(':')?;
            Some(format!("{scheme}://{user}:***@{host}"))
        });
        hidden.unwrap_or_else(|| self.url.clone())
    }
}

impl StorageConfig {
    /// Refuses a URL no backend here speaks, and a pool that cannot serve.
    pub fn validate(&self) -> Result<StorageSettings, ConfigError> {
        let Some(backend) = Backend::of(&self.url) else {
            return Err(ConfigError::new(
                "storage.url",
                format!(
                    "`{}` is not supported: use sqlite://PATH (such as sqlite://data/switchboard.db) \
                     or postgres://USER:PASSWORD@HOST:PORT/DATABASE",
                    self.url
                ),
            ));
        };
        if self.max_connections < 2 {
            return Err(ConfigError::new(
                "storage.max_connections",
                "must be at least 2: the workers and the API each need a connection",
            ));
        }
        let connect_timeout = positive_duration("storage.connect_timeout", &self.connect_timeout)?;
        Ok(StorageSettings {
            url: self.url.clone(),
            backend,
            max_connections: self.max_connections,
            connect_timeout,
        })
    }
}
