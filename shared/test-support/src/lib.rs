//! Test helpers shared by the services' test suites: one Postgres database per test,
//! cloned from a template that is migrated once per migration set.
//!
//! Set `KANBAN_TEST_DATABASE_URL` to the server to use (default
//! `postgres://postgres@127.0.0.1:5432/postgres`; loopback only). Databases are named
//! `kt_<unix seconds>_<random>`; each is dropped when its [`TestDatabase`] is dropped, and
//! any left behind by a killed run is dropped by a later run after an hour.
//!
//! This crate only ever runs inside tests, where failing loudly is the point.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

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

    /// Kills the server (its data is gone: it keeps nothing on disk).
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
        let port = free_port();
        let name = std::path::Path::new(binary)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "service".to_owned());
        let log = std::env::temp_dir().join(format!(
            "kanban-test-{name}-{}-{port}.log",
            std::process::id()
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
        let process = ServiceProcess { port, child, log };
        process.wait_ready().await;
        process
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
