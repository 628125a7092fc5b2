//! `kanban-loadtest cluster-fanout [--boards B] [--clients N] [--rate E] [--seconds S]
//! [--results FILE]`: fan-out with boards spread over Redis, on one Redis server (one
//! primary, classic pub/sub) and then on a Redis Cluster of three primaries and three
//! replicas (sharded pub/sub), each started by the tool on free loopback ports. Two of our
//! gateways hold N clients over B boards; E events per second in all are published round
//! the boards by the relay's own script. Per setup it reports, per Redis process, the
//! events it published per second and its CPU, and Redis's CPU per event in all: on the
//! cluster the pub/sub load divides across the shards instead of all landing on one
//! process. Each process's CPU is also given net of what it spends idle (measured over
//! [`IDLE`] with the clients joined and nothing published: a cluster node's bus and cron
//! cost CPU whatever the load). Deliveries are accounted per client (lost, duplicated,
//! out of order: 0).

use crate::e2e::now_us;
use crate::fanout::{client, Client, Phases, Seen};
use crate::procs::{gateway_bin, Place, ServerProcess};
use crate::servers::timed_event;
use kanban_test_support::cluster::OwnCluster;
use kanban_test_support::OwnRedis;
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long each Redis process's idle CPU is measured before publishing.
const IDLE: Duration = Duration::from_secs(5);

pub struct Options {
    pub boards: usize,
    pub clients: usize,
    /// Events per second, over all boards.
    pub rate: u64,
    pub seconds: u64,
    pub results: std::path::PathBuf,
}

/// Where one setup's Redis runs.
enum Redis {
    Server(OwnRedis),
    Cluster(OwnCluster),
}

impl Redis {
    fn name(&self) -> &'static str {
        match self {
            Redis::Server(_) => "one server",
            Redis::Cluster(_) => "cluster, 3 primaries + 3 replicas",
        }
    }

    fn settings(&self, prefix: &str) -> kanban_config::RedisSettings {
        let mut settings = kanban_config::RedisSettings {
            key_prefix: prefix.to_owned(),
            ..kanban_config::RedisSettings::default()
        };
        match self {
            Redis::Server(server) => settings.url = secrecy::SecretString::from(server.url()),
            Redis::Cluster(cluster) => {
                settings.cluster_nodes = cluster
                    .seeds()
                    .split(',')
                    .map(|seed| secrecy::SecretString::from(seed.to_owned()))
                    .collect();
            }
        }
        settings
    }

    /// Every Redis process's port.
    fn ports(&self) -> Vec<u16> {
        match self {
            Redis::Server(server) => vec![server.port],
            Redis::Cluster(cluster) => cluster.ports.clone(),
        }
    }
}

pub async fn run(options: Options) {
    let single = OwnRedis::start();
    single.wait_ready().await;
    let server = run_one(&options, Redis::Server(single)).await;
    let cluster = run_one(&options, Redis::Cluster(OwnCluster::start().await)).await;
    println!(
        "cluster-fanout side by side (one server / cluster): Redis CPU per event {:.1} / {:.1} µs \
         in all ({:.1} / {:.1} net of idle); busiest Redis process {:.0} / {:.0} events/s at \
         {:.1} / {:.1} % of a core",
        server.cpu_us_per_event,
        cluster.cpu_us_per_event,
        server.net_us_per_event,
        cluster.net_us_per_event,
        server.busiest_events_per_s,
        cluster.busiest_events_per_s,
        server.busiest_cpu_percent,
        cluster.busiest_cpu_percent,
    );
    if let Redis::Server(mut single) = server.redis {
        single.stop();
    }
}

struct Outcome {
    redis: Redis,
    cpu_us_per_event: f64,
    net_us_per_event: f64,
    busiest_events_per_s: f64,
    busiest_cpu_percent: f64,
}

