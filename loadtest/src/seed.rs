//! `kanban-loadtest seed [--clients N] [--moves M] [--rate R] [--results FILE]`: the
//! benchmark of the original plan (TASK-040 of the phase-2 design: 50 clients in one room,
//! one of them changes the board, the others must see it with an average latency under
//! 100 ms and a p95 under 200 ms), on the real system: the ticket API in-process, two
//! `gateway` processes, N authenticated clients (each a member of the board) over both in
//! one board's room; client 0 moves tickets through the API, M moves at a modest R per
//! second (default 10), one after another; the latency from each move's request to its
//! receipt by every other client: avg, p95, max (plus p50, p99), missing, lost,
//! duplicated and out-of-order deliveries by seq; appends one JSON line to the results file.

use crate::e2e::{self, Watcher};
use crate::procs::ServerProcess;
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct Options {
    pub clients: usize,
    pub moves: usize,
    /// Moves per second.
    pub rate: f64,
    pub results: std::path::PathBuf,
}

const TICKETS: usize = 20;

pub async fn run(options: Options, redis_url: String) {
    let Options {
        clients,
        moves,
        rate,
        ref results,
    } = options;
    assert!(clients >= 2, "seed needs a mover and at least one receiver");
    crate::host::raise_file_limit(clients + 64);
    let db = e2e::scratch_database().await;
    let prefix = kanban_test_support::redis_prefix();
    let api = e2e::start_api(e2e::api_settings(&db.url, &redis_url, &prefix)).await;
    let verifier = e2e::verifier();
    let owner = e2e::token(&verifier, "seed-0");
    let http = e2e::http_client();
    let (project, tickets) = e2e::create_board(&http, &api, &owner, "seed", TICKETS).await;
    let users: Vec<String> = (0..clients).map(|i| format!("seed-{i}")).collect();
    e2e::add_members(
        &http,
        &api,
        &owner,
        users
            .iter()
            .skip(1)
            .map(|u| (project.clone(), u.clone()))
            .collect(),
    )
    .await;
    let gateways = e2e::gateways(&api, &redis_url, &prefix, clients).await;

    let joined = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(tokio::sync::Semaphore::new(200));
    let mut watchers = Vec::with_capacity(clients);
    let mut tasks = Vec::with_capacity(clients);
    let ramp = Instant::now();
    for (i, user) in users.iter().enumerate() {
        let watcher = Watcher::new(0);
        watchers.push(Arc::clone(&watcher));
        tasks.push(tokio::spawn(e2e::watch(
            gateways[i % 2].address.clone(),
            e2e::token(&verifier, user),
            project.clone(),
            "seed",
            watcher,
            Arc::clone(&joined),
            Arc::clone(&gate),
        )));
    }
    e2e::wait_joined(&joined, clients, &tasks, Duration::from_secs(120)).await;
    let ramp = ramp.elapsed();
    // As the original test: let the joins settle before the first change.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut redis = redis::Client::open(redis_url.as_str())
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("connect to Redis");
    let host = crate::host::Sample::now();
    let gw_cpu_before: f64 = gateways.iter().map(ServerProcess::cpu_seconds).sum();
    let (pg_before, redis_before) = (
        e2e::postgres_ticks(),
        crate::host::redis_cpu(&mut redis).await,
    );
    let slow_before = e2e::gateway_slow(&gateways).await;
    // Move i: (request sent, response received), µs since the epoch.
    let mut sent = Vec::with_capacity(moves);
    let started = Instant::now();
    for index in 0..moves {
        let due = started + Duration::from_secs_f64(index as f64 / rate);
        tokio::time::sleep_until(due.into()).await;
        let (ticket, position) = {
            let mut rng = rand::rng();
            (
                tickets[rand::Rng::random_range(&mut rng, 0..tickets.len())].clone(),
                rand::Rng::random_range(&mut rng, 0..tickets.len()),
            )
        };
        let at = e2e::now_us();
        let response = http
            .post(format!("{api}/api/tickets/{ticket}/move"))
            .bearer_auth(&owner)
            .header("X-Mutation-Id", e2e::mutation_id("seed", 0, index))
            .json(&json!({ "toStatus": "TODO", "position": position }))
            .send()
            .await
            .expect("move");
        assert!(
            response.status().is_success(),
            "move {index}: {}",
            response.status()
        );
        let _ = response.bytes().await;
        sent.push((at, e2e::now_us()));
    }
    let moving = started.elapsed().as_secs_f64();
    let last = e2e::board_seq(&http, &api, &owner, &project).await;
    let tail_missing = e2e::settle(&watchers, &[last], Duration::from_secs(10)).await;
    let gw_cpu: f64 = gateways.iter().map(ServerProcess::cpu_seconds).sum::<f64>() - gw_cpu_before;
    let pg_cpu = e2e::postgres_cpu_since(&pg_before);
    let redis_cpu = crate::host::redis_cpu(&mut redis).await - redis_before;
    let host_line = host.report_with(&[
        ("gateways", gw_cpu),
        ("postgres", pg_cpu),
        ("redis", redis_cpu),
    ]);
    let slow = e2e::gateway_slow(&gateways).await - slow_before;

    // Receivers are clients 1..N, as in the original test (client 0 makes the change).
    let mut latencies: Vec<i64> = Vec::new();
    let mut after_response: Vec<i64> = Vec::new();
    for watcher in watchers.iter().skip(1) {
        for receipt in watcher.receipts.lock().expect("receipts").iter() {
            let (request, response) = sent[receipt.index as usize];
            latencies.push(receipt.at - request);
            after_response.push(receipt.at - response);
        }
    }
    latencies.sort_unstable();
    after_response.sort_unstable();
    let expected = moves * (clients - 1);
    let ms = |us: f64| us / 1000.0;
    let avg = ms(latencies.iter().sum::<i64>() as f64 / latencies.len().max(1) as f64);
    // The original's p95: sorted[floor(n · 0.95)].
    let p95 = latencies
        .get((latencies.len() as f64 * 0.95) as usize)
        .map_or(f64::NAN, |v| ms(*v as f64));
    let max = latencies.last().map_or(f64::NAN, |v| ms(*v as f64));
    let sum = |f: fn(&Watcher) -> u64| watchers.iter().map(|w| f(w)).sum::<u64>();
    let lost = sum(|w| w.lost.load(Ordering::SeqCst)) + tail_missing;
    let duplicated = sum(|w| w.duplicated.load(Ordering::SeqCst));
    let out_of_order = sum(|w| w.out_of_order.load(Ordering::SeqCst));
    let resyncs = sum(|w| w.resyncs.load(Ordering::SeqCst));
    let closed = watchers
        .iter()
        .filter(|w| w.closed.load(Ordering::SeqCst))
        .count();
    let met = avg < 100.0 && p95 < 200.0 && latencies.len() == expected;
    let rss: u64 = gateways.iter().map(ServerProcess::rss_kib).sum();

    println!(
        "seed (the original plan's benchmark): {clients} authenticated clients over 2 gateway \
         processes in one board's room (joined in {:.2} s); client 0 made {moves} moves through \
         the API in {moving:.1} s ({rate} moves/s)",
        ramp.as_secs_f64()
    );
    println!(
        "  move request → receipt by the other {} clients: avg {avg:.2} ms, p95 {p95:.2} ms, max \
         {max:.2} ms (p50 {:.2}, p99 {:.2}); {} of {expected} deliveries",
        clients - 1,
        ms(e2e::quantile(&latencies, 0.5)),
        ms(e2e::quantile(&latencies, 0.99)),
        latencies.len()
    );
    println!(
        "  response → receipt: p50 {:.2} ms, p99 {:.2} ms; lost {lost}, duplicated {duplicated}, \
         out of order {out_of_order}, resyncs {resyncs}, slow-consumer closes {slow}, clients \
         closed {closed}; gateway RSS {rss} KiB",
        ms(e2e::quantile(&after_response, 0.5)),
        ms(e2e::quantile(&after_response, 0.99)),
    );
    println!(
        "  targets (avg < 100 ms, p95 < 200 ms, every client got every move): {}",
        if met { "met" } else { "NOT met" }
    );
    println!("  {host_line}");
    let line = json!({
        "scenario": "seed",
        "clients": clients,
        "moves": moves,
        "moves_per_s": rate,
        "join_ramp_s": ramp.as_secs_f64(),
        "request_to_receipt_ms": {
            "avg": avg, "p95": p95, "max": max,
            "p50": ms(e2e::quantile(&latencies, 0.5)),
            "p99": ms(e2e::quantile(&latencies, 0.99)),
        },
        "response_to_receipt_ms": {
            "p50": ms(e2e::quantile(&after_response, 0.5)),
            "p99": ms(e2e::quantile(&after_response, 0.99)),
        },
        "deliveries": latencies.len(),
        "deliveries_expected": expected,
        "lost": lost, "duplicated": duplicated, "out_of_order": out_of_order,
        "resyncs": resyncs, "slow_consumer_closes": slow, "clients_closed": closed,
        "targets": {"avg_ms": 100, "p95_ms": 200, "met": met},
        "gateway_cpu_cores": gw_cpu / moving.max(1e-9),
        "gateway_rss_kib": rss,
        "host": host_line,
    });
    crate::results::append(results, &line);
    println!("  results appended to {}", results.display());
    for task in tasks {
        task.abort();
    }
    drop(gateways);
    drop(db);
}
