//! Inline SVG charts: grouped bars with 95 % interval whiskers (scores side by side)
//! and line charts (training curves), with axes, ticks and legends. Every label is
//! escaped; the SVG needs no script and no external resource.

use super::html::escape;
use super::model::Chart;
use std::fmt::Write as _;

/// Series colours (Tableau 10), cycled.
pub const PALETTE: [&str; 8] = [
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7",
];

/// The colour of the `i`-th series.
pub fn colour(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

/// One bar: the value and its interval, if known.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bar {
    pub value: f64,
    pub ci: Option<(f64, f64)>,
}

/// A number as a tick or value label: three significant digits, scientific when tiny.
pub fn number(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if !(1e-3..1e5).contains(&a) {
        format!("{v:.1e}")
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else {
        let s = match a {
            10.0.. => format!("{v:.1}"),
            1.0.. => format!("{v:.2}"),
            _ => format!("{v:.3}"),
        };
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// Five ticks spanning `[lo, hi]`.
fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    (0..=4).map(|i| lo + (hi - lo) * i as f64 / 4.0).collect()
}

/// Grouped bars: one group per label in `groups`, one bar per series (name, one bar or
/// none per group), whiskers for intervals. The y axis runs from 0 to 1, or to the
/// largest value or interval end when that is above 1.
pub fn bar_chart(groups: &[String], series: &[(String, Vec<Option<Bar>>)]) -> String {
    let (w, h, left, top, bottom) = (820.0, 280.0, 48.0, 16.0, 64.0);
    let plot_h = h - top - bottom;
    let top_value = series
        .iter()
        .flat_map(|(_, bars)| bars.iter().flatten())
        .map(|b| b.ci.map_or(b.value, |c| c.1.max(b.value)))
        .fold(1.0f64, f64::max);
    let y = |v: f64| top + plot_h * (1.0 - (v / top_value).clamp(0.0, 1.0));
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img">"#
    );
    axes(&mut s, left, w - 8.0, top, h - bottom, 0.0, top_value, y);
    let group_w = (w - 8.0 - left) / groups.len().max(1) as f64;
    let bar_w = (group_w * 0.8 / series.len().max(1) as f64).min(48.0);
    for (g, label) in groups.iter().enumerate() {
        let x0 = left + group_w * g as f64 + (group_w - bar_w * series.len() as f64) / 2.0;
        for (i, (name, bars)) in series.iter().enumerate() {
            let Some(Some(b)) = bars.get(g) else { continue };
            let x = x0 + bar_w * i as f64;
            let _ = write!(
                s,
                r#"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{}: {}</title></rect>"#,
                y(b.value),
                bar_w - 2.0,
                (h - bottom - y(b.value)).max(0.0),
                colour(i),
                escape(name),
                number(b.value)
            );
            if let Some((lo, hi)) = b.ci {
                let cx = x + (bar_w - 2.0) / 2.0;
                let _ = write!(
                    s,
                    r##"<path d="M{cx:.1} {:.1}V{:.1}M{:.1} {:.1}h8M{:.1} {:.1}h8" stroke="#222" stroke-width="1.5" fill="none"/>"##,
                    y(lo),
                    y(hi),
                    cx - 4.0,
                    y(lo),
                    cx - 4.0,
                    y(hi)
                );
            }
        }
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" class="tick">{}</text>"#,
            left + group_w * (g as f64 + 0.5),
            h - bottom + 16.0,
            escape(label)
        );
    }
    legend(
        &mut s,
        left,
        h - 22.0,
        series.iter().map(|(n, _)| n.as_str()),
    );
    s.push_str("</svg>");
    s
}

