//! What an operator sees of a gateway: request ids, the metrics of sockets, closes, API
//! calls and fan-out, and (in `dashboard_and_rules_use_only_exported_metrics`) that every
//! metric the shipped dashboard and alert rules query is exported.

use crate::client::{is_board_event, Client, Incoming};
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
        .get(format!(
            "{}/socket.io/?EIO=3&transport=polling",
            stack.gw(0)
        ))
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
    reqwest::get(format!("{}/healthz", stack.gw(0)))
        .await
        .unwrap();
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
    // Waited for by kind: presence announcements may arrive first.
    match alice.wait_for(is_board_event).await {
        Incoming::Event(name, _) => assert_eq!(name, "ticket:created", "{ticket}"),
        other => panic!("{other:?}"),
    }

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
        metric_value(
            &text,
            r#"kanban_gateway_closes_total{code="none",reason="client_closed"}"#
        ),
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
        eventually(
            gw,
            r#"kanban_gateway_sockets{transport="websocket"}"#,
            |v| v == 0.0
        )
        .await,
        0.0
    );
}

/// The PromQL expressions of the shipped dashboard (every `expr` in it).
fn dashboard_exprs() -> Vec<String> {
    fn walk(value: &serde_json::Value, out: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, value) in map {
                    match (key.as_str(), value) {
                        ("expr", serde_json::Value::String(expr)) => out.push(expr.clone()),
                        _ => walk(value, out),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|item| walk(item, out)),
            _ => {}
        }
    }
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/observability/grafana/kanban-dashboard.json"
    );
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut exprs = Vec::new();
    walk(&dashboard, &mut exprs);
    exprs
}

/// The `expr`s of the shipped rules and the names their `record`s define. (A small reader
/// of the file's own layout: `key: value` on one line, or a `|`/`>` block below it.)
fn rules_exprs_and_records() -> (Vec<String>, Vec<String>) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/observability/prometheus/kanban-rules.yml"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let (mut exprs, mut records) = (Vec::new(), Vec::new());
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start().trim_start_matches("- ");
        if let Some(name) = trimmed.strip_prefix("record:") {
            records.push(name.trim().to_owned());
        }
        let Some(value) = trimmed.strip_prefix("expr:") else {
            continue;
        };
        let value = value.trim();
        if value.starts_with('|') || value.starts_with('>') {
            let indent = line.len() - line.trim_start().len();
            let block: Vec<&str> = lines[i + 1..]
                .iter()
                .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > indent)
                .map(|l| l.trim())
                .collect();
            exprs.push(block.join(" "));
        } else {
            exprs.push(value.trim_matches(|c| c == '\'' || c == '"').to_owned());
        }
    }
    (exprs, records)
}

