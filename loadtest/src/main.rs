//! Benchmarks that need the real system, one scenario per run (`kanban-loadtest SCENARIO`
//! or `--scenario SCENARIO`; `USAGE` below lists their options): `pipeline` (here),
//! `presence` (`presence.rs`), `resume-storm` (`resume.rs`), `fanout` (`fanout.rs`), `idle`
//! (`idle.rs`, its clients in `idle_client.rs`, its worker processes in
//! `idle_workers.rs`), `join-storm` (`join_storm.rs`), `e2e` (`e2e.rs`), `board-read`
//! (`board_read.rs`) and `seed` (`seed.rs`). `--server kanban|node|both` runs `fanout`,
//! `idle` and `join-storm` against our gateways, the Node reference, or both side by side.
//!
//! `pipeline` starts the ticket API in-process against the local PostgreSQL (a scratch
//! database, dropped afterwards) and Redis (a scratch key prefix), then has `writers`
//! concurrent clients move tickets of one board for `seconds`, while a Redis subscriber on
//! the board's channel receives every event. It reports sustained moves/s, the latency from
//! each HTTP response to the event's arrival on Redis (which is bounded by commit → publish),
//! the relay's own commit → publish delay histogram, and checks that the seqs arrived
//! gap-free and in order. Numbers are recorded in docs/benchmarks.md.
// A benchmark harness fails loudly on any error, as a test does.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod apart;
mod board_read;
mod buckets;
mod cluster_fanout;
mod e2e;
mod fanout;
mod hops;
mod host;
mod idle;
mod idle_client;
mod idle_workers;
mod join_storm;
mod plot;
mod presence;
mod procs;
mod progress;
mod results;
mod resume;
mod seed;
mod servers;
mod ws;

use futures_util::StreamExt;
use kanban_protocol::redis_keys;
use rand::Rng;
use secrecy::SecretString;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Args {
    writers: usize,
    seconds: u64,
    tickets: usize,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

/// The command line after the scenario's name: `--flag value` pairs and bare flags.
struct Argv(Vec<String>);

impl Argv {
    fn value(&self, flag: &str) -> Option<String> {
        self.0
            .windows(2)
            .find(|w| w[0] == flag)
            .map(|w| w[1].clone())
    }

    fn number<T: std::str::FromStr>(&self, flag: &str, default: T) -> T {
        self.value(flag).map_or(default, |v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{flag} needs a number, not {v}"))
        })
    }

    fn flag(&self, flag: &str) -> bool {
        self.0.iter().any(|a| a == flag)
    }

    fn servers(&self) -> Vec<procs::Kind> {
        procs::Kind::parse_list(&self.value("--server").unwrap_or_else(|| "kanban".into()))
    }

    fn node_reference(&self) -> Option<std::path::PathBuf> {
        self.value("--node-reference").map(Into::into)
    }

    fn results(&self) -> std::path::PathBuf {
        self.value("--results")
            .unwrap_or_else(|| "loadtest-results.jsonl".into())
            .into()
    }

    fn plots(&self) -> std::path::PathBuf {
        self.value("--plots")
            .unwrap_or_else(|| "loadtest-plots".into())
            .into()
    }
}

const USAGE: &str = "\
usage: kanban-loadtest SCENARIO [options]   (or: kanban-loadtest --scenario SCENARIO [options])
  pipeline      [--writers N] [--seconds S] [--tickets T]
  presence      [--sockets N]
  resume-storm  [--sockets N] [--history H] [--spread]
  fanout        [--clients N] [--rates K,K,...] [--seconds S] [--read-every-ms M] [--server S]
                [--clients-apart] [--results FILE] [--plots DIR]
  idle          [--sockets N] [--rooms R] [--burst E] [--server S] [--results FILE]
  join-storm    [--sockets N] [--limit-seconds T] [--server S] [--results FILE]
  e2e           [--watchers N] [--boards B] [--rates R,R,...] [--seconds S] [--results FILE] [--plots DIR]
  board-read    [--seconds S] [--readers C] [--tickets T] [--results FILE]
  seed          [--clients N] [--moves M] [--rate R] [--results FILE]
  cluster-fanout [--boards B] [--clients N] [--rate E] [--seconds S] [--results FILE]
