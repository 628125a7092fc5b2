//! A Redis Cluster of a test's own: six `redis-server --cluster-enabled yes` processes on
//! free loopback ports (three primaries, three replicas, made by `redis-cli --cluster
//! create`), in a temporary folder, that a test may kill a node of or reshard. Every
//! process is killed and the folder removed when it is dropped.

use crate::free_port;
use redis::Value;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a node may be unreachable before the others count it as failed and promote
/// its replica (`cluster-node-timeout`): short, so a failover takes seconds.
pub const NODE_TIMEOUT_MS: u64 = 1000;

/// The longest the cluster may take to form or to fail over.
const SETTLE: Duration = Duration::from_secs(60);

pub struct OwnCluster {
    pub ports: Vec<u16>,
    children: Vec<Option<Child>>,
    dir: PathBuf,
}

/// One range of slots and the node that serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotRange {
    pub start: u16,
    pub end: u16,
    pub primary_port: u16,
    pub primary_id: String,
    pub replicas: usize,
}

impl OwnCluster {
    /// Starts six nodes, makes them a cluster of three primaries with one replica each,
    /// and returns once every node sees every slot served and every primary has its
    /// replica.
    pub async fn start() -> OwnCluster {
        let version = redis_major_version();
        assert!(
            version >= 7,
            "redis-server {version}.x has no sharded pub/sub: the cluster tests need Redis 7 or newer"
        );
        let dir = std::env::temp_dir().join(format!(
            "kanban-test-cluster-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).expect("a temp dir for the cluster");
        let mut cluster = OwnCluster {
            ports: Vec::new(),
            children: Vec::new(),
            dir,
        };
        for _ in 0..6 {
            let port = free_port();
            let child = cluster.spawn(port);
            cluster.ports.push(port);
            cluster.children.push(Some(child));
        }
        for port in &cluster.ports {
            wait_answers(*port).await;
        }
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for port in &cluster.ports {
            create.arg(format!("127.0.0.1:{port}"));
        }
        let output = create
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli must be installed (scripts/test.sh installs it)");
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&output.stdout)
        );
        cluster
            .wait_for("the cluster to form", |ranges| {
                ranges.len() >= 3 && ranges.iter().all(|r| r.replicas >= 1)
            })
            .await;
        cluster
    }

