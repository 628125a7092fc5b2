//! The host's CPU during a run, from /proc: all cores' busy time, this process's own
//! (the load tool and the in-process servers), and the rest, another process's load,
//! which makes a run's figures suspect when it is more than a tenth of a core; and this
//! process's open-file limit, raised to what a run's sockets need.

use std::time::Instant;

/// Linux reports CPU time in ticks of 1/100 s (`getconf CLK_TCK`).
pub const TICKS_PER_SECOND: f64 = 100.0;

pub struct Sample {
    at: Instant,
    busy: u64,
    own: u64,
    per_core: Vec<u64>,
}

impl Sample {
    pub fn now() -> Sample {
        Sample {
            at: Instant::now(),
            busy: host_busy_ticks(),
            own: own_ticks(),
            per_core: per_core_busy_ticks(),
        }
    }

    /// One line: cores busy, this process's share, the CPU seconds the benchmark's other
    /// processes (its servers, Redis) used since `self` (named, not counted as foreign)
    /// and the foreign rest.
    pub fn report_with(&self, servers: &[(&str, f64)]) -> String {
        let end = Sample::now();
        let seconds = end.at.duration_since(self.at).as_secs_f64().max(1e-9);
        let busy = end.busy.saturating_sub(self.busy) as f64 / TICKS_PER_SECOND / seconds;
        let own = end.own.saturating_sub(self.own) as f64 / TICKS_PER_SECOND / seconds;
        let named: String = servers
            .iter()
            .map(|(name, cpu)| format!(", {name} {:.2}", cpu / seconds))
            .collect();
        let servers_cores: f64 = servers.iter().map(|(_, cpu)| cpu / seconds).sum();
        let foreign = (busy - own - servers_cores).max(0.0);
        let per_core: Vec<String> = end
            .per_core
            .iter()
            .zip(&self.per_core)
            .map(|(e, s)| {
                format!(
                    "{:.2}",
                    e.saturating_sub(*s) as f64 / TICKS_PER_SECOND / seconds
                )
            })
            .collect();
        format!(
            "host CPU over {seconds:.1} s: {busy:.2} of {} cores busy ({} by core), this process \
             {own:.2}{named}, foreign {foreign:.2}{}",
            cores(),
            per_core.join(" / "),
            if foreign > 0.1 {
                " (busy host: figures suspect)"
            } else {
                ""
            }
        )
    }
}

fn host_busy_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    stat.lines().next().map_or(0, busy_of)
}

/// The busy ticks of one `cpu…` line of /proc/stat.
fn busy_of(line: &str) -> u64 {
    // cpu user nice system idle iowait irq softirq steal …
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    [0, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|&i| fields.get(i))
        .sum()
}

fn own_ticks() -> u64 {
    process_ticks("self")
}

/// CPU ticks (user + system) of process `pid` ("self" for this one), from /proc.
pub fn process_ticks(pid: &str) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name may hold spaces: fields are counted after its closing ')'.
    let Some(rest) = stat.rsplit_once(')').map(|(_, rest)| rest) else {
        return 0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after ')'.
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(11) + field(12)
}

/// The host's cores, from /proc/stat: all of them, whatever this process's own affinity
/// (`--clients-apart` pins the tool to one).
pub fn cores() -> usize {
    per_core_busy_ticks().len().max(1)
}

/// Each core's busy ticks, in core order.
fn per_core_busy_ticks() -> Vec<u64> {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    stat.lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .map(busy_of)
        .collect()
}

/// Redis's own CPU seconds so far (user + system, from `INFO cpu`; 0 if it does not say).
pub async fn redis_cpu(redis: &mut impl redis::aio::ConnectionLike) -> f64 {
    let info: String = redis::cmd("INFO")
        .arg("cpu")
        .query_async(redis)
        .await
        .unwrap_or_default();
    info.lines()
        .filter(|l| l.starts_with("used_cpu_sys:") || l.starts_with("used_cpu_user:"))
        .filter_map(|l| {
            l.split_once(':')
                .and_then(|(_, v)| v.trim().parse::<f64>().ok())
        })
        .sum()
}

/// Raises this process's open-file limit (and so its servers', which inherit it) to what
/// `sockets` connections need: the soft limit up to the hard one, and the hard one too
/// when the process may (as root).
pub fn raise_file_limit(sockets: usize) {
    let wanted = (sockets as u64) * 2 + 4096;
    let Ok((soft, hard)) = rlimit::Resource::NOFILE.get() else {
        return;
    };
    if soft >= wanted {
        return;
    }
    if rlimit::Resource::NOFILE
        .set(wanted, wanted.max(hard))
        .is_err()
    {
        let _ = rlimit::Resource::NOFILE.set(hard, hard);
    }
    let (soft, _) = rlimit::Resource::NOFILE.get().unwrap_or((0, 0));
    if soft < sockets as u64 + 1024 {
        eprintln!(
            "warning: the open-file limit is {soft}, too low for {sockets} sockets (raise it with ulimit -n)"
        );
    }
}
