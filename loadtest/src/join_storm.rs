//! `kanban-loadtest join-storm [--sockets N] [--server kanban|node|both] [--results FILE]`:
//! N WebSocket clients over two server processes join one board as fast as they can (at
//! most 200 handshakes in flight). Reports the ramp (first connect → last join ack), the
//! presence messages the storm cost (in all and to the busiest socket), the servers' CPU
//! and RSS, and the host's foreign CPU.

use crate::procs::Kind;
use crate::servers::Pair;
use serde_json::json;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct Options {
    pub sockets: usize,
    pub results: std::path::PathBuf,
    pub servers: Vec<Kind>,
    pub node_reference: Option<std::path::PathBuf>,
    /// How long the storm may take before the run gives up.
    pub limit: Duration,
}

pub async fn run(options: Options, redis_url: String) {
    crate::host::raise_file_limit(options.sockets);
    let mut ramps = Vec::new();
    for &kind in &options.servers {
        ramps.push(run_one(kind, &options, &redis_url).await);
    }
    if let [ours, node] = ramps.as_slice() {
        println!(
            "join-storm side by side (kanban-gateway / node-reference): ramp {ours:.2} / {node:.2} s \
             ({:.2}×)",
            ours / node.max(1e-9)
        );
    }
}

/// Runs the storm against `kind`; returns the ramp in seconds.
async fn run_one(kind: Kind, options: &Options, redis_url: &str) -> f64 {
    let sockets = options.sockets;
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
    let project = crate::presence::uuid_like();
    let rss_before = pair.rss_kib();
    let cpu_before = pair.cpu_seconds();
    let host = crate::host::Sample::now();

    let storm = Arc::new(crate::presence::Storm::new());
    let addresses = pair.addresses();
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + options.limit + Duration::from_secs(5);
    let mut tasks = Vec::with_capacity(sockets);
    for i in 0..sockets {
        let address = &addresses[i % addresses.len()];
        let url = format!("ws://{address}/socket.io/?EIO=4&transport=websocket");
        tasks.push(tokio::spawn(crate::presence::storm_client(
            url,
            project.clone(),
            Arc::clone(&storm),
            deadline,
        )));
    }
    let crate::presence::Storm {
        presence_messages,
        most,
        joined,
        ..
    } = &*storm;
    let bar = crate::progress::count(sockets as u64, "joined");
    while joined.load(Ordering::SeqCst) < sockets {
        bar.set_position(joined.load(Ordering::SeqCst) as u64);
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(
            started.elapsed() < options.limit,
            "{name}: only {} of {sockets} sockets joined in {} s",
            joined.load(Ordering::SeqCst),
            options.limit.as_secs()
        );
    }
    bar.finish_and_clear();
    let ramp = started.elapsed().as_secs_f64();
    let cpu_ramp = pair.cpu_seconds() - cpu_before;
    let rss_joined = pair.rss_kib();
    // The presence messages still on their way when the last ack arrived.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let host = host.report_with(&[("servers", pair.cpu_seconds() - cpu_before)]);
    let total = presence_messages.load(Ordering::SeqCst);
    let busiest = most.load(Ordering::SeqCst);
    for task in tasks {
        task.abort();
    }
    pair.forget(&project).await;
    println!("join-storm ({name}): {sockets} sockets over 2 server processes join one board");
    println!("  ramp (first connect → last join ack): {ramp:.2} s; servers' CPU during it {cpu_ramp:.2} s");
    println!(
        "  presence messages received: {total} in all, at most {busiest} by one socket \
         (an announce-every-join design sends {})",
        sockets * (sockets + 1) / 2
    );
    println!(
        "  servers' RSS {rss_before} → {rss_joined} KiB ({:.1} KiB per connection)",
        (rss_joined as f64 - rss_before as f64) / sockets as f64
    );
    println!("  {host}");
    let line = json!({
        "scenario": "join-storm",
        "server": name,
        "sockets": sockets,
        "ramp_s": ramp,
        "server_cpu_s": cpu_ramp,
        "presence_messages": total,
        "presence_messages_busiest_socket": busiest,
        "rss_kib_before": rss_before,
        "rss_kib_joined": rss_joined,
        "host": host,
    });
    crate::results::append(&options.results, &line);
    ramp
}