/// The metric names a PromQL expression reads: identifiers that are not functions,
/// keywords, label names (in matchers or grouping lists), durations, numbers or Grafana
/// variables.
fn metric_names(expr: &str) -> Vec<String> {
    // Keep only what is outside strings, `{…}` matchers and `[…]` ranges.
    let mut outside = String::new();
    let (mut braces, mut brackets, mut quote) = (0, 0, None);
    for c in expr.chars() {
        if let Some(q) = quote {
            if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' | '`' => quote = Some(c),
            '{' => braces += 1,
            '}' => braces -= 1,
            '[' => brackets += 1,
            ']' => brackets -= 1,
            _ if braces == 0 && brackets == 0 => {
                outside.push(c);
                continue;
            }
            _ => {}
        }
        outside.push(' ');
    }
    const KEYWORDS: &[&str] = &["and", "or", "unless", "bool", "offset", "inf", "nan"];
    // Aggregations may be followed by `by (…)` rather than by their argument.
    const AGGREGATIONS: &[&str] = &[
        "sum",
        "min",
        "max",
        "avg",
        "count",
        "group",
        "stddev",
        "stdvar",
        "topk",
        "bottomk",
        "quantile",
        "count_values",
    ];
    const GROUPING: &[&str] = &[
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    let chars: Vec<char> = outside.chars().collect();
    let mut names = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '$' {
            // A Grafana variable: `$name` or `${name}` (the braces are already gone).
            i += 1;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
        } else if c.is_ascii_digit() || c == '.' {
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else if c.is_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || "_:".contains(chars[i])) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let next = chars[i..].iter().find(|c| !c.is_whitespace());
            if GROUPING.contains(&word.as_str()) {
                // Skip its label list.
                if next == Some(&'(') {
                    while i < chars.len() && chars[i] != ')' {
                        i += 1;
                    }
                }
            } else if next != Some(&'(')
                && !KEYWORDS.contains(&word.to_lowercase().as_str())
                && !AGGREGATIONS.contains(&word.as_str())
            {
                names.push(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

#[test]
fn metric_names_are_read_from_promql_as_expected() {
    let expr = r#"histogram_quantile(0.99, sum by (le, route) (rate(a_bucket{route!~"/x(y)"}[$__rate_interval]))) / on (instance) group_left (version) b * 2 > bool 1e3 or vector(0) and c offset 5m"#;
    assert_eq!(metric_names(expr), ["a_bucket", "b", "c"]);
    assert_eq!(
        metric_names("max(kanban:lag:leader and on () (x == 1))"),
        ["kanban:lag:leader", "x"]
    );
}

/// `# TYPE` lines of an exposition: every name a query can use (a histogram's
/// `_bucket`, `_sum` and `_count` included).
fn exported_names(text: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if let (Some("#"), Some("TYPE"), Some(name), Some(kind)) =
            (words.next(), words.next(), words.next(), words.next())
        {
            names.insert(name.to_owned());
            if kind == "histogram" || kind == "summary" {
                for suffix in ["_bucket", "_sum", "_count"] {
                    names.insert(format!("{name}{suffix}"));
                }
            }
        }
    }
    names
}

#[tokio::test]
async fn dashboard_and_rules_use_only_exported_metrics() {
    let stack = stack(1).await;
    let gw = stack.gw(0);
    // Series that exist only after an event: HTTP requests on both services.
    let project = stack.create_project("alice", &[]).await;
    let mut alice = Client::connected(gw, &stack.token("alice")).await;
    assert_eq!(alice.join(&project).await["ok"], true);
    metrics_text(gw).await;
    let mut exported = exported_names(&metrics_text(gw).await);
    exported.extend(exported_names(&metrics_text(&stack.api).await));
    // The per-shard series exist only in Redis Cluster mode, once a shard has been probed:
    // give each one a series in a registry of its own so that their names count as
    // exported (the fields are the gateway's own, so a misspelt name still fails).
    let cluster = gateway::metrics::GatewayMetrics::new().unwrap();
    cluster
        .redis_shard_up
        .with_label_values(&["10.0.0.5:6379"])
        .set(1);
    cluster
        .redis_shard_reconnects_total
        .with_label_values(&["10.0.0.5:6379"])
        .inc();
    cluster
        .redis_shard_subscriptions
        .with_label_values(&["10.0.0.5:6379"])
        .set(1);
    exported.extend(exported_names(&kanban_telemetry::render(&cluster.registry)));

    let (rule_exprs, records) = rules_exprs_and_records();
    assert!(
        rule_exprs.len() >= 10 && !records.is_empty(),
        "{rule_exprs:?}"
    );
    let dashboard = dashboard_exprs();
    assert!(dashboard.len() >= 20, "{dashboard:?}");
    let mut missing = std::collections::BTreeSet::new();
    let mut used = 0;
    for expr in rule_exprs.iter().chain(&dashboard) {
        for name in metric_names(expr) {
            used += 1;
            // `up` is Prometheus's own; names with colons are this file's recording rules.
            let known = name == "up"
                || (name.contains(':') && records.contains(&name))
                || exported.contains(&name);
            if !known {
                missing.insert(format!("{name} (in {expr})"));
            }
        }
    }
    assert!(used > 50, "the reader found only {used} metric uses");
    assert!(
        missing.is_empty(),
        "used by the dashboard or the rules but not exported:\n{}",
        missing.into_iter().collect::<Vec<_>>().join("\n")
    );
}

#[tokio::test]
async fn a_long_polling_session_counts_under_the_polling_transport() {
    let stack = stack(1).await;
    let gw = stack.gw(0);
    let open = reqwest::get(format!("{gw}/socket.io/?EIO=4&transport=polling"))
        .await
        .unwrap();
    assert_eq!(open.status(), 200);
    assert_eq!(
        eventually(gw, r#"kanban_gateway_sockets{transport="polling"}"#, |v| v
            == 1.0)
        .await,
        1.0
    );
    assert_eq!(
        metric(gw, r#"kanban_gateway_sockets{transport="websocket"}"#).await,
        0.0
    );
}

#[tokio::test]
async fn every_exported_metric_is_documented_in_metrics_md() {
    let stack = stack(1).await;
    stack.create_project("alice", &[]).await;
    metrics_text(stack.gw(0)).await;
    let docs = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/metrics.md"
    ))
    .unwrap();
    let mut undocumented = Vec::new();
    for text in [
        metrics_text(stack.gw(0)).await,
        metrics_text(&stack.api).await,
    ] {
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("# TYPE ") else {
                continue;
            };
            let name = rest.split_whitespace().next().unwrap();
            // Metrics both services have are documented once, as `kanban_<service>_…`.
            let shared = name
                .replace("kanban_ticket_api_", "kanban_<service>_")
                .replace("kanban_gateway_", "kanban_<service>_");
            if !docs.contains(&format!("`{name}`")) && !docs.contains(&format!("`{shared}`")) {
                undocumented.push(name.to_owned());
            }
        }
    }
    assert!(
        undocumented.is_empty(),
        "not in docs/metrics.md: {undocumented:?}"
    );
}
