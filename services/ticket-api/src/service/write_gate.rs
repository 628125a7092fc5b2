//! The per-board write gate: a few permits per board, taken before a write takes a pooled
//! connection, with a bounded queue and a bounded wait beyond which writes are shed.
//!
//! Writes to one board are serialised by its row lock anyway; without the gate, every
//! write waiting for that lock holds a pool connection, and one hot board drains the pool
//! for all the others. With it, at most `limits.writers_per_board` writes of a board hold
//! a connection (one on the row lock, the next ones ready to take it at its commit); the
//! others wait here, in FIFO order, holding nothing. A board's entry exists only while a
//! write holds or waits for one of its permits.

use crate::config::LimitsSettings;
use crate::error::ApiError;
use crate::metrics::ApiMetrics;
use prometheus::IntGauge;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

/// The gates of every board that a write holds or waits on.
pub struct WriteGate {
    boards: Arc<Boards>,
    /// Permits per board.
    writers: usize,
    /// Writes per board that may hold or wait for a permit (`writers` + the queue).
    capacity: usize,
    timeout: Duration,
    metrics: Arc<ApiMetrics>,
}

/// One board's gate: its permits, and how many writes hold or wait for one.
struct Entry {
    permits: Arc<Semaphore>,
    writes: usize,
}

/// The entries, and the gauge of how many there are.
struct Boards {
    entries: Mutex<HashMap<Uuid, Entry>>,
    count: IntGauge,
}

impl Boards {
    /// The map; nothing in it can be left half-changed by a panic, so a poisoned lock is
    /// taken over as it is.
    fn lock(&self) -> MutexGuard<'_, HashMap<Uuid, Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A write's place at its board's gate, from the moment it was let into the queue; its
/// drop gives the place back and removes the board's entry when it was the last.
struct Place {
    boards: Arc<Boards>,
    board: Uuid,
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut entries = self.boards.lock();
        if let Some(entry) = entries.get_mut(&self.board) {
            entry.writes = entry.writes.saturating_sub(1);
            if entry.writes == 0 {
                entries.remove(&self.board);
                self.boards.count.set(gauge(entries.len()));
            }
        }
    }
}

/// A write let into its board's queue, not yet holding a permit.
pub struct Queued {
    place: Place,
    permits: Arc<Semaphore>,
    timeout: Duration,
    metrics: Arc<ApiMetrics>,
}

/// A write's permit: while it lives, the write may take a connection and run. Dropping
/// it lets the next queued write of the board in.
pub struct Permit {
    _permit: OwnedSemaphorePermit,
    _place: Place,
}

/// Counts a write in `write_gate_waiting` while it lives (also when the request is
/// dropped while waiting).
struct Waiting(IntGauge);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl WriteGate {
    pub fn new(settings: &LimitsSettings, metrics: Arc<ApiMetrics>) -> Self {
        let writers = settings.writers_per_board.max(1);
        WriteGate {
            boards: Arc::new(Boards {
                entries: Mutex::new(HashMap::new()),
                count: metrics.write_gate_boards.clone(),
            }),
            writers,
            capacity: writers.saturating_add(settings.queued_writes_per_board),
            timeout: Duration::from_millis(settings.write_queue_timeout_ms),
            metrics,
        }
    }

    /// Lets a write to `board` into the board's queue, or refuses it at once with 429
    /// `RATE_LIMITED` when `writers_per_board + queued_writes_per_board` writes already
    /// hold or wait for its permits.
    pub fn join(&self, board: Uuid) -> Result<Queued, ApiError> {
        let mut entries = self.boards.lock();
        let entry = entries.entry(board).or_insert_with(|| Entry {
            permits: Arc::new(Semaphore::new(self.writers)),
            writes: 0,
        });
        if entry.writes >= self.capacity {
            drop(entries);
            self.metrics
                .writes_shed_total
                .with_label_values(&["queue_full"])
                .inc();
            return Err(ApiError::RateLimited(
                "too many writes are waiting for this board; retry later".into(),
            ));
        }
        entry.writes += 1;
        let permits = Arc::clone(&entry.permits);
        self.boards.count.set(gauge(entries.len()));
        drop(entries);
        Ok(Queued {
            place: Place {
                boards: Arc::clone(&self.boards),
                board,
            },
            permits,
            timeout: self.timeout,
            metrics: Arc::clone(&self.metrics),
        })
    }

    /// Boards that have an entry (tests: idle boards leave none behind).
    pub fn boards(&self) -> usize {
        self.boards.lock().len()
    }
}

impl Queued {
    /// The permit if one is free now (FIFO: not while others wait), else the write back.
    pub fn try_permit(self) -> Result<Permit, Queued> {
        match Arc::clone(&self.permits).try_acquire_owned() {
            Ok(permit) => Ok(Permit {
                _permit: permit,
                _place: self.place,
            }),
            Err(_) => Err(self),
        }
    }

