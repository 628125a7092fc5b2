//! Bad input, limits, slow consumers and drain: each ends in a coded refusal or a
//! documented close, never a crash.

use crate::client::{is_event, seqs, Client, Incoming};
use crate::helpers::{metric, metric_until, stack, stack_with, POLL, WAIT};
use futures_util::{SinkExt, StreamExt};
use kanban_protocol::redis_keys;
use kanban_test_support::OwnRedis;
use serde_json::json;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn malformed_packets_close_the_session_with_a_protocol_error() {
    let stack = stack(1).await;
    let token = stack.token("alice");
    for bad in [
        "abc",
        "42{}",
        "42abc[\"x\"]",
        "451-[\"upload\",{\"_placeholder\":true,\"num\":0}]",
        "2",
        "",
        "9",
    ] {
        let mut client = Client::connected(stack.gw(0), &token).await;
        client.send_raw(bad);
        let (code, reason) = client.closed().await;
        assert_eq!(
            (code, reason.as_str()),
            (Some(1002), "protocol error"),
            "after {bad:?}"
        );
    }
    let mut client = Client::connected(stack.gw(0), &token).await;
    client.send_message(Message::Binary(vec![1u8, 2, 3].into()));
    assert_eq!(client.closed().await.0, Some(1002), "binary is declined");
    assert!(metric(stack.gw(0), "kanban_gateway_protocol_errors_total").await >= 8.0);
}

#[tokio::test]
async fn messages_over_max_payload_close_with_1009() {
    let stack = stack_with(1, |s| s.engine.max_payload = 1_000).await;
    let mut client = Client::connected(stack.gw(0), &stack.token("alice")).await;
    client.emit("project:join", &[json!("x".repeat(2_000))]);
    assert_eq!(client.closed().await.0, Some(1009));
}

#[tokio::test]
async fn events_beyond_the_rate_limit_are_refused_with_a_code() {
    let stack = stack_with(1, |s| {
        s.limits.events_per_second = 0.5;
        s.limits.event_burst = 2.0;
    })
    .await;
    let mut client = Client::connected(stack.gw(0), &stack.token("alice")).await;
    let id = "00000000-0000-4000-8000-000000000000";
    client.join(id).await;
    client.join(id).await;
    let third = client.join(id).await;
    assert_eq!(third["error"]["code"], "RATE_LIMITED");
}

#[tokio::test]
async fn rooms_per_socket_are_limited_and_unknown_events_are_refused() {
    let stack = stack_with(1, |s| s.limits.max_rooms_per_socket = 1).await;
    let first = stack.create_project("alice", &[]).await;
    let second = stack.create_project("alice", &[]).await;
    let mut client = Client::connected(stack.gw(0), &stack.token("alice")).await;
    assert_eq!(client.join(&first).await["ok"], true);
    let refused = client.join(&second).await;
    assert_eq!(refused["error"]["code"], "VALIDATION");
    let unknown = client.call("ticket:teleport", &[json!({})]).await;
    assert_eq!(unknown["error"]["code"], "VALIDATION");
    client.emit("ticket:teleport", &[]);
    let error = client.wait_for(|i| is_event(i, "error")).await;
    let Incoming::Event(_, args) = error else {
        unreachable!()
    };
    assert_eq!(args[0]["code"], "VALIDATION");
}

#[tokio::test]
async fn connections_beyond_the_replica_limit_are_refused() {
    let stack = stack_with(1, |s| s.limits.max_connections = 1).await;
    let _first = Client::open(stack.gw(0)).await;
    let url = format!(
        "{}/socket.io/?EIO=4&transport=websocket",
        stack.gw(0).replace("http", "ws")
    );
    let refused = tokio_tungstenite::connect_async(url).await;
    assert_eq!(
        refused_with(refused),
        (503, json!({"code": 3, "message": "Server unavailable"})),
        "the second handshake is refused with Engine.IO's error body"
    );
}

