//! In-memory implementations of the board application's Redis side, for unit tests of
//! the board protocol without Redis: [`MemoryBus`] (a board's history as a list, events
//! "published" straight into the hub, hints kept) and [`MemoryPresence`] (one replica's
//! view only).

use crate::broker::RoomBus;
use crate::history::{self, Page};
use crate::hub::{Hub, RoomEvent};
use crate::presence::PresenceTracker;
use futures_util::future::BoxFuture;
use kanban_protocol::events::EventEnvelope;
use kanban_protocol::socket::{Hint, PresentUser};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// History and fan-out of one process.
pub struct MemoryBus {
    hub: Arc<Hub>,
    history: Mutex<HashMap<String, Vec<RoomEvent>>>,
    hints: Mutex<Vec<Hint>>,
    /// History reads fail (Redis down).
    pub unreadable: AtomicBool,
}

impl MemoryBus {
    pub fn new(hub: Arc<Hub>) -> Self {
        MemoryBus {
            hub,
            history: Mutex::new(HashMap::new()),
            hints: Mutex::new(Vec::new()),
            unreadable: AtomicBool::new(false),
        }
    }

    fn history(&self) -> MutexGuard<'_, HashMap<String, Vec<RoomEvent>>> {
        self.history
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// An event of `project` at `seq`, as the relay would write it.
    pub fn event(project: &str, seq: i64) -> RoomEvent {
        RoomEvent::from_envelope(EventEnvelope {
            project_id: project.into(),
            seq,
            event: "ticket:deleted".into(),
            data: serde_json::Value::String(format!("ticket-{seq}")),
            ts: 1_768_471_542_093,
            ts_us: None,
            mutation_id: None,
            traceparent: None,
        })
    }

    /// Appends `seq` to the board's history without broadcasting it (an event whose
    /// publish this replica missed).
    pub fn record(&self, project: &str, seq: i64) -> RoomEvent {
        let event = Self::event(project, seq);
        self.history()
            .entry(project.to_owned())
            .or_default()
            .push(event.clone());
        event
    }

    /// Appends `seq` to history and broadcasts it to the local room, as the relay's
    /// publish and the broker's fan-out do; returns how many sockets it was queued for.
    pub fn publish(&self, project: &str, seq: i64) -> usize {
        let event = self.record(project, seq);
        self.hub.broadcast(&event)
    }

    /// Drops the board's history below `seq` (trimmed or expired).
    pub fn trim_below(&self, project: &str, seq: i64) {
        if let Some(events) = self.history().get_mut(project) {
            events.retain(|e| e.seq >= seq);
        }
    }

    pub fn hints(&self) -> Vec<Hint> {
        self.hints
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl RoomBus for MemoryBus {
    fn sync<'a>(&'a self, _project: &'a str) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }

    fn history_page<'a>(
        &'a self,
        project: &'a Arc<str>,
        page: i64,
        _not_before: std::time::Instant,
    ) -> BoxFuture<'a, Result<Page, String>> {
        Box::pin(async move {
            if self.unreadable.load(Ordering::SeqCst) {
                return Err("history is unreadable".into());
            }
            let first = history::page_end(page - 1) + 1;
            let last = history::page_end(page);
            let events: Vec<RoomEvent> = self
                .history()
                .get(&**project)
                .map(|events| {
                    events
                        .iter()
                        .filter(|e| (first..=last).contains(&e.seq))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            Ok(Page::from(events))
        })
    }

    fn publish_hint<'a>(&'a self, hint: &'a Hint) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            self.hints
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(hint.clone());
            Ok(())
        })
    }
}

/// A board's users on this replica: user id → (display name, sockets).
type Users = BTreeMap<String, (String, usize)>;

/// One replica's presence: its users per board.
#[derive(Default)]
pub struct MemoryPresence {
    rooms: Mutex<HashMap<String, Users>>,
}

impl MemoryPresence {
    fn rooms(&self) -> MutexGuard<'_, HashMap<String, Users>> {
        self.rooms
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl PresenceTracker for MemoryPresence {
    fn add(&self, project: &str, user: &str, name: &str) {
        let mut rooms = self.rooms();
        let entry = rooms
            .entry(project.to_owned())
            .or_default()
            .entry(user.to_owned())
            .or_insert_with(|| (name.to_owned(), 0));
        entry.1 += 1;
    }

    fn remove(&self, project: &str, user: &str) {
        let mut rooms = self.rooms();
        if let Some(room) = rooms.get_mut(project) {
            if let Some(entry) = room.get_mut(user) {
                entry.1 -= 1;
                if entry.1 == 0 {
                    room.remove(user);
                }
            }
        }
    }

    fn users(&self, project: &str) -> Vec<PresentUser> {
        self.rooms()
            .get(project)
            .map(|room| {
                room.iter()
                    .map(|(id, (name, _))| PresentUser {
                        id: id.clone(),
                        name: name.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}
