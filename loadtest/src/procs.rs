//! The servers under test as processes of their own, so that their CPU and memory can be
//! read from /proc apart from the load tool's: our `gateway` binary (beside this one) or
//! an instance of the original Node design (`../shared/bench/node-reference`, run with
//! `node`, never copied into the project).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Which server a scenario measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Our gateway (release build beside the load tool).
    Kanban,
    /// The original Node design: Socket.IO 4.8 with the Redis adapter.
    Node,
}

impl Kind {
    /// `kanban`, `node` or `both` (kanban first).
    pub fn parse_list(text: &str) -> Vec<Kind> {
        match text {
            "kanban" => vec![Kind::Kanban],
            "node" => vec![Kind::Node],
            "both" => vec![Kind::Kanban, Kind::Node],
            other => panic!("--server takes kanban, node or both, not {other}"),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Kanban => "kanban-gateway",
            Kind::Node => "node-reference",
        }
    }
}

/// Where a server runs: the address it listens on and, with `--clients-apart`, the
/// cores it is pinned to.
pub struct Place {
    pub host: String,
    pub cpus: Option<String>,
}

impl Place {
    /// Loopback, on any core.
    pub fn loopback() -> Place {
        Place {
            host: "127.0.0.1".to_owned(),
            cpus: None,
        }
    }

    /// The servers' side of `apart`, or loopback without it.
    pub fn of(apart: Option<&crate::apart::Apart>) -> Place {
        apart.map_or_else(Place::loopback, |apart| Place {
            host: apart.server_ip.clone(),
            cpus: Some(apart.server_cpus.clone()),
        })
    }

    /// A command that runs `program` here: under `taskset` when pinned (it execs the
    /// program, so the child's PID is the server's).
    fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        match &self.cpus {
            Some(cpus) => {
                let mut command = Command::new("taskset");
                command.arg("-c").arg(cpus).arg(program);
                command
            }
            None => Command::new(program),
        }
    }
}

pub struct ServerProcess {
    child: Child,
    pub kind: Kind,
    pub address: String,
}

impl ServerProcess {
    /// Starts our gateway `bin` at `place` on a free port against `redis_url` with key
    /// `prefix`, anonymous sockets allowed (the benchmark measures the gateway, not the
    /// API), at most `max` connections.
    pub async fn gateway_at(
        place: &Place,
        bin: &Path,
        id: &str,
        redis_url: &str,
        prefix: &str,
        max: usize,
    ) -> Self {
        let settings = [("KANBAN_GATEWAY__ALLOW_ANONYMOUS", "true")];
        Self::gateway_with(place, bin, id, redis_url, prefix, max, &settings).await
    }

    /// Like [`ServerProcess::gateway_at`] on loopback, on the Redis Cluster whose nodes `seeds` lists
    /// (comma-separated URLs).
    pub async fn gateway_on_cluster(
        bin: &Path,
        id: &str,
        seeds: &str,
        prefix: &str,
        max: usize,
    ) -> Self {
        let settings = [
            ("KANBAN_GATEWAY__ALLOW_ANONYMOUS", "true"),
            ("KANBAN_REDIS__CLUSTER_NODES", seeds),
        ];
        let place = Place::loopback();
        Self::gateway_with(
            &place,
            bin,
            id,
            "redis://127.0.0.1:6379",
            prefix,
            max,
            &settings,
        )
        .await
    }

    /// Starts our gateway that checks tokens signed with `jwt_secret` and asks the ticket
    /// API at `api` before each join (the full path).
    pub async fn authenticated_gateway(
        id: &str,
        api: &str,
        jwt_secret: &str,
        redis_url: &str,
        prefix: &str,
        max: usize,
    ) -> Self {
        let settings = [
            ("KANBAN_GATEWAY__ALLOW_ANONYMOUS", "false"),
            ("KANBAN_API__BASE_URL", api),
            ("KANBAN_AUTH__JWT_SECRET", jwt_secret),
        ];
        let place = Place::loopback();
        Self::gateway_with(
            &place,
            &gateway_bin(),
            id,
            redis_url,
            prefix,
            max,
            &settings,
        )
        .await
    }

    async fn gateway_with(
        place: &Place,
        bin: &Path,
        id: &str,
        redis_url: &str,
        prefix: &str,
        max: usize,
        settings: &[(&str, &str)],
    ) -> Self {
        let port = free_port();
        let mut command = place.command(bin);
        command
            .env("KANBAN_HTTP__HOST", &place.host)
            .env("KANBAN_HTTP__PORT", port.to_string())
            .env("KANBAN_REDIS__URL", redis_url)
            .env("KANBAN_REDIS__KEY_PREFIX", prefix)
            .env("KANBAN_GATEWAY__INSTANCE_ID", id)
            .env("KANBAN_LIMITS__MAX_CONNECTIONS", (max + 100).to_string())
            .env("KANBAN_LOG__FILTER", "warn")
            .envs(settings.iter().copied());
        Self::spawn(command, Kind::Kanban, &place.host, port, "/readyz").await
    }