/// The status and JSON body of a refused WebSocket handshake.
fn refused_with<S>(
    outcome: Result<S, tokio_tungstenite::tungstenite::Error>,
) -> (u16, serde_json::Value) {
    match outcome {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let body = response.body().as_deref().unwrap_or_default();
            (
                response.status().as_u16(),
                serde_json::from_slice(body).unwrap_or(serde_json::Value::Null),
            )
        }
        Err(error) => panic!("not an HTTP refusal: {error}"),
        Ok(_) => panic!("the handshake was accepted"),
    }
}

/// Reads the open packet, connects with `token`, joins `project` and reads up to the
/// join's ack (presence may come first), over a raw WebSocket the test drives by hand.
async fn connect_and_join<S>(
    ws: &mut tokio_tungstenite::WebSocketStream<S>,
    token: &str,
    project: &str,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    ws.next().await.unwrap().unwrap(); // open
    ws.send(Message::Text(
        format!("40{}", json!({"token": token})).into(),
    ))
    .await
    .unwrap();
    ws.next().await.unwrap().unwrap(); // 40{sid}
    ws.send(Message::Text(
        format!("420[\"project:join\",\"{project}\"]").into(),
    ))
    .await
    .unwrap();
    loop {
        let frame = ws.next().await.unwrap().unwrap();
        if frame.to_text().unwrap().starts_with("430") {
            break;
        }
    }
}

/// A client that stops reading while its room is busy is closed as a slow consumer; the
/// gateway's memory for it stays bounded by its queue.
#[tokio::test]
async fn a_socket_that_stops_reading_is_closed_as_a_slow_consumer() {
    let stack = stack_with(1, |s| {
        s.limits.outbound_queue = 8;
        s.limits.write_timeout_ms = 200;
    })
    .await;
    let project = stack.create_project("alice", &[]).await;
    let url = format!(
        "{}/socket.io/?EIO=4&transport=websocket",
        stack.gw(0).replace("http", "ws")
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    // From here on the client reads nothing while large events pour into its room.
    connect_and_join(&mut ws, &stack.token("alice"), &project).await;
    let mut redis = stack.redis().await;
    let blob = "x".repeat(64 * 1024);
    for seq in 1..=600 {
        let envelope = json!({"projectId": project, "seq": seq, "event": "ticket:deleted", "data": blob, "ts": 1});
        let _: i64 = redis::cmd("PUBLISH")
            .arg(redis_keys::events_channel(&stack.prefix, &project))
            .arg(envelope.to_string())
            .query_async(&mut redis)
            .await
            .unwrap();
        if seq % 50 == 0
            && metric(stack.gw(0), "kanban_gateway_slow_consumer_closes_total").await >= 1.0
        {
            break;
        }
    }
    // Each wait fails the test after its deadline.
    metric_until(
        stack.gw(0),
        "kanban_gateway_slow_consumer_closes_total",
        |v| v >= 1.0,
    )
    .await;
    metric_until(stack.gw(0), "kanban_gateway_connections", |v| v == 0.0).await;
}

/// Whether the kernel still holds the gateway's end of the TCP connection between
/// `server_port` and `client_port` on 127.0.0.1 (any state), from `/proc/net/tcp`.
fn server_end_held(server_port: u16, client_port: u16) -> bool {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    let port = |address: &str| {
        address
            .rsplit_once(':')
            .and_then(|(_, port)| u16::from_str_radix(port, 16).ok())
    };
    table.lines().skip(1).any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        fields.len() > 3
            && port(fields[1]) == Some(server_port)
            && port(fields[2]) == Some(client_port)
    })
}

