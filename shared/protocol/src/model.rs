//! JSON shapes of projects, members, tickets, transitions and board snapshots.
//!
//! Ids are UUID strings and timestamps RFC 3339 strings (UTC), so this crate needs no
//! time or uuid library and the TypeScript side sees plain strings.

use crate::status::{MemberRole, Priority, TicketStatus};
use serde::{Deserialize, Serialize};

/// A board.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct Project {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// A user's membership of a project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct ProjectMember {
    pub project_id: String,
    pub user_id: String,
    pub role: MemberRole,
    pub created_at: String,
}

/// A card on the board.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct Ticket {
    pub id: String,
    pub project_id: String,
    pub title: String,
    pub description: Option<String>,
    pub status: TicketStatus,
    pub priority: Priority,
    pub labels: Vec<String>,
    /// Order key within the ticket's column: tickets sort by `rank` ascending (byte order),
    /// ties broken by `id`.
    pub rank: String,
    /// Zero-based index within the column when this value was produced. Informational:
    /// `rank` is what orders the column.
    pub position: i64,
    /// Bumped by every change; send it back as `expectedVersion` to detect conflicts.
    pub version: i64,
    pub created_at: String,
    pub updated_at: String,
}

/// One recorded status change of a ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct TicketTransition {
    pub id: i64,
    pub ticket_id: String,
    pub from_status: TicketStatus,
    pub to_status: TicketStatus,
    pub triggered_by: String,
    pub reason: Option<String>,
    pub at: String,
}

/// `{from, to}` as returned by the transition endpoint (the original plan's shape).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct TransitionSummary {
    pub from: TicketStatus,
    pub to: TicketStatus,
}

/// A whole board at one point of its event sequence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct BoardSnapshot {
    pub project: Project,
    /// Every ticket of the project, ordered by status (board order), then rank.
    pub tickets: Vec<Ticket>,
    /// The last event sequence number this snapshot reflects.
    pub seq: i64,
}