async fn run_one(options: &Options, redis: Redis) -> Outcome {
    let name = redis.name();
    let prefix = kanban_test_support::redis_prefix();
    let settings = redis.settings(&prefix);
    let bin = gateway_bin();
    let per_gateway = options.clients / 2 + 1;
    let loopback = Place::loopback();
    let gateways = match &redis {
        Redis::Server(server) => vec![
            ServerProcess::gateway_at(&loopback, &bin, "gw1", &server.url(), &prefix, per_gateway)
                .await,
            ServerProcess::gateway_at(&loopback, &bin, "gw2", &server.url(), &prefix, per_gateway)
                .await,
        ],
        Redis::Cluster(cluster) => {
            let seeds = cluster.seeds();
            vec![
                ServerProcess::gateway_on_cluster(&bin, "gw1", &seeds, &prefix, per_gateway).await,
                ServerProcess::gateway_on_cluster(&bin, "gw2", &seeds, &prefix, per_gateway).await,
            ]
        }
    };
    let conn = kanban_redis::connect(&settings, kanban_redis::Reconnect::default())
        .expect("connect to Redis");
    let publisher =
        ticket_api::relay::publisher::Publisher::new(conn, prefix.clone(), 1000, 600, 600);

    // Boards and which Redis process serves each (its primary's port).
    let boards: Vec<String> = (0..options.boards.max(1))
        .map(|_| crate::presence::uuid_like())
        .collect();
    let owners: Vec<u16> = match &redis {
        Redis::Server(server) => vec![server.port; boards.len()],
        Redis::Cluster(cluster) => {
            let mut owners = Vec::new();
            for board in &boards {
                owners.push(
                    cluster
                        .range_of(kanban_redis::slot(board))
                        .await
                        .primary_port,
                );
            }
            owners
        }
    };
    let phases: Vec<Arc<Phases>> = boards.iter().map(|_| Arc::new(Phases::new(1))).collect();
    for phase in &phases {
        phase.starts[0].store(1, Ordering::SeqCst);
    }
    let joined = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(tokio::sync::Semaphore::new(200));
    let addresses: Vec<String> = gateways.iter().map(|g| g.address.clone()).collect();
    let mut tasks = Vec::with_capacity(options.clients);
    for i in 0..options.clients {
        let board = i % boards.len();
        let address = addresses[(i / boards.len()) % addresses.len()].clone();
        let (project, phases, joined, gate) = (
            boards[board].clone(),
            Arc::clone(&phases[board]),
            Arc::clone(&joined),
            Arc::clone(&gate),
        );
        tasks.push((
            board,
            tokio::spawn(async move {
                let at = Client {
                    address,
                    project,
                    read_every: None,
                    apart: None,
                };
                client(at, phases, 1, joined, gate).await
            }),
        ));
    }
    let joining = Instant::now();
    while joined.load(Ordering::SeqCst) < options.clients {
        assert!(
            joining.elapsed() < Duration::from_secs(120),
            "{name}: only {} of {} clients joined in 120 s",
            joined.load(Ordering::SeqCst),
            options.clients
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Let every gateway's subscriptions settle before measuring.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let ports = redis.ports();
    let idle_before = redis_cpus(&ports).await;
    tokio::time::sleep(IDLE).await;
    let idle_per_s: Vec<f64> = redis_cpus(&ports)
        .await
        .iter()
        .zip(&idle_before)
        .map(|(after, before)| (after - before) / IDLE.as_secs_f64())
        .collect();
    let cpu_before = redis_cpus(&ports).await;
    let gateways_before: f64 = gateways.iter().map(ServerProcess::cpu_seconds).sum();
    let host = crate::host::Sample::now();
    let mut seqs = vec![0i64; boards.len()];
    let mut published = 0u64;
    let started = Instant::now();
    let end = started + Duration::from_secs(options.seconds);
    let bar = crate::progress::phase(
        options.seconds,
        &format!("{name}: {} events/s", options.rate),
    );
    while Instant::now() < end {
        crate::progress::tick(&bar, started.elapsed());
        let due = (started.elapsed().as_secs_f64() * options.rate as f64) as u64;
        while published < due {
            let board = (published as usize) % boards.len();
            seqs[board] += 1;
            published += 1;
            let event = timed_event(&boards[board], seqs[board], now_us());
            publisher.publish(&event).await.expect("publish");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cpu_after = redis_cpus(&ports).await;
    let measured = seconds + 2.0;
    let gateways_cpu: f64 =
        gateways.iter().map(ServerProcess::cpu_seconds).sum::<f64>() - gateways_before;
    let redis_cpu: Vec<f64> = cpu_after
        .iter()
        .zip(&cpu_before)
        .map(|(after, before)| after - before)
        .collect();
    let host = host.report_with(&[
        ("redis", redis_cpu.iter().sum()),
        ("gateways", gateways_cpu),
    ]);
    for (phase, last) in phases.iter().zip(&seqs) {
        phase.starts[1].store(last + 1, Ordering::SeqCst);
        phase.done.store(true, Ordering::SeqCst);
    }
    let mut seen: Vec<Seen> = Vec::with_capacity(tasks.len());
    for (_, task) in tasks {
        seen.push(task.await.expect("client task"));
    }
    let lost: u64 = seen.iter().map(|s| s.lost).sum();
    let duplicated: u64 = seen.iter().map(|s| s.duplicated).sum();
    let out_of_order: u64 = seen.iter().map(|s| s.out_of_order).sum();
    let delivered: u64 = seen.iter().map(|s| s.received[0]).sum();

    let total_cpu: f64 = redis_cpu.iter().sum();
    let net_cpu: Vec<f64> = redis_cpu
        .iter()
        .zip(&idle_per_s)
        .map(|(cpu, idle)| (cpu - idle * measured).max(0.0))
        .collect();
    let total_net: f64 = net_cpu.iter().sum();
    println!(
        "cluster-fanout ({name}): {} boards, {} clients on 2 gateways, {published} events in {seconds:.1} s \
         ({:.0} events/s, {:.0} deliveries/s); lost {lost}, duplicated {duplicated}, out of order {out_of_order}; \
         Redis CPU {:.1} µs per event in all ({:.1} µs net of idle)",
        boards.len(),
        options.clients,
        published as f64 / seconds,
        delivered as f64 / seconds,
        total_cpu * 1e6 / published.max(1) as f64,
        total_net * 1e6 / published.max(1) as f64,
    );
    let mut busiest_events_per_s: f64 = 0.0;
    let mut busiest_cpu_percent: f64 = 0.0;
    let mut processes = Vec::new();
    for ((port, cpu), (net, idle)) in ports
        .iter()
        .zip(&redis_cpu)
        .zip(net_cpu.iter().zip(&idle_per_s))
    {
        let events: u64 = owners
            .iter()
            .zip(&seqs)
            .filter(|(owner, _)| *owner == port)
            .map(|(_, seq)| *seq as u64)
            .sum();
        let events_per_s = events as f64 / seconds;
        let cpu_percent = cpu / measured * 100.0;
        busiest_events_per_s = busiest_events_per_s.max(events_per_s);
        busiest_cpu_percent = busiest_cpu_percent.max(cpu_percent);
        let role = if owners.contains(port) {
            "primary"
        } else {
            "replica"
        };
        println!(
            "  redis :{port} ({role}): {events_per_s:.0} events/s published, CPU {cpu_percent:.1} % \
             of a core (idle {:.1} %){}",
            idle * 100.0,
            if events > 0 {
                format!(
                    ", {:.1} µs per event ({:.1} net of idle)",
                    cpu * 1e6 / events as f64,
                    net * 1e6 / events as f64
                )
            } else {
                String::new()
            }
        );
        processes.push(json!({
            "port": port, "role": role, "events_per_s": events_per_s,
            "cpu_percent": cpu_percent, "idle_cpu_percent": idle * 100.0,
            "cpu_us_per_event_net": if events > 0 { net * 1e6 / events as f64 } else { 0.0 },
        }));
    }
    println!("    {host}");
    let line = json!({
        "scenario": "cluster-fanout",
        "redis": name,
        "boards": boards.len(),
        "clients": options.clients,
        "events_per_s": published as f64 / seconds,
        "deliveries_per_s": delivered as f64 / seconds,
        "redis_cpu_us_per_event": total_cpu * 1e6 / published.max(1) as f64,
        "redis_cpu_us_per_event_net": total_net * 1e6 / published.max(1) as f64,
        "redis_processes": processes,
        "gateway_cpu_s": gateways_cpu,
        "lost": lost, "duplicated": duplicated, "out_of_order": out_of_order,
        "host": host,
    });
    crate::results::append(&options.results, &line);
    drop(gateways);
    Outcome {
        redis,
        cpu_us_per_event: total_cpu * 1e6 / published.max(1) as f64,
        net_us_per_event: total_net * 1e6 / published.max(1) as f64,
        busiest_events_per_s,
        busiest_cpu_percent,
    }
}

/// Each Redis process's CPU seconds so far (INFO cpu), in the order of `ports`.
async fn redis_cpus(ports: &[u16]) -> Vec<f64> {
    let mut out = Vec::with_capacity(ports.len());
    for port in ports {
        let mut conn = redis::Client::open(format!("redis://127.0.0.1:{port}"))
            .expect("redis url")
            .get_multiplexed_async_connection()
            .await
            .expect("connect to a Redis process");
        out.push(crate::host::redis_cpu(&mut conn).await);
    }
    out
}
