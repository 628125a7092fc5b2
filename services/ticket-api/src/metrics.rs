//! The ticket API's Prometheus metrics (one struct; each field's doc is its help text) and
//! the middleware that records HTTP requests.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web;
use prometheus::core::Collector;
use prometheus::{
    Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry,
};
use std::time::Instant;

const NAMESPACE: &str = "kanban_ticket_api";

/// Latency buckets from 0.5 ms to 5 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Metrics of one application instance, in its own registry (tests run several at once).
/// The help text of each metric is the doc comment of its field; `docs/metrics.md` lists them.
pub struct ApiMetrics {
    pub registry: Registry,
    /// HTTP requests handled, by method, route pattern and status code.
    pub http_requests_total: IntCounterVec,
    /// HTTP request latency in seconds, by method and route pattern.
    pub http_request_duration_seconds: HistogramVec,
    /// Postgres connections checked out of the pool (a board cache hit takes none).
    pub db_connections_acquired_total: IntCounter,
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
}

fn counter(name: &str, help: &str) -> Result<IntCounter, prometheus::Error> {
    IntCounter::with_opts(Opts::new(name, help).namespace(NAMESPACE))
}

impl ApiMetrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let metrics = ApiMetrics {
            registry: Registry::new(),
            http_requests_total: IntCounterVec::new(
                Opts::new(
                    "http_requests_total",
                    "HTTP requests handled, by method, route pattern and status code.",
                )
                .namespace(NAMESPACE),
                &["method", "route", "status"],
            )?,
            http_request_duration_seconds: HistogramVec::new(
                HistogramOpts::new(
                    "http_request_duration_seconds",
                    "HTTP request latency in seconds, by method and route pattern.",
                )
                .namespace(NAMESPACE)
                .buckets(LATENCY_BUCKETS.to_vec()),
                &["method", "route"],
            )?,
            db_connections_acquired_total: counter(
                "db_connections_acquired_total",
                "Postgres connections checked out of the pool (a board cache hit takes none).",
            )?,
            cache_hits_total: counter(
                "cache_hits_total",
                "Board snapshot reads answered from the Redis cache.",
            )?,
            cache_misses_total: counter(
                "cache_misses_total",
                "Board snapshot reads that went to Postgres.",
            )?,
            cache_invalidations_total: counter(
                "cache_invalidations_total",
                "Committed changes that invalidated a cached board.",
            )?,
            cache_errors_total: counter(
                "cache_errors_total",
                "Cache operations that failed (Redis unreachable); the request went to Postgres.",
            )?,
            idempotent_replays_total: counter(
                "idempotent_replays_total",
                "Mutations answered from an earlier request with the same Idempotency-Key.",
            )?,
            outbox_published_total: counter(
                "outbox_published_total",
                "Events published to Redis by the outbox relay.",
            )?,
            outbox_duplicates_skipped_total: counter(
                "outbox_duplicates_skipped_total",
                "Events the relay re-sent after a crash and Redis dropped as already published.",
            )?,
            relay_failures_total: counter(
                "relay_failures_total",
                "Failed attempts of the relay to publish to Redis (each is retried with backoff).",
            )?,
            outbox_lag_seconds: Gauge::with_opts(
                Opts::new(
                    "outbox_lag_seconds",
                    "Seconds since the oldest unpublished event was committed (0 when none; reported by the relay replica).",
                )
                .namespace(NAMESPACE),
            )?,
            outbox_publish_delay_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "outbox_publish_delay_seconds",
                    "Seconds from commit to publish to Redis, per event.",
                )
                .namespace(NAMESPACE)
                .buckets(LATENCY_BUCKETS.to_vec()),
            )?,
            relay_leader: IntGauge::with_opts(
                Opts::new(
                    "relay_leader",
                    "1 while this replica is the outbox relay, else 0.",
                )
                .namespace(NAMESPACE),
            )?,
        };
        let collectors: Vec<Box<dyn Collector>> = vec![
            Box::new(metrics.http_requests_total.clone()),
            Box::new(metrics.http_request_duration_seconds.clone()),
            Box::new(metrics.db_connections_acquired_total.clone()),
            Box::new(metrics.cache_hits_total.clone()),
            Box::new(metrics.cache_misses_total.clone()),
            Box::new(metrics.cache_invalidations_total.clone()),
            Box::new(metrics.cache_errors_total.clone()),
            Box::new(metrics.idempotent_replays_total.clone()),
            Box::new(metrics.outbox_published_total.clone()),
            Box::new(metrics.outbox_duplicates_skipped_total.clone()),
            Box::new(metrics.relay_failures_total.clone()),
            Box::new(metrics.outbox_lag_seconds.clone()),
            Box::new(metrics.outbox_publish_delay_seconds.clone()),
            Box::new(metrics.relay_leader.clone()),
        ];
        for collector in collectors {
            metrics.registry.register(collector)?;
        }
        Ok(metrics)
    }
}

/// Records every request under its route pattern (never the raw path, which would carry
/// ids and make label values unbounded).
pub async fn record(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let metrics = req
        .app_data::<web::Data<crate::startup::AppState>>()
        .map(|s| s.metrics.clone());
    // Only standard methods become label values; anything else is "other".
    let method = match req.method().as_str() {
        m @ ("GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD" | "OPTIONS") => m,
        _ => "other",
    }
    .to_owned();
    let response = next.call(req).await?;
    if let Some(metrics) = metrics {
        let route = response
            .request()
            .match_pattern()
            .unwrap_or_else(|| "unmatched".to_owned());
        let status = response.status().as_u16().to_string();
        metrics
            .http_requests_total
            .with_label_values(&[&method, &route, &status])
            .inc();
        metrics
            .http_request_duration_seconds
            .with_label_values(&[&method, &route])
            .observe(started.elapsed().as_secs_f64());
    }
    Ok(response)
}
