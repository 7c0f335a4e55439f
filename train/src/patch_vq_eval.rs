//! How well a patch VQ serves the shapes world: trained on random renders, measured on
//! held-out scenes built from GenEval-style prompts by reconstruction PSNR and by
//! whether the exact judge still reads each reconstruction right. Shared by the test
//! that pins the default setting and by `reasongen bench patch-vq`.

use crate::patch_vq::{PatchVq, PatchVqConfig, TrainOptions, VqError, psnr};
use datasets::shapes::{
    HeldOut, Judge, JudgeOptions, SceneGenerator, ShapesError, Summary, TaskCounts, prompt_set,
    render,
};

/// The figures of one setting.
pub struct VqReport {
    pub tokens_per_image: usize,
    pub mean_psnr: f64,
    /// Fraction of reconstructions the judge reads right.
    pub judge_right: f64,
    pub summary: Summary,
    pub train_seconds: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error(transparent)]
    Shapes(#[from] ShapesError),
    #[error(transparent)]
    Vq(#[from] VqError),
}

/// Train a `patch`×`patch`, `codebook_size` VQ on `images` random `size`×`size`
/// renders and measure it on `per_task` held-out prompts of each GenEval task.
pub fn measure(
    size: u32,
    patch: u32,
    codebook_size: u32,
    images: usize,
    per_task: usize,
) -> Result<VqReport, EvalError> {
    let mut g = SceneGenerator::new(11).avoiding(HeldOut::standard());
    let train = (0..images)
        .map(|_| Ok(render(&g.random()?, size)))
        .collect::<Result<Vec<_>, ShapesError>>()?;
    let started = std::time::Instant::now();
    let vq = PatchVq::train(
        &train,
        &TrainOptions {
            config: PatchVqConfig {
                image_size: size,
                patch,
                codebook_size,
            },
            samples: 40_000,
            iterations: 15,
            seed: 1,
        },
    )?;
    let train_seconds = started.elapsed().as_secs_f64();
    let judge = Judge::new(JudgeOptions::default());
    let mut scenes = SceneGenerator::new(99);
    let records: Vec<_> = prompt_set(5, &TaskCounts::uniform(per_task), &HeldOut::default())
        .into_iter()
        .map(|p| p.metadata)
        .collect();
    let mut total_psnr = 0.0;
    let mut results = Vec::with_capacity(records.len());
    for record in &records {
        let img = render(&scenes.for_metadata(record)?, size);
        let back = vq.decode(&vq.encode(&img)?)?;
        total_psnr += psnr(&img, &back);
        results.push((record, judge.score(&back, record).correct));
    }
    let judge_right =
        results.iter().filter(|(_, ok)| *ok).count() as f64 / results.len().max(1) as f64;
    Ok(VqReport {
        tokens_per_image: vq.config.tokens(),
        mean_psnr: total_psnr / records.len().max(1) as f64,
        judge_right,
        summary: Summary::new(results),
        train_seconds,
    })
}
