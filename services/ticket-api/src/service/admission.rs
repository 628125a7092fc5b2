//! Which writes wait at a board's write gate, and at which board's: decided on a pooled
//! connection, before the write's transaction, with a few short reads that take no lock.

use super::mutation::MutationMeta;
use crate::auth::AuthUser;
use crate::db;
use crate::error::ApiError;
use diesel_async::AsyncPgConnection;
use uuid::Uuid;

/// The board a write request names, as its route knows it.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    /// The write creates its board (project create): there is no board to wait for.
    NewBoard,
    /// A project's board.
    Project(Uuid),
    /// The board a ticket is on.
    Ticket(Uuid),
}

/// The board whose gate the write waits at, or `None` when it passes without waiting
/// because its unit of work will not wait for a board's row lock:
///
/// - it creates its board;
/// - its `Idempotency-Key` already has an answer: the unit of work replays it before the
///   lock (or refuses a reused key), so a replay is not shed however busy its board is;
/// - the ticket does not exist, or the caller is not a member of the board: the unit of
///   work refuses it (404) before the lock, and a stranger's writes take no place in a
///   board's queue (nor learn from a 429 that the board exists).
///
/// The unit of work checks all of this again inside its transaction; this only decides
/// where the write waits, never its answer.
pub async fn gated_board(
    conn: &mut AsyncPgConnection,
    user: &AuthUser,
    meta: &MutationMeta,
    target: Target,
) -> Result<Option<Uuid>, ApiError> {
    let project_id = match target {
        Target::NewBoard => return Ok(None),
        Target::Project(project_id) => project_id,
        Target::Ticket(ticket_id) => match db::tickets::project_of(conn, ticket_id).await? {
            Some(project_id) => project_id,
            None => return Ok(None),
        },
    };
    if let Some(key) = meta.idempotency_key.as_deref() {
        let answered =
            db::idempotency::find(conn, &user.id, key, meta.idempotency_ttl_seconds).await?;
        if answered.is_some() {
            return Ok(None);
        }
    }
    let member = db::members::role_of(conn, project_id, &user.id).await?;
    Ok(member.map(|_| project_id))
}
