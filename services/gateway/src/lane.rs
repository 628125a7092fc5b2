//! A socket's direct lane: lets a broadcast write a room event straight to a WebSocket
//! session that waits with nothing queued, instead of queueing it and waking the session.
//!
//! A delivery through the session's queue costs a task wake-up (on another thread, for
//! the broadcasts that come from Redis), a poll of the session and a pass through its
//! queue, for one `writev`. Most deliveries need none of that: the session is idle, the
//! event is the next one of the room, and the socket takes it at once. The lane lets the
//! hub do exactly that write, under a lock the session takes whenever it wakes:
//!
//! - **Ownership of the cursors.** While the session runs, its rooms' cursors are its
//!   own and the lane is shut. Just before it waits with an empty queue, it copies its
//!   cursors into the lane and opens it ([`Lane::open`]); the first thing it does when it
//!   wakes, for any reason, is shut the lane and take back the cursors the hub advanced
//!   ([`Lane::shut`]). Both happen under the lane's lock, so the hub and the session
//!   never write to the socket or move a cursor at the same time.
//! - **What takes the lane.** Only an event whose seq is the room's cursor + 1 (or a run
//!   of the room's events that starts there, with consecutive seqs, written together in
//!   one `writev`), that takes nobody out of the room, for a session whose queue is empty
//!   (checked by the hub) and whose WebSocket outbox has room. Everything else (a gap, a duplicate, a
//!   revocation, a polling session, a socket that does not keep up) goes through the
//!   queue as before, where the session handles it with its full rules.
//! - **Order.** A lane write happens only while nothing is queued and the cursor is one
//!   behind, so it can neither overtake a queued event of its room nor repeat one.

use crate::locks;
use crate::transport::ws::WsWriter;
use prometheus::IntCounter;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// One socket's lane (shared by the socket and every room's entry for it in the hub).
pub struct Lane {
    state: Mutex<LaneState>,
    poisoned: IntCounter,
}

#[derive(Default)]
struct LaneState {
    /// The session waits with an empty queue: the hub may write to it.
    open: bool,
    /// The session's WebSocket (none for a long-polling session, which never opens it).
    writer: Option<WsWriter>,
    /// The socket's rooms and their cursors while the lane is open.
    cursors: Vec<(Arc<str>, i64)>,
    /// A cursor moved while the lane was open.
    advanced: bool,
}

impl Lane {
    pub fn new(poisoned: IntCounter) -> Lane {
        Lane {
            state: Mutex::new(LaneState::default()),
            poisoned,
        }
    }

