//! Degradations that imitate what a patch-VQ decoder does to an image: Gaussian blur,
//! additive Gaussian noise and a JPEG round trip. The judge's robustness is stated
//! against [`Degradation::default`].

use super::ShapesError;
use crate::rng::Rng;
use image::codecs::jpeg::JpegEncoder;
use image::{ImageFormat, RgbImage};

/// A blur, then noise, then a JPEG round trip.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Degradation {
    /// Gaussian blur σ in pixels (0: none).
    pub blur_sigma: f64,
    /// Additive Gaussian noise σ, in units of the full range (8/255 ≈ 0.031).
    pub noise_sigma: f64,
    /// JPEG quality 1–100 (`None`: no JPEG).
    pub jpeg_quality: Option<u8>,
    /// Seed of the noise.
    pub seed: u64,
}

impl Default for Degradation {
    /// σ 0.8 px blur, σ 8/255 noise, JPEG quality 60.
    fn default() -> Degradation {
        Degradation {
            blur_sigma: 0.8,
            noise_sigma: 8.0 / 255.0,
            jpeg_quality: Some(60),
            seed: 0,
        }
    }
}

impl Degradation {
    /// The degraded image.
    pub fn apply(&self, image: &RgbImage) -> Result<RgbImage, ShapesError> {
        let blurred = gaussian_blur(image, self.blur_sigma);
        let noisy = add_noise(&blurred, self.noise_sigma, self.seed);
        match self.jpeg_quality {
            Some(quality) => jpeg_round_trip(&noisy, quality),
            None => Ok(noisy),
        }
    }
}

/// Separable Gaussian blur (kernel radius ⌈3σ⌉, edges clamped).
pub fn gaussian_blur(image: &RgbImage, sigma: f64) -> RgbImage {
    if sigma <= 0.0 {
        return image.clone();
    }
    let radius = (3.0 * sigma).ceil() as usize;
    let weights: Vec<f64> = (0..=2 * radius)
        .map(|k| {
            let d = k as f64 - radius as f64;
            (-d * d / (2.0 * sigma * sigma)).exp()
        })
        .collect();
    let total: f64 = weights.iter().sum();
    let kernel: Vec<f32> = weights.iter().map(|w| (w / total) as f32).collect();
    let (w, h) = (image.width() as usize, image.height() as usize);
    let src: Vec<f32> = image.as_raw().iter().map(|&v| f32::from(v)).collect();
    let rows = convolve(&src, &kernel, w, 3, h, 3 * w);
    let out = convolve(&rows, &kernel, h, 3 * w, w, 3);
    let values: Vec<f64> = out.iter().map(|&v| f64::from(v)).collect();
    to_image(image.width(), image.height(), &values)
}

/// Convolves every line of an interleaved RGB buffer with a symmetric `kernel` (edges
/// clamped): a line has `n` pixels `step` values apart, and `lines` lines start
/// `stride` apart.
fn convolve(
    src: &[f32],
    kernel: &[f32],
    n: usize,
    step: usize,
    lines: usize,
    stride: usize,
) -> Vec<f32> {
    let radius = kernel.len() / 2;
    // For each position and each distance d = 1..=radius, the (clamped) positions at
    // -d and +d, as offsets in the buffer.
    let pairs: Vec<Vec<(usize, usize)>> = (0..n)
        .map(|i| {
            (1..=radius)
                .map(|d| (i.saturating_sub(d) * step, (i + d).min(n - 1) * step))
                .collect()
        })
        .collect();
    let mut out = vec![0.0f32; src.len()];
    for line in 0..lines {
        for c in 0..3 {
            let base = line * stride + c;
            for (i, reads) in pairs.iter().enumerate() {
                let mut acc = kernel[radius] * src[base + i * step];
                for (d, &(lo, hi)) in reads.iter().enumerate() {
                    acc += kernel[radius + 1 + d] * (src[base + lo] + src[base + hi]);
                }
                out[base + i * step] = acc;
            }
        }
    }
    out
}

/// Adds Gaussian noise of σ `sigma` (full range = 1) to every channel, seeded.
pub fn add_noise(image: &RgbImage, sigma: f64, seed: u64) -> RgbImage {
    let mut rng = Rng::new(seed);
    let mut noise = [0.0; 2];
    let values: Vec<f64> = (image.as_raw().iter().enumerate())
        .map(|(i, &v)| {
            if i % 2 == 0 {
                noise = rng.gaussian_pair();
            }
            f64::from(v) + noise[i % 2] * sigma * 255.0
        })
        .collect();
    to_image(image.width(), image.height(), &values)
}

/// Encodes as JPEG at `quality` and decodes again.
pub fn jpeg_round_trip(image: &RgbImage, quality: u8) -> Result<RgbImage, ShapesError> {
    let mut bytes = Vec::new();
    JpegEncoder::new_with_quality(&mut bytes, quality).encode_image(image)?;
    Ok(image::load_from_memory_with_format(&bytes, ImageFormat::Jpeg)?.to_rgb8())
}

fn to_image(width: u32, height: u32, values: &[f64]) -> RgbImage {
    let mut image = RgbImage::new(width, height);
    for (dst, v) in image.iter_mut().zip(values) {
        *dst = v.round().clamp(0.0, 255.0) as u8;
    }
    image
}