/// A client that stops reading while its room is busy has its TCP connection reset by
/// the gateway within the documented bound (docs/PROTOCOL.md, "Close reasons"): once
/// its buffers are full (queue 8 frames, a 64 KiB outbox, a 64 KiB SO_SNDBUF: a few dozen
/// 64 KiB events here) it is detected after `write_timeout_ms`, and released at most
/// `2 × min(write_timeout_ms, 1 s)` later (close frame, then reset). The client reads
/// nothing at all; the kernel's own table shows the gateway's end gone.
#[tokio::test]
async fn a_client_that_stops_reading_has_its_tcp_connection_released_within_the_bound() {
    const WRITE_TIMEOUT_MS: u64 = 200;
    let stack = stack_with(1, |s| {
        s.limits.outbound_queue = 8;
        s.limits.write_timeout_ms = WRITE_TIMEOUT_MS;
    })
    .await;
    let project = stack.create_project("alice", &[]).await;
    let server_port: u16 = stack.gw(0).rsplit(':').next().unwrap().parse().unwrap();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", server_port))
        .await
        .unwrap();
    let client_port = tcp.local_addr().unwrap().port();
    let url = format!("ws://127.0.0.1:{server_port}/socket.io/?EIO=4&transport=websocket");
    let (mut ws, _) = tokio_tungstenite::client_async(url, tcp).await.unwrap();
    connect_and_join(&mut ws, &stack.token("alice"), &project).await;
    assert!(server_end_held(server_port, client_port));
    // From here on the client reads nothing. Events pour in until the gateway counts
    // it slow: filling its buffers takes a few dozen events, longer on a loaded machine.
    let started = std::time::Instant::now();
    let mut redis = stack.redis().await;
    let blob = "x".repeat(64 * 1024);
    let slow = "kanban_gateway_slow_consumer_closes_total";
    for seq in 1.. {
        assert!(
            started.elapsed() < WAIT && seq <= 2_000,
            "not detected after {:?} and {seq} events",
            started.elapsed()
        );
        let envelope = json!({"projectId": project, "seq": seq, "event": "ticket:deleted", "data": blob, "ts": 1});
        let _: i64 = redis::cmd("PUBLISH")
            .arg(redis_keys::events_channel(&stack.prefix, &project))
            .arg(envelope.to_string())
            .query_async(&mut redis)
            .await
            .unwrap();
        if seq % 5 == 0 && metric(stack.gw(0), slow).await >= 1.0 {
            break;
        }
    }
    // The slow-consumer count is taken as the session starts to end: from then on the
    // documented bound is 2 × min(write_timeout_ms, 1 s) (close frame, then reset).
    let detected = std::time::Instant::now();
    while server_end_held(server_port, client_port) {
        assert!(
            detected.elapsed() < WAIT,
            "the gateway still holds the connection {WAIT:?} after closing it as slow"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let released = detected.elapsed();
    let bound = Duration::from_millis(2 * WRITE_TIMEOUT_MS);
    let margin = Duration::from_millis(1_600);
    assert!(
        released < bound + margin,
        "released {released:?} after detection"
    );
    metric_until(stack.gw(0), "kanban_gateway_connections", |v| v == 0.0).await;
    drop(ws);
}

#[tokio::test]
async fn drain_refuses_new_sessions_and_closes_open_ones_with_going_away() {
    // A drain window long enough to observe the draining replica before it stops.
    let stack = stack_with(1, |s| s.gateway.drain_window_ms = 3_000).await;
    let project = stack.create_project("alice", &[]).await;
    let mut a = Client::connected(stack.gw(0), &stack.token("alice")).await;
    let mut b = Client::connected(stack.gw(0), &stack.token("alice")).await;
    a.join(&project).await;
    b.join(&project).await;
    let shutdown = stack.gateways[0].shutdown.clone();
    let drained = tokio::spawn(async move { shutdown.drain().await });
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let ready = kanban_test_support::http()
            .get(format!("{}/readyz", stack.gw(0)))
            .send()
            .await
            .expect("a draining replica still answers /readyz");
        if ready.status() == 503 {
            break;
        }
        assert_eq!(ready.status(), 200, "ready until the drain starts");
        assert!(
            std::time::Instant::now() < deadline,
            "never stopped being ready"
        );
        tokio::time::sleep(POLL).await;
    }
    let url = format!(
        "{}/socket.io/?EIO=4&transport=websocket",
        stack.gw(0).replace("http", "ws")
    );
    assert!(
        tokio_tungstenite::connect_async(url).await.is_err(),
        "no new sessions while draining"
    );
    for client in [&mut a, &mut b] {
        let (code, reason) = client.closed().await;
        assert_eq!(
            (code, reason.as_str()),
            (Some(1001), "server shutting down")
        );
    }
    drained.await.unwrap();
}

/// A polling handshake from `origin` (none: a non-browser client).
async fn polling_from(base: &str, origin: Option<&str>) -> reqwest::Response {
    let mut request =
        kanban_test_support::http().get(format!("{base}/socket.io/?EIO=4&transport=polling"));
    if let Some(origin) = origin {
        request = request.header("Origin", origin);
    }
    request.send().await.unwrap()
}

/// A WebSocket handshake from `origin`.
async fn websocket_from(
    base: &str,
    origin: &str,
) -> Result<
    (
        tokio_tungstenite::WebSocketStream<
            tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
        >,
        tokio_tungstenite::tungstenite::handshake::client::Response,
    ),
    tokio_tungstenite::tungstenite::Error,
> {
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(format!(
            "{}/socket.io/?EIO=4&transport=websocket",
            base.replace("http", "ws")
        ))
        .unwrap();
    request
        .headers_mut()
        .insert("Origin", origin.parse().unwrap());
    tokio_tungstenite::connect_async(request).await
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).map(|v| v.to_str().unwrap())
}

