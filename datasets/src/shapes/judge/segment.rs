//! Color segmentation: every pixel classified to the nearest of the background and the
//! ten palette colors in Oklab (a perceptual space where Euclidean distance tracks seen
//! difference), non-background pixels grouped into 8-connected components, each
//! component's color read from the mean of its interior pixels (away from the blurred
//! edge, where colors blend into the background), each pixel's coverage by the object
//! estimated, and tiny and background-sized components dropped.

use super::nearest;
use crate::shapes::vocab::{BACKGROUND, Color};
use image::RgbImage;
use std::sync::OnceLock;

/// Components smaller than this fraction of the image are noise (10 px at 64×64,
/// where the smallest object of the world covers about 95).
const MIN_AREA: f64 = 0.0025;
/// Components wider or taller than this fraction of the image are background regions,
/// not objects (the largest object spans 0.34).
const MAX_EXTENT: f64 = 0.6;

fn srgb_to_linear(c: u8) -> f32 {
    static LUT: OnceLock<[f32; 256]> = OnceLock::new();
    LUT.get_or_init(|| {
        std::array::from_fn(|i| {
            let v = i as f32 / 255.0;
            if v <= 0.04045 {
                v / 12.92
            } else {
                ((v + 0.055) / 1.055).powf(2.4)
            }
        })
    })[usize::from(c)]
}

/// sRGB to Oklab (Björn Ottosson, 2020).
pub(crate) fn oklab(rgb: [u8; 3]) -> [f32; 3] {
    let [r, g, b] = rgb.map(srgb_to_linear);
    let l = (0.412_221_46 * r + 0.536_332_55 * g + 0.051_445_995 * b).cbrt();
    let m = (0.211_903_5 * r + 0.680_699_5 * g + 0.107_396_96 * b).cbrt();
    let s = (0.088_302_46 * r + 0.281_718_85 * g + 0.629_978_7 * b).cbrt();
    [
        0.210_454_26 * l + 0.793_617_8 * m - 0.004_072_047 * s,
        1.977_998_5 * l - 2.428_592_2 * m + 0.450_593_7 * s,
        0.025_904_037 * l + 0.782_771_77 * m - 0.808_675_77 * s,
    ]
}

fn distance2(a: [f32; 3], b: [f32; 3]) -> f32 {
    (a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)
}

/// The background then the ten colors, in Oklab.
fn palette() -> &'static [[f32; 3]; 11] {
    static PALETTE: OnceLock<[[f32; 3]; 11]> = OnceLock::new();
    PALETTE.get_or_init(|| {
        std::array::from_fn(|i| match i {
            0 => oklab(BACKGROUND),
            _ => oklab(Color::ALL[i - 1].rgb()),
        })
    })
}

/// Pixels within this RGB distance of the background are background without the
/// Oklab test: every palette color is at least 125 away (brown), and a unit test
/// checks that Oklab agrees on the whole ball. Most pixels take this shortcut.
const SURELY_BACKGROUND: i32 = 32;

/// The pixel in Oklab when it is nearer a palette color than the background.
fn foreground(rgb: [u8; 3]) -> Option<[f32; 3]> {
    let [r, g, b] = [0, 1, 2].map(|i| i32::from(rgb[i]) - i32::from(BACKGROUND[i]));
    let d2 = r * r + g * g + b * b;
    if d2 < SURELY_BACKGROUND * SURELY_BACKGROUND {
        return None;
    }
    let lab = oklab(rgb);
    let p = palette();
    let bg = distance2(lab, p[0]);
    p[1..]
        .iter()
        .any(|&c| distance2(lab, c) < bg)
        .then_some(lab)
}

/// The nearest palette color to a mean color, and `1 - d1/d2`.
fn nearest_color(lab: [f32; 3]) -> (Color, f64) {
    // The palette holds the background first, then the colors in their order.
    nearest(Color::ALL.map(|c| {
        (
            f64::from(distance2(lab, palette()[c as usize + 1])).sqrt(),
            c,
        )
    }))
}

/// One object's connected component.
pub(crate) struct Blob {
    /// Its pixels, `(x, y)`, with the estimated fraction of each the object covers:
    /// the pixel's position on the line from the background to the object's color
    /// (blending by anti-aliasing or blur is linear in the encoded sRGB values),
    /// scaled so that the interior's mean is 1, clamped to `[0, 1]`.
    pub(crate) pixels: Vec<(u32, u32, f64)>,
    pub(crate) color: Color,
    /// `1 - d1/d2`: d1, d2 the Oklab distances from the interior's mean color to the
    /// nearest and second-nearest palette colors.
    pub(crate) color_confidence: f64,
}

/// The objects' components of an image.
pub(crate) fn blobs(image: &RgbImage) -> Vec<Blob> {
    let (w, h) = image.dimensions();
    // Oklab of the foreground pixels (None: background).
    let labs: Vec<Option<[f32; 3]>> = image.pixels().map(|p| foreground(p.0)).collect();
    // 0: background, u32::MAX: foreground not yet labelled, else component number.
    let mut label: Vec<u32> = labs
        .iter()
        .map(|lab| if lab.is_some() { u32::MAX } else { 0 })
        .collect();
    let mut out = Vec::new();
    let mut next = 1;
    for start in 0..label.len() {
        if label[start] == u32::MAX {
            let pixels = flood(&mut label, w, h, start, next);
            out.extend(blob(image, &labs, &label, next, pixels));
            next += 1;
        }
    }
    out
}

