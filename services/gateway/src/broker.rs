//! The cross-replica side of rooms: subscribes to a project's Redis channel while this
//! replica has local members in its room, turns published envelopes into encoded frames
//! for the hub, and reads the recent history stream for resumes and gap filling.
//!
//! The subscription lives on one RESP3 connection that reconnects by itself and
//! resubscribes, and carries nothing else: Redis applies its pub/sub output limit to
//! every reply on it, so history reads, hints and pings go over a second connection.
//! After a reconnect every room is sent its newest event from history; each session then
//! fills the gap it sees from history itself, at its own socket's pace
//! ([`crate::history`]).

use crate::history::{HistoryReader, Page};
use crate::hub::{Hub, RoomEvent};
use crate::metrics::GatewayMetrics;
use crate::protocol::socketio;
use bytestring::ByteString;
use kanban_protocol::events::{names, EventEnvelope};
use kanban_protocol::redis_keys::{self, Channel};
use kanban_protocol::socket::Hint;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{PushInfo, PushKind, Value};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Mutex};

pub struct Broker {
    /// The subscription connection: SUBSCRIBE and UNSUBSCRIBE only.
    conn: ConnectionManager,
    /// Every other command.
    commands: ConnectionManager,
    history: HistoryReader,
    prefix: String,
    hub: Arc<Hub>,
    metrics: Arc<GatewayMetrics>,
    /// Told about presence changes made on other replicas.
    presence: std::sync::OnceLock<Arc<crate::presence::Presence>>,
    /// Channels subscribed on the connection; changed only under this lock, after
    /// re-reading whether the hub still has the room, so joins and leaves may race freely.
    subscribed: Mutex<HashSet<String>>,
}

impl Broker {
    /// Connects lazily (the gateway starts while Redis is down) and returns the broker and
    /// the receiver of pushed messages for [`Broker::run`].
    pub fn connect(
        url: &str,
        prefix: String,
        response_timeout: Duration,
        hub: Arc<Hub>,
        metrics: Arc<GatewayMetrics>,
    ) -> Result<(Arc<Broker>, mpsc::UnboundedReceiver<PushInfo>), redis::RedisError> {
        let url = if url.contains("protocol=") {
            url.to_owned()
        } else if url.contains('?') {
            format!("{url}&protocol=resp3")
        } else {
            format!("{url}?protocol=resp3")
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let client = redis::Client::open(url)?;
        let commands = client.get_connection_manager_lazy(
            ConnectionManagerConfig::new()
                .set_response_timeout(Some(response_timeout))
                .set_connection_timeout(Some(response_timeout))
                .set_max_delay(Duration::from_secs(2)),
        )?;
        let config = ConnectionManagerConfig::new()
            .set_push_sender(tx)
            .set_automatic_resubscription()
            .set_response_timeout(Some(response_timeout))
            .set_connection_timeout(Some(response_timeout))
            .set_max_delay(Duration::from_secs(2));
        let conn = client.get_connection_manager_lazy(config)?;
        let history = HistoryReader::new(commands.clone(), prefix.clone(), Arc::clone(&metrics));
        let broker = Arc::new(Broker {
            conn,
            commands,
            history,
            prefix,
            hub,
            metrics,
            presence: std::sync::OnceLock::new(),
            subscribed: Mutex::new(HashSet::new()),
        });
        Ok((broker, rx))
    }

    pub fn set_presence(&self, presence: Arc<crate::presence::Presence>) {
        let _ = self.presence.set(presence);
    }

    /// Makes the subscriptions match the hub: a room's event and presence channels are
    /// subscribed while it has local members.
    pub async fn sync(&self, project: &str) -> Result<(), redis::RedisError> {
        let channels = [
            redis_keys::events_channel(&self.prefix, project),
            redis_keys::presence(&self.prefix, project),
            redis_keys::hints_channel(&self.prefix, project),
        ];
        let mut subscribed = self.subscribed.lock().await;
        let wanted = self.hub.has_room(project);
        let mut conn = self.conn.clone();
        if wanted && !subscribed.contains(&channels[0]) {
            conn.subscribe(&channels).await?;
            subscribed.insert(channels[0].clone());
        } else if !wanted && subscribed.contains(&channels[0]) {
            subscribed.remove(&channels[0]);
            conn.unsubscribe(&channels).await?;
        }
        Ok(())
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
    pub async fn run(self: Arc<Self>, mut pushes: mpsc::UnboundedReceiver<PushInfo>) {
        while let Some(push) = pushes.recv().await {
            match push.kind {
                PushKind::Message => self.on_message(push.data),
                PushKind::Disconnection => {
                    self.metrics.redis_reconnects_total.inc();
                    tracing::warn!("lost the Redis subscription connection; reconnecting");
                    let broker = Arc::clone(&self);
                    tokio::spawn(async move { broker.catch_up().await });
                }
                _ => {}
            }
        }
    }

    /// Publishes an ephemeral hint to every gateway with members in the room.
    pub async fn publish_hint(&self, hint: &Hint) -> Result<(), redis::RedisError> {
        let mut conn = self.commands.clone();
        let _: i64 = redis::cmd("PUBLISH")
            .arg(redis_keys::hints_channel(&self.prefix, &hint.project_id))
            .arg(socketio::arg(hint).to_string())
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    fn on_message(&self, data: Vec<Value>) {
        let (Some(Value::BulkString(channel)), Some(Value::BulkString(payload))) =
            (data.first(), data.get(1))
        else {
            return;
        };
        let parsed = std::str::from_utf8(channel)
            .ok()
            .and_then(|c| redis_keys::parse_channel(&self.prefix, c));
        let Some((kind, project)) = parsed else {
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

    /// After a reconnect: wait until the subscription connection answers, then send every
    /// room whose history moved on the newest event; its sessions see the seq jump and
    /// fill what they missed from history, each at its socket's pace. Runs twice, because
    /// resubscription completes at an unknown moment after the first successful command.
    async fn catch_up(&self) {
        let mut delay = Duration::from_millis(100);
        while !self.subscription_answers().await {
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(2));
        }
        for round in 0..2 {
            if round == 1 {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            for (project, last_seq) in self.hub.cursors() {
                match self.newest(&project).await {
                    Ok(Some(event)) if event.seq > last_seq => {
                        self.hub.broadcast(&event);
                    }
                    Ok(_) => {}
                    Err(error) => {
                        tracing::warn!(project.id = %project, %error, "catch-up after reconnect failed")
                    }
                }
            }
        }
    }

    async fn subscription_answers(&self) -> bool {
        let mut conn = self.conn.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .is_ok()
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
}
