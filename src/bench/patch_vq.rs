//! The patch VQ benchmark: for each patch size and codebook size, the reconstruction
//! PSNR on held-out shapes renders, whether the exact judge still reads the
//! reconstructions right, the tokens per image, and the training time.

use anyhow::Result;
use datasets::shapes::{
    HeldOut, Judge, JudgeOptions, SceneGenerator, Summary, TaskCounts, prompt_set, render,
};
use std::process::ExitCode;
use std::time::Instant;
use train::patch_vq::{PatchVq, PatchVqConfig, TrainOptions, psnr};

#[derive(clap::Args)]
pub struct PatchVqBenchArgs {
    /// Training renders (random scenes).
    #[arg(long, default_value_t = 400)]
    images: usize,
    /// Held-out prompts per GenEval task (their scenes are judged after reconstruction).
    #[arg(long, default_value_t = 30)]
    per_task: usize,
}

pub fn run(args: PatchVqBenchArgs) -> Result<ExitCode> {
    let mut g = SceneGenerator::new(11).avoiding(HeldOut::standard());
    let train = (0..args.images)
        .map(|_| Ok(render(&g.random()?, 64)))
        .collect::<Result<Vec<_>, datasets::shapes::ShapesError>>()?;
    let mut test_scenes = SceneGenerator::new(99);
    let records: Vec<_> = prompt_set(5, &TaskCounts::uniform(args.per_task), &HeldOut::default())
        .into_iter()
        .map(|p| p.metadata)
        .collect();
    let tests = records
        .iter()
        .map(|r| Ok(render(&test_scenes.for_metadata(r)?, 64)))
        .collect::<Result<Vec<_>, datasets::shapes::ShapesError>>()?;
    let judge = Judge::new(JudgeOptions::default());
    println!(
        "patch VQ on 64×64 shapes renders: {} training images, {} held-out scenes judged after reconstruction",
        train.len(),
        tests.len()
    );
    println!("  patch  codes  tokens/image  PSNR (dB)  judge right  GenEval overall  train (s)");
    for (patch, codebook_size) in [
        (8, 256),
        (8, 1024),
        (8, 4096),
        (4, 64),
        (4, 128),
        (4, 256),
        (4, 1024),
    ] {
        let t = Instant::now();
        let vq = PatchVq::train(
            &train,
            &TrainOptions {
                config: PatchVqConfig {
                    image_size: 64,
                    patch,
                    codebook_size,
                },
                samples: 40_000,
                iterations: 15,
                seed: 1,
            },
        )?;
        let secs = t.elapsed().as_secs_f64();
        let mut total = 0.0;
        let mut results = Vec::new();
        for (img, record) in tests.iter().zip(&records) {
            let back = vq.decode(&vq.encode(img)?)?;
            total += psnr(img, &back);
            results.push((record, judge.score(&back, record).correct));
        }
        let right = results.iter().filter(|(_, ok)| *ok).count() as f64 / results.len() as f64;
        let summary = Summary::new(results);
        println!(
            "  {patch:>5}  {codebook_size:>5}  {:>12}  {:>9.2}  {:>10.1}%  {:>15.3}  {secs:>9.1}",
            vq.config.tokens(),
            total / tests.len() as f64,
            right * 100.0,
            summary.overall()
        );
    }
    Ok(ExitCode::SUCCESS)
}
