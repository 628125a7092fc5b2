//! The API's one error type and its mapping to HTTP status codes and the shared error body.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use kanban_protocol::{ErrorBody, ErrorCode, Ticket};

/// Every way a request can fail. Handlers return `Result<_, ApiError>`; this module is the
/// only place that decides status codes and bodies.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Validation(String),
    #[error("{0}")]
    InvalidTransition(String),
    /// `expectedVersion` was stale; carries the current ticket so the client can roll back.
    #[error("ticket has version {}, expected {expected}", current.version)]
    VersionConflict { expected: i64, current: Box<Ticket> },
    /// The route has no handler for the method; `allow` lists the methods it has.
    #[error("this route does not take {method}; it takes {allow}")]
    MethodNotAllowed { method: String, allow: String },
    #[error("{0}")]
    PayloadTooLarge(String),
    /// The idempotency key was bound to a different request (method, path or body).
    #[error("{0}")]
    IdempotencyKeyReused(String),
    /// Shed before any work: too many writes are already waiting for the same board.
    #[error("{0}")]
    RateLimited(String),
    #[error("a dependency is unavailable: {0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn validation(message: impl Into<String>) -> Self {
        ApiError::Validation(message.into())
    }

    pub fn not_found(what: &str) -> Self {
        ApiError::NotFound(format!("{what} not found"))
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            ApiError::Unauthorized(_) => ErrorCode::Unauthorized,
            ApiError::Forbidden(_) => ErrorCode::Forbidden,
            ApiError::NotFound(_) => ErrorCode::NotFound,
            ApiError::Validation(_) => ErrorCode::Validation,
            ApiError::InvalidTransition(_) => ErrorCode::InvalidTransition,
            ApiError::VersionConflict { .. } => ErrorCode::VersionConflict,
            ApiError::MethodNotAllowed { .. } => ErrorCode::MethodNotAllowed,
            ApiError::PayloadTooLarge(_) => ErrorCode::PayloadTooLarge,
            ApiError::IdempotencyKeyReused(_) => ErrorCode::IdempotencyKeyReused,
            ApiError::RateLimited(_) => ErrorCode::RateLimited,
            ApiError::Unavailable(_) => ErrorCode::Unavailable,
            ApiError::Internal(_) => ErrorCode::Internal,
        }
    }

    /// The body clients see. Causes of 500s and 503s stay in the log.
    pub fn body(&self) -> ErrorBody {
        match self {
            ApiError::Internal(_) => ErrorBody::new(ErrorCode::Internal, "internal server error"),
            ApiError::Unavailable(_) => ErrorBody::new(
                ErrorCode::Unavailable,
                "the service is temporarily unavailable, retry later",
            ),
            ApiError::VersionConflict { current, .. } => {
                ErrorBody::version_conflict(self.to_string(), (**current).clone())
            }
            other => ErrorBody::new(other.code(), other.to_string()),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self.code() {
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::Forbidden => StatusCode::FORBIDDEN,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::Validation | ErrorCode::InvalidTransition => StatusCode::BAD_REQUEST,
            ErrorCode::VersionConflict => StatusCode::CONFLICT,
            ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            ApiError::Internal(cause) => tracing::error!(error.cause = %cause, "request failed"),
            ApiError::Unavailable(cause) => {
                tracing::warn!(error.cause = %cause, "dependency unavailable")
            }
            // A client's mistake is not the operator's problem: the access log already
            // has its status. Only the code is logged, never the message or the ticket a
            // conflict carries (titles and descriptions are user content).
            other => tracing::debug!(error.code = ?other.code(), "request refused"),
        }
        let mut response = HttpResponse::build(self.status_code());
        if matches!(self, ApiError::Unauthorized(_)) {
            response.insert_header(("WWW-Authenticate", "Bearer"));
        }
        if let ApiError::MethodNotAllowed { allow, .. } = self {
            response.insert_header(("Allow", allow.as_str()));
        }
        if matches!(self, ApiError::Unavailable(_) | ApiError::RateLimited(_)) {
            response.insert_header(("Retry-After", "1"));
        }
        response.json(self.body())
    }
}

impl From<diesel::result::Error> for ApiError {
    fn from(error: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        match error {
            Error::NotFound => ApiError::not_found("resource"),
            Error::DatabaseError(DatabaseErrorKind::ClosedConnection, info) => {
                ApiError::Unavailable(info.message().to_owned())
            }
            Error::DatabaseError(DatabaseErrorKind::CheckViolation, info) => {
                ApiError::Validation(format!("value out of range: {}", info.message()))
            }
            Error::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
                ApiError::Validation(format!("already exists: {}", info.message()))
            }
            Error::DatabaseError(_, info) if is_connection_failure(info.message()) => {
                ApiError::Unavailable(info.message().to_owned())
            }
            other => ApiError::Internal(other.to_string()),
        }
    }
}

