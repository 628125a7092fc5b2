//! Use cases: each public function is one request's work in one transaction, with access
//! checks, domain rules and the outbox events it commits.

pub mod access;
pub mod board;
pub mod idempotency;
pub mod outbox;
pub mod projects;
pub mod tickets;

use crate::error::ApiError;

/// Maps a stored value that no longer parses (a row outside the domain) to a 500.
pub(crate) fn corrupt(message: String) -> ApiError {
    ApiError::Internal(message)
}
