//! Use cases: each public function is one request's work in one transaction, with access
//! checks, domain rules and the outbox events it commits (writes run in
//! [`unit_of_work::run`]).

pub mod access;
pub mod admission;
pub mod board;
pub mod idempotency;
pub mod mutation;
pub mod outbox;
pub mod projects;
pub mod tickets;
pub mod unit_of_work;
pub mod write_gate;

use crate::error::ApiError;

/// Maps a stored value that no longer parses (a row outside the domain) to a 500.
pub(crate) fn corrupt(message: String) -> ApiError {
    ApiError::Internal(message)
}

/// The span of one use case's transaction (`db.transaction`), named by the use case, e.g.
/// `ticket.move`: a child of the request's span, and the parent of its outbox write.
pub(crate) fn transaction_span(use_case: &'static str) -> tracing::Span {
    tracing::info_span!(
        "db.transaction",
        otel.name = %format_args!("transaction {use_case}"),
        db.system.name = "postgresql",
        kanban.use_case = use_case,
    )
}
