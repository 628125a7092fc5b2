//! The `idempotency_keys` table: the first result of each keyed mutation, per user.

use super::schema::idempotency_keys;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

/// Serialises requests that carry the same (user, key) until the end of the transaction,
/// so a duplicate sent while the first is still running waits and then sees its result.
pub async fn lock(conn: &mut AsyncPgConnection, user_id: &str, key: &str) -> QueryResult<()> {
    diesel::sql_query("SELECT pg_advisory_xact_lock(hashtextextended($1 || E'\\x1f' || $2, 7))")
        .bind::<diesel::sql_types::Text, _>(user_id)
        .bind::<diesel::sql_types::Text, _>(key)
        .execute(conn)
        .await
        .map(drop)
}

/// The stored result for (user, key) and the fingerprint of the request that produced it
/// (none for keys stored before fingerprints existed), if it was recorded less than
/// `ttl_seconds` ago.
pub async fn find(
    conn: &mut AsyncPgConnection,
    user_id: &str,
    key: &str,
    ttl_seconds: i64,
) -> QueryResult<Option<(serde_json::Value, Option<String>)>> {
    let cutoff = chrono::Utc::now() - chrono::Duration::seconds(ttl_seconds);
    idempotency_keys::table
        .find((user_id, key))
        .filter(idempotency_keys::created_at.gt(cutoff))
        .select((idempotency_keys::response, idempotency_keys::fingerprint))
        .first(conn)
        .await
        .optional()
}

/// Records the result for (user, key) and its request's fingerprint, replacing an
/// expired one.
pub async fn store(
    conn: &mut AsyncPgConnection,
    user_id: &str,
    key: &str,
    fingerprint: &str,
    response: &serde_json::Value,
) -> QueryResult<()> {
    diesel::insert_into(idempotency_keys::table)
        .values((
            idempotency_keys::user_id.eq(user_id),
            idempotency_keys::key.eq(key),
            idempotency_keys::response.eq(response),
            idempotency_keys::fingerprint.eq(fingerprint),
        ))
        .on_conflict((idempotency_keys::user_id, idempotency_keys::key))
        .do_update()
        .set((
            idempotency_keys::response.eq(response),
            idempotency_keys::fingerprint.eq(fingerprint),
            idempotency_keys::created_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await
        .map(drop)
}

/// Deletes results older than `ttl_seconds`; returns how many.
pub async fn delete_expired(conn: &mut AsyncPgConnection, ttl_seconds: i64) -> QueryResult<usize> {
    let cutoff = chrono::Utc::now() - chrono::Duration::seconds(ttl_seconds);
    diesel::delete(idempotency_keys::table.filter(idempotency_keys::created_at.lt(cutoff)))
        .execute(conn)
        .await
}
