//! What every HTTP service records per request, in one middleware step: the request id
//! (`X-Request-Id`, taken from the request when it carries a usable one), the request
//! metrics by route pattern, one access-log line, and the request's span (a child of the
//! caller's `traceparent` when it sends a well-formed one).
//!
//! Services call [`observe`] from an `actix_web::middleware::from_fn` function that finds
//! their own [`HttpMetrics`].

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::HttpMessage;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};
use std::time::Instant;
use tracing::Instrument;

/// The header that carries a request's id in both directions.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The longest incoming request id that is kept (longer ones are replaced).
const MAX_REQUEST_ID_LEN: usize = 128;

/// Latency buckets from 0.5 ms to 5 s, shared by every HTTP latency histogram.
pub const HTTP_LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Routes that probes and scrapers call every few seconds: their successful requests are
/// logged at DEBUG so that they do not drown the access log (they are still counted).
const QUIET_ROUTES: &[&str] = &["/healthz", "/readyz", "/metrics"];

/// The id of the request being handled, in the request's extensions.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// HTTP request metrics of one service, named `<namespace>_http_…`.
#[derive(Clone)]
pub struct HttpMetrics {
    /// HTTP requests handled, by method, route pattern and status code.
    pub requests_total: IntCounterVec,
    /// HTTP request latency in seconds, by method and route pattern.
    pub request_duration_seconds: HistogramVec,
}

impl HttpMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(namespace: &str, registry: &Registry) -> Result<Self, prometheus::Error> {
        let metrics = HttpMetrics {
            requests_total: IntCounterVec::new(
                Opts::new(
                    "http_requests_total",
                    "HTTP requests handled, by method, route pattern and status code.",
                )
                .namespace(namespace),
                &["method", "route", "status"],
            )?,
            request_duration_seconds: HistogramVec::new(
                HistogramOpts::new(
                    "http_request_duration_seconds",
                    "HTTP request latency in seconds, by method and route pattern.",
                )
                .namespace(namespace)
                .buckets(HTTP_LATENCY_BUCKETS.to_vec()),
                &["method", "route"],
            )?,
        };
        registry.register(Box::new(metrics.requests_total.clone()))?;
        registry.register(Box::new(metrics.request_duration_seconds.clone()))?;
        Ok(metrics)
    }
}

/// Only standard methods become label values; anything else is `other`.
fn method_label(method: &Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    }
}

/// A client's request id, if it is one we can repeat safely in a header and a log line:
/// 1 to 128 characters out of letters, digits and `-_.:@/+=`.
fn incoming_request_id(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(REQUEST_ID_HEADER)?.to_str().ok()?;
    let usable = !value.is_empty()
        && value.len() <= MAX_REQUEST_ID_LEN
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:@/+=".contains(&b));
    usable.then(|| value.to_owned())
}

/// Handles one request: gives it an id (the client's `X-Request-Id` or a new UUID), runs
/// the rest of the chain inside a span carrying that id, returns the id in the response's
/// `X-Request-Id`, records `metrics` under the route pattern (never the raw path, which
/// holds ids), and writes one access-log line (target `access`) at INFO.
pub async fn observe<B: MessageBody + 'static>(
    metrics: Option<HttpMetrics>,
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<B>, actix_web::Error> {
    let started = Instant::now();
    let method = method_label(req.method());
    // The pattern comes from the application's resource map, so it is known before routing.
    let route = req
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let request_id =
        incoming_request_id(req.headers()).unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    req.extensions_mut().insert(RequestId(request_id.clone()));
    let path = req.path().to_owned();
    let span = tracing::info_span!(
        parent: None,
        "http.request",
        otel.name = %format_args!("{method} {route}"),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        request.id = %request_id,
        http.method = method,
        http.route = %route,
        http.response.status_code = tracing::field::Empty,
    );
    // A well-formed incoming trace context makes this request part of the caller's trace;
    // a malformed one is ignored (the request starts a trace of its own).
    let traceparent = req
        .headers()
        .get(crate::propagation::TRACEPARENT)
        .and_then(|v| v.to_str().ok());
    crate::propagation::set_parent(&span, traceparent);
    // (The request must not be cloned before routing, which needs it unshared; so an
    // error that no handler turned into a response is counted and logged but passed on
    // without the header. Handlers' and extractors' errors are responses here already.)
    let outcome = next.call(req).instrument(span.clone()).await;
    let status = match &outcome {
        Ok(response) => response.status(),
        Err(error) => error.as_response_error().status_code(),
    };
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", "error");
    }
    drop(span);
    let elapsed = started.elapsed();
    if let Some(metrics) = metrics {
        metrics
            .requests_total
            .with_label_values(&[method, &route, status.as_str()])
            .inc();
        metrics
            .request_duration_seconds
            .with_label_values(&[method, &route])
            .observe(elapsed.as_secs_f64());
    }
    let duration_ms = elapsed.as_secs_f64() * 1000.0;
    if status.is_success() && QUIET_ROUTES.contains(&route.as_str()) {
        tracing::debug!(
            target: "access",
            duration_ms,
            http.method = method,
            http.route = %route,
            http.path = %path,
            http.status_code = status.as_u16(),
            request.id = %request_id,
            "request"
        );
    } else {
        tracing::info!(
            target: "access",
            duration_ms,
            http.method = method,
            http.route = %route,
            http.path = %path,
            http.status_code = status.as_u16(),
            request.id = %request_id,
            "request"
        );
    }
    let mut response = outcome?;
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(REQUEST_ID_HEADER, value);
        }
        headers
    }

    #[test]
    fn a_plain_client_request_id_is_kept() {
        assert_eq!(
            incoming_request_id(&headers("abc-123_x.y:z")),
            Some("abc-123_x.y:z".to_owned())
        );
    }

    #[test]
    fn unusable_request_ids_are_replaced() {
        assert_eq!(incoming_request_id(&headers("")), None);
        assert_eq!(incoming_request_id(&headers("two words")), None);
        assert_eq!(incoming_request_id(&headers("a\"b")), None);
        assert_eq!(incoming_request_id(&headers(&"x".repeat(129))), None);
        assert_eq!(incoming_request_id(&HeaderMap::new()), None);
    }
}
