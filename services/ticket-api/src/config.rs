//! The ticket API's typed settings, loaded in layers by `kanban_config`.

use kanban_auth::AuthSettings;
use kanban_telemetry::trace::TraceSettings;
use kanban_telemetry::LogSettings;
use secrecy::SecretString;
use serde::Deserialize;

/// Shared with the gateways, which must agree on `key_prefix`.
pub use kanban_config::RedisSettings;

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct Settings {
    pub http: HttpSettings,
    pub database: DatabaseSettings,
    pub redis: RedisSettings,
    pub relay: RelaySettings,
    pub cache: CacheSettings,
    pub idempotency: IdempotencySettings,
    /// Load shedding of writes: the per-board write gate.
    pub limits: LimitsSettings,
    pub auth: AuthSettings,
    pub log: LogSettings,
    /// OpenTelemetry trace export (off unless `trace.endpoint` is set).
    pub trace: TraceSettings,
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

/// The outbox relay: publishes committed events to Redis, in order, from one replica.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct RelaySettings {
    /// Whether this replica takes part in relaying (one replica relays at a time).
    pub enabled: bool,
    /// Events read from the outbox per query.
    pub batch_size: i64,
    /// Safety sweep interval: the relay also wakes on commit (in-process) and on
    /// LISTEN/NOTIFY from other replicas.
    pub sweep_interval_ms: u64,
    /// How often a replica that is not the relay tries to become it.
    pub leader_retry_ms: u64,
    /// Recent history kept per project in Redis (entries, approximate).
    pub history_max_len: u64,
    /// Idle time after which a project's Redis history expires.
    pub history_ttl_seconds: u64,
    /// Published events older than this are deleted from Postgres (0 keeps them forever).
    pub retention_days: u64,
    /// Longest wait between retries while Redis is unreachable.
    pub max_backoff_ms: u64,
}

impl Default for RelaySettings {
    fn default() -> Self {
        RelaySettings {
            enabled: true,
            batch_size: 500,
            sweep_interval_ms: 1000,
            leader_retry_ms: 1000,
            history_max_len: 1000,
            history_ttl_seconds: 24 * 3600,
            retention_days: 30,
            max_backoff_ms: 2000,
        }
    }
}

/// Cache-aside board snapshots in Redis.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct CacheSettings {
    pub enabled: bool,
    pub ttl_seconds: u64,
}

impl Default for CacheSettings {
    fn default() -> Self {
        CacheSettings {
            enabled: true,
            ttl_seconds: 60,
        }
    }
}

/// Replays of mutations that carry an `Idempotency-Key`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct IdempotencySettings {
    /// How long a key's first result is remembered.
    pub ttl_seconds: u64,
}

impl Default for IdempotencySettings {
    fn default() -> Self {
        IdempotencySettings {
            ttl_seconds: 24 * 3600,
        }
    }
}

/// The per-board write gate: writes to one board wait for a permit in-process, holding no
/// database connection, and are shed early when the board is too busy.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct LimitsSettings {
    /// Writes to one board that may hold a database connection at once (at least 1). Only
    /// one of them holds the board's row lock; the others are ready to take it next.
    pub writers_per_board: usize,
    /// Writes to one board that may wait for a permit; one more is refused at once with
    /// 429 RATE_LIMITED.
    pub queued_writes_per_board: usize,
    /// Longest wait for a permit; a write that waited longer gets 503 UNAVAILABLE.
    pub write_queue_timeout_ms: u64,
}

impl Default for LimitsSettings {
    fn default() -> Self {
        LimitsSettings {
            writers_per_board: 2,
            queued_writes_per_board: 32,
            write_queue_timeout_ms: 1000,
        }
    }
}
