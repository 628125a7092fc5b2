//! Calls to the ticket API on behalf of a socket's user (with that user's token): the
//! access check before a join, and the forwarded ticket commands.

use kanban_protocol::{ErrorBody, ErrorCode, MemberRole};
use reqwest::Method;
use serde::Deserialize;
use std::time::Duration;

#[derive(Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    base: String,
    /// Where each call's outcome and latency are recorded (none in unit tests).
    metrics: Option<std::sync::Arc<crate::metrics::GatewayMetrics>>,
}

/// `GET /api/projects/{id}/me`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Access {
    pub role: MemberRole,
    pub seq: i64,
}

impl ApiClient {
    pub fn new(base_url: &str, timeout: Duration) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder().timeout(timeout).build()?;
        Ok(ApiClient {
            http,
            base: base_url.trim_end_matches('/').to_owned(),
            metrics: None,
        })
    }

    /// Records every call in `metrics` (`api_requests_total`, `api_request_duration_seconds`).
    pub fn with_metrics(mut self, metrics: std::sync::Arc<crate::metrics::GatewayMetrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    pub async fn access(&self, token: &str, project_id: &str) -> Result<Access, ErrorBody> {
        let value = self
            .call(
                token,
                Method::GET,
                &format!("/api/projects/{project_id}/me"),
                None,
                None,
            )
            .await?;
        serde_json::from_value(value)
            .map_err(|e| ErrorBody::new(ErrorCode::Internal, format!("unexpected API reply: {e}")))
    }

    /// One API call; a non-2xx answer comes back as the API's own coded error body.
    pub async fn call(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
        mutation_id: Option<&str>,
    ) -> Result<serde_json::Value, ErrorBody> {
        let started = std::time::Instant::now();
        let (outcome, result) = self
            .call_unrecorded(token, method.clone(), path, body, mutation_id)
            .await;
        if let Some(metrics) = &self.metrics {
            metrics.api_call(method.as_str(), outcome, started.elapsed());
        }
        result
    }

    /// The call and its outcome label: `ok`, `client_error`, `server_error` or
    /// `unavailable` (no answer: refused, timed out, cut off).
    async fn call_unrecorded(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
        mutation_id: Option<&str>,
    ) -> (&'static str, Result<serde_json::Value, ErrorBody>) {
        let mut request = self
            .http
            .request(method, format!("{}{}", self.base, path))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        if let Some(id) = mutation_id {
            request = request.header("Idempotency-Key", id);
        }
        let unavailable = || {
            ErrorBody::new(
                ErrorCode::Unavailable,
                "the ticket service is unavailable, retry later",
            )
        };
        let response = match request.send().await {
            Ok(response) => response,
            Err(error) => {
                tracing::warn!(%error, "ticket API unreachable");
                return ("unavailable", Err(unavailable()));
            }
        };
        let status = response.status();
        let Ok(bytes) = response.bytes().await else {
            return ("unavailable", Err(unavailable()));
        };
        if status.is_success() {
            if bytes.is_empty() {
                return ("ok", Ok(serde_json::Value::Null));
            }
            return (
                "ok",
                serde_json::from_slice(&bytes).map_err(|e| {
                    ErrorBody::new(ErrorCode::Internal, format!("unexpected API reply: {e}"))
                }),
            );
        }
        let outcome = if status.is_server_error() {
            "server_error"
        } else {
            "client_error"
        };
        (
            outcome,
            Err(
                serde_json::from_slice::<ErrorBody>(&bytes).unwrap_or_else(|_| {
                    ErrorBody::new(ErrorCode::Internal, format!("ticket API answered {status}"))
                }),
            ),
        )
    }
}
