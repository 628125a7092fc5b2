//! The gateway's Prometheus metrics: one struct; each field's doc comment is its help text
//! (`docs/metrics.md` lists them all). HTTP requests, `process_*` and `build_info` come
//! with the struct from `kanban_telemetry`. What is counted once per delivery is striped
//! (a stripe per thread, summed when scraped), so the workers do not share its cache lines.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web;

/// Latency buckets from 0.5 ms to 5 s (the ticket API's).
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Commit-to-write latency, from the event's `tsUs` (microseconds; two machines' clocks
/// apart, so sub-millisecond buckets are as good as their synchronisation): 250 µs to 5 s.
const DELIVERY_BUCKETS: &[f64] = &[
    0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Time inside the gateway, measured on one monotonic clock: 50 µs to 1 s.
const FANOUT_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

/// Frames already waiting in a socket's queue (the default limit is 512).
const QUEUE_DEPTH_BUCKETS: &[f64] = &[
    0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

/// Transports a session can be on, for `sockets{transport}`.
pub const TRANSPORTS: &[&str] = &["websocket", "polling"];

/// Methods the gateway calls the ticket API with, and the outcomes of a call.
pub const API_METHODS: &[&str] = &["GET", "POST", "PATCH", "DELETE"];
pub const API_OUTCOMES: &[&str] = &["ok", "client_error", "server_error", "unavailable"];

kanban_telemetry::metrics_struct! {
    /// Metrics of one gateway instance, in its own registry (tests run several at once).
    pub struct GatewayMetrics in "kanban_gateway" {
        /// Open Engine.IO sessions on this replica.
        pub connections: IntGauge,
        /// Open Engine.IO sessions on this replica by current transport (websocket, polling).
        pub sockets: IntGaugeVec ["transport"],
        /// Project rooms with at least one local socket.
        pub rooms: IntGauge,
        /// Long-polling GETs held open, waiting for something to send.
        pub polls_waiting: IntGauge,
        /// Sessions opened since start.
        pub connections_total: IntCounter,
        /// Handshakes refused because the replica is full or draining.
        pub connections_refused_total: IntCounter,
        /// Sessions that ended, by reason and WebSocket close code (none when no close frame is sent).
        pub closes_total: IntCounterVec ["reason", "code"],
        /// Successful project:join commands.
        pub joins_total: IntCounter,
        /// Refused project:join commands (not a member, bad input, limits).
        pub joins_refused_total: IntCounter,
        /// Board events written to sockets.
        pub deliveries_total: StripedCounter,
        /// Board events the hub wrote straight to a socket whose session was idle (its lane), without queueing them or waking the session; part of deliveries_total.
        pub lane_deliveries_total: IntCounter,
        /// Writes the hub made through lanes, each carrying one board event or a run of a room's consecutive events that waited in the Redis push queue; lane_deliveries_total divided by this is the events per write.
        pub lane_writes_total: IntCounter,
        /// Board events not queued for a socket because its queue was full.
        pub deliveries_dropped_total: StripedCounter,
        /// Frames already waiting in a socket's queue when a board event was queued for it.
        pub outbound_queue_depth: StripedHistogram buckets QUEUE_DEPTH_BUCKETS,
        /// Sockets closed because they could not keep up.
        pub slow_consumer_closes_total: IntCounter,
        /// Sockets taken out of a board's room because their user lost access to it (removed, role changed, board deleted).
        pub revocations_total: IntCounter,
        /// project:resync messages sent (history too short to fill a gap).
        pub resyncs_total: IntCounter,
        /// Events sent from history to fill a gap or resume a socket.
        pub replayed_events_total: IntCounter,
        /// Pages of history read from Redis (one XRANGE each) for resumes and gap fills.
        pub history_reads_total: IntCounter,
        /// Pages of history served from another reader's read instead of a read of their own.
        pub history_pages_shared_total: IntCounter,
        /// Times the Redis subscription connection was lost.
        pub redis_reconnects_total: IntCounter,
        /// 1 when the Redis Cluster shard's primary (host:port) answered the last probe (every 5 s), 0 when it did not; cluster mode only.
        pub redis_shard_up: IntGaugeVec ["shard"],
        /// Times a Redis Cluster shard's primary answered a probe again after failing one; cluster mode only.
        pub redis_shard_reconnects_total: IntCounterVec ["shard"],
        /// Boards whose channels this gateway holds on the Redis Cluster shard; cluster mode only.
        pub redis_shard_subscriptions: IntGaugeVec ["shard"],
        /// Boards subscribed again after a Redis Cluster node dropped their channels by itself or their slot moved to another primary.
        pub redis_subscriptions_restored_total: IntCounter,
        /// Rooms found behind their board's history at two shard probes in a row (a subscription lost without notice), then subscribed again and caught up; cluster mode only.
        pub redis_rooms_revived_total: IntCounter,
        /// Messages pushed on the Redis subscription connection that found the gateway's push queue full and were dropped (each starts a catch-up from history).
        pub redis_pushes_dropped_total: IntCounter,
        /// Times a lock was found poisoned (a task panicked while holding it); its data is kept and the lock cleared.
        pub poisoned_locks_total: IntCounter,
        /// Client commands forwarded to the ticket API.
        pub commands_total: IntCounter,
        /// Calls to the ticket API by method and outcome (ok, client_error, server_error, unavailable).
        pub api_requests_total: IntCounterVec ["method", "outcome"],
        /// Latency of calls to the ticket API in seconds, by method.
        pub api_request_duration_seconds: HistogramVec ["method"] buckets LATENCY_BUCKETS,
        /// Client events refused by the per-socket rate limit.
        pub rate_limited_total: IntCounter,
        /// Sessions closed for protocol violations (bad packets, binary, oversize).
        pub protocol_errors_total: IntCounter,
        /// Seconds from the event's commit (its tsUs, microseconds) to the socket write.
        pub delivery_latency_seconds: StripedHistogram buckets DELIVERY_BUCKETS,
        /// Seconds from the gateway's receipt of an event (from Redis or history) to the socket write.
        pub fanout_latency_seconds: StripedHistogram buckets FANOUT_BUCKETS,
        /// Presence events (room:userJoined / room:userLeft) queued for sockets.
        pub presence_updates_total: IntCounter,
        /// Room recomputations that found nothing new to announce.
        pub presence_coalesced_total: IntCounter,
        /// Presence entries of replicas without a heartbeat that were deleted.
        pub presence_stale_purged_total: IntCounter,
        /// 1 when the last readiness check passed, 0 when it failed (before the first check: 1).
        pub ready: IntGauge,
        /// Times the readiness check's answer changed (ready to not ready or back).
        pub readiness_changes_total: IntCounter,
    }
}

impl GatewayMetrics {
    /// The metrics, with every series of a fixed label set present (at 0) from the start.
    pub fn new() -> Result<Self, prometheus::Error> {
        let metrics = Self::build()?;
        for transport in TRANSPORTS {
            metrics.sockets.with_label_values(&[transport]);
        }
        for method in API_METHODS {
            metrics
                .api_request_duration_seconds
                .with_label_values(&[method]);
            for outcome in API_OUTCOMES {
                metrics
                    .api_requests_total
                    .with_label_values(&[method, outcome]);
            }
        }
        metrics.ready.set(1);
        Ok(metrics)
    }

    /// Records the answer of a readiness check, counting a change of answer.
    pub fn readiness(&self, ready: bool) {
        let value = i64::from(ready);
        if self.ready.get() != value {
            self.readiness_changes_total.inc();
        }
        self.ready.set(value);
    }

    /// One call to the ticket API: its method, outcome and duration.
    pub fn api_call(&self, method: &str, outcome: &'static str, elapsed: std::time::Duration) {
        let method = API_METHODS
            .iter()
            .find(|m| **m == method)
            .copied()
            .unwrap_or("other");
        self.api_requests_total
            .with_label_values(&[method, outcome])
            .inc();
        self.api_request_duration_seconds
            .with_label_values(&[method])
            .observe(elapsed.as_secs_f64());
    }
}

/// Gives every request its id, records it under its route pattern and writes its
/// access-log line (see [`kanban_telemetry::http::observe`]).
pub async fn record(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let metrics = req
        .app_data::<web::Data<GatewayMetrics>>()
        .map(|metrics| metrics.http.clone());
    kanban_telemetry::http::observe(metrics, req, next).await
}
