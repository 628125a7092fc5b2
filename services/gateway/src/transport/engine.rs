//! What every session of this replica shares at the transport level: settings, metrics,
//! the polling registry, session ids, the drain signal and admission (the connection
//! limit). `M` is the application's message type.

use super::cause::Cause;
use super::polling::PollingRegistry;
use crate::config::Settings;
use crate::metrics::GatewayMetrics;
use rand::Rng;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::watch;

pub struct Engine<M> {
    pub settings: Settings,
    pub metrics: Arc<GatewayMetrics>,
    pub polling: PollingRegistry<M>,
    /// Turns true on SIGTERM: readiness goes red, handshakes are refused, sessions close
    /// at random moments within the drain window.
    pub draining: watch::Receiver<bool>,
    /// Sessions open on this replica (shared with the drain, which waits for zero).
    open_sessions: Arc<AtomicUsize>,
    next_id: AtomicU64,
}

impl<M> Engine<M> {
    pub fn new(
        settings: Settings,
        metrics: Arc<GatewayMetrics>,
        draining: watch::Receiver<bool>,
        open_sessions: Arc<AtomicUsize>,
    ) -> Self {
        for (reason, code) in Cause::LABELS {
            metrics.closes_total.with_label_values(&[reason, code]);
        }
        Engine {
            settings,
            polling: PollingRegistry::new(metrics.poisoned_locks_total.clone()),
            metrics,
            draining,
            open_sessions,
            next_id: AtomicU64::new(1),
        }
    }

    /// A new Engine.IO session id, prefixed with this replica's instance id.
    pub fn new_sid(&self) -> String {
        let id = &self.settings.gateway.instance_id;
        if id.is_empty() {
            random_id()
        } else {
            format!("{id}~{}", random_id())
        }
    }

    pub fn next_session_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Reserves a session slot; `false` when the replica is full or draining.
    pub fn admit(&self) -> bool {
        if *self.draining.borrow() {
            self.metrics.connections_refused_total.inc();
            tracing::debug!("handshake refused: draining");
            return false;
        }
        let limit = self.settings.limits.max_connections;
        let admitted = self
            .open_sessions
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < limit).then_some(n + 1)
            })
            .is_ok();
        if !admitted {
            self.metrics.connections_refused_total.inc();
            tracing::info!(limit, "handshake refused: the replica is full");
        }
        admitted
    }

    /// Gives back a slot taken by [`Engine::admit`].
    pub fn release(&self) {
        self.open_sessions.fetch_sub(1, Ordering::SeqCst);
    }

    /// Forgets a polling session's sid.
    pub fn forget_polling(&self, sid: &str) {
        self.polling.remove(sid);
    }
}

/// A random id for sessions and sockets (URL-safe, 20 characters).
pub fn random_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut rng = rand::rng();
    (0..20)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}
