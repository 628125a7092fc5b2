//! What a write request's headers say about it: its mutation id, its idempotency key (and
//! the fingerprint of the request that binds the key) and its trace context.

use crate::error::ApiError;
use crate::service::mutation::MutationMeta;
use actix_web::HttpRequest;

/// Reads one optional id header: 1 to 128 visible ASCII characters.
fn id_header(req: &HttpRequest, name: &str) -> Result<Option<String>, ApiError> {
    let Some(value) = req.headers().get(name) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(|v| Some(v.to_owned()))
        .ok_or_else(|| {
            ApiError::validation(format!("{name} must be 1 to 128 visible ASCII characters"))
        })
}

/// The mutation id, idempotency key and trace context of a write request, and the
/// fingerprint of the request (`content`: its typed body or query) that binds the key.
pub(crate) fn mutation_meta<C: serde::Serialize + ?Sized>(
    req: &HttpRequest,
    content: &C,
) -> Result<MutationMeta, ApiError> {
    let idempotency_key = id_header(req, "idempotency-key")?;
    let mutation_id = id_header(req, "x-mutation-id")?;
    // Kept for when tracing is off; with tracing on, the events carry the context of the
    // span that wrote them (see `Outbox::commit`). A malformed value is ignored.
    let traceparent = req
        .headers()
        .get(kanban_telemetry::propagation::TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .and_then(kanban_telemetry::propagation::normalize);
    let fingerprint = match &idempotency_key {
        Some(_) => fingerprint(req.method().as_str(), req.path(), content)?,
        None => String::new(),
    };
    Ok(MutationMeta {
        mutation_id: idempotency_key.clone().or(mutation_id),
        idempotency_key,
        fingerprint,
        traceparent,
        ..MutationMeta::default()
    })
}

/// SHA-256 of the method, the path (with its ids) and the request's typed content,
/// hex-encoded. Two requests are the same request when these match: the typed content
/// makes `{"title": "x"}` and `{"title": "x", "labels": null}` equal.
fn fingerprint<C: serde::Serialize + ?Sized>(
    method: &str,
    path: &str,
    content: &C,
) -> Result<String, ApiError> {
    use sha2::{Digest, Sha256};
    let body = serde_json::to_vec(content)
        .map_err(|e| ApiError::Internal(format!("encoding the request: {e}")))?;
    let mut hash = Sha256::new();
    hash.update(method.as_bytes());
    hash.update([0x1f]);
    hash.update(path.as_bytes());
    hash.update([0x1f]);
    hash.update(&body);
    Ok(hash.finalize().iter().map(|b| format!("{b:02x}")).collect())
}
