//! The ticket API's Prometheus metrics (one struct; each field's doc is its help text) and
//! the middleware that records HTTP requests.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};
use std::time::Instant;

const NAMESPACE: &str = "kanban_ticket_api";

/// Metrics of one application instance, in its own registry (tests run several at once).
pub struct ApiMetrics {
    pub registry: Registry,
    /// HTTP requests handled, by method, route pattern and status code.
    pub http_requests_total: IntCounterVec,
    /// HTTP request latency in seconds, by method and route pattern.
    pub http_request_duration_seconds: HistogramVec,
}

impl ApiMetrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let http_requests_total = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests handled, by method, route pattern and status code.",
            )
            .namespace(NAMESPACE),
            &["method", "route", "status"],
        )?;
        let http_request_duration_seconds = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "HTTP request latency in seconds, by method and route pattern.",
            )
            .namespace(NAMESPACE)
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            &["method", "route"],
        )?;
        registry.register(Box::new(http_requests_total.clone()))?;
        registry.register(Box::new(http_request_duration_seconds.clone()))?;
        Ok(ApiMetrics {
            registry,
            http_requests_total,
            http_request_duration_seconds,
        })
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
    let method = req.method().as_str().to_owned();
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
