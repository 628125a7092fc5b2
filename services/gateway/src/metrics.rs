//! The gateway's Prometheus metrics: one struct; each field's doc is its help text.

use prometheus::core::Collector;
use prometheus::{Histogram, HistogramOpts, IntCounter, IntGauge, Opts, Registry};

const NAMESPACE: &str = "kanban_gateway";

pub struct GatewayMetrics {
    pub registry: Registry,
    /// Open Engine.IO sessions on this replica.
    pub connections: IntGauge,
    /// Project rooms with at least one local socket.
    pub rooms: IntGauge,
    /// Long-polling GETs held open, waiting for something to send.
    pub polls_waiting: IntGauge,
    /// Sessions opened since start.
    pub connections_total: IntCounter,
    /// Handshakes refused because the replica is full or draining.
    pub connections_refused_total: IntCounter,
    /// Successful project:join commands.
    pub joins_total: IntCounter,
    /// Refused project:join commands (not a member, bad input, limits).
    pub joins_refused_total: IntCounter,
    /// Board events written to sockets.
    pub deliveries_total: IntCounter,
    /// Board events not queued for a socket because its queue was full.
    pub deliveries_dropped_total: IntCounter,
    /// Sockets closed because they could not keep up.
    pub slow_consumer_closes_total: IntCounter,
    /// project:resync messages sent (history too short to fill a gap).
    pub resyncs_total: IntCounter,
    /// Events sent from history to fill a gap or resume a socket.
    pub replayed_events_total: IntCounter,
    /// Times the Redis subscription connection was lost.
    pub redis_reconnects_total: IntCounter,
    /// Client commands forwarded to the ticket API.
    pub commands_total: IntCounter,
    /// Client events refused by the per-socket rate limit.
    pub rate_limited_total: IntCounter,
    /// Sessions closed for protocol violations (bad packets, binary, oversize).
    pub protocol_errors_total: IntCounter,
    /// Seconds from the event's commit (its `ts`) to the socket write.
    pub delivery_latency_seconds: Histogram,
    /// Presence events (room:userJoined / room:userLeft) queued for sockets.
    pub presence_updates_total: IntCounter,
    /// Room recomputations that found nothing new to announce.
    pub presence_coalesced_total: IntCounter,
    /// Presence entries of replicas without a heartbeat that were deleted.
    pub presence_stale_purged_total: IntCounter,
}

fn counter(name: &str, help: &str) -> Result<IntCounter, prometheus::Error> {
    IntCounter::with_opts(Opts::new(name, help).namespace(NAMESPACE))
}

fn gauge(name: &str, help: &str) -> Result<IntGauge, prometheus::Error> {
    IntGauge::with_opts(Opts::new(name, help).namespace(NAMESPACE))
}

impl GatewayMetrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let m = GatewayMetrics {
            registry: Registry::new(),
            connections: gauge("connections", "Open Engine.IO sessions on this replica.")?,
            rooms: gauge("rooms", "Project rooms with at least one local socket.")?,
            polls_waiting: gauge(
                "polls_waiting",
                "Long-polling GETs held open, waiting for something to send.",
            )?,
            connections_total: counter("connections_total", "Sessions opened since start.")?,
            connections_refused_total: counter(
                "connections_refused_total",
                "Handshakes refused because the replica is full or draining.",
            )?,
            joins_total: counter("joins_total", "Successful project:join commands.")?,
            joins_refused_total: counter(
                "joins_refused_total",
                "Refused project:join commands (not a member, bad input, limits).",
            )?,
            deliveries_total: counter("deliveries_total", "Board events written to sockets.")?,
            deliveries_dropped_total: counter(
                "deliveries_dropped_total",
                "Board events not queued for a socket because its queue was full.",
            )?,
            slow_consumer_closes_total: counter(
                "slow_consumer_closes_total",
                "Sockets closed because they could not keep up.",
            )?,
            resyncs_total: counter(
                "resyncs_total",
                "project:resync messages sent (history too short to fill a gap).",
            )?,
            replayed_events_total: counter(
                "replayed_events_total",
                "Events sent from history to fill a gap or resume a socket.",
            )?,
            redis_reconnects_total: counter(
                "redis_reconnects_total",
                "Times the Redis subscription connection was lost.",
            )?,
            commands_total: counter(
                "commands_total",
                "Client commands forwarded to the ticket API.",
            )?,
            rate_limited_total: counter(
                "rate_limited_total",
                "Client events refused by the per-socket rate limit.",
            )?,
            protocol_errors_total: counter(
                "protocol_errors_total",
                "Sessions closed for protocol violations (bad packets, binary, oversize).",
            )?,
            delivery_latency_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "delivery_latency_seconds",
                    "Seconds from the event's commit (its ts) to the socket write.",
                )
                .namespace(NAMESPACE)
                .buckets(vec![
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ]),
            )?,
            presence_updates_total: counter(
                "presence_updates_total",
                "Presence events (room:userJoined / room:userLeft) queued for sockets.",
            )?,
            presence_coalesced_total: counter(
                "presence_coalesced_total",
                "Room recomputations that found nothing new to announce.",
            )?,
            presence_stale_purged_total: counter(
                "presence_stale_purged_total",
                "Presence entries of replicas without a heartbeat that were deleted.",
            )?,
        };
        let collectors: Vec<Box<dyn Collector>> = vec![
            Box::new(m.connections.clone()),
            Box::new(m.rooms.clone()),
            Box::new(m.polls_waiting.clone()),
            Box::new(m.connections_total.clone()),
            Box::new(m.connections_refused_total.clone()),
            Box::new(m.joins_total.clone()),
            Box::new(m.joins_refused_total.clone()),
            Box::new(m.deliveries_total.clone()),
            Box::new(m.deliveries_dropped_total.clone()),
            Box::new(m.slow_consumer_closes_total.clone()),
            Box::new(m.resyncs_total.clone()),
            Box::new(m.replayed_events_total.clone()),
            Box::new(m.redis_reconnects_total.clone()),
            Box::new(m.commands_total.clone()),
            Box::new(m.rate_limited_total.clone()),
            Box::new(m.protocol_errors_total.clone()),
            Box::new(m.delivery_latency_seconds.clone()),
            Box::new(m.presence_updates_total.clone()),
            Box::new(m.presence_coalesced_total.clone()),
            Box::new(m.presence_stale_purged_total.clone()),
        ];
        for c in collectors {
            m.registry.register(c)?;
        }
        Ok(m)
    }
}
