//! Collects the events of one write transaction and commits them to the outbox with the
//! project's next gap-free sequence numbers.

use super::mutation::MutationMeta;
use crate::db;
use crate::db::events::{EventRow, NewEvent};
use crate::error::ApiError;
use diesel_async::AsyncPgConnection;
use kanban_protocol::BoardEvent;
use tracing::Instrument;
use uuid::Uuid;

/// The open write transaction's view of one board: holds the project's row lock (taken in
/// [`Outbox::lock`]) and the events to append.
#[must_use = "events are only written by Outbox::commit"]
pub struct Outbox {
    project_id: Uuid,
    last_seq: i64,
    pending: Vec<(&'static str, serde_json::Value)>,
}

impl Outbox {
    /// Locks the project for this transaction. `None` when the project does not exist.
    pub async fn lock(
        conn: &mut AsyncPgConnection,
        project_id: Uuid,
    ) -> Result<Option<Outbox>, ApiError> {
        Ok(db::projects::lock_for_write(conn, project_id)
            .await?
            .map(|last_seq| Outbox {
                project_id,
                last_seq,
                pending: Vec::new(),
            }))
    }

    /// The outbox of a project this transaction creates: nothing to lock (no other
    /// transaction sees the row before the commit), and its seqs start at 1.
    pub fn for_new_project(project_id: Uuid) -> Outbox {
        Outbox {
            project_id,
            last_seq: 0,
            pending: Vec::new(),
        }
    }

    /// Queues one event: its name and payload go into the row's `name` and `payload`.
    pub fn push(&mut self, event: BoardEvent) -> Result<(), ApiError> {
        let name = event.name();
        let payload = event
            .data()
            .map_err(|e| ApiError::Internal(format!("encoding event {name}: {e}")))?;
        self.pending.push((name, payload));
        Ok(())
    }

    /// Writes the pending events with the next sequence numbers and advances the project's
    /// counter, in the caller's transaction.
    ///
    /// The events carry the W3C trace context of this write's span (`outbox.append`, in the
    /// request's trace) when tracing is on, so that the relay's publish and the gateways'
    /// fan-out join that trace; with tracing off, the request's own `traceparent`.
    pub async fn commit(
        self,
        conn: &mut AsyncPgConnection,
        meta: &MutationMeta,
    ) -> Result<Vec<EventRow>, ApiError> {
        if self.pending.is_empty() {
            return Ok(Vec::new());
        }
        let span = tracing::info_span!(
            "outbox.append",
            project.id = %self.project_id,
            event.count = self.pending.len(),
            event.first_seq = self.last_seq + 1,
        );
        let traceparent = kanban_telemetry::propagation::traceparent_of(&span)
            .or_else(|| meta.traceparent.clone());
        self.write(conn, meta, traceparent.as_deref())
            .instrument(span)
            .await
    }

    async fn write(
        self,
        conn: &mut AsyncPgConnection,
        meta: &MutationMeta,
        traceparent: Option<&str>,
    ) -> Result<Vec<EventRow>, ApiError> {
        let rows: Vec<NewEvent<'_>> = self
            .pending
            .iter()
            .zip(self.last_seq + 1..)
            .map(|((name, payload), seq)| NewEvent {
                project_id: self.project_id,
                seq,
                name,
                payload,
                mutation_id: meta.mutation_id.as_deref(),
                traceparent,
            })
            .collect();
        let last = self.last_seq + rows.len() as i64;
        let inserted = db::events::insert_all(conn, &rows).await?;
        db::projects::set_event_seq(conn, self.project_id, last).await?;
        db::events::notify_relay(conn).await?;
        Ok(inserted)
    }
}
