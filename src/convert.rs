//! `reasongen convert`: a PyTorch `.bin` Janus-Pro checkpoint (one file, or shards with
//! their index) to safetensors in the same (original) layout, streamed tensor by tensor.

use anyhow::{Context, Result};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

#[derive(clap::Args)]
pub struct ConvertArgs {
    /// The checkpoint: a model folder (`pytorch_model.bin`, or the shards of
    /// `pytorch_model.bin.index.json`) or one `.bin` file.
    input: PathBuf,
    /// The folder to write into; the input folder's config, tokenizer and processor
    /// files are copied beside the weights.
    output: PathBuf,
    /// Largest shard, in GB (10⁹ bytes); one file when the weights fit.
    #[arg(long, default_value_t = 5.0)]
    shard_gb: f64,
}

pub fn convert(quiet: bool, args: ConvertArgs) -> Result<ExitCode> {
    if args.shard_gb.is_nan() || args.shard_gb <= 0.0 {
        anyhow::bail!("--shard-gb must be positive");
    }
    let start = Instant::now();
    let shard_bytes = (args.shard_gb * 1e9) as u64;
    let converted = train::janus::convert::convert(&args.input, &args.output, shard_bytes)
        .with_context(|| format!("converting {}", args.input.display()))?;
    if !quiet {
        for file in &converted.files {
            println!("wrote {}", file.display());
        }
        println!(
            "{} tensors, {:.2} GB in {:.1} s",
            converted.tensors,
            converted.bytes as f64 / 1e9,
            start.elapsed().as_secs_f64()
        );
    }
    Ok(ExitCode::SUCCESS)
}
