//! The Redis settings the ticket API and the gateways must agree on: one struct, read
//! from `[redis]` by both services (`key_prefix` in particular must be the same on both).

use secrecy::SecretString;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct RedisSettings {
    pub url: SecretString,
    /// Prefix of every key and channel (see `kanban_protocol::redis_keys`): the same in
    /// the API and every gateway, or they do not see each other's events.
    pub key_prefix: String,
    /// Per-command timeout; a slow Redis must not stall requests or sessions.
    pub response_timeout_ms: u64,
    /// Timeout of each connection attempt.
    pub connect_timeout_ms: u64,
}

impl Default for RedisSettings {
    fn default() -> Self {
        RedisSettings {
            url: SecretString::from("redis://127.0.0.1:6379".to_string()),
            key_prefix: "kanban".into(),
            response_timeout_ms: 1000,
            connect_timeout_ms: 1000,
        }
    }
}
