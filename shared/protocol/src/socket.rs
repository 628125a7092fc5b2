//! The Socket.IO side of the protocol that is not a board event: client → server command
//! payloads and their acknowledgements, presence announcements, hints and resyncs.
//!
//! Command payloads ignore fields they do not know (the original client sends a few
//! extra ones); the gateway turns them into the API's [`crate::rest`] bodies.

use crate::error::ErrorDetail;
use crate::model::Ticket;
use crate::rest::{CreateTicketBody, MoveTicketBody, MovedTicket, UpdateTicketBody};
use crate::status::{Priority, TicketStatus};
use serde::{Deserialize, Serialize};

/// `project:join`'s argument: a bare project id, or `{projectId, sinceSeq?}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(untagged)]
pub enum JoinArg {
    Id(String),
    Request(JoinRequest),
}

/// `project:join {projectId, sinceSeq?}`: with `sinceSeq`, the events after it are sent
/// first (or a `project:resync` when history does not reach back that far).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct JoinRequest {
    pub project_id: String,
    /// The last seq the client applied (0 or more).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub since_seq: Option<i64>,
}

impl JoinArg {
    /// The project id and the resume point.
    pub fn into_parts(self) -> (String, Option<i64>) {
        match self {
            JoinArg::Id(id) => (id, None),
            JoinArg::Request(request) => (request.project_id, request.since_seq),
        }
    }
}

/// `project:leave`'s argument: a bare project id, or `{projectId}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(untagged)]
pub enum LeaveArg {
    Id(String),
    Request(LeaveRequest),
}

/// `project:leave {projectId}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct LeaveRequest {
    pub project_id: String,
}

impl LeaveArg {
    pub fn into_project_id(self) -> String {
        match self {
            LeaveArg::Id(id) | LeaveArg::Request(LeaveRequest { project_id: id }) => id,
        }
    }
}

/// `ticket:create {projectId, ticket, mutationId?}`; acked with a [`TicketAck`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct CreateTicketCommand {
    pub project_id: String,
    pub ticket: TicketDraft,
    /// Sent as the API call's `Idempotency-Key`: a repeat changes the board once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub mutation_id: Option<String>,
}

/// The new ticket of a `ticket:create`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct TicketDraft {
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub priority: Option<Priority>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub labels: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub status: Option<TicketStatus>,
}

impl From<TicketDraft> for CreateTicketBody {
    fn from(draft: TicketDraft) -> Self {
        CreateTicketBody {
            title: draft.title,
            description: draft.description,
            priority: draft.priority,
            labels: draft.labels,
            status: draft.status,
        }
    }
}

/// `ticket:update {ticket: {id, ...fields}, expectedVersion?, mutationId?}`; acked with a
/// [`TicketAck`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct UpdateTicketCommand {
    pub ticket: TicketPatch,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub expected_version: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub mutation_id: Option<String>,
}

/// The changed fields of a `ticket:update`; `description: null` clears it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct TicketPatch {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub title: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::rest::nullable"
    )]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub description: Option<Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub priority: Option<Priority>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub labels: Option<Vec<String>>,
}

impl UpdateTicketCommand {
    /// The API body; the ticket id goes into the path.
    pub fn body(&self) -> UpdateTicketBody {
        UpdateTicketBody {
            title: self.ticket.title.clone(),
            description: self.ticket.description.clone(),
            priority: self.ticket.priority,
            labels: self.ticket.labels.clone(),
            expected_version: self.expected_version,
        }
    }
}

/// `ticket:move {ticketId, toStatus, position? | beforeId? | afterId?, expectedVersion?,
/// mutationId?}`; acked with a [`MoveAck`]. The original shape's `fromStatus` and
/// `projectId` are accepted and ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct MoveTicketCommand {
    pub ticket_id: String,
    pub to_status: TicketStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub position: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub before_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub after_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub expected_version: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub mutation_id: Option<String>,
}

impl MoveTicketCommand {
    /// The API body; the ticket id goes into the path.
    pub fn body(&self) -> MoveTicketBody {
        MoveTicketBody {
            to_status: self.to_status,
            before_id: self.before_id.clone(),
            after_id: self.after_id.clone(),
            position: self.position,
            expected_version: self.expected_version,
        }
    }
}

/// `ticket:delete {ticketId, expectedVersion?, mutationId?}`; acked with an [`OkAck`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct DeleteTicketCommand {
    pub ticket_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub expected_version: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub mutation_id: Option<String>,
}

/// What a user is doing with a ticket, as a hint to the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "lowercase")]
pub enum HintAction {
    Dragging,
    Editing,
    /// Stopped dragging or editing.
    Idle,
}

