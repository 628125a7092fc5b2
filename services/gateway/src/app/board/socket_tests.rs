//! The board protocol on a socket, against the in-memory bus and presence
//! ([`crate::memory`]) and a session without a connection
//! ([`crate::transport::testing`]): resume, gap filling, resync, hints.

use super::state::{Board, BoardSocket};
use crate::api_client::ApiClient;
use crate::config::Settings;
use crate::hub::{Hub, RoomEvent};
use crate::memory::{MemoryBus, MemoryPresence};
use crate::metrics::GatewayMetrics;
use crate::transport::testing::TestSession;
use crate::transport::{Application, ToSession};
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

const P: &str = "6f1c2b9e-0d5e-4a57-9a3e-2d6c1f0b7a11";
const T: &str = "9a0d7c1e-5b2f-4e8a-8c3d-1f2e3d4c5b6a";

struct Fixture {
    socket: BoardSocket,
    session: TestSession<RoomEvent>,
    bus: Arc<MemoryBus>,
}

fn fixture() -> Fixture {
    let mut settings = Settings::default();
    settings.gateway.allow_anonymous = true;
    let metrics = Arc::new(GatewayMetrics::new().unwrap());
    let hub = Arc::new(Hub::new(Arc::clone(&metrics)));
    let bus = Arc::new(MemoryBus::new(Arc::clone(&hub)));
    let board = Arc::new(Board {
        settings: settings.clone(),
        hub,
        broker: Arc::clone(&bus) as _,
        presence: Arc::new(MemoryPresence::default()),
        // Anonymous sockets are never checked with the API.
        api: ApiClient::new("http://127.0.0.1:9", Duration::from_millis(50)).unwrap(),
        verifier: None,
        metrics: Arc::clone(&metrics),
    });
    Fixture {
        socket: BoardSocket::new(board, "sid".into()),
        session: TestSession::new(settings, metrics),
        bus,
    }
}

impl Fixture {
    async fn connect(&mut self) {
        let mut io = self.session.io();
        assert!(Application::connect(&mut self.socket, &mut io, "/", None)
            .await
            .is_ok());
    }

    async fn emit(&mut self, name: &str, arg: Value, ack: Option<u64>) {
        let mut io = self.session.io();
        Application::event(&mut self.socket, &mut io, "/", name.into(), vec![arg], ack)
            .await
            .unwrap();
    }

    /// Hands the socket what the hub queued for it.
    async fn deliver_queued(&mut self) {
        while let Some(item) = self.session.queued() {
            if let ToSession::App(event) = item {
                let mut io = self.session.io();
                Application::message(&mut self.socket, &mut io, event)
                    .await
                    .unwrap();
            }
        }
    }

    /// What the client was sent: each Socket.IO packet as (event or ack, its arguments).
    fn written(&self) -> Vec<(String, Vec<Value>)> {
        self.session
            .written()
            .iter()
            .map(|frame| {
                let packet = frame.strip_prefix('4').expect("a Socket.IO message");
                let json_at = packet.find('[').expect("arguments");
                let args: Vec<Value> = serde_json::from_str(&packet[json_at..]).unwrap();
                if packet.starts_with('3') {
                    (format!("ack {}", &packet[1..json_at]), args)
                } else {
                    let name = args[0].as_str().unwrap().to_owned();
                    (name, args[1..].to_vec())
                }
            })
            .collect()
    }
}

