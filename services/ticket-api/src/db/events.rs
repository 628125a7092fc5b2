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
            ts_us: Some(self.created_at.timestamp_micros()),
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

/// The channel the relay LISTENs on; every outbox commit NOTIFYs it.
pub const NOTIFY_CHANNEL: &str = "kanban_outbox";

/// Wakes the relay (on whichever replica holds it) when the transaction commits.
pub async fn notify_relay(conn: &mut AsyncPgConnection) -> QueryResult<()> {
    diesel::sql_query(format!("NOTIFY {NOTIFY_CHANNEL}"))
        .execute(conn)
        .await
        .map(drop)
}

/// The oldest unpublished events, ordered by project then seq.
pub async fn unpublished(conn: &mut AsyncPgConnection, limit: i64) -> QueryResult<Vec<EventRow>> {
    events::table
        .filter(events::published_at.is_null())
        .select(EventRow::as_select())
        .order((events::project_id, events::seq))
        .limit(limit)
        .load(conn)
        .await
}

/// Marks each `(project, seq)` of `runs` published: the project's events up to that seq,
/// for every project in one statement.
pub async fn mark_published(
    conn: &mut AsyncPgConnection,
    runs: &[(Uuid, i64)],
) -> QueryResult<usize> {
    if runs.is_empty() {
        return Ok(0);
    }
    let (projects, up_to): (Vec<Uuid>, Vec<i64>) = runs.iter().copied().unzip();
    diesel::sql_query(
        "UPDATE events SET published_at = now() \
         FROM unnest($1::uuid[], $2::bigint[]) AS run(project_id, up_to) \
         WHERE events.project_id = run.project_id AND events.seq <= run.up_to \
         AND events.published_at IS NULL",
    )
    .bind::<diesel::sql_types::Array<diesel::sql_types::Uuid>, _>(projects)
    .bind::<diesel::sql_types::Array<diesel::sql_types::BigInt>, _>(up_to)
    .execute(conn)
    .await
}

/// Deletes published events older than `days` days; returns how many.
pub async fn delete_published_before(
    conn: &mut AsyncPgConnection,
    days: i64,
) -> QueryResult<usize> {
    let cutoff = chrono::Utc::now() - chrono::Duration::days(days);
    diesel::delete(
        events::table
            .filter(events::published_at.is_not_null())
            .filter(events::created_at.lt(cutoff)),
    )
    .execute(conn)
    .await
}

/// The smallest seq still stored for a project.
pub async fn first_seq(conn: &mut AsyncPgConnection, project_id: Uuid) -> QueryResult<Option<i64>> {
    events::table
        .filter(events::project_id.eq(project_id))
        .select(diesel::dsl::min(events::seq))
        .first(conn)
        .await
}
