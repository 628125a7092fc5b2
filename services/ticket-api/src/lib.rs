//! The Kanban ticket API: projects, members and tickets on Postgres, with a status state
//! machine, rank-ordered columns, optimistic concurrency and a transactional event outbox.
//!
//! # Layout
//! - [`startup`]: wires the application from [`config::Settings`] on a given listener and
//!   runs it until a shutdown future resolves.
//! - [`state`]: what every request reaches ([`state::AppState`]) and the steps around a write.
//! - [`headers`]: a write request's mutation id, idempotency key and trace context.
//! - [`routes`]: HTTP request shapes and handlers; parse input into [`domain`] types.
//! - [`service`]: one function per use case; every write runs in
//!   [`service::unit_of_work::run`] (one transaction: idempotency, access, board lock,
//!   the use case's work, outbox).
//! - [`db`]: all SQL, one module per table; the pool, embedded migrations, the readiness
//!   query and the relay's lock connection.
//! - [`domain`]: validated input newtypes and rank keys.
//! - [`auth`]: the bearer-token extractor. [`error`]: the one error type and its HTTP mapping.
//! - [`metrics`]: Prometheus metrics and the request-recording middleware.
//! - [`relay`]: publishes the outbox to Redis in order, from one replica at a time.
//! - [`cache`]: cache-aside board snapshots in Redis with a read-your-writes guard.

pub mod auth;
pub mod cache;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod headers;
pub mod metrics;
pub mod redis_client;
pub mod relay;
pub mod routes;
pub mod service;
pub mod startup;
pub mod state;

pub use config::Settings;
pub use startup::{Application, StartupError};
