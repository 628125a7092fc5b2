//! Local project rooms: which sessions on this replica are in which board's room, and the
//! broadcast that hands one encoded event to all of them.
//!
//! A broadcast takes the rooms' read lock once per event, not per delivery, and hands every
//! member a clone of the same encoded frame (reference-counted bytes: no copy, no
//! allocation per socket). A member whose queue is full is not waited for: it is flagged
//! as a slow consumer and closes itself, and resumes by seq when it reconnects.

use crate::metrics::GatewayMetrics;
use crate::session::ToSession;
use bytestring::ByteString;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use tokio::sync::{mpsc, Notify};

pub type SessionId = u64;

/// One board event, encoded once as a Socket.IO EVENT frame (`42["name",data,meta]`).
#[derive(Debug, Clone)]
pub struct RoomEvent {
    pub project: Arc<str>,
    pub seq: i64,
    /// Commit time, ms since the epoch (for the delivery latency histogram).
    pub ts: i64,
    /// When this gateway got the event (decoded from Redis or read from history), on the
    /// monotonic clock: the start of the fan-out latency, precise below a millisecond
    /// where `ts` is not.
    pub received: std::time::Instant,
    pub frame: ByteString,
}

/// Out-of-band signals to a session that must not wait behind its full queue.
#[derive(Debug, Default)]
pub struct Signals {
    slow: AtomicBool,
    pub notify: Notify,
}

impl Signals {
    pub fn mark_slow(&self) {
        if !self.slow.swap(true, Ordering::SeqCst) {
            self.notify.notify_one();
        }
    }

    pub fn is_slow(&self) -> bool {
        self.slow.load(Ordering::SeqCst)
    }
}

/// A session's entry in a room.
#[derive(Clone)]
pub struct Member {
    pub id: SessionId,
    pub tx: mpsc::Sender<ToSession>,
    pub signals: Arc<Signals>,
}

struct Room {
    members: Vec<Member>,
    /// Highest seq broadcast to this room (used to catch up after a Redis reconnect).
    last_seq: AtomicI64,
}

pub struct Hub {
    rooms: RwLock<HashMap<Arc<str>, Room>>,
    metrics: Arc<GatewayMetrics>,
}

impl Hub {
    pub fn new(metrics: Arc<GatewayMetrics>) -> Self {
        Hub {
            rooms: RwLock::new(HashMap::new()),
            metrics,
        }
    }

    /// Adds `member` to the room (once); returns the local member count.
    pub fn join(&self, project: &str, member: Member, known_seq: i64) -> usize {
        let Ok(mut rooms) = self.rooms.write() else {
            return 0;
        };
        let created = !rooms.contains_key(project);
        let room = rooms.entry(Arc::from(project)).or_insert_with(|| Room {
            members: Vec::new(),
            last_seq: AtomicI64::new(known_seq),
        });
        room.last_seq.fetch_max(known_seq, Ordering::Relaxed);
        if !room.members.iter().any(|m| m.id == member.id) {
            room.members.push(member);
        }
        if created {
            self.metrics.rooms.inc();
        }
        room.members.len()
    }

    /// Removes a session from a room; returns the remaining local count.
    pub fn leave(&self, project: &str, id: SessionId) -> usize {
        let Ok(mut rooms) = self.rooms.write() else {
            return 0;
        };
        let Some(room) = rooms.get_mut(project) else {
            return 0;
        };
        room.members.retain(|m| m.id != id);
        let left = room.members.len();
        if left == 0 {
            rooms.remove(project);
            self.metrics.rooms.dec();
        }
        left
    }

    pub fn has_room(&self, project: &str) -> bool {
        self.rooms
            .read()
            .map(|rooms| rooms.contains_key(project))
            .unwrap_or(false)
    }

    pub fn local_count(&self, project: &str) -> usize {
        self.rooms
            .read()
            .ok()
            .and_then(|rooms| rooms.get(project).map(|r| r.members.len()))
            .unwrap_or(0)
    }

    /// Every room with the highest seq it has seen.
    pub fn cursors(&self) -> Vec<(Arc<str>, i64)> {
        self.rooms
            .read()
            .map(|rooms| {
                rooms
                    .iter()
                    .map(|(k, r)| (Arc::clone(k), r.last_seq.load(Ordering::Relaxed)))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Queues an encoded frame outside the board's seq order (presence) for every local
    /// member of a room; returns how many got it.
    pub fn send_frame(&self, project: &str, frame: &ByteString) -> usize {
        let Ok(rooms) = self.rooms.read() else {
            return 0;
        };
        let Some(room) = rooms.get(project) else {
            return 0;
        };
        let mut sent = 0;
        for member in &room.members {
            match member.tx.try_send(ToSession::Frame(frame.clone())) {
                Ok(()) => sent += 1,
                Err(mpsc::error::TrySendError::Full(_)) => member.signals.mark_slow(),
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
        sent
    }

    /// Queues `event` for every local member of its room; returns how many got it.
    pub fn broadcast(&self, event: &RoomEvent) -> usize {
        let Ok(rooms) = self.rooms.read() else {
            return 0;
        };
        let Some(room) = rooms.get(&*event.project) else {
            return 0;
        };
        room.last_seq.fetch_max(event.seq, Ordering::Relaxed);
        let mut delivered = 0;
        for member in &room.members {
            let depth = member.tx.max_capacity() - member.tx.capacity();
            self.metrics.outbound_queue_depth.observe(depth as f64);
            match member.tx.try_send(ToSession::Room(event.clone())) {
                Ok(()) => delivered += 1,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    self.metrics.deliveries_dropped_total.inc();
                    member.signals.mark_slow();
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
        delivered
    }
}
