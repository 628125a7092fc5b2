//! `--clients-apart`: the load tool's clients on a host of their own inside this machine.
//!
//! On loopback the servers' `writev` also runs the receiving socket's half of TCP (its
//! softirq, the client's wake-up) on the servers' core, and the tool's clients share the
//! servers' cores, so a server's CPU per delivery carries the clients' cost and its rate
//! is capped by theirs. Apart, the clients' sockets live in a network namespace of their
//! own, joined to the servers by a veth pair; receive packet steering processes each
//! side's incoming packets on that side's cores; the servers run on every core but the
//! last (`taskset`), the tool (its clients, its publisher) on the last. That is two hosts
//! on one wire, as a server and its clients are in production. Needs root and iproute2.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

/// A connect request to the namespace's dialing thread.
type Dial = (
    SocketAddr,
    tokio::sync::oneshot::Sender<io::Result<TcpStream>>,
);

/// The clients' namespace, its veth pair and its dialing thread; removed on drop.
pub struct Apart {
    namespace: String,
    /// The servers' end of the veth pair: the servers listen there.
    pub server_ip: String,
    /// The cores the servers run on (`taskset -c` syntax).
    pub server_cpus: String,
    /// The core the load tool and its clients run on.
    pub client_cpu: usize,
    dial: mpsc::Sender<Dial>,
}

/// The prefix of the namespaces this module makes; the rest is the tool's PID.
const NAMESPACE_PREFIX: &str = "kanban-clients-";

impl Apart {
    /// Makes the namespace and the veth pair, steers each side's packets to its cores,
    /// and moves every thread of this process onto the clients' core.
    pub fn set_up() -> Apart {
        let cores = crate::host::cores();
        assert!(
            (2..=64).contains(&cores),
            "--clients-apart needs between 2 and 64 cores, this host has {cores}"
        );
        remove_stale();
        let pid = std::process::id();
        let namespace = format!("{NAMESPACE_PREFIX}{pid}");
        // Interface names have at most 15 bytes: 3 + at most 7 digits of a PID.
        let (outer, inner) = (format!("kbs{pid}"), format!("kbc{pid}"));
        let subnet = format!("10.213.{}", pid % 256);
        let (server_ip, client_ip) = (format!("{subnet}.1"), format!("{subnet}.2"));
        let client_cpu = cores - 1;
        let server_mask = (1u64 << client_cpu) - 1;
        let client_mask = 1u64 << client_cpu;
        ip(&["netns", "add", &namespace]);
        let apart = Apart {
            namespace: namespace.clone(),
            server_ip: server_ip.clone(),
            server_cpus: if client_cpu == 1 {
                "0".to_owned()
            } else {
                format!("0-{}", client_cpu - 1)
            },
            client_cpu,
            dial: dialer(&namespace),
        };
        ip(&[
            "link", "add", &outer, "type", "veth", "peer", "name", &inner, "netns", &namespace,
        ]);
        ip(&["addr", "add", &format!("{server_ip}/30"), "dev", &outer]);
        ip(&["link", "set", &outer, "up"]);
        ip(&[
            "-n",
            &namespace,
            "addr",
            "add",
            &format!("{client_ip}/30"),
            "dev",
            &inner,
        ]);
        ip(&["-n", &namespace, "link", "set", &inner, "up"]);
        ip(&["-n", &namespace, "link", "set", "lo", "up"]);
        // What the clients send (requests, ACKs) is received on the servers' cores, what
        // the servers send on the clients' core.
        std::fs::write(
            format!("/sys/class/net/{outer}/queues/rx-0/rps_cpus"),
            cpu_mask(server_mask),
        )
        .expect("steer the servers' side of the veth pair (needs root)");
        run(Command::new("ip").args([
            "netns",
            "exec",
            &namespace,
            "sh",
            "-c",
            &format!(
                "echo {} > /sys/class/net/{inner}/queues/rx-0/rps_cpus",
                cpu_mask(client_mask)
            ),
        ]));
        pin_self(client_cpu);
        apart
    }

