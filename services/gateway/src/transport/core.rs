//! The transport's part of one session: its writer, queue, heartbeat and drain
//! deadlines, rate limit, and how it writes to and finally closes the connection.

use super::cause::Cause;
use super::engine::Engine;
use super::queue::{SessionId, Signals, ToSession};
use super::tcp;
use super::writer::Writer;
use super::ws::{Incoming, WsReader, WsWriter};
use crate::protocol::socketio;
use bytestring::ByteString;
use rand::Rng;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// The transport's part of a session: everything but the application, so that the
/// application can be handed the core (as [`Io`]) while it is itself borrowed.
pub struct Core<M> {
    pub(super) id: SessionId,
    pub(super) sid: String,
    pub(super) engine: Arc<Engine<M>>,
    pub(super) writer: Writer,
    pub(super) ws_stream: Option<WsReader>,
    pub(super) rx: mpsc::Receiver<ToSession<M>>,
    /// A sender into this session's own queue (for rooms and spawned command tasks).
    pub(super) tx: mpsc::Sender<ToSession<M>>,
    pub(super) signals: Arc<Signals>,
    pub(super) next_ping: Instant,
    pub(super) pong_deadline: Option<Instant>,
    pub(super) connect_deadline: Option<Instant>,
    pub(super) drain_at: Option<Instant>,
    /// Socket.IO namespaces connected on this session, with their socket ids.
    pub(super) namespaces: Vec<(String, String)>,
    pub(super) bucket: TokenBucket,
    /// When the session was created (for the duration in its closing log line).
    pub(super) opened: Instant,
    /// This session's count in `sockets{transport}`, moved when the session upgrades.
    pub(super) transport: Option<TransportCount>,
}

/// One count in a `sockets{transport}` gauge, held while the session is on that transport
/// and given back however the session ends.
pub(super) struct TransportCount {
    pub(super) name: &'static str,
    pub(super) gauge: prometheus::IntGauge,
}

impl TransportCount {
    pub(super) fn new<M>(engine: &Engine<M>, name: &'static str) -> Self {
        let gauge = engine.metrics.sockets.with_label_values(&[name]);
        gauge.inc();
        TransportCount { name, gauge }
    }
}

