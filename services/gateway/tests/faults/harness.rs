//! The fault tests' harness: a stack of real processes (one `ticket-api`, two gateways),
//! a fleet of Socket.IO clients that reconnect and resume by seq and account for every
//! event, and a writer that moves tickets at a steady rate.

use crate::client::{Client, Incoming, BOARD_EVENT_NAMES};
use kanban_auth::{AuthSettings, TokenVerifier};
use kanban_protocol::events::{names, EventEnvelope, EventMeta};
use kanban_protocol::socket::{Resync, ResyncReason};
use kanban_test_support::{ServiceProcess, TestDatabase};
use secrecy::SecretString;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub const SECRET: &str = "fault-test-secret-that-is-long-enough-0123456789";
/// Sockets on the board.
pub const CLIENTS: usize = 20;
/// The writer's rate.
pub const MOVES_PER_SECOND: u64 = 20;
/// Tickets the writer cycles through.
pub const TICKETS: usize = 10;
/// The longest any wait of these tests may take before it fails.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// The `ticket-api` binary, which sits next to the gateway's in the same target folder.
/// Cargo builds a package's own binaries for its integration tests only, so this one
/// exists when the whole workspace is tested (`cargo test --workspace` builds every
/// member's binaries before running any test); a targeted run builds it first. A binary
/// older than the API's sources would test old code, so that fails too.
pub fn api_binary() -> PathBuf {
    let binary = Path::new(env!("CARGO_BIN_EXE_gateway")).with_file_name("ticket-api");
    let built = std::fs::metadata(&binary)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| {
            panic!(
                "{} is missing: run `cargo build -p ticket-api --bin ticket-api` first \
                 (`cargo test --workspace` builds it)",
                binary.display()
            )
        });
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    for dir in [
        "services/ticket-api/src",
        "services/ticket-api/migrations",
        "shared/protocol/src",
        "shared/auth/src",
        "shared/config/src",
        "shared/redis/src",
        "shared/telemetry/src",
    ] {
        if let Some(newer) = newest_file(&workspace.join(dir)).filter(|(t, _)| *t > built) {
            panic!(
                "{} is older than {}: run `cargo build -p ticket-api --bin ticket-api`",
                binary.display(),
                newer.1.display()
            );
        }
    }
    binary
}

fn newest_file(dir: &Path) -> Option<(SystemTime, PathBuf)> {
    let mut newest: Option<(SystemTime, PathBuf)> = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        let candidate = if path.is_dir() {
            newest_file(&path)
        } else {
            entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .map(|t| (t, path))
        };
        if let Some(candidate) = candidate {
            if newest.as_ref().is_none_or(|(t, _)| candidate.0 > *t) {
                newest = Some(candidate);
            }
        }
    }
    newest
}

pub fn gateway_binary() -> &'static str {
    env!("CARGO_BIN_EXE_gateway")
}

fn auth() -> AuthSettings {
    AuthSettings {
        jwt_secret: SecretString::from(SECRET.to_owned()),
        ..AuthSettings::default()
    }
}

/// Where the stack's dependencies are.
pub struct Options {
    pub redis_url: String,
    /// A Redis Cluster's seed list: when set, every process runs in cluster mode.
    pub redis_cluster: Option<String>,
    /// A Postgres URL of the test's own server (migrated by the API at start), or `None`
    /// for a database cloned from the migrated template on the shared server.
    pub database_url: Option<String>,
    pub drain_window_ms: u64,
    /// Whether the stack's API process relays the outbox (else a test runs its own relay).
    pub relay: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            redis_url: std::env::var("KANBAN_TEST_REDIS_URL")
                .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned()),
            redis_cluster: None,
            database_url: None,
            drain_window_ms: 2000,
            relay: true,
        }
    }
}

/// What the processes are started with.
struct Config {
    prefix: String,
    redis_url: String,
    redis_cluster: Option<String>,
    database_url: String,
    migrate: bool,
    drain_window_ms: u64,
    relay: bool,
}

