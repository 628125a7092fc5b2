//! OpenTelemetry traces end to end: an OTLP/HTTP receiver in this process (a real HTTP
//! server on port 0 that decodes protobuf export requests), the API and two gateways
//! in-process exporting to it, and one ticket move over a socket followed as one trace.
//!
//! A test binary of its own: tracing's subscriber is global to the process, so the one
//! these tests install (with the OpenTelemetry layer) must not meet the other suites.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "gateway/client.rs"]
#[allow(dead_code)]
mod client;
#[path = "gateway/helpers.rs"]
#[allow(dead_code)]
mod helpers;

use actix_web::{web, App, HttpResponse, HttpServer};
use client::Client;
use helpers::{stack, POLL};
use kanban_telemetry::trace::{TraceSettings, Tracing};
use kanban_telemetry::LogSettings;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Spans are exported in batches every 100 ms here; on a busy machine an export can
/// still take seconds, so waits for spans are generous (they end as soon as spans come).
const SPAN_WAIT: Duration = Duration::from_secs(30);

/// One span as the receiver decoded it.
#[derive(Debug, Clone)]
struct Received {
    service: String,
    name: String,
    trace_id: String,
    span_id: String,
    parent_id: String,
    kind: i32,
    attributes: HashMap<String, String>,
}

impl Received {
    fn attr(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn text(value: Option<&opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(AnyValue::StringValue(s)) => s.clone(),
        Some(AnyValue::IntValue(i)) => i.to_string(),
        Some(AnyValue::BoolValue(b)) => b.to_string(),
        Some(AnyValue::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

/// Decodes one OTLP/HTTP protobuf export request into [`Received`] spans.
fn decode(body: &[u8]) -> Result<Vec<Received>, prost::DecodeError> {
    let request = ExportTraceServiceRequest::decode(body)?;
    let mut spans = Vec::new();
    for resource_spans in request.resource_spans {
        let service = resource_spans
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|kv| kv.key == "service.name")
            .map(|kv| text(kv.value.as_ref()))
            .unwrap_or_default();
        for scope in resource_spans.scope_spans {
            for span in scope.spans {
                spans.push(Received {
                    service: service.clone(),
                    name: span.name,
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_id: hex(&span.parent_span_id),
                    kind: span.kind,
                    attributes: span
                        .attributes
                        .iter()
                        .map(|kv| (kv.key.clone(), text(kv.value.as_ref())))
                        .collect(),
                });
            }
        }
    }
    Ok(spans)
}

/// The OTLP receiver and the process's tracer provider, shared by this binary's tests.
struct Receiver {
    spans: Arc<Mutex<Vec<Received>>>,
    _tracing: Tracing,
}

/// Starts (once per process) an OTLP/HTTP receiver on 127.0.0.1 port 0 in a thread of its
/// own, and installs the global subscriber with an OpenTelemetry layer exporting to it.
fn receiver() -> &'static Receiver {
    static RECEIVER: OnceLock<Receiver> = OnceLock::new();
    RECEIVER.get_or_init(|| {
        let spans: Arc<Mutex<Vec<Received>>> = Arc::default();
        let store = Arc::clone(&spans);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                HttpServer::new(move || {
                    let store = Arc::clone(&store);
                    App::new()
                        .app_data(web::PayloadConfig::new(32 << 20))
                        .route(
                            "/v1/traces",
                            web::post().to(move |body: web::Bytes| {
                                let store = Arc::clone(&store);
                                async move {
                                    match decode(&body) {
                                        Ok(decoded) => {
                                            store.lock().unwrap().extend(decoded);
                                            HttpResponse::Ok()
                                                .content_type("application/x-protobuf")
                                                .body(
                                                    ExportTraceServiceResponse::default()
                                                        .encode_to_vec(),
                                                )
                                        }
                                        Err(error) => {
                                            HttpResponse::BadRequest().body(error.to_string())
                                        }
                                    }
                                }
                            }),
                        )
                })
                .workers(1)
                .listen(listener)
                .unwrap()
                .run()
                .await
                .unwrap();
            });
        });
        let settings = TraceSettings {
            endpoint: format!("http://127.0.0.1:{port}"),
            service_name: "kanban-trace-test".into(),
            export_interval_ms: 100,
            ..TraceSettings::default()
        };
        let tracing = Tracing::start(&settings, "unused", "").unwrap();
        assert!(tracing.is_enabled());
        let log = LogSettings {
            filter: "warn".into(),
            json: false,
        };
        kanban_telemetry::init_logging(&log, &tracing);
        Receiver {
            spans,
            _tracing: tracing,
        }
    })
}

