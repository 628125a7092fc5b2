//! One Engine.IO session: a single task that owns the connection's transport writer, its
//! heartbeat, its Socket.IO sockets and their rooms, and reacts to everything in one
//! `select!` — frames from the client, room events and acks queued for it, timers,
//! slow-consumer and drain signals. Nothing else writes to the client.

pub mod polling;
pub mod tcp;
mod writer;

use crate::app::echo::EchoState;
use crate::app::kanban::KanbanState;
use crate::context::Context;
use crate::hub::{RoomEvent, SessionId, Signals};
use crate::protocol::engineio::{EioPacket, Handshake};
use crate::protocol::socketio::{self, SioPacket};
use actix_ws::{CloseCode, CloseReason, Message, MessageStream};
use bytestring::ByteString;
use rand::Rng;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
pub use writer::Writer;

/// What other tasks hand to a session.
pub enum ToSession {
    /// A board event for one of the session's rooms.
    Room(RoomEvent),
    /// An encoded Socket.IO packet to send as an Engine.IO message (e.g. a command's ack).
    Packet(String),
    /// An encoded Engine.IO frame shared by many sockets (presence).
    Frame(ByteString),
    /// Packets a polling POST carried.
    Inbound(Vec<EioPacket>),
    /// A WebSocket probe for this session arrived: release the pending long-poll.
    Probing,
    /// The upgrade completed: write to this WebSocket from now on. (Its frames are read by
    /// the upgrade's own task on the worker that accepted it and arrive as `Inbound`.)
    /// With the upgrade connection's socket, which the session ends when it ends.
    Upgrade(actix_ws::Session, Option<tcp::ConnSocket>),
    /// The transport failed or broke a rule (e.g. two concurrent long-polls).
    Close(Cause),
}

/// Why a session ended. The WebSocket close codes are part of the documented protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// The client closed the transport or sent an Engine.IO close.
    ClientClosed,
    /// No pong within pingTimeout.
    PingTimeout,
    /// No Socket.IO CONNECT within connectTimeout.
    ConnectTimeout,
    /// A packet that breaks the protocol (malformed, binary, wrong direction).
    ProtocolError(String),
    /// A message over maxPayload.
    TooBig,
    /// The socket's queue filled up: it could not keep up with its rooms.
    SlowConsumer,
    /// The replica is draining.
    Shutdown,
    /// Writing to the transport failed.
    TransportError,
    /// The socket's token reached its `exp` (plus the leeway): reconnect with a fresh one.
    TokenExpired,
}

impl Cause {
    /// Every `(reason, code)` pair of [`Cause::labels`], for registering the series of
    /// `closes_total` before the first close.
    pub const LABELS: [(&'static str, &'static str); 9] = [
        ("client_closed", "none"),
        ("ping_timeout", "4001"),
        ("connect_timeout", "4002"),
        ("protocol_error", "1002"),
        ("too_big", "1009"),
        ("slow_consumer", "4008"),
        ("shutdown", "1001"),
        ("transport_error", "none"),
        ("token_expired", "4005"),
    ];

    /// The `reason` and `code` labels of `closes_total` (the close code as a number, or
    /// `none` when no close frame is sent), from [`Cause::LABELS`].
    pub fn labels(&self) -> (&'static str, &'static str) {
        let index = match self {
            Cause::ClientClosed => 0,
            Cause::PingTimeout => 1,
            Cause::ConnectTimeout => 2,
            Cause::ProtocolError(_) => 3,
            Cause::TooBig => 4,
            Cause::SlowConsumer => 5,
            Cause::Shutdown => 6,
            Cause::TransportError => 7,
            Cause::TokenExpired => 8,
        };
        Self::LABELS[index]
    }

