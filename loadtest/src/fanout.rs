//! `kanban-loadtest fanout [--clients N] [--rates K,K,…] [--seconds S] [--results FILE]`:
//! one board, N WebSocket clients spread over two gateway processes, events published into
//! Redis by the relay's own script at each rate in turn (K thousand deliveries per second:
//! K × 1000 / N events per second). Per rate it reports the deliveries per second reached,
//! the latency from publish to receipt (HdrHistogram: p50, p90, p99, p99.9, max), lost,
//! duplicated and out-of-order deliveries by seq (must be 0), slow-consumer closes, each
//! gateway process's CPU per delivery and RSS (from /proc), Redis's CPU (from INFO), and
//! the host's foreign CPU; and appends one JSON line per rate to the results file.

use crate::presence::Frame;
use crate::procs::{gateway_bin, GatewayProcess};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use kanban_protocol::events::EventEnvelope;
use serde_json::json;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio_tungstenite::tungstenite::Message;

pub struct Options {
    pub clients: usize,
    /// Thousands of deliveries per second, one phase each.
    pub rates: Vec<f64>,
    pub seconds: u64,
    pub results: std::path::PathBuf,
}

/// Where the phases are, shared by the publisher and the clients.
struct Phases {
    /// The first seq of each phase (and, last, one past the end).
    starts: Vec<AtomicI64>,
    done: AtomicBool,
}

impl Phases {
    fn of(&self, seq: i64) -> Option<usize> {
        let phases = self.starts.len() - 1;
        (0..phases).rev().find(|&p| {
            let start = self.starts[p].load(Ordering::SeqCst);
            start > 0 && seq >= start
        })
    }
}

