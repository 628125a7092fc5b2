//! Local project rooms: which sessions on this replica are in which board's room, and the
//! broadcast that hands one encoded event to all of them.
//!
//! A broadcast takes the rooms' read lock once per event, not per delivery, and hands every
//! member a clone of the same encoded frame (reference-counted bytes: no copy, no
//! allocation per socket). A member that waits idle for the room's next event gets it
//! written straight to its WebSocket through its [`Lane`], without a wake-up. A member
//! whose queue is full is not waited for: it is flagged as a slow consumer and closes
//! itself, and resumes by seq when it reconnects.

use crate::lane::Lane;
use crate::locks;
use crate::metrics::GatewayMetrics;
use crate::protocol::socketio;
use crate::transport::{SessionId, Signals, ToSession};
use bytestring::ByteString;
use kanban_protocol::events::EventEnvelope;
use kanban_protocol::socket::RemovalReason;
use kanban_protocol::BoardEvent;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use tokio::sync::mpsc;

/// One board event, encoded once as a Socket.IO EVENT frame (`42["name",data,meta]`),
/// shared by every socket it is queued for: a delivery clones one `Arc` (one reference
/// count, not one per field), and a session's queue slot holds a pointer, not the event.
#[derive(Debug, Clone)]
pub struct RoomEvent(Arc<EventData>);

impl std::ops::Deref for RoomEvent {
    type Target = EventData;

    fn deref(&self) -> &EventData {
        &self.0
    }
}

/// What a [`RoomEvent`] carries.
#[derive(Debug)]
pub struct EventData {
    pub project: Arc<str>,
    pub seq: i64,
    /// Commit time, µs since the epoch (for the delivery latency histogram): the
    /// envelope's `tsUs`, or its `ts` in whole milliseconds when an older writer left it out.
    pub ts_us: i64,
    /// The trace context of the span that wrote the event (the parent of this replica's
    /// fan-out span); not sent to sockets.
    pub traceparent: Option<Arc<str>>,
    /// When this gateway got the event (decoded from Redis or read from history), on the
    /// monotonic clock: the start of the fan-out latency, precise below a millisecond
    /// where `ts` is not.
    pub received: std::time::Instant,
    /// Microseconds from the commit (`ts_us`) to `received`, on the wall clock: a
    /// delivery's latency from the commit is this plus `received.elapsed()`, one clock
    /// read per delivery instead of two.
    pub commit_to_receipt_us: i64,
    pub frame: ByteString,
    /// Sockets this event takes out of the room once it is delivered to them (a removed
    /// member, a role that may not read, a deleted board).
    pub revokes: Option<Revocation>,
}

impl RoomEvent {
    /// Encodes a published envelope as the frame sockets receive:
    /// `42["<event>", data, {projectId, seq, ts, mutationId?}]` (the `traceparent` stays
    /// on the gateway, for the fan-out's span).
    pub fn from_envelope(envelope: EventEnvelope) -> RoomEvent {
        let revokes = Revocation::of(&envelope.event, &envelope.data);
        let meta = socketio::arg(&envelope.meta());
        let frame = socketio::event_frame("/", &envelope.event, &[envelope.data, meta]);
        let ts_us = envelope.ts_us.unwrap_or(envelope.ts.saturating_mul(1000));
        RoomEvent(Arc::new(EventData {
            project: Arc::from(envelope.project_id.as_str()),
            seq: envelope.seq,
            ts_us,
            traceparent: envelope.traceparent.as_deref().map(Arc::from),
            received: std::time::Instant::now(),
            commit_to_receipt_us: chrono::Utc::now().timestamp_micros() - ts_us,
            frame: ByteString::from(frame),
            revokes,
        }))
    }
}

/// Who loses access to a board with an event, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revocation {
    /// Every socket of this user.
    User(Arc<str>, RemovalReason),
    /// Every socket in the room.
    Everyone(RemovalReason),
}

