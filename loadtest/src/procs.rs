//! Gateways as processes of their own (the `gateway` binary beside this one), so that
//! their CPU and memory can be read from /proc apart from the load tool's.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct GatewayProcess {
    child: Child,
    pub address: String,
}

impl GatewayProcess {
    /// Starts `bin` on a free loopback port against `redis_url` with key `prefix`,
    /// anonymous sockets allowed (the benchmark measures the gateway, not the API).
    pub async fn start(
        bin: &std::path::Path,
        id: &str,
        redis_url: &str,
        prefix: &str,
        max: usize,
    ) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        // Reaped in `Drop` (clippy does not see that far).
        #[allow(clippy::zombie_processes)]
        let child = Command::new(bin)
            .env("KANBAN_HTTP__HOST", "127.0.0.1")
            .env("KANBAN_HTTP__PORT", port.to_string())
            .env("KANBAN_REDIS__URL", redis_url)
            .env("KANBAN_REDIS__KEY_PREFIX", prefix)
            .env("KANBAN_GATEWAY__ALLOW_ANONYMOUS", "true")
            .env("KANBAN_GATEWAY__INSTANCE_ID", id)
            .env("KANBAN_LIMITS__MAX_CONNECTIONS", (max + 100).to_string())
            .env("KANBAN_LOG__FILTER", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
        let address = format!("127.0.0.1:{port}");
        let health = format!("http://{address}/readyz");
        for _ in 0..200 {
            if reqwest::get(&health)
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return GatewayProcess { child, address };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("gateway {id} did not become ready at {address}");
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

    pub async fn metric(&self, name: &str) -> f64 {
        let text = reqwest::get(format!("http://{}/metrics", self.address))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics body");
        kanban_test_support::metric_value(&text, name)
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU seconds (user + system) of process `pid`.
pub fn cpu_seconds(pid: u32) -> f64 {
    crate::host::process_ticks(&pid.to_string()) as f64 / crate::host::TICKS_PER_SECOND
}

/// The gateway binary beside this one (`cargo build --release -p gateway -p kanban-loadtest`).
pub fn gateway_bin() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("own path");
    let bin = exe.with_file_name("gateway");
    assert!(
        bin.exists(),
        "{} not found: build it beside the load tool (cargo build --release -p gateway -p kanban-loadtest)",
        bin.display()
    );
    bin
}
