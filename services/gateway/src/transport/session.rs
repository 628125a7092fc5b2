//! One Engine.IO session: a single task that owns the connection's transport writer, its
//! heartbeat, its Socket.IO sockets and their rooms, and reacts to everything in one
//! `select!` — frames from the client, room events and acks queued for it, timers,
//! slow-consumer and drain signals. Nothing else writes to the client.

use super::application::{AppFactory, Application, Io, SessionInfo};
use super::cause::Cause;
use super::core::{Core, Live, TransportCount};
use super::engine::{random_id, Engine};
use super::queue::ToSession;
use super::writer::Writer;
use super::ws::{Incoming, WsReader};
use crate::protocol::engineio::{EioPacket, Handshake};
use crate::protocol::socketio::{self, SioPacket};
use actix_http::ws::ProtocolError;
use bytestring::ByteString;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// The most queued items a session handles in one go (their frames written together)
/// before it looks at the client's frames, its timers and its signals again.
const QUEUED_TOGETHER: usize = 32;

/// One session: the transport's part ([`Core`]) and the application's.
pub struct Session<A: Application> {
    core: Core<A::Message>,
    app: A,
}

impl<A: Application> Session<A> {
    /// Creates a session, its queue and its application. The caller sends the `open`
    /// packet (polling: as the handshake response) or lets [`Session::run`] send it
    /// (WebSocket).
    pub fn new<F: AppFactory<App = A>>(
        engine: Arc<Engine<A::Message>>,
        factory: &F,
        writer: Writer,
        ws_stream: Option<WsReader>,
    ) -> Session<A> {
        let core = Core::new(engine, writer, ws_stream);
        let app = factory.create(&SessionInfo {
            id: core.id,
            sid: core.sid.clone(),
        });
        Session { core, app }
    }

    pub fn sid(&self) -> &str {
        &self.core.sid
    }

    /// A sender into the session's queue (for the polling registry).
    pub fn sender(&self) -> mpsc::Sender<ToSession<A::Message>> {
        self.core.tx.clone()
    }

    /// The `open` packet for this session.
    pub fn open_packet(&self, upgrades: &[&str]) -> String {
        let engine = &self.core.engine.settings.engine;
        Handshake {
            sid: &self.core.sid,
            upgrades,
            ping_interval_ms: engine.ping_interval_ms,
            ping_timeout_ms: engine.ping_timeout_ms,
            max_payload: engine.max_payload as u64,
        }
        .packet()
    }

    /// Runs the session to its end. `send_open`: write the `open` packet first (WebSocket).
    pub async fn run(mut self, send_open: bool) {
        let engine = Arc::clone(&self.core.engine);
        engine.metrics.connections.inc();
        engine.metrics.connections_total.inc();
        let _live = Live(Arc::clone(&engine));
        let transport = if send_open { "websocket" } else { "polling" };
        self.core.transport = Some(TransportCount::new(&engine, transport));
        tracing::debug!(session = %self.core.sid, transport, "session opened");
        let cause = if send_open {
            let open = self.open_packet(&[]);
            match self.core.send_raw(ByteString::from(open)).await {
                Ok(()) => self.event_loop().await,
                Err(cause) => cause,
            }
        } else {
            self.event_loop().await
        };
        // Boxed, like every rare path below: a session's future stays resident for the
        // connection's whole life and is as large as its largest state, so the close,
        // the client's Socket.IO packets and the upgrade take heap memory only while they
        // run (docs/benchmarks.md: the per-connection RSS).
        Box::pin(self.finish(cause)).await;
    }

    fn io(&mut self) -> (&mut A, Io<'_, A::Message>) {
        (
            &mut self.app,
            Io {
                core: &mut self.core,
            },
        )
    }

