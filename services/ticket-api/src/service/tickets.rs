//! Ticket use cases: create, read, update, delete, status transitions and moves with rank
//! keys, each with optimistic concurrency on `expectedVersion`.

use super::access::{hide_as_ticket, require, Need};
use super::corrupt;
use super::mutation::{Committed, MutationMeta};
use super::outbox::Outbox;
use super::unit_of_work::{self, Answer, Board};
use crate::auth::AuthUser;
use crate::db::tickets::{TicketChanges, TicketRow};
use crate::db::{self, PgConn};
use crate::domain::rank::{spread, MAX_RANK_LEN};
use crate::domain::{Description, Labels, Rank, Reason, Title, TriggeredBy};
use crate::error::ApiError;
use diesel_async::AsyncPgConnection;
use kanban_protocol::events::{ColumnRebalancedPayload, RankEntry, TicketMovedPayload};
use kanban_protocol::rest::MovedTicket;
use kanban_protocol::{
    BoardEvent, Priority, Ticket, TicketStatus, TicketTransition, TransitionSummary,
};
use uuid::Uuid;

pub struct CreateTicket {
    pub title: Title,
    pub description: Description,
    pub priority: Priority,
    pub labels: Labels,
    pub status: TicketStatus,
}

#[derive(Default)]
pub struct UpdateTicket {
    pub title: Option<Title>,
    pub description: Option<Description>,
    pub priority: Option<Priority>,
    pub labels: Option<Labels>,
    pub expected_version: Option<i64>,
}

pub struct TransitionTicket {
    pub to: TicketStatus,
    pub triggered_by: Option<TriggeredBy>,
    pub reason: Reason,
    pub expected_version: Option<i64>,
}

/// Where a moved ticket goes in its target column. Neighbour ids win over `position`;
/// with both neighbours given, `after` wins (the ticket lands right below it).
pub struct MoveTicket {
    pub to: TicketStatus,
    /// Place directly above this ticket.
    pub before_id: Option<Uuid>,
    /// Place directly below this ticket.
    pub after_id: Option<Uuid>,
    /// Zero-based index in the target column (clamped to its length).
    pub position: Option<i64>,
    pub expected_version: Option<i64>,
}

pub async fn create(
    conn: &mut PgConn,
    user: &AuthUser,
    project_id: Uuid,
    input: CreateTicket,
    meta: &MutationMeta,
) -> Result<Committed<Ticket>, ApiError> {
    unit_of_work::run(
        conn,
        user,
        meta,
        "ticket.create",
        Board::Project(project_id, Need::WriteTickets),
        async move |conn, outbox| {
            let status = input.status.as_str();
            let column = db::tickets::column(conn, project_id, status).await?;
            let (rank, position) =
                place(conn, outbox, project_id, input.status, column, None, None).await?;
            let description = input.description.into_inner();
            let labels = input.labels.into_inner();
            let row = db::tickets::insert(
                conn,
                &db::tickets::NewTicket {
                    id: Uuid::new_v4(),
                    project_id,
                    title: input.title.as_str(),
                    description: description.as_deref(),
                    status,
                    priority: input.priority.as_str(),
                    labels: &labels,
                    rank: rank.as_str(),
                },
            )
            .await?;
            let ticket = row.to_wire(position).map_err(corrupt)?;
            outbox.push(BoardEvent::TicketCreated(ticket.clone()))?;
            Ok(Answer::Changed(ticket))
        },
    )
    .await
}

pub async fn get(conn: &mut PgConn, user: &AuthUser, ticket_id: Uuid) -> Result<Ticket, ApiError> {
    let row = db::tickets::find(conn, ticket_id)
        .await?
        .ok_or_else(|| ApiError::not_found("ticket"))?;
    require(conn, row.project_id, user, Need::Read)
        .await
        .map_err(hide_as_ticket)?;
    let position = db::tickets::position_of(conn, &row).await?;
    row.to_wire(position).map_err(corrupt)
}

