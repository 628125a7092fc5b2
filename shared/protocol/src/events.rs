//! Socket.IO event names and the payloads that ride on them.
//!
//! Names and payload shapes are the original plan's; `seq` and timestamps ride in a
//! separate [`EventMeta`] argument so one-argument handlers keep working.

use crate::model::Ticket;
use crate::status::TicketStatus;
use serde::{Deserialize, Serialize};

/// Server → client event names.
pub mod names {
    pub const TICKET_CREATED: &str = "ticket:created";
    pub const TICKET_UPDATED: &str = "ticket:updated";
    pub const TICKET_MOVED: &str = "ticket:moved";
    pub const TICKET_DELETED: &str = "ticket:deleted";
    pub const PROJECT_UPDATED: &str = "project:updated";
    pub const PROJECT_DELETED: &str = "project:deleted";
    pub const MEMBER_ADDED: &str = "member:added";
    pub const MEMBER_REMOVED: &str = "member:removed";
    pub const COLUMN_REBALANCED: &str = "column:rebalanced";
    pub const ROOM_USER_JOINED: &str = "room:userJoined";
    pub const ROOM_USER_LEFT: &str = "room:userLeft";
    pub const PROJECT_RESYNC: &str = "project:resync";
    pub const ERROR: &str = "error";
}

/// Payload of `ticket:moved`: the original's `{ticketId, fromStatus, toStatus, projectId,
/// position?}` plus the new rank and the whole ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TicketMovedPayload {
    pub ticket_id: String,
    pub from_status: TicketStatus,
    pub to_status: TicketStatus,
    pub project_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<i64>,
    pub rank: String,
    pub ticket: Ticket,
}

/// Payload of `member:added` / `member:removed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberChangedPayload {
    pub project_id: String,
    pub user_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<crate::status::MemberRole>,
}

/// Payload of `column:rebalanced`: every ticket of one column got a new rank (in one
/// transaction, when keys grew too long). Clients replace the ranks they hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ColumnRebalancedPayload {
    pub project_id: String,
    pub status: TicketStatus,
    pub ranks: Vec<RankEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RankEntry {
    pub ticket_id: String,
    pub rank: String,
}

/// The trailing metadata argument of every server → client board event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventMeta {
    pub project_id: String,
    pub seq: i64,
    /// When the event was written, just before its transaction committed; milliseconds
    /// since the Unix epoch.
    pub ts: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mutation_id: Option<String>,
}

/// One committed board event as stored in the outbox and published to Redis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventEnvelope {
    pub project_id: String,
    pub seq: i64,
    /// The Socket.IO event name the browser receives.
    pub event: String,
    /// That event's payload, in the original plan's shape.
    pub data: serde_json::Value,
    /// When the event was written, just before its transaction committed; milliseconds
    /// since the Unix epoch.
    pub ts: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mutation_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}