    /// The WebSocket close frame for this cause (`None`: the peer is already gone).
    pub fn close_reason(&self) -> Option<CloseReason> {
        let (code, text) = match self {
            Cause::ClientClosed | Cause::TransportError => return None,
            Cause::PingTimeout => (CloseCode::Other(4001), "ping timeout"),
            Cause::ConnectTimeout => (CloseCode::Other(4002), "connect timeout"),
            Cause::ProtocolError(_) => (CloseCode::Protocol, "protocol error"),
            Cause::TooBig => (CloseCode::Size, "message too big"),
            Cause::SlowConsumer => (CloseCode::Other(4008), "slow consumer"),
            Cause::Shutdown => (CloseCode::Away, "server shutting down"),
            Cause::TokenExpired => (CloseCode::Other(4005), "token expired"),
        };
        Some(CloseReason {
            code,
            description: Some(text.to_owned()),
        })
    }
}

/// Per-session state of the Socket.IO layer.
pub enum AppState {
    Kanban(Box<KanbanState>),
    Echo(EchoState),
}

pub struct Session {
    pub id: SessionId,
    pub sid: String,
    pub ctx: Arc<Context>,
    pub writer: Writer,
    ws_stream: Option<MessageStream>,
    rx: mpsc::Receiver<ToSession>,
    /// A sender into this session's own queue (for rooms and spawned command tasks).
    pub tx: mpsc::Sender<ToSession>,
    pub signals: Arc<Signals>,
    next_ping: Instant,
    pong_deadline: Option<Instant>,
    connect_deadline: Option<Instant>,
    drain_at: Option<Instant>,
    /// When the token the socket connected with expires (its `exp` plus the leeway, as
    /// seconds since the epoch and on the monotonic clock): the session ends then.
    pub token_expiry: Option<(u64, Instant)>,
    /// When the board app looks again at rooms whose history lagged behind at the join.
    pub relay_lag_check: Option<Instant>,
    /// Socket.IO namespaces connected on this session, with their socket ids.
    pub namespaces: Vec<(String, String)>,
    pub app: AppState,
    bucket: TokenBucket,
    /// When the session was created (for the duration in its closing log line).
    opened: Instant,
    /// This session's count in `sockets{transport}`, moved when the session upgrades.
    transport: Option<TransportCount>,
    /// The WebSocket's TCP connection, which the session shuts down when it ends.
    pub tcp: Option<tcp::ConnSocket>,
}

/// One count in a `sockets{transport}` gauge, held while the session is on that transport
/// and given back however the session ends.
struct TransportCount {
    name: &'static str,
    gauge: prometheus::IntGauge,
}

