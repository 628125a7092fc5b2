//! Integration tests of the gateway: real ticket API and gateways in-process on port 0,
//! real Postgres and Redis, and a small Socket.IO client over a real WebSocket.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod access;
mod board;
mod client;
mod conformance;
mod fuzz_corpus;
mod helpers;
mod observability;
mod presence;
mod resume;
mod robustness;
