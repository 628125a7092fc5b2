//! What the board application holds: [`Board`], shared by every socket of the replica
//! (rooms, Redis, presence, the API, the token verifier), and [`BoardSocket`], one
//! socket's user, rooms and cursors.

use crate::api_client::ApiClient;
use crate::broker::RoomBus;
use crate::config::Settings;
use crate::hub::Hub;
use crate::lane::Lane;
use crate::metrics::GatewayMetrics;
use crate::presence::PresenceTracker;
use kanban_auth::TokenVerifier;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::time::Instant;

/// What every board socket of this replica shares.
pub struct Board {
    pub settings: Settings,
    pub hub: Arc<Hub>,
    /// Subscriptions, history and hints: Redis in production ([`crate::broker::Broker`]).
    pub broker: Arc<dyn RoomBus>,
    /// Cluster-wide presence in production ([`crate::presence::Presence`]).
    pub presence: Arc<dyn PresenceTracker>,
    pub api: ApiClient,
    /// `None` when no token configuration is present (anonymous development setups).
    pub verifier: Option<TokenVerifier>,
    pub metrics: Arc<GatewayMetrics>,
}

/// One socket of the board application: its user and its rooms.
pub struct BoardSocket {
    pub(super) board: Arc<Board>,
    /// The Engine.IO session id (names anonymous users).
    pub(super) sid: String,
    pub(super) user: Option<User>,
    /// project id → last seq sent on this socket.
    pub(super) cursors: HashMap<Arc<str>, i64>,
    /// The hub's way to write a room's next event while the session is idle; it holds
    /// the cursors meanwhile ([`crate::lane`]).
    pub(super) lane: Arc<Lane>,
    /// When this socket last sent a hint (ms since the epoch).
    pub(super) last_hint_ms: i64,
    /// Rooms whose history ended, at the join, before the seq the API called latest:
    /// project id → that seq. Checked at `relay_lag_check`.
    pub(super) awaiting: HashMap<Arc<str>, i64>,
    /// When the board looks again at the rooms in `awaiting`.
    pub(super) relay_lag_check: Option<Instant>,
    /// When the token the socket connected with expires (its `exp` plus the leeway, as
    /// seconds since the epoch and on the monotonic clock): the session ends then.
    pub(super) token_expiry: Option<(u64, Instant)>,
}

impl BoardSocket {
    pub fn new(board: Arc<Board>, sid: String) -> Self {
        let lane = Arc::new(Lane::new(board.metrics.poisoned_locks_total.clone()));
        BoardSocket {
            board,
            sid,
            user: None,
            cursors: HashMap::new(),
            lane,
            last_hint_ms: 0,
            awaiting: HashMap::new(),
            relay_lag_check: None,
            token_expiry: None,
        }
    }
}

#[derive(Debug, Clone)]
pub(super) struct User {
    pub(super) id: String,
    /// Display name for presence (the token's `name`, else the id).
    pub(super) name: String,
    /// `None` for anonymous sockets (development only).
    pub(super) token: Option<String>,
}
