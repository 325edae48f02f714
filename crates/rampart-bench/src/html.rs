//! `--html FILE`: a self-contained report (no scripts, no external assets) with two inline
//! SVG plots: the HDR latency distribution and throughput over time.
//!
//! The SVG is written by hand rather than with `plotters`: two line charts need ~150 lines,
//! add no dependency tree to a crate that every `rampart` build compiles, and give exact
//! control of the markup (small, diffable, renders in any browser without fonts).

use std::fmt::Write as _;

use crate::report::{BenchResult, fmt_bytes, fmt_us};

const W: f64 = 760.0;
const H: f64 = 320.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 35.0;
const TOP: f64 = 30.0;
const BOTTOM: f64 = 45.0;

/// Escapes text for HTML/SVG content and attributes.
pub(crate) fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// Rounds up to 1, 2 or 5 times a power of ten.
pub(crate) fn nice_max(v: f64) -> f64 {
    if !v.is_finite() || v <= 0.0 {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if v <= m * p * (1.0 + 1e-12) {
            return m * p;
        }
    }
    10.0 * p
}

struct Series {
    name: &'static str,
    color: &'static str,
    points: Vec<(f64, f64)>,
}

struct Chart<'a> {
    title: &'a str,
    x_label: &'a str,
    y_label: &'a str,
    x_range: (f64, f64),
    x_ticks: Vec<(f64, String)>,
    y_fmt: &'a dyn Fn(f64) -> String,
    series: Vec<Series>,
}

fn svg(chart: &Chart<'_>) -> String {
    let y_max = nice_max(
        chart
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .fold(0.0, f64::max),
    );
    let (x0, x1) = chart.x_range;
    let span = if x1 > x0 { x1 - x0 } else { 1.0 };
    let pw = W - LEFT - RIGHT;
    let ph = H - TOP - BOTTOM;
    let sx = |x: f64| LEFT + (x - x0) / span * pw;
    let sy = |y: f64| TOP + ph - y / y_max * ph;
    let mut o = String::new();
    let _ = write!(
        o,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" font-family="sans-serif" font-size="11">"#
    );
    let _ = write!(
        o,
        r#"<text x="{}" y="18" font-size="14" font-weight="bold">{}</text>"#,
        LEFT,
        esc(chart.title)
    );
    for i in 0..=5 {
        let v = y_max * f64::from(i) / 5.0;
        let y = sy(v);
        let _ = write!(
            o,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            W - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            esc(&(chart.y_fmt)(v))
        );
    }
    for (x, label) in &chart.x_ticks {
        let px = sx(*x);
        let _ = write!(
            o,
            r##"<line x1="{px:.1}" y1="{TOP}" x2="{px:.1}" y2="{:.1}" stroke="#eee"/><text x="{px:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            TOP + ph,
            TOP + ph + 16.0,
            esc(label)
        );
    }
    let _ = write!(
        o,
        r##"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#888"/><text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text><text transform="translate(14 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"##,
        LEFT + pw / 2.0,
        H - 8.0,
        esc(chart.x_label),
        TOP + ph / 2.0,
        esc(chart.y_label)
    );
    for (i, s) in chart.series.iter().enumerate() {
        if s.points.is_empty() {
            continue;
        }
        let pts: Vec<String> = s
            .points
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y)))
            .collect();
        let _ = write!(
            o,
            r#"<polyline fill="none" stroke="{}" stroke-width="2" points="{}"/>"#,
            s.color,
            pts.join(" ")
        );
        let lx = LEFT + 10.0 + 140.0 * i as f64;
        let _ = write!(
            o,
            r#"<rect x="{lx:.1}" y="{:.1}" width="12" height="3" fill="{}"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            TOP + 10.0,
            s.color,
            lx + 16.0,
            TOP + 14.0,
            esc(s.name)
        );
    }
    o.push_str("</svg>");
    o
}

