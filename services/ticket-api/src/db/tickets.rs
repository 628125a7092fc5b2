//! The `tickets` table: rows, inserts, changes and column (rank order) queries.

use super::schema::tickets;
use super::timestamp;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use kanban_protocol::Ticket;
use uuid::Uuid;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = tickets)]
pub struct TicketRow {
    pub id: Uuid,
    pub project_id: Uuid,
    pub title: String,
    pub description: Option<String>,
    pub status: String,
    pub priority: String,
    pub labels: Vec<String>,
    pub rank: String,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl TicketRow {
    /// The wire shape, with the ticket's index in its column.
    pub fn to_wire(&self, position: i64) -> Result<Ticket, String> {
        Ok(Ticket {
            id: self.id.to_string(),
            project_id: self.project_id.to_string(),
            title: self.title.clone(),
            description: self.description.clone(),
            status: self
                .status
                .parse()
                .map_err(|e| format!("stored ticket status: {e}"))?,
            priority: self
                .priority
                .parse()
                .map_err(|e| format!("stored ticket priority: {e}"))?,
            labels: self.labels.clone(),
            rank: self.rank.clone(),
            position,
            version: self.version,
            created_at: timestamp(self.created_at),
            updated_at: timestamp(self.updated_at),
        })
    }
}

#[derive(Debug, Insertable)]
#[diesel(table_name = tickets)]
pub struct NewTicket<'a> {
    pub id: Uuid,
    pub project_id: Uuid,
    pub title: &'a str,
    pub description: Option<&'a str>,
    pub status: &'a str,
    pub priority: &'a str,
    pub labels: &'a [String],
    pub rank: &'a str,
}

/// Field changes of a PATCH; `None` leaves a field as it is.
#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = tickets)]
pub struct TicketChanges {
    pub title: Option<String>,
    pub description: Option<Option<String>>,
    pub priority: Option<String>,
    pub labels: Option<Vec<String>>,
    pub status: Option<String>,
    pub rank: Option<String>,
}

pub async fn insert(conn: &mut AsyncPgConnection, new: &NewTicket<'_>) -> QueryResult<TicketRow> {
    diesel::insert_into(tickets::table)
        .values(new)
        .returning(TicketRow::as_returning())
        .get_result(conn)
        .await
}

pub async fn find(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<TicketRow>> {
    tickets::table
        .find(id)
        .select(TicketRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// The project a ticket belongs to, without loading the ticket.
pub async fn project_of(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<Uuid>> {
    tickets::table
        .find(id)
        .select(tickets::project_id)
        .first(conn)
        .await
        .optional()
}

/// Applies `changes`, bumps the version and the update time.
pub async fn update(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    changes: &TicketChanges,
) -> QueryResult<TicketRow> {
    diesel::update(tickets::table.find(id))
        .set((
            changes,
            tickets::version.eq(tickets::version + 1),
            tickets::updated_at.eq(diesel::dsl::now),
        ))
        .returning(TicketRow::as_returning())
        .get_result(conn)
        .await
}

/// Sets a rank without touching the version (column rebalancing: the order is unchanged).
pub async fn set_rank(conn: &mut AsyncPgConnection, id: Uuid, rank: &str) -> QueryResult<()> {
    diesel::update(tickets::table.find(id))
        .set(tickets::rank.eq(rank))
        .execute(conn)
        .await
        .map(drop)
}

pub async fn delete(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<usize> {
    diesel::delete(tickets::table.find(id)).execute(conn).await
}

/// `(id, rank)` of every ticket in one column, in board order.
pub async fn column(
    conn: &mut AsyncPgConnection,
    project_id: Uuid,
    status: &str,
) -> QueryResult<Vec<(Uuid, String)>> {
    tickets::table
        .filter(tickets::project_id.eq(project_id))
        .filter(tickets::status.eq(status))
        .select((tickets::id, tickets::rank))
        .order((tickets::rank, tickets::id))
        .load(conn)
        .await
}

/// The zero-based index of `row` in its column.
pub async fn position_of(conn: &mut AsyncPgConnection, row: &TicketRow) -> QueryResult<i64> {
    tickets::table
        .filter(tickets::project_id.eq(row.project_id))
        .filter(tickets::status.eq(&row.status))
        .filter(
            tickets::rank
                .lt(&row.rank)
                .or(tickets::rank.eq(&row.rank).and(tickets::id.lt(row.id))),
        )
        .count()
        .get_result(conn)
        .await
}

/// Every ticket of a project, ordered by rank within each status.
pub async fn list_for_project(
    conn: &mut AsyncPgConnection,
    project_id: Uuid,
) -> QueryResult<Vec<TicketRow>> {
    tickets::table
        .filter(tickets::project_id.eq(project_id))
        .select(TicketRow::as_select())
        .order((tickets::status, tickets::rank, tickets::id))
        .load(conn)
        .await
}
