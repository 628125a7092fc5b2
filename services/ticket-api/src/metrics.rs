//! The ticket API's Prometheus metrics: one struct; each field's doc comment is its help
//! text (`docs/metrics.md` lists them all). HTTP requests, `process_*` and `build_info`
//! come with the struct from `kanban_telemetry`.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web;

/// The operations whose Redis errors `redis_errors_total` counts, registered at start so
/// that every series exists (at 0) before its first error.
pub const REDIS_OPERATIONS: &[&str] = &[
    "cache_read",
    "cache_write",
    "cache_invalidate",
    "relay_publish",
];

/// Why the write gate shed a write, as `writes_shed_total` labels it: its board's queue
/// was full (429), or it waited longer than `limits.write_queue_timeout_ms` (503).
pub const SHED_REASONS: &[&str] = &["queue_full", "queue_timeout"];

kanban_telemetry::metrics_struct! {
    /// Metrics of one application instance, in its own registry (tests run several at once).
    pub struct ApiMetrics in "kanban_ticket_api" {
        /// Postgres connections checked out of the pool (a board cache hit takes none).
        pub db_connections_acquired_total: IntCounter,
        /// Most connections the request pool may open (database.pool_size).
        pub db_pool_max_connections: IntGauge,
        /// Connections the request pool holds open, in use or idle (sampled at each scrape).
        pub db_pool_connections: IntGauge,
        /// Connections of the request pool lent to requests (sampled at each scrape).
        pub db_pool_connections_in_use: IntGauge,
        /// Requests waiting for a pool connection (sampled at each scrape).
        pub db_pool_waiting_requests: IntGauge,
        /// Redis commands that failed, by operation (cache_read, cache_write, cache_invalidate, relay_publish).
        pub redis_errors_total: IntCounterVec ["operation"],
        /// Board snapshot reads answered from the Redis cache.
        pub cache_hits_total: IntCounter,
        /// Board snapshot reads that went to Postgres.
        pub cache_misses_total: IntCounter,
        /// Committed changes that invalidated a cached board.
        pub cache_invalidations_total: IntCounter,
        /// Cache operations that failed (Redis unreachable); the request went to Postgres.
        pub cache_errors_total: IntCounter,
        /// Mutations answered from an earlier request with the same Idempotency-Key.
        pub idempotent_replays_total: IntCounter,
        /// Writes refused by their board's write gate before taking a connection, by reason (queue_full: 429, queue_timeout: 503).
        pub writes_shed_total: IntCounterVec ["reason"],
        /// Writes waiting at their board's write gate for a permit, holding no connection.
        pub write_gate_waiting: IntGauge,
        /// Boards with a write gate entry: a write holds or waits for one of its permits.
        pub write_gate_boards: IntGauge,
        /// Events published to Redis by the outbox relay.
        pub outbox_published_total: IntCounter,
        /// Events the relay re-sent after a crash and Redis dropped as already published.
        pub outbox_duplicates_skipped_total: IntCounter,
        /// Failed attempts of the relay to publish to Redis (each is retried with backoff).
        pub relay_failures_total: IntCounter,
        /// Seconds since the oldest unpublished event was committed (0 when none; reported by the relay replica).
        pub outbox_lag_seconds: Gauge,
        /// Seconds from commit to publish to Redis, per event.
        pub outbox_publish_delay_seconds: Histogram,
        /// 1 while this replica is the outbox relay, else 0.
        pub relay_leader: IntGauge,
        /// 1 when the last readiness check passed, 0 when it failed (before the first check: 1).
        pub ready: IntGauge,
        /// Times the readiness check's answer changed (ready to not ready or back).
        pub readiness_changes_total: IntCounter,
    }
}

impl ApiMetrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let metrics = Self::build()?;
        for operation in REDIS_OPERATIONS {
            metrics.redis_errors_total.with_label_values(&[operation]);
        }
        for reason in SHED_REASONS {
            metrics.writes_shed_total.with_label_values(&[reason]);
        }
        metrics.ready.set(1);
        Ok(metrics)
    }

    /// One failed Redis command of `operation` (one of [`REDIS_OPERATIONS`]).
    pub fn redis_error(&self, operation: &'static str) {
        self.redis_errors_total
            .with_label_values(&[operation])
            .inc();
    }

    /// Records the answer of a readiness check, counting a change of answer.
    pub fn readiness(&self, ready: bool) {
        let value = i64::from(ready);
        if self.ready.get() != value {
            self.readiness_changes_total.inc();
        }
        self.ready.set(value);
    }

    /// Samples the request pool (called at each scrape).
    pub fn observe_pool(&self, status: deadpool::Status) {
        let gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.db_pool_max_connections.set(gauge(status.max_size));
        self.db_pool_connections.set(gauge(status.size));
        self.db_pool_connections_in_use
            .set(gauge(status.size.saturating_sub(status.available)));
        self.db_pool_waiting_requests.set(gauge(status.waiting));
    }
}

/// Gives every request its id, records it under its route pattern and writes its
/// access-log line (see [`kanban_telemetry::http::observe`]). The metrics are the
/// application's `web::Data<ApiMetrics>` (the same instance as `AppState::metrics`).
pub async fn record(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let metrics = req
        .app_data::<web::Data<ApiMetrics>>()
        .map(|metrics| metrics.http.clone());
    kanban_telemetry::http::observe(metrics, req, next).await
}