impl Receiver {
    /// Polls the received spans until `pick` finds what it wants; fails after
    /// [`SPAN_WAIT`] with what did arrive.
    async fn until<T>(&self, what: &str, pick: impl Fn(&[Received]) -> Option<T>) -> T {
        let deadline = Instant::now() + SPAN_WAIT;
        loop {
            let found = pick(&self.spans.lock().unwrap());
            if let Some(found) = found {
                return found;
            }
            if Instant::now() >= deadline {
                let names: Vec<String> = self
                    .spans
                    .lock()
                    .unwrap()
                    .iter()
                    .map(|s| format!("{} {} <- {}", s.name, s.trace_id, s.parent_id))
                    .collect();
                panic!("{what}: not received within {SPAN_WAIT:?}; received: {names:#?}");
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

fn in_trace<'a>(spans: &'a [Received], trace: &str, name: &str) -> Vec<&'a Received> {
    spans
        .iter()
        .filter(|s| s.trace_id == trace && s.name == name)
        .collect()
}

/// The one span named `name` in `trace`, once it has arrived.
fn one(spans: &[Received], trace: &str, name: &str) -> Option<Received> {
    match in_trace(spans, trace, name).as_slice() {
        [span] => Some((*span).clone()),
        _ => None,
    }
}

#[tokio::test]
async fn a_move_over_a_socket_is_one_trace_across_gateway_api_relay_and_both_gateways() {
    let receiver = receiver();
    let stack = stack(2).await;
    let project = stack.create_project("alice", &["bob"]).await;
    let ticket = stack.create_ticket(&project, "alice", "traced").await;
    let ticket_id = ticket["id"].as_str().unwrap().to_owned();
    let mut alice = Client::connected(stack.gw(0), &stack.token("alice")).await;
    let mut bob = Client::connected(stack.gw(1), &stack.token("bob")).await;
    alice.join(&project).await;
    bob.join(&project).await;

    let mutation = uuid::Uuid::new_v4().to_string();
    let moved = alice
        .call(
            "ticket:move",
            &[
                json!({"ticketId": ticket_id, "toStatus": "TODO", "position": 0,
                     "mutationId": mutation}),
            ],
        )
        .await;
    assert_eq!(moved["ok"], true, "{moved}");
    for client in [&mut alice, &mut bob] {
        let events = client.events(1).await;
        assert_eq!(events[0].name, "ticket:moved");
    }

    // The gateway's command span starts the trace.
    let command = receiver
        .until("the gateway's command span", |spans| {
            spans
                .iter()
                .find(|s| {
                    s.name == "command ticket:move" && s.attr("mutation.id") == Some(&mutation)
                })
                .cloned()
        })
        .await;
    assert_eq!(command.parent_id, "", "a socket command starts its trace");
    assert_eq!(command.service, "kanban-trace-test");
    let trace = command.trace_id.clone();

    // Then every hop, in that trace, each the child of the one before.
    let (call, request, transaction, append, publish, fanouts) = receiver
        .until("every span of the move's trace", |spans| {
            let fanouts: Vec<Received> = in_trace(spans, &trace, "gateway.fanout")
                .into_iter()
                .cloned()
                .collect();
            (fanouts.len() == 2).then_some(())?;
            Some((
                one(spans, &trace, "POST ticket-api")?,
                one(spans, &trace, "POST /api/tickets/{id}/move")?,
                one(spans, &trace, "transaction ticket.move")?,
                one(spans, &trace, "outbox.append")?,
                one(spans, &trace, "relay.publish")?,
                fanouts,
            ))
        })
        .await;
    assert_eq!(
        call.parent_id, command.span_id,
        "gateway: API call in the command"
    );
    assert_eq!(
        call.attr("url.path"),
        Some(&*format!("/api/tickets/{ticket_id}/move"))
    );
    assert_eq!(call.attr("outcome"), Some("ok"));
    assert_eq!(call.kind, 3, "client");
    assert_eq!(
        request.parent_id, call.span_id,
        "API: the request joins via traceparent"
    );
    assert_eq!(request.kind, 2, "server");
    assert_eq!(request.attr("http.route"), Some("/api/tickets/{id}/move"));
    assert_eq!(request.attr("http.response.status_code"), Some("200"));
    assert_eq!(
        transaction.parent_id, request.span_id,
        "API: the transaction"
    );
    assert_eq!(transaction.attr("kanban.use_case"), Some("ticket.move"));
    assert_eq!(
        append.parent_id, transaction.span_id,
        "API: the outbox rows"
    );
    assert_eq!(append.attr("project.id"), Some(project.as_str()));
    assert_eq!(publish.parent_id, append.span_id, "relay: the publish");
    assert_eq!(publish.attr("event.name"), Some("ticket:moved"));
    assert_eq!(publish.kind, 4, "producer");
    for fanout in &fanouts {
        assert_eq!(
            fanout.parent_id, append.span_id,
            "gateway: receipt and fan-out"
        );
        assert_eq!(fanout.attr("project.id"), Some(project.as_str()));
        assert_eq!(fanout.attr("room.size"), Some("1"), "{fanout:?}");
        assert_eq!(fanout.attr("room.delivered"), Some("1"), "{fanout:?}");
        assert_eq!(fanout.kind, 5, "consumer");
    }
    assert_eq!(publish.attr("event.seq"), fanouts[0].attr("event.seq"));

    // The stored event carries the trace context of the span that wrote it.
    let (status, page) = stack
        .api_call(
            reqwest::Method::GET,
            &format!("/api/projects/{project}/events?since=0"),
            "alice",
            None,
        )
        .await;
    assert_eq!(status, 200, "{page}");
    let stored = last_traceparent(&page);
    assert_eq!(
        stored,
        format!("00-{trace}-{}-01", append.span_id),
        "the outbox row names its writer"
    );
}

/// The `traceparent` of the newest event in an events page.
fn last_traceparent(page: &Value) -> String {
    page["events"]
        .as_array()
        .and_then(|events| events.last())
        .and_then(|event| event["traceparent"].as_str())
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn an_incoming_traceparent_is_honoured_and_a_malformed_one_ignored() {
    let receiver = receiver();
    let stack = stack(0).await;
    let project = stack.create_project("alice", &[]).await;
    let remote_trace = format!("{:032x}", rand::random::<u128>() | 1);
    let remote_parent = "00f067aa0ba902b7";
    let cases = [
        (format!("00-{remote_trace}-{remote_parent}-01"), true),
        // Uppercase hex is not W3C: ignored, not refused.
        (
            format!("00-{}-{remote_parent}-01", remote_trace.to_uppercase()),
            false,
        ),
        ("-".repeat(55), false),
    ];
    for (index, (traceparent, honoured)) in cases.iter().enumerate() {
        let title = format!("case {index}");
        let response = stack
            .http
            .post(format!("{}/api/projects/{project}/tickets", stack.api))
            .bearer_auth(stack.token("alice"))
            .header("traceparent", traceparent)
            .json(&json!({"title": title}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "{traceparent}");
        let request_id = response
            .headers()
            .get("x-request-id")
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        let span = receiver
            .until("the API's request span", |spans| {
                spans
                    .iter()
                    .find(|s| s.attr("request.id") == Some(request_id.as_str()))
                    .cloned()
            })
            .await;
        let (status, page) = stack
            .api_call(
                reqwest::Method::GET,
                &format!("/api/projects/{project}/events?since=0"),
                "alice",
                None,
            )
            .await;
        assert_eq!(status, 200, "{page}");
        let stored = last_traceparent(&page);
        if *honoured {
            assert_eq!(span.trace_id, remote_trace, "{traceparent}");
            assert_eq!(span.parent_id, remote_parent, "{traceparent}");
        } else {
            assert_ne!(span.trace_id, remote_trace.to_lowercase(), "{traceparent}");
            assert_eq!(span.parent_id, "", "{traceparent}: a trace of its own");
        }
        assert!(
            stored.starts_with(&format!("00-{}-", span.trace_id)),
            "{traceparent}: the event is stored in the request's trace, not {stored}"
        );
    }
}