/// The latency distribution: x is `log10(1 / (1 - q))`, so 90 %, 99 %, 99.9 % are evenly spaced.
fn latency_svg(r: &BenchResult) -> String {
    let points: Vec<(f64, f64)> = r
        .latency_distribution
        .iter()
        .filter(|q| q.quantile < 1.0)
        .map(|q| {
            (
                (1.0 / (1.0 - q.quantile)).log10(),
                q.latency_us as f64 / 1000.0,
            )
        })
        .collect();
    let labels = ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"];
    let fmt = |v: f64| {
        if v >= 100.0 {
            format!("{v:.0}ms")
        } else if v >= 10.0 {
            format!("{v:.1}ms")
        } else {
            format!("{v:.2}ms")
        }
    };
    svg(&Chart {
        title: "Latency by percentile",
        x_label: "percentile",
        y_label: "latency (ms)",
        x_range: (0.0, 5.0),
        x_ticks: labels
            .iter()
            .enumerate()
            .map(|(i, l)| (i as f64, (*l).to_owned()))
            .collect(),
        y_fmt: &fmt,
        series: vec![Series {
            name: "latency",
            color: "#1f6feb",
            points,
        }],
    })
}

/// Responses and errors per second over the measurement.
fn throughput_svg(r: &BenchResult) -> String {
    let n = r.timeline.len().max(1) as f64;
    let ok = r
        .timeline
        .iter()
        .map(|t| (t.second as f64 + 0.5, t.responses as f64))
        .collect();
    let err = r
        .timeline
        .iter()
        .map(|t| (t.second as f64 + 0.5, t.errors as f64))
        .collect();
    let step = nice_max(n / 8.0).max(1.0);
    let mut ticks = Vec::new();
    let mut x = 0.0;
    while x <= n + 1e-9 {
        ticks.push((x, format!("{x:.0}s")));
        x += step;
    }
    let fmt = |v: f64| format!("{v:.0}");
    svg(&Chart {
        title: "Throughput over time",
        x_label: "time since measurement start",
        y_label: "per second",
        x_range: (0.0, n),
        x_ticks: ticks,
        y_fmt: &fmt,
        series: vec![
            Series {
                name: "responses/s",
                color: "#2da44e",
                points: ok,
            },
            Series {
                name: "errors/s",
                color: "#cf222e",
                points: err,
            },
        ],
    })
}

