//! `[server]`: where the HTTP interface listens and how long it lets open requests finish
//! at shutdown.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use crate::config::error::{ConfigError, duration};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address of the HTTP listener (hooks, agent API, health). Port 0 picks a free port;
    /// the daemon prints the address it bound on standard output.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// How long shutdown waits for open HTTP requests to finish.
    #[serde(default = "default_shutdown_grace")]
    pub shutdown_grace: String,
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}

fn default_shutdown_grace() -> String {
    "10s".into()
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            listen: default_listen(),
            shutdown_grace: default_shutdown_grace(),
        }
    }
}

impl ServerConfig {
    /// The listen address and the HTTP shutdown grace.
    pub fn validate(&self) -> Result<(SocketAddr, Duration), ConfigError> {
        let listen: SocketAddr = self.listen.parse().map_err(|_| {
            ConfigError::new(
                "server.listen",
                format!("`{}` is not an address such as 127.0.0.1:8080", self.listen),
            )
        })?;
        let shutdown_grace = duration("server.shutdown_grace", &self.shutdown_grace)?;
        Ok((listen, shutdown_grace))
    }
}
