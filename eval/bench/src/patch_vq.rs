//! The patch VQ benchmark: for each patch size and codebook size, the reconstruction
//! PSNR on held-out shapes renders, whether the exact judge still reads the
//! reconstructions right, the tokens per image, and the training time.

use anyhow::Result;
use std::process::ExitCode;
use train::patch_vq_eval::measure;

#[derive(clap::Args)]
pub struct PatchVqBenchArgs {
    /// Training renders (random scenes).
    #[arg(long, default_value_t = 400)]
    images: usize,
    /// Held-out prompts per GenEval task (their scenes are judged after reconstruction).
    #[arg(long, default_value_t = 30)]
    per_task: usize,
    /// Side of the renders in pixels.
    #[arg(long, default_value_t = 64)]
    size: u32,
    /// Only this patch size (default: 8 and 4).
    #[arg(long)]
    patch: Option<u32>,
}

pub fn run(args: PatchVqBenchArgs) -> Result<ExitCode> {
    println!(
        "patch VQ on {s}×{s} shapes renders: {} training images, held-out scenes judged after reconstruction",
        args.images,
        s = args.size
    );
    println!("  patch  codes  tokens/image  PSNR (dB)  judge right  GenEval overall  train (s)");
    for (patch, codes) in [
        (8, 256),
        (8, 1024),
        (8, 4096),
        (4, 64),
        (4, 128),
        (4, 256),
        (4, 1024),
    ]
    .into_iter()
    .filter(|&(p, _)| args.patch.is_none_or(|only| only == p))
    {
        let r = measure(args.size, patch, codes, args.images, args.per_task)?;
        println!(
            "  {patch:>5}  {codes:>5}  {:>12}  {:>9.2}  {:>10.1}%  {:>15.3}  {:>9.1}",
            r.tokens_per_image,
            r.mean_psnr,
            r.judge_right * 100.0,
            r.summary.overall(),
            r.train_seconds
        );
    }
    Ok(ExitCode::SUCCESS)
}
