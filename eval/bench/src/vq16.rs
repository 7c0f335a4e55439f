//! `reasongen bench vq16`: VQ-16 encoding throughput at Janus-Pro's sizes (384² images,
//! 576 codes, random weights of the checkpoint's shapes): images/s of
//! `Vq16::encode_images` at each batch size, on the CPU (F32) by default or a GPU
//! (BF16), averaged over timed batches after one warm-up batch. On the CPU it first
//! times the encoder's commonest convolution (3×3, 128 → 128 channels at 384²) and
//! group norm + SiLU both ways, alternately: candle's ops and the CPU kernels the
//! encoder runs.

use anyhow::Result;
use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Conv2d, Conv2dConfig, GroupNorm, Module, VarBuilder};
use image::RgbImage;
use std::process::ExitCode;
use std::time::Instant;
use train::janus::load::{DeviceChoice, dtype_for};
use train::janus::vq16::conv::{BAND_FLOATS, conv3x3_cpu};
use train::janus::vq16::norm::group_norm_cpu;
use train::janus::vq16::{Vq16, Vq16Config};

#[derive(clap::Args)]
pub struct Vq16BenchArgs {
    /// Batch sizes to time, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,4")]
    batch: Vec<usize>,
    /// Timed batches per batch size, after one warm-up batch.
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// auto, cpu or cuda.
    #[arg(long, default_value = "cpu")]
    device: DeviceChoice,
}

/// Weights of any shape, drawn cheaply: `sin(1.618 i + seed)` scaled by 1/√fan_in
/// (candle's random init costs more than an encode in a dev build).
struct Synthetic;

impl SimpleBackend for Synthetic {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let dims = s.dims();
        let fan_in: usize = dims.iter().skip(1).product::<usize>().max(1);
        let seed = name.bytes().map(f64::from).sum::<f64>();
        // Indices in u32: an F32 arange cannot count past 2^24.
        let values =
            ((Tensor::arange(0u32, s.elem_count() as u32, dev)?.to_dtype(DType::F32)? * 1.618)?
                + seed)?
                .sin()?
                .reshape(dims)?;
        (values / (fan_in as f64).sqrt())?.to_dtype(dtype)
    }

    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> candle_core::Result<Tensor> {
        candle_core::bail!("unexpected unchecked get of {name}")
    }

    fn contains_tensor(&self, _: &str) -> bool {
        true
    }
}

/// CPU seconds this process has used (user and system, all threads; Linux).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command's closing parenthesis: utime and stime are the 12th and 13th.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// A 384² image with smooth gradients and a seed-dependent pattern.
fn image(seed: usize, side: u32) -> RgbImage {
    RgbImage::from_fn(side, side, |x, y| {
        let v = |k: usize| ((x as usize * (k + 1) + y as usize * (seed + 2) + k * 37) % 256) as u8;
        image::Rgb([v(0), v(1), v(2)])
    })
}

/// Mean seconds of `theirs` and `ours`, timed alternately (`runs` after a warm-up
/// each), and the largest difference of their results.
fn alternate(
    runs: usize,
    theirs: impl Fn() -> candle_core::Result<Tensor>,
    ours: impl Fn() -> candle_core::Result<Tensor>,
) -> Result<(f64, f64, f32)> {
    let (mut t_theirs, mut t_ours) = (0.0, 0.0);
    let (mut want, mut got) = (None, None);
    for run in 0..=runs {
        let start = Instant::now();
        want = Some(theirs()?);
        let mid = Instant::now();
        got = Some(ours()?);
        if run > 0 {
            t_theirs += (mid - start).as_secs_f64() / runs as f64;
            t_ours += mid.elapsed().as_secs_f64() / runs as f64;
        }
    }
    let (want, got) = (
        want.expect("one run at least"),
        got.expect("one run at least"),
    );
    let diff = (got - want)?
        .abs()?
        .flatten_all()?
        .max(0)?
        .to_scalar::<f32>()?;
    Ok((t_theirs, t_ours, diff))
}

/// The encoder's commonest 3×3 conv and group norm + SiLU (128 channels at 384²):
/// candle's and ours, alternately.
fn ops(runs: usize) -> Result<()> {
    let synthetic = |shape: &[usize], name: &str| {
        Synthetic.get(
            shape.into(),
            name,
            candle_nn::Init::Const(0.0),
            DType::F32,
            &Device::Cpu,
        )
    };
    let x = (synthetic(&[1, 128, 384, 384], "x")? * 3000.0)?;
    let weight = synthetic(&[128, 128, 3, 3], "weight")?;
    let bias = synthetic(&[128], "bias")?;
    let cfg = Conv2dConfig {
        padding: 1,
        ..Default::default()
    };
    let conv = Conv2d::new(weight.clone(), Some(bias.clone()), cfg);
    let (theirs, ours, diff) = alternate(
        runs,
        || conv.forward(&x),
        || conv3x3_cpu(&x, &weight, Some(&bias), 1, 1, BAND_FLOATS),
    )?;
    println!(
        "  3×3 conv 128 → 128 at 384²: candle conv2d {theirs:.3} s, banded im2col {ours:.3} s ({:.1}×; max abs difference {diff:.1e})",
        theirs / ours
    );
    let scale = (synthetic(&[128], "scale")? + 1.0)?;
    let norm = GroupNorm::new(scale.clone(), bias.clone(), 128, 32, 1e-6)?;
    let (theirs, ours, diff) = alternate(
        runs,
        || norm.forward(&x)?.silu(),
        || group_norm_cpu(&x, &scale, &bias, 32, 1e-6, true),
    )?;
    println!(
        "  group norm + SiLU, 128 channels at 384²: candle {theirs:.3} s, fused {ours:.3} s ({:.1}×; max abs difference {diff:.1e})",
        theirs / ours
    );
    Ok(())
}

pub fn run(args: Vq16BenchArgs) -> Result<ExitCode> {
    if args.batch.contains(&0) || args.runs == 0 {
        anyhow::bail!("--batch sizes and --runs must be at least 1");
    }
    let device = args.device.open().map_err(anyhow::Error::msg)?;
    let dtype = dtype_for(&device);
    let config = Vq16Config::default();
    let side = config.resolution;
    let vb = VarBuilder::from_backend(Box::new(Synthetic), dtype, device.clone());
    let vq = Vq16::new(config, vb)?;
    let threads = if device.is_cpu() {
        format!(", {} threads", candle_core::utils::get_num_threads())
    } else {
        String::new()
    };
    println!(
        "VQ-16 encoder at Janus-Pro's sizes ({side}² images, {} codes), random weights, {device:?} in {dtype:?}{threads}; {} timed batches after a warm-up",
        vq.config().tokens(),
        args.runs
    );
    if device.is_cpu() {
        ops(args.runs)?;
    }
    println!("  batch  s/batch  images/s  CPU s/image");
    for &batch in &args.batch {
        let images: Vec<RgbImage> = (0..batch).map(|i| image(i, side)).collect();
        let (mut seconds, mut cpu) = (0.0, 0.0);
        for run in 0..=args.runs {
            let (start, cpu_start) = (Instant::now(), cpu_seconds());
            let codes = vq.encode_images(&images)?;
            if run > 0 {
                seconds += start.elapsed().as_secs_f64() / args.runs as f64;
                cpu += (cpu_seconds() - cpu_start) / (args.runs * batch) as f64;
            }
            assert_eq!(codes.len(), batch);
        }
        println!(
            "  {batch:>5}  {seconds:>7.2}  {:>8.3}  {cpu:>11.2}",
            batch as f64 / seconds
        );
    }
    Ok(ExitCode::SUCCESS)
}
