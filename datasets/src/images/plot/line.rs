//! Line plots as PNG: one or more series of (x, y) points (training curves: loss,
//! learning rate, gradient norm per step) with round ticks, a legend and axis labels,
//! in the histograms' layout and font.

use super::canvas::{Canvas, Color};
use super::{BOTTOM, HEIGHT, INK, LEFT, RIGHT, SCALE, TOP, WIDTH};

const GRID: Color = [225, 225, 225];
/// Colours of the series, in order (repeating).
const PALETTE: [Color; 4] = [
    [66, 120, 190],
    [214, 96, 77],
    [77, 160, 90],
    [150, 100, 180],
];

/// One named curve.
pub struct Series<'a> {
    pub name: &'a str,
    pub points: &'a [(f64, f64)],
}

/// 1, 2 or 5 times a power of ten, at least `x` (> 0).
fn nice(x: f64) -> f64 {
    let unit = 10f64.powf(x.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * unit)
        .find(|v| *v >= x)
        .unwrap_or(10.0 * unit)
}

/// A tick label: as few decimals as the step needs, or scientific for tiny steps.
fn label(v: f64, step: f64) -> String {
    if step < 1e-3 {
        return format!("{v:.1e}");
    }
    let decimals = (-step.log10().floor()).max(0.0) as usize;
    format!("{v:.decimals$}")
}

/// Round ticks covering `lo..=hi`: (first, step, count).
fn ticks(lo: f64, hi: f64) -> (f64, f64, usize) {
    let span = if hi > lo { hi - lo } else { lo.abs().max(1.0) };
    let step = nice(span / 5.0);
    let first = (lo / step).floor() * step;
    let last = (hi / step).ceil() * step;
    let count = ((last - first) / step).round() as usize + 1;
    (first, step, count.max(2))
}

