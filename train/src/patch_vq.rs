//! The patch VQ: the shapes world's small stand-in for VQ-16.
//!
//! An image is cut into P×P patches; each patch is replaced by the index of the nearest
//! vector of a codebook learned by k-means over patches of training images. Encoding
//! gives (S/P)² codes per S×S image; decoding tiles the codebook vectors back. The model
//! is two files: `tokenizer.json` (kind, sizes) and `codebook.safetensors` (one f32
//! tensor `codebook` of shape [K, P·P·3], values in [0, 1]).

use datasets::rng::Rng;
use image::RgbImage;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

/// The sizes of a patch VQ.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatchVqConfig {
    /// Side of the square images it encodes.
    pub image_size: u32,
    /// Side of a patch (divides `image_size`).
    pub patch: u32,
    /// Number of codebook vectors (≤ 65536: codes are u16).
    pub codebook_size: u32,
}

impl PatchVqConfig {
    pub fn dim(&self) -> usize {
        (self.patch * self.patch * 3) as usize
    }

    /// Codes per image.
    pub fn tokens(&self) -> usize {
        let side = (self.image_size / self.patch) as usize;
        side * side
    }

    pub fn check(&self) -> Result<(), String> {
        if self.patch == 0 || self.image_size == 0 || !self.image_size.is_multiple_of(self.patch) {
            return Err(format!(
                "patch {} must divide image size {}",
                self.patch, self.image_size
            ));
        }
        if self.codebook_size < 2 || self.codebook_size > 65536 {
            return Err(format!(
                "codebook size {} must be in 2..=65536",
                self.codebook_size
            ));
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VqError {
    #[error("{0}")]
    Invalid(String),
    #[error("{path}: {message}")]
    File { path: String, message: String },
}

/// A trained patch VQ.
#[derive(Clone, Debug, PartialEq)]
pub struct PatchVq {
    pub config: PatchVqConfig,
    /// K rows of `dim` floats.
    codebook: Vec<f32>,
    /// Squared norm of each codebook row.
    norms: Vec<f32>,
}

/// The patches of an image as vectors in [0, 1], in raster order of patches.
fn patches(img: &RgbImage, p: u32) -> Vec<Vec<f32>> {
    let side = img.width() / p;
    let mut out = Vec::with_capacity((side * side) as usize);
    for py in 0..img.height() / p {
        for px in 0..side {
            let mut v = Vec::with_capacity((p * p * 3) as usize);
            for y in 0..p {
                for x in 0..p {
                    let c = img.get_pixel(px * p + x, py * p + y).0;
                    v.extend(c.iter().map(|&b| b as f32 / 255.0));
                }
            }
            out.push(v);
        }
    }
    out
}

fn dist2(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// Training settings.
#[derive(Clone, Copy, Debug)]
pub struct TrainOptions {
    pub config: PatchVqConfig,
    /// Patches sampled from the images (before removing duplicates).
    pub samples: usize,
    pub iterations: usize,
    pub seed: u64,
}

impl PatchVq {
    /// Learn a codebook by k-means++ and Lloyd iterations over patches of `images`.
    /// Identical patches (plain background, solid fills) are merged with weights, so
    /// the cost follows the variety of patches, not their number.
    pub fn train(images: &[RgbImage], options: &TrainOptions) -> Result<PatchVq, VqError> {
        let config = options.config;
        config.check().map_err(VqError::Invalid)?;
        for img in images {
            if img.width() != config.image_size || img.height() != config.image_size {
                return Err(VqError::Invalid(format!(
                    "an image is {}×{}, the tokenizer takes {}×{}",
                    img.width(),
                    img.height(),
                    config.image_size,
                    config.image_size
                )));
            }
        }
        let mut rng = Rng::new(options.seed);
        let all: Vec<Vec<f32>> = images
            .iter()
            .flat_map(|i| patches(i, config.patch))
            .collect();
        if all.is_empty() {
            return Err(VqError::Invalid("no images to train on".into()));
        }
        // Sample, then merge duplicates into weighted points.
        let take = options.samples.min(all.len());
        let mut weights: HashMap<Vec<u32>, (usize, f32)> = HashMap::new();
        for _ in 0..take {
            let i = (rng.next_u64() % all.len() as u64) as usize;
            let key: Vec<u32> = all[i].iter().map(|x| x.to_bits()).collect();
            weights.entry(key).or_insert((i, 0.0)).1 += 1.0;
        }
        let mut points: Vec<(usize, f32)> = weights.into_values().collect();
        points.sort_by_key(|(i, _)| *i);
        let data: Vec<&[f32]> = points.iter().map(|(i, _)| all[*i].as_slice()).collect();
        let w: Vec<f32> = points.iter().map(|(_, w)| *w).collect();
        let k = (config.codebook_size as usize).min(data.len());
        let dim = config.dim();

        // k-means++ initialisation (weighted).
        let mut centers: Vec<Vec<f32>> =
            vec![data[(rng.next_u64() % data.len() as u64) as usize].to_vec()];
        let mut nearest: Vec<f32> = data.iter().map(|p| dist2(p, &centers[0])).collect();
        while centers.len() < k {
            let total: f64 = nearest.iter().zip(&w).map(|(d, w)| (*d * *w) as f64).sum();
            let pick = if total <= 0.0 {
                (rng.next_u64() % data.len() as u64) as usize
            } else {
                let mut target = rng.unit() * total;
                let mut chosen = data.len() - 1;
                for (i, (d, w)) in nearest.iter().zip(&w).enumerate() {
                    target -= (*d * *w) as f64;
                    if target <= 0.0 {
                        chosen = i;
                        break;
                    }
                }
                chosen
            };
            let c = data[pick].to_vec();
            for (i, p) in data.iter().enumerate() {
                nearest[i] = nearest[i].min(dist2(p, &c));
            }
            centers.push(c);
        }

        // Lloyd iterations.
        let mut assign = vec![0usize; data.len()];
        for _ in 0..options.iterations {
            let mut changed = false;
            for (i, p) in data.iter().enumerate() {
                let best = nearest_center(p, &centers);
                if best != assign[i] {
                    assign[i] = best;
                    changed = true;
                }
            }
            let mut sums = vec![vec![0f64; dim]; k];
            let mut mass = vec![0f64; k];
            for (i, p) in data.iter().enumerate() {
                let c = assign[i];
                mass[c] += w[i] as f64;
                for (s, x) in sums[c].iter_mut().zip(p.iter()) {
                    *s += (*x * w[i]) as f64;
                }
            }
            for c in 0..k {
                if mass[c] > 0.0 {
                    centers[c] = sums[c].iter().map(|s| (s / mass[c]) as f32).collect();
                } else {
                    // An empty cluster takes the point worst served by its centre.
                    let (far, _) = data
                        .iter()
                        .enumerate()
                        .map(|(i, p)| (i, dist2(p, &centers[assign[i]]) * w[i]))
                        .fold((0, -1.0f32), |a, b| if b.1 > a.1 { b } else { a });
                    centers[c] = data[far].to_vec();
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        let mut codebook = Vec::with_capacity(k * dim);
        for c in &centers {
            codebook.extend_from_slice(c);
        }
        Ok(Self::from_codebook(
            PatchVqConfig {
                codebook_size: k as u32,
                ..config
            },
            codebook,
        ))
    }

    fn from_codebook(config: PatchVqConfig, codebook: Vec<f32>) -> PatchVq {
        let norms = codebook
            .chunks(config.dim())
            .map(|c| c.iter().map(|x| x * x).sum())
            .collect();
        PatchVq {
            config,
            codebook,
            norms,
        }
    }

    fn row(&self, k: usize) -> &[f32] {
        let d = self.config.dim();
        &self.codebook[k * d..(k + 1) * d]
    }

    /// The codes of an image (which must be `image_size` square).
    pub fn encode(&self, img: &RgbImage) -> Result<Vec<u16>, VqError> {
        let s = self.config.image_size;
        if img.width() != s || img.height() != s {
            return Err(VqError::Invalid(format!(
                "image is {}×{}, the tokenizer takes {s}×{s}",
                img.width(),
                img.height()
            )));
        }
        Ok(patches(img, self.config.patch)
            .iter()
            .map(|p| self.nearest(p) as u16)
            .collect())
    }

    fn nearest(&self, p: &[f32]) -> usize {
        // ‖p − c‖² = ‖p‖² − 2 p·c + ‖c‖²; ‖p‖² is the same for every c.
        let mut best = (0, f32::INFINITY);
        for k in 0..self.config.codebook_size as usize {
            let dot: f32 = p.iter().zip(self.row(k)).map(|(a, b)| a * b).sum();
            let d = self.norms[k] - 2.0 * dot;
            if d < best.1 {
                best = (k, d);
            }
        }
        best.0
    }

    /// The image of a code sequence.
    pub fn decode(&self, codes: &[u16]) -> Result<RgbImage, VqError> {
        let c = self.config;
        if codes.len() != c.tokens() {
            return Err(VqError::Invalid(format!(
                "{} codes; an image takes {}",
                codes.len(),
                c.tokens()
            )));
        }
        let side = c.image_size / c.patch;
        let mut img = RgbImage::new(c.image_size, c.image_size);
        for (i, &code) in codes.iter().enumerate() {
            if code as u32 >= c.codebook_size {
                return Err(VqError::Invalid(format!(
                    "code {code} is outside the codebook of {}",
                    c.codebook_size
                )));
            }
            let v = self.row(code as usize);
            let (px, py) = (i as u32 % side, i as u32 / side);
            for y in 0..c.patch {
                for x in 0..c.patch {
                    let o = ((y * c.patch + x) * 3) as usize;
                    let rgb = [0, 1, 2].map(|j| (v[o + j].clamp(0.0, 1.0) * 255.0).round() as u8);
                    img.put_pixel(px * c.patch + x, py * c.patch + y, image::Rgb(rgb));
                }
            }
        }
        Ok(img)
    }

    /// Write `tokenizer.json` and `codebook.safetensors` into `dir`.
    pub fn save(&self, dir: &Path) -> Result<(), VqError> {
        let err = |path: &Path, e: &dyn std::fmt::Display| VqError::File {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        let json_path = dir.join("tokenizer.json");
        let json = serde_json::json!({"kind": "patch_vq", "config": self.config});
        std::fs::write(&json_path, serde_json::to_vec_pretty(&json).expect("json"))
            .map_err(|e| err(&json_path, &e))?;
        let bytes: Vec<u8> = self.codebook.iter().flat_map(|x| x.to_le_bytes()).collect();
        let shape = vec![self.config.codebook_size as usize, self.config.dim()];
        let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape, &bytes)
            .map_err(|e| err(dir, &e))?;
        let st_path = dir.join("codebook.safetensors");
        let data =
            safetensors::serialize([("codebook", view)], None).map_err(|e| err(&st_path, &e))?;
        std::fs::write(&st_path, data).map_err(|e| err(&st_path, &e))
    }

    /// Read a patch VQ written by [`PatchVq::save`].
    pub fn load(dir: &Path) -> Result<PatchVq, VqError> {
        let err = |path: &Path, e: &dyn std::fmt::Display| VqError::File {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        let json_path = dir.join("tokenizer.json");
        let text = std::fs::read(&json_path).map_err(|e| err(&json_path, &e))?;
        let json: serde_json::Value =
            serde_json::from_slice(&text).map_err(|e| err(&json_path, &e))?;
        if json["kind"] != "patch_vq" {
            return Err(err(
                &json_path,
                &format!("kind {} is not patch_vq", json["kind"]),
            ));
        }
        let config: PatchVqConfig =
            serde_json::from_value(json["config"].clone()).map_err(|e| err(&json_path, &e))?;
        config.check().map_err(|m| err(&json_path, &m))?;
        let st_path = dir.join("codebook.safetensors");
        let bytes = std::fs::read(&st_path).map_err(|e| err(&st_path, &e))?;
        let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| err(&st_path, &e))?;
        let t = st.tensor("codebook").map_err(|e| err(&st_path, &e))?;
        let want = [config.codebook_size as usize, config.dim()];
        if t.shape() != want || t.dtype() != safetensors::Dtype::F32 {
            return Err(err(
                &st_path,
                &format!(
                    "codebook is {:?} {:?}, expected F32 {want:?}",
                    t.dtype(),
                    t.shape()
                ),
            ));
        }
        let codebook = t
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        Ok(Self::from_codebook(config, codebook))
    }
}

fn nearest_center(p: &[f32], centers: &[Vec<f32>]) -> usize {
    let mut best = (0, f32::INFINITY);
    for (k, c) in centers.iter().enumerate() {
        let d = dist2(p, c);
        if d < best.1 {
            best = (k, d);
        }
    }
    best.0
}

/// Peak signal-to-noise ratio of `b` against `a`, in dB (∞ for identical images).
pub fn psnr(a: &RgbImage, b: &RgbImage) -> f64 {
    let n = a.as_raw().len() as f64;
    let mse: f64 = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| {
            let d = *x as f64 - *y as f64;
            d * d
        })
        .sum::<f64>()
        / n;
    if mse == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (255.0f64 * 255.0 / mse).log10()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn squares(seed: u32) -> RgbImage {
        RgbImage::from_fn(16, 16, |x, y| {
            let inside = (x / 4 + y / 4 + seed).is_multiple_of(3);
            if inside {
                image::Rgb([200, 30, 30])
            } else {
                image::Rgb([128, 128, 128])
            }
        })
    }

    #[test]
    fn a_codebook_that_fits_the_patches_reconstructs_exactly() {
        let imgs: Vec<RgbImage> = (0..3).map(squares).collect();
        let options = TrainOptions {
            config: PatchVqConfig {
                image_size: 16,
                patch: 4,
                codebook_size: 8,
            },
            samples: 10_000,
            iterations: 10,
            seed: 1,
        };
        let vq = PatchVq::train(&imgs, &options).unwrap();
        // Two distinct patches exist (red, grey): both are in the codebook.
        assert_eq!(vq.config.codebook_size, 2);
        for img in &imgs {
            let codes = vq.encode(img).unwrap();
            assert_eq!(codes.len(), 16);
            assert_eq!(psnr(img, &vq.decode(&codes).unwrap()), f64::INFINITY);
        }
        assert_eq!(
            PatchVq::train(&imgs, &options).unwrap(),
            vq,
            "seeded: same codebook"
        );
        let dir = tempfile::tempdir().unwrap();
        vq.save(dir.path()).unwrap();
        assert_eq!(PatchVq::load(dir.path()).unwrap(), vq);
    }

    #[test]
    fn bad_inputs_are_refused() {
        let vq = PatchVq::from_codebook(
            PatchVqConfig {
                image_size: 16,
                patch: 4,
                codebook_size: 2,
            },
            vec![0.0; 96],
        );
        assert!(vq.encode(&RgbImage::new(8, 8)).is_err());
        assert!(vq.decode(&[0; 15]).is_err());
        assert!(vq.decode(&[2; 16]).is_err());
        assert!(
            PatchVqConfig {
                image_size: 16,
                patch: 5,
                codebook_size: 2
            }
            .check()
            .is_err()
        );
    }
}
