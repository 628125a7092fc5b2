//! Who may do what on a board: membership lookups and the role rules.

use crate::auth::AuthUser;
use crate::db;
use crate::error::ApiError;
use diesel_async::AsyncPgConnection;
use kanban_protocol::MemberRole;
use uuid::Uuid;

/// What the caller wants to do with a project's resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Read,
    WriteTickets,
    ManageProject,
}

/// The caller's role if it allows `need`. Non-members (and missing projects) get 404 so
/// that a board's existence is not revealed; members without the right role get 403.
pub async fn require(
    conn: &mut AsyncPgConnection,
    project_id: Uuid,
    user: &AuthUser,
    need: Need,
) -> Result<MemberRole, ApiError> {
    let role = db::members::role_of(conn, project_id, &user.id)
        .await?
        .ok_or_else(|| ApiError::not_found("project"))?;
    let role: MemberRole = role
        .parse()
        .map_err(|e| super::corrupt(format!("stored role: {e}")))?;
    let allowed = match need {
        Need::Read => true,
        Need::WriteTickets => role.can_write_tickets(),
        Need::ManageProject => role.can_manage_project(),
    };
    if allowed {
        Ok(role)
    } else {
        Err(ApiError::Forbidden(format!(
            "role '{role}' may not do this"
        )))
    }
}

/// A ticket's board is hidden from non-members: say "ticket not found", not "project".
pub fn hide_as_ticket(error: ApiError) -> ApiError {
    match error {
        ApiError::NotFound(_) => ApiError::not_found("ticket"),
        other => other,
    }
}