impl Drop for TransportCount {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

/// A per-socket token bucket for client events.
pub(super) struct TokenBucket {
    pub(super) tokens: f64,
    pub(super) rate: f64,
    pub(super) burst: f64,
    pub(super) at: Instant,
}

impl TokenBucket {
    pub(super) fn take(&mut self) -> bool {
        let now = Instant::now();
        self.tokens =
            (self.tokens + now.duration_since(self.at).as_secs_f64() * self.rate).min(self.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Decrements the connection gauge however the session task ends.
pub(super) struct Live<M>(pub(super) Arc<Engine<M>>);

impl<M> Drop for Live<M> {
    fn drop(&mut self) {
        self.0.metrics.connections.dec();
        self.0.release();
    }
}

impl<M: Send + 'static> Core<M> {
    /// The transport's part of a new session, with its queue.
    pub(super) fn new(
        engine: Arc<Engine<M>>,
        writer: Writer,
        ws_stream: Option<WsReader>,
    ) -> Core<M> {
        let (tx, rx) = mpsc::channel(engine.settings.limits.outbound_queue.max(1));
        let settings = &engine.settings;
        let now = Instant::now();
        Core {
            id: engine.next_session_id(),
            sid: engine.new_sid(),
            writer,
            ws_stream,
            rx,
            tx,
            signals: Arc::new(Signals::default()),
            next_ping: now + Duration::from_millis(settings.engine.ping_interval_ms),
            pong_deadline: None,
            connect_deadline: Some(now + Duration::from_millis(settings.engine.connect_timeout_ms)),
            drain_at: None,
            namespaces: Vec::new(),
            bucket: TokenBucket {
                tokens: settings.limits.event_burst,
                rate: settings.limits.events_per_second,
                burst: settings.limits.event_burst,
                at: now,
            },
            opened: now,
            transport: None,
            engine,
        }
    }
}

impl<M: Send + 'static> Core<M> {
    pub(super) fn schedule_drain(&mut self) {
        if self.drain_at.is_none() {
            let window = self.engine.settings.gateway.drain_window_ms.max(1);
            let delay = rand::rng().random_range(0..window);
            self.drain_at = Some(Instant::now() + Duration::from_millis(delay));
        }
    }

    pub(super) async fn on_ping_timer(&mut self) -> Result<(), Cause> {
        if self.pong_deadline.is_some() {
            return Err(Cause::PingTimeout);
        }
        self.send_raw(ByteString::from_static("2")).await?;
        self.pong_deadline = Some(
            Instant::now() + Duration::from_millis(self.engine.settings.engine.ping_timeout_ms),
        );
        Ok(())
    }

    pub(super) async fn upgrade(&mut self, ws: WsWriter) -> Result<(), Cause> {
        self.transport = Some(TransportCount::new(&self.engine, "websocket"));
        tracing::debug!(session = %self.sid, "session upgraded to websocket");
        let previous = std::mem::replace(&mut self.writer, Writer::Ws(ws));
        if let Writer::Polling(buffer) = previous {
            // The sid stays registered, marked upgraded, until the session ends:
            // polling requests with it get 400 and further WebSockets are closed.
            buffer.mark_upgraded();
            for frame in buffer.take() {
                self.send_raw(frame).await?;
            }
        }
        Ok(())
    }

    /// Answers a refused event: with an ack when the client asked for one, else an `error` event.
    pub(super) async fn refuse_event(
        &mut self,
        nsp: &str,
        ack: Option<u64>,
        code: kanban_protocol::ErrorCode,
        message: &str,
    ) -> Result<(), Cause> {
        let error = kanban_protocol::ErrorBody::new(code, message).error;
        match ack {
            Some(id) => {
                let payload = kanban_protocol::socket::ErrorAck::new(error);
                self.send_packet(socketio::encode_ack(nsp, id, &[socketio::arg(&payload)]))
                    .await
            }
            None => {
                self.send_packet(socketio::encode_event(
                    nsp,
                    kanban_protocol::events::names::ERROR,
                    &[socketio::arg(&error)],
                    None,
                ))
                .await
            }
        }
    }

    /// Sends one Socket.IO packet (adds the Engine.IO message prefix).
    pub(super) async fn send_packet(&mut self, packet: String) -> Result<(), Cause> {
        let mut frame = String::with_capacity(packet.len() + 1);
        frame.push('4');
        frame.push_str(&packet);
        self.send_raw(ByteString::from(frame)).await
    }

    /// Sends one encoded Engine.IO packet.
    pub(super) async fn send_raw(&mut self, frame: ByteString) -> Result<(), Cause> {
        let timeout = Duration::from_millis(self.engine.settings.limits.write_timeout_ms);
        self.writer.send(frame, timeout).await
    }

    /// Ends the transport for `cause`: the close frame or packet, the TCP connection, the
    /// polling registration.
    pub(super) async fn close(mut self, cause: Cause) {
        let polling = matches!(self.writer, Writer::Polling(_));
        let ws = match &self.writer {
            Writer::Ws(ws) => Some(ws.clone()),
            Writer::Polling(_) => None,
        };
        let limits = &self.engine.settings.limits;
        let grace = Duration::from_millis(limits.write_timeout_ms.min(1_000));
        let handed_over = self.writer.close(&cause, grace).await;
        if let Some(ws) = ws {
            let ending = if handed_over {
                closing_handshake(&mut self.ws_stream, &mut self.rx, &cause, grace).await
            } else {
                tcp::Ending::Abortive
            };
            ws.end(ending);
        }
        if polling && cause == Cause::ClientClosed {
            // A client that POSTed a close may have a GET on its way: it gets the noop (and
            // removes the sid); if none comes, the sid is forgotten after a grace period.
            let engine = Arc::clone(&self.engine);
            let sid = self.sid.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(10)).await;
                engine.forget_polling(&sid);
            });
        } else {
            self.engine.forget_polling(&self.sid);
        }
    }
}

/// Waits up to `grace` for the peer's close frame after ours, and says how to end the
/// connection: gracefully when the peer is known to have sent its close frame (so it
/// reads, and has had `grace` to get ours), abortively when it never answered (it
/// stopped reading or is gone) — also when the message stream ends first.
async fn closing_handshake<M>(
    stream: &mut Option<WsReader>,
    rx: &mut mpsc::Receiver<ToSession<M>>,
    cause: &Cause,
    grace: Duration,
) -> tcp::Ending {
    let mut answered = *cause == Cause::ClientClosed;
    let deadline = Instant::now() + grace;
    loop {
        let step = tokio::time::timeout_at(deadline, async {
            match stream {
                Some(stream) => match stream.recv().await {
                    None | Some(Err(_)) => None,
                    Some(Ok(Incoming::Close)) => Some(true),
                    Some(Ok(_)) => Some(false),
                },
                // An upgraded session's frames are read by the upgrade's task, which
                // reports the peer's close (or the stream's end) as `Close`.
                None => match rx.recv().await {
                    Some(ToSession::Close(_)) => Some(true),
                    Some(_) => Some(false),
                    None => None,
                },
            }
        })
        .await;
        match step {
            // The message stream ended (the peer's FIN or a broken connection) without
            // its close frame: ended like a peer that never answered.
            Ok(None) | Err(_) => break,
            Ok(Some(close)) => answered |= close,
        }
    }
    if answered {
        tcp::Ending::Graceful
    } else {
        tcp::Ending::Abortive
    }
}
