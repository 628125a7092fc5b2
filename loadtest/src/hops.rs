//! The full path's latency hop by hop, from the servers' own histograms read before and
//! after a phase: the relay's commit → published to Redis, the gateways' commit → written
//! to the socket and receipt → written. What a watcher sees beyond "commit → written" is
//! the kernel's loopback and the load tool's own scheduling of its watchers.

use crate::buckets::Buckets;
use crate::procs::ServerProcess;
use serde_json::{json, Value};

/// The ticket API's commit → PUBLISH histogram.
const PUBLISHED: &str = "kanban_ticket_api_outbox_publish_delay_seconds";
/// The gateways' commit (the event's `tsUs`) → socket write histogram.
const WRITTEN: &str = "kanban_gateway_delivery_latency_seconds";
/// The gateways' receipt → socket write histogram.
const INSIDE: &str = "kanban_gateway_fanout_latency_seconds";

/// The three histograms at one moment (the gateways' summed).
pub struct Hops {
    published: Buckets,
    written: Buckets,
    inside: Buckets,
}

impl Hops {
    /// Reads the API's page at `api` and every gateway's.
    pub async fn read(http: &reqwest::Client, api: &str, gateways: &[ServerProcess]) -> Hops {
        let page = crate::buckets::metrics_page(http, api).await;
        let (mut written, mut inside) = (Buckets::default(), Buckets::default());
        for gateway in gateways {
            let page = gateway.metrics_page().await;
            written.add(&Buckets::parse(&page, WRITTEN));
            inside.add(&Buckets::parse(&page, INSIDE));
        }
        Hops {
            published: Buckets::parse(&page, PUBLISHED),
            written,
            inside,
        }
    }

    /// What was observed between `earlier` and this reading.
    pub fn since(&self, earlier: &Hops) -> Hops {
        Hops {
            published: self.published.since(&earlier.published),
            written: self.written.since(&earlier.written),
            inside: self.inside.since(&earlier.inside),
        }
    }

    /// Each hop's p50 and p99 as the upper bound of their buckets, in ms.
    pub fn json(&self) -> Value {
        let hop = |b: &Buckets| {
            json!({
                "p50_le": b.quantile_le(0.5).map(|s| s * 1000.0),
                "p99_le": b.quantile_le(0.99).map(|s| s * 1000.0),
            })
        };
        json!({
            "commit_to_published_ms": hop(&self.published),
            "commit_to_written_ms": hop(&self.written),
            "receipt_to_written_ms": hop(&self.inside),
        })
    }

    /// One line for the phase's report.
    pub fn line(&self) -> String {
        let hop = |name: &str, b: &Buckets| match (b.quantile_le(0.5), b.quantile_le(0.99)) {
            (Some(p50), Some(p99)) => {
                format!(
                    "{name} p50 ≤ {} ms, p99 ≤ {} ms",
                    p50 * 1000.0,
                    p99 * 1000.0
                )
            }
            _ => format!("{name}: nothing observed"),
        };
        format!(
            "hop by hop (the servers' histograms): {}; {}; {}",
            hop("commit → published", &self.published),
            hop("commit → written by the gateways", &self.written),
            hop("of which receipt → written", &self.inside),
        )
    }
}