/// The seq of each board event written (from its meta argument).
fn board_seqs(written: &[(String, Vec<Value>)]) -> Vec<i64> {
    written
        .iter()
        .filter(|(name, _)| name == "ticket:deleted")
        .map(|(_, args)| args[1]["seq"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn a_join_with_since_seq_replays_what_was_missed_then_acks() {
    let mut f = fixture();
    for seq in 1..=5 {
        f.bus.record(P, seq);
    }
    f.connect().await;
    f.emit(
        "project:join",
        json!({"projectId": P, "sinceSeq": 2}),
        Some(1),
    )
    .await;
    let written = f.written();
    assert_eq!(board_seqs(&written), vec![3, 4, 5]);
    let ack = written.last().unwrap();
    assert_eq!(ack.0, "ack 1");
    assert_eq!(ack.1[0], json!({"ok": true, "seq": 5, "userCount": 1}));
}

#[tokio::test]
async fn a_gap_in_the_live_stream_is_filled_from_history_in_order_and_duplicates_dropped() {
    let mut f = fixture();
    f.connect().await;
    f.emit("project:join", json!(P), None).await;
    assert_eq!(f.bus.publish(P, 1), 1);
    f.deliver_queued().await;
    // Seq 2 reached history but not this replica's subscription; 3 arrives live.
    f.bus.record(P, 2);
    f.bus.publish(P, 3);
    f.bus.publish(P, 3);
    f.deliver_queued().await;
    assert_eq!(board_seqs(&f.written()), vec![1, 2, 3]);
}

#[tokio::test]
async fn a_gap_history_no_longer_holds_is_a_resync_never_a_silent_hole() {
    let mut f = fixture();
    f.connect().await;
    f.emit("project:join", json!(P), None).await;
    f.bus.publish(P, 1);
    f.deliver_queued().await;
    f.bus.record(P, 2);
    f.bus.trim_below(P, 3);
    f.bus.publish(P, 3);
    f.deliver_queued().await;
    let written = f.written();
    let names: Vec<&str> = written.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        vec!["ticket:deleted", "project:resync", "ticket:deleted"]
    );
    assert_eq!(
        written[1].1[0],
        json!({"projectId": P, "reason": "gap", "seq": 2})
    );
    assert_eq!(board_seqs(&written), vec![1, 3]);
}

#[tokio::test]
async fn an_anonymous_resume_whose_history_cannot_be_read_is_told_to_resync() {
    let mut f = fixture();
    f.bus.unreadable.store(true, Ordering::SeqCst);
    f.connect().await;
    f.emit(
        "project:join",
        json!({"projectId": P, "sinceSeq": 4}),
        Some(2),
    )
    .await;
    let written = f.written();
    assert_eq!(written[0].0, "project:resync");
    assert_eq!(
        written[0].1[0],
        json!({"projectId": P, "reason": "history_unavailable", "seq": 4})
    );
    assert_eq!(written[1].0, "ack 2");
}

#[tokio::test]
async fn hints_need_the_room_and_are_relayed_with_the_user() {
    let mut f = fixture();
    f.connect().await;
    let hint = json!({"projectId": P, "ticketId": T, "action": "dragging"});
    f.emit("ticket:hint", hint.clone(), Some(1)).await;
    assert_eq!(f.written()[0].1[0]["error"]["code"], json!("FORBIDDEN"));
    f.emit("project:join", json!(P), None).await;
    f.written();
    f.emit("ticket:hint", hint, Some(2)).await;
    assert_eq!(
        f.written()[0],
        ("ack 2".to_owned(), vec![json!({"ok": true})])
    );
    let relayed = f.bus.hints();
    assert_eq!(relayed.len(), 1);
    assert_eq!(relayed[0].user_id, "anonymous-sid");
}

/// A session's future lives as long as its connection and is as large as its largest
/// state, so rare paths (the close, the client's packets, joins, commands, replays,
/// revocations) are boxed. It was 4 264 bytes for a board socket before; the bound leaves
/// room for the build's own layout (docs/benchmarks.md has the RSS it saves).
#[tokio::test]
async fn a_board_session_keeps_a_small_resident_future() {
    let f = fixture();
    let board = Arc::clone(&f.socket.board);
    let session = crate::transport::testing::polling_session(
        board.settings.clone(),
        Arc::clone(&board.metrics),
        &super::BoardApp(board),
    );
    let run = session.run(false);
    let size = std::mem::size_of_val(&run);
    assert!(size <= 3_500, "a board session's future is {size} bytes");
}
