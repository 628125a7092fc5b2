//! `kanban-loadtest resume-storm [--sockets N] [--history H] [--spread]`: what a rolling
//! restart or a network blip produces. A board gets H events of history; then N WebSocket
//! clients, spread over two gateway processes on the local Redis, join it at once with
//! `sinceSeq: 0` (or, with `--spread`, a `sinceSeq` spread evenly over the history) and
//! each must receive every event after its `sinceSeq`, once and in order. Reports how long
//! the storm took, each socket's catch-up time, what was lost, duplicated or out of order,
//! and the gateways' own counts: slow-consumer closes, Redis subscription drops, resyncs,
//! history reads and shared pages, and the gateways' CPU and RSS.

use crate::presence::Frame;
use crate::procs::Kind;
use crate::servers::Pair;
use futures_util::{SinkExt, StreamExt};
use kanban_protocol::redis_keys;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct Options {
    pub sockets: usize,
    pub history: i64,
    pub spread: bool,
}

/// What one client saw.
#[derive(Default)]
struct Seen {
    since: i64,
    received: usize,
    lost: usize,
    duplicated: usize,
    out_of_order: usize,
    resynced: bool,
    closed: bool,
    caught_up: Option<Duration>,
}

pub async fn run(options: Options, redis_url: String) {
    let Options {
        sockets,
        history,
        spread,
    } = options;
    crate::host::raise_file_limit(sockets);
    let prefix = kanban_test_support::redis_prefix();
    let project = crate::presence::uuid_like();
    write_history(&redis_url, &prefix, &project, history).await;
    // Two gateway processes (the release `gateway` beside this tool), anonymous sockets:
    // this measures the gateway, not the API's access checks.
    let pair = Pair::start(Kind::Kanban, &redis_url, &prefix, sockets, None, None).await;
    let gateways = pair.addresses();
    let rss_before = pair.rss_kib();
    let cpu_before = pair.cpu_seconds();
    let host = crate::host::Sample::now();

    let gate = Arc::new(tokio::sync::Semaphore::new(200));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(sockets);
    for i in 0..sockets {
        let address = gateways[i % gateways.len()].clone();
        let since = if spread {
            (i as i64 * history) / sockets as i64
        } else {
            0
        };
        let (project, gate) = (project.clone(), Arc::clone(&gate));
        tasks.push(tokio::spawn(async move {
            client(address, project, since, history, gate).await
        }));
    }
    let mut seen = Vec::with_capacity(sockets);
    for task in tasks {
        seen.push(task.await.expect("client task"));
    }
    let storm = started.elapsed();

    let mut times: Vec<Duration> = seen.iter().filter_map(|s| s.caught_up).collect();
    times.sort();
    let pct = |p: f64| {
        times
            .get(((times.len().max(1) - 1) as f64 * p).round() as usize)
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
    };
    let sum = |f: fn(&Seen) -> usize| seen.iter().map(f).sum::<usize>();
    let expected: i64 = seen.iter().map(|s| history - s.since).sum();
    println!(
        "resume storm: {sockets} sockets over 2 gateways, {history} events of history, \
         sinceSeq {}",
        if spread {
            "spread over the history"
        } else {
            "0"
        }
    );
    println!(
        "  storm (first connect → last socket caught up): {:.2} s",
        storm.as_secs_f64()
    );
    println!(
        "  caught up: {} of {sockets}; join sent → last event: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        times.len(),
        pct(0.5),
        pct(0.99),
        pct(1.0)
    );
    println!(
        "  events: {} received of {expected} expected; lost {}, duplicated {}, out of order {}; \
         {} sockets resynced, {} closed",
        sum(|s| s.received),
        sum(|s| s.lost),
        sum(|s| s.duplicated),
        sum(|s| s.out_of_order),
        seen.iter().filter(|s| s.resynced).count(),
        seen.iter().filter(|s| s.closed).count(),
    );
    let mut totals = std::collections::BTreeMap::new();
    for address in &gateways {
        let text = reqwest::get(format!("http://{address}/metrics"))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics body");
        for name in [
            "kanban_gateway_slow_consumer_closes_total",
            "kanban_gateway_deliveries_dropped_total",
            "kanban_gateway_redis_reconnects_total",
            "kanban_gateway_resyncs_total",
            "kanban_gateway_history_reads_total",
            "kanban_gateway_history_pages_shared_total",
            "kanban_gateway_replayed_events_total",
        ] {
            *totals.entry(name).or_insert(0.0) += kanban_test_support::metric_value(&text, name);
        }
    }
    let cpu = pair.cpu_seconds() - cpu_before;
    println!(
        "  gateways (both): CPU {cpu:.2} s, RSS {rss_before} → {} KiB",
        pair.rss_kib()
    );
    for (name, value) in totals {
        println!("    {name} {value}");
    }
    println!("  {}", host.report_with(&[("gateways", cpu)]));
}