pub async fn history(
    conn: &mut PgConn,
    user: &AuthUser,
    ticket_id: Uuid,
) -> Result<Vec<TicketTransition>, ApiError> {
    let project_id = project_of(conn, ticket_id).await?;
    require(conn, project_id, user, Need::Read)
        .await
        .map_err(hide_as_ticket)?;
    let rows = db::transitions::list_for_ticket(conn, ticket_id).await?;
    rows.iter()
        .map(|row| row.to_wire().map_err(corrupt))
        .collect()
}

pub async fn update(
    conn: &mut PgConn,
    user: &AuthUser,
    ticket_id: Uuid,
    input: UpdateTicket,
    meta: &MutationMeta,
) -> Result<Committed<Ticket>, ApiError> {
    unit_of_work::run(
        conn,
        user,
        meta,
        "ticket.update",
        Board::OfTicket(ticket_id, Need::WriteTickets),
        async move |conn, outbox| {
            let row = locked_ticket(conn, ticket_id, input.expected_version).await?;
            let changes = TicketChanges {
                title: input.title.map(Title::into_inner),
                description: input.description.map(Description::into_inner),
                priority: input.priority.map(|p| p.as_str().to_owned()),
                labels: input.labels.map(Labels::into_inner),
                ..Default::default()
            };
            if changes.title.is_none()
                && changes.description.is_none()
                && changes.priority.is_none()
                && changes.labels.is_none()
            {
                // Nothing to change: no new version, no event.
                let position = db::tickets::position_of(conn, &row).await?;
                return Ok(Answer::Unchanged(row.to_wire(position).map_err(corrupt)?));
            }
            let row = db::tickets::update(conn, row.id, &changes).await?;
            let position = db::tickets::position_of(conn, &row).await?;
            let ticket = row.to_wire(position).map_err(corrupt)?;
            outbox.push(BoardEvent::TicketUpdated(ticket.clone()))?;
            Ok(Answer::Changed(ticket))
        },
    )
    .await
}

pub async fn delete(
    conn: &mut PgConn,
    user: &AuthUser,
    ticket_id: Uuid,
    expected_version: Option<i64>,
    meta: &MutationMeta,
) -> Result<Committed<()>, ApiError> {
    unit_of_work::run(
        conn,
        user,
        meta,
        "ticket.delete",
        Board::OfTicket(ticket_id, Need::WriteTickets),
        async move |conn, outbox| {
            let row = locked_ticket(conn, ticket_id, expected_version).await?;
            db::tickets::delete(conn, row.id).await?;
            outbox.push(BoardEvent::TicketDeleted(row.id.to_string()))?;
            Ok(Answer::Changed(()))
        },
    )
    .await
}

/// Changes a ticket's status along the transition table; it lands at the end of its new
/// column. Moving to the current status changes nothing and records nothing.
pub async fn transition(
    conn: &mut PgConn,
    user: &AuthUser,
    ticket_id: Uuid,
    input: TransitionTicket,
    meta: &MutationMeta,
) -> Result<Committed<(Ticket, TransitionSummary)>, ApiError> {
    // Answered as a pair (`[ticket, summary]`) and so remembered, as it always was: another
    // shape would make the keys stored before an upgrade unreadable on replay.
    unit_of_work::run(
        conn,
        user,
        meta,
        "ticket.transition",
        Board::OfTicket(ticket_id, Need::WriteTickets),
        async move |conn, outbox| {
            let row = locked_ticket(conn, ticket_id, input.expected_version).await?;
            let from = status_of(&row)?;
            let summary = TransitionSummary { from, to: input.to };
            if from == input.to {
                let position = db::tickets::position_of(conn, &row).await?;
                let ticket = row.to_wire(position).map_err(corrupt)?;
                return Ok(Answer::Unchanged((ticket, summary)));
            }
            check_transition(from, input.to)?;
            let triggered_by = input
                .triggered_by
                .map_or_else(|| user.id.clone(), TriggeredBy::into_inner);
            let column = db::tickets::column(conn, row.project_id, input.to.as_str()).await?;
            let (rank, position) =
                place(conn, outbox, row.project_id, input.to, column, None, None).await?;
            let moved = apply_move(
                conn,
                &row,
                input.to,
                rank,
                position,
                &triggered_by,
                input.reason.into_inner(),
            )
            .await?;
            outbox.push(BoardEvent::TicketMoved(moved_payload(&moved, from)))?;
            Ok(Answer::Changed((moved, summary)))
        },
    )
    .await
}