    async fn event_loop(&mut self) -> Cause {
        // One timer for every deadline of the session, kept across iterations and moved
        // only when the earliest deadline changes: a delivery costs no timer
        // registration. The slow-consumer signal and the drain are waited for by futures
        // kept across iterations too: a fresh one each time would register and
        // unregister a waiter (two lock round trips) for every delivery.
        let timer = tokio::time::sleep_until(self.next_deadline());
        tokio::pin!(timer);
        let signals = Arc::clone(&self.core.signals);
        let slow = signals.notify.notified();
        tokio::pin!(slow);
        let drain = drain_started(self.core.engine.draining.clone());
        tokio::pin!(drain);
        let mut drain_seen = false;
        loop {
            let deadline = self.next_deadline();
            if timer.deadline() != deadline {
                timer.as_mut().reset(deadline);
            }
            // Waiting with nothing queued: the application may let another task write
            // meanwhile, until it is told the session woke (before anything else runs).
            let idle = self.core.rx.is_empty();
            if idle {
                let writer = match &self.core.writer {
                    Writer::Ws(ws) => Some(ws),
                    Writer::Polling(_) => None,
                };
                self.app.idle(writer);
            }
            let core = &mut self.core;
            let woke = tokio::select! {
                biased;
                () = &mut slow => {
                    slow.set(signals.notify.notified());
                    Woke::Signal
                }
                message = next_ws(&mut core.ws_stream) => Woke::Client(message),
                queued = core.rx.recv() => Woke::Queued(queued),
                _ = &mut timer => Woke::Deadline,
                () = &mut drain, if !drain_seen => {
                    drain_seen = true;
                    Woke::Drain
                }
            };
            if idle {
                self.app.resumed();
            }
            let step = match woke {
                Woke::Signal if signals.is_slow() => Err(Cause::SlowConsumer),
                Woke::Signal => Ok(()),
                Woke::Client(message) => self.on_ws_message(message).await,
                Woke::Queued(Some(item)) => self.on_queued_together(item).await,
                Woke::Queued(None) => Err(Cause::TransportError),
                Woke::Deadline => self.on_deadline().await,
                Woke::Drain => {
                    self.core.schedule_drain();
                    Ok(())
                }
            };
            if let Err(cause) = step {
                return cause;
            }
        }
    }

    /// The earliest of the session's deadlines: the next ping or the pong it waits for,
    /// the CONNECT timeout, the drain moment, the application's own.
    fn next_deadline(&self) -> Instant {
        let core = &self.core;
        [core.connect_deadline, core.drain_at, self.app.deadline()]
            .into_iter()
            .flatten()
            .fold(core.pong_deadline.unwrap_or(core.next_ping), Instant::min)
    }

    /// Acts on every deadline that has passed, in order of precedence.
    async fn on_deadline(&mut self) -> Result<(), Cause> {
        let now = Instant::now();
        let due = |at: Option<Instant>| at.is_some_and(|at| at <= now);
        if self.core.pong_deadline.unwrap_or(self.core.next_ping) <= now {
            self.core.on_ping_timer().await?;
        }
        if due(self.core.connect_deadline) {
            return Err(Cause::ConnectTimeout);
        }
        if due(self.core.drain_at) {
            return Err(Cause::Shutdown);
        }
        if due(self.app.deadline()) {
            let (app, mut io) = self.io();
            app.on_deadline(&mut io).await?;
        }
        Ok(())
    }

    async fn on_ws_message(
        &mut self,
        message: Option<Result<Incoming, ProtocolError>>,
    ) -> Result<(), Cause> {
        match message {
            None => Err(Cause::ClientClosed),
            Some(Err(ProtocolError::Overflow)) => Err(Cause::TooBig),
            Some(Err(error)) => Err(Cause::ProtocolError(error.to_string())),
            Some(Ok(Incoming::Text(text))) => match EioPacket::decode(&text) {
                Ok(packet) => self.on_packet(packet).await,
                Err(error) => Err(Cause::ProtocolError(error.to_string())),
            },
            Some(Ok(Incoming::Binary)) => Err(Cause::ProtocolError(
                "binary messages are not supported".into(),
            )),
            Some(Ok(Incoming::Ping(bytes))) => {
                if let Writer::Ws(ws) = &self.core.writer {
                    ws.pong(&bytes).await.map_err(|_| Cause::TransportError)?;
                }
                Ok(())
            }
            Some(Ok(Incoming::Close)) => Err(Cause::ClientClosed),
            Some(Ok(Incoming::Pong)) => Ok(()),
        }
    }

    /// Handles `item` and, when more are already queued, up to [`QUEUED_TOGETHER`] of
    /// them with it, their frames written together.
    async fn on_queued_together(&mut self, item: ToSession<A::Message>) -> Result<(), Cause> {
        if self.core.rx.is_empty() {
            return self.on_queued(item).await;
        }
        self.core.writer.cork();
        let mut result = self.on_queued(item).await;
        for _ in 1..QUEUED_TOGETHER {
            if result.is_err() {
                break;
            }
            let Ok(next) = self.core.rx.try_recv() else {
                break;
            };
            result = self.on_queued(next).await;
        }
        self.core.writer.uncork();
        result
    }

    async fn on_queued(&mut self, item: ToSession<A::Message>) -> Result<(), Cause> {
        match item {
            ToSession::App(message) => {
                let (app, mut io) = self.io();
                app.message(&mut io, message).await
            }
            ToSession::Packet(packet) => self.core.send_packet(packet).await,
            ToSession::Frame(frame) => self.core.send_raw(frame).await,
            ToSession::Inbound(packets) => {
                for packet in packets {
                    self.on_packet(packet).await?;
                }
                Ok(())
            }
            ToSession::Probing => {
                if let Writer::Polling(buffer) = &self.core.writer {
                    buffer.push_control(ByteString::from_static("6"));
                }
                Ok(())
            }
            ToSession::Upgrade(upgrade) => Box::pin(self.core.upgrade(*upgrade)).await,
            ToSession::Close(cause) => Err(cause),
        }
    }

