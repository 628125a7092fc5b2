//! The outbox relay: moves committed events from Postgres to Redis, in `seq` order per
//! project, on exactly one replica at a time.
//!
//! Every replica runs [`Relay::run`]. The one that holds a session-level advisory lock on a
//! dedicated connection is the relay; the others retry every `leader_retry_ms` and take
//! over within that time after the relay's connection ends (crash, kill, network).
//! The relay wakes on an in-process signal when its own replica commits, on
//! LISTEN/NOTIFY when another replica commits, and on a sweep timer as a safety net; it
//! then publishes everything unpublished. A crash between publishing and marking a row
//! re-sends it later, and the publish script drops it, so each seq is published once.
//! A project's run of events in a batch is published in one round trip (a pipeline), the
//! runs of a batch side by side, and the batch is marked published in one statement.

pub mod publisher;

use crate::config::RelaySettings;
use crate::db;
use crate::metrics::ApiMetrics;
use diesel_async::AsyncPgConnection;
use futures_util::{FutureExt, StreamExt};
use publisher::Publisher;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};

/// How often the relay prunes old events and idempotency keys.
const PRUNE_INTERVAL: Duration = Duration::from_secs(3600);
/// Shortest wait between retries while Redis is unreachable.
const MIN_BACKOFF: Duration = Duration::from_millis(50);

/// Test-only fault injection: makes the relay stop after publishing a batch and before
/// marking it published, as if the process died there.
#[derive(Debug, Clone, Default)]
pub struct FaultHooks {
    crash_after_publish: Arc<AtomicBool>,
}

impl FaultHooks {
    /// Turns the "crash after publish, before marking" fault on or off.
    pub fn set_crash_after_publish(&self, on: bool) {
        self.crash_after_publish.store(on, Ordering::SeqCst);
    }

    fn crashes_after_publish(&self) -> bool {
        AtomicBool::load(&self.crash_after_publish, Ordering::SeqCst)
    }
}

pub struct Relay {
    pub settings: RelaySettings,
    pub database_url: String,
    pub publisher: Publisher,
    pub metrics: Arc<ApiMetrics>,
    pub wake: Arc<Notify>,
    pub faults: FaultHooks,
    pub idempotency_ttl_seconds: u64,
}