/// `ticket:hint {projectId, ticketId, action}` from a client; acked with an [`OkAck`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct HintCommand {
    pub project_id: String,
    pub ticket_id: String,
    pub action: HintAction,
}

/// `ticket:hint` as relayed to every socket of the board (through Redis, never stored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct Hint {
    pub project_id: String,
    pub ticket_id: String,
    pub action: HintAction,
    /// The sender, from its token.
    pub user_id: String,
    /// The sender's display name (its user id when the token has none).
    pub name: String,
    /// Milliseconds since the Unix epoch; drop the hint then unless it is repeated.
    pub expires_at: i64,
}

/// The ack of a `project:join`: `{ok: true, seq, userCount}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct JoinAck {
    #[cfg_attr(feature = "ts", ts(type = "true"))]
    pub ok: bool,
    /// The last seq this socket has been sent for the board.
    pub seq: i64,
    /// Distinct users viewing the board across all replicas, including the joiner, as this
    /// replica last computed it.
    pub user_count: usize,
}

impl JoinAck {
    pub fn new(seq: i64, user_count: usize) -> Self {
        JoinAck {
            ok: true,
            seq,
            user_count,
        }
    }
}

/// `{ok: true}`: the ack of `project:leave`, `ticket:delete` and `ticket:hint`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct OkAck {
    #[cfg_attr(feature = "ts", ts(type = "true"))]
    pub ok: bool,
}

impl OkAck {
    pub const OK: OkAck = OkAck { ok: true };
}

/// `{ok: true, ...Ticket}`: the ack of `ticket:create` and `ticket:update`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct TicketAck {
    #[cfg_attr(feature = "ts", ts(type = "true"))]
    pub ok: bool,
    #[serde(flatten)]
    #[cfg_attr(feature = "ts", ts(flatten))]
    pub ticket: Ticket,
}

impl TicketAck {
    pub fn new(ticket: Ticket) -> Self {
        TicketAck { ok: true, ticket }
    }
}

/// `{ok: true, ticket, fromStatus}`: the ack of `ticket:move`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct MoveAck {
    #[cfg_attr(feature = "ts", ts(type = "true"))]
    pub ok: bool,
    #[serde(flatten)]
    #[cfg_attr(feature = "ts", ts(flatten))]
    pub moved: MovedTicket,
}

impl MoveAck {
    pub fn new(moved: MovedTicket) -> Self {
        MoveAck { ok: true, moved }
    }
}

/// `{ok: false, error: {code, message, details?}}`: how every command (and join) is
/// refused when it carries an ack callback. Without one, the client gets an `error`
/// event whose argument is the [`ErrorDetail`] alone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ErrorAck {
    #[cfg_attr(feature = "ts", ts(type = "false"))]
    pub ok: bool,
    pub error: ErrorDetail,
}

impl ErrorAck {
    pub fn new(error: ErrorDetail) -> Self {
        ErrorAck { ok: false, error }
    }
}

/// One user on a board, as announced (and as each replica's entry in the presence hash).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct PresentUser {
    pub id: String,
    /// The token's `name` claim, or the user id when it has none.
    pub name: String,
}

/// `room:userJoined` / `room:userLeft`: who views the board, cluster-wide, the whole state
/// every time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct PresenceUpdate {
    pub project_id: String,
    /// Distinct users (a user with three tabs counts once), exact.
    pub user_count: usize,
    /// At most 50, sorted by id.
    pub users: Vec<PresentUser>,
}

/// Why a `project:resync` was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum ResyncReason {
    /// A resume asked for events older than the board's recent history.
    HistoryUnavailable,
    /// Events were lost in transit (e.g. a Redis outage longer than history).
    Gap,
}

/// `project:resync {projectId, reason, seq}`: fetch a snapshot; live events continue
/// after `seq`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct Resync {
    pub project_id: String,
    pub reason: ResyncReason,
    pub seq: i64,
}

/// Why a socket was taken out of a board's room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum RemovalReason {
    /// The socket's user was removed from the board (`member:removed`).
    MemberRemoved,
    /// The board was deleted (`project:deleted`).
    ProjectDeleted,
    /// The user's new role may not read the board (`member:added` with that role).
    RoleRevoked,
}

/// `project:removed {projectId, reason, seq}`: the socket is no longer in the board's
/// room; `seq` is the event that caused it, the last one the socket got from the board.
/// Hints for the board are refused from now on and a new `project:join` asks the API again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct ProjectRemoved {
    pub project_id: String,
    pub reason: RemovalReason,
    pub seq: i64,
}

/// `auth:expired {expiredAt}`: the socket's token expired (`exp` plus the gateway's
/// leeway, seconds since the epoch); the gateway closes the connection right after with
/// code 4005. Reconnect with a fresh token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct AuthExpired {
    pub expired_at: u64,
}
