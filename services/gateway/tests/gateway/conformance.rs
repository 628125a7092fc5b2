//! The Engine.IO v4 / Socket.IO v5 behaviours the stock client relies on (PROTOCOL.md),
//! checked against the echo mode that the official conformance suite targets.

use crate::client::{Client, Incoming};
use crate::helpers::{metric_until, WAIT};
use futures_util::{SinkExt, StreamExt};
use gateway::{Application, Settings};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

async fn echo_gateway() -> String {
    let mut settings = Settings::conformance();
    settings.http.port = 0;
    settings.http.workers = Some(1);
    let app = Application::build(settings).await.expect("echo gateway");
    let address = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    address
}

/// Waits until a long-poll GET is held open by the gateway at `base`.
async fn parked(base: &str) {
    metric_until(base, "kanban_gateway_polls_waiting", |v| v == 1.0).await;
}

fn url(base: &str, query: &str) -> String {
    format!("{base}/socket.io/?EIO=4&{query}")
}

async fn poll_handshake(base: &str) -> (String, Value) {
    let response = kanban_test_support::http()
        .get(url(base, "transport=polling&t=abc"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let body = response.text().await.unwrap();
    assert!(body.starts_with('0'), "{body}");
    let open: Value = serde_json::from_str(&body[1..]).unwrap();
    (open["sid"].as_str().unwrap().to_owned(), open)
}

async fn poll(base: &str, sid: &str) -> String {
    kanban_test_support::http()
        .get(url(base, &format!("transport=polling&sid={sid}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// One long-poll, with pings answered and left out (a slow machine may see one anywhere).
async fn poll_data(base: &str, sid: &str) -> String {
    loop {
        let body = poll(base, sid).await;
        let packets: Vec<&str> = body.split('\u{1e}').filter(|p| *p != "2").collect();
        if packets.len() < body.split('\u{1e}').count() {
            post(base, sid, "3").await;
        }
        if !packets.is_empty() {
            return packets.join("\u{1e}");
        }
    }
}

/// Long-polls until `count` non-ping packets have arrived (they may come in several GETs).
async fn poll_packets(base: &str, sid: &str, count: usize) -> Vec<String> {
    let mut packets = Vec::new();
    while packets.len() < count {
        let body = poll_data(base, sid).await;
        packets.extend(body.split('\u{1e}').map(str::to_owned));
    }
    packets
}

async fn post(base: &str, sid: &str, body: &str) -> (u16, String) {
    let response = kanban_test_support::http()
        .post(url(base, &format!("transport=polling&sid={sid}")))
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn the_websocket_open_packet_has_exactly_the_five_keys() {
    let base = echo_gateway().await;
    let client = Client::open(&base).await;
    let mut keys: Vec<&str> = client
        .open
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        vec![
            "maxPayload",
            "pingInterval",
            "pingTimeout",
            "sid",
            "upgrades"
        ]
    );
    assert_eq!(client.open["upgrades"], json!([]));
    assert_eq!(client.open["pingInterval"], 300);
    assert_eq!(client.open["pingTimeout"], 200);
    assert_eq!(client.open["maxPayload"], 1_000_000);
}

#[tokio::test]
async fn connect_emits_auth_and_events_echo_and_acks_return_their_arguments() {
    let base = echo_gateway().await;
    let mut client = Client::open(&base).await;
    client.send_raw(r#"40{"token":"abc"}"#);
    let Incoming::Other(reply) = client.next().await else {
        panic!()
    };
    assert!(reply.starts_with("40{\"sid\":\""), "{reply}");
    assert_eq!(
        client.next().await,
        Incoming::Event("auth".into(), vec![json!({"token": "abc"})])
    );
    client.emit("message", &[json!(1), json!("2"), json!({"3": [true]})]);
    assert_eq!(
        client.next().await,
        Incoming::Event(
            "message-back".into(),
            vec![json!(1), json!("2"), json!({"3": [true]})]
        )
    );
    let acked = client
        .call("message-with-ack", &[json!("x"), json!(7)])
        .await;
    assert_eq!(acked, json!("x"));
    // Custom namespace and an unknown one.
    client.send_raw("40/custom,");
    let Incoming::Other(reply) = client.next().await else {
        panic!()
    };
    assert!(reply.starts_with("40/custom,{\"sid\":"), "{reply}");
    assert_eq!(
        client.next().await,
        Incoming::Other(r#"42/custom,["auth",{}]"#.into())
    );
    client.send_raw("40/random,");
    assert_eq!(
        client.next().await,
        Incoming::Other(r#"44/random,{"message":"Invalid namespace"}"#.into())
    );
}

#[tokio::test]
async fn the_server_pings_and_closes_a_session_that_does_not_pong() {
    let base = echo_gateway().await;
    let (mut ws, _) =
        tokio_tungstenite::connect_async(url(&base.replace("http", "ws"), "transport=websocket"))
            .await
            .unwrap();
    let started = Instant::now();
    let mut got_ping = false;
    let closed = tokio::time::timeout(WAIT, async {
        while let Some(Ok(message)) = ws.next().await {
            match message {
                Message::Text(text) if text.as_str() == "2" => got_ping = true,
                Message::Close(_) => break,
                _ => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the silent session was never closed");
    assert!(got_ping);
    assert!(
        started.elapsed() >= Duration::from_millis(450),
        "closed after pingInterval + pingTimeout"
    );
}

#[tokio::test]
async fn a_session_without_connect_is_closed_after_connect_timeout() {
    let base = echo_gateway().await;
    let mut client = Client::open(&base).await;
    let started = Instant::now();
    let (code, reason) = client.closed().await;
    assert_eq!((code, reason.as_str()), (Some(4002), "connect timeout"));
    assert!(started.elapsed() >= Duration::from_millis(900));
}

#[tokio::test]
async fn polling_handshake_messages_and_heartbeat() {
    let base = echo_gateway().await;
    let (sid, open) = poll_handshake(&base).await;
    assert_eq!(open["upgrades"], json!(["websocket"]));
    assert_eq!(post(&base, &sid, "40").await, (200, "ok".into()));
    let packets = poll_packets(&base, &sid, 2).await;
    assert!(packets[0].starts_with("40{\"sid\":"), "{packets:?}");
    assert_eq!(packets[1], r#"42["auth",{}]"#);
    assert_eq!(
        post(
            &base,
            &sid,
            "42[\"message\",\"hi\"]\u{1e}421[\"message-with-ack\",1]"
        )
        .await
        .0,
        200
    );
    let body = poll_data(&base, &sid).await;
    assert_eq!(body, "42[\"message-back\",\"hi\"]\u{1e}431[1]");
    // With nothing else to send, a GET is held until the server pings.
    assert_eq!(poll(&base, &sid).await, "2");
    assert_eq!(post(&base, &sid, "3").await.0, 200);
}

async fn get_json(base: &str, query: &str) -> (u16, Value) {
    let response = kanban_test_support::http()
        .get(format!("{base}/socket.io/?{query}"))
        .send()
        .await
        .unwrap();
    (
        response.status().as_u16(),
        response.json::<Value>().await.unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn polling_errors_have_engine_io_codes() {
    let base = echo_gateway().await;
    let check = |status: u16, code: u64| {
        move |(s, body): (u16, Value)| {
            assert_eq!(s, status, "{body}");
            assert_eq!(body["code"], code, "{body}");
        }
    };
    check(400, 0)(get_json(&base, "EIO=4&transport=carrier-pigeon").await);
    check(400, 1)(get_json(&base, "EIO=4&transport=polling&sid=nope").await);
    check(400, 5)(get_json(&base, "EIO=3&transport=polling").await);
    check(400, 5)(get_json(&base, "transport=polling").await);
    let response = kanban_test_support::http()
        .post(url(&base, "transport=polling"))
        .body("40")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(response.json::<Value>().await.unwrap()["code"], 2);
    let plain = kanban_test_support::http()
        .get(url(&base, "transport=websocket"))
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 400, "a websocket request without Upgrade");

    let (sid, _) = poll_handshake(&base).await;
    let (status, _) = post(&base, &sid, &"4".repeat(1_000_001)).await;
    assert_eq!(status, 413);
}

#[tokio::test]
async fn a_polling_session_upgrades_to_websocket() {
    let base = echo_gateway().await;
    let (sid, _) = poll_handshake(&base).await;
    post(&base, &sid, "40").await;
    poll_packets(&base, &sid, 2).await; // 40{sid} and the auth event
    let pending = tokio::spawn({
        let (base, sid) = (base.clone(), sid.clone());
        async move { poll(&base, &sid).await }
    });
    parked(&base).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(url(
        &base.replace("http", "ws"),
        &format!("transport=websocket&sid={sid}"),
    ))
    .await
    .unwrap();
    ws.send(Message::Text("2probe".into())).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::Text("3probe".into())
    );
    assert_eq!(
        pending.await.unwrap(),
        "6",
        "the pending GET is released with a noop"
    );
    ws.send(Message::Text("5".into())).await.unwrap();
    ws.send(Message::Text("42[\"message\",\"over ws\"]".into()))
        .await
        .unwrap();
    loop {
        let Message::Text(text) = ws.next().await.unwrap().unwrap() else {
            continue;
        };
        if text.as_str() == "2" {
            ws.send(Message::Text("3".into())).await.unwrap();
            continue;
        }
        assert_eq!(text.as_str(), "42[\"message-back\",\"over ws\"]");
        break;
    }
    let after = kanban_test_support::http()
        .get(url(&base, &format!("transport=polling&sid={sid}")))
        .send()
        .await
        .unwrap();
    assert_eq!(
        after.status(),
        400,
        "polling with an upgraded sid is refused"
    );
}

#[tokio::test]
async fn overlapping_long_polls_close_the_session() {
    let base = echo_gateway().await;
    let (sid, _) = poll_handshake(&base).await;
    let first = tokio::spawn({
        let (base, sid) = (base.clone(), sid.clone());
        async move { poll(&base, &sid).await }
    });
    parked(&base).await;
    let second = kanban_test_support::http()
        .get(url(&base, &format!("transport=polling&sid={sid}")))
        .send()
        .await
        .unwrap();
    assert_eq!(second.status(), 400);
    assert_eq!(
        first.await.unwrap(),
        "1",
        "the pending GET gets the close packet"
    );
}

#[tokio::test]
async fn a_polling_client_close_releases_the_pending_get_and_forgets_the_sid() {
    let base = echo_gateway().await;
    let (sid, _) = poll_handshake(&base).await;
    let pending = tokio::spawn({
        let (base, sid) = (base.clone(), sid.clone());
        async move { poll(&base, &sid).await }
    });
    parked(&base).await;
    assert_eq!(post(&base, &sid, "1").await.0, 200);
    assert_eq!(pending.await.unwrap(), "6");
    // The released GET forgot the sid before it answered.
    let after = kanban_test_support::http()
        .get(url(&base, &format!("transport=polling&sid={sid}")))
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 400);
}
