//! The cross-replica side of rooms: subscribes to a project's Redis channel while this
//! replica has local members in its room, turns published envelopes into encoded frames
//! for the hub, and reads the recent history stream for resumes and gap filling.
//!
//! The subscription lives on one RESP3 connection that reconnects by itself and
//! resubscribes, and carries nothing else: Redis applies its pub/sub output limit to
//! every reply on it, so history reads, hints and pings go over a second connection.
//! Which channels it holds is [`crate::subscriptions`]'s, one lock per board.
//!
//! Pushed messages reach the broker through a bounded queue ([`PUSH_QUEUE`]); one that
//! finds it full is dropped and counted, and starts a catch-up, as a reconnect does: every
//! room is sent its newest event from history, and each session then fills the gap it
//! sees from history itself, at its own socket's pace ([`crate::history`]). At most one
//! catch-up runs at a time; a request during one makes it run once more.
//!
//! The same code runs on one Redis server or on a Redis Cluster ([`kanban_redis`]). On a
//! cluster the channels are sharded (`SSUBSCRIBE`, `SPUBLISH`): each board's channels are
//! held on the node that owns the board's slot, and the client moves them when a node
//! fails over or a slot migrates. Two pushes keep that loss-free:
//! - each confirmation of a board's events channel (`subscribe` / `ssubscribe`, ours or a
//!   resubscription after a reconnect or a topology change) catches that room up from
//!   history, so what was published while the board was not held on any node is sent;
//! - a node that drops a channel by itself (`sunsubscribe` when the slot moved away) has
//!   the board subscribed again, if this replica still holds it ([`Subscriptions::restore`]).

use crate::config::RedisSettings;
use crate::history::{HistoryReader, Page};
use crate::hub::{Hub, RoomEvent};
use crate::metrics::GatewayMetrics;
use crate::protocol::socketio;
use crate::subscriptions::Subscriptions;
use bytestring::ByteString;
use futures_util::future::BoxFuture;
use kanban_protocol::events::{names, EventEnvelope};
use kanban_protocol::redis_keys::{self, Channel};
use kanban_protocol::socket::Hint;
use kanban_redis::{Connection, Reconnect};
use redis::{PushInfo, PushKind, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Notify};

/// The most pushed messages a broadcaster that is behind takes from the queue at once
/// (and so the longest run of a room's events written to a socket together).
const BATCH_LIMIT: usize = 64;

/// A message published on a channel (plain or sharded).
fn is_message(push: &PushInfo) -> bool {
    matches!(push.kind, PushKind::Message | PushKind::SMessage)
}

/// A published message's channel kind, board and payload, if it is one of ours.
fn parse<'a>(prefix: &str, data: &'a [Value]) -> Option<(Channel, &'a str, &'a [u8])> {
    let (Some(Value::BulkString(channel)), Some(Value::BulkString(payload))) =
        (data.first(), data.get(1))
    else {
        return None;
    };
    let (kind, project) = std::str::from_utf8(channel)
        .ok()
        .and_then(|c| redis_keys::parse_channel(prefix, c))?;
    Some((kind, project, payload))
}

/// What the broker does with one part of a batch of waiting messages.
enum Step {
    /// Broadcast a board's events, in the order they came.
    Run(Vec<RoomEvent>),
    /// Handle a message that is not a board event (a hint, a presence change).
    Message(Vec<Value>),
}

/// A batch of waiting messages as steps, in order: the events of each board between two
/// other messages become one run per board; every other message keeps its place after
/// the events that came before it. Undecodable events are logged and left out.
fn steps(prefix: &str, batch: Vec<Vec<Value>>) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut runs: Vec<Vec<RoomEvent>> = Vec::new();
    for data in batch {
        match parse(prefix, &data) {
            Some((Channel::Events, _, payload)) => {
                match serde_json::from_slice::<EventEnvelope>(payload) {
                    Ok(envelope) => {
                        let event = RoomEvent::from_envelope(envelope);
                        match runs.iter_mut().find(|run| run[0].project == event.project) {
                            Some(run) => run.push(event),
                            None => runs.push(vec![event]),
                        }
                    }
                    Err(error) => tracing::warn!(%error, "undecodable event on a project channel"),
                }
            }
            Some(_) => {
                steps.extend(runs.drain(..).map(Step::Run));
                steps.push(Step::Message(data));
            }
            None => {}
        }
    }
    steps.extend(runs.into_iter().map(Step::Run));
    steps
}

