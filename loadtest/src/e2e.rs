//! `kanban-loadtest e2e [--watchers N] [--boards B] [--rates R,R,…] [--seconds S]
//! [--results FILE]`: the whole real-time path. The ticket API runs in-process (scratch
//! database, scratch Redis prefix, relay on), two `gateway` processes (the release binary
//! beside the load tool, authenticated sockets only) ask it for access; B boards, N
//! watchers (each a member of its board, with its own token) spread over both gateways and
//! round-robin over the boards. For each rate R (moves/s in all, spread over the boards)
//! moves are POSTed through the API for S seconds, open-loop (started on schedule, at most
//! 256 in flight). Per rate it reports moves committed/s, HTTP status counts and how fast
//! refusals (429, 503) came, the latency from request sent → each watcher's receipt
//! (HdrHistogram over all deliveries), from the commit (the event's `ts`) and from the
//! HTTP response → receipt, the same hop by hop from the servers' own histograms
//! (`hops.rs`), lost (a gap in a watcher's seqs, or not received 10 s after
//! the phase's last response), duplicated and out-of-order deliveries by seq (must be 0),
//! the gateways' CPU and RSS, this process's CPU (it hosts the API and the watchers),
//! Postgres's and Redis's, and the host's foreign CPU; appends one JSON line per rate to
//! the results file.
//!
//! The API, gateway-process and authenticated-socket helpers here are shared with
//! `seed.rs` and `board_read.rs`.

use crate::presence::{Frame, Sink, Stream};
use crate::procs::ServerProcess;
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use secrecy::SecretString;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio_tungstenite::tungstenite::Message;

pub struct Options {
    pub watchers: usize,
    pub boards: usize,
    /// Moves per second in all, one phase each.
    pub rates: Vec<f64>,
    pub seconds: u64,
    pub results: std::path::PathBuf,
    /// Where the run's latency plot (SVG) goes.
    pub plots: std::path::PathBuf,
}

/// The HS256 secret the in-process API, the gateways and the load tool's tokens share.
pub const SECRET: &str = "loadtest-secret-that-is-long-enough-0123456789";
/// Tickets on each board of `e2e` and `seed`.
const TICKETS_PER_BOARD: usize = 20;
/// Move requests in flight at most; a move due while all are taken is not sent (counted).
const IN_FLIGHT: usize = 256;
/// How long deliveries may trail the phase's last response before they count as lost.
const SETTLE: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------
// Shared helpers: the API in-process, gateway processes, authenticated sockets.

pub fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// A scratch database with the API's migrations applied (dropped when it is dropped).
pub async fn scratch_database() -> kanban_test_support::TestDatabase {
    let migrations = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../services/ticket-api/migrations"
    ));
    kanban_test_support::TestDatabase::create(migrations, |url| async move {
        ticket_api::db::run_migrations(&url).await.map(drop)
    })
    .await
}

/// The API's settings for a scratch database `db_url` and Redis prefix `prefix`: a free
/// loopback port, no migrations at start, the shared secret; relay and cache as default
/// (both on).
pub fn api_settings(db_url: &str, redis_url: &str, prefix: &str) -> ticket_api::Settings {
    let mut settings = ticket_api::Settings::default();
    settings.http.port = 0;
    settings.database.url = SecretString::from(db_url.to_owned());
    settings.database.migrate_on_start = false;
    settings.redis.url = SecretString::from(redis_url.to_owned());
    settings.redis.key_prefix = prefix.to_owned();
    settings.auth.jwt_secret = SecretString::from(SECRET.to_owned());
    settings
}

/// Starts an API instance in this process; returns its base URL.
pub async fn start_api(settings: ticket_api::Settings) -> String {
    let app = ticket_api::Application::build(settings)
        .await
        .expect("start the ticket API");
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    base
}

/// Signs tokens with [`SECRET`] (the API's default audience).
pub fn verifier() -> kanban_auth::TokenVerifier {
    let mut settings = ticket_api::Settings::default();
    settings.auth.jwt_secret = SecretString::from(SECRET.to_owned());
    kanban_auth::TokenVerifier::from_settings(&settings.auth).expect("token verifier")
}

/// A token for `user`, valid for two hours.
pub fn token(verifier: &kanban_auth::TokenVerifier, user: &str) -> String {
    verifier
        .issue(user, Some(user), 7200)
        .expect("issue a token")
}

/// An HTTP client for the in-process API, plain HTTP/1.1 keep-alive.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("HTTP client")
}