#[tokio::test]
async fn by_default_only_the_page_own_origin_and_clients_without_one_are_allowed() {
    let stack = stack(1).await;
    // The request's Host is the gateway's address, so this page is its own origin.
    let own = stack.gw(0).to_owned();
    let allowed = polling_from(&own, Some(&own)).await;
    assert_eq!(allowed.status(), 200);
    assert_eq!(
        header(&allowed, "access-control-allow-origin"),
        Some(own.as_str())
    );
    assert_eq!(
        header(&allowed, "access-control-allow-credentials"),
        Some("true")
    );
    assert!(
        websocket_from(&own, &own).await.is_ok(),
        "same-origin WebSocket"
    );
    let plain = polling_from(&own, None).await;
    assert_eq!(plain.status(), 200, "non-browser clients send no Origin");
    assert_eq!(header(&plain, "access-control-allow-origin"), None);

    let refused = polling_from(&own, Some("https://evil.example")).await;
    assert_eq!(refused.status(), 403);
    assert_eq!(header(&refused, "access-control-allow-origin"), None);
    assert_eq!(
        refused.json::<serde_json::Value>().await.unwrap(),
        json!({"code": 4, "message": "Forbidden"})
    );
    let other_port = own.replace("127.0.0.1:", "127.0.0.1:1");
    assert_eq!(polling_from(&own, Some(&other_port)).await.status(), 403);
    assert_eq!(
        refused_with(websocket_from(&own, "https://evil.example").await),
        (403, json!({"code": 4, "message": "Forbidden"})),
        "WebSocket handshakes too"
    );
}

#[tokio::test]
async fn a_listed_origin_is_allowed_with_credentials_and_others_are_refused() {
    let stack = stack_with(1, |s| {
        s.gateway.allowed_origins = vec!["https://board.example".into()]
    })
    .await;
    let allowed = polling_from(stack.gw(0), Some("https://board.example")).await;
    assert_eq!(allowed.status(), 200);
    assert_eq!(
        header(&allowed, "access-control-allow-origin"),
        Some("https://board.example")
    );
    assert_eq!(
        header(&allowed, "access-control-allow-credentials"),
        Some("true")
    );
    assert!(websocket_from(stack.gw(0), "https://board.example")
        .await
        .is_ok());
    let refused = polling_from(stack.gw(0), Some("https://evil.example")).await;
    assert_eq!(refused.status(), 403);
    assert_eq!(
        refused_with(websocket_from(stack.gw(0), "https://evil.example").await).0,
        403
    );
}

