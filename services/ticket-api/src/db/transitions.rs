//! The `ticket_transitions` table: the history of status changes.

use super::schema::ticket_transitions;
use super::timestamp;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use kanban_protocol::TicketTransition;
use uuid::Uuid;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = ticket_transitions)]
pub struct TransitionRow {
    pub id: i64,
    pub ticket_id: Uuid,
    pub from_status: String,
    pub to_status: String,
    pub triggered_by: String,
    pub reason: Option<String>,
    pub at: DateTime<Utc>,
}

impl TransitionRow {
    pub fn to_wire(&self) -> Result<TicketTransition, String> {
        Ok(TicketTransition {
            id: self.id,
            ticket_id: self.ticket_id.to_string(),
            from_status: self
                .from_status
                .parse()
                .map_err(|e| format!("stored transition: {e}"))?,
            to_status: self
                .to_status
                .parse()
                .map_err(|e| format!("stored transition: {e}"))?,
            triggered_by: self.triggered_by.clone(),
            reason: self.reason.clone(),
            at: timestamp(self.at),
        })
    }
}

#[derive(Debug, Insertable)]
#[diesel(table_name = ticket_transitions)]
pub struct NewTransition<'a> {
    pub ticket_id: Uuid,
    pub from_status: &'a str,
    pub to_status: &'a str,
    pub triggered_by: &'a str,
    pub reason: Option<&'a str>,
}

pub async fn insert(
    conn: &mut AsyncPgConnection,
    new: &NewTransition<'_>,
) -> QueryResult<TransitionRow> {
    diesel::insert_into(ticket_transitions::table)
        .values(new)
        .returning(TransitionRow::as_returning())
        .get_result(conn)
        .await
}

/// A ticket's transitions, oldest first.
pub async fn list_for_ticket(
    conn: &mut AsyncPgConnection,
    ticket_id: Uuid,
) -> QueryResult<Vec<TransitionRow>> {
    ticket_transitions::table
        .filter(ticket_transitions::ticket_id.eq(ticket_id))
        .select(TransitionRow::as_select())
        .order(ticket_transitions::id)
        .load(conn)
        .await
}