    /// A TCP connection to `address`, opened from the clients' namespace.
    pub async fn connect(&self, address: SocketAddr) -> io::Result<tokio::net::TcpStream> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.dial
            .send((address, reply))
            .map_err(|_| io::Error::other("the dialing thread has stopped"))?;
        let stream = answer
            .await
            .map_err(|_| io::Error::other("the dialing thread has stopped"))??;
        stream.set_nonblocking(true)?;
        tokio::net::TcpStream::from_std(stream)
    }

    /// One line for the run's header.
    pub fn describe(&self) -> String {
        format!(
            "clients apart: their own network namespace ({}) over a veth pair, the servers on \
             core(s) {} at {}, the load tool on core {}",
            self.namespace, self.server_cpus, self.server_ip, self.client_cpu
        )
    }
}

impl Drop for Apart {
    fn drop(&mut self) {
        // Removing the namespace removes the veth pair with it.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.namespace])
            .status();
    }
}

/// A thread that has moved into `namespace` and opens the connections asked of it: a
/// socket belongs to the namespace of the thread that made it, wherever it is used.
fn dialer(namespace: &str) -> mpsc::Sender<Dial> {
    let (sender, requests) = mpsc::channel::<Dial>();
    let path = format!("/var/run/netns/{namespace}");
    std::thread::Builder::new()
        .name("clients-apart-dialer".into())
        .spawn(move || {
            let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
            rustix::thread::move_into_link_name_space(
                file.as_fd(),
                Some(rustix::thread::LinkNameSpaceType::Network),
            )
            .unwrap_or_else(|e| panic!("enter {path}: {e}"));
            for (address, reply) in requests {
                let _ = reply.send(TcpStream::connect_timeout(
                    &address,
                    Duration::from_secs(10),
                ));
            }
        })
        .expect("start the dialing thread");
    sender
}

/// Moves every thread of this process onto `cpu`; threads started later inherit it.
fn pin_self(cpu: usize) {
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    let tasks = std::fs::read_dir("/proc/self/task").expect("read /proc/self/task");
    for task in tasks.flatten() {
        let Some(tid) = task
            .file_name()
            .to_str()
            .and_then(|t| t.parse::<i32>().ok())
            .and_then(rustix::thread::Pid::from_raw)
        else {
            continue;
        };
        rustix::thread::sched_setaffinity(Some(tid), &set)
            .unwrap_or_else(|e| panic!("pin thread {tid:?} to core {cpu}: {e}"));
    }
}

/// Removes the namespaces of earlier runs whose tool is gone (killed before its drop).
fn remove_stale() {
    let Ok(entries) = std::fs::read_dir("/var/run/netns") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix(NAMESPACE_PREFIX) else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = Command::new("ip").args(["netns", "del", &name]).status();
        }
    }
}

/// A CPU bitmap as sysfs takes it: hex, in comma-separated groups of 32 bits.
fn cpu_mask(mask: u64) -> String {
    let (high, low) = (mask >> 32, mask & 0xffff_ffff);
    if high == 0 {
        format!("{low:x}")
    } else {
        format!("{high:x},{low:08x}")
    }
}

fn ip(args: &[&str]) {
    run(Command::new("ip").args(args));
}

fn run(command: &mut Command) {
    let status = command
        .status()
        .unwrap_or_else(|e| panic!("run {command:?} (iproute2 is needed): {e}"));
    assert!(status.success(), "{command:?} failed: {status}");
}

#[cfg(test)]
mod tests {
    use super::cpu_mask;

    #[test]
    fn cpu_masks_are_written_in_groups_of_32_bits() {
        assert_eq!(cpu_mask(1), "1");
        assert_eq!(cpu_mask(0b1110), "e");
        assert_eq!(cpu_mask(1 << 40), "100,00000000");
    }
}