    /// One Engine.IO packet from the client.
    async fn on_packet(&mut self, packet: EioPacket) -> Result<(), Cause> {
        match packet {
            EioPacket::Pong(_) => {
                self.core.pong_deadline = None;
                self.core.next_ping = Instant::now()
                    + Duration::from_millis(self.core.engine.settings.engine.ping_interval_ms);
                Ok(())
            }
            EioPacket::Message(text) => match SioPacket::decode(&text) {
                Ok(packet) => Box::pin(self.on_socketio(packet)).await,
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
                if self.core.namespaces.iter().any(|(n, _)| *n == nsp) {
                    return Err(Cause::ProtocolError("namespace already connected".into()));
                }
                let (app, mut io) = self.io();
                match app.connect(&mut io, &nsp, auth).await {
                    Ok(()) => {
                        let socket_id = random_id();
                        self.core
                            .send_packet(socketio::encode_connect_ok(&nsp, &socket_id))
                            .await?;
                        self.core.namespaces.push((nsp.clone(), socket_id));
                        self.core.connect_deadline = None;
                        let (app, mut io) = self.io();
                        app.connected(&mut io, &nsp).await
                    }
                    Err(refusal) => {
                        self.core
                            .send_packet(socketio::encode_connect_error(
                                &nsp,
                                &refusal.message,
                                refusal.data.as_ref(),
                            ))
                            .await
                    }
                }
            }
            SioPacket::Disconnect { nsp } => {
                if let Some(index) = self.core.namespaces.iter().position(|(n, _)| *n == nsp) {
                    self.core.namespaces.remove(index);
                    let (app, mut io) = self.io();
                    app.disconnect(&mut io, &nsp).await;
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
                if !self.core.namespaces.iter().any(|(n, _)| *n == nsp) {
                    return Err(Cause::ProtocolError(
                        "event on a namespace that is not connected".into(),
                    ));
                }
                if !self.core.bucket.take() {
                    self.core.engine.metrics.rate_limited_total.inc();
                    return self
                        .core
                        .refuse_event(
                            &nsp,
                            ack,
                            kanban_protocol::ErrorCode::RateLimited,
                            "too many events, slow down",
                        )
                        .await;
                }
                let (app, mut io) = self.io();
                app.event(&mut io, &nsp, name, args, ack).await
            }
            // The gateway never asks the client for acks, so any ack is unsolicited: ignore.
            SioPacket::Ack { .. } => Ok(()),
        }
    }

    async fn finish(mut self, cause: Cause) {
        let (reason, code) = cause.labels();
        let engine = Arc::clone(&self.core.engine);
        engine
            .metrics
            .closes_total
            .with_label_values(&[reason, code])
            .inc();
        tracing::debug!(
            session = %self.core.sid,
            reason,
            code,
            transport = self.core.transport.as_ref().map_or("none", |t| t.name),
            duration_ms = self.core.opened.elapsed().as_millis() as u64,
            "session closed"
        );
        match &cause {
            Cause::SlowConsumer => engine.metrics.slow_consumer_closes_total.inc(),
            Cause::ProtocolError(detail) => {
                engine.metrics.protocol_errors_total.inc();
                tracing::debug!(session = %self.core.sid, %detail, "closing session: protocol error");
            }
            Cause::TooBig => engine.metrics.protocol_errors_total.inc(),
            _ => {}
        }
        // No Socket.IO DISCONNECT is sent, even when draining: the client would take it as
        // "io server disconnect" and not reconnect. A closed transport makes it reconnect.
        let namespaces = std::mem::take(&mut self.core.namespaces);
        for (nsp, _) in &namespaces {
            let (app, mut io) = self.io();
            app.disconnect(&mut io, nsp).await;
        }
        self.core.close(cause).await;
    }
}

/// What woke a session's loop.
enum Woke<M> {
    /// The slow-consumer signal.
    Signal,
    /// A frame from the client (or the end of its stream).
    Client(Option<Result<Incoming, ProtocolError>>),
    /// An item of the queue (none: every sender is gone).
    Queued(Option<ToSession<M>>),
    /// The earliest deadline passed.
    Deadline,
    /// The replica started draining.
    Drain,
}

/// Resolves once the replica drains (at once if it already does); never if the drain
/// signal's sender is gone.
async fn drain_started(mut draining: tokio::sync::watch::Receiver<bool>) {
    if draining.wait_for(|draining| *draining).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// The next WebSocket message, or never when the session has no WebSocket (polling).
async fn next_ws(stream: &mut Option<WsReader>) -> Option<Result<Incoming, ProtocolError>> {
    match stream {
        Some(stream) => stream.recv().await,
        None => std::future::pending().await,
    }
}
