//! The Kanban gateway: holds browser connections over the Socket.IO protocol (Engine.IO v4
//! over WebSocket or long-polling), puts sockets in project rooms after asking the ticket
//! API whether their user is a member, fans committed board events out from Redis to the
//! rooms in seq order, resumes sockets from a seq, and forwards ticket commands to the API.
//!
//! # Layout
//! - [`protocol`]: Engine.IO and Socket.IO packet encoding (pure).
//! - [`session`]: one task per connection: transport, heartbeat, queue, close causes;
//!   [`session::polling`] holds the long-polling transport.
//! - [`app`]: the Socket.IO application: the board protocol ([`app::kanban`]) or the
//!   conformance echo handlers ([`app::echo`]).
//! - [`hub`]: local rooms and the encode-once broadcast.
//! - [`broker`]: Redis subscription per room, hints, the catch-up after a reconnect.
//! - [`history`]: shared, paged reads of the history stream for resumes and gap fills.
//! - [`api_client`]: calls to the ticket API with the socket user's token.
//! - [`presence`]: cluster-wide, coalesced, crash-safe presence per board.
//! - [`context`], [`config`], [`metrics`], [`routes`], [`startup`]: wiring.

pub mod api_client;
pub mod app;
pub mod broker;
pub mod config;
pub mod context;
pub mod history;
pub mod hub;
pub mod metrics;
pub mod presence;
pub mod protocol;
pub mod routes;
pub mod session;
pub mod startup;

pub use config::Settings;
pub use startup::{Application, Shutdown, StartupError};
