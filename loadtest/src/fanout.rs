//! `kanban-loadtest fanout [--clients N] [--rates K,K,…] [--seconds S] [--results FILE]
//! [--server kanban|node|both]`: one board, N WebSocket clients spread over two server
//! processes (our gateways, or the Node reference's instances), events published at each
//! rate in turn (K thousand deliveries per second: K × 1000 / N events per second): into
//! Redis by the relay's own script for our gateways, through `POST /publish` for Node.
//! Per rate it reports the deliveries per second reached, the latency from publish to
//! receipt (HdrHistogram: p50, p90, p99, p99.9, max), lost, duplicated and out-of-order
//! deliveries by seq (must be 0), slow-consumer closes, the servers' CPU per delivery and
//! RSS (from /proc), Redis's CPU (from INFO), and the host's foreign CPU; appends one JSON
//! line per rate to the results file; and with `both`, the two side by side as ratios.
//! `--read-every-ms M` has each client read at most every M ms; `--clients-apart` puts
//! the clients on a host of their own inside this machine (`apart.rs`).

use crate::e2e::now_us;
use crate::presence::Frame;
use crate::procs::Kind;
use crate::servers::Pair;
use futures_util::{FutureExt, SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::json;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

pub struct Options {
    pub clients: usize,
    /// Thousands of deliveries per second, one phase each.
    pub rates: Vec<f64>,
    pub seconds: u64,
    pub results: std::path::PathBuf,
    /// Where the run's latency plot (SVG) goes.
    pub plots: std::path::PathBuf,
    pub servers: Vec<Kind>,
    pub node_reference: Option<std::path::PathBuf>,
    /// Each client reads what its socket holds at most this often (none: as frames
    /// come). A client that reads every few milliseconds gets many frames per read, so
    /// the tool's own CPU per delivery falls far below the servers' and a phase can
    /// drive them to saturation on the same host; its latency then includes up to this
    /// interval.
    pub read_every: Option<Duration>,
    /// The clients on a host of their own inside this machine (`crate::apart`).
    pub clients_apart: bool,
}

/// Where the phases are, shared by the publisher and the clients.
pub struct Phases {
    /// The first seq of each phase (and, last, one past the end).
    pub starts: Vec<AtomicI64>,
    pub done: AtomicBool,
}

impl Phases {
    /// `count` phases, none started.
    pub fn new(count: usize) -> Phases {
        Phases {
            starts: (0..=count).map(|_| AtomicI64::new(0)).collect(),
            done: AtomicBool::new(false),
        }
    }

    fn of(&self, seq: i64) -> Option<usize> {
        let phases = self.starts.len() - 1;
        (0..phases).rev().find(|&p| {
            let start = self.starts[p].load(Ordering::SeqCst);
            start > 0 && seq >= start
        })
    }
}

/// What one client saw, per phase.
pub struct Seen {
    pub latency: Vec<Histogram<u64>>,
    pub received: Vec<u64>,
    pub lost: u64,
    pub duplicated: u64,
    pub out_of_order: u64,
    pub closed: bool,
}

pub async fn run(options: Options, redis_url: String) {
    let apart = options
        .clients_apart
        .then(|| Arc::new(crate::apart::Apart::set_up()));
    if let Some(apart) = &apart {
        println!("fanout: {}", apart.describe());
    }
    let mut summaries = Vec::new();
    for &kind in &options.servers {
        summaries.push((
            kind,
            run_one(kind, &options, &redis_url, apart.clone()).await,
        ));
    }
    if let [(_, ours), (_, node)] = summaries.as_slice() {
        println!("fanout side by side (kanban-gateway / node-reference):");
        for (a, b) in ours.iter().zip(node) {
            println!(
                "  {:>5.0}k/s offered: deliveries/s {:.0} / {:.0} ({:.2}×), p99 {:.1} / {:.1} ms, \
                 server CPU per delivery {:.2} / {:.2} µs ({:.2}×)",
                a.rate,
                a.delivered_per_s,
                b.delivered_per_s,
                a.delivered_per_s / b.delivered_per_s.max(1.0),
                a.p99_ms,
                b.p99_ms,
                a.cpu_us_per_delivery,
                b.cpu_us_per_delivery,
                a.cpu_us_per_delivery / b.cpu_us_per_delivery.max(1e-9),
            );
        }
    }
}

/// One phase's figures, for the side-by-side lines.
struct Summary {
    rate: f64,
    delivered_per_s: f64,
    p99_ms: f64,
    cpu_us_per_delivery: f64,
}

async fn run_one(
    kind: Kind,
    options: &Options,
    redis_url: &str,
    apart: Option<Arc<crate::apart::Apart>>,
) -> Vec<Summary> {
    let Options {
        clients,
        ref rates,
        seconds,
        ref results,
        ..
    } = *options;
    let prefix = kanban_test_support::redis_prefix();
    let project = crate::presence::uuid_like();
    let pair = Pair::start(
        kind,
        redis_url,
        &prefix,
        clients,
        options.node_reference.as_deref(),
        apart.as_deref(),
    )
    .await;
    let name = kind.name();
    let rss_before = pair.rss_kib();

    let phases = Arc::new(Phases::new(rates.len()));
    let joined = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(tokio::sync::Semaphore::new(200));
    let addresses = pair.addresses();
    let mut tasks = Vec::with_capacity(clients);
    for i in 0..clients {
        let address = addresses[i % addresses.len()].clone();
        let (project, phases, joined, gate) = (
            project.clone(),
            Arc::clone(&phases),
            Arc::clone(&joined),
            Arc::clone(&gate),
        );
        let count = rates.len();
        let read_every = options.read_every;
        let apart = apart.clone();
        tasks.push(tokio::spawn(async move {
            let at = Client {
                address,
                project,
                read_every,
                apart,
            };
            client(at, phases, count, joined, gate).await
        }));
    }
    let joining = Instant::now();
    let bar = crate::progress::count(clients as u64, "clients joined");
    while joined.load(Ordering::SeqCst) < clients {
        assert!(
            joining.elapsed() < Duration::from_secs(120),
            "{name}: only {} of {clients} clients joined in 120 s",
            joined.load(Ordering::SeqCst)
        );
        bar.set_position(joined.load(Ordering::SeqCst) as u64);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bar.finish_and_clear();
    let rss_idle = pair.rss_kib();
    println!(
        "fanout ({name}): {clients} clients over 2 server processes joined one board; RSS {rss_before} → \
         {rss_idle} KiB ({:.1} KiB per connection)",
        (rss_idle as f64 - rss_before as f64) / clients as f64
    );
    if let Some(every) = options.read_every {
        println!(
            "  each client reads its socket at most every {} ms: latencies include up to that wait",
            every.as_millis()
        );
    }

    let mut seq = 0i64;
    let mut rows = Vec::new();
    for (phase, &rate) in rates.iter().enumerate() {
        let events_per_second = rate * 1000.0 / clients as f64;
        phases.starts[phase].store(seq + 1, Ordering::SeqCst);
        let host = crate::host::Sample::now();
        let cpu_before = pair.cpu_seconds();
        let redis_before = pair.redis_cpu().await;
        let slow_before = pair.slow_closes().await;
        let lane_before = pair.lane_deliveries().await;
        let writes_before = pair.lane_writes().await;
        let fanout_before = pair.fanout_buckets().await;
        let started = Instant::now();
        let end = started + Duration::from_secs(seconds);
        let mut published = 0u64;
        let bar = crate::progress::phase(seconds, &format!("{rate}k deliveries/s"));
        while Instant::now() < end {
            crate::progress::tick(&bar, started.elapsed());
            let due = (started.elapsed().as_secs_f64() * events_per_second) as u64;
            while published < due {
                seq += 1;
                published += 1;
                pair.publish(&project, seq, now_us()).await;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        bar.finish_and_clear();
        let sent_for = started.elapsed();
        phases.starts[phase + 1].store(seq + 1, Ordering::SeqCst);
        // Let what is in flight arrive before the phase's CPU is read.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let cpu = pair.cpu_seconds() - cpu_before;
        let redis_cpu_s = pair.redis_cpu().await - redis_before;
        let slow = since(pair.slow_closes().await, slow_before);
        let lane = since(pair.lane_deliveries().await, lane_before);
        let lane_writes = since(pair.lane_writes().await, writes_before);
        let inside = pair
            .fanout_buckets()
            .await
            .zip(fanout_before)
            .map(|(after, before)| after.since(&before));
        rows.push(Row {
            rate,
            events: published,
            seconds: sent_for.as_secs_f64(),
            gateway_cpu_s: cpu,
            redis_cpu_s,
            slow_closes: slow,
            lane_deliveries: lane,
            lane_writes,
            inside,
            rss_kib: pair.rss_kib(),
            host: host.report_with(&[("servers", cpu), ("redis", redis_cpu_s)]),
        });
    }
    phases.done.store(true, Ordering::SeqCst);
    let mut seen = Vec::with_capacity(clients);
    for task in tasks {
        seen.push(task.await.expect("client task"));
    }
    pair.forget(&project).await;
    let lost: u64 = seen.iter().map(|s| s.lost).sum();
    let duplicated: u64 = seen.iter().map(|s| s.duplicated).sum();
    let out_of_order: u64 = seen.iter().map(|s| s.out_of_order).sum();
    let closed = seen.iter().filter(|s| s.closed).count();
    println!(
        "  over all phases: lost {lost}, duplicated {duplicated}, out of order {out_of_order}, \
         {closed} clients closed"
    );
    let mut file = crate::results::open(results);
    let mut summaries = Vec::new();
    let mut plotted = Vec::new();
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
        let slow = row
            .slow_closes
            .map_or_else(|| "n/a".to_owned(), |s| format!("{s}"));
        // The share of the deliveries the hubs wrote through idle sockets' lanes.
        let lane_share = row
            .lane_deliveries
            .filter(|l| l.is_finite())
            .map(|l| l / delivered.max(1) as f64);
        // Events per lane write: 1 while the gateways keep up, more when they write runs
        // of waiting events together.
        let per_write = row
            .lane_deliveries
            .zip(row.lane_writes)
            .filter(|(_, writes)| *writes > 0.0)
            .map(|(deliveries, writes)| deliveries / writes);
        let lane = match (lane_share, per_write) {
            (Some(l), Some(w)) => format!("{:.0} %, {w:.2} events per write", l * 100.0),
            (Some(l), None) => format!("{:.0} %", l * 100.0),
            _ => "n/a".to_owned(),
        };
        println!(
            "  {:>5.0}k/s offered: {:>8.0} deliveries/s ({} events × {clients}), latency ms p50 {:.2} \
             p90 {:.2} p99 {:.2} p99.9 {:.2} max {:.2}; server CPU {:.2} µs/delivery ({:.2} cores), \
             Redis CPU {:.1} µs/event; slow closes {slow}; by lane {lane}; server RSS {} KiB",
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
            row.rss_kib,
        );
        // Inside the gateways: from the event's receipt to the end of its write to the
        // socket, as the bucket its quantile falls in (the rest of the latency above is
        // Redis, the kernel and the load tool's own clients).
        let inside_le = |q: f64| {
            row.inside
                .as_ref()
                .and_then(|b| b.quantile_le(q))
                .map(|le| le * 1000.0)
        };
        if let (Some(p50), Some(p99)) = (inside_le(0.5), inside_le(0.99)) {
            println!("    inside the gateways (receipt → written): p50 ≤ {p50} ms, p99 ≤ {p99} ms");
        }
        println!("    {}", row.host);
        let line = json!({
            "scenario": "fanout",
            "server": name,
            "clients": clients,
            "offered_deliveries_per_s": offered,
            "deliveries_per_s": rate,
            "events": row.events,
            "latency_ms": {"p50": q(0.5), "p90": q(0.9), "p99": q(0.99), "p999": q(0.999), "max": latency.max() as f64 / 1000.0},
            "gateway_cpu_us_per_delivery": per_delivery_us,
            "redis_cpu_us_per_event": row.redis_cpu_s * 1e6 / row.events.max(1) as f64,
            "slow_consumer_closes": row.slow_closes,
            "lane_share": lane_share,
            "lane_events_per_write": per_write,
            "read_every_ms": options.read_every.map(|every| every.as_millis() as u64),
            "gateway_fanout_ms_le": {"p50": inside_le(0.5), "p99": inside_le(0.99)},
            "gateway_rss_kib": row.rss_kib,
            "lost": lost, "duplicated": duplicated, "out_of_order": out_of_order,
            "host": row.host,
        });
        writeln!(file, "{line}").expect("write results");
        plotted.push((format!("{:.0}k/s offered", row.rate), latency.clone()));
        summaries.push(Summary {
            rate: row.rate,
            delivered_per_s: rate,
            p99_ms: q(0.99),
            cpu_us_per_delivery: per_delivery_us,
        });
    }
    println!("  results appended to {}", results.display());
    let series: Vec<(String, &Histogram<u64>)> = plotted
        .iter()
        .map(|(label, h)| (label.clone(), h))
        .collect();
    let title = format!("fanout, {name}: publish → receipt, {clients} clients");
    match crate::plot::write(&options.plots, &format!("fanout-{name}"), &title, &series) {
        Ok(path) => println!("  latency plot: {}", path.display()),
        Err(error) => eprintln!("  latency plot not written: {error}"),
    }
    summaries
}

struct Row {
    rate: f64,
    events: u64,
    seconds: f64,
    gateway_cpu_s: f64,
    redis_cpu_s: f64,
    slow_closes: Option<f64>,
    /// Deliveries written through idle sockets' lanes (our gateways only).
    lane_deliveries: Option<f64>,
    lane_writes: Option<f64>,
    /// The gateways' receipt → write latency over the phase (ours only).
    inside: Option<crate::buckets::Buckets>,
    rss_kib: u64,
    host: String,
}

/// How much a counter of the servers grew: `after - before`, if both were read.
fn since(after: Option<f64>, before: Option<f64>) -> Option<f64> {
    after.zip(before).map(|(after, before)| after - before)
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

/// Where one client connects and how it reads.
pub struct Client {
    pub address: String,
    pub project: String,
    /// See [`Options::read_every`].
    pub read_every: Option<Duration>,
    /// The clients' own namespace, with `--clients-apart`.
    pub apart: Option<Arc<crate::apart::Apart>>,
}

/// One client of one board: joins `at.project` on `at.address`, then accounts for every
/// `ticket:deleted` by its seq until `phases` says it is done. With `at.read_every`, it
/// waits that long whenever it has read everything its socket held.
pub async fn client(
    at: Client,
    phases: Arc<Phases>,
    count: usize,
    joined: Arc<AtomicUsize>,
    gate: Arc<tokio::sync::Semaphore>,
) -> Seen {
    let Client {
        address,
        project,
        read_every,
        apart,
    } = at;
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
        crate::presence::connect_and_join(&url, json!(["project:join", project]), apart.as_deref())
            .await;
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
        let ready = match read_every {
            Some(every) => match stream.next().now_or_never() {
                Some(message) => Some(Ok(message)),
                None => {
                    tokio::time::sleep(every).await;
                    None
                }
            },
            None => None,
        };
        let next = match ready {
            Some(next) => next,
            None => tokio::time::timeout(Duration::from_secs(5), stream.next()).await,
        };
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
