//! Starts a gateway: `gateway [--config FILE] [--conformance] [--healthcheck]`.
//!
//! `--healthcheck` starts nothing: it GETs the `/healthz` of the gateway that this
//! configuration describes and exits 0 or 1 (the container image's `HEALTHCHECK`).
//!
//! `--conformance` starts the echo mode with the settings the official Socket.IO protocol
//! test-suite expects (localhost:3000, pingInterval 300, pingTimeout 200, connectTimeout
//! 1000, maxPayload 1e6).

use gateway::{Application, Settings};
use std::process::ExitCode;

#[actix_web::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let healthcheck = args.iter().any(|a| a == "--healthcheck");
    let settings = if args.iter().any(|a| a == "--conformance") {
        Ok(Settings::conformance())
    } else {
        kanban_config::load_with_lists::<Settings>(
            kanban_config::process::config_file(&args).as_deref(),
            &[
                &["gateway.allowed_origins"],
                kanban_config::redis::LIST_KEYS,
            ]
            .concat(),
        )
    };
    let settings = match settings {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("gateway: configuration error: {error}");
            // Docker reserves exit code 2 of a health check; 1 is "unhealthy".
            return ExitCode::from(if healthcheck { 1 } else { 2 });
        }
    };
    if healthcheck {
        return kanban_telemetry::healthcheck::run(
            "gateway",
            &settings.http.host,
            settings.http.port,
        );
    }
    // The tracer provider belongs to this function: it is shut down (and what is queued
    // exported) after the server stops.
    let tracing = match kanban_telemetry::trace::Tracing::start(
        &settings.trace,
        "gateway",
        &settings.gateway.instance_id,
    ) {
        Ok(tracing) => tracing,
        Err(error) => {
            eprintln!("gateway: tracing: {error}");
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
            tracing::error!(%error, "gateway failed to start");
            tracing.shutdown();
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(port = application.port(), "gateway listening");
    let served = application
        .run_until(kanban_config::process::terminate())
        .await;
    tracing.shutdown();
    match served {
        Ok(()) => {
            tracing::info!("gateway stopped");
            ExitCode::SUCCESS
        }
        Err(error) => {
            tracing::error!(%error, "gateway server error");
            ExitCode::FAILURE
        }
    }
}
