//! The Engine.IO / Socket.IO transport: sessions over WebSocket or long-polling, the
//! upgrade between them, heartbeats, the outbound writer and close causes. It knows
//! nothing of boards: it calls a Socket.IO [`Application`] for every socket callback.
//!
//! - [`application`]: the trait an application implements, and [`Io`], its view of a session.
//! - [`session`]: one task per connection and its event loop.
//! - [`core`]: the transport's part of a session: writes, heartbeat, rate limit, close.
//! - [`queue`]: what other tasks hand to a session.
//! - [`cause`]: why a session ends, and the close codes.
//! - [`polling`]: the long-polling buffer, registry and GET/POST exchanges.
//! - [`writer`]: the session's way to the client.
//! - [`ws`]: the WebSocket itself, on its own TCP stream: frames written straight to the
//!   socket, the client's frames decoded from it.
//! - [`takeover`]: writes an upgrade request's answer and hands a `101`'s connection over
//!   from actix-http to its WebSocket.
//! - [`tcp`]: the accepted TCP connection, and how a session ends it.
//! - [`engine`]: what every session of this replica shares (limits, ids, drain, admission).
//! - [`http`]: the `/socket.io/` endpoint: handshakes, polling GETs and POSTs.
//! - [`origin`]: the Origin check, CORS headers and Engine.IO's error bodies.
//! - [`upgrade`]: the polling → WebSocket upgrade and the upgraded socket's read pump.
//! - `testing` (tests only): a session without a connection, for applications' unit tests.
//!
//! This file only declares and re-exports: the modules import each other by path, so
//! that none of them depends on this one.

pub mod application;
pub mod cause;
pub mod core;
pub mod engine;
pub mod http;
pub mod origin;
pub mod polling;
pub mod queue;
pub mod session;
pub mod takeover;
pub mod tcp;
#[cfg(test)]
pub mod testing;
pub mod upgrade;
pub mod writer;
pub mod ws;

pub use application::{AppFactory, Application, Io, MessageOf, Refusal, SessionInfo};
pub use cause::Cause;
pub use engine::Engine;
pub use queue::{SessionId, Signals, ToSession};
