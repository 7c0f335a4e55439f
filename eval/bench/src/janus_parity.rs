//! `reasongen bench janus-parity`: our Janus-Pro and VQ-16 against transformers' on the
//! committed goldens (`train/tests/fixtures/`), on any device and dtype: logits of the
//! golden sequences, greedy plain generation with CFG, VQ-16 decoding. The parity
//! tests check F32 on the CPU; this runs the same comparisons where the tests cannot,
//! BF16 on a GPU above all, and fails when an error is over the tolerance.
//!
//! Tolerances, as max abs error over the reference's max abs value: 2e-5 in F32 (the
//! tests' 1e-4 absolute on logits up to ~5), 5e-2 in BF16. For scale: transformers' own
//! BF16 forward (PyTorch, CPU) is 0.9 % (text) and 1.2 % (image) off its F32 logits on
//! these goldens, and its BF16 VQ decoding 1.7-1.9 % off the F32 pixels. Greedy codes
//! are reported, not checked, in BF16: one near tie flips a code and the rest of the
//! row follows another path.

use anyhow::Result;
use candle_core::DType;
use std::path::PathBuf;
use std::process::ExitCode;
use train::janus::load::DeviceChoice;
use train::janus::parity::{Comparison, measure};

#[derive(clap::Args)]
pub struct JanusParityBenchArgs {
    /// The folder holding `janus/` and `janus_vq/` (the parity scripts' output).
    #[arg(long, default_value = "train/tests/fixtures")]
    fixtures: PathBuf,
    /// auto, cpu or cuda.
    #[arg(long, default_value = "auto")]
    device: DeviceChoice,
    /// f32 or bf16 (default: the device's, F32 on the CPU and BF16 on a GPU).
    #[arg(long)]
    dtype: Option<String>,
}

fn tolerance(dtype: DType) -> f32 {
    if dtype == DType::F32 { 2e-5 } else { 5e-2 }
}

fn line(c: &Comparison, tol: f32) -> bool {
    let ok = c.relative() <= tol;
    println!(
        "  {:<44} max abs error {:.2e} of {:.2e} ({:.2e} relative) {}",
        c.what,
        c.error,
        c.scale,
        c.relative(),
        if ok { "ok" } else { "OVER TOLERANCE" }
    );
    ok
}

pub fn run(args: JanusParityBenchArgs) -> Result<ExitCode> {
    let device = args.device.open().map_err(anyhow::Error::msg)?;
    let dtype = match args.dtype.as_deref() {
        None => train::janus::load::dtype_for(&device),
        Some("f32") => DType::F32,
        Some("bf16") => DType::BF16,
        Some(other) => anyhow::bail!("--dtype {other}: use f32 or bf16"),
    };
    let tol = tolerance(dtype);
    println!(
        "Janus-Pro parity with transformers on {:?} in {dtype:?} (tolerance {tol:.0e} of the reference's scale)",
        device
    );
    let report = measure(&args.fixtures, &device, dtype)?;
    let mut ok = true;
    for c in report.logits.iter().chain(&report.pixels) {
        ok &= line(c, tol);
    }
    for a in &report.generation {
        let exact = a.equal == a.total;
        println!(
            "  {}: {} of {} codes equal, equal prefix per row {:?}{}",
            a.what,
            a.equal,
            a.total,
            a.prefix,
            if exact { " ok" } else { "" }
        );
        if dtype == DType::F32 && !exact {
            println!("  greedy codes differ in F32");
            ok = false;
        }
    }
    println!("{}", if ok { "parity: ok" } else { "parity: FAILED" });
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
