//! What every request can reach (`AppState`: pool, verifier, metrics, settings, cache,
//! relay wake-up, write gate) and the request-time steps around a write: its board's
//! write gate and a pooled connection, the mutation metadata of a request, and the work
//! after its commit.

use crate::auth::AuthUser;
use crate::cache::BoardCache;
use crate::config::Settings;
use crate::db::{PgConn, PgPool};
use crate::error::ApiError;
use crate::headers;
use crate::metrics::ApiMetrics;
use crate::service::admission::{self, Target};
use crate::service::mutation::{Committed, MutationMeta};
use crate::service::write_gate::WriteGate;
use kanban_auth::TokenVerifier;
use std::sync::Arc;
use tokio::sync::Notify;

/// What every request handler can reach.
pub struct AppState {
    pub pool: PgPool,
    pub verifier: TokenVerifier,
    pub metrics: Arc<ApiMetrics>,
    pub settings: Settings,
    /// `None` when the cache is disabled.
    pub cache: Option<BoardCache>,
    /// Wakes this replica's relay (if it is the relay) right after a commit.
    pub relay_wake: Arc<Notify>,
    /// Per-board permits that writes take before their connection (`limits`).
    pub write_gate: WriteGate,
}

impl AppState {
    /// A pooled Postgres connection (503 when none comes within the acquire timeout).
    pub async fn db(&self) -> Result<PgConn, ApiError> {
        let conn = self.pool.get().await?;
        self.metrics.db_connections_acquired_total.inc();
        Ok(conn)
    }

    /// Runs one write, `work` (a use case's unit of work), on a pooled connection, after
    /// a permit of its board's write gate when it has to wait for one (see
    /// [`admission::gated_board`]). A write that finds a free permit keeps the connection
    /// it decided on; one that has to wait gives it back first and waits holding none,
    /// then takes a new one. Shed writes get 429 (queue full) or 503 (waited too long),
    /// and the pool's acquire timeout (503) stays the last resort.
    pub async fn write<T>(
        &self,
        user: &AuthUser,
        meta: &MutationMeta,
        target: Target,
        work: impl AsyncFnOnce(&mut PgConn) -> Result<Committed<T>, ApiError>,
    ) -> Result<Committed<T>, ApiError> {
        let mut conn = self.db().await?;
        let Some(board) = admission::gated_board(&mut conn, user, meta, target).await? else {
            return work(&mut conn).await;
        };
        let _permit = match self.write_gate.join(board)?.try_permit() {
            Ok(permit) => permit,
            Err(queued) => {
                drop(conn);
                let permit = queued.wait().await?;
                conn = self.db().await?;
                permit
            }
        };
        work(&mut conn).await
    }

    /// Runs after a mutation committed and before its response is sent: wakes the relay
    /// and raises the cache's committed seq, so the writer's next read sees its write.
    /// A Redis failure here is logged and counted; the write itself stands.
    pub async fn after_commit<T>(&self, committed: &Committed<T>) {
        if committed.replayed {
            self.metrics.idempotent_replays_total.inc();
        }
        let Some((project_id, seq)) = committed.last_seq() else {
            return;
        };
        self.relay_wake.notify_one();
        let Some(cache) = &self.cache else { return };
        match cache.invalidate(&project_id.to_string(), seq).await {
            Ok(()) => self.metrics.cache_invalidations_total.inc(),
            Err(error) => {
                self.metrics.cache_errors_total.inc();
                self.metrics.redis_error("cache_invalidate");
                tracing::warn!(project.id = %project_id, %error, "board cache invalidation failed");
            }
        }
    }

    /// The mutation metadata of a write request: ids from headers, TTL from settings.
    /// `content` is the request's typed body (or query, or `()`), for the fingerprint that
    /// binds an idempotency key to its request.
    pub fn mutation_meta<C: serde::Serialize + ?Sized>(
        &self,
        req: &actix_web::HttpRequest,
        content: &C,
    ) -> Result<MutationMeta, ApiError> {
        let mut meta = headers::mutation_meta(req, content)?;
        meta.idempotency_ttl_seconds =
            i64::try_from(self.settings.idempotency.ttl_seconds).unwrap_or(i64::MAX);
        Ok(meta)
    }
}