impl Revocation {
    /// The revocation an event carries, judged from its name and payload: a
    /// `member:removed`, a `member:added` whose role may not read, a `project:deleted`.
    pub fn of(event: &str, data: &serde_json::Value) -> Option<Revocation> {
        match BoardEvent::from_parts(event, data.clone()).ok()? {
            BoardEvent::MemberRemoved(member) => Some(Revocation::User(
                Arc::from(member.user_id.as_str()),
                RemovalReason::MemberRemoved,
            )),
            BoardEvent::MemberAdded(member) if member.role.is_some_and(|r| !r.can_read()) => {
                Some(Revocation::User(
                    Arc::from(member.user_id.as_str()),
                    RemovalReason::RoleRevoked,
                ))
            }
            BoardEvent::ProjectDeleted(_) => {
                Some(Revocation::Everyone(RemovalReason::ProjectDeleted))
            }
            _ => None,
        }
    }

    /// Why `user` loses the room, if this revocation concerns them.
    pub fn applies_to(&self, user: &str) -> Option<RemovalReason> {
        match self {
            Revocation::User(id, reason) if &**id == user => Some(*reason),
            Revocation::User(..) => None,
            Revocation::Everyone(reason) => Some(*reason),
        }
    }
}

/// A session's entry in a room.
#[derive(Clone)]
pub struct Member {
    pub id: SessionId,
    pub tx: mpsc::Sender<ToSession<RoomEvent>>,
    pub signals: Arc<Signals>,
    /// The way to write the room's next event straight to the socket while its session
    /// is idle (none: always through the queue).
    pub lane: Option<Arc<Lane>>,
}

/// A room's local members: a list that broadcasts walk, and each session's place in it,
/// so that a join or a leave costs O(1) instead of a scan of the room (quadratic over a
/// join storm).
struct Room {
    members: Vec<Member>,
    index: HashMap<SessionId, usize>,
    /// Highest seq broadcast to this room (used to catch up after a Redis reconnect).
    last_seq: AtomicI64,
}

impl Room {
    fn new(known_seq: i64) -> Self {
        Room {
            members: Vec::new(),
            index: HashMap::new(),
            last_seq: AtomicI64::new(known_seq),
        }
    }

    fn insert(&mut self, member: Member) {
        if let std::collections::hash_map::Entry::Vacant(slot) = self.index.entry(member.id) {
            slot.insert(self.members.len());
            self.members.push(member);
        }
    }

    fn remove(&mut self, id: SessionId) {
        let Some(at) = self.index.remove(&id) else {
            return;
        };
        self.members.swap_remove(at);
        if let Some(moved) = self.members.get(at) {
            self.index.insert(moved.id, at);
        }
    }
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

