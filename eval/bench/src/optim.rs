//! The AdamW step benchmark (`bench sft --optim-bench`): the composite reference
//! (candle ops per tensor, FP32 moments) against the fused update with FP32, BF16 and
//! 8-bit moments, over the tiny and small presets' parameters and over one flat
//! segment standing in for a 1B model (too large for the whole model here), on the
//! CPU. Prints ms per step and the effective bandwidth: the bytes the update must move
//! (read p, g, m, v; write p, m, v: 28 bytes a parameter with FP32 moments, 20 with
//! BF16, 16 with 8-bit) over the time.

use anyhow::Result;
use candle_core::{Device, Tensor, Var};
use std::time::Instant;
use train::core::optim::composite::CompositeAdamW;
use train::core::optim::{AdamW, AdamWConfig, MomentFormat};
use train::core::params::Params;
use train::janus::config::JanusConfig;

/// One set of parameters to update.
struct Set {
    name: String,
    vars: Vec<Var>,
    decays: Vec<bool>,
}

fn config(moments: MomentFormat) -> AdamWConfig {
    AdamWConfig {
        beta1: 0.9,
        beta2: 0.95,
        eps: 1e-8,
        weight_decay: 0.01,
        moments,
        seed: 0,
    }
}

/// Bytes an update must move per parameter.
fn traffic(moments: MomentFormat) -> f64 {
    match moments {
        MomentFormat::F32 => 28.0,
        MomentFormat::Bf16 => 20.0,
        MomentFormat::Int8 => 16.0,
    }
}

/// Times `steps` updates (after one warm-up) of each optimiser over the tiny and small
/// presets and a flat segment of `flat` elements; prints a row each.
pub fn run(
    tiny: &JanusConfig,
    small: &JanusConfig,
    flat: usize,
    steps: usize,
    json: bool,
) -> Result<()> {
    let dev = Device::Cpu;
    let preset = |name: &str, c: &JanusConfig| -> Result<Set> {
        let params = Params::random(c, &dev)?;
        let decays = (0..params.vars.len()).map(|i| params.decays(i)).collect();
        Ok(Set {
            name: name.into(),
            vars: params.vars,
            decays,
        })
    };
    let sets = [
        preset("tiny", tiny)?,
        preset("small", small)?,
        Set {
            name: format!("1b-flat ({:.0} M-element segment)", flat as f64 / 1e6),
            vars: vec![Var::from_tensor(&Tensor::randn(0f32, 0.02, flat, &dev)?)?],
            decays: vec![true],
        },
    ];
    if !json {
        println!(
            "AdamW step on the CPU ({} threads), {steps} steps each; GB/s = bytes moved (28/20/16 a parameter) / time",
            std::thread::available_parallelism().map_or(1, |n| n.get())
        );
    }
    for set in &sets {
        let count: usize = set.vars.iter().map(|v| v.elem_count()).sum();
        let grads: Vec<Option<Tensor>> = set
            .vars
            .iter()
            .map(|v| Ok(Some(Tensor::randn(0f32, 1e-3, v.shape(), &dev)?)))
            .collect::<Result<_>>()?;
        let mut rows = Vec::new();
        {
            let mut opt = CompositeAdamW::new(config(MomentFormat::F32), &set.vars)?;
            let s = time(steps, || {
                Ok(opt.update(&set.vars, &grads, &set.decays, 1e-5, 1.0)?)
            })?;
            rows.push(("composite f32", s, traffic(MomentFormat::F32), 8.0));
        }
        for (label, format) in [
            ("fused f32", MomentFormat::F32),
            ("fused bf16", MomentFormat::Bf16),
            ("fused int8", MomentFormat::Int8),
        ] {
            let mut opt = AdamW::new(config(format), &set.vars)?;
            let s = time(steps, || {
                Ok(opt.update(&set.vars, &grads, &set.decays, 1e-5, 1.0)?)
            })?;
            let per = opt.state_bytes() as f64 / count as f64;
            rows.push((label, s, traffic(format), per));
        }
        for (label, s, bytes, state) in rows {
            let gbs = bytes * count as f64 / s / 1e9;
            let per_billion_ms = s * 1e3 * 1e9 / count as f64;
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "set": set.name, "parameters": count, "optimizer": label,
                        "ms_per_step": s * 1e3, "gb_per_s": gbs,
                        "ms_per_1e9_parameters": per_billion_ms, "state_bytes_per_parameter": state,
                    })
                );
            } else {
                println!(
                    "  {:<34} {:>7.2} M params  {:<14} {:>9.2} ms/step  {:>6.2} GB/s  ({:.0} ms per 1e9 params, state {:.3} B/param)",
                    set.name,
                    count as f64 / 1e6,
                    label,
                    s * 1e3,
                    gbs,
                    per_billion_ms,
                    state
                );
            }
        }
    }
    Ok(())
}

/// Seconds per call of `f` over `steps` calls after one warm-up call.
fn time(steps: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    let start = Instant::now();
    for _ in 0..steps {
        f()?;
    }
    Ok(start.elapsed().as_secs_f64() / steps.max(1) as f64)
}
