//! Every wire shape of the Kanban real-time layer: REST bodies, board events, socket
//! commands and acks, presence, error bodies and the Redis layout.
//!
//! # Layout
//! - [`status`]: ticket statuses (the swim lanes), priorities, member roles, and the one
//!   table of allowed status transitions.
//! - [`model`]: the JSON shapes of projects, members, tickets, transitions and board
//!   snapshots.
//! - [`rest`]: the ticket API's request bodies, query strings and the answers that are not
//!   a plain model (`Access`, `EventsPage`, `MovedTicket`, dev tokens).
//! - [`events`]: board events as one tagged enum ([`BoardEvent`]), their metadata argument
//!   and the envelope the outbox, Redis and the event log hold.
//! - [`socket`]: Socket.IO commands from clients and their acks, presence announcements,
//!   hints and resyncs.
//! - [`error`]: error codes and the one error body shape used by HTTP and sockets.
//! - [`redis_keys`]: the Redis keys and channels, and the one channel-name parser.
//! - [`ops`]: health and readiness bodies, and Engine.IO's HTTP error body.
//!
//! This crate depends on serde only, so that the gateway can use it without a server
//! stack. With the `ts` feature every wire type also derives `ts_rs::TS`, and
//! `tests/typescript.rs` keeps the web client's declarations in
//! `services/web/src/lib/protocol/` equal to what the crate produces:
//! `KANBAN_UPDATE_TS=1 cargo test -p kanban-protocol --features ts` rewrites them.
//!
//! Integers that are seqs, timestamps, versions or positions are `i64` here and `number`
//! in TypeScript: they stay far below 2^53.

#[macro_use]
mod wire_enum;

pub mod error;
pub mod events;
pub mod model;
pub mod ops;
pub mod redis_keys;
pub mod rest;
pub mod socket;
pub mod status;

pub use error::{ErrorBody, ErrorCode, ErrorDetail};
pub use events::{BoardEvent, BoardEventEnvelope, EventEnvelope, EventMeta};
pub use model::{
    BoardSnapshot, Project, ProjectMember, Ticket, TicketTransition, TransitionSummary,
};
pub use status::{MemberRole, ParseEnumError, Priority, TicketStatus};
