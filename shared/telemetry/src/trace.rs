//! OpenTelemetry traces: a service's `trace` settings and the OTLP tracer provider built
//! from them (off by default: no exporter, no export thread, no layer).

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracer, SdkTracerProvider,
};
use opentelemetry_sdk::Resource;
use serde::Deserialize;
use std::time::Duration;
use tracing_subscriber::registry::LookupSpan;

/// The path of the traces signal under an OTLP/HTTP receiver's base URL.
const TRACES_PATH: &str = "/v1/traces";

/// Trace export settings, part of every service's configuration as `trace`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct TraceSettings {
    /// The OTLP/HTTP receiver, e.g. `http://otel-collector:4318` (`/v1/traces` is added
    /// unless the URL already ends with it). Empty (the default): tracing is off.
    pub endpoint: String,
    /// The OTLP transport; only `http/protobuf` is built in.
    pub protocol: OtlpProtocol,
    /// The share of new traces that are recorded, 0.0 to 1.0. A request that carries a
    /// `traceparent` follows its caller's decision instead.
    pub sampling_ratio: f64,
    /// The `service.name` resource attribute; empty: the service's own name.
    pub service_name: String,
    /// An `EnvFilter` directive choosing the spans that are exported.
    pub filter: String,
    /// How long finished spans wait before they are sent in a batch.
    pub export_interval_ms: u64,
    /// How long one export may take.
    pub export_timeout_ms: u64,
}

impl Default for TraceSettings {
    fn default() -> Self {
        TraceSettings {
            endpoint: String::new(),
            protocol: OtlpProtocol::HttpProtobuf,
            sampling_ratio: 1.0,
            service_name: String::new(),
            filter: "info".into(),
            export_interval_ms: 5000,
            export_timeout_ms: 10_000,
        }
    }
}

/// The OTLP transports, by their `OTEL_EXPORTER_OTLP_PROTOCOL` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum OtlpProtocol {
    /// Protobuf over HTTP (port 4318 by convention).
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
}

impl TraceSettings {
    /// Whether an endpoint is configured.
    pub fn enabled(&self) -> bool {
        !self.endpoint.trim().is_empty()
    }

    /// The URL spans are posted to.
    fn traces_url(&self) -> String {
        let base = self.endpoint.trim().trim_end_matches('/');
        if base.ends_with(TRACES_PATH) {
            base.to_owned()
        } else {
            format!("{base}{TRACES_PATH}")
        }
    }
}

/// Why tracing could not start.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("trace.sampling_ratio must be between 0 and 1, not {0}")]
    SamplingRatio(f64),
    #[error("trace.filter: {0}")]
    Filter(String),
    #[error("trace.endpoint must be an http:// URL (no TLS client is built in), not {0:?}")]
    Endpoint(String),
    #[error("the OTLP exporter: {0}")]
    Exporter(String),
}

/// A service's tracer provider, owned by its `main`: [`Tracing::shutdown`] at the end
/// exports what is still queued. Disabled, it holds nothing and costs nothing.
pub struct Tracing {
    provider: Option<SdkTracerProvider>,
    filter: String,
}

impl Tracing {
    /// No tracing: no exporter, no export thread, no layer.
    pub fn disabled() -> Self {
        Tracing {
            provider: None,
            filter: String::new(),
        }
    }