/// Moves a ticket to a place in a column (its own or another one along the transition
/// table). Concurrent moves on one board are serialised by the project lock and each is
/// applied against the column as it is at that moment, so none is lost and the final
/// order is the commit order.
pub async fn move_ticket(
    conn: &mut PgConn,
    user: &AuthUser,
    ticket_id: Uuid,
    input: MoveTicket,
    meta: &MutationMeta,
) -> Result<Committed<MovedTicket>, ApiError> {
    unit_of_work::run(
        conn,
        user,
        meta,
        "ticket.move",
        Board::OfTicket(ticket_id, Need::WriteTickets),
        async move |conn, outbox| {
            let row = locked_ticket(conn, ticket_id, input.expected_version).await?;
            let from = status_of(&row)?;
            check_transition(from, input.to)?;
            let mut column = db::tickets::column(conn, row.project_id, input.to.as_str()).await?;
            column.retain(|(id, _)| *id != row.id);
            let index = target_index(&column, &input)?;
            let (rank, position) = place(
                conn,
                outbox,
                row.project_id,
                input.to,
                column,
                Some(index),
                Some(row.id),
            )
            .await?;
            let moved = apply_move(conn, &row, input.to, rank, position, &user.id, None).await?;
            outbox.push(BoardEvent::TicketMoved(moved_payload(&moved, from)))?;
            Ok(Answer::Changed(MovedTicket {
                ticket: moved,
                from_status: from,
            }))
        },
    )
    .await
}

fn moved_payload(ticket: &Ticket, from: TicketStatus) -> TicketMovedPayload {
    TicketMovedPayload {
        ticket_id: ticket.id.clone(),
        from_status: from,
        to_status: ticket.status,
        project_id: ticket.project_id.clone(),
        position: Some(ticket.position),
        rank: ticket.rank.clone(),
        ticket: ticket.clone(),
    }
}

/// The ticket as every writer sees it: read under the board lock (taken by the unit of
/// work), and only at `expected_version` when one is given.
async fn locked_ticket(
    conn: &mut AsyncPgConnection,
    ticket_id: Uuid,
    expected_version: Option<i64>,
) -> Result<TicketRow, ApiError> {
    let row = db::tickets::find(conn, ticket_id)
        .await?
        .ok_or_else(|| ApiError::not_found("ticket"))?;
    if let Some(expected) = expected_version {
        if expected != row.version {
            let position = db::tickets::position_of(conn, &row).await?;
            let current = row.to_wire(position).map_err(corrupt)?;
            return Err(ApiError::VersionConflict {
                expected,
                current: Box::new(current),
            });
        }
    }
    Ok(row)
}

async fn project_of(conn: &mut AsyncPgConnection, ticket_id: Uuid) -> Result<Uuid, ApiError> {
    db::tickets::project_of(conn, ticket_id)
        .await?
        .ok_or_else(|| ApiError::not_found("ticket"))
}

fn status_of(row: &TicketRow) -> Result<TicketStatus, ApiError> {
    row.status
        .parse()
        .map_err(|e| corrupt(format!("stored ticket status: {e}")))
}

fn check_transition(from: TicketStatus, to: TicketStatus) -> Result<(), ApiError> {
    if from.can_transition_to(to) {
        Ok(())
    } else {
        Err(ApiError::InvalidTransition(format!(
            "Invalid transition from {from} to {to}"
        )))
    }
}