    fn state(&self) -> MutexGuard<'_, LaneState> {
        locks::lock(&self.state, "socket lane", &self.poisoned)
    }

    /// The session is about to wait with nothing queued: the hub may write `cursors`'
    /// next events to `writer` until [`Lane::shut`]. A session without a WebSocket
    /// leaves the lane shut.
    pub fn open(&self, writer: Option<&WsWriter>, cursors: &HashMap<Arc<str>, i64>) {
        let Some(writer) = writer else {
            return;
        };
        let mut state = self.state();
        if state.writer.is_none() {
            state.writer = Some(writer.clone());
        }
        let same_rooms = state.cursors.len() == cursors.len()
            && state.cursors.iter_mut().all(|(project, cursor)| {
                cursors
                    .get(project)
                    .map(|latest| *cursor = *latest)
                    .is_some()
            });
        if !same_rooms {
            state.cursors = cursors
                .iter()
                .map(|(project, cursor)| (Arc::clone(project), *cursor))
                .collect();
        }
        state.open = true;
    }

    /// The session woke: shuts the lane and moves `cursors` up to what the hub wrote
    /// while it was open.
    pub fn shut(&self, cursors: &mut HashMap<Arc<str>, i64>) {
        let mut state = self.state();
        if !state.open {
            return;
        }
        state.open = false;
        if !std::mem::take(&mut state.advanced) {
            return;
        }
        for (project, written) in &state.cursors {
            if let Some(cursor) = cursors.get_mut(project) {
                *cursor = (*cursor).max(*written);
            }
        }
    }

    /// Writes a run of `project`'s events, `frames` with seqs `first`, `first + 1`, …, to
    /// the socket together if the lane is open, `first` is the room's next event and the
    /// outbox has room; true when they were written (the caller then does not queue
    /// them). All or none.
    pub fn write(&self, project: &str, first: i64, frames: &[&bytestring::ByteString]) -> bool {
        let mut state = self.state();
        let state = &mut *state;
        if !state.open || frames.is_empty() {
            return false;
        }
        let Some(writer) = &state.writer else {
            return false;
        };
        let Some((_, cursor)) = state
            .cursors
            .iter_mut()
            .find(|(room, _)| &**room == project)
        else {
            return false;
        };
        if *cursor + 1 != first || !matches!(writer.try_texts(frames), Ok(true)) {
            return false;
        }
        *cursor = first + frames.len() as i64 - 1;
        state.advanced = true;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::ws::testing::attached_writer;
    use bytestring::ByteString;

    const P: &str = "6f1c2b9e-0d5e-4a57-9a3e-2d6c1f0b7a11";
    const Q: &str = "9a0d7c1e-5b2f-4e8a-8c3d-1f2e3d4c5b6a";

    fn lane() -> Lane {
        Lane::new(IntCounter::new("poisoned", "poisoned").unwrap())
    }

    fn cursors(rooms: &[(&str, i64)]) -> HashMap<Arc<str>, i64> {
        rooms.iter().map(|(p, c)| (Arc::from(*p), *c)).collect()
    }

    fn frame(seq: i64) -> ByteString {
        ByteString::from(format!("42[\"ticket:moved\",{{\"seq\":{seq}}}]"))
    }

    #[tokio::test]
    async fn an_open_lane_takes_only_each_rooms_next_event_and_hands_the_cursors_back() {
        let (writer, mut client) = attached_writer().await;
        let lane = lane();
        let mut mine = cursors(&[(P, 4), (Q, 10)]);
        assert!(!lane.write(P, 5, &[&frame(5)]), "a shut lane takes nothing");
        lane.open(Some(&writer), &mine);
        assert!(lane.write(P, 5, &[&frame(5)]));
        assert!(lane.write(P, 6, &[&frame(6)]));
        assert!(
            !lane.write(P, 6, &[&frame(6)]),
            "a duplicate is not written"
        );
        assert!(
            !lane.write(P, 8, &[&frame(8)]),
            "a gap is left to the session"
        );
        assert!(lane.write(Q, 11, &[&frame(11)]));
        let other = "0b0b0b0b-0000-4000-8000-000000000000";
        assert!(
            !lane.write(other, 1, &[&frame(1)]),
            "not a room of the socket"
        );
        lane.shut(&mut mine);
        assert_eq!(mine, cursors(&[(P, 6), (Q, 11)]));
        assert!(!lane.write(P, 7, &[&frame(7)]), "shut again");
        let got = crate::transport::ws::testing::read_texts(&mut client, 3).await;
        assert_eq!(got, [frame(5), frame(6), frame(11)].map(|f| f.to_string()));
    }

    #[tokio::test]
    async fn opening_follows_the_sessions_rooms_and_a_polling_session_stays_shut() {
        let (writer, _client) = attached_writer().await;
        let lane = lane();
        let mut mine = cursors(&[(P, 1)]);
        lane.open(None, &mine);
        assert!(!lane.write(P, 2, &[&frame(2)]), "no WebSocket, no lane");
        lane.open(Some(&writer), &mine);
        lane.shut(&mut mine);
        // The session moved on while it ran, and joined another room.
        mine.insert(Arc::from(P), 3);
        mine.insert(Arc::from(Q), 7);
        lane.open(Some(&writer), &mine);
        assert!(
            !lane.write(P, 2, &[&frame(2)]),
            "the lane knows the cursor moved"
        );
        assert!(lane.write(P, 4, &[&frame(4)]));
        assert!(lane.write(Q, 8, &[&frame(8)]));
        lane.shut(&mut mine);
        mine.remove(P);
        lane.open(Some(&writer), &mine);
        assert!(
            !lane.write(P, 5, &[&frame(5)]),
            "a room left is not written to"
        );
        lane.shut(&mut mine);
        assert_eq!(mine, cursors(&[(Q, 8)]));
    }
}