impl Config {
    fn redis_env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("KANBAN_REDIS__URL", self.redis_url.clone()),
            ("KANBAN_REDIS__KEY_PREFIX", self.prefix.clone()),
        ];
        if let Some(seeds) = &self.redis_cluster {
            env.push(("KANBAN_REDIS__CLUSTER_NODES", seeds.clone()));
        }
        env
    }

    /// The Redis settings the processes run with (for the test's own reads).
    fn redis_settings(&self) -> kanban_config::RedisSettings {
        kanban_config::RedisSettings {
            url: SecretString::from(self.redis_url.clone()),
            cluster_nodes: self
                .redis_cluster
                .iter()
                .flat_map(|seeds| seeds.split(','))
                .map(|seed| SecretString::from(seed.to_owned()))
                .collect(),
            key_prefix: self.prefix.clone(),
            ..kanban_config::RedisSettings::default()
        }
    }

    fn api_env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("KANBAN_DATABASE__URL", self.database_url.clone()),
            (
                "KANBAN_DATABASE__MIGRATE_ON_START",
                self.migrate.to_string(),
            ),
            ("KANBAN_DATABASE__POOL_SIZE", "4".into()),
            ("KANBAN_HTTP__WORKERS", "2".into()),
            ("KANBAN_AUTH__JWT_SECRET", SECRET.into()),
            ("KANBAN_RELAY__ENABLED", self.relay.to_string()),
            ("KANBAN_RELAY__LEADER_RETRY_MS", "100".into()),
            ("KANBAN_RELAY__SWEEP_INTERVAL_MS", "200".into()),
            ("KANBAN_RELAY__MAX_BACKOFF_MS", "500".into()),
        ];
        env.extend(self.redis_env());
        env
    }

    fn gateway_env(&self, index: usize, api_url: String) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("KANBAN_API__BASE_URL", api_url),
            ("KANBAN_AUTH__JWT_SECRET", SECRET.into()),
            ("KANBAN_GATEWAY__INSTANCE_ID", format!("gw{index}")),
            (
                "KANBAN_GATEWAY__DRAIN_WINDOW_MS",
                self.drain_window_ms.to_string(),
            ),
            ("KANBAN_HTTP__WORKERS", "1".into()),
        ];
        env.extend(self.redis_env());
        env
    }
}

/// The API and two gateways as real processes, with their own database and Redis prefix.
pub struct Stack {
    pub api: ServiceProcess,
    pub gateways: Vec<Option<ServiceProcess>>,
    gateway_ports: Vec<u16>,
    /// The gateways a load balancer would send new connections to (the ready ones).
    pub rotation: Rotation,
    config: Config,
    verifier: TokenVerifier,
    pub http: reqwest::Client,
    _db: Option<TestDatabase>,
}

pub type Rotation = Arc<Mutex<Vec<String>>>;

impl Stack {
    pub async fn start(options: Options) -> Stack {
        let (db, database_url, migrate) = match options.database_url {
            Some(url) => (None, url, true),
            None => {
                let db = TestDatabase::create(
                    Path::new(concat!(
                        env!("CARGO_MANIFEST_DIR"),
                        "/../ticket-api/migrations"
                    )),
                    |url| async move { ticket_api::db::run_migrations(&url).await.map(drop) },
                )
                .await;
                let url = db.url.clone();
                (Some(db), url, false)
            }
        };
        let config = Config {
            prefix: kanban_test_support::redis_prefix(),
            redis_url: options.redis_url,
            redis_cluster: options.redis_cluster,
            database_url,
            migrate,
            drain_window_ms: options.drain_window_ms,
            relay: options.relay,
        };
        let api = ServiceProcess::start(&api_binary().to_string_lossy(), &config.api_env()).await;
        let mut stack = Stack {
            api,
            gateways: vec![None, None],
            gateway_ports: vec![
                kanban_test_support::free_port(),
                kanban_test_support::free_port(),
            ],
            rotation: Arc::new(Mutex::new(Vec::new())),
            config,
            verifier: TokenVerifier::from_settings(&auth()).expect("verifier"),
            http: kanban_test_support::http(),
            _db: db,
        };
        for index in 0..2 {
            stack.start_gateway(index).await;
        }
        stack
    }

    pub fn drain_window(&self) -> Duration {
        Duration::from_millis(self.config.drain_window_ms)
    }

    /// A second API process that only relays (for a test that freezes the relay alone).
    pub async fn start_relay(&self) -> ServiceProcess {
        let mut env = self.config.api_env();
        env.retain(|(k, _)| *k != "KANBAN_RELAY__ENABLED");
        env.push(("KANBAN_RELAY__ENABLED", "true".into()));
        ServiceProcess::start(&api_binary().to_string_lossy(), &env).await
    }

    pub fn api_url(&self) -> String {
        self.api.url()
    }

    pub fn gateway_url(&self, index: usize) -> String {
        format!("http://127.0.0.1:{}", self.gateway_ports[index])
    }

