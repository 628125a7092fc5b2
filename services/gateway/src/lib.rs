//! The Kanban gateway: holds browser connections over the Socket.IO protocol (Engine.IO v4
//! over WebSocket or long-polling), puts sockets in project rooms after asking the ticket
//! API whether their user is a member, fans committed board events out from Redis to the
//! rooms in seq order, resumes sockets from a seq, and forwards ticket commands to the API.
//!
//! # Layout (each layer imports only the ones below it; `docs/architecture.md` has the picture)
//! - [`app`]: the Socket.IO applications: the board protocol ([`app::board`]) or the
//!   conformance echo handlers ([`app::echo`]).
//! - [`hub`]: local rooms and the encode-once broadcast, [`lane`]: its direct write to an
//!   idle socket; [`broker`]: the Redis
//!   subscription per room, hints, the catch-up after a reconnect; [`history`]: shared,
//!   paged reads of the history stream; [`presence`]: cluster-wide presence per board;
//!   [`subscriptions`]: which channels the subscription connection holds, one lock per
//!   board; [`api_client`]: calls to the ticket API with the socket user's token.
//! - [`transport`]: Engine.IO / Socket.IO sessions over WebSocket and long-polling; it
//!   calls an application through [`transport::Application`] and knows nothing of boards.
//! - [`protocol`]: Engine.IO and Socket.IO packet encoding (pure).
//! - [`config`], [`metrics`], [`locks`]: leaves every layer may use; `heap` (benchmark
//!   builds with the `heap-stats` feature) counts the live heap; [`routes`] (health, readiness,
//!   metrics endpoints) and [`startup`]: wiring.

pub mod api_client;
pub mod app;
pub mod broker;
pub mod config;
#[cfg(feature = "heap-stats")]
pub mod heap;
pub mod history;
pub mod hub;
pub mod lane;
pub mod locks;
#[cfg(test)]
pub mod memory;
pub mod metrics;
pub mod presence;
pub mod protocol;
pub mod routes;
pub mod shards;
pub mod startup;
pub mod subscriptions;
pub mod transport;

pub use config::Settings;
pub use startup::{Application, Shutdown, StartupError};
