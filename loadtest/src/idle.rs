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

use crate::idle_client::{client, Progress, Stage};
use crate::procs::Kind;
use crate::servers::Pair;
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

pub struct Options {
    pub sockets: usize,
    pub rooms: usize,
    pub burst: i64,
    pub results: std::path::PathBuf,
    pub servers: Vec<Kind>,
    pub node_reference: Option<std::path::PathBuf>,
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
    crate::host::raise_file_limit(options.sockets.div_ceil(2));
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
        None,
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