--server is kanban (default), node (the Node reference, ../shared/bench/node-reference or
--node-reference DIR) or both, side by side. --results defaults to loadtest-results.jsonl,
--plots (SVG latency plots) to loadtest-plots/. --clients-apart (root, iproute2) puts the
clients in a network namespace of their own on the last core, the servers on the others.";

#[tokio::main]
async fn main() {
    let all: Vec<String> = std::env::args().skip(1).collect();
    let (scenario, rest) = match all.first().map(String::as_str) {
        Some("--scenario") => (all.get(1).cloned(), all.iter().skip(2).cloned().collect()),
        Some(_) => (all.first().cloned(), all.iter().skip(1).cloned().collect()),
        None => (None, Vec::new()),
    };
    let argv = Argv(rest);
    let redis_url =
        std::env::var("KANBAN_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    match scenario.as_deref() {
        Some("pipeline") => {
            pipeline(Args {
                writers: argv.number("--writers", 8),
                seconds: argv.number("--seconds", 20),
                tickets: argv.number("--tickets", 50),
            })
            .await
        }
        Some("presence") => presence::run(argv.number("--sockets", 5000), redis_url).await,
        Some("resume-storm") => {
            let options = resume::Options {
                sockets: argv.number("--sockets", 5000),
                history: argv.number("--history", 1000),
                spread: argv.flag("--spread"),
            };
            resume::run(options, redis_url).await;
        }
        Some("fanout") => {
            let options = fanout::Options {
                clients: argv.number("--clients", 1000),
                rates: argv
                    .value("--rates")
                    .unwrap_or_else(|| "20,100,300".into())
                    .split(',')
                    .map(|r| {
                        r.parse()
                            .expect("--rates takes numbers (thousands of deliveries/s)")
                    })
                    .collect(),
                seconds: argv.number("--seconds", 10),
                results: argv.results(),
                plots: argv.plots(),
                servers: argv.servers(),
                node_reference: argv.node_reference(),
                read_every: match argv.number("--read-every-ms", 0) {
                    0 => None,
                    ms => Some(std::time::Duration::from_millis(ms)),
                },
                clients_apart: argv.flag("--clients-apart"),
            };
            fanout::run(options, redis_url).await;
        }
        Some("idle") => {
            let options = idle::Options {
                // Beyond what one process may open, worker processes hold the clients.
                sockets: argv.number("--sockets", 10_000),
                rooms: argv.number("--rooms", 100),
                burst: argv.number("--burst", 20),
                results: argv.results(),
                servers: argv.servers(),
                node_reference: argv.node_reference(),
            };
            idle::run(options, redis_url).await;
        }
        // A worker of `idle` (started by it, not by hand).
        Some("idle-clients") => {
            let list = |name: &str| -> Vec<String> {
                argv.value(name)
                    .unwrap_or_default()
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            };
            idle_workers::serve(
                argv.number("--first", 0),
                argv.number("--count", 0),
                list("--addresses"),
                list("--boards"),
                argv.number("--burst", 20),
            )
            .await;
        }
        Some("join-storm") => {
            let options = join_storm::Options {
                sockets: argv.number("--sockets", 5000),
                results: argv.results(),
                servers: argv.servers(),
                node_reference: argv.node_reference(),
                limit: Duration::from_secs(argv.number("--limit-seconds", 180)),
            };
            join_storm::run(options, redis_url).await;
        }
        Some("cluster-fanout") => {
            let options = cluster_fanout::Options {
                boards: argv.number("--boards", 30),
                clients: argv.number("--clients", 300),
                rate: argv.number("--rate", 1000),
                seconds: argv.number("--seconds", 10),
                results: argv.results(),
            };
            cluster_fanout::run(options).await;
        }
        Some("e2e") => {
            let options = e2e::Options {
                watchers: argv.number("--watchers", 1000),
                boards: argv.number("--boards", 10),
                rates: argv
                    .value("--rates")
                    .unwrap_or_else(|| "50,200,500".into())
                    .split(',')
                    .map(|r| r.parse().expect("--rates takes numbers (moves/s)"))
                    .collect(),
                seconds: argv.number("--seconds", 10),
                results: argv.results(),
                plots: argv.plots(),
            };
            e2e::run(options, redis_url).await;
        }
        Some("board-read") => {
            let options = board_read::Options {
                seconds: argv.number("--seconds", 10),
                readers: argv.number("--readers", 32),
                tickets: argv.number("--tickets", 200),
                results: argv.results(),
            };
            board_read::run(options, redis_url).await;
        }
        Some("seed") => {
            let options = seed::Options {
                clients: argv.number("--clients", 50),
                moves: argv.number("--moves", 200),
                rate: argv.number("--rate", 10.0),
                results: argv.results(),
            };
            seed::run(options, redis_url).await;
        }
        _ => {
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    }
}

async fn pipeline(args: Args) {
    let redis_url =
        std::env::var("KANBAN_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let migrations = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../services/ticket-api/migrations"
    ));
    let db = kanban_test_support::TestDatabase::create(migrations, |url| async move {
        ticket_api::db::run_migrations(&url).await.map(drop)
    })
    .await;
    let prefix = kanban_test_support::redis_prefix();
    let secret = "loadtest-secret-that-is-long-enough-0123456789";
    let mut settings = ticket_api::Settings::default();
    settings.http.port = 0;
    settings.database.url = SecretString::from(db.url.clone());
    settings.database.pool_size = args.writers + 4;
    settings.database.migrate_on_start = false;
    settings.redis.url = SecretString::from(redis_url.clone());
    settings.redis.key_prefix = prefix.clone();
    settings.auth.jwt_secret = SecretString::from(secret.to_owned());
    let verifier = kanban_auth::TokenVerifier::from_settings(&settings.auth).unwrap();
    let app = ticket_api::Application::build(settings).await.unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    let token = verifier.issue("bench", None, 3600).unwrap();
    let http = reqwest::Client::new();

    let project: Value = http
        .post(format!("{base}/api/projects"))
        .bearer_auth(&token)
        .json(&json!({"name": "bench"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let project = project["id"].as_str().unwrap().to_owned();
    let mut tickets = Vec::new();
    for i in 0..args.tickets {
        let ticket: Value = http
            .post(format!("{base}/api/projects/{project}/tickets"))
            .bearer_auth(&token)
            .json(&json!({"title": format!("t{i}"), "status": "TODO"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        tickets.push(ticket["id"].as_str().unwrap().to_owned());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Subscriber: arrival time of every mutation id, and the order of seqs.
    let arrivals: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let order: Arc<Mutex<Vec<i64>>> = Arc::default();
    let client = redis::Client::open(redis_url).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub
        .subscribe(redis_keys::events_channel(&prefix, &project))
        .await
        .unwrap();
    {
        let (arrivals, order) = (Arc::clone(&arrivals), Arc::clone(&order));
        tokio::spawn(async move {
            let mut messages = pubsub.on_message();
            while let Some(message) = messages.next().await {
                let at = Instant::now();
                let payload: String = message.get_payload().unwrap();
                let envelope: Value = serde_json::from_str(&payload).unwrap();
                let seq = envelope["seq"].as_i64().unwrap();
                if let Some(id) = envelope["mutationId"].as_str() {
                    arrivals.lock().unwrap().insert(id.to_owned(), at);
                }
                order.lock().unwrap().push(seq);
            }
        });
    }
    let first_seq = {
        let access: Value = http
            .get(format!("{base}/api/projects/{project}/me"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        access["seq"].as_i64().unwrap()
    };

    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    // mutation id → (request sent, response received)
    let responses: Arc<Mutex<HashMap<String, (Instant, Instant)>>> = Arc::default();
    let started = Instant::now();
    let mut writers = Vec::new();
    for writer in 0..args.writers {
        let (http, base, token, tickets, responses) = (
            http.clone(),
            base.clone(),
            token.clone(),
            tickets.clone(),
            Arc::clone(&responses),
        );
        writers.push(tokio::spawn(async move {
            let mut moves = 0u64;
            while Instant::now() < deadline {
                let (ticket, position) = {
                    let mut rng = rand::rng();
                    (
                        tickets[rng.random_range(0..tickets.len())].clone(),
                        rng.random_range(0..tickets.len()),
                    )
                };
                let id = format!("w{writer}-{moves}");
                let sent = Instant::now();
                let response = http
                    .post(format!("{base}/api/tickets/{ticket}/move"))
                    .bearer_auth(&token)
                    .header("X-Mutation-Id", &id)
                    .json(&json!({"toStatus": "TODO", "position": position}))
                    .send()
                    .await
                    .unwrap();
                let answered = Instant::now();
                assert!(response.status().is_success(), "{}", response.status());
                let _: Value = response.json().await.unwrap();
                responses.lock().unwrap().insert(id, (sent, answered));
                moves += 1;
            }
            moves
        }));
    }
    let mut total = 0u64;
    for writer in writers {
        total += writer.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Pair each committed move (by mutation order in the log) with its arrival.
    let log: Value = {
        let mut events = Vec::new();
        let mut since = first_seq;
        loop {
            let page: Value = http
                .get(format!(
                    "{base}/api/projects/{project}/events?since={since}&limit=1000"
                ))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let batch = page["events"].as_array().unwrap().clone();
            if batch.is_empty() {
                break;
            }
            since = batch.last().unwrap()["seq"].as_i64().unwrap();
            events.extend(batch);
        }
        Value::Array(events)
    };
    let logged = log.as_array().unwrap();
    let order = order.lock().unwrap().clone();
    let received: Vec<i64> = order.iter().copied().filter(|s| *s > first_seq).collect();
    let expected: Vec<i64> = logged.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(
        received, expected,
        "Redis delivered the durable log exactly, in order"
    );
    assert_eq!(expected.len() as u64, total, "one event per move");

    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    println!(
        "pipeline benchmark: {} writers, {} tickets, {:.1} s",
        args.writers, args.tickets, elapsed
    );
    println!(
        "  moves committed:      {total} ({:.0} moves/s)",
        total as f64 / elapsed
    );
    println!(
        "  events on Redis:      {} (gap-free, in seq order, equal to the durable log)",
        received.len()
    );
    // The relay's commit → publish delay histogram (transaction start → PUBLISH).
    let buckets: Vec<(f64, f64)> = metrics
        .lines()
        .filter(|l| l.starts_with("kanban_ticket_api_outbox_publish_delay_seconds_bucket"))
        .filter_map(|l| {
            let le = l.split("le=\"").nth(1)?.split('"').next()?;
            let count: f64 = l.rsplit(' ').next()?.parse().ok()?;
            Some((
                if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().ok()?
                },
                count,
            ))
        })
        .collect();
    let all = buckets.last().map_or(0.0, |b| b.1);
    for p in [0.5, 0.95, 0.99] {
        let bound = buckets
            .iter()
            .find(|(_, c)| *c >= all * p)
            .map_or(f64::NAN, |b| b.0);
        println!(
            "  relay commit→publish p{:.0}: <= {} ms (histogram bucket)",
            p * 100.0,
            bound * 1000.0
        );
    }
    // Per mutation: request sent → event on Redis (an upper bound of commit → publish,
    // as the commit happens after the request is sent) and response → event (negative when
    // Redis had the event before the client had its answer).
    let arrivals = arrivals.lock().unwrap();
    let responses = responses.lock().unwrap();
    let mut end_to_end = Vec::new();
    let mut after_response = Vec::new();
    for (id, (sent, answered)) in responses.iter() {
        let Some(at) = arrivals.get(id) else {
            panic!("no event for mutation {id}")
        };
        end_to_end.push(at.duration_since(*sent).as_secs_f64());
        after_response.push(if at >= answered {
            at.duration_since(*answered).as_secs_f64()
        } else {
            -answered.duration_since(*at).as_secs_f64()
        });
    }
    end_to_end.sort_by(f64::total_cmp);
    after_response.sort_by(f64::total_cmp);
    for (label, values) in [
        ("request sent → event on Redis", &end_to_end),
        ("response → event on Redis", &after_response),
    ] {
        println!(
            "  {label}: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            percentile(values, 0.5) * 1000.0,
            percentile(values, 0.99) * 1000.0,
            values.last().copied().unwrap_or(f64::NAN) * 1000.0
        );
    }
}
