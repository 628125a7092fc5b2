//! One `idle` client and the stages it goes through with all the others (Engine.IO
//! open, Socket.IO connect, join, burst, done), shared by the run's own clients and those
//! of its worker processes (`idle_workers`).

use crate::presence::{Sink, Stream};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

/// The layers the clients go through together; each waits for the signal to start.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub(crate) enum Stage {
    Open,
    Connect,
    Join,
    Burst,
    Done,
}

const STAGES: [(Stage, &str); 5] = [
    (Stage::Open, "open"),
    (Stage::Connect, "connect"),
    (Stage::Join, "join"),
    (Stage::Burst, "burst"),
    (Stage::Done, "done"),
];

impl Stage {
    /// The stage's name, as a worker process is told it.
    pub(crate) fn name(self) -> &'static str {
        STAGES
            .iter()
            .find(|(stage, _)| *stage == self)
            .map_or("done", |(_, name)| name)
    }

    pub(crate) fn parse(name: &str) -> Option<Stage> {
        STAGES
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(stage, _)| *stage)
    }
}

/// Clients that have finished each stage.
#[derive(Default)]
pub(crate) struct Progress {
    pub(crate) opened: AtomicUsize,
    pub(crate) connected: AtomicUsize,
    pub(crate) joined: AtomicUsize,
    pub(crate) burst_received: AtomicUsize,
    pub(crate) failed: AtomicUsize,
}

pub(crate) async fn client(
    address: String,
    board: String,
    burst: i64,
    mut stage: watch::Receiver<Stage>,
    progress: &Progress,
    gate: Arc<tokio::sync::Semaphore>,
) {
    let permit = gate.acquire_owned().await.expect("semaphore");
    let url = format!("ws://{address}/socket.io/?EIO=4&transport=websocket");
    let Ok((ws, _)) = crate::ws::connect(&url).await else {
        progress.failed.fetch_add(1, Ordering::SeqCst);
        return;
    };
    let (mut sink, mut stream) = ws.split();
    if !matches!(stream.next().await, Some(Ok(Message::Text(t))) if t.starts_with('0')) {
        progress.failed.fetch_add(1, Ordering::SeqCst);
        return;
    }
    drop(permit);
    progress.opened.fetch_add(1, Ordering::SeqCst);

    let steps: [(Stage, String, &str, &AtomicUsize); 2] = [
        (Stage::Connect, "40".to_owned(), "40", &progress.connected),
        (
            Stage::Join,
            format!("420{}", json!(["project:join", board])),
            "430",
            &progress.joined,
        ),
    ];
    // Burst events counted from the start: one may arrive before this client saw the
    // stage change (a worker process learns it through a pipe).
    let mut received = 0;
    for (when, send, answer, done) in steps {
        if !idle_until(&mut stage, when, &mut sink, &mut stream, &mut received).await {
            progress.failed.fetch_add(1, Ordering::SeqCst);
            return;
        }
        if sink.send(Message::Text(send.into())).await.is_err()
            || !read_until(&mut sink, &mut stream, |t| t.starts_with(answer)).await
        {
            progress.failed.fetch_add(1, Ordering::SeqCst);
            return;
        }
        done.fetch_add(1, Ordering::SeqCst);
    }
    // The burst: count this board's events until all arrived.
    if !idle_until(
        &mut stage,
        Stage::Burst,
        &mut sink,
        &mut stream,
        &mut received,
    )
    .await
    {
        progress.failed.fetch_add(1, Ordering::SeqCst);
        return;
    }
    while received < burst {
        if !read_until(&mut sink, &mut stream, is_burst_event).await {
            progress.failed.fetch_add(1, Ordering::SeqCst);
            return;
        }
        received += 1;
    }
    progress.burst_received.fetch_add(1, Ordering::SeqCst);
    idle_until(
        &mut stage,
        Stage::Done,
        &mut sink,
        &mut stream,
        &mut received,
    )
    .await;
    let _ = sink.close().await;
}

fn is_burst_event(text: &str) -> bool {
    text.starts_with("42[\"ticket:deleted\"")
}

/// Answers pings until the run reaches `stage`, counting burst events in `received`;
/// false if the server closed.
async fn idle_until(
    watch: &mut watch::Receiver<Stage>,
    stage: Stage,
    sink: &mut Sink,
    stream: &mut Stream,
    received: &mut i64,
) -> bool {
    while *watch.borrow_and_update() < stage {
        tokio::select! {
            changed = watch.changed() => if changed.is_err() { return false },
            message = stream.next() => match message {
                Some(Ok(Message::Text(t))) if t.as_str() == "2" => {
                    let _ = sink.send(Message::Text("3".into())).await;
                }
                Some(Ok(Message::Text(t))) if is_burst_event(t.as_str()) => *received += 1,
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return false,
                Some(Ok(_)) => {}
            },
        }
    }
    true
}

/// Reads (answering pings) until a text frame for which `wanted` holds; false if the
/// server closed first or nothing came for 120 s.
async fn read_until(sink: &mut Sink, stream: &mut Stream, wanted: impl Fn(&str) -> bool) -> bool {
    loop {
        let next = tokio::time::timeout(Duration::from_secs(120), stream.next()).await;
        match next {
            Ok(Some(Ok(Message::Text(t)))) if t.as_str() == "2" => {
                let _ = sink.send(Message::Text("3".into())).await;
            }
            Ok(Some(Ok(Message::Text(t)))) if wanted(t.as_str()) => return true,
            Ok(Some(Ok(Message::Close(_)))) | Ok(Some(Err(_))) | Ok(None) | Err(_) => return false,
            Ok(Some(Ok(_))) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stage_reaches_a_worker_by_its_name() {
        for (stage, name) in STAGES {
            assert_eq!(stage.name(), name);
            assert_eq!(Stage::parse(name), Some(stage));
        }
        assert_eq!(Stage::parse("later"), None);
    }

    #[test]
    fn burst_events_are_told_from_other_frames() {
        assert!(is_burst_event(r#"42["ticket:deleted",{"seq":1}]"#));
        assert!(!is_burst_event(r#"42["presence:update",{}]"#));
        assert!(!is_burst_event("2"));
    }
}
