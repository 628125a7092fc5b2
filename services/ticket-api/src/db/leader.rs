//! The relay's leader session: a dedicated connection holding the session-level advisory
//! lock whose holder is the outbox relay, listening for commits.

use super::events::NOTIFY_CHANNEL;
use diesel::QueryResult;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

/// An arbitrary constant: the advisory lock whose holder is the relay.
const LEADER_LOCK_KEY: i64 = 0x6b61_6e62_616e_0002;

/// Opens a connection and takes the relay lock on it: the connection, LISTENing on the
/// outbox channel, or `None` when another session holds the lock. The lock lasts as long
/// as the connection.
pub async fn try_lead(database_url: &str) -> QueryResult<Option<AsyncPgConnection>> {
    let mut conn = AsyncPgConnection::establish(database_url)
        .await
        .map_err(|e| diesel::result::Error::QueryBuilderError(Box::new(e)))?;
    let locked: bool = diesel::select(pg_try_advisory_lock(LEADER_LOCK_KEY))
        .get_result(&mut conn)
        .await?;
    if !locked {
        return Ok(None);
    }
    diesel::sql_query(format!("LISTEN {NOTIFY_CHANNEL}"))
        .execute(&mut conn)
        .await?;
    // Marking rows published need not wait for the disk: a mark lost in a crash only
    // makes the next relay re-send those events, which Redis drops as duplicates.
    diesel::sql_query("SET synchronous_commit = off")
        .execute(&mut conn)
        .await?;
    Ok(Some(conn))
}

diesel::define_sql_function! {
    fn pg_try_advisory_lock(key: diesel::sql_types::BigInt) -> diesel::sql_types::Bool;
}