/// Pushed messages the subscription connection may queue for the broker before it drops
/// them (and starts a catch-up from history instead).
pub const PUSH_QUEUE: usize = 65_536;

pub struct Broker {
    subscriptions: Subscriptions,
    /// Every other command.
    commands: Connection,
    history: HistoryReader,
    prefix: String,
    hub: Arc<Hub>,
    metrics: Arc<GatewayMetrics>,
    /// Told about presence changes made on other replicas.
    presence: std::sync::OnceLock<Arc<crate::presence::Presence>>,
    /// A catch-up task is running.
    catching_up: AtomicBool,
    /// A catch-up was asked for since the running one started.
    catch_up_again: AtomicBool,
}

/// The receiving end of the push queue, and how an overflow is signalled.
pub struct Pushes {
    rx: mpsc::Receiver<PushInfo>,
    overflow: Arc<Overflow>,
}

/// Set when a pushed message was dropped because the queue was full.
#[derive(Default)]
struct Overflow {
    dropped: AtomicBool,
    notify: Notify,
}

/// The push sender handed to the subscription connection: never blocks the connection,
/// and turns a full queue into a dropped, counted message and an overflow signal.
fn push_queue(
    capacity: usize,
    dropped: prometheus::IntCounter,
) -> (
    impl Fn(PushInfo) -> Result<(), ()> + Send + Sync + 'static,
    Pushes,
) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let overflow = Arc::new(Overflow::default());
    let signal = Arc::clone(&overflow);
    let send = move |push: PushInfo| match tx.try_send(push) {
        Ok(()) => Ok(()),
        Err(mpsc::error::TrySendError::Full(_)) => {
            dropped.inc();
            signal.dropped.store(true, Ordering::SeqCst);
            signal.notify.notify_one();
            Ok(())
        }
        Err(mpsc::error::TrySendError::Closed(_)) => Err(()),
    };
    (send, Pushes { rx, overflow })
}

/// What the board application needs of the cross-replica side of its rooms: the
/// subscriptions that follow the hub, a board's history, and hints. [`Broker`] is the
/// Redis implementation; unit tests use an in-memory one ([`crate::memory::MemoryBus`]).
pub trait RoomBus: Send + Sync + 'static {
    /// Makes this replica's subscriptions to `project` match whether the hub has its room.
    fn sync<'a>(&'a self, project: &'a str) -> BoxFuture<'a, Result<(), String>>;

    /// One page of `project`'s history for a reader that receives the board's events live
    /// from `not_before` on ([`crate::history`]).
    fn history_page<'a>(
        &'a self,
        project: &'a Arc<str>,
        page: i64,
        not_before: std::time::Instant,
    ) -> BoxFuture<'a, Result<Page, String>>;

    /// Relays an ephemeral hint to every replica with members in the room.
    fn publish_hint<'a>(&'a self, hint: &'a Hint) -> BoxFuture<'a, Result<(), String>>;
}

impl RoomBus for Broker {
    fn sync<'a>(&'a self, project: &'a str) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move { Broker::sync(self, project).await.map_err(|e| e.to_string()) })
    }

    fn history_page<'a>(
        &'a self,
        project: &'a Arc<str>,
        page: i64,
        not_before: std::time::Instant,
    ) -> BoxFuture<'a, Result<Page, String>> {
        Box::pin(Broker::history_page(self, project, page, not_before))
    }

    fn publish_hint<'a>(&'a self, hint: &'a Hint) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            Broker::publish_hint(self, hint)
                .await
                .map_err(|e| e.to_string())
        })
    }
}

impl Broker {
    /// Connects lazily (the gateway starts while Redis is down) and returns the broker and
    /// the receiver of pushed messages for [`Broker::run`].
    pub fn connect(
        settings: &RedisSettings,
        hub: Arc<Hub>,
        metrics: Arc<GatewayMetrics>,
    ) -> Result<(Arc<Broker>, Pushes), redis::RedisError> {
        let prefix = settings.key_prefix.clone();
        let reconnect = Reconnect {
            retries: 6,
            max_delay: Duration::from_secs(2),
        };
        let (tx, pushes) = push_queue(PUSH_QUEUE, metrics.redis_pushes_dropped_total.clone());
        let commands = kanban_redis::connect(settings, reconnect)?;
        let conn = kanban_redis::connect_subscriber(settings, reconnect, tx)?;
        let history = HistoryReader::new(commands.clone(), prefix.clone(), Arc::clone(&metrics));
        let subscriptions = Subscriptions::new(conn, metrics.poisoned_locks_total.clone());
        let broker = Arc::new(Broker {
            subscriptions,
            commands,
            history,
            prefix,
            hub,
            metrics,
            presence: std::sync::OnceLock::new(),
            catching_up: AtomicBool::new(false),
            catch_up_again: AtomicBool::new(false),
        });
        Ok((broker, pushes))
    }

