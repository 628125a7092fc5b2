//! Project use cases: create, list, snapshot, update, delete, membership, event log.

use super::access::{require, Need};
use super::corrupt;
use super::mutation::{Committed, MutationMeta};
use super::unit_of_work::{self, Answer, Board};
use crate::auth::AuthUser;
use crate::db::{self, PgConn};
use crate::domain::{Description, ProjectName, UserId};
use crate::error::ApiError;
use kanban_protocol::events::MemberChangedPayload;
use kanban_protocol::rest::{Access, EventsPage};
use kanban_protocol::{BoardEvent, MemberRole, Project, ProjectMember};
use uuid::Uuid;

pub struct CreateProject {
    pub name: ProjectName,
    pub description: Description,
}

pub struct UpdateProject {
    pub name: Option<ProjectName>,
    /// `Some(None)` clears the description.
    pub description: Option<Description>,
}

pub async fn create(
    conn: &mut PgConn,
    user: &AuthUser,
    input: CreateProject,
    meta: &MutationMeta,
) -> Result<Committed<Project>, ApiError> {
    let id = Uuid::new_v4();
    let description = input.description.into_inner();
    unit_of_work::run(
        conn,
        user,
        meta,
        "project.create",
        Board::New(id),
        async |conn, _outbox| {
            let row = db::projects::insert(
                conn,
                &db::projects::NewProject {
                    id,
                    name: input.name.as_str(),
                    description: description.as_deref(),
                },
            )
            .await?;
            db::members::upsert(conn, row.id, &user.id, MemberRole::Owner).await?;
            Ok(Answer::Changed(row.to_wire()))
        },
    )
    .await
}

pub async fn list(conn: &mut PgConn, user: &AuthUser) -> Result<Vec<Project>, ApiError> {
    let rows = db::projects::list_for_user(conn, &user.id).await?;
    Ok(rows.iter().map(db::projects::ProjectRow::to_wire).collect())
}

pub async fn update(
    conn: &mut PgConn,
    user: &AuthUser,
    project_id: Uuid,
    input: UpdateProject,
    meta: &MutationMeta,
) -> Result<Committed<Project>, ApiError> {
    unit_of_work::run(
        conn,
        user,
        meta,
        "project.update",
        Board::Project(project_id, Need::ManageProject),
        async |conn, outbox| {
            let changes = db::projects::ProjectChanges {
                name: input.name.map(ProjectName::into_inner),
                description: input.description.map(Description::into_inner),
            };
            if changes.name.is_none() && changes.description.is_none() {
                // Nothing to change: no event.
                let row = db::projects::find(conn, project_id)
                    .await?
                    .ok_or_else(|| ApiError::not_found("project"))?;
                return Ok(Answer::Unchanged(row.to_wire()));
            }
            let project = db::projects::update(conn, project_id, &changes)
                .await?
                .to_wire();
            outbox.push(BoardEvent::ProjectUpdated(project.clone()))?;
            Ok(Answer::Changed(project))
        },
    )
    .await
}

pub async fn delete(
    conn: &mut PgConn,
    user: &AuthUser,
    project_id: Uuid,
    meta: &MutationMeta,
) -> Result<Committed<()>, ApiError> {
    unit_of_work::run(
        conn,
        user,
        meta,
        "project.delete",
        Board::Project(project_id, Need::ManageProject),
        async |conn, outbox| {
            // The event outlives the project's rows (the outbox has no foreign key).
            db::projects::delete(conn, project_id).await?;
            outbox.push(BoardEvent::ProjectDeleted(project_id.to_string()))?;
            Ok(Answer::Changed(()))
        },
    )
    .await
}

/// The caller's access to a project and the project's latest seq (what a gateway asks
/// before letting a socket join the board's room).
pub async fn access(
    conn: &mut PgConn,
    user: &AuthUser,
    project_id: Uuid,
) -> Result<Access, ApiError> {
    let role = require(conn, project_id, user, Need::Read).await?;
    let project = db::projects::find(conn, project_id)
        .await?
        .ok_or_else(|| ApiError::not_found("project"))?;
    Ok(Access {
        project_id: project_id.to_string(),
        user_id: user.id.clone(),
        role,
        seq: project.event_seq,
    })
}