    /// Waits for a permit, in arrival order; 503 `UNAVAILABLE` when none came within
    /// `limits.write_queue_timeout_ms`.
    pub async fn wait(self) -> Result<Permit, ApiError> {
        self.metrics.write_gate_waiting.inc();
        let waiting = Waiting(self.metrics.write_gate_waiting.clone());
        let acquired = tokio::time::timeout(self.timeout, self.permits.acquire_owned()).await;
        drop(waiting);
        match acquired {
            Ok(Ok(permit)) => Ok(Permit {
                _permit: permit,
                _place: self.place,
            }),
            // `Err(_)` inside is a closed semaphore, which the gate never closes.
            Err(_) | Ok(Err(_)) => {
                self.metrics
                    .writes_shed_total
                    .with_label_values(&["queue_timeout"])
                    .inc();
                Err(ApiError::Unavailable(format!(
                    "a write waited {} ms for its board's write gate",
                    self.timeout.as_millis()
                )))
            }
        }
    }
}

fn gauge(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(writers: usize, queued: usize, timeout_ms: u64) -> (WriteGate, Arc<ApiMetrics>) {
        let metrics = Arc::new(ApiMetrics::new().unwrap());
        let settings = LimitsSettings {
            writers_per_board: writers,
            queued_writes_per_board: queued,
            write_queue_timeout_ms: timeout_ms,
        };
        (WriteGate::new(&settings, Arc::clone(&metrics)), metrics)
    }

    fn shed(metrics: &ApiMetrics, reason: &str) -> u64 {
        metrics.writes_shed_total.with_label_values(&[reason]).get()
    }

    /// A permit, taken at once (the test fails if it would have to wait).
    fn permit(gate: &WriteGate, board: Uuid) -> Permit {
        match gate.join(board).unwrap().try_permit() {
            Ok(permit) => permit,
            Err(_) => panic!("no free permit"),
        }
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once_and_other_boards_are_not_affected() {
        let (gate, metrics) = gate(2, 1, 60_000);
        let hot = Uuid::new_v4();
        let _first = permit(&gate, hot);
        let _second = permit(&gate, hot);
        let queued = gate.join(hot).unwrap();
        assert!(queued.try_permit().is_err(), "both permits are taken");
        let _queued = gate.join(hot).unwrap();

        let refused = gate.join(hot).err().unwrap();

        assert!(matches!(refused, ApiError::RateLimited(_)), "{refused:?}");
        assert_eq!(shed(&metrics, "queue_full"), 1);
        let _other = permit(&gate, Uuid::new_v4());
        assert_eq!(gate.boards(), 2);
    }

    #[tokio::test]
    async fn a_waiting_write_gets_the_permit_released_before_it() {
        let (gate, metrics) = gate(1, 1, 60_000);
        let board = Uuid::new_v4();
        let first = permit(&gate, board);
        let Err(queued) = gate.join(board).unwrap().try_permit() else {
            panic!("the permit is taken");
        };
        let waiter = tokio::spawn(queued.wait());
        while metrics.write_gate_waiting.get() == 0 {
            tokio::task::yield_now().await;
        }

        drop(first);

        let second = waiter.await.unwrap().unwrap();
        assert_eq!(metrics.write_gate_waiting.get(), 0);
        drop(second);
        assert_eq!(gate.boards(), 0, "the idle board's entry is removed");
        assert_eq!(metrics.write_gate_boards.get(), 0);
    }

    #[tokio::test]
    async fn a_write_that_waits_past_the_timeout_is_shed_with_503() {
        let (gate, metrics) = gate(1, 4, 50);
        let board = Uuid::new_v4();
        let _held = permit(&gate, board);
        let Err(queued) = gate.join(board).unwrap().try_permit() else {
            panic!("the permit is taken");
        };

        let refused = queued.wait().await.err().unwrap();

        assert!(matches!(refused, ApiError::Unavailable(_)), "{refused:?}");
        assert_eq!(shed(&metrics, "queue_timeout"), 1);
        assert_eq!(metrics.write_gate_waiting.get(), 0);
        assert_eq!(gate.boards(), 1, "only the holder's place is left");
    }

    #[tokio::test]
    async fn a_write_dropped_while_waiting_gives_its_place_back() {
        let (gate, metrics) = gate(1, 1, 60_000);
        let board = Uuid::new_v4();
        let held = permit(&gate, board);
        let Err(queued) = gate.join(board).unwrap().try_permit() else {
            panic!("the permit is taken");
        };
        assert!(gate.join(board).is_err(), "the queue of one is full");
        let waiter = tokio::spawn(queued.wait());
        while metrics.write_gate_waiting.get() == 0 {
            tokio::task::yield_now().await;
        }

        waiter.abort();
        let _ = waiter.await;

        assert_eq!(metrics.write_gate_waiting.get(), 0);
        let next = gate.join(board);
        assert!(next.is_ok(), "the place in the queue is free again");
        drop((next, held));
        assert_eq!(gate.boards(), 0);
        assert_eq!(metrics.write_gate_boards.get(), 0);
    }
}
