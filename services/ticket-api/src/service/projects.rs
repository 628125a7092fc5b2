//! Project use cases: create, list, snapshot, update, delete, membership, event log.

use super::access::{require, Need};
use super::corrupt;
use super::outbox::{MutationMeta, Outbox};
use crate::auth::AuthUser;
use crate::db::{self, PgConn};
use crate::domain::{Description, ProjectName, UserId};
use crate::error::ApiError;
use diesel_async::AsyncConnection;
use kanban_protocol::events::{names, EventEnvelope, MemberChangedPayload};
use kanban_protocol::{BoardSnapshot, MemberRole, Project, ProjectMember, Ticket, TicketStatus};
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
) -> Result<Project, ApiError> {
    let description = input.description.into_inner();
    conn.transaction(async |conn| {
        let row = db::projects::insert(
            conn,
            &db::projects::NewProject {
                id: Uuid::new_v4(),
                name: input.name.as_str(),
                description: description.as_deref(),
            },
        )
        .await?;
        db::members::upsert(conn, row.id, &user.id, MemberRole::Owner).await?;
        Ok(row.to_wire())
    })
    .await
}

pub async fn list(conn: &mut PgConn, user: &AuthUser) -> Result<Vec<Project>, ApiError> {
    let rows = db::projects::list_for_user(conn, &user.id).await?;
    Ok(rows.iter().map(db::projects::ProjectRow::to_wire).collect())
}

/// The whole board and the event seq it reflects, read in one repeatable-read snapshot.
pub async fn snapshot(
    conn: &mut PgConn,
    user: &AuthUser,
    project_id: Uuid,
) -> Result<BoardSnapshot, ApiError> {
    conn.build_transaction()
        .read_only()
        .repeatable_read()
        .run(async |conn| {
            require(conn, project_id, user, Need::Read).await?;
            let project = db::projects::find(conn, project_id)
                .await?
                .ok_or_else(|| ApiError::not_found("project"))?;
            let rows = db::tickets::list_for_project(conn, project_id).await?;
            Ok(BoardSnapshot {
                project: project.to_wire(),
                tickets: board_order(&rows)?,
                seq: project.event_seq,
            })
        })
        .await
}

/// Tickets in swim-lane order, then rank, with their positions in their columns.
fn board_order(rows: &[db::tickets::TicketRow]) -> Result<Vec<Ticket>, ApiError> {
    let mut tickets = Vec::with_capacity(rows.len());
    for status in TicketStatus::ALL {
        let column = rows.iter().filter(|row| row.status == status.as_str());
        for (position, row) in column.enumerate() {
            tickets.push(row.to_wire(position as i64).map_err(corrupt)?);
        }
    }
    if tickets.len() != rows.len() {
        return Err(corrupt("a stored ticket has an unknown status".into()));
    }
    Ok(tickets)
}

pub async fn update(
    conn: &mut PgConn,
    user: &AuthUser,
    project_id: Uuid,
    input: UpdateProject,
    meta: &MutationMeta,
) -> Result<Project, ApiError> {
    conn.transaction(async |conn| {
        require(conn, project_id, user, Need::ManageProject).await?;
        let mut outbox = Outbox::lock(conn, project_id)
            .await?
            .ok_or_else(|| ApiError::not_found("project"))?;
        let changes = db::projects::ProjectChanges {
            name: input.name.map(ProjectName::into_inner),
            description: input.description.map(Description::into_inner),
        };
        let row = if changes.name.is_none() && changes.description.is_none() {
            db::projects::find(conn, project_id)
                .await?
                .ok_or_else(|| ApiError::not_found("project"))?
        } else {
            db::projects::update(conn, project_id, &changes).await?
        };
        let project = row.to_wire();
        outbox.push(names::PROJECT_UPDATED, &project)?;
        outbox.commit(conn, meta).await?;
        Ok(project)
    })
    .await
}

pub async fn delete(
    conn: &mut PgConn,
    user: &AuthUser,
    project_id: Uuid,
    meta: &MutationMeta,
) -> Result<(), ApiError> {
    conn.transaction(async |conn| {
        require(conn, project_id, user, Need::ManageProject).await?;
        let mut outbox = Outbox::lock(conn, project_id)
            .await?
            .ok_or_else(|| ApiError::not_found("project"))?;
        outbox.push(names::PROJECT_DELETED, project_id.to_string())?;
        outbox.commit(conn, meta).await?;
        db::projects::delete(conn, project_id).await?;
        Ok(())
    })
    .await
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
) -> Result<ProjectMember, ApiError> {
    conn.transaction(async |conn| {
        require(conn, project_id, user, Need::ManageProject).await?;
        let mut outbox = Outbox::lock(conn, project_id)
            .await?
            .ok_or_else(|| ApiError::not_found("project"))?;
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
        outbox.push(
            names::MEMBER_ADDED,
            MemberChangedPayload {
                project_id: project_id.to_string(),
                user_id: member.as_str().to_owned(),
                role: Some(role),
            },
        )?;
        outbox.commit(conn, meta).await?;
        row.to_wire().map_err(corrupt)
    })
    .await
}

/// Removes a member: owners may remove anyone, anyone may remove themselves (leave).
pub async fn remove_member(
    conn: &mut PgConn,
    user: &AuthUser,
    project_id: Uuid,
    member: UserId,
    meta: &MutationMeta,
) -> Result<(), ApiError> {
    conn.transaction(async |conn| {
        let need = if member.as_str() == user.id {
            Need::Read
        } else {
            Need::ManageProject
        };
        require(conn, project_id, user, need).await?;
        let mut outbox = Outbox::lock(conn, project_id)
            .await?
            .ok_or_else(|| ApiError::not_found("project"))?;
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
        outbox.push(
            names::MEMBER_REMOVED,
            MemberChangedPayload {
                project_id: project_id.to_string(),
                user_id: member.into_inner(),
                role: None,
            },
        )?;
        outbox.commit(conn, meta).await?;
        Ok(())
    })
    .await
}

/// The durable event log: up to `limit` events after `since`.
pub async fn events_since(
    conn: &mut PgConn,
    user: &AuthUser,
    project_id: Uuid,
    since: i64,
    limit: i64,
) -> Result<Vec<EventEnvelope>, ApiError> {
    require(conn, project_id, user, Need::Read).await?;
    let rows = db::events::list_since(conn, project_id, since, limit).await?;
    Ok(rows.iter().map(db::events::EventRow::to_envelope).collect())
}
