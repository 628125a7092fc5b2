//! `kanban-loadtest board-read [--seconds S] [--readers C] [--tickets T] [--results FILE]`:
//! snapshot reads of one board (`GET /api/projects/{id}`, T tickets) by C concurrent
//! readers for S seconds, first from an API instance with the board cache on (warmed by a
//! first read: the hit path), then from a second instance on the same database with it off
//! (the miss path); both in-process, relay off (nothing is written while they read).
//! Reports reads/s and latency (p50, p99) of each, their ratio, and the SQL statements per
//! read of each path, measured on the wire: two more instances (cache on, cache off) reach
//! Postgres through a counting proxy in this process that reads the frontend protocol and
//! counts Execute and simple-Query messages (every statement a client runs, BEGIN/COMMIT
//! and the pool's checkout check included). The timed instances' own `/metrics` give the
//! cache hits, misses and pool checkouts per read as a cross-check. Appends one JSON line
//! to the results file. Targets: the hit path ≥ 5× the miss path's reads/s, 0 SQL per hit.

use crate::e2e;
use hdrhistogram::Histogram;
use serde_json::json;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub struct Options {
    pub seconds: u64,
    pub readers: usize,
    pub tickets: usize,
    pub results: std::path::PathBuf,
}

/// Reads per path through the counting proxy (after as many warm-up reads).
const COUNTED_READS: u64 = 100;
const WARM_UP_READS: u64 = 10;

pub async fn run(options: Options, redis_url: String) {
    let Options {
        seconds,
        readers,
        tickets,
        ref results,
    } = options;
    crate::host::raise_file_limit(readers * 4 + 64);
    let db = e2e::scratch_database().await;
    let prefix = kanban_test_support::redis_prefix();
    let settings = |url: &str, cache: bool| {
        let mut settings = e2e::api_settings(url, &redis_url, &prefix);
        settings.cache.enabled = cache;
        settings.relay.enabled = false;
        settings
    };
    let hit = e2e::start_api(settings(&db.url, true)).await;
    let miss = e2e::start_api(settings(&db.url, false)).await;
    let pool = ticket_api::Settings::default().database.pool_size;

    let verifier = e2e::verifier();
    let owner = e2e::token(&verifier, "reader");
    let http = e2e::http_client();
    let (project, _) = e2e::create_board(&http, &hit, &owner, "board-read", tickets).await;
    let url = |base: &str| format!("{base}/api/projects/{project}");

    // The first read fills the cache; the next must be a hit.
    let first = get(&http, &url(&hit), &owner).await;
    let before = metrics(&http, &hit).await;
    let second = get(&http, &url(&hit), &owner).await;
    let after = metrics(&http, &hit).await;
    assert!(
        after.hits - before.hits == 1.0,
        "the read after the first was not a cache hit"
    );
    println!(
        "board-read: one board of {tickets} tickets ({} bytes of JSON), {readers} readers, {seconds} s \
         per path, API in-process (database.pool_size {pool}), cache warmed by a first read",
        first.max(second)
    );

    let mut redis = redis::Client::open(redis_url.as_str())
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("connect to Redis");
    let mut rows = Vec::new();
    for (path, base) in [("hit (cache on)", &hit), ("miss (cache off)", &miss)] {
        let before = metrics(&http, base).await;
        let host = crate::host::Sample::now();
        let (pg_before, redis_before) = (
            e2e::postgres_ticks(),
            crate::host::redis_cpu(&mut redis).await,
        );
        let phase = read_phase(&http, &url(base), &owner, readers, seconds).await;
        let pg_cpu = e2e::postgres_cpu_since(&pg_before);
        let redis_cpu = crate::host::redis_cpu(&mut redis).await - redis_before;
        let host_line = host.report_with(&[("postgres", pg_cpu), ("redis", redis_cpu)]);
        let after = metrics(&http, base).await;
        let reads = phase.reads as f64;
        let per_read = |a: f64, b: f64| (a - b) / reads.max(1.0);
        let row = Row {
            reads_per_s: reads / phase.seconds,
            p50: phase.latency.value_at_quantile(0.5) as f64 / 1000.0,
            p99: phase.latency.value_at_quantile(0.99) as f64 / 1000.0,
            reads: phase.reads,
            errors: phase.errors,
            hits_per_read: per_read(after.hits, before.hits),
            misses_per_read: per_read(after.misses, before.misses),
            checkouts_per_read: per_read(after.checkouts, before.checkouts),
            host: host_line,
        };
        println!(
            "  {path}: {:.0} reads/s, latency p50 {:.2} ms p99 {:.2} ms ({} reads, {} errors); \
             per read: {:.2} cache hits, {:.2} misses, {:.2} pool checkouts",
            row.reads_per_s,
            row.p50,
            row.p99,
            row.reads,
            row.errors,
            row.hits_per_read,
            row.misses_per_read,
            row.checkouts_per_read
        );
        println!("    {}", row.host);
        rows.push(row);
    }
    let ratio = rows[0].reads_per_s / rows[1].reads_per_s.max(1e-9);

    // SQL per read, counted on the wire by two more instances behind counting proxies.
    let upstream = authority(&db.url);
    let mut sql = Vec::new();
    for cache in [true, false] {
        let proxy = Proxy::start(upstream.clone()).await;
        let mut counted = settings(&with_authority(&db.url, &proxy.address), cache);
        counted.database.pool_size = 4;
        let base = e2e::start_api(counted).await;
        for _ in 0..WARM_UP_READS {
            get(&http, &url(&base), &owner).await;
        }
        let before = proxy.counts();
        for _ in 0..COUNTED_READS {
            get(&http, &url(&base), &owner).await;
        }
        let after = proxy.counts();
        let per_read = |a: u64, b: u64| (a - b) as f64 / COUNTED_READS as f64;
        sql.push(Counted {
            executes: per_read(after.executes, before.executes),
            queries: per_read(after.queries, before.queries),
            parses: per_read(after.parses, before.parses),
        });
    }
    println!(
        "  hit path {ratio:.1}× the miss path's reads/s (target ≥ 5×: {})",
        if ratio >= 5.0 { "met" } else { "NOT met" }
    );
    println!(
        "  SQL statements per read, counted on the wire (Execute + simple Query messages to \
         Postgres, over {COUNTED_READS} reads after {WARM_UP_READS} warm-up): hit {:.2}, miss \
         {:.2} (miss: {:.2} Execute, {:.2} simple Query, {:.2} Parse); target 0 per hit: {}",
        sql[0].statements(),
        sql[1].statements(),
        sql[1].executes,
        sql[1].queries,
        sql[1].parses,
        if sql[0].statements() == 0.0 {
            "met"
        } else {
            "NOT met"
        }
    );
    let path_json = |row: &Row, counted: &Counted| {
        json!({
            "reads_per_s": row.reads_per_s,
            "latency_ms": {"p50": row.p50, "p99": row.p99},
            "reads": row.reads,
            "errors": row.errors,
            "cache_hits_per_read": row.hits_per_read,
            "cache_misses_per_read": row.misses_per_read,
            "pool_checkouts_per_read": row.checkouts_per_read,
            "sql_statements_per_read": counted.statements(),
            "sql_messages_per_read": {
                "execute": counted.executes,
                "simple_query": counted.queries,
                "parse": counted.parses,
            },
            "host": row.host,
        })
    };
    let line = json!({
        "scenario": "board-read",
        "readers": readers,
        "tickets": tickets,
        "seconds": seconds,
        "pool_size": pool,
        "hit": path_json(&rows[0], &sql[0]),
        "miss": path_json(&rows[1], &sql[1]),
        "hit_to_miss_ratio": ratio,
        "sql_measured_by": "a counting proxy between separate API instances (same settings, pool 4) \
            and Postgres: Execute + simple-Query frontend messages per read, over 100 sequential \
            reads after 10 warm-up reads; cache hits/misses/pool checkouts per read are from the \
            timed instances' /metrics",
        "targets": {"ratio_at_least": 5, "sql_per_hit": 0,
                    "met": ratio >= 5.0 && sql[0].statements() == 0.0},
    });
    crate::results::append(results, &line);
    println!("  results appended to {}", results.display());
    drop(db);
}

