//! The interface between the transport and the Socket.IO application it carries: the
//! [`Application`] a session calls for each socket callback, the factory that makes one
//! per session, and [`Io`], the session as the application sees it.

use super::cause::Cause;
use super::core::Core;
use super::queue::{SessionId, Signals, ToSession};
use super::ws::WsWriter;
use crate::protocol::socketio;
use bytestring::ByteString;
use serde_json::Value;
use std::future::Future;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Why a Socket.IO CONNECT was refused: `44{"message", "data"}`.
pub struct Refusal {
    pub message: String,
    pub data: Option<Value>,
}

/// The Socket.IO application behind the sessions: one value per session, called by the
/// session's task for every socket callback. Each call gets the session's [`Io`] to write
/// to the client; a returned [`Cause`] ends the session. The futures need not be `Send`:
/// a session runs on the worker thread that accepted its connection.
pub trait Application: 'static {
    /// What other tasks queue for this application ([`ToSession::App`]).
    type Message: Send + 'static;

    /// A Socket.IO CONNECT to `nsp`, with the client's `auth` object.
    fn connect(
        &mut self,
        io: &mut Io<'_, Self::Message>,
        nsp: &str,
        auth: Option<Value>,
    ) -> impl Future<Output = Result<(), Refusal>>;

    /// Right after the CONNECT was answered.
    fn connected(
        &mut self,
        _io: &mut Io<'_, Self::Message>,
        _nsp: &str,
    ) -> impl Future<Output = Result<(), Cause>> {
        async { Ok(()) }
    }

    /// An event on a connected namespace (already rate-limited by the transport).
    fn event(
        &mut self,
        io: &mut Io<'_, Self::Message>,
        nsp: &str,
        name: String,
        args: Vec<Value>,
        ack: Option<u64>,
    ) -> impl Future<Output = Result<(), Cause>>;

    /// A message another task queued for this session.
    fn message(
        &mut self,
        io: &mut Io<'_, Self::Message>,
        message: Self::Message,
    ) -> impl Future<Output = Result<(), Cause>>;

    /// The session is about to wait with nothing queued; `writer` is its WebSocket, when
    /// that is its transport. Until [`Application::resumed`] none of the application's
    /// code runs, so it may let another task write to the client meanwhile (the board's
    /// lane, [`crate::lane`]).
    fn idle(&mut self, _writer: Option<&WsWriter>) {}

    /// The session woke up after [`Application::idle`], for whatever reason: called
    /// before anything else of the application runs.
    fn resumed(&mut self) {}

    /// The application's next deadline, if it has one; [`Application::on_deadline`] runs
    /// once it has passed.
    fn deadline(&self) -> Option<Instant> {
        None
    }

    fn on_deadline(
        &mut self,
        _io: &mut Io<'_, Self::Message>,
    ) -> impl Future<Output = Result<(), Cause>> {
        async { Ok(()) }
    }

    /// The socket left `nsp` (a DISCONNECT, or the session's end).
    fn disconnect(&mut self, io: &mut Io<'_, Self::Message>, nsp: &str)
        -> impl Future<Output = ()>;
}

/// Makes one [`Application`] value per new session.
pub trait AppFactory: Send + Sync + 'static {
    type App: Application;

    fn create(&self, session: &SessionInfo) -> Self::App;
}

/// The message type of the applications `F` makes.
pub type MessageOf<F> = <<F as AppFactory>::App as Application>::Message;

/// What an application is told of its session when it is made.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    pub id: SessionId,
    /// The Engine.IO session id.
    pub sid: String,
}

/// The session as an application sees it: its ids, its queue, and writes to the client.
pub struct Io<'a, M> {
    pub(super) core: &'a mut Core<M>,
}

impl<M: Send + 'static> Io<'_, M> {
    pub fn id(&self) -> SessionId {
        self.core.id
    }

    pub fn sid(&self) -> &str {
        &self.core.sid
    }

    /// A sender into this session's own queue (for rooms and spawned tasks).
    pub fn sender(&self) -> mpsc::Sender<ToSession<M>> {
        self.core.tx.clone()
    }

    pub fn signals(&self) -> &Arc<Signals> {
        &self.core.signals
    }

    /// The Socket.IO namespaces connected on this session.
    pub fn namespaces(&self) -> impl Iterator<Item = &str> {
        self.core.namespaces.iter().map(|(n, _)| n.as_str())
    }

    /// Sends one Socket.IO packet, waiting for the transport to take it.
    pub async fn send_packet(&mut self, packet: String) -> Result<(), Cause> {
        self.core.send_packet(packet).await
    }

    /// Holds the frames sent from now on until [`Io::uncork`], which writes them together
    /// (in a few large writes rather than one per frame). Every cork must be ended.
    pub fn cork(&mut self) {
        self.core.writer.cork();
    }

    /// Writes the frames held since [`Io::cork`].
    pub fn uncork(&mut self) {
        self.core.writer.uncork();
    }

    /// Sends one encoded Engine.IO frame (a shared, pre-encoded event).
    pub async fn send_frame(&mut self, frame: ByteString) -> Result<(), Cause> {
        self.core.send_raw(frame).await
    }

    /// Sends an event to the client.
    pub async fn emit(&mut self, nsp: &str, name: &str, args: &[Value]) -> Result<(), Cause> {
        self.send_packet(socketio::encode_event(nsp, name, args, None))
            .await
    }

    /// Acknowledges the client's event `id`.
    pub async fn ack(&mut self, nsp: &str, id: u64, args: &[Value]) -> Result<(), Cause> {
        self.send_packet(socketio::encode_ack(nsp, id, args)).await
    }

    /// Answers a refused event: with an ack when the client asked for one, else an
    /// `error` event.
    pub async fn refuse_event(
        &mut self,
        nsp: &str,
        ack: Option<u64>,
        code: kanban_protocol::ErrorCode,
        message: &str,
    ) -> Result<(), Cause> {
        self.core.refuse_event(nsp, ack, code, message).await
    }
}
