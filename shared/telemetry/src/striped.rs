//! Counters and histograms for paths that run once per delivery on every worker thread:
//! each thread adds to a stripe of its own (a metric of its own, in an allocation of its
//! own), and a scrape sums the stripes, so threads counting the same thing do not take
//! turns owning one cache line. Exposed exactly as one plain counter or histogram.

use prometheus::core::{Collector, Desc};
use prometheus::local::LocalHistogram;
use prometheus::proto::{Counter, Metric, MetricFamily};
use prometheus::{Histogram, HistogramOpts, IntCounter, Opts};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Stripes per metric; threads beyond this many share stripes, round robin.
pub const STRIPES: usize = 8;

static NEXT_STRIPE: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's stripe, the same for every striped metric.
    static STRIPE: usize = NEXT_STRIPE.fetch_add(1, Ordering::Relaxed) % STRIPES;
}

fn stripe() -> usize {
    STRIPE.with(|stripe| *stripe)
}

/// [`STRIPES`] metrics made by `make`, each its own allocation.
fn stripes<M>(
    make: impl Fn() -> Result<M, prometheus::Error>,
) -> Result<Arc<[M]>, prometheus::Error> {
    (0..STRIPES).map(|_| make()).collect()
}

/// An integer counter whose increments go to the calling thread's stripe.
#[derive(Clone)]
pub struct StripedCounter {
    stripes: Arc<[IntCounter]>,
}

impl StripedCounter {
    pub fn with_opts(opts: Opts) -> Result<Self, prometheus::Error> {
        Ok(StripedCounter {
            stripes: stripes(|| IntCounter::with_opts(opts.clone()))?,
        })
    }

    pub fn inc(&self) {
        self.stripes[stripe()].inc();
    }

    pub fn inc_by(&self, v: u64) {
        self.stripes[stripe()].inc_by(v);
    }

    /// The sum of every stripe.
    pub fn get(&self) -> u64 {
        self.stripes.iter().map(IntCounter::get).sum()
    }
}

impl Collector for StripedCounter {
    fn desc(&self) -> Vec<&Desc> {
        self.stripes[0].desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let total = self.get();
        let mut families = self.stripes[0].collect();
        for metric in families.iter_mut().flat_map(MetricFamily::mut_metric) {
            let mut counter = Counter::default();
            counter.set_value(total as f64);
            metric.set_counter(counter);
        }
        families
    }
}

/// A histogram whose observations go to the calling thread's stripe.
#[derive(Clone)]
pub struct StripedHistogram {
    stripes: Arc<[Histogram]>,
}

impl StripedHistogram {
    pub fn with_opts(opts: HistogramOpts) -> Result<Self, prometheus::Error> {
        Ok(StripedHistogram {
            stripes: stripes(|| Histogram::with_opts(opts.clone()))?,
        })
    }

    pub fn observe(&self, v: f64) {
        self.stripes[stripe()].observe(v);
    }

    /// A histogram that adds up observations without atomics and adds them to this
    /// thread's stripe when flushed or dropped: for a loop observing once per socket.
    pub fn local(&self) -> LocalHistogram {
        self.stripes[stripe()].local()
    }

    /// Observations over every stripe.
    pub fn get_sample_count(&self) -> u64 {
        self.stripes.iter().map(Histogram::get_sample_count).sum()
    }

    /// The sum of the observations over every stripe.
    pub fn get_sample_sum(&self) -> f64 {
        self.stripes.iter().map(Histogram::get_sample_sum).sum()
    }
}

impl Collector for StripedHistogram {
    fn desc(&self) -> Vec<&Desc> {
        self.stripes[0].desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut families = self.stripes[0].collect();
        for other in self.stripes[1..].iter().flat_map(Histogram::collect) {
            for (metric, more) in families
                .iter_mut()
                .flat_map(MetricFamily::mut_metric)
                .zip(other.get_metric())
            {
                add_histogram(metric, more);
            }
        }
        families
    }
}

/// Adds `more`'s histogram (same buckets) into `metric`'s.
fn add_histogram(metric: &mut Metric, more: &Metric) {
    let mut sum = metric.get_histogram().clone();
    let more = more.get_histogram();
    sum.set_sample_count(sum.get_sample_count() + more.get_sample_count());
    sum.set_sample_sum(sum.get_sample_sum() + more.get_sample_sum());
    let mut buckets = sum.get_bucket().to_vec();
    for (bucket, extra) in buckets.iter_mut().zip(more.get_bucket()) {
        bucket.set_cumulative_count(bucket.cumulative_count() + extra.cumulative_count());
    }
    sum.set_bucket(buckets);
    metric.set_histogram(sum);
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::{Encoder, Registry, TextEncoder};

    fn exposition(registry: &Registry) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&registry.gather(), &mut out)
            .unwrap();
        String::from_utf8(out).unwrap()
    }

    /// Counts from many threads (so from several stripes) are exposed as one counter and
    /// one histogram, the same text a plain metric fed the same values gives.
    #[test]
    fn stripes_are_exposed_summed_as_one_plain_metric() {
        let striped = Registry::new();
        let counter = StripedCounter::with_opts(Opts::new("deliveries_total", "d")).unwrap();
        let histogram = StripedHistogram::with_opts(
            HistogramOpts::new("latency_seconds", "l").buckets(vec![0.001, 0.01, 0.1]),
        )
        .unwrap();
        striped.register(Box::new(counter.clone())).unwrap();
        striped.register(Box::new(histogram.clone())).unwrap();

        let plain = Registry::new();
        let plain_counter = IntCounter::new("deliveries_total", "d").unwrap();
        let plain_histogram = Histogram::with_opts(
            HistogramOpts::new("latency_seconds", "l").buckets(vec![0.001, 0.01, 0.1]),
        )
        .unwrap();
        plain.register(Box::new(plain_counter.clone())).unwrap();
        plain.register(Box::new(plain_histogram.clone())).unwrap();

        // Powers of two, so that the sums are exact in any order.
        let values = [0.0009765625, 0.0078125, 0.0625, 0.5];
        let threads: Vec<_> = (0..2 * STRIPES)
            .map(|_| {
                let (counter, histogram) = (counter.clone(), histogram.clone());
                std::thread::spawn(move || {
                    for (i, v) in values.iter().enumerate() {
                        counter.inc_by(i as u64 + 1);
                        histogram.observe(*v);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        // A local histogram's observations count once it is dropped.
        let local = histogram.local();
        local.observe(0.0625);
        drop(local);
        plain_histogram.observe(0.0625);
        for _ in 0..2 * STRIPES {
            for (i, v) in values.iter().enumerate() {
                plain_counter.inc_by(i as u64 + 1);
                plain_histogram.observe(*v);
            }
        }
        assert_eq!(counter.get(), 2 * STRIPES as u64 * 10);
        assert_eq!(histogram.get_sample_count(), 2 * STRIPES as u64 * 4 + 1);
        assert!((histogram.get_sample_sum() - plain_histogram.get_sample_sum()).abs() < 1e-9);
        assert_eq!(exposition(&striped), exposition(&plain));
    }

    /// Threads get different stripes, so two threads do not write to one metric.
    #[test]
    fn threads_take_different_stripes() {
        let stripes: Vec<usize> = (0..STRIPES)
            .map(|_| std::thread::spawn(stripe).join().unwrap())
            .collect();
        let mut distinct = stripes.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert!(distinct.len() > 1, "{stripes:?}");
    }
}
