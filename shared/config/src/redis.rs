//! The Redis settings the ticket API and the gateways must agree on: one struct, read
//! from `[redis]` by both services (`key_prefix` in particular must be the same on both).

use secrecy::SecretString;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct RedisSettings {
    /// The single Redis server (used when `cluster_nodes` is empty).
    pub url: SecretString,
    /// Seed nodes of a Redis Cluster (`redis://[user:password@]host:port`, any few of its
    /// nodes): when set, both services run in cluster mode and `url` is ignored. The
    /// environment takes a comma-separated list (`KANBAN_REDIS__CLUSTER_NODES`).
    pub cluster_nodes: Vec<SecretString>,
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
            cluster_nodes: Vec::new(),
            key_prefix: "kanban".into(),
            response_timeout_ms: 1000,
            connect_timeout_ms: 1000,
        }
    }
}

/// The settings keys that the environment gives as comma-separated lists; each service's
/// `main` passes them to [`crate::load_with_lists`].
pub const LIST_KEYS: &[&str] = &["redis.cluster_nodes"];
