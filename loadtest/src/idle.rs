//! `kanban-loadtest idle [--sockets N] [--rooms R] [--burst E] [--server kanban|node|both]
//! [--results FILE]`: what a connection costs a server at rest. N WebSocket clients over
//! two server processes go through the protocol one layer at a time, all of them
//! together, and the servers' memory is read after each layer: Engine.IO sessions open
//! (no Socket.IO connect yet), Socket.IO connected, each joined to one of R boards; then a
//! burst of E events to every board (E × N deliveries) and the memory right after it and
//! once it has settled. Per layer: RSS per connection (from /proc) and, for a gateway built
//! with `--features heap-stats`, its live heap bytes per connection, which splits a
//! connection's bytes into what the code allocates and what the allocator keeps. More
//! sockets than this process may open are held by worker processes (`idle_workers`).

use crate::presence::{Sink, Stream};
use crate::procs::Kind;
use crate::servers::Pair;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

pub struct Options {
    pub sockets: usize,
    pub rooms: usize,
    pub burst: i64,
    pub results: std::path::PathBuf,
    pub servers: Vec<Kind>,
    pub node_reference: Option<std::path::PathBuf>,
}

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

/// Where the run's clients are: tasks of this process, or worker processes when there are
/// more than this process may open.
enum Clients {
    Local {
        stage: watch::Sender<Stage>,
        tasks: Vec<tokio::task::JoinHandle<()>>,
    },
    Workers(Vec<crate::idle_workers::Worker>),
}

impl Clients {
    fn start(
        sockets: usize,
        addresses: &[String],
        boards: &[String],
        burst: i64,
        progress: &Arc<Progress>,
    ) -> Clients {
        let per_process = crate::idle_workers::per_process();
        if sockets > per_process {
            let workers = sockets.div_ceil(per_process);
            let share = sockets.div_ceil(workers);
            println!("idle: {sockets} sockets over {workers} worker processes (open-file limit)");
            let workers = (0..sockets)
                .step_by(share)
                .map(|first| {
                    crate::idle_workers::Worker::spawn(
                        first,
                        share.min(sockets - first),
                        addresses,
                        boards,
                        burst,
                        Arc::clone(progress),
                    )
                })
                .collect();
            return Clients::Workers(workers);
        }
        let (stage, watch_stage) = watch::channel(Stage::Open);
        let gate = Arc::new(tokio::sync::Semaphore::new(200));
        let mut tasks = Vec::with_capacity(sockets);
        for i in 0..sockets {
            let address = addresses[i % addresses.len()].clone();
            let board = boards[i % boards.len()].clone();
            let (watch_stage, progress, gate) =
                (watch_stage.clone(), Arc::clone(progress), Arc::clone(&gate));
            tasks.push(tokio::spawn(async move {
                client(address, board, burst, watch_stage, &progress, gate).await;
            }));
        }
        Clients::Local { stage, tasks }
    }

    /// The CPU seconds the worker processes used so far (none: the clients are local).
    fn worker_cpu_seconds(&self) -> Option<f64> {
        match self {
            Clients::Local { .. } => None,
            Clients::Workers(workers) => Some(
                workers
                    .iter()
                    .map(|w| crate::procs::cpu_seconds(w.pid()))
                    .sum(),
            ),
        }
    }

    fn advance(&mut self, next: Stage) {
        match self {
            Clients::Local { stage, .. } => {
                stage.send_replace(next);
            }
            Clients::Workers(workers) => workers.iter_mut().for_each(|w| w.advance(next)),
        }
    }

    async fn finish(self) {
        match self {
            Clients::Local { stage, tasks } => {
                stage.send_replace(Stage::Done);
                for task in tasks {
                    let _ = task.await;
                }
            }
            Clients::Workers(workers) => {
                let _ = tokio::task::spawn_blocking(move || {
                    workers
                        .into_iter()
                        .for_each(crate::idle_workers::Worker::finish)
                })
                .await;
            }
        }
    }
}

/// One reading of the servers' memory.
struct Reading {
    label: &'static str,
    rss_kib: u64,
    heap_bytes: Option<f64>,
}

pub async fn run(options: Options, redis_url: String) {
    // The servers inherit the limit; clients beyond what this process may open go to
    // worker processes (`Clients::start`), so only the servers' share must fit here.
    raise_file_limit(options.sockets.div_ceil(2));
    let mut results = Vec::new();
    for &kind in &options.servers {
        results.push((kind, run_one(kind, &options, &redis_url).await));
    }
    if let [(_, ours), (_, node)] = results.as_slice() {
        println!("idle side by side (kanban-gateway / node-reference), KiB per connection:");
        for (a, b) in ours.iter().zip(node) {
            println!(
                "  {:<28} {:>6.1} / {:>6.1} ({:.2}×)",
                a.0,
                a.1,
                b.1,
                a.1 / b.1.max(1e-9)
            );
        }
    }
}

