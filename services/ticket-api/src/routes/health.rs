//! Liveness, readiness and metrics endpoints.

use crate::db;
use crate::state::AppState;
use actix_web::{web, HttpResponse};
use kanban_protocol::ops::{CheckState, Health, HealthChecks};
use std::time::Duration;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health::OK)
}

/// Ready when Postgres answers a query within the pool's acquire timeout.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let check = async {
        let mut conn = state.pool.get().await.map_err(|e| e.to_string())?;
        db::ping(&mut conn).await.map_err(|e| e.to_string())
    };
    let postgres = match tokio::time::timeout(Duration::from_secs(3), check).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(error),
        Err(_) => Err("timed out".to_owned()),
    };
    state.metrics.readiness(postgres.is_ok());
    let checks = |state| HealthChecks {
        postgres: Some(state),
        ..HealthChecks::default()
    };
    match postgres {
        Ok(()) => HttpResponse::Ok().json(Health::readiness(true, Some(checks(CheckState::Ok)))),
        Err(error) => {
            tracing::warn!(%error, "readiness check failed");
            HttpResponse::ServiceUnavailable().json(Health::readiness(
                false,
                Some(checks(CheckState::Unavailable)),
            ))
        }
    }
}

pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    state.metrics.observe_pool(state.pool.status());
    HttpResponse::Ok()
        .content_type(kanban_telemetry::METRICS_CONTENT_TYPE)
        .body(kanban_telemetry::render(&state.metrics.registry))
}