/// Labels the 8-connected foreground component of `start` as `id`; its pixels.
fn flood(label: &mut [u32], w: u32, h: u32, start: usize, id: u32) -> Vec<(u32, u32)> {
    label[start] = id;
    let mut stack = vec![(start as u32 % w, start as u32 / w)];
    let mut pixels = Vec::new();
    while let Some((x, y)) = stack.pop() {
        pixels.push((x, y));
        for (dx, dy) in [
            (-1, -1),
            (0, -1),
            (1, -1),
            (-1, 0),
            (1, 0),
            (-1, 1),
            (0, 1),
            (1, 1),
        ] {
            let (nx, ny) = (i64::from(x) + dx, i64::from(y) + dy);
            if nx < 0 || ny < 0 || nx >= i64::from(w) || ny >= i64::from(h) {
                continue;
            }
            let n = (ny * i64::from(w) + nx) as usize;
            if label[n] == u32::MAX {
                label[n] = id;
                stack.push((nx as u32, ny as u32));
            }
        }
    }
    pixels
}

/// The object of component `id`, unless it is too small or too large to be one.
fn blob(
    image: &RgbImage,
    labs: &[Option<[f32; 3]>],
    label: &[u32],
    id: u32,
    pixels: Vec<(u32, u32)>,
) -> Option<Blob> {
    let (w, h) = image.dimensions();
    let idx = |x: u32, y: u32| (y * w + x) as usize;
    // The interior: pixels whose four neighbours are in the component.
    let inside = |&(x, y): &(u32, u32)| {
        x > 0
            && y > 0
            && x + 1 < w
            && y + 1 < h
            && [(x - 1, y), (x + 1, y), (x, y - 1), (x, y + 1)]
                .into_iter()
                .all(|(a, b)| label[idx(a, b)] == id)
    };
    let mut core: Vec<(u32, u32)> = pixels.iter().copied().filter(inside).collect();
    if core.is_empty() {
        core.clone_from(&pixels);
    }
    let n = core.len() as f32;
    let mean = core.iter().fold([0.0f32; 3], |acc, &(x, y)| {
        let c = labs[idx(x, y)].unwrap_or_default();
        [acc[0] + c[0] / n, acc[1] + c[1] / n, acc[2] + c[2] / n]
    });
    let (color, color_confidence) = nearest_color(mean);
    let alpha = projection(BACKGROUND, color.rgb());
    let alpha_at = |&(x, y): &(u32, u32)| alpha(image.get_pixel(x, y).0);
    let scale = core.iter().map(alpha_at).sum::<f64>() / core.len() as f64;
    if scale <= 0.0 {
        return None;
    }
    let pixels: Vec<(u32, u32, f64)> = pixels
        .iter()
        .map(|p| (p.0, p.1, (alpha_at(p) / scale).clamp(0.0, 1.0)))
        .collect();
    // Size checks on the object proper: its pixels at least half covered.
    let solid: Vec<_> = pixels.iter().filter(|p| p.2 >= 0.5).collect();
    let span = |axis: fn(&&(u32, u32, f64)) -> u32| {
        let lo = solid.iter().map(axis).min().unwrap_or(0);
        let hi = solid.iter().map(axis).max().unwrap_or(0);
        f64::from(hi + 1 - lo)
    };
    let too_small = (solid.len() as f64) < MIN_AREA * f64::from(w * h);
    let too_big =
        span(|p| p.0) > MAX_EXTENT * f64::from(w) || span(|p| p.1) > MAX_EXTENT * f64::from(h);
    (!too_small && !too_big).then_some(Blob {
        pixels,
        color,
        color_confidence,
    })
}

/// How far along the line from `from` to `to` a pixel lies (0 at `from`, 1 at `to`).
fn projection(from: [u8; 3], to: [u8; 3]) -> impl Fn([u8; 3]) -> f64 {
    let d = [0, 1, 2].map(|i| f64::from(to[i]) - f64::from(from[i]));
    let norm2 = d.iter().map(|v| v * v).sum::<f64>().max(1.0);
    move |p| {
        (0..3)
            .map(|i| (f64::from(p[i]) - f64::from(from[i])) * d[i])
            .sum::<f64>()
            / norm2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rgb_shortcut_agrees_with_oklab() {
        let p = palette();
        let r = SURELY_BACKGROUND;
        for dr in (-r..=r).step_by(2) {
            for dg in (-r..=r).step_by(2) {
                for db in (-r..=r).step_by(2) {
                    if dr * dr + dg * dg + db * db >= r * r {
                        continue;
                    }
                    let rgb = [dr, dg, db].map(|d| (128 + d) as u8);
                    let lab = oklab(rgb);
                    let bg = distance2(lab, p[0]);
                    assert!(p[1..].iter().all(|&c| distance2(lab, c) > bg), "{rgb:?}");
                }
            }
        }
    }

    #[test]
    fn palette_colors_are_nearest_to_themselves() {
        for color in Color::ALL {
            assert_eq!(nearest_color(oklab(color.rgb())).0, color);
            assert!(foreground(color.rgb()).is_some(), "{color:?}");
        }
        assert!(foreground(BACKGROUND).is_none());
    }
}
