//! The operational endpoints: `/healthz` (the process answers), `/readyz` (draining, or
//! Redis unreachable in board mode, is not ready) and `/metrics`.

use crate::broker::Broker;
use crate::metrics::GatewayMetrics;
use actix_web::{web, HttpResponse};
use kanban_protocol::ops::{CheckState, Health, HealthChecks};
use std::sync::Arc;
use tokio::sync::watch;

/// What the operational endpoints look at.
pub struct Ops {
    pub draining: watch::Receiver<bool>,
    /// `None` in echo mode (no Redis).
    pub broker: Option<Arc<Broker>>,
    pub metrics: Arc<GatewayMetrics>,
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(metrics));
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health::OK)
}

/// Not ready while draining, or (in board mode) while Redis does not answer.
async fn readyz(ops: web::Data<Ops>) -> HttpResponse {
    let response = readiness(&ops).await;
    ops.metrics.readiness(response.status().is_success());
    response
}

async fn readiness(ops: &Ops) -> HttpResponse {
    if *ops.draining.borrow() {
        return HttpResponse::ServiceUnavailable().json(Health::DRAINING);
    }
    if let Some(broker) = &ops.broker {
        if !broker.ping().await {
            tracing::warn!("readiness check failed: Redis does not answer");
            let checks = HealthChecks {
                redis: Some(CheckState::Unavailable),
                ..HealthChecks::default()
            };
            return HttpResponse::ServiceUnavailable().json(Health::readiness(false, Some(checks)));
        }
    }
    HttpResponse::Ok().json(Health::readiness(true, None))
}

async fn metrics(ops: web::Data<Ops>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(kanban_telemetry::METRICS_CONTENT_TYPE)
        .body(kanban_telemetry::render(&ops.metrics.registry))
}
