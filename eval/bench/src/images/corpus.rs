//! The benchmark's corpus: photo-like images of mixed sizes, made once per folder.
//!
//! Each image is a mosaic of tiles cut at native resolution from photographs, so that
//! it has the detail and the entropy of a photograph at every size (an upscaled photo
//! would be smooth, and fast to decode): the photographs are scikit-image's (astronaut,
//! coffee, cat, rocket, Hubble deep field, tissue, retina, cameraman) when the given
//! Python has it, else synthetic ones. Sizes: the shorter side log-uniform in
//! 256..=1536 pixels, the longer 1 to 1.8 times it, 3 in 10 portrait. 9 in 10 are JPEG
//! (quality 70 to 90, 4:2:0, 1 in 8 progressive), 1 in 10 PNG. Everything is seeded by
//! the image's number: the same folder holds the same bytes on every machine.

use anyhow::{Context, Result, bail};
use datasets::rng::Rng;
use image::{ImageEncoder, RgbImage};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Bump when the images made change; a folder made by another version is made again.
const VERSION: u32 = 1;

const PHOTOS: &[&str] = &[
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "camera",
];

/// What the corpus is made of.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Manifest {
    pub version: u32,
    pub images: usize,
    /// `scikit-image` or `synthetic`.
    pub photos: String,
    pub bytes: u64,
    pub jpeg: usize,
    pub png: usize,
    /// Shorter sides: min, median, max.
    pub shorter_side: [u32; 3],
}

/// Uniform-ish in `0..n` by the remainder (the corpus's historical draw: kept so the
/// benchmark corpus stays the same images).
fn below(rng: &mut Rng, n: u32) -> u32 {
    (rng.next_u64() % n.max(1) as u64) as u32
}

/// The photographs, from scikit-image through `python`, or `None` without it.
fn skimage_photos(python: &Path, dir: &Path) -> Option<Vec<RgbImage>> {
    let script = format!(
        "import sys, numpy as np, skimage.data as d\nfrom PIL import Image\nfor n in {PHOTOS:?}:\n    Image.fromarray(np.asarray(getattr(d, n)())).convert('RGB').save(sys.argv[1] + '/' + n + '.png')\n"
    );
    std::fs::create_dir_all(dir).ok()?;
    let ok = Command::new(python)
        .args(["-c", &script])
        .arg(dir)
        .output()
        .ok()?
        .status
        .success();
    if !ok {
        return None;
    }
    PHOTOS
        .iter()
        .map(|n| {
            image::open(dir.join(format!("{n}.png")))
                .ok()
                .map(|i| i.to_rgb8())
        })
        .collect()
}

/// Photographs stand-ins: smooth colour fields, hard-edged discs and grain.
fn synthetic_photos() -> Vec<RgbImage> {
    (0..6u64)
        .map(|k| {
            let mut rng = Rng::new(k + 1);
            let (fx, fy) = (1.0 + 3.0 * rng.unit(), 1.0 + 3.0 * rng.unit());
            let discs: Vec<(f64, f64, f64, [u8; 3])> = (0..12)
                .map(|_| {
                    let c = [
                        below(&mut rng, 256) as u8,
                        below(&mut rng, 256) as u8,
                        below(&mut rng, 256) as u8,
                    ];
                    (
                        800.0 * rng.unit(),
                        600.0 * rng.unit(),
                        20.0 + 120.0 * rng.unit(),
                        c,
                    )
                })
                .collect();
            RgbImage::from_fn(800, 600, |x, y| {
                let (xf, yf) = (x as f64, y as f64);
                let inside = discs
                    .iter()
                    .find(|(cx, cy, r, _)| (xf - cx).powi(2) + (yf - cy).powi(2) < r * r);
                let grain = (below(&mut rng, 24) as i32) - 12;
                let base = match inside {
                    Some(&(_, _, _, c)) => c,
                    None => {
                        let v = |f: f64, p: f64| {
                            (128.0 + 100.0 * (f * (xf + yf * 0.7) / 400.0 + p).sin()) as u8
                        };
                        [v(fx, 0.0), v(fy, 2.0), v(fx + fy, 4.0)]
                    }
                };
                image::Rgb(base.map(|c| (c as i32 + grain).clamp(0, 255) as u8))
            })
        })
        .collect()
}

