//! The `events` table: the transactional outbox and durable per-project event log.

use super::schema::events;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use kanban_protocol::events::EventEnvelope;
use uuid::Uuid;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = events)]
pub struct EventRow {
    pub project_id: Uuid,
    pub seq: i64,
    pub name: String,
    pub payload: serde_json::Value,
    pub mutation_id: Option<String>,
    pub traceparent: Option<String>,
    pub created_at: DateTime<Utc>,
    pub published_at: Option<DateTime<Utc>>,
}

impl EventRow {
    pub fn to_envelope(&self) -> EventEnvelope {
        EventEnvelope {
            project_id: self.project_id.to_string(),
            seq: self.seq,
            event: self.name.clone(),
            data: self.payload.clone(),
            ts: self.created_at.timestamp_millis(),
            mutation_id: self.mutation_id.clone(),
            traceparent: self.traceparent.clone(),
        }
    }
}

#[derive(Debug, Insertable)]
#[diesel(table_name = events)]
pub struct NewEvent<'a> {
    pub project_id: Uuid,
    pub seq: i64,
    pub name: &'a str,
    pub payload: &'a serde_json::Value,
    pub mutation_id: Option<&'a str>,
    pub traceparent: Option<&'a str>,
}

pub async fn insert_all(
    conn: &mut AsyncPgConnection,
    new: &[NewEvent<'_>],
) -> QueryResult<Vec<EventRow>> {
    diesel::insert_into(events::table)
        .values(new)
        .returning(EventRow::as_returning())
        .get_results(conn)
        .await
}

/// Up to `limit` events of a project with `seq > since`, in order.
pub async fn list_since(
    conn: &mut AsyncPgConnection,
    project_id: Uuid,
    since: i64,
    limit: i64,
) -> QueryResult<Vec<EventRow>> {
    events::table
        .filter(events::project_id.eq(project_id))
        .filter(events::seq.gt(since))
        .select(EventRow::as_select())
        .order(events::seq)
        .limit(limit)
        .load(conn)
        .await
}
