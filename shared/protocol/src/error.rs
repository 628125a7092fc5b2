//! Error codes and the one error body shape used by HTTP responses, socket acks and
//! socket `error` events.

use crate::model::Ticket;
use serde::{Deserialize, Serialize};

wire_enum!(
    /// A machine-readable error code. HTTP status mapping lives with each service; the
    /// code is what clients branch on.
    ErrorCode, "error code", {
        /// No credentials, or credentials that failed validation.
        Unauthorized => "UNAUTHORIZED",
        /// Authenticated, but the role does not allow this.
        Forbidden => "FORBIDDEN",
        /// The resource does not exist, or the caller may not know that it does.
        NotFound => "NOT_FOUND",
        /// The input is malformed or breaks a rule (lengths, enums, unknown fields).
        Validation => "VALIDATION",
        /// The requested status change is not in the transition table.
        InvalidTransition => "INVALID_TRANSITION",
        /// `expectedVersion` did not match the stored version.
        VersionConflict => "VERSION_CONFLICT",
        /// The `Idempotency-Key` (a socket command's `mutationId`) was already used by this
        /// user for a different request; nothing was changed. Use a fresh key per change.
        IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
        /// The route exists but not with this HTTP method (the `Allow` header lists those it has).
        MethodNotAllowed => "METHOD_NOT_ALLOWED",
        /// The request body is larger than allowed.
        PayloadTooLarge => "PAYLOAD_TOO_LARGE",
        /// Too many requests or commands in a short time.
        RateLimited => "RATE_LIMITED",
        /// A dependency (database, cache) is unreachable; retry later.
        Unavailable => "UNAVAILABLE",
        /// An unexpected failure; details are in the server log, never in the response.
        Internal => "INTERNAL",
    }
);

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
        for &code in ErrorCode::ALL {
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