    /// Builds the exporter and the provider when `settings` name an endpoint; otherwise
    /// [`Tracing::disabled`]. `default_service_name` is used when the settings name none;
    /// a non-empty `instance_id` becomes `service.instance.id`. Further resource attributes
    /// come from the standard `OTEL_RESOURCE_ATTRIBUTES` variable.
    pub fn start(
        settings: &TraceSettings,
        default_service_name: &str,
        instance_id: &str,
    ) -> Result<Self, TraceError> {
        if !settings.enabled() {
            return Ok(Tracing::disabled());
        }
        if !settings.endpoint.trim().starts_with("http://") {
            return Err(TraceError::Endpoint(settings.endpoint.clone()));
        }
        let ratio = settings.sampling_ratio;
        if !(0.0..=1.0).contains(&ratio) {
            return Err(TraceError::SamplingRatio(ratio));
        }
        tracing_subscriber::EnvFilter::try_new(&settings.filter)
            .map_err(|e| TraceError::Filter(e.to_string()))?;
        let protocol = match settings.protocol {
            OtlpProtocol::HttpProtobuf => Protocol::HttpBinary,
        };
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(protocol)
            .with_endpoint(settings.traces_url())
            .with_timeout(Duration::from_millis(settings.export_timeout_ms))
            .build()
            .map_err(|e| TraceError::Exporter(e.to_string()))?;
        let batches = BatchConfigBuilder::default()
            .with_scheduled_delay(Duration::from_millis(settings.export_interval_ms))
            .build();
        let processor = BatchSpanProcessor::builder(exporter)
            .with_batch_config(batches)
            .build();
        let name = match settings.service_name.trim() {
            "" => default_service_name.to_owned(),
            name => name.to_owned(),
        };
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                ratio,
            ))))
            .with_resource(resource(name, instance_id))
            .build();
        Ok(Tracing {
            provider: Some(provider),
            filter: settings.filter.clone(),
        })
    }

    /// Whether spans are exported.
    pub fn is_enabled(&self) -> bool {
        self.provider.is_some()
    }

    /// The `tracing` layer that turns spans into OpenTelemetry spans, filtered by
    /// `trace.filter`; `None` when disabled.
    pub(crate) fn layer<S>(&self) -> Option<impl tracing_subscriber::Layer<S>>
    where
        S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    {
        use tracing_subscriber::Layer as _;
        let provider = self.provider.as_ref()?;
        let tracer: SdkTracer = provider.tracer("kanban");
        let filter = tracing_subscriber::EnvFilter::try_new(&self.filter)
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        Some(
            tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_filter(filter),
        )
    }

    /// Exports every finished span now (tests; `shutdown` does it too).
    pub fn flush(&self) {
        if let Some(provider) = &self.provider {
            if let Err(error) = provider.force_flush() {
                tracing::warn!(%error, "flushing spans failed");
            }
        }
    }

    /// Exports what is queued and stops the export thread.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider {
            if let Err(error) = provider.shutdown() {
                tracing::warn!(%error, "shutting the tracer provider down failed");
            }
        }
    }
}

/// The process's resource: the detected attributes (`OTEL_RESOURCE_ATTRIBUTES`, the SDK's),
/// then `service.name` and, if given, `service.instance.id`.
fn resource(service_name: String, instance_id: &str) -> Resource {
    let builder = Resource::builder().with_service_name(service_name);
    match instance_id.trim() {
        "" => builder.build(),
        id => builder
            .with_attribute(opentelemetry::KeyValue::new(
                "service.instance.id",
                id.to_owned(),
            ))
            .build(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_by_default() {
        let settings = TraceSettings::default();
        assert!(!settings.enabled());
        assert!(!Tracing::start(&settings, "svc", "").is_ok_and(|t| t.is_enabled()));
    }

    #[test]
    fn the_traces_path_is_added_once() {
        let mut settings = TraceSettings {
            endpoint: "http://collector:4318/".into(),
            ..TraceSettings::default()
        };
        assert_eq!(settings.traces_url(), "http://collector:4318/v1/traces");
        settings.endpoint = "http://collector:4318/v1/traces".into();
        assert_eq!(settings.traces_url(), "http://collector:4318/v1/traces");
    }

    #[test]
    fn an_endpoint_that_is_not_plain_http_is_refused() {
        for endpoint in ["https://collector:4318", "collector:4318"] {
            let settings = TraceSettings {
                endpoint: endpoint.into(),
                ..TraceSettings::default()
            };
            assert!(matches!(
                Tracing::start(&settings, "svc", ""),
                Err(TraceError::Endpoint(_))
            ));
        }
    }

    #[test]
    fn a_configured_endpoint_starts_an_exporter() {
        let settings = TraceSettings {
            endpoint: "http://127.0.0.1:4318".into(),
            ..TraceSettings::default()
        };
        let tracing = Tracing::start(&settings, "svc", "").unwrap();
        assert!(tracing.is_enabled());
        tracing.shutdown();
    }

    #[test]
    fn the_resource_names_the_service_and_its_instance() {
        let name = opentelemetry::Key::from_static_str("service.name");
        let instance = opentelemetry::Key::from_static_str("service.instance.id");
        let with = resource("gateway".into(), "gw1");
        assert_eq!(
            with.get(&name).map(|v| v.to_string()).as_deref(),
            Some("gateway")
        );
        assert_eq!(
            with.get(&instance).map(|v| v.to_string()).as_deref(),
            Some("gw1")
        );
        assert_eq!(resource("ticket-api".into(), "").get(&instance), None);
    }

    #[test]
    fn a_ratio_outside_zero_to_one_is_refused() {
        let settings = TraceSettings {
            endpoint: "http://127.0.0.1:4318".into(),
            sampling_ratio: 1.5,
            ..TraceSettings::default()
        };
        assert!(matches!(
            Tracing::start(&settings, "svc", ""),
            Err(TraceError::SamplingRatio(_))
        ));
    }
}
