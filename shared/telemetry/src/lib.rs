//! Logging set-up, the HTTP access log and request ids, Prometheus exposition and
//! OpenTelemetry traces shared by every service.
//!
//! # Layout
//! - [`init_logging`]: the global subscriber (plain text without colour codes unless stdout
//!   is a terminal, or JSON lines, and the OpenTelemetry layer when tracing is on).
//! - [`trace`]: the `trace` settings and the OTLP tracer provider ([`trace::Tracing`]).
//! - [`propagation`]: the W3C `traceparent` in and out of spans.
//! - [`http`]: HTTP metrics by route pattern, the `X-Request-Id` header and one access-log
//!   line per request.
//! - [`metric`]: [`metrics_struct!`], a service's metrics as one struct whose field docs
//!   are the help text.
//! - [`striped`]: counters and histograms with a stripe per thread, for per-delivery paths.
//! - [`process`]: `process_*` metrics and `<namespace>_build_info`.
//! - [`render`]: the text exposition of a registry.
//! - [`healthcheck`]: the `--healthcheck` probe of the container images.

pub mod healthcheck;
pub mod http;
pub mod metric;
pub mod process;
pub mod propagation;
pub mod striped;
pub mod trace;

pub use prometheus;

use prometheus::{Encoder, Registry, TextEncoder};
use serde::Deserialize;
use std::io::IsTerminal;
use tracing_subscriber::{fmt, prelude::*, EnvFilter, Layer};

/// Log output settings, part of every service's configuration as `log`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct LogSettings {
    /// An `EnvFilter` directive, e.g. `info,ticket_api=debug`. `RUST_LOG` wins when set.
    pub filter: String,
    /// One JSON object per line instead of human-readable lines.
    pub json: bool,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            filter: "info".into(),
            json: false,
        }
    }
}

/// Installs the global tracing subscriber, writing to stdout, with `tracing`'s layer when
/// it is enabled. Only `main` calls this (tests of traces too, once per process); a second
/// call leaves the first subscriber in place.
///
/// Plain text carries ANSI colour codes only when stdout is a terminal: in a file, a pipe
/// or a container log they would be noise that every reader has to strip.
///
/// The log filter (`log.filter` or `RUST_LOG`) applies to the log lines only; exported
/// spans have their own filter (`trace.filter`), so quiet logs do not silence traces.
pub fn init_logging(settings: &LogSettings, tracing: &trace::Tracing) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let output: Box<dyn Layer<tracing_subscriber::Registry> + Send + Sync> = if settings.json {
        fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_filter(filter)
            .boxed()
    } else {
        fmt::layer()
            .with_ansi(std::io::stdout().is_terminal())
            .with_filter(filter)
            .boxed()
    };
    let result = tracing_subscriber::registry()
        .with(output)
        .with(tracing.layer())
        .try_init();
    if result.is_err() {
        tracing::debug!("a tracing subscriber was already installed");
    }
}

/// Renders a registry in the Prometheus text exposition format.
pub fn render(registry: &Registry) -> String {
    let mut buffer = Vec::new();
    if let Err(error) = TextEncoder::new().encode(&registry.gather(), &mut buffer) {
        tracing::error!(%error, "failed to encode metrics");
    }
    String::from_utf8(buffer).unwrap_or_default()
}

/// The content type of [`render`]'s output.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