#[derive(Debug, thiserror::Error)]
enum RelayError {
    #[error("postgres: {0}")]
    Database(#[from] diesel::result::Error),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("fault injected after publishing")]
    InjectedCrash,
}

impl Relay {
    /// Runs until `shutdown` turns true.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let retry = Duration::from_millis(self.settings.leader_retry_ms);
        while !*shutdown.borrow() {
            match db::leader::try_lead(&self.database_url).await {
                Ok(Some(conn)) => {
                    tracing::info!("this replica is now the outbox relay");
                    self.metrics.relay_leader.set(1);
                    let outcome = self.lead(conn, &mut shutdown).await;
                    self.metrics.relay_leader.set(0);
                    self.metrics.outbox_lag_seconds.set(0.0);
                    match outcome {
                        Ok(()) => tracing::info!("outbox relay stopped"),
                        Err(error) => {
                            tracing::warn!(%error, "outbox relay lost its connection; will retry")
                        }
                    }
                }
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!(%error, "cannot reach Postgres to take the relay lock")
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(retry) => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    async fn lead(
        &self,
        mut conn: AsyncPgConnection,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), RelayError> {
        let sweep = Duration::from_millis(self.settings.sweep_interval_ms);
        let max_backoff = Duration::from_millis(self.settings.max_backoff_ms).max(MIN_BACKOFF);
        let mut backoff = MIN_BACKOFF;
        let mut last_prune: Option<tokio::time::Instant> = None;
        loop {
            if *shutdown.borrow() {
                return Ok(());
            }
            let wait = match self.drain(&mut conn).await {
                Ok(()) => {
                    backoff = MIN_BACKOFF;
                    sweep
                }
                Err(RelayError::Redis(error)) => {
                    self.metrics.relay_failures_total.inc();
                    self.metrics.redis_error("relay_publish");
                    tracing::warn!(%error, retry_in_ms = backoff.as_millis() as u64, "publishing to Redis failed");
                    let wait = backoff;
                    backoff = (backoff * 2).min(max_backoff);
                    wait
                }
                Err(other) => return Err(other),
            };
            if last_prune.is_none_or(|at| at.elapsed() >= PRUNE_INTERVAL) {
                self.prune(&mut conn).await?;
                last_prune = Some(tokio::time::Instant::now());
            }
            let mut notifications = std::pin::pin!(conn.notifications_stream());
            tokio::select! {
                _ = self.wake.notified() => {}
                notification = notifications.next() => {
                    if let Some(Err(error)) = notification {
                        return Err(error.into());
                    }
                }
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => return Ok(()),
            }
            // Many commits while draining mean many queued notifications; one drain
            // covers them all.
            while let Some(Some(_)) = notifications.next().now_or_never() {}
        }
    }

    /// Publishes every unpublished event, oldest first per project.
    async fn drain(&self, conn: &mut AsyncPgConnection) -> Result<(), RelayError> {
        loop {
            let batch = db::events::unpublished(conn, self.settings.batch_size).await?;
            let oldest = batch.iter().map(|e| e.created_at).min();
            self.metrics
                .outbox_lag_seconds
                .set(oldest.map_or(0.0, seconds_since));
            if batch.is_empty() {
                return Ok(());
            }
            let full = batch.len() as i64 >= self.settings.batch_size;
            // The batch is ordered by project, then seq: one run per project.
            let runs: Vec<&[db::events::EventRow]> = batch
                .chunk_by(|a, b| a.project_id == b.project_id)
                .collect();
            // Each run in one round trip, the runs side by side: their order across
            // projects does not matter, and each keeps its own.
            let results = futures_util::future::join_all(runs.iter().map(|run| async move {
                let envelopes: Vec<_> = run.iter().map(|event| event.to_envelope()).collect();
                // One span per event, each as long as its run's round trip.
                let spans: Vec<_> = run.iter().map(publish_span).collect();
                let published = self.publisher.publish_all(&envelopes).await;
                drop(spans);
                published
            }))
            .await;
            let mut done = Vec::with_capacity(runs.len());
            let mut failed = None;
            for (run, result) in runs.iter().zip(results) {
                match result {
                    Ok(published) => {
                        self.count(run, &published);
                        if let Some(last) = run.last() {
                            done.push((last.project_id, last.seq));
                        }
                    }
                    Err(error) => {
                        failed.get_or_insert(error);
                    }
                }
            }
            if self.faults.crashes_after_publish() {
                return Err(RelayError::InjectedCrash);
            }
            // What went out is marked even when another run failed: it is not sent again.
            db::events::mark_published(conn, &done).await?;
            if let Some(error) = failed {
                return Err(error.into());
            }
            if !full {
                return Ok(());
            }
        }
    }

    /// Counts a published run: each event published now, or dropped as published before.
    fn count(&self, run: &[db::events::EventRow], published: &[bool]) {
        for (event, fresh) in run.iter().zip(published) {
            if *fresh {
                self.metrics.outbox_published_total.inc();
                self.metrics
                    .outbox_publish_delay_seconds
                    .observe(seconds_since(event.created_at));
            } else {
                self.metrics.outbox_duplicates_skipped_total.inc();
            }
        }
    }

    async fn prune(&self, conn: &mut AsyncPgConnection) -> Result<(), RelayError> {
        if self.settings.retention_days > 0 {
            let days = i64::try_from(self.settings.retention_days).unwrap_or(i64::MAX / 86_400);
            let deleted = db::events::delete_published_before(conn, days).await?;
            if deleted > 0 {
                tracing::info!(deleted, "pruned old events from the outbox log");
            }
        }
        let ttl = i64::try_from(self.idempotency_ttl_seconds).unwrap_or(i64::MAX);
        db::idempotency::delete_expired(conn, ttl).await?;
        Ok(())
    }
}

/// The span of one event's publish (`relay.publish`): a child of the span that wrote the
/// event (its stored `traceparent`), so that it sits in the writing request's trace.
fn publish_span(event: &db::events::EventRow) -> tracing::Span {
    let span = tracing::info_span!(
        parent: None,
        "relay.publish",
        otel.kind = "producer",
        messaging.system = "redis",
        project.id = %event.project_id,
        event.seq = event.seq,
        event.name = %event.name,
    );
    kanban_telemetry::propagation::set_parent(&span, event.traceparent.as_deref());
    span
}

fn seconds_since(at: chrono::DateTime<chrono::Utc>) -> f64 {
    (chrono::Utc::now() - at)
        .num_microseconds()
        .map_or(0.0, |us| us as f64 / 1e6)
        .max(0.0)
}