    fn spawn(&self, port: u16) -> Child {
        Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                &format!("nodes-{port}.conf"),
                "--cluster-node-timeout",
                &NODE_TIMEOUT_MS.to_string(),
                "--dir",
                &self.dir.to_string_lossy(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (scripts/test.sh installs it)")
    }

    /// The seed list for `KANBAN_REDIS__CLUSTER_NODES`: every node, comma-separated.
    pub fn seeds(&self) -> String {
        self.ports
            .iter()
            .map(|port| format!("redis://127.0.0.1:{port}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The nodes still running.
    pub fn alive(&self) -> Vec<u16> {
        self.ports
            .iter()
            .zip(&self.children)
            .filter(|(_, child)| child.is_some())
            .map(|(port, _)| *port)
            .collect()
    }

    /// The slot map as a running node that sees every slot served reports it
    /// (`CLUSTER SLOTS`); empty while none does.
    pub async fn slots(&self) -> Vec<SlotRange> {
        for port in self.alive() {
            if let Some(ranges) = cluster_slots(port).await {
                if ranges
                    .iter()
                    .map(|r| u32::from(r.end - r.start) + 1)
                    .sum::<u32>()
                    == 16_384
                {
                    return ranges;
                }
            }
        }
        Vec::new()
    }

    /// The range that holds `slot`.
    pub async fn range_of(&self, slot: u16) -> SlotRange {
        self.slots()
            .await
            .into_iter()
            .find(|r| (r.start..=r.end).contains(&slot))
            .unwrap_or_else(|| panic!("no node serves slot {slot}"))
    }

    /// The primaries: (port, node id), one per shard.
    pub async fn primaries(&self) -> Vec<(u16, String)> {
        let mut primaries: Vec<(u16, String)> = self
            .slots()
            .await
            .into_iter()
            .map(|r| (r.primary_port, r.primary_id))
            .collect();
        primaries.sort();
        primaries.dedup();
        primaries
    }

    /// SIGKILL to the node on `port` (it keeps nothing: no persistence).
    pub fn kill(&mut self, port: u16) {
        let index = self
            .ports
            .iter()
            .position(|p| *p == port)
            .expect("a node of this cluster");
        if let Some(mut child) = self.children[index].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the node on `port` again after [`OwnCluster::kill`], with its cluster
    /// configuration file (so it rejoins the cluster, as a replica if it was failed over)
    /// and no data.
    pub async fn restart(&mut self, port: u16) {
        let index = self
            .ports
            .iter()
            .position(|p| *p == port)
            .expect("a node of this cluster");
        assert!(self.children[index].is_none(), "node {port} is running");
        self.children[index] = Some(self.spawn(port));
        wait_answers(port).await;
    }

    /// Waits until the primary on `port` has a replica whose replication link is up
    /// (`INFO replication`: `state=online`), so that the replica can take over.
    pub async fn wait_replica_online(&self, port: u16) {
        let started = Instant::now();
        loop {
            if let Some(mut conn) = connect(port).await {
                let info: String = redis::cmd("INFO")
                    .arg("replication")
                    .query_async(&mut conn)
                    .await
                    .unwrap_or_default();
                if info
                    .lines()
                    .any(|l| l.starts_with("slave") && l.contains("state=online"))
                {
                    return;
                }
            }
            assert!(
                started.elapsed() < SETTLE,
                "the primary on port {port} has no replica online after {SETTLE:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Polls the slot map (as a running node sees it, every slot served) until `done`
    /// holds; returns how long that took.
    pub async fn wait_for(&self, what: &str, done: impl Fn(&[SlotRange]) -> bool) -> Duration {
        let started = Instant::now();
        loop {
            let ranges = self.slots().await;
            if !ranges.is_empty() && done(&ranges) && self.all_agree(&ranges).await {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < SETTLE,
                "waited {SETTLE:?} for {what}; the slot map is {ranges:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits (as [`OwnCluster::wait_for`]) until the primary serving `slot` is one for
    /// whose port `owner` holds.
    pub async fn wait_for_slot_owner(
        &self,
        what: &str,
        slot: u16,
        owner: impl Fn(u16) -> bool,
    ) -> Duration {
        self.wait_for(what, |ranges| {
            ranges
                .iter()
                .any(|r| (r.start..=r.end).contains(&slot) && owner(r.primary_port))
        })
        .await
    }

    /// Every running node reports `cluster_state:ok` and the same primaries for `ranges`.
    async fn all_agree(&self, ranges: &[SlotRange]) -> bool {
        for port in self.alive() {
            let Some(mut conn) = connect(port).await else {
                return false;
            };
            let info: String = redis::cmd("CLUSTER")
                .arg("INFO")
                .query_async(&mut conn)
                .await
                .unwrap_or_default();
            if !info.contains("cluster_state:ok") {
                return false;
            }
            let Some(mine) = cluster_slots(port).await else {
                return false;
            };
            let primaries = |r: &[SlotRange]| -> Vec<(u16, u16, u16)> {
                let mut v: Vec<_> = r.iter().map(|r| (r.start, r.end, r.primary_port)).collect();
                v.sort();
                v
            };
            if primaries(&mine) != primaries(ranges) {
                return false;
            }
        }
        true
    }

    /// Moves the slots `from_id` serves, lowest first, up to and including `slot`, to
    /// `to_id`: `redis-cli --cluster reshard`, as an operator runs it (it moves the slots
    /// one by one, with their keys, while clients keep writing).
    pub async fn reshard_through(&self, slot: u16, from_id: &str, to_id: &str) -> Duration {
        let range = self.range_of(slot).await;
        assert_eq!(range.primary_id, from_id, "slot {slot} is not on {from_id}");
        let count = slot - range.start + 1;
        let port = self.alive()[0];
        let started = Instant::now();
        let output = tokio::process::Command::new("redis-cli")
            .args([
                "--cluster",
                "reshard",
                &format!("127.0.0.1:{port}"),
                "--cluster-from",
                from_id,
                "--cluster-to",
                to_id,
                "--cluster-slots",
                &count.to_string(),
                "--cluster-yes",
            ])
            .stdin(Stdio::null())
            .output()
            .await
            .expect("redis-cli");
        assert!(
            output.status.success(),
            "redis-cli --cluster reshard failed: {}",
            String::from_utf8_lossy(&output.stdout)
        );
        started.elapsed()
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        for child in self.children.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The major version of the `redis-server` on `PATH` (`Redis server v=7.0.15 …`).
fn redis_major_version() -> u32 {
    let output = Command::new("redis-server")
        .arg("--version")
        .output()
        .expect("redis-server must be installed (scripts/test.sh installs it)");
    let text = String::from_utf8_lossy(&output.stdout);
    text.split("v=")
        .nth(1)
        .and_then(|v| v.split('.').next())
        .and_then(|major| major.parse().ok())
        .unwrap_or_else(|| panic!("cannot read redis-server's version from {text:?}"))
}

async fn connect(port: u16) -> Option<redis::aio::MultiplexedConnection> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).ok()?;
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_millis(500)))
        .set_response_timeout(Some(Duration::from_millis(500)));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .ok()
}

async fn wait_answers(port: u16) {
    let started = Instant::now();
    while started.elapsed() < SETTLE {
        if let Some(mut conn) = connect(port).await {
            if redis::cmd("PING")
                .query_async::<String>(&mut conn)
                .await
                .is_ok()
            {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("redis-server on port {port} did not start");
}

/// `CLUSTER SLOTS` of one node.
async fn cluster_slots(port: u16) -> Option<Vec<SlotRange>> {
    let mut conn = connect(port).await?;
    let reply: Value = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query_async(&mut conn)
        .await
        .ok()?;
    let Value::Array(ranges) = reply else {
        return None;
    };
    let mut out = Vec::new();
    for range in ranges {
        let Value::Array(fields) = range else {
            return None;
        };
        let int = |v: Option<&Value>| match v {
            Some(Value::Int(n)) => u16::try_from(*n).ok(),
            _ => None,
        };
        let (start, end) = (int(fields.first())?, int(fields.get(1))?);
        let Some(Value::Array(primary)) = fields.get(2) else {
            return None;
        };
        let primary_port = int(primary.get(1))?;
        let primary_id = match primary.get(2) {
            Some(Value::BulkString(id)) => String::from_utf8_lossy(id).into_owned(),
            _ => return None,
        };
        out.push(SlotRange {
            start,
            end,
            primary_port,
            primary_id,
            replicas: fields.len().saturating_sub(3),
        });
    }
    Some(out)
}
