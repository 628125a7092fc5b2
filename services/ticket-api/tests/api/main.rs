//! Integration tests of the ticket API: each test starts the application in-process on
//! port 0 against its own Postgres database.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod authz;
mod cache;
mod cluster;
mod concurrency;
mod errors;
mod events;
mod health;
mod helpers;
mod idempotency;
mod lifecycle;
mod logs;
mod migrations;
mod moves;
mod openapi;
mod pipeline;
mod projects;
mod shedding;
mod tickets;
mod transitions;
