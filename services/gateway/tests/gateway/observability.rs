//! What an operator sees of a gateway: request ids, the metrics of sockets, closes, API
//! calls and fan-out, and (in `dashboard_and_rules_use_only_exported_metrics`) that every
//! metric the shipped dashboard and alert rules query is exported.

use crate::client::Client;
use crate::helpers::{metric, stack};
use kanban_test_support::metric_value;
use std::time::Duration;

async fn metrics_text(base: &str) -> String {
    reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Polls `series` on the gateway at `base` until `want` holds (or 5 s pass); returns it.
async fn eventually(base: &str, series: &str, want: impl Fn(f64) -> bool) -> f64 {
    let mut value = f64::NAN;
    for _ in 0..50 {
        value = metric_value(&metrics_text(base).await, series);
        if want(value) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    value
}

#[tokio::test]
async fn the_gateway_returns_the_clients_request_id_or_a_new_one() {
    let stack = stack(1).await;
    let http = reqwest::Client::new();
    let response = http
        .get(format!("{}/healthz", stack.gw(0)))
        .header("X-Request-Id", "lb-7f3a")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "lb-7f3a");
    let response = http
        .get(format!("{}/socket.io/?EIO=3&transport=polling", stack.gw(0)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let id = response.headers()["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
}

#[tokio::test]
async fn gateway_http_requests_are_counted_by_route_pattern() {
    let stack = stack(1).await;
    reqwest::get(format!("{}/healthz", stack.gw(0))).await.unwrap();
    let text = metrics_text(stack.gw(0)).await;
    assert_eq!(
        metric_value(
            &text,
            r#"kanban_gateway_http_requests_total{method="GET",route="/healthz",status="200"}"#
        ),
        1.0,
        "{text}"
    );
    assert!(text.contains("process_resident_memory_bytes"), "{text}");
    assert!(text.contains("kanban_gateway_build_info{"), "{text}");
}

#[tokio::test]
async fn sockets_by_transport_closes_by_reason_api_calls_and_fan_out_are_measured() {
    let stack = stack(1).await;
    let gw = stack.gw(0);
    let project = stack.create_project("alice", &[]).await;
    let mut alice = Client::connected(gw, &stack.token("alice")).await;
    assert_eq!(
        metric(gw, r#"kanban_gateway_sockets{transport="websocket"}"#).await,
        1.0
    );
    assert_eq!(alice.join(&project).await["ok"], true);
    let ticket = stack.create_ticket(&project, "alice", "measured").await;
    let events = alice.events(1).await;
    assert_eq!(events[0].0, "ticket:created", "{ticket}");

    let text = metrics_text(gw).await;
    assert!(
        metric_value(
            &text,
            r#"kanban_gateway_api_requests_total{method="GET",outcome="ok"}"#
        ) >= 1.0,
        "the join's access check: {text}"
    );
    assert!(metric_value(&text, "kanban_gateway_fanout_latency_seconds_count") >= 1.0);
    assert!(metric_value(&text, "kanban_gateway_outbound_queue_depth_count") >= 1.0);
    assert_eq!(
        metric_value(&text, r#"kanban_gateway_closes_total{code="none",reason="client_closed"}"#),
        0.0
    );

    alice.close();
    let closed = eventually(
        gw,
        r#"kanban_gateway_closes_total{code="none",reason="client_closed"}"#,
        |v| v >= 1.0,
    )
    .await;
    assert_eq!(closed, 1.0);
    assert_eq!(
        eventually(gw, r#"kanban_gateway_sockets{transport="websocket"}"#, |v| v == 0.0).await,
        0.0
    );
}
