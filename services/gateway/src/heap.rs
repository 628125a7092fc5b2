//! The live heap of a benchmark build (`--features heap-stats`): a global allocator that
//! counts the bytes allocated and not yet freed, exported as
//! `kanban_gateway_heap_allocated_bytes`, so that `kanban-loadtest idle` can tell a
//! connection's own bytes from what the allocator keeps around them. Off in every other
//! build: the count costs an atomic operation per allocation and per free.

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntGauge, Registry};

#[global_allocator]
static ALLOCATOR: cap::Cap<std::alloc::System> = cap::Cap::new(std::alloc::System, usize::MAX);

/// Reads the count when `/metrics` is rendered.
struct HeapCollector {
    gauge: IntGauge,
}

impl Collector for HeapCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.gauge.desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.gauge
            .set(i64::try_from(ALLOCATOR.allocated()).unwrap_or(i64::MAX));
        self.gauge.collect()
    }
}

/// Adds `kanban_gateway_heap_allocated_bytes` to `registry`.
pub fn register(registry: &Registry) -> Result<(), prometheus::Error> {
    let gauge = IntGauge::new(
        "kanban_gateway_heap_allocated_bytes",
        "Bytes allocated on the heap and not yet freed (benchmark builds with the heap-stats feature only).",
    )?;
    registry.register(Box::new(HeapCollector { gauge }))
}