    /// The connection for commands (cheap to clone), for the shard probes.
    pub fn command_connection(&self) -> Connection {
        self.commands.clone()
    }

    /// The boards whose channels this replica holds.
    pub fn subscribed_projects(&self) -> Vec<String> {
        self.subscriptions.subscribed_projects()
    }

    pub fn set_presence(&self, presence: Arc<crate::presence::Presence>) {
        let _ = self.presence.set(presence);
    }

    /// Makes the subscriptions match the hub: a room's event and presence channels are
    /// subscribed while it has local members.
    pub async fn sync(&self, project: &str) -> Result<(), redis::RedisError> {
        let channels = self.channels(project);
        self.subscriptions
            .sync(project, &channels, || self.hub.has_room(project))
            .await
    }

    /// One page of `project`'s history ([`crate::history`]) for a reader that receives
    /// the board's events live from `not_before` on.
    pub async fn history_page(
        &self,
        project: &Arc<str>,
        page: i64,
        not_before: std::time::Instant,
    ) -> Result<Page, String> {
        self.history.page(project, page, not_before).await
    }

    /// The seq of the newest event in `project`'s history (`None`: the history is empty).
    pub async fn history_head(&self, project: &str) -> Result<Option<i64>, redis::RedisError> {
        Ok(self.newest(project).await?.map(|event| event.seq))
    }

    /// The last seq `project`'s room was sent live (`None`: no local room).
    pub fn room_cursor(&self, project: &str) -> Option<i64> {
        self.hub.cursor(project)
    }

    /// The room has not received events its board's history has held for seconds (seen by
    /// the shard probes): its subscription was lost without any push saying so. Subscribes
    /// the board again and catches the room up from history.
    pub fn revive_room(self: &Arc<Self>, project: Arc<str>) {
        self.metrics.redis_rooms_revived_total.inc();
        tracing::warn!(project.id = %project, "the room is behind its board's history; subscribing again and catching it up");
        self.restore(Arc::clone(&project));
        self.catch_up_room(project);
    }