/// A line chart of `chart`'s series against step, the band (if any) shaded behind
/// the first series.
pub fn line_chart(chart: &Chart) -> String {
    let (w, h, left, top, bottom) = (400.0, 230.0, 52.0, 28.0, 48.0);
    let all = chart
        .series
        .iter()
        .flat_map(|(_, p)| p.iter().copied())
        .chain(
            chart
                .band
                .iter()
                .flat_map(|&(x, lo, hi)| [(x, lo), (x, hi)]),
        );
    let (mut x_lo, mut x_hi, mut y_lo, mut y_hi) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for (x, y) in all {
        (x_lo, x_hi, y_lo, y_hi) = (x_lo.min(x), x_hi.max(x), y_lo.min(y), y_hi.max(y));
    }
    if x_lo > x_hi {
        return String::new();
    }
    if y_hi - y_lo < 1e-12 {
        // A constant series sits in the middle of ±50 % of its value (±1 at zero).
        let pad = if y_lo == 0.0 { 1.0 } else { 0.5 * y_lo.abs() };
        (y_lo, y_hi) = (y_lo - pad, y_hi + pad);
    }
    if x_hi - x_lo < 1e-12 {
        (x_lo, x_hi) = (x_lo - 1.0, x_hi + 1.0);
    }
    let right = w - 10.0;
    let px = |x: f64| left + (right - left) * (x - x_lo) / (x_hi - x_lo);
    let py = |y: f64| top + (h - bottom - top) * (1.0 - (y - y_lo) / (y_hi - y_lo));
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img"><text x="{left}" y="16" class="title">{}</text>"#,
        escape(&chart.title)
    );
    axes(&mut s, left, right, top, h - bottom, y_lo, y_hi, py);
    for x in ticks(x_lo, x_hi) {
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" class="tick">{}</text>"#,
            px(x),
            h - bottom + 14.0,
            number(x.round())
        );
    }
    if !chart.band.is_empty() {
        let upper = chart.band.iter().map(|&(x, _, hi)| (x, hi));
        let lower = chart.band.iter().rev().map(|&(x, lo, _)| (x, lo));
        let pts: Vec<String> = upper
            .chain(lower)
            .map(|(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect();
        let _ = write!(
            s,
            r#"<polygon points="{}" fill="{}" fill-opacity="0.2"/>"#,
            pts.join(" "),
            colour(0)
        );
    }
    for (i, (_, points)) in chart.series.iter().enumerate() {
        let pts: Vec<String> = points
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect();
        let _ = write!(
            s,
            r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="1.5"/>"#,
            pts.join(" "),
            colour(i)
        );
        if points.len() <= 12 {
            for &(x, y) in points {
                let _ = write!(
                    s,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{}"/>"#,
                    px(x),
                    py(y),
                    colour(i)
                );
            }
        }
    }
    legend(
        &mut s,
        left,
        h - 12.0,
        chart.series.iter().map(|(n, _)| n.as_str()),
    );
    s.push_str("</svg>");
    s
}

/// The y axis with five labelled grid lines, and the x axis line.
#[allow(clippy::too_many_arguments)]
fn axes(
    s: &mut String,
    left: f64,
    right: f64,
    top: f64,
    base: f64,
    lo: f64,
    hi: f64,
    y: impl Fn(f64) -> f64,
) {
    for v in ticks(lo, hi) {
        let _ = write!(
            s,
            r##"<line x1="{left}" x2="{right}" y1="{0:.1}" y2="{0:.1}" stroke="#ddd"/><text x="{1}" y="{2:.1}" text-anchor="end" class="tick">{3}</text>"##,
            y(v),
            left - 4.0,
            y(v) + 4.0,
            number(v)
        );
    }
    let _ = write!(
        s,
        r##"<line x1="{left}" x2="{right}" y1="{base}" y2="{base}" stroke="#888"/><line x1="{left}" x2="{left}" y1="{top}" y2="{base}" stroke="#888"/>"##
    );
}

fn legend<'a>(s: &mut String, x: f64, y: f64, names: impl Iterator<Item = &'a str>) {
    let mut at = x;
    for (i, name) in names.enumerate() {
        let _ = write!(
            s,
            r#"<rect x="{at:.1}" y="{:.1}" width="10" height="10" fill="{}"/><text x="{:.1}" y="{y:.1}" class="legend">{}</text>"#,
            y - 9.0,
            colour(i),
            at + 14.0,
            escape(name)
        );
        at += 24.0 + 6.5 * name.chars().count() as f64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well_at_every_scale() {
        assert_eq!(number(0.0), "0");
        assert_eq!(number(0.5), "0.5");
        assert_eq!(number(0.567), "0.567");
        assert_eq!(number(1.25), "1.25");
        assert_eq!(number(1.0), "1");
        assert_eq!(number(12.5), "12.5");
        assert_eq!(number(8500.0), "8500");
        assert_eq!(number(0.0003), "3.0e-4");
    }

    #[test]
    fn bars_scale_to_one_and_draw_whiskers_for_intervals() {
        let svg = bar_chart(
            &["overall".into(), "<colors>".into()],
            &[
                (
                    "a & b".into(),
                    vec![
                        Some(Bar {
                            value: 0.5,
                            ci: Some((0.4, 0.6)),
                        }),
                        None,
                    ],
                ),
                (
                    "c".into(),
                    vec![
                        Some(Bar {
                            value: 1.0,
                            ci: None,
                        }),
                        Some(Bar {
                            value: 0.0,
                            ci: None,
                        }),
                    ],
                ),
            ],
        );
        assert_eq!(
            svg.matches("<rect x").count(),
            3 + 2,
            "three bars, two legend keys"
        );
        assert_eq!(svg.matches("<path").count(), 1, "one whisker");
        assert!(svg.contains("&lt;colors&gt;") && svg.contains("a &amp; b"));
        assert!(!svg.contains("<colors>"));
        // Bar of 0.5 is half the plot's height (top 16, base 216).
        assert!(svg.contains(r#"y="116.0""#), "{svg}");
    }

    #[test]
    fn lines_span_the_plot_and_shade_their_band() {
        let chart = Chart {
            title: "Held-out".into(),
            series: vec![("overall".into(), vec![(0.0, 0.2), (10.0, 0.8)])],
            band: vec![(0.0, 0.1, 0.3), (10.0, 0.7, 0.9)],
        };
        let svg = line_chart(&chart);
        assert!(svg.contains(r#"<polyline points="52.0,"#), "{svg}");
        assert!(
            svg.contains("390.0,"),
            "the last step at the right edge: {svg}"
        );
        assert_eq!(svg.matches("<polygon").count(), 1);
        assert_eq!(svg.matches("<circle").count(), 2);
        assert!(line_chart(&Chart::default()).is_empty());
        let flat = Chart {
            title: "lr".into(),
            series: vec![("lr".into(), vec![(1.0, 3e-4), (60.0, 3e-4)])],
            band: vec![],
        };
        let svg = line_chart(&flat);
        assert!(
            svg.contains(">1.5e-4<") && svg.contains(">4.5e-4<"),
            "{svg}"
        );
    }
}
