//! Two servers of one kind for a scenario (two of our gateways, or two instances of the
//! Node reference), and how an event reaches a board's room on both: through Redis by
//! the relay's own script for our gateways, through the reference's `POST /publish` (its
//! Redis adapter carries it to the other instance) for Node.

use crate::apart::Apart;
use crate::procs::{gateway_bin, Kind, Place, ServerProcess};
use kanban_protocol::events::EventEnvelope;
use serde_json::json;
use std::path::Path;

pub struct Pair {
    pub kind: Kind,
    pub servers: Vec<ServerProcess>,
    publish: Publish,
    redis: kanban_redis::Connection,
}

enum Publish {
    Relay(ticket_api::relay::publisher::Publisher),
    Http(reqwest::Client, String),
}

/// Event `seq` of `project` as the benchmarks publish it: a `ticket:deleted` stamped
/// with the wall-clock time `sent_us` (in its data and its `tsUs`), from which the clients
/// take the latency.
pub fn timed_event(project: &str, seq: i64, sent_us: i64) -> EventEnvelope {
    EventEnvelope {
        project_id: project.to_owned(),
        seq,
        event: "ticket:deleted".into(),
        data: json!({ "ticketId": "t", "sentUs": sent_us }),
        ts: sent_us / 1000,
        ts_us: Some(sent_us),
        mutation_id: None,
        traceparent: None,
    }
}

impl Pair {
    /// Starts two servers of `kind` on free ports, sharing the Redis at `redis_url` (our
    /// gateways under key `prefix`), each allowing `max` connections: on loopback, or on
    /// the servers' side of `apart`.
    pub async fn start(
        kind: Kind,
        redis_url: &str,
        prefix: &str,
        max: usize,
        node_reference: Option<&Path>,
        apart: Option<&Apart>,
    ) -> Pair {
        let place = Place::of(apart);
        let settings = kanban_config::RedisSettings {
            url: secrecy::SecretString::from(redis_url.to_owned()),
            ..kanban_config::RedisSettings::default()
        };
        let redis = kanban_redis::connect(&settings, kanban_redis::Reconnect::default())
            .expect("redis url");
        let (servers, publish) = match kind {
            Kind::Kanban => {
                let bin = gateway_bin();
                let servers = vec![
                    ServerProcess::gateway_at(&place, &bin, "gw1", redis_url, prefix, max).await,
                    ServerProcess::gateway_at(&place, &bin, "gw2", redis_url, prefix, max).await,
                ];
                let publisher = ticket_api::relay::publisher::Publisher::new(
                    redis.clone(),
                    prefix.to_owned(),
                    1000,
                    600,
                    600,
                );
                (servers, Publish::Relay(publisher))
            }
            Kind::Node => {
                let dir = crate::procs::node_reference(node_reference);
                let servers = vec![
                    ServerProcess::node(&place, &dir, redis_url).await,
                    ServerProcess::node(&place, &dir, redis_url).await,
                ];
                let url = format!("http://{}/publish", servers[0].address);
                (servers, Publish::Http(reqwest::Client::new(), url))
            }
        };
        Pair {
            kind,
            servers,
            publish,
            redis,
        }
    }

    /// The servers' `host:port`, in order.
    pub fn addresses(&self) -> Vec<String> {
        self.servers.iter().map(|s| s.address.clone()).collect()
    }

    /// Emits `ticket:deleted` number `seq` to `project`'s room on both servers, stamped
    /// with the wall-clock time `sent_us`. Our gateways carry `seq` in the event's meta,
    /// the Node reference in its data; clients read it from either.
    pub async fn publish(&self, project: &str, seq: i64, sent_us: i64) {
        match &self.publish {
            Publish::Relay(publisher) => {
                publisher
                    .publish(&timed_event(project, seq, sent_us))
                    .await
                    .expect("publish");
            }
            Publish::Http(http, url) => {
                let response = http
                    .post(url)
                    .json(&json!({
                        "projectId": project,
                        "event": "ticket:deleted",
                        "data": { "ticketId": "t", "sentUs": sent_us, "seq": seq },
                    }))
                    .send()
                    .await
                    .expect("POST /publish");
                assert!(
                    response.status().is_success(),
                    "POST /publish: {}",
                    response.status()
                );
            }
        }
    }

    /// CPU seconds both servers have used so far.
    pub fn cpu_seconds(&self) -> f64 {
        self.servers.iter().map(ServerProcess::cpu_seconds).sum()
    }

    /// Both servers' resident memory, KiB.
    pub fn rss_kib(&self) -> u64 {
        self.servers.iter().map(ServerProcess::rss_kib).sum()
    }

    /// Both servers' live heap bytes, where they report it (see
    /// [`ServerProcess::heap_bytes`]).
    pub async fn heap_bytes(&self) -> Option<f64> {
        let mut total = 0.0;
        for server in &self.servers {
            total += server.heap_bytes().await?;
        }
        Some(total)
    }

    /// Sockets closed as slow consumers so far; the Node reference has no such close.
    pub async fn slow_closes(&self) -> Option<f64> {
        self.counter("kanban_gateway_slow_consumer_closes_total")
            .await
    }

    /// Deliveries the gateways' hubs wrote straight to idle sockets (their lanes) so far;
    /// the Node reference has no lanes.
    pub async fn lane_deliveries(&self) -> Option<f64> {
        self.counter("kanban_gateway_lane_deliveries_total").await
    }

    /// The writes behind [`Pair::lane_deliveries`] so far: one per event while the
    /// gateways keep up, fewer when they write runs of waiting events together.
    pub async fn lane_writes(&self) -> Option<f64> {
        self.counter("kanban_gateway_lane_writes_total").await
    }

    /// The gateways' receipt → write latency histogram
    /// (`kanban_gateway_fanout_latency_seconds`), summed over both; none for the Node
    /// reference.
    pub async fn fanout_buckets(&self) -> Option<crate::buckets::Buckets> {
        if self.kind != Kind::Kanban {
            return None;
        }
        let mut total = crate::buckets::Buckets::default();
        for server in &self.servers {
            let page = server.metrics_page().await;
            total.add(&crate::buckets::Buckets::parse(
                &page,
                "kanban_gateway_fanout_latency_seconds",
            ));
        }
        Some(total)
    }

    /// One of our gateways' counters, summed over both; none for the Node reference.
    async fn counter(&self, name: &str) -> Option<f64> {
        if self.kind != Kind::Kanban {
            return None;
        }
        let mut total = 0.0;
        for server in &self.servers {
            total += server.metric(name).await;
        }
        Some(total)
    }

    /// Redis's own CPU seconds so far.
    pub async fn redis_cpu(&self) -> f64 {
        crate::host::redis_cpu(&mut self.redis.clone()).await
    }

    /// Removes what the servers left in Redis for `project` that does not expire: the
    /// Node reference's member set (our keys expire by themselves).
    pub async fn forget(&self, project: &str) {
        if self.kind == Kind::Node {
            let mut redis = self.redis.clone();
            let _: Result<(), _> = redis::cmd("DEL")
                .arg(format!("kanban:members:project:{project}"))
                .query_async(&mut redis)
                .await;
        }
    }
}
