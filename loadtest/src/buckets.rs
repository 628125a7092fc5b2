//! A Prometheus histogram read off a `/metrics` page: the page, its cumulative buckets,
//! the difference between two readings, and the bucket a quantile falls in.

/// The `/metrics` page of the server at `base`.
pub async fn metrics_page(http: &reqwest::Client, base: &str) -> String {
    http.get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics body")
}

/// Cumulative bucket counts by upper bound (`le`), in the page's order (ascending).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Buckets(pub Vec<(f64, f64)>);

impl Buckets {
    /// The `<name>_bucket{le="…"}` lines of `text` (without other labels).
    pub fn parse(text: &str, name: &str) -> Buckets {
        let prefix = format!("{name}_bucket{{le=\"");
        Buckets(
            text.lines()
                .filter_map(|line| line.strip_prefix(&prefix))
                .filter_map(|rest| {
                    let (le, count) = rest.split_once("\"} ")?;
                    let le = if le == "+Inf" {
                        f64::INFINITY
                    } else {
                        le.parse().ok()?
                    };
                    Some((le, count.trim().parse().ok()?))
                })
                .collect(),
        )
    }

    /// Adds another server's buckets (the same bounds) into these.
    pub fn add(&mut self, other: &Buckets) {
        if self.0.is_empty() {
            self.0 = other.0.clone();
            return;
        }
        for ((_, count), (_, more)) in self.0.iter_mut().zip(&other.0) {
            *count += more;
        }
    }

    /// What was observed between `earlier` and this reading.
    pub fn since(&self, earlier: &Buckets) -> Buckets {
        Buckets(
            self.0
                .iter()
                .enumerate()
                .map(|(i, (le, count))| (*le, count - earlier.0.get(i).map_or(0.0, |e| e.1)))
                .collect(),
        )
    }

    /// The upper bound of the bucket that holds quantile `q` (0–1); none without
    /// observations.
    pub fn quantile_le(&self, q: f64) -> Option<f64> {
        let total = self.0.last()?.1;
        if total <= 0.0 {
            return None;
        }
        self.0
            .iter()
            .find(|(_, count)| *count >= q * total)
            .map(|(le, _)| *le)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = "\
# TYPE kanban_gateway_fanout_latency_seconds histogram
kanban_gateway_fanout_latency_seconds_bucket{le=\"0.001\"} 50
kanban_gateway_fanout_latency_seconds_bucket{le=\"0.01\"} 98
kanban_gateway_fanout_latency_seconds_bucket{le=\"+Inf\"} 100
kanban_gateway_fanout_latency_seconds_sum 0.3
kanban_gateway_fanout_latency_seconds_count 100
";

    #[test]
    fn a_quantile_falls_in_the_first_bucket_that_holds_it() {
        let name = "kanban_gateway_fanout_latency_seconds";
        let now = Buckets::parse(PAGE, name);
        assert_eq!(now.0, [(0.001, 50.0), (0.01, 98.0), (f64::INFINITY, 100.0)]);
        assert_eq!(now.quantile_le(0.5), Some(0.001));
        assert_eq!(now.quantile_le(0.98), Some(0.01));
        assert_eq!(now.quantile_le(0.99), Some(f64::INFINITY));
        let before = Buckets(vec![(0.001, 50.0), (0.01, 50.0), (f64::INFINITY, 50.0)]);
        let phase = now.since(&before);
        assert_eq!(phase.quantile_le(0.9), Some(0.01), "48 of the 50 new ones");
        assert_eq!(Buckets::default().quantile_le(0.5), None);
        let mut both = now.clone();
        both.add(&now);
        assert_eq!(both.0[2].1, 200.0);
    }
}
