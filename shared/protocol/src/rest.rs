//! The ticket API's REST request bodies, query strings and the responses that are not a
//! plain model ([`crate::model`]).
//!
//! Request bodies refuse unknown fields: a misspelt field is a `VALIDATION` error rather
//! than a silent no-op. The rules on their values (lengths, trimming, labels) are the
//! API's and are checked there, after these shapes have been parsed.

use crate::events::EventEnvelope;
use crate::model::{Ticket, TransitionSummary};
use crate::status::{MemberRole, Priority, TicketStatus};
use serde::{Deserialize, Deserializer, Serialize};

/// Deserialises a field that may be absent (`None`), `null` (`Some(None)`) or a value, for
/// the fields where `null` means "clear it".
pub(crate) fn nullable<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Deserialize::deserialize(deserializer).map(Some)
}

/// `POST /api/projects`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateProjectBody {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub description: Option<String>,
}

/// `PATCH /api/projects/{id}`: absent fields stay as they are; `description: null` clears it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateProjectBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub name: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "nullable"
    )]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub description: Option<Option<String>>,
}

/// `POST /api/projects/{id}/members`: adds a member or changes a member's role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AddMemberBody {
    pub user_id: String,
    pub role: MemberRole,
}

/// `POST /api/projects/{id}/tickets`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateTicketBody {
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub description: Option<String>,
    /// `MEDIUM` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub priority: Option<Priority>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub labels: Option<Vec<String>>,
    /// `BACKLOG` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub status: Option<TicketStatus>,
}

/// `PATCH /api/tickets/{id}`: absent fields stay as they are; `description: null` clears it.
/// A body with none of the ticket's fields changes nothing and emits nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateTicketBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub title: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "nullable"
    )]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub description: Option<Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub priority: Option<Priority>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub labels: Option<Vec<String>>,
    /// Refuse with `VERSION_CONFLICT` unless the ticket still has this version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub expected_version: Option<i64>,
}

/// `POST /api/tickets/{id}/transition`: the ticket goes to the end of the new column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TransitionTicketBody {
    pub to_state: TicketStatus,
    /// Recorded in the transition history; the caller's user id when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub triggered_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub expected_version: Option<i64>,
}

/// `POST /api/tickets/{id}/move`: a place in a column. Neighbour ids win over `position`;
/// with both neighbours given, `afterId` wins. Without any, the ticket goes to the end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MoveTicketBody {
    pub to_status: TicketStatus,
    /// Place directly above this ticket (a UUID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub before_id: Option<String>,
    /// Place directly below this ticket (a UUID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub after_id: Option<String>,
    /// Zero-based index in the target column, clamped to its length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub position: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub expected_version: Option<i64>,
}

/// The query string of `DELETE /api/tickets/{id}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeleteTicketQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub expected_version: Option<i64>,
}

/// The query string of `GET /api/projects/{id}/events`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EventsQuery {
    /// Events with a greater seq are returned; 0 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub since: Option<i64>,
    /// 1 to 1000; 100 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub limit: Option<i64>,
}

/// `GET /api/projects/{id}/events`: a page of the durable event log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct EventsPage {
    /// In seq order. Page on with the last seq received.
    #[cfg_attr(feature = "ts", ts(as = "Vec<crate::events::BoardEventEnvelope>"))]
    pub events: Vec<EventEnvelope>,
    /// Events after `since` were pruned by retention: fetch a snapshot instead.
    pub truncated: bool,
}

/// `GET /api/projects/{id}/me`: the caller's access to a board and the board's latest seq
/// (what a gateway asks before letting a socket join the board's room).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct Access {
    pub project_id: String,
    pub user_id: String,
    pub role: MemberRole,
    pub seq: i64,
}

/// `POST /api/tickets/{id}/move`'s answer (and the `ticket:move` ack's fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct MovedTicket {
    pub ticket: Ticket,
    pub from_status: TicketStatus,
}

/// `POST /api/tickets/{id}/transition`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct TransitionResult {
    pub ticket: Ticket,
    pub transition: TransitionSummary,
}

/// `POST /api/auth/dev-token` (only when dev tokens are enabled).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DevTokenRequest {
    pub user_id: String,
    /// The display name; the user id when absent or blank.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub name: Option<String>,
}

/// `POST /api/auth/dev-token`'s answer: a bearer token for the REST API and the sockets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct DevTokenResponse {
    pub token: String,
}
