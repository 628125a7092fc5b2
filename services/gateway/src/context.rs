//! What every session of this replica shares: settings, the hub, the broker, the API
//! client, the token verifier, metrics, the polling registry and the drain signal.

use crate::api_client::ApiClient;
use crate::broker::Broker;
use crate::config::Settings;
use crate::hub::{Hub, SessionId};
use crate::metrics::GatewayMetrics;
use crate::presence::Presence;
use crate::session::polling::PollingRegistry;
use kanban_auth::TokenVerifier;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::watch;

pub struct Context {
    pub settings: Settings,
    pub hub: Arc<Hub>,
    /// `None` in echo mode (no board events).
    pub broker: Option<Arc<Broker>>,
    /// `None` in echo mode.
    pub presence: Option<Arc<Presence>>,
    pub api: ApiClient,
    /// `None` when no token configuration is present (echo mode).
    pub verifier: Option<TokenVerifier>,
    pub metrics: Arc<GatewayMetrics>,
    pub polling: PollingRegistry,
    /// Turns true on SIGTERM: readiness goes red, handshakes are refused, sessions close
    /// at random moments within the drain window.
    pub draining: watch::Receiver<bool>,
    pub open_sessions: AtomicUsize,
    next_id: AtomicU64,
}

/// The shared services a context is built from.
pub struct Parts {
    pub hub: Arc<Hub>,
    pub broker: Option<Arc<Broker>>,
    pub presence: Option<Arc<Presence>>,
    pub api: ApiClient,
    pub verifier: Option<TokenVerifier>,
    pub metrics: Arc<GatewayMetrics>,
}

impl Context {
    pub fn new(settings: Settings, parts: Parts, draining: watch::Receiver<bool>) -> Self {
        Context {
            settings,
            hub: parts.hub,
            broker: parts.broker,
            presence: parts.presence,
            api: parts.api,
            verifier: parts.verifier,
            metrics: parts.metrics,
            polling: PollingRegistry::default(),
            draining,
            open_sessions: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
        }
    }

    /// A new Engine.IO session id, prefixed with this replica's instance id.
    pub fn new_sid(&self) -> String {
        let id = &self.settings.gateway.instance_id;
        if id.is_empty() {
            crate::session::random_id()
        } else {
            format!("{id}~{}", crate::session::random_id())
        }
    }

    pub fn next_session_id(&self) -> SessionId {
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
}
