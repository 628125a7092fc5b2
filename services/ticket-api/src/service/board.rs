//! Reading a board: from the Redis cache when it holds the latest committed board,
//! otherwise from Postgres (and then into the cache).

use super::access::{require, Need};
use super::corrupt;
use crate::auth::AuthUser;
use crate::cache::{CachedBoard, EncodedBoard, Lookup};
use crate::db::{self, PgConn};
use crate::error::ApiError;
use crate::state::AppState;
use kanban_protocol::{BoardSnapshot, MemberRole, Ticket, TicketStatus};
use std::collections::HashMap;
use uuid::Uuid;

/// The board and the seq it reflects, as the `BoardSnapshot`'s JSON. A cache hit checks
/// membership against the cached member list, touches no database connection, and
/// answers the stored bytes without decoding a ticket. A miss encodes the board once, for
/// the cache and for the answer.
pub async fn read(
    state: &AppState,
    user: &AuthUser,
    project_id: Uuid,
) -> Result<Vec<u8>, ApiError> {
    let key = project_id.to_string();
    if let Some(cache) = &state.cache {
        match cache.get(&key).await {
            Ok(Lookup::Hit(board)) => {
                state.metrics.cache_hits_total.inc();
                return if board.members.contains_key(&user.id) {
                    Ok(board.snapshot_json)
                } else {
                    Err(ApiError::not_found("project"))
                };
            }
            Ok(Lookup::Miss) => state.metrics.cache_misses_total.inc(),
            Err(error) => {
                state.metrics.cache_errors_total.inc();
                state.metrics.redis_error("cache_read");
                tracing::warn!(project.id = %project_id, %error, "board cache read failed");
            }
        }
    }
    let mut conn = state.db().await?;
    let board = load(&mut conn, user, project_id).await?;
    let board =
        EncodedBoard::of(&board).map_err(|e| corrupt(format!("encoding the board: {e}")))?;
    if let Some(cache) = &state.cache {
        if let Err(error) = cache.put(&board).await {
            state.metrics.cache_errors_total.inc();
            state.metrics.redis_error("cache_write");
            tracing::warn!(project.id = %project_id, %error, "board cache write failed");
        }
    }
    Ok(board.snapshot_json)
}

/// The whole board, its members and the seq it reflects, in one repeatable-read snapshot.
async fn load(
    conn: &mut PgConn,
    user: &AuthUser,
    project_id: Uuid,
) -> Result<CachedBoard, ApiError> {
    conn.build_transaction()
        .read_only()
        .repeatable_read()
        .run(async |conn| {
            require(conn, project_id, user, Need::Read).await?;
            let project = db::projects::find(conn, project_id)
                .await?
                .ok_or_else(|| ApiError::not_found("project"))?;
            let rows = db::tickets::list_for_project(conn, project_id).await?;
            let mut members = HashMap::new();
            for member in db::members::list(conn, project_id).await? {
                let role: MemberRole = member
                    .role
                    .parse()
                    .map_err(|e| corrupt(format!("stored role: {e}")))?;
                members.insert(member.user_id, role);
            }
            Ok(CachedBoard {
                snapshot: BoardSnapshot {
                    project: project.to_wire(),
                    tickets: board_order(&rows)?,
                    seq: project.event_seq,
                },
                members,
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
