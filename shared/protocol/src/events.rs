//! Board events: their names, their typed payloads ([`BoardEvent`]), the metadata argument
//! that rides with them on a socket, and the envelope the outbox, Redis and the event log hold.
//!
//! Names and payload shapes are the original plan's; `seq` and timestamps ride in a
//! separate [`EventMeta`] argument so one-argument handlers keep working.

use crate::model::{Project, Ticket};
use crate::status::{MemberRole, TicketStatus};
use serde::{Deserialize, Serialize};

/// Socket.IO event names, both directions.
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
    /// The socket was taken out of a board's room (removed member, deleted board).
    pub const PROJECT_REMOVED: &str = "project:removed";
    /// The socket's token expired: the gateway closes the connection next (code 4005).
    pub const AUTH_EXPIRED: &str = "auth:expired";
    pub const ERROR: &str = "error";

    // Client → server commands. `ticket:hint` is also relayed server → client.
    pub const PROJECT_JOIN: &str = "project:join";
    pub const PROJECT_LEAVE: &str = "project:leave";
    pub const TICKET_CREATE: &str = "ticket:create";
    pub const TICKET_UPDATE: &str = "ticket:update";
    pub const TICKET_MOVE: &str = "ticket:move";
    pub const TICKET_DELETE: &str = "ticket:delete";
    pub const TICKET_HINT: &str = "ticket:hint";
}

/// One board event, keyed by its name: `{"event": "<name>", "data": <payload>}`. The same
/// pair sits in an [`EventEnvelope`]'s `event` and `data` fields, and a socket receives
/// `data` as the first argument of the Socket.IO event `event`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(tag = "event", content = "data")]
pub enum BoardEvent {
    /// The whole ticket after its creation.
    #[serde(rename = "ticket:created")]
    TicketCreated(Ticket),
    /// The whole ticket after the change (with the new `version`).
    #[serde(rename = "ticket:updated")]
    TicketUpdated(Ticket),
    #[serde(rename = "ticket:moved")]
    TicketMoved(TicketMovedPayload),
    /// The deleted ticket's id.
    #[serde(rename = "ticket:deleted")]
    TicketDeleted(String),
    /// The whole project after the change.
    #[serde(rename = "project:updated")]
    ProjectUpdated(Project),
    /// The deleted project's id. Its tickets and members get no events of their own.
    #[serde(rename = "project:deleted")]
    ProjectDeleted(String),
    /// A new member, or a changed role (`role` present).
    #[serde(rename = "member:added")]
    MemberAdded(MemberChangedPayload),
    /// A member removed or left (`role` absent).
    #[serde(rename = "member:removed")]
    MemberRemoved(MemberChangedPayload),
    #[serde(rename = "column:rebalanced")]
    ColumnRebalanced(ColumnRebalancedPayload),
}

impl BoardEvent {
    /// The event's name, e.g. `ticket:moved`.
    pub const fn name(&self) -> &'static str {
        match self {
            BoardEvent::TicketCreated(_) => names::TICKET_CREATED,
            BoardEvent::TicketUpdated(_) => names::TICKET_UPDATED,
            BoardEvent::TicketMoved(_) => names::TICKET_MOVED,
            BoardEvent::TicketDeleted(_) => names::TICKET_DELETED,
            BoardEvent::ProjectUpdated(_) => names::PROJECT_UPDATED,
            BoardEvent::ProjectDeleted(_) => names::PROJECT_DELETED,
            BoardEvent::MemberAdded(_) => names::MEMBER_ADDED,
            BoardEvent::MemberRemoved(_) => names::MEMBER_REMOVED,
            BoardEvent::ColumnRebalanced(_) => names::COLUMN_REBALANCED,
        }
    }

    /// The payload alone, as stored in the outbox's `payload` column and sent as `data`.
    pub fn data(&self) -> Result<serde_json::Value, serde_json::Error> {
        match self {
            BoardEvent::TicketCreated(ticket) | BoardEvent::TicketUpdated(ticket) => {
                serde_json::to_value(ticket)
            }
            BoardEvent::TicketMoved(moved) => serde_json::to_value(moved),
            BoardEvent::TicketDeleted(id) | BoardEvent::ProjectDeleted(id) => {
                Ok(serde_json::Value::String(id.clone()))
            }
            BoardEvent::ProjectUpdated(project) => serde_json::to_value(project),
            BoardEvent::MemberAdded(member) | BoardEvent::MemberRemoved(member) => {
                serde_json::to_value(member)
            }
            BoardEvent::ColumnRebalanced(ranks) => serde_json::to_value(ranks),
        }
    }

    /// The typed event for a name and its payload; fails for an unknown name or a payload
    /// of the wrong shape.
    pub fn from_parts(name: &str, data: serde_json::Value) -> Result<Self, serde_json::Error> {
        let mut pair = serde_json::Map::with_capacity(2);
        pair.insert(
            "event".to_owned(),
            serde_json::Value::String(name.to_owned()),
        );
        pair.insert("data".to_owned(), data);
        serde_json::from_value(serde_json::Value::Object(pair))
    }
}

