//! The ticket API's typed settings, loaded in layers by `kanban_config`.

use kanban_auth::AuthSettings;
use kanban_telemetry::LogSettings;
use secrecy::SecretString;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct Settings {
    pub http: HttpSettings,
    pub database: DatabaseSettings,
    pub auth: AuthSettings,
    pub log: LogSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct HttpSettings {
    pub host: String,
    /// 0 picks a free port (tests).
    pub port: u16,
    /// Largest accepted JSON body; larger ones get 413 PAYLOAD_TOO_LARGE.
    pub max_body_bytes: usize,
    /// Worker threads; the number of cores when unset.
    pub workers: Option<usize>,
    /// Seconds to finish in-flight requests after SIGTERM.
    pub shutdown_timeout_seconds: u64,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            host: "127.0.0.1".into(),
            port: 8080,
            max_body_bytes: 64 * 1024,
            workers: None,
            shutdown_timeout_seconds: 10,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct DatabaseSettings {
    /// `postgres://user:password@host:port/database`
    pub url: SecretString,
    pub pool_size: usize,
    /// How long a request waits for a pooled connection (or a new one) before 503.
    pub acquire_timeout_ms: u64,
    /// Run pending migrations at start-up (under an advisory lock, so replicas may race).
    pub migrate_on_start: bool,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        DatabaseSettings {
            url: SecretString::from("postgres://postgres@127.0.0.1:5432/kanban".to_string()),
            pool_size: 16,
            acquire_timeout_ms: 2000,
            migrate_on_start: true,
        }
    }
}