fn is_connection_failure(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    [
        "connection",
        "terminating",
        "shutting down",
        "broken pipe",
        "timed out",
    ]
    .iter()
    .any(|needle| message.contains(needle))
}

impl From<diesel_async::pooled_connection::deadpool::PoolError> for ApiError {
    fn from(error: diesel_async::pooled_connection::deadpool::PoolError) -> Self {
        ApiError::Unavailable(error.to_string())
    }
}

/// Turns actix-web's JSON extractor failures into coded 400/413 errors.
pub fn json_error_handler(
    error: actix_web::error::JsonPayloadError,
    _request: &actix_web::HttpRequest,
) -> actix_web::Error {
    use actix_web::error::JsonPayloadError;
    let api_error = match &error {
        JsonPayloadError::OverflowKnownLength { .. } | JsonPayloadError::Overflow { .. } => {
            ApiError::PayloadTooLarge("request body is too large".into())
        }
        JsonPayloadError::ContentType => {
            ApiError::Validation("Content-Type must be application/json".into())
        }
        JsonPayloadError::Deserialize(inner) => {
            ApiError::Validation(format!("invalid JSON body: {inner}"))
        }
        other => ApiError::Validation(format!("invalid request body: {other}")),
    };
    api_error.into()
}

/// Turns malformed path segments (e.g. a project id that is not a UUID) into 404s: such a
/// resource cannot exist.
pub fn path_error_handler(
    _error: actix_web::error::PathError,
    _request: &actix_web::HttpRequest,
) -> actix_web::Error {
    ApiError::not_found("resource").into()
}

/// Turns malformed query strings into coded 400s.
pub fn query_error_handler(
    error: actix_web::error::QueryPayloadError,
    _request: &actix_web::HttpRequest,
) -> actix_web::Error {
    ApiError::Validation(format!("invalid query string: {error}")).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::result::{DatabaseErrorKind, Error};

    fn from_database(kind: DatabaseErrorKind, message: &str) -> ApiError {
        ApiError::from(Error::DatabaseError(kind, Box::new(message.to_owned())))
    }

    #[test]
    fn a_lost_database_connection_is_a_retryable_503_that_keeps_its_cause_out_of_the_body() {
        for (kind, message) in [
            (
                DatabaseErrorKind::ClosedConnection,
                "server closed the connection unexpectedly",
            ),
            (
                DatabaseErrorKind::Unknown,
                "terminating connection due to administrator command",
            ),
            (
                DatabaseErrorKind::Unknown,
                "the database system is shutting down",
            ),
            (
                DatabaseErrorKind::Unknown,
                "could not send data: Broken pipe",
            ),
        ] {
            let error = from_database(kind, message);
            assert_eq!(
                error.status_code(),
                StatusCode::SERVICE_UNAVAILABLE,
                "{message}"
            );
            let response = error.error_response();
            assert_eq!(
                response.headers().get("Retry-After").map(|v| v.as_bytes()),
                Some(&b"1"[..]),
                "{message}"
            );
            let body = error.body();
            assert_eq!(body.error.code, ErrorCode::Unavailable);
            assert!(!body.error.message.contains(message), "{message}");
        }
    }

    #[test]
    fn a_shed_write_is_a_429_with_retry_after_and_its_message() {
        let error = ApiError::RateLimited("too many writes".into());
        assert_eq!(error.status_code(), StatusCode::TOO_MANY_REQUESTS);
        let response = error.error_response();
        assert_eq!(
            response.headers().get("Retry-After").map(|v| v.as_bytes()),
            Some(&b"1"[..])
        );
        let body = error.body();
        assert_eq!(body.error.code, ErrorCode::RateLimited);
        assert_eq!(body.error.message, "too many writes");
    }

    #[test]
    fn a_violated_constraint_is_the_clients_400_and_any_other_database_error_a_500() {
        let check = from_database(DatabaseErrorKind::CheckViolation, "position out of range");
        assert_eq!(check.status_code(), StatusCode::BAD_REQUEST);
        assert_eq!(
            check.body().error.message,
            "value out of range: position out of range"
        );
        let unique = from_database(DatabaseErrorKind::UniqueViolation, "duplicate key");
        assert_eq!(unique.status_code(), StatusCode::BAD_REQUEST);
        assert_eq!(unique.body().error.message, "already exists: duplicate key");

        let other = from_database(
            DatabaseErrorKind::SerializationFailure,
            "could not serialize",
        );
        assert_eq!(other.status_code(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(other.body().error.message, "internal server error");
        assert_eq!(
            ApiError::from(Error::NotFound).status_code(),
            StatusCode::NOT_FOUND
        );
    }
}