/// XADDs events `1..=count` of `project`, as the relay writes them.
async fn write_history(redis_url: &str, prefix: &str, project: &str, count: i64) {
    let mut redis = redis::Client::open(redis_url)
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("connect to Redis");
    let key = redis_keys::history(prefix, project);
    let mut pipe = redis::pipe();
    for seq in 1..=count {
        let envelope = json!({
            "projectId": project,
            "seq": seq,
            "event": "ticket:moved",
            "data": {
                "ticket": {
                    "id": crate::presence::uuid_like(),
                    "projectId": project,
                    "title": format!("Ticket number {seq} with a realistic title"),
                    "status": "IN_PROGRESS",
                    "priority": "MEDIUM",
                    "rank": "0|hzzzzz:",
                    "labels": ["backend", "p2"],
                    "version": seq,
                },
                "from": "TODO",
                "to": "IN_PROGRESS",
            },
            "ts": 1,
            "mutationId": crate::presence::uuid_like(),
        });
        pipe.cmd("XADD")
            .arg(&key)
            .arg(format!("{seq}-0"))
            .arg("e")
            .arg(envelope.to_string())
            .ignore();
    }
    let _: () = pipe.query_async(&mut redis).await.expect("write history");
    let _: () = redis::cmd("EXPIRE")
        .arg(&key)
        .arg(600)
        .query_async(&mut redis)
        .await
        .expect("expire");
}

async fn client(
    address: String,
    project: String,
    since: i64,
    last: i64,
    gate: Arc<tokio::sync::Semaphore>,
) -> Seen {
    let mut seen = Seen {
        since,
        ..Seen::default()
    };
    let permit = gate.acquire_owned().await.expect("semaphore");
    let url = format!("ws://{address}/socket.io/?EIO=4&transport=websocket");
    let join = json!(["project:join", {"projectId": project, "sinceSeq": since}]);
    let (mut sink, mut stream) = crate::presence::connect_and_join(&url, join, None).await;
    let joined = Instant::now();
    drop(permit);
    let mut cursor = since;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while cursor < last {
        let next = tokio::time::timeout_at(deadline, stream.next()).await;
        let Ok(Some(Ok(message))) = next else {
            seen.closed = true;
            break;
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
        let Some(body) = text.strip_prefix("42") else {
            continue;
        };
        let Ok(Value::Array(args)) = serde_json::from_str::<Value>(body) else {
            continue;
        };
        if args.first().and_then(Value::as_str) == Some("project:resync") {
            seen.resynced = true;
            break;
        }
        let Some(seq) = args.get(2).and_then(|m| m["seq"].as_i64()) else {
            continue;
        };
        seen.received += 1;
        if seq <= cursor {
            seen.duplicated += 1;
        } else {
            if seq != cursor + 1 {
                seen.out_of_order += 1;
                seen.lost += (seq - cursor - 1) as usize;
            }
            cursor = seq;
        }
    }
    if cursor >= last {
        seen.caught_up = Some(joined.elapsed());
    } else {
        seen.lost += (last - cursor) as usize;
    }
    let _ = sink.close().await;
    seen
}