/// What one client saw, per phase.
struct Seen {
    latency: Vec<Histogram<u64>>,
    received: Vec<u64>,
    lost: u64,
    duplicated: u64,
    out_of_order: u64,
    closed: bool,
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

pub async fn run(options: Options, redis_url: String) {
    let Options {
        clients,
        rates,
        seconds,
        results,
    } = options;
    let prefix = kanban_test_support::redis_prefix();
    let project = crate::presence::uuid_like();
    let bin = gateway_bin();
    let gateways = vec![
        GatewayProcess::start(&bin, "gw1", &redis_url, &prefix, clients).await,
        GatewayProcess::start(&bin, "gw2", &redis_url, &prefix, clients).await,
    ];
    let rss_before: Vec<u64> = gateways.iter().map(GatewayProcess::rss_kib).collect();

    let phases = Arc::new(Phases {
        starts: (0..=rates.len()).map(|_| AtomicI64::new(0)).collect(),
        done: AtomicBool::new(false),
    });
    let joined = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(tokio::sync::Semaphore::new(200));
    let mut tasks = Vec::with_capacity(clients);
    for i in 0..clients {
        let address = gateways[i % gateways.len()].address.clone();
        let (project, phases, joined, gate) = (
            project.clone(),
            Arc::clone(&phases),
            Arc::clone(&joined),
            Arc::clone(&gate),
        );
        let count = rates.len();
        tasks.push(tokio::spawn(async move {
            client(address, project, phases, count, joined, gate).await
        }));
    }
    while joined.load(Ordering::SeqCst) < clients {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let rss_idle: Vec<u64> = gateways.iter().map(GatewayProcess::rss_kib).collect();
    println!(
        "fanout: {clients} clients over 2 gateway processes joined one board; gateway RSS {} → {} KiB \
         ({:.1} KiB per connection)",
        rss_before.iter().sum::<u64>(),
        rss_idle.iter().sum::<u64>(),
        (rss_idle.iter().sum::<u64>() as f64 - rss_before.iter().sum::<u64>() as f64) / clients as f64
    );

    let mut redis = redis::Client::open(redis_url.as_str())
        .expect("redis url")
        .get_connection_manager()
        .await
        .expect("connect to Redis");
    let publisher =
        ticket_api::relay::publisher::Publisher::new(redis.clone(), prefix.clone(), 1000, 600, 600);
    let mut seq = 0i64;
    let mut rows = Vec::new();
    for (phase, &rate) in rates.iter().enumerate() {
        let events_per_second = rate * 1000.0 / clients as f64;
        phases.starts[phase].store(seq + 1, Ordering::SeqCst);
        let host = crate::host::Sample::now();
        let cpu_before: Vec<f64> = gateways.iter().map(GatewayProcess::cpu_seconds).collect();
        let redis_before = redis_cpu(&mut redis).await;
        let slow_before = slow_closes(&gateways).await;
        let started = Instant::now();
        let end = started + Duration::from_secs(seconds);
        let mut published = 0u64;
        while Instant::now() < end {
            let due = (started.elapsed().as_secs_f64() * events_per_second) as u64;
            while published < due {
                seq += 1;
                published += 1;
                let envelope = EventEnvelope {
                    project_id: project.clone(),
                    seq,
                    event: "ticket:deleted".into(),
                    data: json!({ "ticketId": "t", "sentUs": now_us() }),
                    ts: now_us() / 1000,
                    ts_us: Some(now_us()),
                    mutation_id: None,
                    traceparent: None,
                };
                publisher.publish(&envelope).await.expect("publish");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let sent_for = started.elapsed();
        phases.starts[phase + 1].store(seq + 1, Ordering::SeqCst);
        // Let what is in flight arrive before the phase's CPU is read.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let cpu: f64 = gateways
            .iter()
            .zip(&cpu_before)
            .map(|(g, before)| g.cpu_seconds() - before)
            .sum();
        let redis_cpu_s = redis_cpu(&mut redis).await - redis_before;
        let slow = slow_closes(&gateways).await - slow_before;
        rows.push(Row {
            rate,
            events: published,
            seconds: sent_for.as_secs_f64(),
            gateway_cpu_s: cpu,
            redis_cpu_s,
            slow_closes: slow,
            rss_kib: gateways.iter().map(GatewayProcess::rss_kib).sum(),
            host: host.report_with(&[("gateways", cpu), ("redis", redis_cpu_s)]),
        });
    }
    phases.done.store(true, Ordering::SeqCst);
    let mut seen = Vec::with_capacity(clients);
    for task in tasks {
        seen.push(task.await.expect("client task"));
    }
    let lost: u64 = seen.iter().map(|s| s.lost).sum();
    let duplicated: u64 = seen.iter().map(|s| s.duplicated).sum();
    let out_of_order: u64 = seen.iter().map(|s| s.out_of_order).sum();
    let closed = seen.iter().filter(|s| s.closed).count();
    println!(
        "  over all phases: lost {lost}, duplicated {duplicated}, out of order {out_of_order}, \
         {closed} clients closed"
    );
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&results)
        .unwrap_or_else(|e| panic!("open {}: {e}", results.display()));
    for (phase, row) in rows.iter().enumerate() {
        let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
        let mut delivered = 0u64;
        for s in &seen {
            latency.add(&s.latency[phase]).expect("merge");
            delivered += s.received[phase];
        }
        let q = |p: f64| latency.value_at_quantile(p) as f64 / 1000.0;
        let offered = row.events as f64 * clients as f64 / row.seconds;
        let rate = delivered as f64 / row.seconds;
        let per_delivery_us = row.gateway_cpu_s * 1e6 / delivered.max(1) as f64;
        println!(
            "  {:>5.0}k/s offered: {:>8.0} deliveries/s ({} events × {clients}), latency ms p50 {:.2} \
             p90 {:.2} p99 {:.2} p99.9 {:.2} max {:.2}; gateway CPU {:.2} µs/delivery ({:.2} cores), \
             Redis CPU {:.1} µs/event; slow closes {}; gateway RSS {} KiB",
            row.rate,
            rate,
            row.events,
            q(0.5),
            q(0.9),
            q(0.99),
            q(0.999),
            latency.max() as f64 / 1000.0,
            per_delivery_us,
            row.gateway_cpu_s / row.seconds,
            row.redis_cpu_s * 1e6 / row.events.max(1) as f64,
            row.slow_closes,
            row.rss_kib,
        );
        println!("    {}", row.host);
        let line = json!({
            "scenario": "fanout",
            "server": "kanban-gateway",
            "clients": clients,
            "offered_deliveries_per_s": offered,
            "deliveries_per_s": rate,
            "events": row.events,
            "latency_ms": {"p50": q(0.5), "p90": q(0.9), "p99": q(0.99), "p999": q(0.999), "max": latency.max() as f64 / 1000.0},
            "gateway_cpu_us_per_delivery": per_delivery_us,
            "redis_cpu_us_per_event": row.redis_cpu_s * 1e6 / row.events.max(1) as f64,
            "slow_consumer_closes": row.slow_closes,
            "gateway_rss_kib": row.rss_kib,
            "lost": lost, "duplicated": duplicated, "out_of_order": out_of_order,
            "host": row.host,
        });
        writeln!(file, "{line}").expect("write results");
    }
    println!("  results appended to {}", results.display());
}

struct Row {
    rate: f64,
    events: u64,
    seconds: f64,
    gateway_cpu_s: f64,
    redis_cpu_s: f64,
    slow_closes: f64,
    rss_kib: u64,
    host: String,
}

async fn slow_closes(gateways: &[GatewayProcess]) -> f64 {
    let mut total = 0.0;
    for g in gateways {
        total += g.metric("kanban_gateway_slow_consumer_closes_total").await;
    }
    total
}

/// Redis's own CPU seconds so far (user + system, from INFO cpu).
async fn redis_cpu(redis: &mut redis::aio::ConnectionManager) -> f64 {
    let info: String = redis::cmd("INFO")
        .arg("cpu")
        .query_async(redis)
        .await
        .unwrap_or_default();
    info.lines()
        .filter(|l| l.starts_with("used_cpu_sys:") || l.starts_with("used_cpu_user:"))
        .filter_map(|l| {
            l.split_once(':')
                .and_then(|(_, v)| v.trim().parse::<f64>().ok())
        })
        .sum()
}

/// The number after `"<field>":` in `text`, without parsing the whole frame.
fn number_after(text: &str, field: &str) -> Option<i64> {
    let at = text.find(field)? + field.len();
    let digits: String = text[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

async fn client(
    address: String,
    project: String,
    phases: Arc<Phases>,
    count: usize,
    joined: Arc<AtomicUsize>,
    gate: Arc<tokio::sync::Semaphore>,
) -> Seen {
    let mut seen = Seen {
        latency: (0..count)
            .map(|_| Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram"))
            .collect(),
        received: vec![0; count],
        lost: 0,
        duplicated: 0,
        out_of_order: 0,
        closed: false,
    };
    let permit = gate.acquire_owned().await.expect("semaphore");
    let url = format!("ws://{address}/socket.io/?EIO=4&transport=websocket");
    let (mut sink, mut stream) =
        crate::presence::connect_and_join(&url, json!(["project:join", project])).await;
    // The join's ack.
    loop {
        match stream.next().await {
            Some(Ok(Message::Text(text))) if text.starts_with("430") => break,
            Some(Ok(_)) => {}
            _ => {
                seen.closed = true;
                return seen;
            }
        }
    }
    drop(permit);
    joined.fetch_add(1, Ordering::SeqCst);
    // The board is new: its first event is seq 1.
    let mut cursor: Option<i64> = Some(0);
    loop {
        let end = phases.starts[count].load(Ordering::SeqCst);
        if phases.done.load(Ordering::SeqCst) && cursor.is_some_and(|c| c + 1 >= end) {
            break;
        }
        let next = tokio::time::timeout(Duration::from_secs(5), stream.next()).await;
        let message = match next {
            Ok(Some(Ok(message))) => message,
            Err(_) if phases.done.load(Ordering::SeqCst) => break,
            Err(_) => continue,
            Ok(_) => {
                seen.closed = true;
                break;
            }
        };
        let text = match crate::presence::frame(&mut sink, message).await {
            Frame::Text(text) => text,
            Frame::Skip => continue,
            Frame::Closed => {
                seen.closed = true;
                break;
            }
        };
        let text = text.as_str();
        if !text.starts_with("42[\"ticket:deleted\"") {
            continue;
        }
        let (Some(seq), Some(sent)) = (
            number_after(text, "\"seq\":"),
            number_after(text, "\"sentUs\":"),
        ) else {
            continue;
        };
        let Some(phase) = phases.of(seq) else {
            continue;
        };
        match cursor {
            Some(c) if seq <= c => seen.duplicated += 1,
            Some(c) if seq != c + 1 => {
                seen.out_of_order += 1;
                seen.lost += (seq - c - 1) as u64;
            }
            _ => {}
        }
        cursor = Some(cursor.map_or(seq, |c| c.max(seq)));
        seen.received[phase] += 1;
        let _ = seen.latency[phase].record((now_us() - sent).max(1) as u64);
    }
    let end = phases.starts[count].load(Ordering::SeqCst);
    if let Some(c) = cursor {
        seen.lost += (end - 1 - c).max(0) as u64;
    }
    let _ = sink.close().await;
    seen
}