struct Row {
    reads_per_s: f64,
    p50: f64,
    p99: f64,
    reads: u64,
    errors: u64,
    hits_per_read: f64,
    misses_per_read: f64,
    checkouts_per_read: f64,
    host: String,
}

/// Frontend messages per read.
struct Counted {
    executes: f64,
    queries: f64,
    parses: f64,
}

impl Counted {
    fn statements(&self) -> f64 {
        self.executes + self.queries
    }
}

/// A board read; returns the body's size.
async fn get(http: &reqwest::Client, url: &str, token: &str) -> usize {
    let response = http
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .expect("GET the board");
    assert!(
        response.status().is_success(),
        "GET the board: {}",
        response.status()
    );
    response.bytes().await.expect("board body").len()
}

struct Metrics {
    hits: f64,
    misses: f64,
    checkouts: f64,
}

async fn metrics(http: &reqwest::Client, base: &str) -> Metrics {
    let text = crate::buckets::metrics_page(http, base).await;
    let value = |name: &str| {
        let v = kanban_test_support::metric_value(&text, name);
        if v.is_nan() {
            0.0
        } else {
            v
        }
    };
    Metrics {
        hits: value("kanban_ticket_api_cache_hits_total"),
        misses: value("kanban_ticket_api_cache_misses_total"),
        checkouts: value("kanban_ticket_api_db_connections_acquired_total"),
    }
}

struct Phase {
    reads: u64,
    errors: u64,
    seconds: f64,
    latency: Histogram<u64>,
}