/// `series` as a PNG line chart titled `title` (finite points only).
pub fn line_png(
    series: &[Series],
    title: &str,
    x_label: &str,
    y_label: &str,
) -> Result<Vec<u8>, String> {
    let finite = |p: &&(f64, f64)| p.0.is_finite() && p.1.is_finite();
    let all: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|s| s.points.iter().filter(finite).copied())
        .collect();
    if all.is_empty() {
        return Err(format!("plot `{title}`: no finite points"));
    }
    let fold = |f: fn(f64, f64) -> f64, init: f64, pick: fn(&(f64, f64)) -> f64| {
        all.iter().map(pick).fold(init, f)
    };
    let (x_lo, x_hi) = (
        fold(f64::min, f64::INFINITY, |p| p.0),
        fold(f64::max, f64::NEG_INFINITY, |p| p.0),
    );
    let (y_lo, y_hi) = (
        fold(f64::min, f64::INFINITY, |p| p.1),
        fold(f64::max, f64::NEG_INFINITY, |p| p.1),
    );
    let (y0_tick, y_step, y_count) = ticks(y_lo, y_hi);
    let (x0_tick, x_step, x_count) = ticks(x_lo, x_hi);
    let y_top = y0_tick + y_step * (y_count - 1) as f64;
    let x_right = x0_tick + x_step * (x_count - 1) as f64;

    let mut c = Canvas::new(
        (WIDTH * SCALE) as u32,
        (HEIGHT * SCALE) as u32,
        [255, 255, 255],
    );
    let rect = |c: &mut Canvas, x: i64, y: i64, w: i64, h: i64, color| {
        c.rect(x * SCALE, y * SCALE, w * SCALE, h * SCALE, color)
    };
    let text = |c: &mut Canvas, x: i64, y: i64, s: &str, size: u32| {
        c.text(x * SCALE, y * SCALE, s, size * SCALE as u32, INK)
    };
    let width_of = |s: &str, size: u32| Canvas::text_width(s, size);
    let (plot_w, plot_h) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
    let (px0, py0) = (LEFT, TOP + plot_h);
    // Canvas pixels of a data point.
    let to_px = |x: f64, y: f64| {
        let fx = (x - x0_tick) / (x_right - x0_tick);
        let fy = (y - y0_tick) / (y_top - y0_tick);
        (
            ((px0 as f64 + fx * plot_w as f64) * SCALE as f64).round() as i64,
            ((py0 as f64 - fy * plot_h as f64) * SCALE as f64).round() as i64,
        )
    };

    text(&mut c, (WIDTH - width_of(title, 2)) / 2, 10, title, 2);
    for i in 0..y_count {
        let v = y0_tick + y_step * i as f64;
        let (_, y) = to_px(x0_tick, v);
        let y = y / SCALE;
        rect(&mut c, px0, y, plot_w, 1, GRID);
        let l = label(v, y_step);
        text(&mut c, px0 - 6 - width_of(&l, 1), y - 4, &l, 1);
    }
    let widest = (0..x_count)
        .map(|i| width_of(&label(x0_tick + x_step * i as f64, x_step), 1))
        .max()
        .unwrap_or(8);
    let every = ((widest + 12) * (x_count as i64 - 1) / plot_w).max(0) as usize + 1;
    for i in (0..x_count).step_by(every) {
        let v = x0_tick + x_step * i as f64;
        let (x, _) = to_px(v, y0_tick);
        let x = x / SCALE;
        let l = label(v, x_step);
        rect(&mut c, x, py0, 1, 4, INK);
        text(&mut c, x - width_of(&l, 1) / 2, py0 + 8, &l, 1);
    }
    // Curves: each segment as dots every canvas pixel along it, 2 pixels thick.
    for (k, s) in series.iter().enumerate() {
        let color = PALETTE[k % PALETTE.len()];
        let points: Vec<(i64, i64)> = s
            .points
            .iter()
            .filter(finite)
            .map(|&(x, y)| to_px(x, y))
            .collect();
        for pair in points.windows(2) {
            let ((ax, ay), (bx, by)) = (pair[0], pair[1]);
            let n = (bx - ax).abs().max((by - ay).abs()).max(1);
            for t in 0..=n {
                let x = ax + (bx - ax) * t / n;
                let y = ay + (by - ay) * t / n;
                c.rect(x - 1, y - 1, 2 * SCALE / 2 + 1, 2 * SCALE / 2 + 1, color);
            }
        }
        if let [only] = points.as_slice() {
            c.rect(only.0 - 3, only.1 - 3, 6, 6, color);
        }
        // Legend, top right, one line per series.
        let name_w = width_of(s.name, 1);
        let (lx, ly) = (WIDTH - RIGHT - name_w - 24, TOP + 6 + 14 * k as i64);
        rect(&mut c, lx, ly + 2, 16, 3, color);
        text(&mut c, lx + 20, ly, s.name, 1);
    }
    rect(&mut c, px0, py0, plot_w, 1, INK);
    rect(&mut c, px0, TOP, 1, plot_h, INK);
    text(
        &mut c,
        (WIDTH - width_of(x_label, 1)) / 2,
        HEIGHT - 22,
        x_label,
        1,
    );
    text(&mut c, 8, TOP - 18, y_label, 1);
    c.png()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_data() {
        let (first, step, count) = ticks(0.013, 4.7);
        assert_eq!((first, step), (0.0, 1.0));
        assert!(first + step * (count - 1) as f64 >= 4.7);
        assert_eq!(label(2.5e-5, 1e-5), "2.5e-5");
        assert_eq!(label(0.25, 0.05), "0.25");
    }

    #[test]
    fn curves_are_drawn_in_their_colours() {
        let loss: Vec<(f64, f64)> = (1..=50).map(|i| (i as f64, 5.0 / i as f64)).collect();
        let other: Vec<(f64, f64)> = (1..=50).map(|i| (i as f64, 1.0)).collect();
        let png = line_png(
            &[
                Series {
                    name: "text",
                    points: &loss,
                },
                Series {
                    name: "image",
                    points: &other,
                },
            ],
            "Loss",
            "step",
            "loss",
        )
        .unwrap();
        let img = image::load_from_memory(&png).unwrap().to_rgb8();
        let count = |c: Color| img.pixels().filter(|p| p.0 == c).count();
        assert!(count(PALETTE[0]) > 1000 && count(PALETTE[1]) > 1000);
        assert!(line_png(&[], "empty", "x", "y").is_err());
    }
}