/// Payload of `ticket:moved`: the original's `{ticketId, fromStatus, toStatus, projectId,
/// position?}` plus the new rank and the whole ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct TicketMovedPayload {
    pub ticket_id: String,
    pub from_status: TicketStatus,
    pub to_status: TicketStatus,
    pub project_id: String,
    /// Always present in events from the API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub position: Option<i64>,
    pub rank: String,
    pub ticket: Ticket,
}

/// Payload of `member:added` / `member:removed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct MemberChangedPayload {
    pub project_id: String,
    pub user_id: String,
    /// Present on `member:added`, absent on `member:removed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub role: Option<MemberRole>,
}

/// Payload of `column:rebalanced`: every ticket of one column got a new rank (in one
/// transaction, when keys grew too long). Clients replace the ranks they hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct ColumnRebalancedPayload {
    pub project_id: String,
    pub status: TicketStatus,
    pub ranks: Vec<RankEntry>,
}

/// One ticket's new rank in a `column:rebalanced`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct RankEntry {
    pub ticket_id: String,
    pub rank: String,
}

/// The trailing metadata argument of every server → client board event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct EventMeta {
    pub project_id: String,
    pub seq: i64,
    /// When the event was written, just before its transaction committed; milliseconds
    /// since the Unix epoch.
    pub ts: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub mutation_id: Option<String>,
}

/// One committed board event as stored in the outbox, published to Redis and listed by the
/// event log, with `data` kept as raw JSON: relays and gateways forward it as it came,
/// including events of a name this build does not know yet (a newer API during a rolling
/// deploy). [`EventEnvelope::decode`] gives the typed view, [`BoardEventEnvelope`], whose
/// JSON is the same.
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
    /// The same moment in microseconds since the Unix epoch, for latencies finer than a
    /// millisecond; absent in envelopes written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts_us: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mutation_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

impl EventEnvelope {
    /// The socket's metadata argument for this event (`traceparent` is not passed on).
    pub fn meta(&self) -> EventMeta {
        EventMeta {
            project_id: self.project_id.clone(),
            seq: self.seq,
            ts: self.ts,
            mutation_id: self.mutation_id.clone(),
        }
    }

    /// The typed envelope; fails for an unknown event name or a payload of the wrong shape.
    pub fn decode(&self) -> Result<BoardEventEnvelope, serde_json::Error> {
        Ok(BoardEventEnvelope {
            project_id: self.project_id.clone(),
            seq: self.seq,
            event: BoardEvent::from_parts(&self.event, self.data.clone())?,
            ts: self.ts,
            ts_us: self.ts_us,
            mutation_id: self.mutation_id.clone(),
            traceparent: self.traceparent.clone(),
        })
    }
}

/// An [`EventEnvelope`] with its `event` and `data` typed together: the same JSON object.
/// This is the envelope the web client sees (the event log's `events`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct BoardEventEnvelope {
    pub project_id: String,
    pub seq: i64,
    /// `event` (the name) and `data` (its payload).
    #[serde(flatten)]
    #[cfg_attr(feature = "ts", ts(flatten))]
    pub event: BoardEvent,
    /// When the event was written, just before its transaction committed; milliseconds
    /// since the Unix epoch.
    pub ts: i64,
    /// The same moment in microseconds since the Unix epoch, for latencies finer than a
    /// millisecond; absent in envelopes written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub ts_us: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub mutation_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub traceparent: Option<String>,
}

impl BoardEventEnvelope {
    /// The raw envelope, as the outbox and Redis hold it.
    pub fn encode(&self) -> Result<EventEnvelope, serde_json::Error> {
        Ok(EventEnvelope {
            project_id: self.project_id.clone(),
            seq: self.seq,
            event: self.event.name().to_owned(),
            data: self.event.data()?,
            ts: self.ts,
            ts_us: self.ts_us,
            mutation_id: self.mutation_id.clone(),
            traceparent: self.traceparent.clone(),
        })
    }
}
