//! The exact judge: detects the world's objects in any image (clean renders, or a
//! model's blurry, noisy, blocky output) by color segmentation and shape geometry,
//! and scores images against GenEval-style records with GenEval's rules.
//!
//! - `segment`: pixels to palette colors in Oklab, connected components, colors;
//! - `shape`: a component's geometry to a shape;
//! - `rules`: GenEval's include/exclude/color/position rules over detections;
//! - `summary`: per-task and overall scores in GenEval's summary format.

mod rules;
mod segment;
mod shape;
mod summary;

pub use rules::{BBox, Detection, JudgeOptions, Verdict, evaluate, relative_position};
pub(crate) use rules::{POSITION_MARGIN, direction};
pub use summary::{Summary, TaskScore};

use super::ShapesError;
use super::metadata::Metadata;
use image::RgbImage;

/// Detects objects and scores images. Holds GenEval's options.
#[derive(Clone, Debug, Default)]
pub struct Judge {
    /// GenEval's evaluator options.
    pub options: JudgeOptions,
}

impl Judge {
    /// A judge with these options ([`Judge::default`] has the defaults).
    pub fn new(options: JudgeOptions) -> Judge {
        Judge { options }
    }

    /// Every object found in the image, most confident first. A detection's confidence
    /// is the smaller of its shape's and its color's (each `1 - d1/d2`: 1 on the
    /// prototype, 0 halfway to the next one).
    pub fn detect(&self, image: &RgbImage) -> Vec<Detection> {
        let mut out: Vec<Detection> = segment::blobs(image)
            .into_iter()
            .map(|blob| {
                let geometry = shape::measure(&blob.pixels);
                let (class, shape_confidence) = shape::classify(&geometry);
                Detection {
                    class,
                    color: blob.color,
                    bbox: geometry.bbox,
                    area: geometry.area,
                    confidence: shape_confidence.min(blob.color_confidence),
                }
            })
            .collect();
        out.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
        out
    }

    /// Scores an image against a record.
    pub fn score(&self, image: &RgbImage, metadata: &Metadata) -> Verdict {
        evaluate(&self.detect(image), metadata, &self.options)
    }

    /// Scores an encoded image (PNG, JPEG) against a record.
    pub fn score_encoded(&self, bytes: &[u8], metadata: &Metadata) -> Result<Verdict, ShapesError> {
        let image = image::load_from_memory(bytes)?.to_rgb8();
        Ok(self.score(&image, metadata))
    }
}

/// The nearest of the candidates by distance, and its confidence `1 - d1/d2` (d1, d2:
/// the nearest and second-nearest distances): 1 on a candidate, 0 halfway between two.
fn nearest<T: Copy, const N: usize>(mut candidates: [(f64, T); N]) -> (T, f64) {
    const { assert!(N >= 2, "nearest needs two candidates") };
    candidates.sort_by(|a, b| a.0.total_cmp(&b.0));
    let ((d1, best), (d2, _)) = (candidates[0], candidates[1]);
    (best, if d2 > 0.0 { 1.0 - d1 / d2 } else { 0.0 })
}
