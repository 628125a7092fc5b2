//! `idle`'s clients spread over worker processes of this tool (`kanban-loadtest
//! idle-clients`), for more sockets than one process may open: every client holds a
//! descriptor, and the open-file limit is per process. The run tells its workers each
//! stage on their standard input, one name per line; each worker reports its clients'
//! progress on its standard output as one line of five counts (opened, connected, joined,
//! burst received, failed) whenever they change.

use crate::idle_client::{client, Progress, Stage};
use std::io::{BufRead, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// The descriptors one process keeps for everything but its clients.
const RESERVE: u64 = 2048;

/// How many clients one process can hold under its open-file limit.
pub fn per_process() -> usize {
    let soft = rlimit::Resource::NOFILE
        .get()
        .map_or(1024, |(soft, _)| soft);
    soft.saturating_sub(RESERVE).max(1) as usize
}

/// One worker process and the thread that adds its reports to the run's progress.
pub struct Worker {
    child: Child,
    stdin: Option<ChildStdin>,
    reports: Option<std::thread::JoinHandle<()>>,
}

impl Worker {
    /// Starts a worker for clients `first..first + count` (client `i` uses
    /// `addresses[i % addresses.len()]` and `boards[i % boards.len()]`, as the run's own
    /// clients do).
    pub fn spawn(
        first: usize,
        count: usize,
        addresses: &[String],
        boards: &[String],
        burst: i64,
        progress: Arc<Progress>,
    ) -> Worker {
        let exe = std::env::current_exe().expect("own path");
        let mut child = Command::new(exe)
            .arg("idle-clients")
            .args(["--first", &first.to_string()])
            .args(["--count", &count.to_string()])
            .args(["--addresses", &addresses.join(",")])
            .args(["--boards", &boards.join(",")])
            .args(["--burst", &burst.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting an idle-clients worker");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");
        let reports = std::thread::spawn(move || {
            let mut last = [0usize; 5];
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let counts: Vec<usize> = line
                    .split_whitespace()
                    .filter_map(|n| n.parse().ok())
                    .collect();
                let Ok(counts) = <[usize; 5]>::try_from(counts) else {
                    continue;
                };
                for (i, counter) in counters(&progress).into_iter().enumerate() {
                    counter.fetch_add(counts[i].saturating_sub(last[i]), Ordering::SeqCst);
                }
                last = counts;
            }
        });
        Worker {
            child,
            stdin,
            reports: Some(reports),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Tells the worker that the run reached `stage`.
    pub fn advance(&mut self, stage: Stage) {
        if let Some(stdin) = self.stdin.as_mut() {
            let _ = writeln!(stdin, "{}", stage.name()).and_then(|()| stdin.flush());
        }
    }

    /// Waits for the worker to close its clients and exit (at most 60 s, then kills it).
    pub fn finish(mut self) {
        self.advance(Stage::Done);
        drop(self.stdin.take());
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if !matches!(self.child.try_wait(), Ok(Some(_))) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if let Some(reports) = self.reports.take() {
            let _ = reports.join();
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(Some(_))) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn counters(progress: &Progress) -> [&AtomicUsize; 5] {
    [
        &progress.opened,
        &progress.connected,
        &progress.joined,
        &progress.burst_received,
        &progress.failed,
    ]
}

/// The worker's side (`kanban-loadtest idle-clients`): runs its clients through the
/// stages its standard input names and reports their progress until they are done.
pub async fn serve(
    first: usize,
    count: usize,
    addresses: Vec<String>,
    boards: Vec<String>,
    burst: i64,
) {
    crate::host::raise_file_limit(count);
    assert!(
        !addresses.is_empty() && !boards.is_empty(),
        "idle-clients needs --addresses and --boards"
    );
    let (stage, watch_stage) = watch::channel(Stage::Open);
    let progress = Arc::new(Progress::default());
    let gate = Arc::new(tokio::sync::Semaphore::new(100));
    let mut tasks = Vec::with_capacity(count);
    for i in first..first + count {
        let address = addresses[i % addresses.len()].clone();
        let board = boards[i % boards.len()].clone();
        let (watch_stage, progress, gate) = (
            watch_stage.clone(),
            Arc::clone(&progress),
            Arc::clone(&gate),
        );
        tasks.push(tokio::spawn(async move {
            client(address, board, burst, watch_stage, &progress, gate).await;
        }));
    }
    // The run's stages, read on a thread of their own (standard input blocks); its end
    // (the run is gone) ends the clients too.
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if let Some(next) = Stage::parse(line.trim()) {
                stage.send_replace(next);
            }
        }
        stage.send_replace(Stage::Done);
    });
    let mut last = String::new();
    loop {
        let counts = counters(&progress).map(|c| c.load(Ordering::SeqCst));
        let line = format!(
            "{} {} {} {} {}",
            counts[0], counts[1], counts[2], counts[3], counts[4]
        );
        if line != last {
            println!("{line}");
            let _ = std::io::stdout().flush();
            last = line;
        }
        if tasks.iter().all(tokio::task::JoinHandle::is_finished) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
