//! Test helpers shared by the services' test suites: one Postgres database per test,
//! cloned from a template that is migrated once per migration set.
//!
//! Set `KANBAN_TEST_DATABASE_URL` to the server to use (default
//! `postgres://postgres@127.0.0.1:5432/postgres`; loopback only). Databases are named
//! `kt_<unix seconds>_<random>`; each is dropped when its [`TestDatabase`] is dropped, and
//! any left behind by a killed run is dropped by a later run after an hour.
//!
//! For tests of real processes it also starts servers of a test's own that the test may
//! kill, freeze or stop: [`ServiceProcess`] (the workspace's binaries), [`OwnRedis`] and
//! [`OwnPostgres`], and a Redis Cluster of six nodes ([`cluster::OwnCluster`]).
//!
//! [`jwt`] builds the forged tokens every service must refuse.
//!
//! This crate only ever runs inside tests, where failing loudly is the point.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

pub mod cluster;
pub mod jwt;

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The server tests use, as a URL to its maintenance database.
pub fn admin_url() -> String {
    std::env::var("KANBAN_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// `url` with its database name replaced by `name`.
pub fn url_for_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{}", &base[..path_start], name);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// A database that exists for one test and is dropped afterwards.
pub struct TestDatabase {
    pub name: String,
    pub url: String,
    admin_url: String,
}

const TEMPLATE_LOCK_KEY: i64 = 0x6b61_6e62_616e_7470;
const STALE_AFTER: Duration = Duration::from_secs(3600);

impl TestDatabase {
    /// A fresh database with the migrations in `migrations_dir` applied. `migrate` applies
    /// them to the database at the URL it is given; it runs once per distinct content of
    /// `migrations_dir`, on a template that later databases are copied from.
    pub async fn create<F, Fut>(migrations_dir: &Path, migrate: F) -> TestDatabase
    where
        F: FnOnce(String) -> Fut,
        Fut: std::future::Future<Output = Result<(), String>>,
    {
        let admin_url = admin_url();
        let mut admin = AsyncPgConnection::establish(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to the test Postgres server: {e}"));
        let template = format!("kt_template_{}", fingerprint(migrations_dir));
        exec(
            &mut admin,
            &format!("SELECT pg_advisory_lock({TEMPLATE_LOCK_KEY})"),
        )
        .await;
        if !database_exists(&mut admin, &template).await {
            let building = format!("{template}_building");
            exec(
                &mut admin,
                &format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"),
            )
            .await;
            exec(&mut admin, &format!("CREATE DATABASE {building}")).await;
            if let Err(error) = migrate(url_for_database(&admin_url, &building)).await {
                exec(
                    &mut admin,
                    &format!("SELECT pg_advisory_unlock({TEMPLATE_LOCK_KEY})"),
                )
                .await;
                panic!("migrating the template database failed: {error}");
            }
            exec(
                &mut admin,
                &format!("ALTER DATABASE {building} RENAME TO {template}"),
            )
            .await;
        }
        drop_stale(&mut admin).await;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let name = format!("kt_{now}_{}", uuid::Uuid::new_v4().simple());
        exec(
            &mut admin,
            &format!("CREATE DATABASE {name} TEMPLATE {template}"),
        )
        .await;
        exec(
            &mut admin,
            &format!("SELECT pg_advisory_unlock({TEMPLATE_LOCK_KEY})"),
        )
        .await;
        TestDatabase {
            url: url_for_database(&admin_url, &name),
            name,
            admin_url,
        }
    }

    /// A fresh database with nothing in it (for testing migrations themselves).
    pub async fn empty() -> TestDatabase {
        let admin_url = admin_url();
        let mut admin = AsyncPgConnection::establish(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to the test Postgres server: {e}"));
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let name = format!("kt_{now}_{}", uuid::Uuid::new_v4().simple());
        exec(&mut admin, &format!("CREATE DATABASE {name}")).await;
        TestDatabase {
            url: url_for_database(&admin_url, &name),
            name,
            admin_url,
        }
    }

    /// Opens a direct connection (for assertions on rows).
    pub async fn connect(&self) -> AsyncPgConnection {
        AsyncPgConnection::establish(&self.url)
            .await
            .expect("connect to test database")
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // Drop runs inside the test's runtime, so use a thread with its own runtime.
        let handle = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(runtime) = runtime {
                runtime.block_on(async move {
                    if let Ok(mut admin) = AsyncPgConnection::establish(&admin_url).await {
                        let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                        let _ = diesel::sql_query(sql).execute(&mut admin).await;
                    }
                });
            }
        });
        let _ = handle.join();
    }
}

async fn exec(conn: &mut AsyncPgConnection, sql: &str) {
    diesel::sql_query(sql)
        .execute(conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

#[derive(diesel::QueryableByName)]
struct DatabaseName {
    #[diesel(sql_type = diesel::sql_types::Text)]
    datname: String,
}

async fn database_exists(conn: &mut AsyncPgConnection, name: &str) -> bool {
    let rows: Vec<DatabaseName> =
        diesel::sql_query("SELECT datname FROM pg_database WHERE datname = $1")
            .bind::<diesel::sql_types::Text, _>(name)
            .load(conn)
            .await
            .expect("query pg_database");
    !rows.is_empty()
}

/// Drops test databases left behind by runs that were killed.
async fn drop_stale(conn: &mut AsyncPgConnection) {
    let rows: Vec<DatabaseName> =
        diesel::sql_query("SELECT datname FROM pg_database WHERE datname LIKE 'kt\\_%\\_%'")
            .load(conn)
            .await
            .unwrap_or_default();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    for row in rows {
        let created = row
            .datname
            .split('_')
            .nth(1)
            .and_then(|s| s.parse::<u64>().ok());
        if let Some(created) = created {
            if now.saturating_sub(created) > STALE_AFTER.as_secs() {
                let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", row.datname);
                let _ = diesel::sql_query(sql).execute(conn).await;
            }
        }
    }
}

/// A hash of every file under `dir` (names and contents), so a changed migration makes a
/// new template.
fn fingerprint(dir: &Path) -> String {
    let mut files = Vec::new();
    collect_files(dir, &mut files);
    files.sort();
    let mut hasher = Sha256::new();
    for file in files {
        let relative = file.strip_prefix(dir).unwrap_or(&file);
        hasher.update(relative.to_string_lossy().as_bytes());
        hasher.update(std::fs::read(&file).unwrap_or_default());
    }
    hasher
        .finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn collect_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                collect_files(&path, out);
            } else {
                out.push(path);
            }
        }
    }
}

/// The value of an unlabelled metric in Prometheus text output (NaN when absent).
pub fn metric_value(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|line| line.starts_with(name) && line[name.len()..].starts_with(' '))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

/// A Redis server of a test's own, on a loopback port, that the test may stop and
/// start again (the shared server is never touched). Stopped when dropped.
pub struct OwnRedis {
    pub port: u16,
    child: std::process::Child,
}

impl OwnRedis {
    /// Starts `redis-server` on a free port, without persistence.
    pub fn start() -> OwnRedis {
        Self::start_on(free_port())
    }

    /// Starts `redis-server` on `port` (again, after [`OwnRedis::stop`]: an empty server).
    pub fn start_on(port: u16) -> OwnRedis {
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("redis-server must be installed (scripts/test.sh installs it)");
        OwnRedis { port, child }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Waits until the server answers PING.
    pub async fn wait_ready(&self) {
        for _ in 0..100 {
            if let Ok(client) = redis::Client::open(self.url()) {
                if let Ok(mut conn) = client.get_multiplexed_async_connection().await {
                    if redis::cmd("PING")
                        .query_async::<String>(&mut conn)
                        .await
                        .is_ok()
                    {
                        return;
                    }
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("redis on port {} did not start", self.port);
    }

    /// SIGSTOP: the server freezes; its clients' connections stay open and time out.
    pub fn pause(&self) {
        signal(self.child.id(), "STOP");
    }

    /// SIGCONT after [`OwnRedis::pause`].
    pub fn resume(&self) {
        signal(self.child.id(), "CONT");
    }

    /// Kills the server with SIGKILL (its data is gone: it keeps nothing on disk).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A PostgreSQL server of a test's own (`initdb` in a temporary folder, `pg_ctl` on a free
/// loopback port, trust authentication for `postgres`), for tests that stop and start the
/// database; the shared server is never touched. Stopped (immediately) and its folder
/// removed when dropped.
///
/// The binaries are the newest of `/usr/lib/postgresql/*/bin` (Debian's layout), or those
/// on `PATH`. Postgres refuses to run as root, so as root the server runs as the
/// `postgres` user the Debian package creates.
pub struct OwnPostgres {
    pub port: u16,
    dir: std::path::PathBuf,
    bin: std::path::PathBuf,
}

impl OwnPostgres {
    /// Initialises a cluster and starts it; returns once it accepts connections.
    pub fn start() -> OwnPostgres {
        let bin = postgres_bin_dir();
        let dir = std::env::temp_dir().join(format!(
            "kanban-test-pg-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).expect("a temp dir for Postgres");
        let postgres = OwnPostgres {
            port: free_port(),
            dir,
            bin,
        };
        if is_root() {
            let status = std::process::Command::new("chown")
                .args(["postgres:postgres", &postgres.dir.to_string_lossy()])
                .status()
                .expect("chown");
            assert!(status.success(), "chown the Postgres folder");
        }
        postgres.run(
            "initdb",
            &[
                "-D",
                &postgres.data().to_string_lossy(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        );
        postgres.start_again();
        postgres
    }

    /// `postgres://postgres@127.0.0.1:<port>/<database>`
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Starts the server again (same folder, same port) and waits until it is up.
    pub fn start_again(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50",
            self.port,
            self.dir.to_string_lossy()
        );
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data().to_string_lossy(),
                "-o",
                &options,
                "-l",
                &self.dir.join("server.log").to_string_lossy(),
                "-w",
                "-t",
                "30",
                "start",
            ],
        );
    }

    /// Stops the server: `mode` is `pg_ctl`'s shutdown mode (`fast` ends sessions and
    /// shuts down cleanly; `immediate` is as a crash).
    pub fn stop(&self, mode: &str) {
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data().to_string_lossy(),
                "-m",
                mode,
                "-w",
                "-t",
                "30",
                "stop",
            ],
        );
    }

    fn data(&self) -> std::path::PathBuf {
        self.dir.join("data")
    }

    fn run(&self, program: &str, args: &[&str]) {
        let program = self.bin.join(program);
        let output = if is_root() {
            std::process::Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&program)
                .args(args)
                .output()
        } else {
            std::process::Command::new(&program).args(args).output()
        }
        .unwrap_or_else(|e| panic!("run {}: {e}", program.display()));
        assert!(
            output.status.success(),
            "{} {args:?} failed: {}{}",
            program.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        if self.data().join("postmaster.pid").exists() {
            let program = self.bin.join("pg_ctl");
            let data = self.data();
            let args = [
                "-D",
                &*data.to_string_lossy(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ]
            .map(str::to_owned);
            let _ = if is_root() {
                std::process::Command::new("runuser")
                    .args(["-u", "postgres", "--"])
                    .arg(&program)
                    .args(&args)
                    .output()
            } else {
                std::process::Command::new(&program).args(&args).output()
            };
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// The newest `/usr/lib/postgresql/<version>/bin`, else the folder of `initdb` on `PATH`.
fn postgres_bin_dir() -> std::path::PathBuf {
    let mut versions: Vec<(u32, std::path::PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| {
                    let version = e.file_name().to_string_lossy().parse::<u32>().ok()?;
                    let bin = e.path().join("bin");
                    bin.join("initdb").exists().then_some((version, bin))
                })
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return bin;
    }
    let output = std::process::Command::new("sh")
        .args(["-c", "command -v initdb"])
        .output()
        .expect("sh");
    let path = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    assert!(
        !path.is_empty(),
        "PostgreSQL's initdb must be installed (scripts/test.sh installs it)"
    );
    std::path::Path::new(&path)
        .parent()
        .expect("initdb's folder")
        .to_path_buf()
}

/// An HTTP client for tests: every request fails after 10 s instead of hanging the test
/// when a server under test stops answering.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .expect("an HTTP client")
}

/// A free loopback port (bound, then released: another process could take it first, which
/// the caller notices when its server fails to start).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// One of the workspace's service binaries running as a real process on a loopback port,
/// for tests that kill it as a crash would. Its output goes to a log file whose tail is
/// shown when it fails to start; it is SIGKILLed when dropped.
pub struct ServiceProcess {
    pub port: u16,
    child: std::process::Child,
    log: std::path::PathBuf,
}

impl ServiceProcess {
    /// Starts `binary` with `KANBAN_HTTP__HOST`/`__PORT` set to a free loopback port and
    /// the given environment, then waits until its `/readyz` answers 200.
    pub async fn start(binary: &str, env: &[(&str, String)]) -> ServiceProcess {
        Self::start_on(binary, free_port(), env).await
    }

    /// Like [`ServiceProcess::start`], on `port` (a restart in the same place, as a
    /// replica replaced behind a load balancer).
    pub async fn start_on(binary: &str, port: u16, env: &[(&str, String)]) -> ServiceProcess {
        let process = Self::spawn_on(binary, port, env);
        process.wait_ready().await;
        process
    }

    /// Starts `binary` on `port` without waiting for readiness (for a process that is
    /// expected not to become ready yet, e.g. while a dependency is down).
    pub fn spawn_on(binary: &str, port: u16, env: &[(&str, String)]) -> ServiceProcess {
        let name = std::path::Path::new(binary)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "service".to_owned());
        // Unique per start: a process restarted on the same port must not share (and,
        // when the old guard drops, lose) its predecessor's log.
        let log = std::env::temp_dir().join(format!(
            "kanban-test-{name}-{}-{port}-{}.log",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        let file = std::fs::File::create(&log).expect("a log file in the temp dir");
        let child = std::process::Command::new(binary)
            .env("KANBAN_HTTP__HOST", "127.0.0.1")
            .env("KANBAN_HTTP__PORT", port.to_string())
            .env("KANBAN_LOG__FILTER", "info")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(std::process::Stdio::null())
            .stdout(file.try_clone().expect("log file handle"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("start {binary}: {e}"));
        ServiceProcess { port, child, log }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits (10 s at most) until `/readyz` answers 200.
    pub async fn wait_ready(&self) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let client = http();
        loop {
            let ready = client
                .get(format!("{}/readyz", self.url()))
                .timeout(std::time::Duration::from_secs(1))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return;
            }
            if std::time::Instant::now() > deadline {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(20).collect();
                panic!(
                    "{} on port {} never became ready; its log ends:\n{}",
                    self.log.display(),
                    self.port,
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL, as a crash: no drain, no cleanup, connections cut.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, as an orchestrator's stop: the service drains and exits on its own
    /// (await it with [`ServiceProcess::exited`]).
    pub fn terminate(&self) {
        signal(self.pid(), "TERM");
    }

    /// SIGSTOP: the process freezes with its connections open.
    pub fn pause(&self) {
        signal(self.pid(), "STOP");
    }

    /// SIGCONT after [`ServiceProcess::pause`].
    pub fn resume(&self) {
        signal(self.pid(), "CONT");
    }

    /// Waits up to `timeout` for the process to exit; its exit status, or `None` if it is
    /// still running.
    pub async fn exited(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if std::time::Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The process's output so far (its log file).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Sends `SIG<name>` to one process, by its id (`kill` rather than `libc::kill`: the
/// workspace forbids `unsafe`).
pub fn signal(pid: u32, name: &str) {
    let status = std::process::Command::new("kill")
        .args([format!("-{name}"), pid.to_string()])
        .status()
        .expect("the kill command");
    assert!(status.success(), "kill -{name} {pid} failed");
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// A Redis key prefix unique to one test.
pub fn redis_prefix() -> String {
    format!("kt:{}:", uuid::Uuid::new_v4().simple())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_name_is_replaced_keeping_credentials_and_query() {
        assert_eq!(
            url_for_database(
                "postgres://u:p@127.0.0.1:5432/postgres?sslmode=disable",
                "kt_1"
            ),
            "postgres://u:p@127.0.0.1:5432/kt_1?sslmode=disable"
        );
        assert_eq!(
            url_for_database("postgres://127.0.0.1", "x"),
            "postgres://127.0.0.1/x"
        );
    }
}
