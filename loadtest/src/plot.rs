//! Latency plots as SVG files: the percentile distribution of one or more HdrHistograms
//! (microseconds), one line each, on the usual log scale of "1 in N" (50 %, 90 %, 99 %,
//! 99.9 %, 99.99 %) against milliseconds. Written by hand: a few lines of SVG need no
//! plotting library.

use hdrhistogram::Histogram;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 420.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 160.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;
/// The x axis ends at 1 in 100 000 (99.999 %).
const MAX_NINES: f64 = 5.0;
const COLOURS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
];

/// Writes `title`'s plot of `series` (label, histogram in µs) into `dir` as
/// `<scenario>-<unix time>.svg`; returns the file's path.
pub fn write(
    dir: &Path,
    scenario: &str,
    title: &str,
    series: &[(String, &Histogram<u64>)],
) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let path = dir.join(format!("{scenario}-{stamp}.svg"));
    std::fs::write(&path, svg(title, series))?;
    Ok(path)
}

fn svg(title: &str, series: &[(String, &Histogram<u64>)]) -> String {
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let points: Vec<Vec<(f64, f64)>> = series
        .iter()
        .map(|(_, h)| {
            if h.is_empty() {
                return Vec::new();
            }
            (0..=100)
                .map(|i| {
                    let n = MAX_NINES * f64::from(i) / 100.0;
                    let quantile = 1.0 - 10f64.powf(-n);
                    (n, h.value_at_quantile(quantile) as f64 / 1000.0)
                })
                .collect()
        })
        .collect();
    let top_ms = points
        .iter()
        .flatten()
        .map(|&(_, ms)| ms)
        .fold(1.0, f64::max);
    let scale = nice_ceiling(top_ms);
    let x = |n: f64| LEFT + n / MAX_NINES * plot_w;
    let y = |ms: f64| TOP + plot_h - ms / scale * plot_h;

    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = write!(
        out,
        r#"<rect width="100%" height="100%" fill="white"/><text x="{LEFT}" y="22" font-size="14">{}</text>"#,
        escape(title)
    );
    // Axes, grid and labels.
    for (n, label) in [
        (0.0, "0%"),
        (1.0, "90%"),
        (2.0, "99%"),
        (3.0, "99.9%"),
        (4.0, "99.99%"),
        (5.0, "99.999%"),
    ] {
        let at = x(n);
        let _ = write!(
            out,
            r##"<line x1="{at:.1}" y1="{TOP}" x2="{at:.1}" y2="{:.1}" stroke="#ddd"/><text x="{at:.1}" y="{:.1}" text-anchor="middle">{label}</text>"##,
            TOP + plot_h,
            TOP + plot_h + 18.0
        );
    }
    for step in 0..=5 {
        let ms = scale * f64::from(step) / 5.0;
        let at = y(ms);
        let _ = write!(
            out,
            r##"<line x1="{LEFT}" y1="{at:.1}" x2="{:.1}" y2="{at:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT + plot_w,
            LEFT - 6.0,
            at + 4.0,
            format_ms(ms)
        );
    }
    let _ = write!(
        out,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">percentile</text><text x="16" y="{:.1}" transform="rotate(-90 16 {:.1})" text-anchor="middle">latency, ms</text>"#,
        LEFT + plot_w / 2.0,
        HEIGHT - 10.0,
        TOP + plot_h / 2.0,
        TOP + plot_h / 2.0
    );
    // One line per series, and its legend entry.
    for (i, ((label, _), line)) in series.iter().zip(&points).enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let path: Vec<String> = line
            .iter()
            .map(|&(n, ms)| format!("{:.1},{:.1}", x(n), y(ms)))
            .collect();
        let _ = write!(
            out,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
            path.join(" ")
        );
        let legend_y = TOP + 10.0 + 18.0 * i as f64;
        let legend_x = LEFT + plot_w + 12.0;
        let _ = write!(
            out,
            r#"<line x1="{legend_x:.1}" y1="{legend_y:.1}" x2="{:.1}" y2="{legend_y:.1}" stroke="{colour}" stroke-width="2"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            legend_x + 18.0,
            legend_x + 24.0,
            legend_y + 4.0,
            escape(label)
        );
    }
    out.push_str("</svg>\n");
    out
}

/// 1, 2 or 5 times a power of ten, at least `value`.
fn nice_ceiling(value: f64) -> f64 {
    let magnitude = 10f64.powf(value.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|&v| v >= value)
        .unwrap_or(10.0 * magnitude)
}

fn format_ms(ms: f64) -> String {
    if ms >= 10.0 || ms == 0.0 {
        format!("{ms:.0}")
    } else {
        format!("{ms:.1}")
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plot_has_one_line_per_series_within_its_axes() {
        let mut fast = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
        let mut slow = fast.clone();
        for i in 1..=1000u64 {
            fast.record(i * 10).unwrap(); // up to 10 ms
            slow.record(i * 40).unwrap(); // up to 40 ms
        }
        let svg = svg(
            "fan-out <test>",
            &[("20k/s".into(), &fast), ("100k/s".into(), &slow)],
        );
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("fan-out &lt;test&gt;"));
        assert!(
            svg.contains(">50</text>"),
            "the y axis reaches 50 ms: {svg}"
        );
        for number in svg
            .split("points=\"")
            .skip(1)
            .flat_map(|rest| rest.split('"').next().unwrap_or("").split([' ', ',']))
        {
            let value: f64 = number.parse().unwrap();
            assert!((0.0..=WIDTH).contains(&value), "{value} outside the plot");
        }
    }

    #[test]
    fn nice_ceilings() {
        assert_eq!(nice_ceiling(0.7), 1.0);
        assert_eq!(nice_ceiling(13.0), 20.0);
        assert_eq!(nice_ceiling(41.0), 50.0);
        assert_eq!(nice_ceiling(120.0), 200.0);
    }
}