/// Creates a board owned by `token`'s user with `tickets` tickets in TODO; returns its id
/// and the tickets' ids.
pub async fn create_board(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    name: &str,
    tickets: usize,
) -> (String, Vec<String>) {
    let project: Value = http
        .post(format!("{base}/api/projects"))
        .bearer_auth(token)
        .json(&json!({ "name": name }))
        .send()
        .await
        .expect("create a project")
        .json()
        .await
        .expect("project body");
    let project = project["id"].as_str().expect("project id").to_owned();
    let ids: Vec<String> = futures_util::stream::iter(0..tickets)
        .map(|i| {
            let (http, project) = (http.clone(), project.clone());
            let url = format!("{base}/api/projects/{project}/tickets");
            let token = token.to_owned();
            async move {
                let response = http
                    .post(url)
                    .bearer_auth(token)
                    .json(&json!({ "title": format!("t{i}"), "status": "TODO" }))
                    .send()
                    .await
                    .expect("create a ticket");
                assert!(
                    response.status().is_success(),
                    "create a ticket: {}",
                    response.status()
                );
                let ticket: Value = response.json().await.expect("ticket body");
                ticket["id"].as_str().expect("ticket id").to_owned()
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    (project, ids)
}

/// Adds each `(project, user)` of `members` as a member (8 requests at a time).
pub async fn add_members(
    http: &reqwest::Client,
    base: &str,
    owner: &str,
    members: Vec<(String, String)>,
) {
    futures_util::stream::iter(members)
        .map(|(project, user)| {
            let http = http.clone();
            let url = format!("{base}/api/projects/{project}/members");
            let owner = owner.to_owned();
            async move {
                let response = http
                    .post(url)
                    .bearer_auth(owner)
                    .json(&json!({ "userId": user, "role": "member" }))
                    .send()
                    .await
                    .expect("add a member");
                assert!(
                    response.status().is_success(),
                    "add member {user}: {}",
                    response.status()
                );
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<()>>()
        .await;
}

/// The board's latest seq (`GET /api/projects/{id}/me`).
pub async fn board_seq(http: &reqwest::Client, base: &str, token: &str, project: &str) -> i64 {
    let access: Value = http
        .get(format!("{base}/api/projects/{project}/me"))
        .bearer_auth(token)
        .send()
        .await
        .expect("GET /me")
        .json()
        .await
        .expect("/me body");
    access["seq"].as_i64().expect("seq")
}

/// Opens a WebSocket to the gateway at `address`, CONNECTs with `token` and joins
/// `project`; returns the socket and the join ack's seq. Pings are answered meanwhile.
pub async fn connect_authenticated(
    address: &str,
    token: &str,
    project: &str,
) -> Result<(Sink, Stream, i64), String> {
    let url = format!("ws://{address}/socket.io/?EIO=4&transport=websocket");
    let (ws, _) = crate::ws::connect(&url)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (mut sink, mut stream) = ws.split();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut connected = false;
    let send = |text: String| Message::Text(text.into());
    loop {
        let next = tokio::time::timeout_at(deadline, stream.next())
            .await
            .map_err(|_| "no join ack in 60 s".to_owned())?;
        let Some(Ok(message)) = next else {
            return Err("closed before the join ack".into());
        };
        let text = match crate::presence::frame(&mut sink, message).await {
            Frame::Text(text) => text,
            Frame::Skip => continue,
            Frame::Closed => return Err("closed before the join ack".into()),
        };
        let text = text.as_str();
        if text.starts_with('0') && !connected {
            // Engine.IO open: CONNECT to `/` with the token.
            sink.send(send(format!("40{}", json!({ "token": token }))))
                .await
                .map_err(|e| e.to_string())?;
        } else if text.starts_with("40") && !connected {
            connected = true;
            sink.send(send(format!(
                "420{}",
                json!(["project:join", { "projectId": project }])
            )))
            .await
            .map_err(|e| e.to_string())?;
        } else if text.starts_with("44") {
            return Err(format!("connect refused: {text}"));
        } else if let Some(ack) = text.strip_prefix("430") {
            let ack: Value = serde_json::from_str(ack).map_err(|e| e.to_string())?;
            if ack[0]["ok"] != json!(true) {
                return Err(format!("join refused: {ack}"));
            }
            let seq = ack[0]["seq"].as_i64().ok_or("no seq in the join ack")?;
            return Ok((sink, stream, seq));
        }
    }
}

/// The event names that carry a board seq in their meta.
const BOARD_EVENTS: [&str; 9] = [
    "ticket:created",
    "ticket:updated",
    "ticket:moved",
    "ticket:deleted",
    "project:updated",
    "project:deleted",
    "member:added",
    "member:removed",
    "column:rebalanced",
];

/// A received frame as a watcher sees it.
enum Received<'a> {
    /// A board event: its name, seq, mutation id and commit time (`ts`, ms since epoch).
    Event(&'a str, i64, Option<&'a str>, Option<i64>),
    Resync,
    Other,
}

/// Reads `42["<name>", data, {projectId, seq, ts, mutationId?}]` without parsing the whole
/// frame: the meta is the last argument, so its fields are the last of their names.
fn received(text: &str) -> Received<'_> {
    let Some(rest) = text.strip_prefix("42[\"") else {
        return Received::Other;
    };
    let Some(name) = rest.split('"').next() else {
        return Received::Other;
    };
    if name == "project:resync" {
        return Received::Resync;
    }
    if !BOARD_EVENTS.contains(&name) {
        return Received::Other;
    }
    let Some(seq) = last_number(text, "\"seq\":") else {
        return Received::Other;
    };
    let committed_ms = last_number(text, "\"ts\":");
    let mutation = text.rfind("\"mutationId\":\"").and_then(|at| {
        let id = &text[at + 14..];
        id.find('"').map(|end| &id[..end])
    });
    Received::Event(name, seq, mutation, committed_ms)
}

/// The number after the last `field` (`"name":`) in `text`.
fn last_number(text: &str, field: &str) -> Option<i64> {
    let digits = &text[text.rfind(field)? + field.len()..];
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    digits[..end].parse().ok()
}

/// One `ticket:moved` a watcher received of the scenario's moves.
pub struct Receipt {
    pub phase: u32,
    /// The move's index in the phase's schedule.
    pub index: u32,
    /// When it arrived, µs since the epoch.
    pub at: i64,
    /// When its transaction committed (the event's `ts`: ms since the epoch, taken just
    /// before the commit, so a latency from it errs long by up to 1 ms).
    pub committed_ms: Option<i64>,
}

/// What one watching socket saw, shared with the scenario while it runs.
pub struct Watcher {
    pub board: usize,
    /// The last seq received in order (the join ack's seq at first).
    pub cursor: AtomicI64,
    /// `ticket:moved` receipts of the scenario's moves.
    pub receipts: Mutex<Vec<Receipt>>,
    pub lost: AtomicU64,
    pub duplicated: AtomicU64,
    pub out_of_order: AtomicU64,
    pub resyncs: AtomicU64,
    pub closed: AtomicBool,
}

impl Watcher {
    pub fn new(board: usize) -> Arc<Watcher> {
        Arc::new(Watcher {
            board,
            cursor: AtomicI64::new(0),
            receipts: Mutex::new(Vec::new()),
            lost: AtomicU64::new(0),
            duplicated: AtomicU64::new(0),
            out_of_order: AtomicU64::new(0),
            resyncs: AtomicU64::new(0),
            closed: AtomicBool::new(false),
        })
    }
}

/// The mutation id of move `index` of `phase`: `<tag>-<phase>-<index>`.
pub fn mutation_id(tag: &str, phase: usize, index: usize) -> String {
    format!("{tag}-{phase}-{index}")
}

fn parse_mutation(tag: &str, id: &str) -> Option<(u32, u32)> {
    let rest = id.strip_prefix(tag)?.strip_prefix('-')?;
    let (phase, index) = rest.split_once('-')?;
    Some((phase.parse().ok()?, index.parse().ok()?))
}

/// A socket that joins `project` on the gateway at `address` as `token`'s user (at most
/// `gate`'s permits setting up at once), then records what it receives into `watcher`
/// until the connection closes or the task is aborted. Counts itself in `joined` once the
/// join is acknowledged.
/// Waits until `count` watchers have joined; fails when one of their `tasks` ended first
/// or `limit` passes.
pub async fn wait_joined<T>(
    joined: &AtomicUsize,
    count: usize,
    tasks: &[tokio::task::JoinHandle<T>],
    limit: Duration,
) {
    let started = Instant::now();
    let bar = crate::progress::count(count as u64, "joined");
    while joined.load(Ordering::SeqCst) < count {
        bar.set_position(joined.load(Ordering::SeqCst) as u64);
        assert!(
            started.elapsed() < limit,
            "only {} of {count} watchers joined in {} s",
            joined.load(Ordering::SeqCst),
            limit.as_secs()
        );
        assert!(
            !tasks.iter().any(|t| t.is_finished()),
            "a watcher failed to join (see above)"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bar.finish_and_clear();
}

pub async fn watch(
    address: String,
    token: String,
    project: String,
    tag: &'static str,
    watcher: Arc<Watcher>,
    joined: Arc<AtomicUsize>,
    gate: Arc<tokio::sync::Semaphore>,
) {
    let permit = gate.acquire_owned().await.expect("semaphore");
    let (mut sink, mut stream, seq) = connect_authenticated(&address, &token, &project)
        .await
        .unwrap_or_else(|e| panic!("watcher on {address}: {e}"));
    watcher.cursor.store(seq, Ordering::SeqCst);
    drop(permit);
    joined.fetch_add(1, Ordering::SeqCst);
    while let Some(message) = stream.next().await {
        let at = now_us();
        let Ok(message) = message else {
            break;
        };
        let text = match crate::presence::frame(&mut sink, message).await {
            Frame::Text(text) => text,
            Frame::Skip => continue,
            Frame::Closed => break,
        };
        match received(text.as_str()) {
            Received::Event(name, seq, mutation, committed_ms) => {
                let cursor = watcher.cursor.load(Ordering::SeqCst);
                if seq <= cursor {
                    watcher.duplicated.fetch_add(1, Ordering::SeqCst);
                    continue;
                }
                if seq != cursor + 1 {
                    watcher.out_of_order.fetch_add(1, Ordering::SeqCst);
                    watcher
                        .lost
                        .fetch_add((seq - cursor - 1) as u64, Ordering::SeqCst);
                }
                if name == "ticket:moved" {
                    if let Some((phase, index)) = mutation.and_then(|m| parse_mutation(tag, m)) {
                        watcher.receipts.lock().expect("receipts").push(Receipt {
                            phase,
                            index,
                            at,
                            committed_ms,
                        });
                    }
                }
                watcher.cursor.store(seq, Ordering::SeqCst);
            }
            Received::Resync => {
                watcher.resyncs.fetch_add(1, Ordering::SeqCst);
            }
            Received::Other => {}
        }
    }
    watcher.closed.store(true, Ordering::SeqCst);
}

/// Waits (at most `limit`) until every watcher has received its board's events up to
/// `finals[board]`; returns the events still missing then, over all watchers.
pub async fn settle(watchers: &[Arc<Watcher>], finals: &[i64], limit: Duration) -> u64 {
    let deadline = Instant::now() + limit;
    loop {
        let missing: u64 = watchers
            .iter()
            .map(|w| (finals[w.board] - w.cursor.load(Ordering::SeqCst)).max(0) as u64)
            .sum();
        if missing == 0 || Instant::now() >= deadline {
            return missing;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// CPU ticks of every `postgres` process on the host (the server and all backends, also
/// other clients' ones), by pid.
pub fn postgres_ticks() -> HashMap<u32, u64> {
    let mut ticks = HashMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return ticks;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim() == "postgres" {
            ticks.insert(pid, crate::host::process_ticks(&pid.to_string()));
        }
    }
    ticks
}

/// CPU seconds the `postgres` processes used since `before` (processes that ended in
/// between are missed).
pub fn postgres_cpu_since(before: &HashMap<u32, u64>) -> f64 {
    let ticks: u64 = postgres_ticks()
        .iter()
        .map(|(pid, now)| now.saturating_sub(before.get(pid).copied().unwrap_or(0)))
        .sum();
    ticks as f64 / crate::host::TICKS_PER_SECOND
}

/// This process's CPU seconds so far (the in-process API and the load tool).
pub fn own_cpu() -> f64 {
    crate::procs::cpu_seconds(std::process::id())
}

/// p-quantile of sorted values (NaN when empty).
pub fn quantile(sorted: &[i64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index] as f64
}

pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("histogram")
}

/// p50/p90/p99/max of a µs histogram, in ms.
pub fn latency_ms(h: &Histogram<u64>) -> Value {
    let q = |p: f64| h.value_at_quantile(p) as f64 / 1000.0;
    json!({
        "count": h.len(),
        "p50": q(0.5), "p90": q(0.9), "p99": q(0.99), "max": h.max() as f64 / 1000.0,
    })
}

// ---------------------------------------------------------------------------------------
// The scenario.

/// One move request's fate.
struct Slot {
    board: AtomicUsize,
    sent_us: AtomicI64,
    answered_us: AtomicI64,
    /// HTTP status; 0 while unanswered, 1 for a transport error.
    status: AtomicU16,
}

/// Two gateway processes, `gw1` and `gw2`, checking tokens signed with [`SECRET`] and
/// asking the API at `api` before each join, each for up to `max` sockets.
pub async fn gateways(api: &str, redis_url: &str, prefix: &str, max: usize) -> [ServerProcess; 2] {
    [
        ServerProcess::authenticated_gateway("gw1", api, SECRET, redis_url, prefix, max).await,
        ServerProcess::authenticated_gateway("gw2", api, SECRET, redis_url, prefix, max).await,
    ]
}

pub async fn run(options: Options, redis_url: String) {
    let Options {
        watchers: count,
        boards,
        ref rates,
        seconds,
        ref results,
        ref plots,
    } = options;
    assert!(
        boards >= 1 && count >= boards,
        "need at least one board and a watcher per board"
    );
    crate::host::raise_file_limit(count + IN_FLIGHT);
    let db = scratch_database().await;
    let prefix = kanban_test_support::redis_prefix();
    let mut settings = api_settings(&db.url, &redis_url, &prefix);
    // Two writers per board may hold a connection (limits.writers_per_board), plus reads.
    settings.database.pool_size = (2 * boards + 8).max(16);
    let api = start_api(settings).await;
    let verifier = verifier();
    let owner = token(&verifier, "e2e-owner");
    let http = http_client();

    let mut projects = Vec::with_capacity(boards);
    let mut tickets = Vec::with_capacity(boards);
    for b in 0..boards {
        let (project, ids) =
            create_board(&http, &api, &owner, &format!("e2e {b}"), TICKETS_PER_BOARD).await;
        projects.push(project);
        tickets.push(ids);
    }
    let users: Vec<String> = (0..count).map(|i| format!("watcher-{i}")).collect();
    add_members(
        &http,
        &api,
        &owner,
        users
            .iter()
            .enumerate()
            .map(|(i, user)| (projects[i % boards].clone(), user.clone()))
            .collect(),
    )
    .await;

    let gateways = gateways(&api, &redis_url, &prefix, count).await;
    let gateway_cpu = || gateways.iter().map(ServerProcess::cpu_seconds).sum::<f64>();
    let gateway_rss = || gateways.iter().map(ServerProcess::rss_kib).sum::<u64>();
    let rss_before = gateway_rss();

    let joined = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(tokio::sync::Semaphore::new(200));
    let mut watchers = Vec::with_capacity(count);
    let mut tasks = Vec::with_capacity(count);
    let ramp = Instant::now();
    for (i, user) in users.iter().enumerate() {
        let watcher = Watcher::new(i % boards);
        watchers.push(Arc::clone(&watcher));
        tasks.push(tokio::spawn(watch(
            gateways[i % 2].address.clone(),
            token(&verifier, user),
            projects[i % boards].clone(),
            "e2e",
            watcher,
            Arc::clone(&joined),
            Arc::clone(&gate),
        )));
    }
    wait_joined(&joined, count, &tasks, Duration::from_secs(180)).await;
    let ramp = ramp.elapsed();
    let rss_idle = gateway_rss();
    let per_board: Vec<usize> = (0..boards)
        .map(|b| watchers.iter().filter(|w| w.board == b).count())
        .collect();
    println!(
        "e2e: API in-process, 2 gateway processes, {boards} boards × {TICKETS_PER_BOARD} tickets, \
         {count} authenticated watchers ({}–{} per board) joined in {:.1} s; gateway RSS \
         {rss_before} → {rss_idle} KiB",
        per_board.iter().min().copied().unwrap_or(0),
        per_board.iter().max().copied().unwrap_or(0),
        ramp.as_secs_f64()
    );

    let mut redis = redis::Client::open(redis_url.as_str())
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("connect to Redis");
    let mut file = crate::results::open(results);
    let tickets = Arc::new(tickets);
    let mut plotted = Vec::new();

    for (phase, &rate) in rates.iter().enumerate() {
        let anomalies = |w: &Watcher| {
            [
                w.lost.load(Ordering::SeqCst),
                w.duplicated.load(Ordering::SeqCst),
                w.out_of_order.load(Ordering::SeqCst),
                w.resyncs.load(Ordering::SeqCst),
            ]
        };
        let before: [u64; 4] = watchers.iter().map(|w| anomalies(w)).fold([0; 4], add4);
        let slow_before = gateway_slow(&gateways).await;
        let host = crate::host::Sample::now();
        let (gw_cpu_before, own_before, redis_before) = (
            gateway_cpu(),
            own_cpu(),
            crate::host::redis_cpu(&mut redis).await,
        );
        let pg_before = postgres_ticks();
        let hops_before = crate::hops::Hops::read(&http, &api, &gateways).await;

        let total = (rate * seconds as f64).round().max(1.0) as usize;
        let slots: Arc<Vec<Slot>> = Arc::new(
            (0..total)
                .map(|_| Slot {
                    board: AtomicUsize::new(0),
                    sent_us: AtomicI64::new(0),
                    answered_us: AtomicI64::new(0),
                    status: AtomicU16::new(0),
                })
                .collect(),
        );
        let in_flight = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
        let mut not_sent = 0u64;
        let started = Instant::now();
        let bar = crate::progress::phase(seconds, &format!("{rate} moves/s"));
        for index in 0..total {
            let due = started + Duration::from_secs_f64(index as f64 / rate);
            tokio::time::sleep_until(due.into()).await;
            crate::progress::tick(&bar, started.elapsed());
            let Ok(permit) = Arc::clone(&in_flight).try_acquire_owned() else {
                not_sent += 1;
                continue;
            };
            let board = index % boards;
            let (ticket, position) = {
                let mut rng = rand::rng();
                let ids = &tickets[board];
                (
                    ids[rand::Rng::random_range(&mut rng, 0..ids.len())].clone(),
                    rand::Rng::random_range(&mut rng, 0..ids.len()),
                )
            };
            let (http, api, owner, slots) =
                (http.clone(), api.clone(), owner.clone(), Arc::clone(&slots));
            tokio::spawn(async move {
                let slot = &slots[index];
                slot.board.store(board, Ordering::SeqCst);
                slot.sent_us.store(now_us(), Ordering::SeqCst);
                let response = http
                    .post(format!("{api}/api/tickets/{ticket}/move"))
                    .bearer_auth(owner)
                    .header("X-Mutation-Id", mutation_id("e2e", phase, index))
                    .json(&json!({ "toStatus": "TODO", "position": position }))
                    .send()
                    .await;
                slot.answered_us.store(now_us(), Ordering::SeqCst);
                let status = match response {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let _ = response.bytes().await;
                        status
                    }
                    Err(_) => 1,
                };
                slot.status.store(status, Ordering::SeqCst);
                drop(permit);
            });
        }
        bar.finish_and_clear();
        let all = u32::try_from(IN_FLIGHT).expect("in flight");
        let _all_back = tokio::time::timeout(Duration::from_secs(60), in_flight.acquire_many(all))
            .await
            .expect("moves still unanswered 60 s after the phase");
        let send_window = started.elapsed().as_secs_f64();
        let mut finals = Vec::with_capacity(boards);
        for project in &projects {
            finals.push(board_seq(&http, &api, &owner, project).await);
        }
        let tail_missing = settle(&watchers, &finals, SETTLE).await;
        let elapsed = started.elapsed().as_secs_f64().max(1e-9);
        let gw_cpu = gateway_cpu() - gw_cpu_before;
        let own = own_cpu() - own_before;
        let redis_cpu_s = crate::host::redis_cpu(&mut redis).await - redis_before;
        let pg_cpu = postgres_cpu_since(&pg_before);
        let host_line = host.report_with(&[
            ("gateways", gw_cpu),
            ("postgres", pg_cpu),
            ("redis", redis_cpu_s),
        ]);
        let slow = gateway_slow(&gateways).await - slow_before;
        let hops = crate::hops::Hops::read(&http, &api, &gateways)
            .await
            .since(&hops_before);
        let after: [u64; 4] = watchers.iter().map(|w| anomalies(w)).fold([0; 4], add4);
        let [lost, duplicated, out_of_order, resyncs] = [0, 1, 2, 3].map(|i| after[i] - before[i]);
        let lost = lost + tail_missing;
        let closed = watchers
            .iter()
            .filter(|w| w.closed.load(Ordering::SeqCst))
            .count();

        // HTTP outcomes.
        let mut statuses: HashMap<&str, u64> = HashMap::new();
        let mut shed: HashMap<u16, Vec<i64>> = HashMap::new();
        let mut ok_latency = histogram();
        let mut committed_per_board = vec![0u64; boards];
        for slot in slots.iter() {
            let status = slot.status.load(Ordering::SeqCst);
            if status == 0 {
                continue; // not sent
            }
            let took =
                slot.answered_us.load(Ordering::SeqCst) - slot.sent_us.load(Ordering::SeqCst);
            let class = match status {
                200..=299 => {
                    committed_per_board[slot.board.load(Ordering::SeqCst)] += 1;
                    let _ = ok_latency.record(took.max(1) as u64);
                    "2xx"
                }
                409 => "409",
                429 => "429",
                503 => "503",
                1 => "transport_error",
                _ => "other",
            };
            if status == 429 || status == 503 {
                shed.entry(status).or_default().push(took);
            }
            *statuses.entry(class).or_default() += 1;
        }
        let committed: u64 = committed_per_board.iter().sum();
        let shed_json: serde_json::Map<String, Value> = shed
            .iter_mut()
            .map(|(status, took)| {
                took.sort_unstable();
                (
                    status.to_string(),
                    json!({
                        "count": took.len(),
                        "p50_ms": quantile(took, 0.5) / 1000.0,
                        "p99_ms": quantile(took, 0.99) / 1000.0,
                    }),
                )
            })
            .collect();

        // Deliveries of this phase's moves.
        let mut to_delivery = histogram();
        let mut after_response: Vec<i64> = Vec::new();
        let mut last_delivery: HashMap<u32, i64> = HashMap::new();
        let mut from_commit = histogram();
        let mut last_from_commit: HashMap<u32, i64> = HashMap::new();
        let mut delivered = 0u64;
        for watcher in &watchers {
            let mut receipts = watcher.receipts.lock().expect("receipts");
            for receipt in receipts.iter().filter(|r| r.phase as usize == phase) {
                let (index, at) = (receipt.index, receipt.at);
                let Some(slot) = slots.get(index as usize) else {
                    continue;
                };
                delivered += 1;
                let sent = slot.sent_us.load(Ordering::SeqCst);
                let _ = to_delivery.record((at - sent).max(1) as u64);
                let entry = last_delivery.entry(index).or_insert(at);
                *entry = (*entry).max(at);
                if let Some(committed_ms) = receipt.committed_ms {
                    let since_commit = at - committed_ms * 1000;
                    let _ = from_commit.record(since_commit.max(1) as u64);
                    let entry = last_from_commit.entry(index).or_insert(since_commit);
                    *entry = (*entry).max(since_commit);
                }
                if (200..300).contains(&slot.status.load(Ordering::SeqCst)) {
                    after_response.push(at - slot.answered_us.load(Ordering::SeqCst));
                }
            }
            receipts.retain(|r| r.phase as usize != phase);
        }
        after_response.sort_unstable();
        let mut last = histogram();
        for (index, at) in &last_delivery {
            let sent = slots[*index as usize].sent_us.load(Ordering::SeqCst);
            let _ = last.record((at - sent).max(1) as u64);
        }
        let mut last_commit = histogram();
        for since_commit in last_from_commit.values() {
            let _ = last_commit.record((*since_commit).max(1) as u64);
        }
        let expected: u64 = committed_per_board
            .iter()
            .zip(&per_board)
            .map(|(c, w)| c * *w as u64)
            .sum();

        let q = |h: &Histogram<u64>, p: f64| h.value_at_quantile(p) as f64 / 1000.0;
        let rss = gateway_rss();
        println!(
            "  {rate:>6.0} moves/s offered: {committed} committed in {send_window:.1} s ({:.0}/s); \
             HTTP {statuses:?}, not sent ({IN_FLIGHT} in flight) {not_sent}",
            committed as f64 / send_window
        );
        // Each delivery's latency, then each move's latency to its board's last watcher.
        let spread = |each: &Histogram<u64>, last: &Histogram<u64>| {
            format!(
                "p50 {:.2} p90 {:.2} p99 {:.2} max {:.2}; to the last watcher p50 {:.2} p99 {:.2}",
                q(each, 0.5),
                q(each, 0.9),
                q(each, 0.99),
                each.max() as f64 / 1000.0,
                q(last, 0.5),
                q(last, 0.99),
            )
        };
        println!(
            "    request → delivery ms {} ({delivered} of {expected} deliveries); response → \
             delivery ms p50 {:.2} p99 {:.2}",
            spread(&to_delivery, &last),
            quantile(&after_response, 0.5) / 1000.0,
            quantile(&after_response, 0.99) / 1000.0,
        );
        println!(
            "    commit (the event's ts, whole ms) → delivery ms {}",
            spread(&from_commit, &last_commit),
        );
        println!(
            "    lost {lost}, duplicated {duplicated}, out of order {out_of_order}, resyncs \
             {resyncs}, slow-consumer closes {slow}, watchers closed {closed}; gateways {:.2} \
             cores, RSS {rss} KiB; this process {:.2} cores",
            gw_cpu / elapsed,
            own / elapsed
        );
        println!("    {}", hops.line());
        println!("    {host_line}");
        let line = json!({
            "scenario": "e2e",
            "watchers": count,
            "boards": boards,
            "offered_moves_per_s": rate,
            "seconds": seconds,
            "moves_scheduled": total,
            "moves_not_sent_in_flight_limit": not_sent,
            "moves_committed": committed,
            "moves_committed_per_s": committed as f64 / send_window,
            "http": statuses,
            "http_2xx_latency_ms": latency_ms(&ok_latency),
            "shed_answer_ms": shed_json,
            "request_to_delivery_ms": latency_ms(&to_delivery),
            "request_to_last_watcher_ms": latency_ms(&last),
            "commit_to_delivery_ms": latency_ms(&from_commit),
            "commit_to_last_watcher_ms": latency_ms(&last_commit),
            "hops": hops.json(),
            "response_to_delivery_ms": {
                "p50": quantile(&after_response, 0.5) / 1000.0,
                "p99": quantile(&after_response, 0.99) / 1000.0,
                "min": after_response.first().map(|v| *v as f64 / 1000.0),
                "max": after_response.last().map(|v| *v as f64 / 1000.0),
            },
            "deliveries": delivered,
            "deliveries_expected": expected,
            "lost": lost, "duplicated": duplicated, "out_of_order": out_of_order,
            "resyncs": resyncs, "slow_consumer_closes": slow, "watchers_closed": closed,
            "gateway_cpu_cores": gw_cpu / elapsed,
            "gateway_rss_kib": rss,
            "own_cpu_cores": own / elapsed,
            "postgres_cpu_cores": pg_cpu / elapsed,
            "redis_cpu_cores": redis_cpu_s / elapsed,
            "host": host_line,
        });
        writeln!(file, "{line}").expect("write results");
        plotted.push((format!("{rate} moves/s"), to_delivery));
    }
    println!("  results appended to {}", results.display());
    let series: Vec<(String, &Histogram<u64>)> = plotted
        .iter()
        .map(|(label, h)| (label.clone(), h))
        .collect();
    let title = format!("e2e: move request → every watcher, {count} watchers");
    match crate::plot::write(plots, "e2e", &title, &series) {
        Ok(path) => println!("  latency plot: {}", path.display()),
        Err(error) => eprintln!("  latency plot not written: {error}"),
    }
    for task in tasks {
        task.abort();
    }
    drop(gateways);
    drop(db);
}

fn add4(a: [u64; 4], b: [u64; 4]) -> [u64; 4] {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2], a[3] + b[3]]
}

/// Sockets both gateways closed as slow consumers so far.
pub async fn gateway_slow(gateways: &[ServerProcess]) -> f64 {
    let mut total = 0.0;
    for gateway in gateways {
        total += gateway
            .metric("kanban_gateway_slow_consumer_closes_total")
            .await;
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_board_event_frame() {
        let frame = r#"42["ticket:moved",{"ticketId":"x","ticket":{"version":3,"title":"t1","ts":5,"seq":2}},{"projectId":"p","seq":17,"ts":1768471542093,"mutationId":"e2e-2-40"}]"#;
        let Received::Event(name, seq, mutation, committed_ms) = received(frame) else {
            panic!("not an event")
        };
        assert_eq!(
            (name, seq, mutation, committed_ms),
            (
                "ticket:moved",
                17,
                Some("e2e-2-40"),
                Some(1_768_471_542_093)
            )
        );
        assert_eq!(parse_mutation("e2e", "e2e-2-40"), Some((2, 40)));
        assert!(matches!(
            received(r#"42["room:userJoined",{"projectId":"p","userCount":2}]"#),
            Received::Other
        ));
        assert!(matches!(
            received(r#"42["project:resync",{"projectId":"p","reason":"gap","seq":3}]"#),
            Received::Resync
        ));
    }
}
