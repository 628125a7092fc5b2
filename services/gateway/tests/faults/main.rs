//! Fault tests of real processes: the built `ticket-api` and `gateway` binaries, Postgres
//! and Redis, all on loopback ports of their own, under a small bounded load (20 sockets,
//! 20 moves/s, a few seconds), with one process killed, frozen, stopped or drained.
//! Every test ends every process it started (drop guards, by pid).
//!
//! The tests need the `ticket-api` binary next to the gateway's: `cargo test --workspace`
//! builds it; for a targeted run, `cargo build -p ticket-api --bin ticket-api` first
//! (see docs/reliability.md). Measured outcomes are printed (`--nocapture`); nothing
//! asserts on speed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../gateway/client.rs"]
#[allow(dead_code)]
mod client;

mod api;
mod cluster;
mod gateways;
mod harness;
mod postgres;
mod redis_faults;