/// Image `i`: its size, then tiles of the photographs, row by row.
fn mosaic(i: usize, photos: &[RgbImage]) -> RgbImage {
    let mut rng = Rng::new(i as u64 * 7919 + 17);
    let short = (256f64.ln() + (1536f64.ln() - 256f64.ln()) * rng.unit()).exp() as u32;
    let long = (short as f64 * (1.0 + 0.8 * rng.unit())) as u32;
    let (w, h) = if below(&mut rng, 10) < 3 {
        (short, long)
    } else {
        (long, short)
    };
    let mut out = RgbImage::new(w, h);
    let stride = w as usize * 3;
    let mut y = 0;
    while y < h {
        let th = (120 + below(&mut rng, 180)).min(h - y);
        let mut x = 0;
        while x < w {
            let photo = &photos[below(&mut rng, photos.len() as u32) as usize];
            let tw = (120 + below(&mut rng, 330)).min(w - x).min(photo.width());
            let th = th.min(photo.height());
            let sx = below(&mut rng, photo.width() - tw + 1);
            let sy = below(&mut rng, photo.height() - th + 1);
            let src_stride = photo.width() as usize * 3;
            for row in 0..th as usize {
                let from = (sy as usize + row) * src_stride + sx as usize * 3;
                let to = (y as usize + row) * stride + x as usize * 3;
                let n = tw as usize * 3;
                out.as_mut()[to..to + n].copy_from_slice(&photo.as_raw()[from..from + n]);
            }
            x += tw;
        }
        y += th;
    }
    out
}

/// Image `i` encoded, and its file name.
fn encode(i: usize, img: &RgbImage) -> Result<(String, Vec<u8>)> {
    let mut rng = Rng::new(i as u64 * 104_729 + 3);
    let mut bytes = Vec::new();
    if below(&mut rng, 10) == 0 {
        image::codecs::png::PngEncoder::new(&mut bytes).write_image(
            img.as_raw(),
            img.width(),
            img.height(),
            image::ExtendedColorType::Rgb8,
        )?;
        return Ok((format!("{i:05}.png"), bytes));
    }
    let mut jpeg = jpeg_encoder::Encoder::new(&mut bytes, 70 + below(&mut rng, 21) as u8);
    jpeg.set_sampling_factor(jpeg_encoder::SamplingFactor::F_2_2);
    jpeg.set_progressive(below(&mut rng, 8) == 0);
    jpeg.encode(
        img.as_raw(),
        img.width() as u16,
        img.height() as u16,
        jpeg_encoder::ColorType::Rgb,
    )?;
    Ok((format!("{i:05}.jpg"), bytes))
}

/// The corpus of `n` images in `dir/images` (made unless `dir` holds it already), and
/// what it is.
pub fn make(dir: &Path, n: usize, python: &Path, threads: usize) -> Result<(PathBuf, Manifest)> {
    let images = dir.join("images");
    let manifest_path = dir.join("corpus.json");
    if let Ok(text) = std::fs::read(&manifest_path)
        && let Ok(m) = serde_json::from_slice::<Manifest>(&text)
        && m.version == VERSION
        && m.images == n
    {
        return Ok((images, m));
    }
    if images.exists() {
        std::fs::remove_dir_all(&images).with_context(|| images.display().to_string())?;
    }
    std::fs::create_dir_all(&images)?;
    let (photos, source) = match skimage_photos(python, &dir.join("photos")) {
        Some(p) => (p, "scikit-image"),
        None => (synthetic_photos(), "synthetic"),
    };
    if photos.is_empty() {
        bail!("no photographs to make the corpus from");
    }
    eprintln!(
        "making {n} images from {source} photographs in {} …",
        images.display()
    );
    let made: Vec<Result<Vec<(bool, u32, u64)>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads.max(1))
            .map(|t| {
                let (photos, images) = (&photos, &images);
                s.spawn(move || {
                    (t..n)
                        .step_by(threads.max(1))
                        .map(|i| {
                            let img = mosaic(i, photos);
                            let (name, bytes) = encode(i, &img)?;
                            std::fs::write(images.join(&name), &bytes)?;
                            Ok((
                                name.ends_with(".png"),
                                img.width().min(img.height()),
                                bytes.len() as u64,
                            ))
                        })
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("corpus threads do not panic"))
            .collect()
    });
    let mut all = Vec::with_capacity(n);
    for part in made {
        all.extend(part?);
    }
    let mut sides: Vec<u32> = all.iter().map(|a| a.1).collect();
    sides.sort_unstable();
    let png = all.iter().filter(|a| a.0).count();
    let manifest = Manifest {
        version: VERSION,
        images: n,
        photos: source.to_string(),
        bytes: all.iter().map(|a| a.2).sum(),
        jpeg: n - png,
        png,
        shorter_side: [sides[0], sides[n / 2], sides[n - 1]],
    };
    std::fs::write(&manifest_path, serde_json::to_vec_pretty(&manifest)?)?;
    Ok((images, manifest))
}
