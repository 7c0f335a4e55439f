//! Plots as PNG: histograms of whole-number values (rationale lengths in tokens, image
//! sides in pixels) in bins of a round width, and line charts ([`line`]: training
//! curves), drawn with a title, axis labels and tick labels. Drawn on
//! [`canvas::Canvas`] at twice the layout size, so text is crisp.

mod canvas;
pub mod line;

pub use line::{Series, line_png};

use canvas::{Canvas, Color};

/// Counts of values in equal bins `[edges[i], edges[i + 1])`.
#[derive(Clone, Debug, PartialEq)]
pub struct Histogram {
    pub edges: Vec<u64>,
    pub counts: Vec<u64>,
}

/// 1, 2 or 5 times a power of ten, at least `x`.
fn round_up(x: f64) -> u64 {
    let mut unit = 1u64;
    loop {
        for m in [1, 2, 5] {
            if (unit * m) as f64 >= x {
                return unit * m;
            }
        }
        unit = unit.saturating_mul(10);
    }
}

impl Histogram {
    /// About `bins` bins of a round width (1, 2 or 5 × 10ⁿ) from a multiple of it.
    pub fn of(values: &[u64], bins: usize) -> Histogram {
        let (Some(&lo), Some(&hi)) = (values.iter().min(), values.iter().max()) else {
            return Histogram {
                edges: vec![0, 1],
                counts: vec![0],
            };
        };
        let width = round_up((hi - lo + 1) as f64 / bins.max(1) as f64).max(1);
        let start = lo / width * width;
        let n = ((hi - start) / width + 1) as usize;
        let mut counts = vec![0u64; n];
        for v in values {
            counts[((v - start) / width) as usize] += 1;
        }
        Histogram {
            edges: (0..=n as u64).map(|i| start + i * width).collect(),
            counts,
        }
    }
}

/// Layout of a plot (drawn at [`SCALE`] times these sizes).
const WIDTH: i64 = 720;
const HEIGHT: i64 = 400;
const LEFT: i64 = 72;
const RIGHT: i64 = 24;
const TOP: i64 = 44;
const BOTTOM: i64 = 64;
const SCALE: i64 = 2;

const INK: Color = [40, 40, 40];
const GRID: Color = [225, 225, 225];
const BAR: Color = [66, 120, 190];

/// `hist` as a PNG bar chart titled `title`, its x axis labelled `x_label`.
pub fn histogram_png(hist: &Histogram, title: &str, x_label: &str) -> Result<Vec<u8>, String> {
    let mut c = Canvas::new(
        (WIDTH * SCALE) as u32,
        (HEIGHT * SCALE) as u32,
        [255, 255, 255],
    );
    // Everything below is in layout units; `rect` and `text` take canvas pixels.
    let rect = |c: &mut Canvas, x: i64, y: i64, w: i64, h: i64, color| {
        c.rect(x * SCALE, y * SCALE, w * SCALE, h * SCALE, color)
    };
    let text = |c: &mut Canvas, x: i64, y: i64, s: &str, size: u32| {
        c.text(x * SCALE, y * SCALE, s, size * SCALE as u32, INK)
    };
    let width_of = |s: &str, size: u32| Canvas::text_width(s, size);
    let (plot_w, plot_h) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
    let (x0, y0) = (LEFT, TOP + plot_h);

    text(&mut c, (WIDTH - width_of(title, 2)) / 2, 10, title, 2);
    // Y: about five round ticks, with grid lines.
    let most = hist.counts.iter().copied().max().unwrap_or(0).max(1);
    let step = round_up(most as f64 / 5.0);
    let top = most.div_ceil(step) * step;
    let y_of = |v: u64| y0 - (v as f64 / top as f64 * plot_h as f64).round() as i64;
    let mut tick = 0;
    while tick <= top {
        let y = y_of(tick);
        rect(&mut c, x0, y, plot_w, 1, GRID);
        let label = tick.to_string();
        text(&mut c, x0 - 6 - width_of(&label, 1), y - 4, &label, 1);
        tick += step;
    }
    // Bars.
    let n = hist.counts.len().max(1) as i64;
    let bar_w = plot_w as f64 / n as f64;
    for (i, &count) in hist.counts.iter().enumerate() {
        let left = x0 + (i as f64 * bar_w).round() as i64;
        let right = x0 + ((i + 1) as f64 * bar_w).round() as i64;
        let y = y_of(count);
        rect(&mut c, left + 1, y, (right - left - 1).max(1), y0 - y, BAR);
    }
    // X: the axis, and as many edge labels as fit.
    rect(&mut c, x0, y0, plot_w, 1, INK);
    rect(&mut c, x0, TOP, 1, plot_h, INK);
    let widest = hist
        .edges
        .iter()
        .map(|e| width_of(&e.to_string(), 1))
        .max()
        .unwrap_or(8);
    let every = ((widest + 12) as f64 / bar_w).ceil().max(1.0) as usize;
    for (i, edge) in hist.edges.iter().enumerate().step_by(every) {
        let x = x0 + (i as f64 * bar_w).round() as i64;
        let label = edge.to_string();
        rect(&mut c, x, y0, 1, 4, INK);
        text(&mut c, x - width_of(&label, 1) / 2, y0 + 8, &label, 1);
    }
    text(
        &mut c,
        (WIDTH - width_of(x_label, 1)) / 2,
        HEIGHT - 22,
        x_label,
        1,
    );
    text(&mut c, 8, TOP - 18, "count", 1);
    c.png()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_have_round_widths_and_hold_every_value() {
        let h = Histogram::of(&[3, 7, 12, 48, 49, 97], 10);
        assert_eq!(h.edges.first(), Some(&0));
        assert_eq!(h.edges[1] - h.edges[0], 10);
        assert_eq!(h.counts.iter().sum::<u64>(), 6);
        assert_eq!(h.counts[4], 2);
        assert!(*h.edges.last().unwrap() > 97);
        let one = Histogram::of(&[384, 384], 20);
        assert_eq!(
            (one.edges.clone(), one.counts.clone()),
            (vec![384, 385], vec![2])
        );
        assert_eq!(Histogram::of(&[], 5).counts, vec![0]);
    }

    #[test]
    fn plots_are_png_images_with_ink_in_them() {
        let h = Histogram::of(&[10, 20, 20, 30, 30, 30], 3);
        let png = histogram_png(&h, "Rationale length", "tokens").unwrap();
        let img = image::load_from_memory(&png).unwrap().to_rgb8();
        assert_eq!(
            img.dimensions(),
            ((WIDTH * SCALE) as u32, (HEIGHT * SCALE) as u32)
        );
        let bars = img.pixels().filter(|p| p.0 == BAR).count();
        let ink = img.pixels().filter(|p| p.0 == INK).count();
        assert!(
            bars > 10_000 && ink > 1_000,
            "{bars} bar pixels, {ink} ink pixels"
        );
    }
}
