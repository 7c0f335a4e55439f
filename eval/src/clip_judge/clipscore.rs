//! T2I-CompBench's CLIPScore (`CLIPScore_eval/CLIP_similarity.py`): the raw cosine
//! similarity of an image and its full prompt — no ×100, no clipping, no 2.5 weight
//! (about 0.3 for OpenAI's ViT-B/32) — averaged over the images of a category; the
//! overall mean is over all images, with a bootstrap interval over prompts.

use crate::clip::{Clip, ClipError, cosine};
use datasets::rng::Rng;
use image::RgbImage;

/// The CLIPScore of each image against its text.
pub fn scores(clip: &Clip, images: &[RgbImage], texts: &[&str]) -> Result<Vec<f64>, ClipError> {
    let mut distinct = texts.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    let sims = cosine(
        &clip.image_embeddings(images)?,
        &clip.text_embeddings(&distinct)?,
    )?;
    Ok(texts
        .iter()
        .zip(&sims)
        .map(|(t, row)| {
            let at = distinct
                .binary_search(t)
                .expect("every text is among the distinct ones");
            f64::from(row[at])
        })
        .collect())
}

/// One prompt's images: (sum of their scores, images).
pub type PromptScores = (f64, usize);

fn mean(prompts: &[PromptScores]) -> f64 {
    let (sum, n) = prompts
        .iter()
        .fold((0.0, 0), |(s, n), (a, b)| (s + a, n + b));
    sum / n.max(1) as f64
}

/// The mean score over all images of `prompts` and its `level` percentile interval over
/// `rounds` resamples of the prompts (with replacement).
pub fn mean_interval(
    prompts: &[PromptScores],
    rounds: usize,
    level: f64,
    seed: u64,
) -> (f64, f64, f64) {
    let point = mean(prompts);
    if prompts.is_empty() {
        return (point, point, point);
    }
    let mut rng = Rng::new(seed);
    let mut samples: Vec<f64> = (0..rounds.max(1))
        .map(|_| {
            let resampled: Vec<PromptScores> = (0..prompts.len())
                .map(|_| prompts[rng.below(prompts.len())])
                .collect();
            mean(&resampled)
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    let tail = (1.0 - level) / 2.0;
    (point, at(tail), at(1.0 - tail))
}
