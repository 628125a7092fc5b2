//! A service's metrics as one struct whose field doc comments are the help text, written
//! once: [`metrics_struct!`](crate::metrics_struct) declares the struct and builds and
//! registers every field from its name, doc comment, labels and buckets.

use crate::striped::{StripedCounter, StripedHistogram};
use prometheus::{
    Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts,
};

/// The metric types [`metrics_struct!`](crate::metrics_struct) can declare, by the names
/// a field gives.
pub mod kinds {
    pub use crate::striped::{StripedCounter, StripedHistogram};
    pub use prometheus::{
        Gauge, Histogram, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    };
}

/// What a metric is built from.
pub struct Spec<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub help: &'a str,
    pub labels: &'a [&'a str],
    pub buckets: Option<Vec<f64>>,
}

impl Spec<'_> {
    fn opts(&self) -> Opts {
        Opts::new(self.name, self.help).namespace(self.namespace)
    }

    fn histogram_opts(&self) -> HistogramOpts {
        let opts = HistogramOpts::new(self.name, self.help).namespace(self.namespace);
        match &self.buckets {
            Some(buckets) => opts.buckets(buckets.clone()),
            None => opts.buckets(crate::http::HTTP_LATENCY_BUCKETS.to_vec()),
        }
    }
}

/// A metric type [`metrics_struct!`](crate::metrics_struct) can declare.
pub trait Build: Sized {
    fn build(spec: &Spec<'_>) -> Result<Self, prometheus::Error>;
}

impl Build for IntCounter {
    fn build(spec: &Spec<'_>) -> Result<Self, prometheus::Error> {
        IntCounter::with_opts(spec.opts())
    }
}

impl Build for IntGauge {
    fn build(spec: &Spec<'_>) -> Result<Self, prometheus::Error> {
        IntGauge::with_opts(spec.opts())
    }
}

impl Build for Gauge {
    fn build(spec: &Spec<'_>) -> Result<Self, prometheus::Error> {
        Gauge::with_opts(spec.opts())
    }
}

impl Build for Histogram {
    fn build(spec: &Spec<'_>) -> Result<Self, prometheus::Error> {
        Histogram::with_opts(spec.histogram_opts())
    }
}

impl Build for StripedCounter {
    fn build(spec: &Spec<'_>) -> Result<Self, prometheus::Error> {
        StripedCounter::with_opts(spec.opts())
    }
}

impl Build for StripedHistogram {
    fn build(spec: &Spec<'_>) -> Result<Self, prometheus::Error> {
        StripedHistogram::with_opts(spec.histogram_opts())
    }
}

impl Build for IntCounterVec {
    fn build(spec: &Spec<'_>) -> Result<Self, prometheus::Error> {
        IntCounterVec::new(spec.opts(), spec.labels)
    }
}

impl Build for IntGaugeVec {
    fn build(spec: &Spec<'_>) -> Result<Self, prometheus::Error> {
        IntGaugeVec::new(spec.opts(), spec.labels)
    }
}

impl Build for HistogramVec {
    fn build(spec: &Spec<'_>) -> Result<Self, prometheus::Error> {
        HistogramVec::new(spec.histogram_opts(), spec.labels)
    }
}

/// Declares a service's metrics struct. Each field's one-line doc comment is its help
/// text; its name (under the namespace) is the metric's name; `[..]` lists its labels and
/// `buckets EXPR` gives a histogram's buckets (default: the HTTP latency buckets).
///
/// The struct also gets `registry` (each instance has its own: tests run several in one
/// process) and `http` ([`HttpMetrics`](crate::http::HttpMetrics)); `build()` registers
/// everything, plus the `process_*` collector and `<namespace>_build_info` of the crate
/// that invokes the macro.
#[macro_export]
macro_rules! metrics_struct {
    (
        $(#[$meta:meta])*
        pub struct $name:ident in $namespace:literal {
            $(
                #[doc = $help:literal]
                pub $field:ident : $kind:ident $([$($label:literal),+ $(,)?])? $(buckets $buckets:expr)?
            ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        pub struct $name {
            /// This instance's registry, served at `/metrics`.
            pub registry: $crate::prometheus::Registry,
            /// HTTP requests by method, route pattern and status, and their latency.
            pub http: $crate::http::HttpMetrics,
            $(
                #[doc = $help]
                pub $field: $crate::metric::kinds::$kind,
            )*
        }

        impl $name {
            /// Creates every metric and registers it in a new registry.
            pub fn build() -> Result<Self, $crate::prometheus::Error> {
                let registry = $crate::prometheus::Registry::new();
                let http = $crate::http::HttpMetrics::register($namespace, &registry)?;
                $crate::process::register(&registry, $namespace, $crate::build_info!())?;
                let metrics = $name {
                    $(
                        $field: <$crate::metric::kinds::$kind as $crate::metric::Build>::build(
                            &$crate::metric::Spec {
                                namespace: $namespace,
                                name: stringify!($field),
                                help: $help.trim(),
                                labels: &[$($($label),+)?],
                                buckets: {
                                    #[allow(unused_mut)]
                                    let mut buckets: Option<Vec<f64>> = None;
                                    $( buckets = Some($buckets.to_vec()); )?
                                    buckets
                                },
                            },
                        )?,
                    )*
                    registry,
                    http,
                };
                $( metrics.registry.register(Box::new(metrics.$field.clone()))?; )*
                Ok(metrics)
            }
        }
    };
}
