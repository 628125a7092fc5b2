//! The `projects` table: rows, inserts, changes and the per-project event sequence lock.

use super::schema::projects;
use super::timestamp;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use kanban_protocol::Project;
use uuid::Uuid;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = projects)]
pub struct ProjectRow {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub event_seq: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl ProjectRow {
    pub fn to_wire(&self) -> Project {
        Project {
            id: self.id.to_string(),
            name: self.name.clone(),
            description: self.description.clone(),
            created_at: timestamp(self.created_at),
            updated_at: timestamp(self.updated_at),
        }
    }
}

#[derive(Debug, Insertable)]
#[diesel(table_name = projects)]
pub struct NewProject<'a> {
    pub id: Uuid,
    pub name: &'a str,
    pub description: Option<&'a str>,
}

#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = projects)]
pub struct ProjectChanges {
    pub name: Option<String>,
    pub description: Option<Option<String>>,
}

pub async fn insert(conn: &mut AsyncPgConnection, new: &NewProject<'_>) -> QueryResult<ProjectRow> {
    diesel::insert_into(projects::table)
        .values(new)
        .returning(ProjectRow::as_returning())
        .get_result(conn)
        .await
}

pub async fn find(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<ProjectRow>> {
    projects::table
        .find(id)
        .select(ProjectRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// Locks the project row until the end of the transaction and returns its last allocated
/// event seq. Every write to a board takes this lock first, so writes to one board are
/// serialised and their events are numbered in commit order.
pub async fn lock_for_write(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<i64>> {
    projects::table
        .find(id)
        .select(projects::event_seq)
        .for_update()
        .first(conn)
        .await
        .optional()
}

pub async fn set_event_seq(conn: &mut AsyncPgConnection, id: Uuid, seq: i64) -> QueryResult<()> {
    diesel::update(projects::table.find(id))
        .set(projects::event_seq.eq(seq))
        .execute(conn)
        .await
        .map(drop)
}

pub async fn update(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    changes: &ProjectChanges,
) -> QueryResult<ProjectRow> {
    diesel::update(projects::table.find(id))
        .set((changes, projects::updated_at.eq(diesel::dsl::now)))
        .returning(ProjectRow::as_returning())
        .get_result(conn)
        .await
}

pub async fn delete(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<usize> {
    diesel::delete(projects::table.find(id)).execute(conn).await
}

/// The projects `user_id` is a member of, newest first.
pub async fn list_for_user(
    conn: &mut AsyncPgConnection,
    user_id: &str,
) -> QueryResult<Vec<ProjectRow>> {
    use super::schema::project_members;
    projects::table
        .inner_join(project_members::table)
        .filter(project_members::user_id.eq(user_id))
        .select(ProjectRow::as_select())
        .order((projects::created_at.desc(), projects::id))
        .load(conn)
        .await
}