    /// The newest event in `project`'s history.
    async fn newest(&self, project: &str) -> Result<Option<RoomEvent>, redis::RedisError> {
        let mut conn = self.commands.clone();
        let reply: redis::streams::StreamRangeReply = redis::cmd("XREVRANGE")
            .arg(redis_keys::history(&self.prefix, project))
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut conn)
            .await?;
        let newest = reply
            .ids
            .first()
            .and_then(|entry| entry.get::<String>("e"))
            .and_then(|raw| serde_json::from_str::<EventEnvelope>(&raw).ok());
        Ok(newest.map(RoomEvent::from_envelope))
    }

    /// Redis is reachable (for readiness).
    pub async fn ping(&self) -> bool {
        let mut conn = self.commands.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .is_ok()
    }

    /// Delivers pushed messages to the hub until the connection manager is dropped.
    pub async fn run(self: Arc<Self>, pushes: Pushes) {
        let Pushes { mut rx, overflow } = pushes;
        loop {
            let push = tokio::select! {
                push = rx.recv() => push,
                _ = overflow.notify.notified() => {
                    if overflow.dropped.swap(false, Ordering::SeqCst) {
                        tracing::warn!("the Redis push queue overflowed; catching rooms up from history");
                        self.request_catch_up();
                    }
                    continue;
                }
            };
            let Some(push) = push else { return };
            let push = if is_message(&push) && !rx.is_empty() {
                // The broadcaster is behind: this message and those waiting behind it go
                // out together, each room's events as one run, so that an idle socket
                // gets them in one write instead of one write each.
                let mut batch = vec![push.data];
                let mut next = None;
                while batch.len() < BATCH_LIMIT {
                    match rx.try_recv() {
                        Ok(push) if is_message(&push) => batch.push(push.data),
                        Ok(push) => {
                            next = Some(push);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                self.on_messages(batch);
                match next {
                    Some(push) => push,
                    None => continue,
                }
            } else {
                push
            };
            match push.kind {
                PushKind::Message | PushKind::SMessage => self.on_message(push.data),
                PushKind::Subscribe | PushKind::SSubscribe => {
                    if let Some(project) = self.events_channel_project(&push.data) {
                        self.catch_up_room(project);
                    }
                }
                PushKind::SUnsubscribe => {
                    if let Some(project) = self.events_channel_project(&push.data) {
                        self.restore(project);
                    }
                }
                PushKind::Disconnection => {
                    self.metrics.redis_reconnects_total.inc();
                    tracing::warn!("lost the Redis subscription connection; reconnecting");
                    self.request_catch_up();
                }
                _ => {}
            }
        }
    }

    /// Starts a catch-up, or makes the running one go once more: one task at most, however
    /// many disconnections or overflows ask for it.
    fn request_catch_up(self: &Arc<Self>) {
        self.catch_up_again.store(true, Ordering::SeqCst);
        if self.catching_up.swap(true, Ordering::SeqCst) {
            return;
        }
        let broker = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                broker.catch_up_again.store(false, Ordering::SeqCst);
                broker.catch_up().await;
                if broker.catch_up_again.load(Ordering::SeqCst) {
                    continue;
                }
                broker.catching_up.store(false, Ordering::SeqCst);
                // A request between the check and the store saw `catching_up` still set.
                if broker.catch_up_again.load(Ordering::SeqCst)
                    && !broker.catching_up.swap(true, Ordering::SeqCst)
                {
                    continue;
                }
                return;
            }
        });
    }

    /// Publishes an ephemeral hint to every gateway with members in the room.
    pub async fn publish_hint(&self, hint: &Hint) -> Result<(), redis::RedisError> {
        let mut conn = self.commands.clone();
        let _: i64 = redis::cmd(self.commands.topology().publish_command())
            .arg(redis_keys::hints_channel(&self.prefix, &hint.project_id))
            .arg(socketio::arg(hint).to_string())
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    /// The project of a subscription push about an events channel (its first datum).
    fn events_channel_project(&self, data: &[Value]) -> Option<Arc<str>> {
        let Some(Value::BulkString(channel)) = data.first() else {
            return None;
        };
        match redis_keys::parse_channel(&self.prefix, std::str::from_utf8(channel).ok()?)? {
            (Channel::Events, project) => Some(Arc::from(project)),
            _ => None,
        }
    }

    /// After a board's channels were (re)subscribed: sends its room the newest event in
    /// history if the room has not seen it, so that whatever was published while the board
    /// was held on no node is filled from history by each session.
    /// If history cannot be read then (a slot in mid-migration answers `TRYAGAIN`), the
    /// full catch-up runs, which retries until it can.
    fn catch_up_room(self: &Arc<Self>, project: Arc<str>) {
        let broker = Arc::clone(self);
        tokio::spawn(async move {
            if !broker.catch_up_now(&project).await {
                broker.request_catch_up();
            }
        });
    }

    /// The board's slot is served by another primary than before (seen by the shard
    /// probes): subscribes again there if the room still wants it, and catches the room up.
    pub fn resubscribe_board(self: &Arc<Self>, project: Arc<str>) {
        self.restore(project);
    }

    /// A node dropped the board's channels by itself (its slot moved to another node):
    /// subscribes again (on the slot's new owner) if the room still wants them; the
    /// confirmation catches the room up.
    fn restore(self: &Arc<Self>, project: Arc<str>) {
        let broker = Arc::clone(self);
        tokio::spawn(async move {
            let mut delay = Duration::from_millis(50);
            loop {
                match broker.resubscribe(&project).await {
                    Ok(restored) => {
                        if restored {
                            broker.metrics.redis_subscriptions_restored_total.inc();
                            tracing::info!(project.id = %project, "a Redis node dropped the board's channels; subscribed again");
                        }
                        return;
                    }
                    Err(error) => {
                        tracing::warn!(project.id = %project, %error, "subscribing again failed; retrying");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(2));
                    }
                }
            }
        });
    }

    fn channels(&self, project: &str) -> [String; 3] {
        [
            redis_keys::events_channel(&self.prefix, project),
            redis_keys::presence(&self.prefix, project),
            redis_keys::hints_channel(&self.prefix, project),
        ]
    }

    /// Messages that waited in the push queue, in the order they came: each board's
    /// events go to the hub as one run; anything else is handled in its place.
    fn on_messages(&self, batch: Vec<Vec<Value>>) {
        for step in steps(&self.prefix, batch) {
            match step {
                Step::Run(run) => {
                    self.hub.broadcast_run(&run);
                }
                Step::Message(data) => self.on_message(data),
            }
        }
    }

    fn on_message(&self, data: Vec<Value>) {
        let Some((kind, project, payload)) = parse(&self.prefix, &data) else {
            return;
        };
        match kind {
            Channel::Hints => match serde_json::from_slice::<Hint>(payload) {
                Ok(hint) => {
                    let frame =
                        socketio::event_frame("/", names::TICKET_HINT, &[socketio::arg(&hint)]);
                    self.hub.send_frame(project, &ByteString::from(frame));
                }
                Err(error) => tracing::debug!(%error, "undecodable hint"),
            },
            Channel::Presence => {
                if let Some(presence) = self.presence.get() {
                    presence.changed_elsewhere(project);
                }
            }
            Channel::Events => match serde_json::from_slice::<EventEnvelope>(payload) {
                Ok(envelope) => {
                    self.hub.broadcast(&RoomEvent::from_envelope(envelope));
                }
                Err(error) => tracing::warn!(%error, "undecodable event on a project channel"),
            },
        }
    }

    /// After a reconnect: for each room, subscribe its board again, then send the room the
    /// newest event in history if it has not seen it; its sessions see the seq jump and
    /// fill what they missed from history, each at its socket's pace.
    ///
    /// The client resubscribes by itself after a reconnect, but on a cluster it does so
    /// only once it has relearnt who owns each slot, and a node that died leaves the
    /// subscription connection's slot map pointing at it until a command for one of its
    /// slots fails. Subscribing again is such a command (and changes nothing where the
    /// subscription is held already): it finds the node that serves the board now, the
    /// promoted replica after a failover. Boards whose node does not answer yet are retried
    /// with backoff, without holding up the others. A second pass a second later catches
    /// what was published while a resubscription was under way (each confirmed
    /// resubscription also catches its room up).
    async fn catch_up(&self) {
        let mut pending: Vec<Arc<str>> = self.hub.cursors().into_iter().map(|(p, _)| p).collect();
        let mut delay = Duration::from_millis(100);
        while !pending.is_empty() {
            let mut unreachable = Vec::new();
            for project in pending {
                match self.resubscribe(&project).await {
                    Ok(true) if self.catch_up_now(&project).await => {}
                    Ok(true) => unreachable.push(project),
                    Ok(false) => {}
                    Err(error) => {
                        tracing::debug!(project.id = %project, %error, "the board's node does not answer yet");
                        unreachable.push(project);
                    }
                }
            }
            pending = unreachable;
            if !pending.is_empty() {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        for (project, _) in self.hub.cursors() {
            self.catch_up_now(&project).await;
        }
    }

    /// Sends the room the newest event in history if it has not seen it. Returns whether
    /// history could be read (or the room is gone).
    async fn catch_up_now(&self, project: &Arc<str>) -> bool {
        let Some(last_seq) = self.hub.cursor(project) else {
            return true;
        };
        match self.newest(project).await {
            Ok(Some(event)) if event.seq > last_seq => {
                self.hub.broadcast(&event);
                true
            }
            Ok(_) => true,
            Err(error) => {
                tracing::warn!(project.id = %project, %error, "catching the room up from history failed");
                false
            }
        }
    }

    /// Subscribes the board's channels again if its room still wants them: on a cluster
    /// the command goes to the node that now owns the board's slot (and teaches the
    /// client where that is). `Ok(false)`: the room is gone.
    async fn resubscribe(&self, project: &str) -> Result<bool, redis::RedisError> {
        self.subscriptions
            .restore(project, &self.channels(project), || {
                self.hub.has_room(project)
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(ts_us: Option<i64>) -> EventEnvelope {
        EventEnvelope {
            project_id: "p".into(),
            seq: 1,
            event: "ticket:deleted".into(),
            data: serde_json::json!("t"),
            ts: 1_768_471_542_093,
            ts_us,
            mutation_id: None,
            traceparent: None,
        }
    }

    fn push(n: i64) -> PushInfo {
        PushInfo {
            kind: PushKind::Message,
            data: vec![Value::Int(n)],
        }
    }

    /// A burst larger than the queue is not buffered without bound: what does not fit is
    /// dropped, counted and signalled (the broker then catches rooms up from history).
    #[tokio::test]
    async fn a_full_push_queue_drops_counts_and_signals_instead_of_growing() {
        let dropped = prometheus::IntCounter::new("dropped", "test").unwrap();
        let (send, mut pushes) = push_queue(2, dropped.clone());
        for n in 0..5 {
            assert!(
                send(push(n)).is_ok(),
                "the connection is never told to stop"
            );
        }
        assert_eq!(dropped.get(), 3);
        assert!(pushes.overflow.dropped.load(Ordering::SeqCst));
        let mut kept = Vec::new();
        while let Ok(push) = pushes.rx.try_recv() {
            kept.push(push.data);
        }
        assert_eq!(kept, vec![vec![Value::Int(0)], vec![Value::Int(1)]]);
        drop(pushes);
        assert!(
            send(push(9)).is_err(),
            "a closed queue ends the push stream"
        );
    }

    /// A batch of waiting messages: each board's events become one run in their order,
    /// a message that is not an event keeps its place after the events before it, and
    /// what is not ours or not decodable is left out.
    #[test]
    fn a_batch_becomes_one_run_per_board_with_other_messages_in_their_place() {
        let (p, q) = (
            "6f1c2b9e-0d5e-4a57-9a3e-2d6c1f0b7a11",
            "9a0d7c1e-5b2f-4e8a-8c3d-1f2e3d4c5b6a",
        );
        let message = |channel: String, payload: String| {
            vec![
                Value::BulkString(channel.into_bytes()),
                Value::BulkString(payload.into_bytes()),
            ]
        };
        let event = |project: &str, seq: i64| {
            let envelope = serde_json::json!({"projectId": project, "seq": seq, "event": "ticket:deleted", "data": "t", "ts": 1});
            message(
                redis_keys::events_channel("t", project),
                envelope.to_string(),
            )
        };
        let batch = vec![
            event(p, 1),
            event(q, 7),
            event(p, 2),
            message(redis_keys::events_channel("t", p), "not json".into()),
            message("other:channel".into(), "x".into()),
            message(redis_keys::presence("t", q), "replica".into()),
            event(p, 3),
            event(q, 8),
            event(q, 9),
        ];
        let got: Vec<String> = steps("t", batch)
            .into_iter()
            .map(|step| match step {
                Step::Run(run) => {
                    let seqs: Vec<String> = run.iter().map(|e| e.seq.to_string()).collect();
                    format!("{} {}", &run[0].project[..1], seqs.join(","))
                }
                Step::Message(_) => "message".to_owned(),
            })
            .collect();
        assert_eq!(got, ["6 1,2", "9 7", "message", "6 3", "9 8,9"]);
    }

    #[test]
    fn the_commit_time_is_taken_in_microseconds_and_sockets_get_ts_only() {
        let event = RoomEvent::from_envelope(envelope(Some(1_768_471_542_093_417)));
        assert_eq!(event.ts_us, 1_768_471_542_093_417);
        assert!(!event.frame.contains("tsUs"), "{}", &*event.frame);
        assert!(event.frame.contains("\"ts\":1768471542093"));
        // An envelope from an older writer: its whole milliseconds.
        assert_eq!(
            RoomEvent::from_envelope(envelope(None)).ts_us,
            1_768_471_542_093_000
        );
    }

    /// A delivery's latency from the commit is the commit → receipt time, read once per
    /// event on the wall clock, plus the time inside the gateway.
    #[test]
    fn the_commit_to_receipt_time_is_read_once_on_the_wall_clock() {
        let before = chrono::Utc::now().timestamp_micros();
        let committed = before - 5_000_000;
        let event = RoomEvent::from_envelope(envelope(Some(committed)));
        let after = chrono::Utc::now().timestamp_micros();
        assert!(
            (before - committed..=after - committed).contains(&event.commit_to_receipt_us),
            "{} not within [{}, {}]",
            event.commit_to_receipt_us,
            before - committed,
            after - committed
        );
    }
}
