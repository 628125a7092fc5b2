//! Calls to the ticket API on behalf of a socket's user (with that user's token): the
//! access check before a join, and the forwarded ticket commands. Each call is an
//! `api.request` span whose context goes to the API as `traceparent`.

use kanban_protocol::rest::{
    Access, CreateTicketBody, DeleteTicketQuery, MoveTicketBody, MovedTicket, UpdateTicketBody,
};
use kanban_protocol::{ErrorBody, ErrorCode, Ticket};
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::time::Duration;
use tracing::Instrument;

#[derive(Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    base: String,
    /// Where each call's outcome and latency are recorded (none in unit tests).
    metrics: Option<std::sync::Arc<crate::metrics::GatewayMetrics>>,
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

    /// `GET /api/projects/{id}/me`: the user's role on the board and its latest seq.
    pub async fn access(&self, token: &str, project_id: &str) -> Result<Access, ErrorBody> {
        let path = format!("/api/projects/{project_id}/me");
        self.call(token, Method::GET, &path, None::<&()>, None)
            .await
    }

    /// `POST /api/projects/{id}/tickets`.
    pub async fn create_ticket(
        &self,
        token: &str,
        project_id: &str,
        body: &CreateTicketBody,
        mutation_id: &str,
    ) -> Result<Ticket, ErrorBody> {
        let path = format!("/api/projects/{project_id}/tickets");
        self.call(token, Method::POST, &path, Some(body), Some(mutation_id))
            .await
    }

    /// `PATCH /api/tickets/{id}`.
    pub async fn update_ticket(
        &self,
        token: &str,
        ticket_id: &str,
        body: &UpdateTicketBody,
        mutation_id: &str,
    ) -> Result<Ticket, ErrorBody> {
        let path = format!("/api/tickets/{ticket_id}");
        self.call(token, Method::PATCH, &path, Some(body), Some(mutation_id))
            .await
    }

    /// `POST /api/tickets/{id}/move`.
    pub async fn move_ticket(
        &self,
        token: &str,
        ticket_id: &str,
        body: &MoveTicketBody,
        mutation_id: &str,
    ) -> Result<MovedTicket, ErrorBody> {
        let path = format!("/api/tickets/{ticket_id}/move");
        self.call(token, Method::POST, &path, Some(body), Some(mutation_id))
            .await
    }

    /// `DELETE /api/tickets/{id}?expectedVersion=`.
    pub async fn delete_ticket(
        &self,
        token: &str,
        ticket_id: &str,
        query: &DeleteTicketQuery,
        mutation_id: &str,
    ) -> Result<(), ErrorBody> {
        let path = match query.expected_version {
            Some(version) => format!("/api/tickets/{ticket_id}?expectedVersion={version}"),
            None => format!("/api/tickets/{ticket_id}"),
        };
        self.call(token, Method::DELETE, &path, None::<&()>, Some(mutation_id))
            .await
    }

    /// One API call; a non-2xx answer comes back as the API's own coded error body. An
    /// empty answer (204) reads as JSON `null`, so `R = ()` accepts it.
    async fn call<B: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<&B>,
        mutation_id: Option<&str>,
    ) -> Result<R, ErrorBody> {
        let started = std::time::Instant::now();
        let span = tracing::info_span!(
            "api.request",
            otel.name = %format_args!("{method} ticket-api"),
            otel.kind = "client",
            otel.status_code = tracing::field::Empty,
            http.request.method = %method,
            url.path = path.split('?').next().unwrap_or(path),
            outcome = tracing::field::Empty,
        );
        // The API's request span becomes this span's child (no header when tracing is off).
        let traceparent = kanban_telemetry::propagation::traceparent_of(&span);
        let (outcome, result) = self
            .call_unrecorded(
                token,
                method.clone(),
                path,
                body,
                mutation_id,
                traceparent.as_deref(),
            )
            .instrument(span.clone())
            .await;
        span.record("outcome", outcome);
        if outcome == "server_error" || outcome == "unavailable" {
            span.record("otel.status_code", "error");
        }
        if let Some(metrics) = &self.metrics {
            metrics.api_call(method.as_str(), outcome, started.elapsed());
        }
        result
    }

    /// The call and its outcome label: `ok`, `client_error`, `server_error` or
    /// `unavailable` (no answer: refused, timed out, cut off).
    async fn call_unrecorded<B: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<&B>,
        mutation_id: Option<&str>,
        traceparent: Option<&str>,
    ) -> (&'static str, Result<R, ErrorBody>) {
        let mut request = self
            .http
            .request(method, format!("{}{}", self.base, path))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(body);
        }
        if let Some(id) = mutation_id {
            request = request.header("Idempotency-Key", id);
        }
        if let Some(traceparent) = traceparent {
            request = request.header(kanban_telemetry::propagation::TRACEPARENT, traceparent);
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
            let reply = if bytes.is_empty() {
                serde_json::from_value(serde_json::Value::Null)
            } else {
                serde_json::from_slice(&bytes)
            };
            return (
                "ok",
                reply.map_err(|e| {
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