    /// Starts gateway `index` on its port (again) and puts it into the rotation.
    pub async fn start_gateway(&mut self, index: usize) {
        let process = ServiceProcess::start_on(
            gateway_binary(),
            self.gateway_ports[index],
            &self.config.gateway_env(index, self.api_url()),
        )
        .await;
        self.gateways[index] = Some(process);
        self.rotation.lock().unwrap().push(self.gateway_url(index));
    }

    /// Takes gateway `index` out of the rotation, as a load balancer does when the
    /// replica's readiness goes red.
    pub fn out_of_rotation(&self, index: usize) {
        let url = self.gateway_url(index);
        self.rotation.lock().unwrap().retain(|u| *u != url);
    }

    pub fn gateway(&mut self, index: usize) -> &mut ServiceProcess {
        self.gateways[index].as_mut().expect("gateway is running")
    }

    /// SIGKILL to the API, then a new API process on the same port.
    pub async fn restart_api_after_kill(&mut self) -> Duration {
        self.api.kill();
        let started = Instant::now();
        let port = self.api.port;
        self.api = ServiceProcess::start_on(
            &api_binary().to_string_lossy(),
            port,
            &self.config.api_env(),
        )
        .await;
        started.elapsed()
    }

    pub fn token(&self, user: &str) -> String {
        self.verifier.issue(user, Some(user), 3600).expect("token")
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.api_url()))
            .bearer_auth(self.token("alice"));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("API request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// A board owned by alice with [`TICKETS`] tickets in `BACKLOG`; its id and ticket ids.
    pub async fn board(&self) -> (String, Vec<String>) {
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                "/api/projects",
                Some(json!({"name": "Faults"})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        let project = body["id"].as_str().unwrap().to_owned();
        let mut tickets = Vec::new();
        for i in 0..TICKETS {
            let (status, body) = self
                .call(
                    reqwest::Method::POST,
                    &format!("/api/projects/{project}/tickets"),
                    Some(json!({"title": format!("ticket {i}")})),
                )
                .await;
            assert_eq!(status, 201, "{body}");
            tickets.push(body["id"].as_str().unwrap().to_owned());
        }
        (project, tickets)
    }

    /// Every committed event of the board, from the API's durable log.
    pub async fn events(&self, project: &str) -> Vec<EventEnvelope> {
        let mut out: Vec<EventEnvelope> = Vec::new();
        loop {
            let since = out.last().map_or(0, |e| e.seq);
            let (status, body) = self
                .call(
                    reqwest::Method::GET,
                    &format!("/api/projects/{project}/events?since={since}&limit=1000"),
                    None,
                )
                .await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["truncated"], false);
            let page: Vec<EventEnvelope> = serde_json::from_value(body["events"].clone()).unwrap();
            if page.is_empty() {
                return out;
            }
            out.extend(page);
        }
    }

    /// The last committed seq of the board.
    pub async fn last_seq(&self, project: &str) -> i64 {
        self.events(project).await.last().map_or(0, |e| e.seq)
    }

    /// The board as the API has it: ticket id → (status, rank).
    pub async fn board_model(&self, project: &str) -> (i64, Model) {
        let (status, body) = self
            .call(
                reqwest::Method::GET,
                &format!("/api/projects/{project}"),
                None,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        (body["seq"].as_i64().unwrap(), model_of_snapshot(&body))
    }

    /// Appends to the board's Redis history a copy of its newest event under the next
    /// seq, without publishing it: what a gateway whose subscription was lost without
    /// notice sees (the history goes on, nothing arrives live). Returns the new seq.
    pub async fn append_unpublished(&self, project: &str) -> i64 {
        let key = kanban_protocol::redis_keys::history(&self.config.prefix, project);
        let mut conn = kanban_redis::connect(
            &self.config.redis_settings(),
            kanban_redis::Reconnect::default(),
        )
        .expect("a Redis connection");
        let (_, fields) = newest_entry(&mut conn, &key)
            .await
            .expect("XREVRANGE of the board's history")
            .expect("the board's history holds an event");
        let (_, raw) = fields
            .iter()
            .find(|(field, _)| field == "e")
            .expect("an envelope field");
        let mut envelope: EventEnvelope = serde_json::from_str(raw).expect("an envelope");
        envelope.seq += 1;
        let _: String = redis::cmd("XADD")
            .arg(&key)
            .arg(format!("{}-0", envelope.seq))
            .arg("e")
            .arg(serde_json::to_string(&envelope).expect("an envelope serialises"))
            .query_async(&mut conn)
            .await
            .expect("XADD to the board's history");
        envelope.seq
    }

    /// Waits until the relay has written the board's Redis history up to `seq`.
    pub async fn history_reaches(&self, project: &str, seq: i64) {
        let key = kanban_protocol::redis_keys::history(&self.config.prefix, project);
        let settings = self.config.redis_settings();
        wait_until(&format!("history of the board reaches {seq}"), || async {
            let Ok(mut conn) = kanban_redis::connect(&settings, kanban_redis::Reconnect::default())
            else {
                return false;
            };
            newest_entry(&mut conn, &key)
                .await
                .ok()
                .flatten()
                .as_ref()
                .and_then(|(id, _)| id.split('-').next()?.parse::<i64>().ok())
                .is_some_and(|newest| newest >= seq)
        })
        .await;
    }
}

/// The newest entry (id and fields) of the history stream at `key`, if it has one.
async fn newest_entry(
    conn: &mut kanban_redis::Connection,
    key: &str,
) -> redis::RedisResult<Option<(String, Vec<(String, String)>)>> {
    let newest: Vec<(String, Vec<(String, String)>)> = redis::cmd("XREVRANGE")
        .arg(key)
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query_async(conn)
        .await?;
    Ok(newest.into_iter().next())
}

/// Polls `condition` until it holds; fails the test after [`DEADLINE`].
pub async fn wait_until<F, Fut>(what: &str, condition: F) -> Duration
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if condition().await {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < DEADLINE,
            "{what}: not within {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A board as ticket id → (status, rank).
pub type Model = BTreeMap<String, (String, String)>;

fn model_of_snapshot(snapshot: &Value) -> Model {
    snapshot["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .map(ticket_entry)
        .collect()
}

fn ticket_entry(ticket: &Value) -> (String, (String, String)) {
    (
        ticket["id"].as_str().unwrap().to_owned(),
        (
            ticket["status"].as_str().unwrap().to_owned(),
            ticket["rank"].as_str().unwrap().to_owned(),
        ),
    )
}

/// Applies one board event to a client's model of the board.
fn apply(model: &mut Model, name: &str, data: &Value) {
    match name {
        names::TICKET_CREATED | names::TICKET_UPDATED => {
            let (id, entry) = ticket_entry(data);
            model.insert(id, entry);
        }
        names::TICKET_MOVED => {
            let (id, entry) = ticket_entry(&data["ticket"]);
            model.insert(id, entry);
        }
        names::TICKET_DELETED => {
            model.remove(data.as_str().unwrap());
        }
        names::COLUMN_REBALANCED => {
            for rank in data["ranks"].as_array().unwrap() {
                if let Some(entry) = model.get_mut(rank["ticketId"].as_str().unwrap()) {
                    entry.1 = rank["rank"].as_str().unwrap().to_owned();
                }
            }
        }
        _ => {}
    }
}

/// One socket close as a client saw it.
#[derive(Debug, Clone)]
pub struct Close {
    pub at: Instant,
    pub gateway: String,
    pub code: Option<u16>,
    pub reason: String,
}

/// One successful `project:join` (the first, or a resume after a reconnect).
#[derive(Debug, Clone)]
pub struct Join {
    pub at: Instant,
    pub gateway: String,
    pub since_seq: i64,
    pub ack_seq: i64,
}

/// Everything one client saw, for the test's accounting.
#[derive(Debug, Default)]
pub struct ClientLog {
    pub index: usize,
    /// Seqs of the board events in arrival order, across reconnects.
    pub received: Vec<i64>,
    /// Board events as received: seq, name, data.
    pub events: Vec<(i64, String, Value)>,
    /// Events at or below the seq the gateway had already sent on this connection (or
    /// the resume point): the gateway must never send one.
    pub duplicates: usize,
    /// Ranges of seqs the gateway skipped without a resync.
    pub gaps: Vec<(i64, i64)>,
    pub resyncs: Vec<Resync>,
    /// `error` events, refused joins, refused CONNECTs.
    pub errors: Vec<String>,
    /// Handshakes that did not reach a gateway (a dead or draining one).
    pub connect_failures: usize,
    pub closes: Vec<Close>,
    pub joins: Vec<Join>,
    pub applied: i64,
    pub model: Model,
}

impl ClientLog {
    /// Asserts the client ends with every seq up to `last` exactly once, in order, and
    /// with the API's board; resyncs are allowed only for the `allowed` reasons.
    pub fn assert_complete(&self, last: i64, board: &Model, allowed: &[ResyncReason]) {
        let who = format!("client {}", self.index);
        assert_eq!(self.duplicates, 0, "{who}: duplicates: {:?}", self.received);
        assert!(self.gaps.is_empty(), "{who}: gaps {:?}", self.gaps);
        assert!(
            self.received.windows(2).all(|w| w[0] < w[1]),
            "{who}: out of order: {:?}",
            self.received
        );
        assert_eq!(self.applied, last, "{who}: did not reach the last seq");
        if self.resyncs.is_empty() {
            let want: Vec<i64> = (1..=last).collect();
            assert_eq!(self.received, want, "{who}: not every seq once");
        } else {
            assert!(
                self.resyncs.iter().all(|r| allowed.contains(&r.reason)),
                "{who}: unexpected resync {:?}",
                self.resyncs
            );
        }
        assert_eq!(
            &self.model, board,
            "{who}: its board differs from the API's"
        );
    }

    /// Seqs missing from what this client received (a resync covered them).
    pub fn missing(&self, last: i64) -> usize {
        let got: std::collections::BTreeSet<i64> = self.received.iter().copied().collect();
        (1..=last).filter(|s| !got.contains(s)).count()
    }
}

/// The clients on one board: each connects to a gateway of the rotation, joins with
/// `sinceSeq` = the last seq it applied, and on any close reconnects to a gateway of the
/// rotation and resumes.
pub struct Fleet {
    clients: Vec<(JoinHandle<ClientLog>, Arc<AtomicI64>)>,
    target: watch::Sender<Option<i64>>,
}

impl Fleet {
    /// Starts [`CLIENTS`] clients (spread over the rotation) and waits until each has
    /// joined and applied every event up to the board's current last seq.
    pub async fn start(stack: &Stack, project: &str) -> Fleet {
        // A join reads the board's history up to the API's latest seq; one that arrives
        // before the relay has published the setup's events is answered with a resync
        // (see docs/reliability.md). The faults are what is tested, not that race.
        let last = stack.last_seq(project).await;
        stack.history_reaches(project, last).await;
        let (target, target_rx) = watch::channel(None);
        let mut clients = Vec::new();
        for index in 0..CLIENTS {
            let progress = Arc::new(AtomicI64::new(-1));
            let session = Session {
                index,
                rotation: stack.rotation.clone(),
                project: project.to_owned(),
                token: stack.token("alice"),
                api: stack.api_url(),
                http: stack.http.clone(),
                progress: progress.clone(),
                target: target_rx.clone(),
            };
            clients.push((tokio::spawn(session.run()), progress));
        }
        let fleet = Fleet { clients, target };
        fleet.wait_all_reach(last).await;
        fleet
    }

    /// Waits until every client has applied `seq`; returns how long that took.
    pub async fn wait_all_reach(&self, seq: i64) -> Duration {
        wait_until(&format!("every client reaches seq {seq}"), || async {
            self.all_reached(seq)
        })
        .await
    }

    /// Every client has applied `seq`.
    pub fn all_reached(&self, seq: i64) -> bool {
        self.clients
            .iter()
            .all(|(_, p)| p.load(Ordering::SeqCst) >= seq)
    }

    /// Tells the clients the last seq there will be, waits for each to reach it (and to
    /// stay quiet a little longer, to catch anything extra), and returns their logs.
    pub async fn finish(self, last: i64) -> Vec<ClientLog> {
        self.target.send_replace(Some(last));
        let mut logs = Vec::new();
        for (handle, _) in self.clients {
            let log = tokio::time::timeout(DEADLINE, handle)
                .await
                .expect("a client did not finish in time")
                .expect("a client task failed");
            logs.push(log);
        }
        logs
    }
}

struct Session {
    index: usize,
    rotation: Rotation,
    project: String,
    token: String,
    api: String,
    http: reqwest::Client,
    progress: Arc<AtomicI64>,
    target: watch::Receiver<Option<i64>>,
}

impl Session {
    async fn run(self) -> ClientLog {
        let mut log = ClientLog {
            index: self.index,
            ..ClientLog::default()
        };
        self.progress.store(0, Ordering::SeqCst);
        let started = Instant::now();
        let mut attempt = self.index;
        loop {
            let gateway = {
                let rotation = self.rotation.lock().unwrap();
                assert!(!rotation.is_empty(), "no gateway in the rotation");
                rotation[attempt % rotation.len()].clone()
            };
            attempt += 1;
            let Some(mut client) = self.connect(&gateway, &mut log).await else {
                assert!(
                    started.elapsed() < DEADLINE,
                    "client {}: cannot reconnect",
                    self.index
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            if self.session(&mut client, &gateway, &mut log).await {
                client.close();
                return log;
            }
        }
    }

    /// A CONNECT on `gateway`; a handshake that fails (dead replica) is counted, a
    /// refused CONNECT is an error.
    async fn connect(&self, gateway: &str, log: &mut ClientLog) -> Option<Client> {
        let (url, token) = (gateway.to_owned(), self.token.clone());
        // The test client panics when the handshake fails; here that is an outcome.
        let connecting = tokio::spawn(async move { Client::connect(&url, Some(&token)).await });
        match tokio::time::timeout(Duration::from_secs(5), connecting).await {
            Ok(Ok((client, reply))) if reply.starts_with("40{\"sid\":") => Some(client),
            Ok(Ok((_, reply))) => {
                log.errors
                    .push(format!("CONNECT refused by {gateway}: {reply}"));
                None
            }
            _ => {
                log.connect_failures += 1;
                None
            }
        }
    }

    /// One connection: join with `sinceSeq`, then account for everything until the
    /// socket closes (`false`: reconnect) or the target is reached (`true`).
    async fn session(&self, client: &mut Client, gateway: &str, log: &mut ClientLog) -> bool {
        const JOIN_ACK: u64 = 7;
        let since = log.applied;
        let join = json!({"projectId": self.project, "sinceSeq": since});
        client.send_raw(&format!("42{JOIN_ACK}{}", json!(["project:join", join])));
        // The last seq the gateway has sent on this connection: the resume point first.
        let mut cursor = since;
        let mut quiet_since: Option<Instant> = None;
        loop {
            let target = *self.target.borrow();
            if target.is_some_and(|t| log.applied >= t) {
                let quiet = quiet_since.get_or_insert_with(Instant::now);
                if quiet.elapsed() > Duration::from_millis(300) {
                    return true;
                }
            }
            let Ok(item) = tokio::time::timeout(Duration::from_millis(50), client.next()).await
            else {
                continue;
            };
            match item {
                Incoming::Event(name, args) if BOARD_EVENT_NAMES.contains(&name.as_str()) => {
                    let data = args.first().cloned().unwrap_or(Value::Null);
                    let meta: EventMeta =
                        serde_json::from_value(args.get(1).cloned().unwrap_or(Value::Null))
                            .unwrap_or_else(|e| {
                                panic!("{name} without a valid meta ({e}): {args:?}")
                            });
                    let seq = meta.seq;
                    log.received.push(seq);
                    log.events.push((seq, name.clone(), data.clone()));
                    if seq <= cursor {
                        log.duplicates += 1;
                        continue;
                    }
                    if seq > cursor + 1 {
                        log.gaps.push((cursor + 1, seq - 1));
                    }
                    cursor = seq;
                    if seq > log.applied {
                        apply(&mut log.model, &name, &data);
                        log.applied = seq;
                        self.progress.store(seq, Ordering::SeqCst);
                    }
                }
                Incoming::Event(name, args) if name == names::PROJECT_RESYNC => {
                    let resync: Resync =
                        serde_json::from_value(args.first().cloned().unwrap_or(Value::Null))
                            .expect("a resync payload");
                    let at_least = resync.seq.max(log.applied);
                    let (seq, model) = self.snapshot(at_least).await;
                    log.model = model;
                    log.applied = seq;
                    cursor = cursor.max(resync.seq);
                    self.progress.store(seq, Ordering::SeqCst);
                    log.resyncs.push(resync);
                }
                Incoming::Event(name, args) if name == "error" => {
                    log.errors
                        .push(format!("error event from {gateway}: {args:?}"));
                }
                Incoming::Event(..) | Incoming::Other(_) => {}
                Incoming::Ack(id, args) if id == JOIN_ACK => {
                    let ack = args.first().cloned().unwrap_or(Value::Null);
                    if ack["ok"] == true {
                        log.joins.push(Join {
                            at: Instant::now(),
                            gateway: gateway.to_owned(),
                            since_seq: since,
                            ack_seq: ack["seq"].as_i64().unwrap_or(-1),
                        });
                    } else {
                        log.errors.push(format!("join refused by {gateway}: {ack}"));
                        return false;
                    }
                }
                Incoming::Ack(..) => {}
                Incoming::Closed(code, reason) => {
                    log.closes.push(Close {
                        at: Instant::now(),
                        gateway: gateway.to_owned(),
                        code,
                        reason,
                    });
                    return false;
                }
            }
        }
    }

    /// The board from the API, at `at_least` or later (the API may be restarting).
    async fn snapshot(&self, at_least: i64) -> (i64, Model) {
        let started = Instant::now();
        loop {
            let response = self
                .http
                .get(format!("{}/api/projects/{}", self.api, self.project))
                .bearer_auth(&self.token)
                .send()
                .await;
            if let Ok(response) = response {
                if response.status().is_success() {
                    let body: Value = response.json().await.expect("snapshot JSON");
                    let seq = body["seq"].as_i64().unwrap();
                    if seq >= at_least {
                        return (seq, model_of_snapshot(&body));
                    }
                }
            }
            assert!(started.elapsed() < DEADLINE, "no snapshot at {at_least}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// One write the writer sent and what came back.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub sent: Instant,
    pub answered: Instant,
    /// The ticket moved, or the title of the ticket created.
    pub subject: String,
    /// `None`: no HTTP answer (connection refused or cut).
    pub status: Option<u16>,
    pub retry_after: Option<String>,
    pub body: Value,
}

/// What the writer does at each tick.
#[derive(Clone)]
pub enum Write {
    /// Moves the board's tickets in turn between `BACKLOG` and `TODO`, to the top.
    Moves(Vec<String>),
    /// Creates a ticket with a fresh title.
    Creates(String),
}

/// Writes at [`MOVES_PER_SECOND`] through the API, with up to 8 requests in flight (so a
/// fault lands on requests in flight), until stopped.
pub struct Writer {
    stop: watch::Sender<bool>,
    handle: JoinHandle<Vec<Outcome>>,
    /// Successful writes so far (for waits; the outcomes are returned by `stop`).
    pub ok: Arc<AtomicUsize>,
    /// Writes answered with an error or not at all, so far.
    pub failed: Arc<AtomicUsize>,
    /// Writes sent and not answered yet.
    pub in_flight: Arc<AtomicUsize>,
}

impl Writer {
    pub fn start(stack: &Stack, write: Write) -> Writer {
        let (stop, mut stopped) = watch::channel(false);
        let ok = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(AtomicUsize::new(0));
        let in_flight_now = Arc::new(AtomicUsize::new(0));
        let pending = in_flight_now.clone();
        let (http, api, token, counter, failures) = (
            stack.http.clone(),
            stack.api_url(),
            stack.token("alice"),
            ok.clone(),
            failed.clone(),
        );
        let handle = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(1000 / MOVES_PER_SECOND));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut in_flight = tokio::task::JoinSet::new();
            let mut outcomes = Vec::new();
            let mut k = 0usize;
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stopped.changed() => break,
                }
                while let Some(done) = in_flight.try_join_next() {
                    outcomes.push(done.expect("a write task"));
                }
                if in_flight.len() >= 8 {
                    continue;
                }
                let (path, body, subject) = match &write {
                    Write::Moves(tickets) => {
                        let ticket = &tickets[k % tickets.len()];
                        let to = if (k / tickets.len()).is_multiple_of(2) {
                            "TODO"
                        } else {
                            "BACKLOG"
                        };
                        (
                            format!("/api/tickets/{ticket}/move"),
                            json!({"toStatus": to, "position": 0}),
                            ticket.clone(),
                        )
                    }
                    Write::Creates(project) => {
                        let title = format!("write {k}");
                        (
                            format!("/api/projects/{project}/tickets"),
                            json!({"title": title}),
                            title,
                        )
                    }
                };
                k += 1;
                let request = http
                    .post(format!("{api}{path}"))
                    .bearer_auth(&token)
                    .json(&body);
                let (counter, failures, pending) =
                    (counter.clone(), failures.clone(), pending.clone());
                pending.fetch_add(1, Ordering::SeqCst);
                in_flight.spawn(async move {
                    let sent = Instant::now();
                    let (status, retry_after, body) = match request.send().await {
                        Ok(response) => {
                            let status = response.status().as_u16();
                            let retry_after = response
                                .headers()
                                .get("retry-after")
                                .and_then(|v| v.to_str().ok())
                                .map(str::to_owned);
                            let body = response.json().await.unwrap_or(Value::Null);
                            (Some(status), retry_after, body)
                        }
                        Err(error) => (None, None, Value::String(error.to_string())),
                    };
                    if status.is_some_and(|s| (200..300).contains(&s)) {
                        counter.fetch_add(1, Ordering::SeqCst);
                    } else {
                        failures.fetch_add(1, Ordering::SeqCst);
                    }
                    pending.fetch_sub(1, Ordering::SeqCst);
                    Outcome {
                        sent,
                        answered: Instant::now(),
                        subject,
                        status,
                        retry_after,
                        body,
                    }
                });
            }
            while let Some(done) = in_flight.join_next().await {
                outcomes.push(done.expect("a write task"));
            }
            outcomes
        });
        Writer {
            stop,
            handle,
            ok,
            failed,
            in_flight: in_flight_now,
        }
    }

    /// Waits until `more` further writes have succeeded.
    pub async fn wait_for_more(&self, more: usize) {
        let from = self.ok.load(Ordering::SeqCst);
        wait_until(&format!("{more} more successful writes"), || async {
            self.ok.load(Ordering::SeqCst) >= from + more
        })
        .await;
    }

    /// Waits (polling closely) until at least one write is in flight.
    pub async fn wait_in_flight(&self) {
        let started = Instant::now();
        while self.in_flight.load(Ordering::SeqCst) == 0 {
            assert!(started.elapsed() < DEADLINE, "no write in flight");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Stops writing, waits for the writes in flight, returns every outcome.
    pub async fn stop(self) -> Vec<Outcome> {
        self.stop.send_replace(true);
        tokio::time::timeout(DEADLINE, self.handle)
            .await
            .expect("the writer did not stop")
            .expect("the writer failed")
    }
}

/// How a run ended: every write's outcome, the board's last committed seq and each
/// client's log.
pub struct Ending {
    pub outcomes: Vec<Outcome>,
    pub last: i64,
    pub logs: Vec<ClientLog>,
}

/// Ends a run on `project`: stops the writer, waits for the relay to publish the last
/// committed seq and for every client to reach it, and checks each client's log: every
/// seq once and in order (or a resync, for the `allowed` reasons only), its board equal
/// to the API's, no error.
pub async fn end_run(
    stack: &Stack,
    writer: Writer,
    fleet: Fleet,
    project: &str,
    allowed: &[ResyncReason],
) -> Ending {
    let outcomes = writer.stop().await;
    let last = stack.last_seq(project).await;
    stack.history_reaches(project, last).await;
    let (_, board) = stack.board_model(project).await;
    let logs = fleet.finish(last).await;
    for log in &logs {
        log.assert_complete(last, &board, allowed);
        assert!(
            log.errors.is_empty(),
            "client {}: {:?}",
            log.index,
            log.errors
        );
    }
    Ending {
        outcomes,
        last,
        logs,
    }
}

/// Every write was answered 200.
pub fn assert_all_written(outcomes: &[Outcome]) {
    let failed: Vec<_> = outcomes.iter().filter(|o| o.status != Some(200)).collect();
    assert!(failed.is_empty(), "writes failed: {failed:?}");
}

/// Counts outcomes by status (`None` = no answer), for the report.
pub fn tally(outcomes: &[Outcome]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for outcome in outcomes {
        let key = outcome
            .status
            .map_or_else(|| "no answer".to_owned(), |s| s.to_string());
        *out.entry(key).or_insert(0) += 1;
    }
    out
}

/// A resume that reaches a gateway before the relay has published the latest committed
/// seq is answered with a resync instead of the replay (the defect described in
/// docs/reliability.md); the client recovers from the snapshot, nothing is lost. The
/// tests count these and allow only them.
pub const RELAY_LAG_RESYNC: &[ResyncReason] = &[ResyncReason::HistoryUnavailable];

/// The resyncs a fault that may lose Redis's history allows: a gap the history no longer
/// holds, or no history at all.
pub const LOST_HISTORY_RESYNC: &[ResyncReason] =
    &[ResyncReason::Gap, ResyncReason::HistoryUnavailable];

/// How many of `logs`' resumes were answered by a resync.
pub fn lag_resyncs(logs: &[ClientLog]) -> usize {
    logs.iter().map(|l| l.resyncs.len()).sum()
}

/// min / median / max of durations, in milliseconds, for the report.
pub fn spread(mut values: Vec<Duration>) -> String {
    if values.is_empty() {
        return "none".to_owned();
    }
    values.sort();
    let ms = |d: Duration| d.as_millis();
    format!(
        "min {} ms, median {} ms, max {} ms (n = {})",
        ms(values[0]),
        ms(values[values.len() / 2]),
        ms(values[values.len() - 1]),
        values.len()
    )
}