impl TransportCount {
    fn new(ctx: &Context, name: &'static str) -> Self {
        let gauge = ctx.metrics.sockets.with_label_values(&[name]);
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
struct TokenBucket {
    tokens: f64,
    rate: f64,
    burst: f64,
    at: Instant,
}

impl TokenBucket {
    fn take(&mut self) -> bool {
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

/// A random id for sessions and sockets (URL-safe, 20 characters).
pub fn random_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut rng = rand::rng();
    (0..20)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

/// Decrements the connection gauge however the session task ends.
struct Live(Arc<Context>);

impl Drop for Live {
    fn drop(&mut self) {
        self.0.metrics.connections.dec();
        self.0
            .open_sessions
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Session {
    /// Creates a session and its queue. The caller sends the `open` packet (polling: as the
    /// handshake response) or lets [`Session::run`] send it (WebSocket).
    pub fn new(ctx: Arc<Context>, writer: Writer, ws_stream: Option<MessageStream>) -> Session {
        let (tx, rx) = mpsc::channel(ctx.settings.limits.outbound_queue.max(1));
        let engine = &ctx.settings.engine;
        let limits = &ctx.settings.limits;
        let now = Instant::now();
        let app = match ctx.settings.gateway.mode {
            crate::config::Mode::Kanban => AppState::Kanban(Box::default()),
            crate::config::Mode::Echo => AppState::Echo(EchoState::default()),
        };
        Session {
            id: ctx.next_session_id(),
            sid: ctx.new_sid(),
            writer,
            ws_stream,
            rx,
            tx,
            signals: Arc::new(Signals::default()),
            next_ping: now + Duration::from_millis(engine.ping_interval_ms),
            pong_deadline: None,
            connect_deadline: Some(now + Duration::from_millis(engine.connect_timeout_ms)),
            drain_at: None,
            token_expiry: None,
            relay_lag_check: None,
            namespaces: Vec::new(),
            app,
            bucket: TokenBucket {
                tokens: limits.event_burst,
                rate: limits.events_per_second,
                burst: limits.event_burst,
                at: now,
            },
            opened: now,
            transport: None,
            tcp: None,
            ctx,
        }
    }

    /// The `open` packet for this session.
    pub fn open_packet(&self, upgrades: &[&str]) -> String {
        let engine = &self.ctx.settings.engine;
        Handshake {
            sid: &self.sid,
            upgrades,
            ping_interval_ms: engine.ping_interval_ms,
            ping_timeout_ms: engine.ping_timeout_ms,
            max_payload: engine.max_payload as u64,
        }
        .packet()
    }

    /// Runs the session to its end. `send_open`: write the `open` packet first (WebSocket).
    pub async fn run(mut self, send_open: bool) {
        self.ctx.metrics.connections.inc();
        self.ctx.metrics.connections_total.inc();
        let _live = Live(Arc::clone(&self.ctx));
        let transport = if send_open { "websocket" } else { "polling" };
        self.transport = Some(TransportCount::new(&self.ctx, transport));
        tracing::debug!(session = %self.sid, transport, "session opened");
        let cause = if send_open {
            let open = self.open_packet(&[]);
            match self.send_raw(ByteString::from(open)).await {
                Ok(()) => self.event_loop().await,
                Err(cause) => cause,
            }
        } else {
            self.event_loop().await
        };
        self.finish(cause).await;
    }

    async fn event_loop(&mut self) -> Cause {
        let mut draining = self.ctx.draining.clone();
        if *draining.borrow() {
            self.schedule_drain();
        }
        // One timer for every deadline of the session, kept across iterations and moved
        // only when the earliest deadline changes: a delivery costs no timer
        // registration.
        let timer = tokio::time::sleep_until(self.next_deadline());
        tokio::pin!(timer);
        loop {
            let deadline = self.next_deadline();
            if timer.deadline() != deadline {
                timer.as_mut().reset(deadline);
            }
            let step = tokio::select! {
                biased;
                _ = self.signals.notify.notified() => {
                    if self.signals.is_slow() { Err(Cause::SlowConsumer) } else { Ok(()) }
                }
                message = next_ws(&mut self.ws_stream) => self.on_ws_message(message).await,
                queued = self.rx.recv() => match queued {
                    Some(item) => self.on_queued(item).await,
                    None => Err(Cause::TransportError),
                },
                _ = &mut timer => self.on_deadline().await,
                changed = draining.changed() => {
                    if changed.is_ok() && *draining.borrow() {
                        self.schedule_drain();
                    }
                    Ok(())
                }
            };
            if let Err(cause) = step {
                return cause;
            }
        }
    }

    /// The earliest of the session's deadlines: the next ping or the pong it waits for,
    /// the CONNECT timeout, the drain moment, the token's expiry, the relay-lag check.
    fn next_deadline(&self) -> Instant {
        [
            self.connect_deadline,
            self.drain_at,
            self.token_expiry.map(|(_, at)| at),
            self.relay_lag_check,
        ]
        .into_iter()
        .flatten()
        .fold(self.pong_deadline.unwrap_or(self.next_ping), Instant::min)
    }

    /// Acts on every deadline that has passed, in order of precedence.
    async fn on_deadline(&mut self) -> Result<(), Cause> {
        let now = Instant::now();
        let due = |at: Option<Instant>| at.is_some_and(|at| at <= now);
        if self.pong_deadline.unwrap_or(self.next_ping) <= now {
            self.on_ping_timer().await?;
        }
        if due(self.connect_deadline) {
            return Err(Cause::ConnectTimeout);
        }
        if due(self.drain_at) {
            return Err(Cause::Shutdown);
        }
        if due(self.token_expiry.map(|(_, at)| at)) {
            return self.on_token_expired().await;
        }
        if due(self.relay_lag_check) {
            self.kanban_relay_lag_check().await?;
        }
        Ok(())
    }

    fn schedule_drain(&mut self) {
        if self.drain_at.is_none() {
            let window = self.ctx.settings.gateway.drain_window_ms.max(1);
            let delay = rand::rng().random_range(0..window);
            self.drain_at = Some(Instant::now() + Duration::from_millis(delay));
        }
    }

    /// Tells every connected namespace why the connection is about to close, then ends
    /// the session with [`Cause::TokenExpired`].
    async fn on_token_expired(&mut self) -> Result<(), Cause> {
        let expired_at = self.token_expiry.map_or(0, |(exp, _)| exp);
        let payload = socketio::arg(&kanban_protocol::socket::AuthExpired { expired_at });
        let namespaces: Vec<String> = self.namespaces.iter().map(|(n, _)| n.clone()).collect();
        for nsp in namespaces {
            self.send_packet(socketio::encode_event(
                &nsp,
                kanban_protocol::events::names::AUTH_EXPIRED,
                std::slice::from_ref(&payload),
                None,
            ))
            .await?;
        }
        Err(Cause::TokenExpired)
    }

    async fn on_ping_timer(&mut self) -> Result<(), Cause> {
        if self.pong_deadline.is_some() {
            return Err(Cause::PingTimeout);
        }
        self.send_raw(ByteString::from_static("2")).await?;
        self.pong_deadline =
            Some(Instant::now() + Duration::from_millis(self.ctx.settings.engine.ping_timeout_ms));
        Ok(())
    }

    async fn on_ws_message(
        &mut self,
        message: Option<Result<Message, actix_ws::ProtocolError>>,
    ) -> Result<(), Cause> {
        match message {
            None => Err(Cause::ClientClosed),
            Some(Err(actix_ws::ProtocolError::Overflow)) => Err(Cause::TooBig),
            Some(Err(error)) => Err(Cause::ProtocolError(error.to_string())),
            Some(Ok(Message::Text(text))) => match EioPacket::decode(&text) {
                Ok(packet) => self.on_packet(packet).await,
                Err(error) => Err(Cause::ProtocolError(error.to_string())),
            },
            Some(Ok(Message::Binary(_))) | Some(Ok(Message::Continuation(_))) => Err(
                Cause::ProtocolError("binary messages are not supported".into()),
            ),
            Some(Ok(Message::Ping(bytes))) => {
                if let Writer::Ws(ws) = &mut self.writer {
                    ws.pong(&bytes).await.map_err(|_| Cause::TransportError)?;
                }
                Ok(())
            }
            Some(Ok(Message::Close(_))) => Err(Cause::ClientClosed),
            Some(Ok(Message::Pong(_))) | Some(Ok(Message::Nop)) => Ok(()),
        }
    }

    async fn on_queued(&mut self, item: ToSession) -> Result<(), Cause> {
        match item {
            ToSession::Room(event) => self.on_room_event(event).await,
            ToSession::Packet(packet) => self.send_packet(packet).await,
            ToSession::Frame(frame) => self.send_raw(frame).await,
            ToSession::Inbound(packets) => {
                for packet in packets {
                    self.on_packet(packet).await?;
                }
                Ok(())
            }
            ToSession::Probing => {
                if let Writer::Polling(buffer) = &self.writer {
                    buffer.push_control(ByteString::from_static("6"));
                }
                Ok(())
            }
            ToSession::Upgrade(ws, socket) => {
                self.tcp = socket;
                self.transport = Some(TransportCount::new(&self.ctx, "websocket"));
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
            ToSession::Close(cause) => Err(cause),
        }
    }

    /// One Engine.IO packet from the client.
    async fn on_packet(&mut self, packet: EioPacket) -> Result<(), Cause> {
        match packet {
            EioPacket::Pong(_) => {
                self.pong_deadline = None;
                self.next_ping = Instant::now()
                    + Duration::from_millis(self.ctx.settings.engine.ping_interval_ms);
                Ok(())
            }
            EioPacket::Message(text) => match SioPacket::decode(&text) {
                Ok(packet) => self.on_socketio(packet).await,
                Err(error) => Err(Cause::ProtocolError(error.to_string())),
            },
            EioPacket::Close => Err(Cause::ClientClosed),
            EioPacket::Noop => Ok(()),
            EioPacket::Ping(_) => Err(Cause::ProtocolError("invalid heartbeat direction".into())),
            EioPacket::Open(_) | EioPacket::Upgrade => {
                Err(Cause::ProtocolError("unexpected packet".into()))
            }
        }
    }

    /// One Socket.IO packet from the client.
    async fn on_socketio(&mut self, packet: SioPacket) -> Result<(), Cause> {
        match packet {
            SioPacket::Connect { nsp, auth } => {
                if self.namespaces.iter().any(|(n, _)| *n == nsp) {
                    return Err(Cause::ProtocolError("namespace already connected".into()));
                }
                match self.on_connect(&nsp, auth).await {
                    Ok(()) => {
                        let socket_id = random_id();
                        self.send_packet(socketio::encode_connect_ok(&nsp, &socket_id))
                            .await?;
                        self.namespaces.push((nsp.clone(), socket_id));
                        self.connect_deadline = None;
                        self.after_connect(&nsp).await
                    }
                    Err(refusal) => {
                        self.send_packet(socketio::encode_connect_error(
                            &nsp,
                            &refusal.message,
                            refusal.data.as_ref(),
                        ))
                        .await
                    }
                }
            }
            SioPacket::Disconnect { nsp } => {
                if let Some(index) = self.namespaces.iter().position(|(n, _)| *n == nsp) {
                    self.namespaces.remove(index);
                    self.on_disconnect(&nsp).await;
                }
                // The Engine.IO session stays open, as Node's does: the client closes it
                // (or connects again) when it wants.
                Ok(())
            }
            SioPacket::Event {
                nsp,
                ack,
                name,
                args,
            } => {
                if !self.namespaces.iter().any(|(n, _)| *n == nsp) {
                    return Err(Cause::ProtocolError(
                        "event on a namespace that is not connected".into(),
                    ));
                }
                if !self.bucket.take() {
                    self.ctx.metrics.rate_limited_total.inc();
                    return self
                        .refuse_event(
                            &nsp,
                            ack,
                            kanban_protocol::ErrorCode::RateLimited,
                            "too many events, slow down",
                        )
                        .await;
                }
                self.on_event(&nsp, name, args, ack).await
            }
            // The gateway never asks the client for acks, so any ack is unsolicited: ignore.
            SioPacket::Ack { .. } => Ok(()),
        }
    }

    /// Answers a refused event: with an ack when the client asked for one, else an `error` event.
    pub async fn refuse_event(
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
    pub async fn send_packet(&mut self, packet: String) -> Result<(), Cause> {
        let mut frame = String::with_capacity(packet.len() + 1);
        frame.push('4');
        frame.push_str(&packet);
        self.send_raw(ByteString::from(frame)).await
    }

    /// Sends one encoded Engine.IO packet.
    pub async fn send_raw(&mut self, frame: ByteString) -> Result<(), Cause> {
        let timeout = Duration::from_millis(self.ctx.settings.limits.write_timeout_ms);
        self.writer.send(frame, timeout).await
    }

    async fn finish(mut self, cause: Cause) {
        let (reason, code) = cause.labels();
        self.ctx
            .metrics
            .closes_total
            .with_label_values(&[reason, code])
            .inc();
        tracing::debug!(
            session = %self.sid,
            reason,
            code,
            transport = self.transport.as_ref().map_or("none", |t| t.name),
            duration_ms = self.opened.elapsed().as_millis() as u64,
            "session closed"
        );
        match &cause {
            Cause::SlowConsumer => self.ctx.metrics.slow_consumer_closes_total.inc(),
            Cause::ProtocolError(detail) => {
                self.ctx.metrics.protocol_errors_total.inc();
                tracing::debug!(session = %self.sid, %detail, "closing session: protocol error");
            }
            Cause::TooBig => self.ctx.metrics.protocol_errors_total.inc(),
            _ => {}
        }
        // No Socket.IO DISCONNECT is sent, even when draining: the client would take it as
        // "io server disconnect" and not reconnect. A closed transport makes it reconnect.
        let namespaces = std::mem::take(&mut self.namespaces);
        for (nsp, _) in &namespaces {
            self.on_disconnect(nsp).await;
        }
        let polling = matches!(self.writer, Writer::Polling(_));
        let limits = &self.ctx.settings.limits;
        let grace = Duration::from_millis(limits.write_timeout_ms.min(1_000));
        let handed_over = self.writer.close(&cause, grace).await;
        if let Some(socket) = self.tcp.take().filter(|_| !polling) {
            let ending = if handed_over {
                closing_handshake(&mut self.ws_stream, &mut self.rx, &cause, grace).await
            } else {
                tcp::Ending::Abortive
            };
            tcp::end(&socket.0, ending);
        }
        if polling && cause == Cause::ClientClosed {
            // A client that POSTed a close may have a GET on its way: it gets the noop (and
            // removes the sid); if none comes, the sid is forgotten after a grace period.
            let ctx = Arc::clone(&self.ctx);
            let sid = self.sid.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(10)).await;
                ctx.polling.remove(&sid);
            });
        } else {
            self.ctx.polling.remove(&self.sid);
        }
    }
}

/// Waits up to `grace` for the peer's close frame after ours, and says how to end the
/// connection: gracefully when the peer is known to have sent its close frame (so it
/// reads, and has had `grace` to get ours), abortively when it never answered (it
/// stopped reading or is gone) — also when the message stream ends first: actix-web
/// ends it once the response is over, while the connection lives on.
async fn closing_handshake(
    stream: &mut Option<MessageStream>,
    rx: &mut mpsc::Receiver<ToSession>,
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
                    Some(Ok(Message::Close(_))) => Some(true),
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
            // The message stream ended: that says nothing of the TCP connection, which
            // actix-web keeps until what is queued for it is flushed (never, for a peer
            // that stopped reading). It is ended like any other.
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

/// The next WebSocket message, or never when the session has no WebSocket (polling).
async fn next_ws(
    stream: &mut Option<MessageStream>,
) -> Option<Result<Message, actix_ws::ProtocolError>> {
    match stream {
        Some(stream) => stream.recv().await,
        None => std::future::pending().await,
    }
}

/// Why a Socket.IO CONNECT was refused: `44{"message", "data"}`.
pub struct Refusal {
    pub message: String,
    pub data: Option<serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use super::Cause;

    #[test]
    fn close_labels_name_the_close_code_that_is_sent() {
        let causes = [
            Cause::ClientClosed,
            Cause::PingTimeout,
            Cause::ConnectTimeout,
            Cause::ProtocolError("x".into()),
            Cause::TooBig,
            Cause::SlowConsumer,
            Cause::Shutdown,
            Cause::TransportError,
            Cause::TokenExpired,
        ];
        for cause in &causes {
            let sent = cause
                .close_reason()
                .map_or_else(|| "none".to_owned(), |r| u16::from(r.code).to_string());
            assert_eq!(cause.labels().1, sent, "{cause:?}");
        }
        let mut reasons: Vec<_> = causes.iter().map(|c| c.labels().0).collect();
        reasons.dedup();
        assert_eq!(
            reasons.len(),
            Cause::LABELS.len(),
            "one label pair per cause"
        );
    }
}
