//! Starts the ticket API: `ticket-api [--config FILE] [--healthcheck]`.
//!
//! `--healthcheck` starts nothing: it GETs the `/healthz` of the API that this
//! configuration describes and exits 0 or 1 (the container image's `HEALTHCHECK`).

use std::process::ExitCode;
use ticket_api::{Application, Settings};

#[actix_web::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let config_file = kanban_config::process::config_file(&args);
    let healthcheck = args.iter().any(|arg| arg == "--healthcheck");
    let settings: Settings = match kanban_config::load_with_lists(
        config_file.as_deref(),
        kanban_config::redis::LIST_KEYS,
    ) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("ticket-api: configuration error: {error}");
            // Docker reserves exit code 2 of a health check; 1 is "unhealthy".
            return ExitCode::from(if healthcheck { 1 } else { 2 });
        }
    };
    if healthcheck {
        return kanban_telemetry::healthcheck::run(
            "ticket-api",
            &settings.http.host,
            settings.http.port,
        );
    }
    // The tracer provider belongs to this function: it is shut down (and what is queued
    // exported) after the server stops.
    let tracing = match kanban_telemetry::trace::Tracing::start(&settings.trace, "ticket-api", "") {
        Ok(tracing) => tracing,
        Err(error) => {
            eprintln!("ticket-api: tracing: {error}");
            return ExitCode::from(2);
        }
    };
    kanban_telemetry::init_logging(&settings.log, &tracing);
    if tracing.is_enabled() {
        tracing::info!(endpoint = %settings.trace.endpoint, "exporting traces over OTLP");
    }
    let application = match Application::build(settings).await {
        Ok(application) => application,
        Err(error) => {
            tracing::error!(%error, "ticket-api failed to start");
            tracing.shutdown();
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(port = application.port(), "ticket-api listening");
    let served = application
        .run_until(kanban_config::process::terminate())
        .await;
    tracing.shutdown();
    match served {
        Ok(()) => {
            tracing::info!("ticket-api stopped");
            ExitCode::SUCCESS
        }
        Err(error) => {
            tracing::error!(%error, "ticket-api server error");
            ExitCode::FAILURE
        }
    }
}
