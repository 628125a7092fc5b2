//! The `project_members` table: who may see and change which board, with which role.

use super::schema::project_members;
use super::timestamp;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::upsert::excluded;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use kanban_protocol::{MemberRole, ProjectMember};
use uuid::Uuid;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = project_members)]
pub struct MemberRow {
    pub project_id: Uuid,
    pub user_id: String,
    pub role: String,
    pub created_at: DateTime<Utc>,
}

impl MemberRow {
    pub fn to_wire(&self) -> Result<ProjectMember, String> {
        Ok(ProjectMember {
            project_id: self.project_id.to_string(),
            user_id: self.user_id.clone(),
            role: self
                .role
                .parse()
                .map_err(|e| format!("stored member role: {e}"))?,
            created_at: timestamp(self.created_at),
        })
    }
}

/// The caller's role in a project, or `None` when not a member (or no such project).
pub async fn role_of(
    conn: &mut AsyncPgConnection,
    project_id: Uuid,
    user_id: &str,
) -> QueryResult<Option<String>> {
    project_members::table
        .find((project_id, user_id))
        .select(project_members::role)
        .first(conn)
        .await
        .optional()
}

/// Adds a member or changes an existing member's role.
pub async fn upsert(
    conn: &mut AsyncPgConnection,
    project_id: Uuid,
    user_id: &str,
    role: MemberRole,
) -> QueryResult<MemberRow> {
    diesel::insert_into(project_members::table)
        .values((
            project_members::project_id.eq(project_id),
            project_members::user_id.eq(user_id),
            project_members::role.eq(role.as_str()),
        ))
        .on_conflict((project_members::project_id, project_members::user_id))
        .do_update()
        .set(project_members::role.eq(excluded(project_members::role)))
        .returning(MemberRow::as_returning())
        .get_result(conn)
        .await
}

pub async fn delete(
    conn: &mut AsyncPgConnection,
    project_id: Uuid,
    user_id: &str,
) -> QueryResult<usize> {
    diesel::delete(project_members::table.find((project_id, user_id)))
        .execute(conn)
        .await
}

pub async fn count_owners(conn: &mut AsyncPgConnection, project_id: Uuid) -> QueryResult<i64> {
    project_members::table
        .filter(project_members::project_id.eq(project_id))
        .filter(project_members::role.eq(MemberRole::Owner.as_str()))
        .count()
        .get_result(conn)
        .await
}

pub async fn list(conn: &mut AsyncPgConnection, project_id: Uuid) -> QueryResult<Vec<MemberRow>> {
    project_members::table
        .filter(project_members::project_id.eq(project_id))
        .select(MemberRow::as_select())
        .order((project_members::created_at, project_members::user_id))
        .load(conn)
        .await
}
