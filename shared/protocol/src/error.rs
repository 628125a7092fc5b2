//! Error codes and the one error body shape used by HTTP responses, socket acks and
//! socket `error` events.

use crate::model::Ticket;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A machine-readable error code. HTTP status mapping lives with each service; the code
/// is what clients branch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// No credentials, or credentials that failed validation.
    Unauthorized,
    /// Authenticated, but the role does not allow this.
    Forbidden,
    /// The resource does not exist, or the caller may not know that it does.
    NotFound,
    /// The input is malformed or breaks a rule (lengths, enums, unknown fields).
    Validation,
    /// The requested status change is not in the transition table.
    InvalidTransition,
    /// `expectedVersion` did not match the stored version.
    VersionConflict,
    /// The request body is larger than allowed.
    PayloadTooLarge,
    /// Too many requests or commands in a short time.
    RateLimited,
    /// A dependency (database, cache) is unreachable; retry later.
    Unavailable,
    /// An unexpected failure; details are in the server log, never in the response.
    Internal,
}

impl ErrorCode {
    /// The wire spelling, e.g. `INVALID_TRANSITION`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::Validation => "VALIDATION",
            ErrorCode::InvalidTransition => "INVALID_TRANSITION",
            ErrorCode::VersionConflict => "VERSION_CONFLICT",
            ErrorCode::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            ErrorCode::RateLimited => "RATE_LIMITED",
            ErrorCode::Unavailable => "UNAVAILABLE",
            ErrorCode::Internal => "INTERNAL",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The inner object of an error body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ErrorDetail {
    pub code: ErrorCode,
    pub message: String,
    /// Extra data for some codes: for `VERSION_CONFLICT`, `{"ticket": <current ticket>}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(type = "unknown"))]
    pub details: Option<serde_json::Value>,
}

/// `{"error": {"code": "...", "message": "...", "details"?: ...}}`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

impl ErrorBody {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorBody {
            error: ErrorDetail {
                code,
                message: message.into(),
                details: None,
            },
        }
    }

    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.error.details = Some(details);
        self
    }

    /// A `VERSION_CONFLICT` whose details carry the ticket as it is now.
    pub fn version_conflict(message: impl Into<String>, current: Ticket) -> Self {
        let mut body = ErrorBody::new(ErrorCode::VersionConflict, message);
        body.error.details = serde_json::to_value(VersionConflictDetails { ticket: current }).ok();
        body
    }
}

/// The `details` of a `VERSION_CONFLICT`: the ticket as it is now, so that the client can
/// merge and retry with its `version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct VersionConflictDetails {
    pub ticket: Ticket,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_serialize_as_their_wire_spelling() {
        for code in [
            ErrorCode::Unauthorized,
            ErrorCode::Forbidden,
            ErrorCode::NotFound,
            ErrorCode::Validation,
            ErrorCode::InvalidTransition,
            ErrorCode::VersionConflict,
            ErrorCode::PayloadTooLarge,
            ErrorCode::RateLimited,
            ErrorCode::Unavailable,
            ErrorCode::Internal,
        ] {
            assert_eq!(
                serde_json::to_value(code).ok(),
                Some(serde_json::json!(code.as_str()))
            );
        }
    }

    #[test]
    fn body_has_the_documented_shape() {
        let body = ErrorBody::new(
            ErrorCode::InvalidTransition,
            "DONE -> BACKLOG is not allowed",
        );
        assert_eq!(
            serde_json::to_value(&body).ok(),
            Some(serde_json::json!({
                "error": {"code": "INVALID_TRANSITION", "message": "DONE -> BACKLOG is not allowed"}
            }))
        );
    }
}
