//! What a write takes in and hands back: the request metadata that travels with its events
//! ([`MutationMeta`]) and what its committed transaction produced ([`Committed`]).

use crate::db::events::EventRow;
use uuid::Uuid;

/// Request metadata that travels with every event a mutation produces.
#[derive(Debug, Default)]
pub struct MutationMeta {
    /// From the `Idempotency-Key` or `X-Mutation-Id` header.
    pub mutation_id: Option<String>,
    /// From the `Idempotency-Key` header only: repeats return the first result.
    pub idempotency_key: Option<String>,
    /// What the request was (method, path, typed body), when it carries an idempotency
    /// key: a key replays only for the same fingerprint.
    pub fingerprint: String,
    /// How long an idempotency key's first result is remembered.
    pub idempotency_ttl_seconds: i64,
    /// The request's well-formed `traceparent` header, normalised (stored with the events
    /// when tracing is off).
    pub traceparent: Option<String>,
}

/// A committed write: its answer and the outbox rows it wrote (read after the commit to
/// wake the relay and raise the cache's committed seq).
#[derive(Debug)]
pub struct Committed<T> {
    /// The answer to send (for a replay, the first request's answer).
    pub value: T,
    /// The events this transaction appended, in seq order; none for a replay or a write
    /// that changed nothing.
    pub events: Vec<EventRow>,
    /// Answered from an earlier request with the same idempotency key.
    pub replayed: bool,
}

impl<T> Committed<T> {
    /// The board this write committed events to and its last seq, if it committed any.
    pub fn last_seq(&self) -> Option<(Uuid, i64)> {
        self.events
            .iter()
            .max_by_key(|event| event.seq)
            .map(|event| (event.project_id, event.seq))
    }
}