    fn read(&self) -> RwLockReadGuard<'_, HashMap<Arc<str>, Room>> {
        locks::read(&self.rooms, "hub rooms", &self.metrics.poisoned_locks_total)
    }

    fn write(&self) -> RwLockWriteGuard<'_, HashMap<Arc<str>, Room>> {
        locks::write(&self.rooms, "hub rooms", &self.metrics.poisoned_locks_total)
    }

    /// Adds `member` to the room (once); returns the local member count.
    pub fn join(&self, project: &str, member: Member, known_seq: i64) -> usize {
        let mut rooms = self.write();
        let created = !rooms.contains_key(project);
        let room = rooms
            .entry(Arc::from(project))
            .or_insert_with(|| Room::new(known_seq));
        room.last_seq.fetch_max(known_seq, Ordering::Relaxed);
        room.insert(member);
        if created {
            self.metrics.rooms.inc();
        }
        room.members.len()
    }

    /// Removes a session from a room; returns the remaining local count.
    pub fn leave(&self, project: &str, id: SessionId) -> usize {
        let mut rooms = self.write();
        let Some(room) = rooms.get_mut(project) else {
            return 0;
        };
        room.remove(id);
        let left = room.members.len();
        if left == 0 {
            rooms.remove(project);
            self.metrics.rooms.dec();
        }
        left
    }

    pub fn has_room(&self, project: &str) -> bool {
        self.read().contains_key(project)
    }

    pub fn local_count(&self, project: &str) -> usize {
        self.read().get(project).map_or(0, |r| r.members.len())
    }

    /// Every room with the highest seq it has seen.
    pub fn cursors(&self) -> Vec<(Arc<str>, i64)> {
        self.read()
            .iter()
            .map(|(k, r)| (Arc::clone(k), r.last_seq.load(Ordering::Relaxed)))
            .collect()
    }

    /// The newest seq the room has seen, if this replica has the room.
    pub fn cursor(&self, project: &str) -> Option<i64> {
        self.read()
            .get(project)
            .map(|room| room.last_seq.load(Ordering::Relaxed))
    }

    /// Queues an encoded frame outside the board's seq order (presence) for every local
    /// member of a room; returns how many got it.
    pub fn send_frame(&self, project: &str, frame: &ByteString) -> usize {
        let rooms = self.read();
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

    /// Hands `event` to every local member of its room (written through an idle
    /// member's lane, queued for the others); returns how many got it.
    ///
    /// Each call is one `gateway.fanout` span (a child of the event's `traceparent`) with
    /// the room's local size and the number of sockets that got the event: one span per
    /// event and replica, never one per socket.
    pub fn broadcast(&self, event: &RoomEvent) -> usize {
        self.broadcast_run(std::slice::from_ref(event))
    }

    /// Hands a run of one room's events, in seq order, to every local member: an idle
    /// member whose cursor is one behind the run's first event gets the whole run written
    /// together through its lane (one `writev`, not one per event); the others get each
    /// event queued. Returns the deliveries. One `gateway.fanout` span per event, as
    /// [`Hub::broadcast`].
    pub fn broadcast_run(&self, run: &[RoomEvent]) -> usize {
        let Some(first) = run.first() else {
            return 0;
        };
        let spans: Vec<tracing::Span> = run
            .iter()
            .map(|event| {
                let span = tracing::info_span!(
                    parent: None,
                    "gateway.fanout",
                    otel.kind = "consumer",
                    messaging.system = "redis",
                    project.id = %event.project,
                    event.seq = event.seq,
                    room.size = tracing::field::Empty,
                    room.delivered = tracing::field::Empty,
                );
                kanban_telemetry::propagation::set_parent(&span, event.traceparent.as_deref());
                span
            })
            .collect();
        let mut delivered = vec![0usize; run.len()];
        let size = spans[0].in_scope(|| self.queue_for_room(&first.project, run, &mut delivered));
        for (span, delivered) in spans.iter().zip(&delivered) {
            span.record("room.size", size);
            span.record("room.delivered", delivered);
        }
        delivered.iter().sum()
    }

    /// Hands `run` (events of `project`, in seq order) to the room's members, counting in
    /// `delivered` how many got each; returns the room's local member count.
    fn queue_for_room(&self, project: &str, run: &[RoomEvent], delivered: &mut [usize]) -> usize {
        let rooms = self.read();
        let (Some(room), Some(first), Some(last)) = (rooms.get(project), run.first(), run.last())
        else {
            return 0;
        };
        room.last_seq.fetch_max(last.seq, Ordering::Relaxed);
        let mut dropped = 0;
        let mut written = 0;
        let mut writes = 0;
        // Counted per broadcast, not per member: one flush of the depths, one add of the drops.
        let depths = self.metrics.outbound_queue_depth.local();
        let latencies = self.metrics.delivery_latency_seconds.local();
        let fanout = self.metrics.fanout_latency_seconds.local();
        // A revocation changes the socket's rooms: only its session may deliver it. A run
        // takes a lane whole, so its seqs must follow each other.
        let lanes = run.iter().all(|event| event.revokes.is_none())
            && run.windows(2).all(|pair| pair[1].seq == pair[0].seq + 1);
        let frames: Vec<&ByteString> = run.iter().map(|event| &event.frame).collect();
        for member in &room.members {
            let depth = member.tx.max_capacity() - member.tx.capacity();
            depths.observe(depth as f64);
            if lanes && depth == 0 {
                let lane = member.lane.as_deref();
                if lane.is_some_and(|lane| lane.write(project, first.seq, &frames)) {
                    let now = std::time::Instant::now();
                    for (event, count) in run.iter().zip(delivered.iter_mut()) {
                        let inside = now.saturating_duration_since(event.received).as_secs_f64();
                        fanout.observe(inside);
                        latencies
                            .observe((event.commit_to_receipt_us as f64 / 1e6 + inside).max(0.0));
                        *count += 1;
                    }
                    written += run.len() as u64;
                    writes += 1;
                    continue;
                }
            }
            for (at, event) in run.iter().enumerate() {
                match member.tx.try_send(ToSession::App(event.clone())) {
                    Ok(()) => delivered[at] += 1,
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        // The rest of the run would not fit either: the session closes as
                        // slow and resumes by seq.
                        dropped += (run.len() - at) as u64;
                        member.signals.mark_slow();
                        break;
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => break,
                }
            }
        }
        if dropped > 0 {
            self.metrics.deliveries_dropped_total.inc_by(dropped);
        }
        if written > 0 {
            self.metrics.deliveries_total.inc_by(written);
            self.metrics.lane_deliveries_total.inc_by(written);
            self.metrics.lane_writes_total.inc_by(writes);
        }
        room.members.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ID: &str = "6f1c2b9e-0d5e-4a57-9a3e-2d6c1f0b7a11";

    fn member(id: SessionId) -> (Member, mpsc::Receiver<ToSession<RoomEvent>>) {
        let (tx, rx) = mpsc::channel(8);
        let member = Member {
            id,
            tx,
            signals: Arc::new(Signals::default()),
            lane: None,
        };
        (member, rx)
    }

    /// A hub with one member (session 1) whose session waits idle in the room at cursor
    /// 0, its lane open on a real WebSocket.
    struct Idle {
        metrics: Arc<GatewayMetrics>,
        hub: Hub,
        writer: crate::transport::ws::WsWriter,
        client: tokio::net::TcpStream,
        lane: Arc<Lane>,
        rx: mpsc::Receiver<ToSession<RoomEvent>>,
        cursors: HashMap<Arc<str>, i64>,
    }

    impl Idle {
        async fn joined() -> Idle {
            let metrics = Arc::new(GatewayMetrics::new().unwrap());
            let hub = Hub::new(Arc::clone(&metrics));
            let (writer, client) = crate::transport::ws::testing::attached_writer().await;
            let lane = Arc::new(Lane::new(metrics.poisoned_locks_total.clone()));
            let (mut idle, rx) = member(1);
            idle.lane = Some(Arc::clone(&lane));
            hub.join(ID, idle, 0);
            let cursors = HashMap::from([(Arc::from(ID), 0)]);
            lane.open(Some(&writer), &cursors);
            Idle {
                metrics,
                hub,
                writer,
                client,
                lane,
                rx,
                cursors,
            }
        }
    }

    fn event(seq: i64) -> RoomEvent {
        crate::memory::MemoryBus::event(ID, seq)
    }

    fn received(rx: &mut mpsc::Receiver<ToSession<RoomEvent>>) -> Vec<i64> {
        let mut seqs = Vec::new();
        while let Ok(ToSession::App(event)) = rx.try_recv() {
            seqs.push(event.seq);
        }
        seqs
    }

    /// Joins and leaves in any order keep every remaining member reachable exactly once
    /// (the member list and its index agree after swap-removals).
    #[test]
    fn joins_and_leaves_keep_each_member_once() {
        let hub = Hub::new(Arc::new(GatewayMetrics::new().unwrap()));
        let mut receivers: Vec<_> = (1..=5)
            .map(|id| {
                let (m, rx) = member(id);
                hub.join(ID, m.clone(), 0);
                hub.join(ID, m, 0);
                rx
            })
            .collect();
        assert_eq!(
            hub.local_count(ID),
            5,
            "a second join of a session is a no-op"
        );
        assert_eq!(hub.leave(ID, 1), 4);
        assert_eq!(hub.leave(ID, 4), 3);
        assert_eq!(
            hub.leave(ID, 9),
            3,
            "leaving a room one is not in changes nothing"
        );
        assert_eq!(hub.broadcast(&event(1)), 3);
        let got: Vec<Vec<i64>> = receivers.iter_mut().map(received).collect();
        assert_eq!(got, vec![vec![], vec![1], vec![1], vec![], vec![1]]);
        for id in [2, 3, 5] {
            hub.leave(ID, id);
        }
        assert!(!hub.has_room(ID), "the last leave removes the room");
    }

    /// A panic while the rooms' lock was held does not turn the hub into an empty one:
    /// the room is still there, its members still get events, and the poisoning is counted.
    #[test]
    fn a_poisoned_rooms_lock_is_recovered_and_counted() {
        let metrics = Arc::new(GatewayMetrics::new().unwrap());
        let hub = Arc::new(Hub::new(Arc::clone(&metrics)));
        let (m, mut rx) = member(1);
        hub.join(ID, m, 0);
        let held = Arc::clone(&hub);
        let _ = std::thread::spawn(move || {
            let _guard = held.rooms.write();
            panic!("poisoning the rooms lock on purpose");
        })
        .join();
        assert!(hub.rooms.is_poisoned());
        assert_eq!(hub.broadcast(&event(1)), 1);
        assert_eq!(received(&mut rx), vec![1]);
        assert_eq!(metrics.poisoned_locks_total.get(), 1);
    }

    /// A run of a room's events reaches an idle member in one write through its lane and
    /// a member without one through its queue, in order; a run whose seqs do not follow
    /// each other is queued whole; a queue that fills midway drops the rest of the run
    /// and marks its member slow.
    #[tokio::test]
    async fn a_run_of_events_takes_an_idle_members_lane_in_one_write() {
        use crate::transport::ws::testing::read_texts;
        let Idle {
            metrics,
            hub,
            writer: _,
            mut client,
            lane,
            rx: mut idle_rx,
            mut cursors,
        } = Idle::joined().await;
        let (queued, mut queued_rx) = member(2);
        hub.join(ID, queued.clone(), 0);

        let run: Vec<RoomEvent> = (1..=3).map(event).collect();
        assert_eq!(hub.broadcast_run(&run), 6);
        let frames: Vec<String> = run.iter().map(|e| e.frame.to_string()).collect();
        assert_eq!(read_texts(&mut client, 3).await, frames);
        assert_eq!(received(&mut idle_rx), Vec::<i64>::new());
        assert_eq!(received(&mut queued_rx), vec![1, 2, 3]);
        assert_eq!(metrics.lane_writes_total.get(), 1, "one write for the run");
        assert_eq!(metrics.lane_deliveries_total.get(), 3);
        assert_eq!(hub.cursor(ID), Some(3));

        assert_eq!(hub.broadcast_run(&[event(5), event(7)]), 4);
        assert_eq!(
            received(&mut idle_rx),
            vec![5, 7],
            "a run with a gap is queued"
        );
        assert_eq!(received(&mut queued_rx), vec![5, 7]);

        for _ in 0..7 {
            queued.tx.try_send(ToSession::Frame("2".into())).unwrap();
        }
        let run: Vec<RoomEvent> = (8..=10).map(event).collect();
        hub.broadcast_run(&run);
        assert!(queued.signals.is_slow());
        assert_eq!(metrics.deliveries_dropped_total.get(), 2, "the run's rest");
        assert_eq!(metrics.lane_writes_total.get(), 1);
        lane.shut(&mut cursors);
        assert_eq!(cursors[ID], 3, "the session takes the cursor back");
    }

    /// An idle member gets the room's next event written straight to its WebSocket and
    /// nothing queued; one with something queued, one a gap ahead, and every member for
    /// an event that revokes access get it through their queue.
    #[tokio::test]
    async fn an_idle_members_next_event_takes_its_lane_and_the_rest_is_queued() {
        use crate::transport::ws::testing::read_texts;
        let Idle {
            metrics,
            hub,
            writer,
            mut client,
            lane,
            rx: mut idle_rx,
            mut cursors,
        } = Idle::joined().await;
        let (mut busy, mut busy_rx) = member(2);
        let busy_lane = Arc::new(Lane::new(metrics.poisoned_locks_total.clone()));
        busy.lane = Some(Arc::clone(&busy_lane));
        busy_lane.open(Some(&writer), &cursors);
        busy.tx.try_send(ToSession::Frame("2".into())).unwrap();
        hub.join(ID, busy, 0);

        assert_eq!(hub.broadcast(&event(1)), 2);
        assert_eq!(hub.broadcast(&event(3)), 2, "a gap");
        let removal = RoomEvent::from_envelope(EventEnvelope {
            project_id: ID.into(),
            seq: 2,
            event: "project:deleted".into(),
            data: json!(ID),
            ts: 1_768_471_542_093,
            ts_us: None,
            mutation_id: None,
            traceparent: None,
        });
        assert_eq!(hub.broadcast(&removal), 2);

        assert_eq!(
            read_texts(&mut client, 1).await,
            [event(1).frame.to_string()]
        );
        assert_eq!(
            received(&mut idle_rx),
            vec![3, 2],
            "the gap and the revocation"
        );
        assert!(matches!(busy_rx.try_recv(), Ok(ToSession::Frame(_))));
        assert_eq!(
            received(&mut busy_rx),
            vec![1, 3, 2],
            "queued behind its frame"
        );
        assert_eq!(metrics.lane_deliveries_total.get(), 1);
        assert_eq!(
            metrics.deliveries_total.get(),
            1,
            "queued ones count when written"
        );
        lane.shut(&mut cursors);
        assert_eq!(cursors[ID], 1, "the session takes the cursor back");
    }

    #[test]
    fn removals_deletions_and_unreadable_roles_revoke_access() {
        let removed =
            Revocation::of("member:removed", &json!({"projectId": ID, "userId": "bob"})).unwrap();
        assert_eq!(
            removed.applies_to("bob"),
            Some(RemovalReason::MemberRemoved)
        );
        assert_eq!(removed.applies_to("alice"), None);
        let deleted = Revocation::of("project:deleted", &json!(ID)).unwrap();
        assert_eq!(
            deleted.applies_to("alice"),
            Some(RemovalReason::ProjectDeleted)
        );
        for role in ["owner", "member", "viewer"] {
            let changed = json!({"projectId": ID, "userId": "bob", "role": role});
            assert_eq!(
                Revocation::of("member:added", &changed),
                None,
                "{role} may read"
            );
        }
        assert_eq!(Revocation::of("ticket:deleted", &json!(ID)), None);
        assert_eq!(Revocation::of("member:removed", &json!("garbage")), None);
    }
}

#[cfg(test)]
mod queue_slot {
    /// A session's queue allocates its slots in blocks of 32 when it is created; a slot
    /// holds a `ToSession`, so its size is memory every connection pays up front (it was
    /// 120 bytes, 3.8 KB a block, when `RoomEvent` was held by value).
    #[test]
    fn a_queue_slot_stays_small() {
        let slot = std::mem::size_of::<crate::transport::ToSession<super::RoomEvent>>();
        assert!(slot <= 40, "ToSession<RoomEvent> is {slot} bytes");
    }
}