    /// Starts one instance of the Node reference from `dir` (prepared by
    /// [`node_reference`]) at `place` on a free port against `redis_url`.
    pub async fn node(place: &Place, dir: &Path, redis_url: &str) -> Self {
        let port = free_port();
        let mut command = place.command("node");
        command
            .arg("server.mjs")
            .current_dir(dir)
            .env("HOST", &place.host)
            .env("PORT", port.to_string())
            .env("REDIS_URL", redis_url);
        Self::spawn(command, Kind::Node, &place.host, port, "/healthz").await
    }

    async fn spawn(mut command: Command, kind: Kind, host: &str, port: u16, ready: &str) -> Self {
        // Reaped in `Drop` (clippy does not see that far).
        #[allow(clippy::zombie_processes)]
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("start {command:?}: {e}"));
        let server = ServerProcess {
            child,
            kind,
            address: format!("{host}:{port}"),
        };
        let health = format!("http://{}{ready}", server.address);
        for _ in 0..200 {
            if reqwest::get(&health)
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{} did not become ready at {}", kind.name(), server.address);
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU seconds (user + system) the process has used so far.
    pub fn cpu_seconds(&self) -> f64 {
        cpu_seconds(self.pid())
    }

    /// Resident memory in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// A metric of our gateway's (0 when it is absent).
    pub async fn metric(&self, name: &str) -> f64 {
        kanban_test_support::metric_value(&self.metrics_page().await, name)
    }

    /// The server's whole `/metrics` page.
    pub async fn metrics_page(&self) -> String {
        reqwest::get(format!("http://{}/metrics", self.address))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics body")
    }

    /// Bytes the process has allocated on its heap and not freed, where it says: our
    /// gateway built with `--features heap-stats`. `None` otherwise.
    pub async fn heap_bytes(&self) -> Option<f64> {
        if self.kind != Kind::Kanban {
            return None;
        }
        let text = reqwest::get(format!("http://{}/metrics", self.address))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix("kanban_gateway_heap_allocated_bytes "))
            .and_then(|v| v.trim().parse().ok())
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// CPU seconds (user + system) of process `pid`.
pub fn cpu_seconds(pid: u32) -> f64 {
    crate::host::process_ticks(&pid.to_string()) as f64 / crate::host::TICKS_PER_SECOND
}

/// The gateway binary beside this one (`cargo build --release -p gateway -p kanban-loadtest`).
pub fn gateway_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("own path");
    let bin = exe.with_file_name("gateway");
    assert!(
        bin.exists(),
        "{} not found: build it beside the load tool (cargo build --release -p gateway -p kanban-loadtest)",
        bin.display()
    );
    bin
}

/// The files of the Node reference that are copied to run it.
const NODE_FILES: [&str; 3] = ["server.mjs", "package.json", "package-lock.json"];

/// A runnable copy of the Node reference server: `source` (default: the brief's
/// `shared/bench/node-reference` beside the repository, or `KANBAN_NODE_REFERENCE`) is
/// copied into the user's cache directory, outside the project, and `npm ci` is run there
/// when its lockfile changed. Returns the copy's directory.
pub fn node_reference(source: Option<&Path>) -> PathBuf {
    let source = source.map(Path::to_path_buf).unwrap_or_else(|| {
        std::env::var_os("KANBAN_NODE_REFERENCE")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/bench/node-reference")
            })
    });
    assert!(
        source.join("server.mjs").exists(),
        "the Node reference is not at {} (pass --node-reference DIR)",
        source.display()
    );
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .expect("HOME or XDG_CACHE_HOME")
        .join("kanban-node-reference");
    std::fs::create_dir_all(&cache).expect("create the Node reference's cache directory");
    let lock_before = std::fs::read(cache.join("package-lock.json")).ok();
    for file in NODE_FILES {
        std::fs::copy(source.join(file), cache.join(file))
            .unwrap_or_else(|e| panic!("copy {file} of the Node reference: {e}"));
        // The source is read-only; the copy must stay replaceable on the next run.
        let mut permissions = std::fs::metadata(cache.join(file))
            .expect("copied file")
            .permissions();
        #[allow(clippy::permissions_set_readonly_false)]
        permissions.set_readonly(false);
        let _ = std::fs::set_permissions(cache.join(file), permissions);
    }
    let lock_after = std::fs::read(cache.join("package-lock.json")).ok();
    if lock_before != lock_after || !cache.join("node_modules").exists() {
        eprintln!("node reference: npm ci in {}", cache.display());
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&cache)
            .status()
            .expect("run npm (Node.js and npm are needed for --server node)");
        assert!(status.success(), "npm ci of the Node reference failed");
    }
    cache
}