/// `readers` clients read `url` back to back for `seconds`.
async fn read_phase(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    readers: usize,
    seconds: u64,
) -> Phase {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let mut tasks = Vec::with_capacity(readers);
    for _ in 0..readers {
        let (http, url, token) = (http.clone(), url.to_owned(), token.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut latency = e2e::histogram();
            let (mut reads, mut errors) = (0u64, 0u64);
            while Instant::now() < deadline {
                let sent = Instant::now();
                let ok = match http.get(&url).bearer_auth(&token).send().await {
                    Ok(response) => {
                        response.status().is_success() && response.bytes().await.is_ok()
                    }
                    Err(_) => false,
                };
                if ok {
                    reads += 1;
                    let _ = latency.record(sent.elapsed().as_micros().max(1) as u64);
                } else {
                    errors += 1;
                }
            }
            (reads, errors, latency)
        }));
    }
    let mut phase = Phase {
        reads: 0,
        errors: 0,
        seconds: 0.0,
        latency: e2e::histogram(),
    };
    for task in tasks {
        let (reads, errors, latency) = task.await.expect("reader");
        phase.reads += reads;
        phase.errors += errors;
        phase.latency.add(&latency).expect("merge");
    }
    phase.seconds = started.elapsed().as_secs_f64();
    phase
}

/// `host:port` of a `postgres://user@host:port/db` URL (port 5432 when absent).
fn authority(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let host = rest.split('/').next().unwrap_or(rest);
    let host = host.rsplit_once('@').map_or(host, |(_, host)| host);
    if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:5432")
    }
}

/// `url` with its `host:port` replaced by `address`.
fn with_authority(url: &str, address: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL");
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let user = authority
        .rsplit_once('@')
        .map_or(String::new(), |(user, _)| format!("{user}@"));
    format!("{scheme}://{user}{address}{path}")
}

/// Frontend messages seen by a [`Proxy`] so far.
#[derive(Clone, Copy)]
struct Counts {
    /// Execute ('E') messages: statements of the extended protocol run.
    executes: u64,
    /// Simple Query ('Q') messages (BEGIN, COMMIT, SET and the like).
    queries: u64,
    /// Parse ('P') messages: statements prepared.
    parses: u64,
}

/// A TCP proxy on loopback in front of Postgres that counts the statements its clients
/// send (it reads the frontend protocol's message framing; the bytes pass unchanged).
struct Proxy {
    address: String,
    /// Execute, simple Query and Parse messages.
    counters: Arc<[AtomicU64; 3]>,
}

impl Proxy {
    async fn start(upstream: String) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let address = listener.local_addr().expect("proxy address").to_string();
        let counters: Arc<[AtomicU64; 3]> = Arc::new(Default::default());
        let shared = Arc::clone(&counters);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                    continue;
                };
                let counters = Arc::clone(&shared);
                tokio::spawn(async move {
                    let (client_read, mut client_write) = client.into_split();
                    let (mut server_read, server_write) = server.into_split();
                    let down = tokio::spawn(async move {
                        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
                    });
                    let _ = count_frontend(client_read, server_write, counters).await;
                    down.abort();
                });
            }
        });
        Proxy { address, counters }
    }

    fn counts(&self) -> Counts {
        let [executes, queries, parses] =
            [0, 1, 2].map(|i| self.counters[i].load(Ordering::SeqCst));
        Counts {
            executes,
            queries,
            parses,
        }
    }
}

/// Copies the client's bytes to the server, counting its messages: untyped start-up
/// packets first (SSL/GSS requests, then the startup message), then typed messages
/// (a type byte and a length that counts itself).
async fn count_frontend(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    counters: Arc<[AtomicU64; 3]>,
) -> std::io::Result<()> {
    const SSL_REQUEST: u32 = 80_877_103;
    const GSS_REQUEST: u32 = 80_877_104;
    let mut buffer = vec![0u8; 64 * 1024];
    let mut pending: Vec<u8> = Vec::new();
    let mut startup = true;
    loop {
        let n = from.read(&mut buffer).await?;
        if n == 0 {
            return Ok(());
        }
        to.write_all(&buffer[..n]).await?;
        pending.extend_from_slice(&buffer[..n]);
        loop {
            if startup {
                if pending.len() < 8 {
                    break;
                }
                let length = u32::from_be_bytes([pending[0], pending[1], pending[2], pending[3]]);
                let code = u32::from_be_bytes([pending[4], pending[5], pending[6], pending[7]]);
                if pending.len() < length as usize {
                    break;
                }
                pending.drain(..length as usize);
                startup = code == SSL_REQUEST || code == GSS_REQUEST;
            } else {
                if pending.len() < 5 {
                    break;
                }
                let length = u32::from_be_bytes([pending[1], pending[2], pending[3], pending[4]]);
                let whole = 1 + length as usize;
                if pending.len() < whole {
                    break;
                }
                let counter = match pending[0] {
                    b'E' => Some(0),
                    b'Q' => Some(1),
                    b'P' => Some(2),
                    _ => None,
                };
                if let Some(i) = counter {
                    counters[i].fetch_add(1, Ordering::SeqCst);
                }
                pending.drain(..whole);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_the_database_address() {
        let url = "postgres://postgres@127.0.0.1:5432/kt_1_abc";
        assert_eq!(authority(url), "127.0.0.1:5432");
        assert_eq!(
            with_authority(url, "127.0.0.1:40000"),
            "postgres://postgres@127.0.0.1:40000/kt_1_abc"
        );
        assert_eq!(authority("postgres://localhost/db"), "localhost:5432");
    }
}