#[tokio::test]
async fn a_configured_star_allows_any_origin_but_never_with_credentials() {
    let stack = stack_with(1, |s| s.gateway.allowed_origins = vec!["*".into()]).await;
    let allowed = polling_from(stack.gw(0), Some("https://anywhere.example")).await;
    assert_eq!(allowed.status(), 200);
    assert_eq!(header(&allowed, "access-control-allow-origin"), Some("*"));
    assert_eq!(header(&allowed, "access-control-allow-credentials"), None);
    assert!(websocket_from(stack.gw(0), "https://anywhere.example")
        .await
        .is_ok());
    let own = polling_from(stack.gw(0), Some(stack.gw(0))).await;
    assert_eq!(
        header(&own, "access-control-allow-credentials"),
        Some("true"),
        "the page's own origin keeps its credentials"
    );
}

/// Redis restarts (empty) under a gateway with a joined socket: the gateway reconnects,
/// resubscribes, and the socket gets every event committed meanwhile, in order.
#[tokio::test]
async fn after_a_redis_restart_the_gateway_resubscribes_and_nothing_is_lost() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut redis = OwnRedis::start_on(port);
    redis.wait_ready().await;
    let stack = crate::helpers::stack_on(redis.url(), 1, |_| {}).await;
    let project = stack.create_project("alice", &[]).await;
    let mut alice = Client::connected(stack.gw(0), &stack.token("alice")).await;
    alice.join(&project).await;
    stack.create_ticket(&project, "alice", "before").await;
    let before = alice.events(1).await;
    assert_eq!(seqs(&before), vec![1]);

    redis.stop();
    for i in 0..3 {
        stack
            .create_ticket(&project, "alice", &format!("during {i}"))
            .await;
    }
    let redis = OwnRedis::start_on(port);
    redis.wait_ready().await;
    stack.create_ticket(&project, "alice", "after").await;
    let events = alice.events(4).await;
    assert_eq!(
        seqs(&events),
        vec![2, 3, 4, 5],
        "everything committed during the outage, in order, then live"
    );
    assert!(metric(stack.gw(0), "kanban_gateway_redis_reconnects_total").await >= 1.0);
    drop(redis);
}

#[tokio::test]
async fn drain_ends_long_polling_sessions_with_the_close_packet() {
    let stack = stack_with(1, |s| s.gateway.drain_window_ms = 500).await;
    let base = stack.gw(0).to_owned();
    let http = kanban_test_support::http();
    let url = |query: &str| format!("{base}/socket.io/?EIO=4&transport=polling{query}");
    let open = http
        .get(url(""))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let open: serde_json::Value = serde_json::from_str(&open[1..]).unwrap();
    let sid = open["sid"].as_str().unwrap().to_owned();
    let connect = format!("40{}", json!({"token": stack.token("alice")}));
    let posted = http
        .post(url(&format!("&sid={sid}")))
        .body(connect)
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 200);
    let connected = http
        .get(url(&format!("&sid={sid}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(connected.starts_with("40{\"sid\""), "{connected}");

    let pending = tokio::spawn({
        let (http, get) = (http.clone(), url(&format!("&sid={sid}")));
        async move { http.get(get).send().await.unwrap().text().await.unwrap() }
    });
    metric_until(&base, "kanban_gateway_polls_waiting", |v| v == 1.0).await;
    let shutdown = stack.gateways[0].shutdown.clone();
    let drained = tokio::spawn(async move { shutdown.drain().await });
    assert_eq!(
        pending.await.unwrap(),
        "1",
        "the held GET gets the close packet"
    );
    drained.await.unwrap();
}