/// The index in `column` (which excludes the moved ticket) where it should land.
fn target_index(column: &[(Uuid, String)], input: &MoveTicket) -> Result<usize, ApiError> {
    let index_of = |id: Uuid, field: &str| {
        column
            .iter()
            .position(|(other, _)| *other == id)
            .ok_or_else(|| {
                ApiError::validation(format!(
                    "{field} is not another ticket in the {} column",
                    input.to
                ))
            })
    };
    if let Some(after) = input.after_id {
        return Ok(index_of(after, "afterId")? + 1);
    }
    if let Some(before) = input.before_id {
        return index_of(before, "beforeId");
    }
    match input.position {
        Some(p) if p < 0 => Err(ApiError::validation("position must not be negative")),
        Some(p) => Ok(usize::try_from(p).unwrap_or(usize::MAX).min(column.len())),
        None => Ok(column.len()),
    }
}

/// A rank key for index `index` of `column` (end of column when `None`), rebalancing the
/// column first when the key would grow too long. `moving` is the ticket being placed,
/// already left out of `column`. Returns the key and the resulting position.
async fn place(
    conn: &mut AsyncPgConnection,
    outbox: &mut Outbox,
    project_id: Uuid,
    status: TicketStatus,
    column: Vec<(Uuid, String)>,
    index: Option<usize>,
    moving: Option<Uuid>,
) -> Result<(Rank, i64), ApiError> {
    let index = index.unwrap_or(column.len()).min(column.len());
    let parse = |raw: &str| Rank::parse(raw).map_err(|e| corrupt(format!("stored rank: {e}")));
    let lower = match index.checked_sub(1) {
        Some(i) => Some(parse(&column[i].1)?),
        None => None,
    };
    let upper = match column.get(index) {
        Some((_, raw)) => Some(parse(raw)?),
        None => None,
    };
    // Equal neighbours cannot be split; treat them like an over-long key.
    if let Ok(rank) = Rank::between(lower.as_ref(), upper.as_ref()) {
        if rank.as_str().len() <= MAX_RANK_LEN {
            return Ok((rank, index as i64));
        }
    }
    rebalance(conn, outbox, project_id, status, &column, index, moving).await
}

/// Gives every ticket of a column a fresh, evenly spaced key (order unchanged), leaving a
/// slot at `index` for the ticket being placed, and announces the new keys.
async fn rebalance(
    conn: &mut AsyncPgConnection,
    outbox: &mut Outbox,
    project_id: Uuid,
    status: TicketStatus,
    column: &[(Uuid, String)],
    index: usize,
    moving: Option<Uuid>,
) -> Result<(Rank, i64), ApiError> {
    let mut keys = spread(column.len() + 1);
    let slot = keys.remove(index);
    let mut ranks = Vec::with_capacity(column.len() + 1);
    for ((id, _), key) in column.iter().zip(keys) {
        db::tickets::set_rank(conn, *id, key.as_str()).await?;
        ranks.push(RankEntry {
            ticket_id: id.to_string(),
            rank: key.into_string(),
        });
    }
    if let Some(id) = moving {
        ranks.insert(
            index,
            RankEntry {
                ticket_id: id.to_string(),
                rank: slot.as_str().to_owned(),
            },
        );
    }
    tracing::info!(project.id = %project_id, column = %status, tickets = column.len(), "rebalanced column ranks");
    outbox.push(BoardEvent::ColumnRebalanced(ColumnRebalancedPayload {
        project_id: project_id.to_string(),
        status,
        ranks,
    }))?;
    Ok((slot, index as i64))
}

async fn apply_move(
    conn: &mut AsyncPgConnection,
    row: &TicketRow,
    to: TicketStatus,
    rank: Rank,
    position: i64,
    triggered_by: &str,
    reason: Option<String>,
) -> Result<Ticket, ApiError> {
    let changes = TicketChanges {
        status: Some(to.as_str().to_owned()),
        rank: Some(rank.into_string()),
        ..Default::default()
    };
    let updated = db::tickets::update(conn, row.id, &changes).await?;
    if row.status != to.as_str() {
        db::transitions::insert(
            conn,
            &db::transitions::NewTransition {
                ticket_id: row.id,
                from_status: &row.status,
                to_status: to.as_str(),
                triggered_by,
                reason: reason.as_deref(),
            },
        )
        .await?;
    }
    updated.to_wire(position).map_err(corrupt)
}