pub async fn members(
    conn: &mut PgConn,
    user: &AuthUser,
    project_id: Uuid,
) -> Result<Vec<ProjectMember>, ApiError> {
    require(conn, project_id, user, Need::Read).await?;
    let rows = db::members::list(conn, project_id).await?;
    rows.iter()
        .map(|row| row.to_wire().map_err(corrupt))
        .collect()
}

/// Adds a member or changes a member's role (owners only). A project keeps at least one owner.
pub async fn put_member(
    conn: &mut PgConn,
    user: &AuthUser,
    project_id: Uuid,
    member: UserId,
    role: MemberRole,
    meta: &MutationMeta,
) -> Result<Committed<ProjectMember>, ApiError> {
    unit_of_work::run(
        conn,
        user,
        meta,
        "project.put_member",
        Board::Project(project_id, Need::ManageProject),
        async |conn, outbox| {
            let previous = db::members::role_of(conn, project_id, member.as_str()).await?;
            if previous.as_deref() == Some(MemberRole::Owner.as_str())
                && role != MemberRole::Owner
                && db::members::count_owners(conn, project_id).await? <= 1
            {
                return Err(ApiError::validation(
                    "a project must keep at least one owner",
                ));
            }
            let row = db::members::upsert(conn, project_id, member.as_str(), role).await?;
            outbox.push(BoardEvent::MemberAdded(MemberChangedPayload {
                project_id: project_id.to_string(),
                user_id: member.as_str().to_owned(),
                role: Some(role),
            }))?;
            Ok(Answer::Changed(row.to_wire().map_err(corrupt)?))
        },
    )
    .await
}

/// Removes a member: owners may remove anyone, anyone may remove themselves (leave).
pub async fn remove_member(
    conn: &mut PgConn,
    user: &AuthUser,
    project_id: Uuid,
    member: UserId,
    meta: &MutationMeta,
) -> Result<Committed<()>, ApiError> {
    let need = if member.as_str() == user.id {
        Need::Read
    } else {
        Need::ManageProject
    };
    unit_of_work::run(
        conn,
        user,
        meta,
        "project.remove_member",
        Board::Project(project_id, need),
        async |conn, outbox| {
            let role = db::members::role_of(conn, project_id, member.as_str())
                .await?
                .ok_or_else(|| ApiError::not_found("member"))?;
            if role == MemberRole::Owner.as_str()
                && db::members::count_owners(conn, project_id).await? <= 1
            {
                return Err(ApiError::validation(
                    "a project must keep at least one owner",
                ));
            }
            db::members::delete(conn, project_id, member.as_str()).await?;
            outbox.push(BoardEvent::MemberRemoved(MemberChangedPayload {
                project_id: project_id.to_string(),
                user_id: member.into_inner(),
                role: None,
            }))?;
            Ok(Answer::Changed(()))
        },
    )
    .await
}

/// The durable event log: up to `limit` events after `since`.
pub async fn events_since(
    conn: &mut PgConn,
    user: &AuthUser,
    project_id: Uuid,
    since: i64,
    limit: i64,
) -> Result<EventsPage, ApiError> {
    require(conn, project_id, user, Need::Read).await?;
    let rows = db::events::list_since(conn, project_id, since, limit).await?;
    let truncated = match rows.first() {
        Some(first) => first.seq > since + 1,
        None => {
            let latest = db::projects::find(conn, project_id)
                .await?
                .map_or(0, |p| p.event_seq);
            latest > since
                && db::events::first_seq(conn, project_id)
                    .await?
                    .is_none_or(|s| s > since + 1)
        }
    };
    Ok(EventsPage {
        events: rows.iter().map(db::events::EventRow::to_envelope).collect(),
        truncated,
    })
}