async fn run_one(kind: Kind, options: &Options, redis_url: &str) -> Vec<(&'static str, f64)> {
    let sockets = options.sockets;
    let rooms = options.rooms.max(1);
    let prefix = kanban_test_support::redis_prefix();
    let pair = Pair::start(
        kind,
        redis_url,
        &prefix,
        sockets,
        options.node_reference.as_deref(),
    )
    .await;
    let name = kind.name();
    let host = crate::host::Sample::now();
    let cpu_before = pair.cpu_seconds();
    let boards: Vec<String> = (0..rooms).map(|_| crate::presence::uuid_like()).collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut readings = vec![reading(&pair, "started, no connection").await];

    let progress = Arc::new(Progress::default());
    let started = Instant::now();
    let mut clients = Clients::start(
        sockets,
        &pair.addresses(),
        &boards,
        options.burst,
        &progress,
    );
    let step = |what: &'static str, count: fn(&Progress) -> &AtomicUsize| {
        let progress = Arc::clone(&progress);
        async move {
            let deadline = Instant::now() + Duration::from_secs(300);
            let bar = crate::progress::count(sockets as u64, what);
            loop {
                let done = count(&progress).load(Ordering::SeqCst);
                let failed = progress.failed.load(Ordering::SeqCst);
                bar.set_position(done as u64);
                if done + failed >= sockets {
                    bar.finish_and_clear();
                    assert_eq!(failed, 0, "{failed} clients failed before: {what}");
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "only {done} of {sockets} clients: {what}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            // Let the servers finish what the last messages started.
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    };

    step("Engine.IO sessions open", |p| &p.opened).await;
    let ramp = started.elapsed();
    readings.push(reading(&pair, "Engine.IO session open").await);
    clients.advance(Stage::Connect);
    step("Socket.IO connected", |p| &p.connected).await;
    readings.push(reading(&pair, "Socket.IO connected").await);
    clients.advance(Stage::Join);
    step("joined a board", |p| &p.joined).await;
    readings.push(reading(&pair, "joined a board").await);

    clients.advance(Stage::Burst);
    let burst_started = Instant::now();
    for seq in 1..=options.burst {
        for board in &boards {
            pair.publish(board, seq, 0).await;
        }
    }
    step("burst received", |p| &p.burst_received).await;
    let burst_took = burst_started.elapsed();
    readings.push(reading(&pair, "right after the burst").await);
    tokio::time::sleep(Duration::from_secs(10)).await;
    readings.push(reading(&pair, "10 s after the burst").await);
    let slow = pair.slow_closes().await;
    let cpu = pair.cpu_seconds() - cpu_before;
    let host = match clients.worker_cpu_seconds() {
        Some(workers) => host.report_with(&[("servers", cpu), ("client workers", workers)]),
        None => host.report_with(&[("servers", cpu)]),
    };

    clients.finish().await;
    for board in &boards {
        pair.forget(board).await;
    }

    let base = &readings[0];
    println!(
        "idle ({name}): {sockets} sockets over 2 server processes, {rooms} boards, opened in {:.1} s; \
         burst of {} events per board ({} deliveries) received in {:.1} s; slow closes {}",
        ramp.as_secs_f64(),
        options.burst,
        options.burst as usize * sockets,
        burst_took.as_secs_f64(),
        slow.map_or_else(|| "n/a".to_owned(), |s| format!("{s}")),
    );
    println!(
        "  {:<28} {:>10} {:>12} {:>12}",
        "", "RSS KiB", "KiB/conn", "heap B/conn"
    );
    let mut per_connection = Vec::new();
    let mut json_readings = Vec::new();
    for r in &readings {
        let per = (r.rss_kib as f64 - base.rss_kib as f64) / sockets as f64;
        let heap = r
            .heap_bytes
            .zip(base.heap_bytes)
            .map(|(h, b)| (h - b) / sockets as f64);
        println!(
            "  {:<28} {:>10} {:>12.1} {:>12}",
            r.label,
            r.rss_kib,
            per,
            heap.map_or_else(|| "-".to_owned(), |h| format!("{h:.0}")),
        );
        per_connection.push((r.label, per));
        json_readings.push(json!({
            "stage": r.label, "rss_kib": r.rss_kib, "rss_kib_per_connection": per,
            "heap_bytes": r.heap_bytes, "heap_bytes_per_connection": heap,
        }));
    }
    println!("  {host}");
    let line = json!({
        "scenario": "idle",
        "server": name,
        "sockets": sockets,
        "rooms": rooms,
        "burst_events_per_board": options.burst,
        "burst_seconds": burst_took.as_secs_f64(),
        "slow_consumer_closes": slow,
        "readings": json_readings,
        "host": host,
    });
    crate::results::append(&options.results, &line);
    println!("  results appended to {}", options.results.display());
    // The first reading is the base; each later one is a per-connection figure.
    per_connection.into_iter().skip(1).collect()
}

async fn reading(pair: &Pair, label: &'static str) -> Reading {
    Reading {
        label,
        rss_kib: pair.rss_kib(),
        heap_bytes: pair.heap_bytes().await,
    }
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
    let Ok((ws, _)) = tokio_tungstenite::connect_async(&url).await else {
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

/// Raises this process's open-file limit (and so its servers', which inherit it) to what
/// `sockets` connections need: the soft limit up to the hard one, and the hard one too
/// when the process may (as root).
pub fn raise_file_limit(sockets: usize) {
    let wanted = (sockets as u64) * 2 + 4096;
    let Ok((soft, hard)) = rlimit::Resource::NOFILE.get() else {
        return;
    };
    if soft >= wanted {
        return;
    }
    if rlimit::Resource::NOFILE
        .set(wanted, wanted.max(hard))
        .is_err()
    {
        let _ = rlimit::Resource::NOFILE.set(hard, hard);
    }
    let (soft, _) = rlimit::Resource::NOFILE.get().unwrap_or((0, 0));
    if soft < sockets as u64 + 1024 {
        eprintln!(
            "warning: the open-file limit is {soft}, too low for {sockets} sockets (raise it with ulimit -n)"
        );
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
