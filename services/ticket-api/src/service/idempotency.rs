//! Idempotent mutations: a request with an `Idempotency-Key` that was already answered
//! gets the first answer again, and changes and emits nothing. The key is bound to its
//! request (method, path and body, as a fingerprint): the same key on a different request
//! is refused with `IDEMPOTENCY_KEY_REUSED` (422) and changes nothing, as the IETF
//! Idempotency-Key draft and Stripe do.
//!
//! Both calls run inside the mutation's transaction ([`super::unit_of_work::run`]):
//! [`replay`] first (it also locks the key so that a concurrent duplicate waits for the
//! first to finish), [`remember`] last, so the key is bound to the result exactly when the
//! result commits.

use super::mutation::MutationMeta;
use crate::auth::AuthUser;
use crate::db;
use crate::error::ApiError;
use diesel_async::AsyncPgConnection;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// The earlier result for this request's key, if there is one.
pub async fn replay<T: DeserializeOwned>(
    conn: &mut AsyncPgConnection,
    user: &AuthUser,
    meta: &MutationMeta,
) -> Result<Option<T>, ApiError> {
    let Some(key) = meta.idempotency_key.as_deref() else {
        return Ok(None);
    };
    db::idempotency::lock(conn, &user.id, key).await?;
    let Some((stored, fingerprint)) =
        db::idempotency::find(conn, &user.id, key, meta.idempotency_ttl_seconds).await?
    else {
        return Ok(None);
    };
    let reused = || {
        ApiError::IdempotencyKeyReused(
            "this Idempotency-Key was already used for a different request; \
             send a new key for a new change"
                .into(),
        )
    };
    // Keys stored before fingerprints existed have none; they replay as they always did.
    if fingerprint.is_some_and(|f| f != meta.fingerprint) {
        return Err(reused());
    }
    let value = serde_json::from_value(stored).map_err(|_| reused())?;
    Ok(Some(value))
}

/// Binds this request's key (if any) to `result`.
pub async fn remember<T: Serialize>(
    conn: &mut AsyncPgConnection,
    user: &AuthUser,
    meta: &MutationMeta,
    result: &T,
) -> Result<(), ApiError> {
    let Some(key) = meta.idempotency_key.as_deref() else {
        return Ok(());
    };
    let value = serde_json::to_value(result)
        .map_err(|e| ApiError::Internal(format!("encoding result: {e}")))?;
    db::idempotency::store(conn, &user.id, key, &meta.fingerprint, &value).await?;
    Ok(())
}
