//! `kanban-loadtest presence [--sockets N]`: N WebSocket clients join one board as fast as
//! they can through a real gateway (in-process, on the local Redis and PostgreSQL); reports
//! the ramp time and how many presence messages the storm cost.

use futures_util::{SinkExt, StreamExt};
use secrecy::SecretString;
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

pub async fn run(sockets: usize, redis_url: String) {
    let prefix = kanban_test_support::redis_prefix();
    let mut settings = gateway::Settings::default();
    settings.http.port = 0;
    settings.redis.url = SecretString::from(redis_url);
    settings.redis.key_prefix = prefix;
    // Anonymous sockets: each is a distinct user and joins without an API round trip, so
    // this measures the gateway and presence, not the ticket API's access checks.
    settings.gateway.allow_anonymous = true;
    settings.limits.max_connections = sockets + 100;
    let app = gateway::Application::build(settings)
        .await
        .expect("start a gateway");
    let url = format!(
        "ws://127.0.0.1:{}/socket.io/?EIO=4&transport=websocket",
        app.port()
    );
    tokio::spawn(app.run_until_stopped());
    let project = uuid_like();

    let storm = Arc::new(Storm::new());
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let mut tasks = Vec::with_capacity(sockets);
    for _ in 0..sockets {
        let (url, project, storm) = (url.clone(), project.clone(), Arc::clone(&storm));
        tasks.push(tokio::spawn(storm_client(url, project, storm, deadline)));
    }
    let Storm {
        presence_messages,
        most,
        joined,
        ..
    } = &*storm;
    while joined.load(Ordering::SeqCst) < sockets {
        tokio::time::sleep(Duration::from_millis(10)).await;
        if started.elapsed() > Duration::from_secs(120) {
            panic!(
                "only {} of {sockets} sockets joined in 120 s",
                joined.load(Ordering::SeqCst)
            );
        }
    }
    let ramp = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let total = presence_messages.load(Ordering::SeqCst);
    println!("presence benchmark: {sockets} sockets joining one board through one gateway");
    println!(
        "  ramp (first connect → last join ack): {:.2} s",
        ramp.as_secs_f64()
    );
    println!(
        "  presence messages received: {total} in all, at most {} by one socket",
        most.load(Ordering::SeqCst)
    );
    println!(
        "  an announce-every-join design would send {} (N·(N+1)/2)",
        sockets * (sockets + 1) / 2
    );
    for task in tasks {
        task.abort();
    }
}

/// What the clients of a join storm count together, and the gate that bounds how many
/// are setting up at once.
pub struct Storm {
    pub presence_messages: AtomicUsize,
    /// The most presence messages one socket received.
    pub most: AtomicUsize,
    pub joined: AtomicUsize,
    gate: Arc<tokio::sync::Semaphore>,
}

impl Storm {
    /// At most 200 handshakes in flight.
    pub fn new() -> Storm {
        Storm {
            presence_messages: AtomicUsize::new(0),
            most: AtomicUsize::new(0),
            joined: AtomicUsize::new(0),
            gate: Arc::new(tokio::sync::Semaphore::new(200)),
        }
    }
}

/// One client of a join storm: connects to `url`, joins `project` and counts the
/// presence messages it receives until `deadline`, answering pings. Its place at the
/// gate is given back at the join's ack.
pub async fn storm_client(
    url: String,
    project: String,
    storm: Arc<Storm>,
    deadline: tokio::time::Instant,
) {
    let mut permit = Some(
        Arc::clone(&storm.gate)
            .acquire_owned()
            .await
            .expect("semaphore"),
    );
    let (mut sink, mut stream) =
        connect_and_join(&url, json!(["project:join", project]), None).await;
    let mut mine = 0usize;
    loop {
        let next = tokio::time::timeout_at(deadline, stream.next()).await;
        let Ok(Some(Ok(Message::Text(text)))) = next else {
            break;
        };
        let text = text.as_str();
        if text == "2" {
            let _ = sink.send(Message::Text("3".into())).await;
        } else if text.starts_with("430") && permit.is_some() {
            storm.joined.fetch_add(1, Ordering::SeqCst);
            permit.take();
        } else if text.starts_with("42[\"room:user") {
            mine += 1;
            storm.presence_messages.fetch_add(1, Ordering::SeqCst);
            storm.most.fetch_max(mine, Ordering::SeqCst);
        }
    }
    let _ = sink.close().await;
}

/// A WebSocket client that has read the Engine.IO open packet, CONNECTed to `/`, waited
/// for the CONNECT's answer (as socket.io-client does before it emits; the Node
/// reference drops events that come earlier) and sent `join` (a `["project:join", …]`
/// array) with ack id 0; from the clients' own namespace with `apart`.
pub async fn connect_and_join(
    url: &str,
    join: serde_json::Value,
    apart: Option<&crate::apart::Apart>,
) -> (Sink, Stream) {
    let (ws, _) = crate::ws::connect_from(url, apart).await.expect("connect");
    let (mut sink, mut stream) = ws.split();
    stream.next().await; // open
    sink.send(Message::Text("40".into())).await.expect("send");
    loop {
        match stream.next().await {
            Some(Ok(Message::Text(text))) if text.as_str().starts_with("40") => break,
            Some(Ok(Message::Text(text))) if text.as_str() == "2" => {
                let _ = sink.send(Message::Text("3".into())).await;
            }
            Some(Ok(_)) => {}
            _ => break, // closed: the caller sees the stream end
        }
    }
    sink.send(Message::Text(format!("420{join}").into()))
        .await
        .expect("send");
    (sink, stream)
}

/// A load-tool client's WebSocket, split.
pub type Sink = futures_util::stream::SplitSink<crate::ws::Socket, Message>;
pub type Stream = futures_util::stream::SplitStream<crate::ws::Socket>;

/// What a client makes of one WebSocket message.
pub enum Frame {
    /// A text frame for the scenario to read.
    Text(tokio_tungstenite::tungstenite::Utf8Bytes),
    /// Nothing to read: a control frame, or an Engine.IO ping (answered here).
    Skip,
    /// The server closed the connection.
    Closed,
}

pub async fn frame(sink: &mut Sink, message: Message) -> Frame {
    match message {
        Message::Text(text) if text.as_str() == "2" => {
            let _ = sink.send(Message::Text("3".into())).await;
            Frame::Skip
        }
        Message::Text(text) => Frame::Text(text),
        Message::Close(_) => Frame::Closed,
        _ => Frame::Skip,
    }
}

pub fn uuid_like() -> String {
    let mut rng = rand::rng();
    let bytes: [u8; 16] = rand::Rng::random(&mut rng);
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
        u16::from_be_bytes([bytes[4], bytes[5]]),
        u16::from_be_bytes([bytes[6], bytes[7]]) & 0x0fff,
        u16::from_be_bytes([bytes[8], bytes[9]]) & 0x0fff,
        u64::from_be_bytes([
            0, 0, bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]
        ])
    )
}
