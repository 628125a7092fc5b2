//! Wire types shared by every part of the Kanban real-time layer.
//!
//! # Layout
//! - [`status`]: ticket statuses (the swim lanes), priorities, member roles, and the one
//!   table of allowed status transitions.
//! - [`model`]: the JSON shapes of projects, tickets, transitions and board snapshots.
//! - [`events`]: Socket.IO event names and the payloads that ride on them.
//! - [`error`]: error codes and the one error body shape used by HTTP and sockets.
//! - [`redis_keys`]: the Redis channels and keys the API writes and gateways read.
//!
//! This crate depends on serde only, so that the web client's TypeScript types can be
//! generated from it and the gateway can use it without pulling in a server stack.

pub mod error;
pub mod events;
pub mod model;
pub mod redis_keys;
pub mod status;

pub use error::{ErrorBody, ErrorCode, ErrorDetail};
pub use model::{
    BoardSnapshot, Project, ProjectMember, Ticket, TicketTransition, TransitionSummary,
};
pub use status::{MemberRole, ParseEnumError, Priority, TicketStatus};