/// Renders the whole report page.
pub fn render(r: &BenchResult) -> String {
    let s = &r.settings;
    let mut o = String::new();
    o.push_str(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>rampart bench report</title>\
<style>body{font-family:sans-serif;margin:2em;color:#222;max-width:820px}table{border-collapse:collapse;margin:.5em 0 1.5em}\
td,th{border:1px solid #ccc;padding:3px 10px;text-align:left}th{background:#f4f4f4}td.n{text-align:right}\
code{background:#f4f4f4;padding:1px 4px}</style></head><body>\n<h1>rampart bench</h1>\n",
    );
    o.push_str("<h2>Settings</h2><table>");
    let model = match s.rate {
        Some(rate) => format!("open, {rate} req/s target (latency from intended start)"),
        None => "closed".to_owned(),
    };
    let stop = match (s.requests, s.duration_s) {
        (Some(n), _) => format!("{n} requests"),
        (None, Some(d)) => format!("{d}s"),
        _ => String::new(),
    };
    for (k, v) in [
        ("model", model),
        ("length", stop),
        ("warm-up", format!("{}s", s.warmup_s)),
        (
            "connections",
            format!("{} x {} streams", s.connections, s.streams),
        ),
        ("threads", s.threads.to_string()),
        ("protocol", s.protocol.clone()),
        ("client", s.client.clone()),
    ] {
        let _ = write!(o, "<tr><th>{k}</th><td>{}</td></tr>", esc(&v));
    }
    for t in &s.targets {
        let _ = write!(
            o,
            "<tr><th>target</th><td><code>{}</code></td></tr>",
            esc(t)
        );
    }
    o.push_str("</table>\n<h2>Results</h2><table>");
    let l = &r.latency;
    for (k, v) in [
        ("throughput", format!("{:.2} req/s", r.rps)),
        ("responses", r.responses.to_string()),
        ("requests sent", r.requests.to_string()),
        ("elapsed", format!("{:.2}s", r.elapsed_s)),
        (
            "body bytes",
            format!(
                "{} ({}/s)",
                fmt_bytes(r.body_bytes as f64),
                fmt_bytes(r.body_bytes_per_s)
            ),
        ),
        ("latency p50", fmt_us(l.p50_us as f64)),
        ("latency p90", fmt_us(l.p90_us as f64)),
        ("latency p99", fmt_us(l.p99_us as f64)),
        ("latency p99.9", fmt_us(l.p999_us as f64)),
        ("latency max", fmt_us(l.max_us as f64)),
        (
            "latency mean / stdev",
            format!("{} / {}", fmt_us(l.mean_us), fmt_us(l.stdev_us)),
        ),
        ("warm-up requests (excluded)", r.warmup_requests.to_string()),
    ] {
        let _ = write!(o, "<tr><th>{k}</th><td class=\"n\">{}</td></tr>", esc(&v));
    }
    o.push_str("</table>\n");
    o.push_str(&latency_svg(r));
    o.push('\n');
    o.push_str(&throughput_svg(r));
    o.push_str("\n<h2>Status codes</h2><table><tr><th>status</th><th>responses</th></tr>");
    for (k, v) in &r.status_codes {
        let _ = write!(o, "<tr><td>{}</td><td class=\"n\">{v}</td></tr>", esc(k));
    }
    o.push_str("</table>\n<h2>Errors</h2><table><tr><th>kind</th><th>count</th><th>first message</th></tr>");
    for kind in crate::report::ErrorKind::ALL {
        let sample = r
            .error_samples
            .get(kind.name())
            .map(String::as_str)
            .unwrap_or("");
        let _ = write!(
            o,
            "<tr><td>{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
            kind.name(),
            r.errors.get(kind),
            esc(sample)
        );
    }
    o.push_str("</table>\n<h2>Latency distribution</h2><table><tr><th>percentile</th><th>latency</th></tr>");
    for q in r.latency_distribution.iter().filter(|q| {
        [0.5, 0.75, 0.9, 0.99, 0.999, 0.9999, 0.99999, 1.0]
            .iter()
            .any(|&p| (q.quantile - p).abs() < 1e-9)
    }) {
        let _ = write!(
            o,
            "<tr><td>{}</td><td class=\"n\">{}</td></tr>",
            if q.quantile >= 1.0 {
                "max".to_owned()
            } else {
                format!("{}%", q.quantile * 100.0)
            },
            fmt_us(q.latency_us as f64)
        );
    }
    o.push_str("</table>\n</body></html>\n");
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Quantile, TimelinePoint};

    #[test]
    fn nice_numbers() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(7.0), 10.0);
        assert_eq!(nice_max(1.0), 1.0);
        assert_eq!(nice_max(1.2), 2.0);
        assert_eq!(nice_max(4100.0), 5000.0);
    }

    #[test]
    fn report_is_self_contained_and_escaped() {
        let mut r = BenchResult {
            rps: 10.0,
            ..Default::default()
        };
        r.settings.targets.push("GET http://x/<script>".into());
        r.latency_distribution = (0..=50)
            .map(|k| Quantile {
                quantile: 1.0 - 10f64.powf(-(k as f64) / 10.0),
                latency_us: 100 + k * 10,
            })
            .chain([Quantile {
                quantile: 1.0,
                latency_us: 9000,
            }])
            .collect();
        r.timeline = (0..10)
            .map(|s| TimelinePoint {
                second: s,
                responses: 100 + s,
                errors: s % 2,
            })
            .collect();
        let html = render(&r);
        assert_eq!(html.matches("<svg").count(), 2);
        assert!(!html.contains("<script>"));
        assert!(html.contains("&lt;script&gt;"));
        assert!(!html.contains("http-equiv") && !html.contains(" src="));
        assert!(html.contains("99.9%") && html.contains("max"));
        assert_eq!(html.matches("<polyline").count(), 3);
        assert!(
            !html.contains("NaN") && !html.contains("inf"),
            "no broken coordinates"
        );
    }

    #[test]
    fn empty_result_renders() {
        let html = render(&BenchResult::default());
        assert!(!html.contains("NaN"));
        assert_eq!(html.matches("<svg").count(), 2);
    }
}
