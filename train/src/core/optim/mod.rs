//! The optimiser: AdamW with decoupled weight decay, the learning-rate schedule (linear
//! warm-up, then cosine to `min_lr_ratio`, as transformers'
//! `get_cosine_schedule_with_warmup`), and global-norm gradient clipping.
//!
//! [`AdamW`] owns its moments as host buffers in the configured [`MomentFormat`] and
//! updates each parameter in one fused pass ([`fused`], [`moments`]) through candle's
//! in-place op, so the FP32 master `Var` is written where it lies; the clipping is the
//! gradient scale of that pass, after one reduction for the norm. The per-tensor
//! composite reference it is checked and benchmarked against is [`composite`], which
//! also updates parameters off the CPU (FP32 moments on the device) until a device
//! kernel exists.
//!
//! candle-nn's `AdamW` keeps its moments in the parameters' dtype, has no bias
//! correction switch per group and no per-parameter decay, hence this one.

pub mod composite;
pub mod fused;
pub mod moments;

pub use fused::{AdamWStep, adamw_segment};
pub use moments::{MomentFormat, Moments};

use crate::janus::error::{JanusError, Result};
use candle_core::{CpuStorage, DType, Layout, Storage, Tensor, Var};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;

/// AdamW's constants.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// How the moments are stored.
    pub moments: MomentFormat,
    /// Seeds the stochastic rounding of BF16 moments.
    pub seed: u64,
}

/// The optimiser's options in a stage config (`optimizer = { moments = "bf16" }`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OptimizerOptions {
    /// AdamW's moment storage: `f32` (4 + 4 bytes a parameter), `bf16` (2 + 2,
    /// stochastically rounded) or `int8` (1 + 1 and a scale pair per 256).
    #[serde(default)]
    pub moments: MomentFormat,
}

impl OptimizerOptions {
    /// Whether these are the defaults (then left out of the canonical config, so that
    /// run keys from before the option existed stay the same).
    pub fn is_default(&self) -> bool {
        *self == OptimizerOptions::default()
    }
}

/// AdamW's state: the moments of each parameter and the step count.
pub struct AdamW {
    pub config: AdamWConfig,
    pub moments: Vec<Moments>,
    /// Updates done.
    pub step: u64,
}

impl AdamW {
    /// Zero moments for `vars`: host buffers for parameters on the CPU, FP32 tensors
    /// on the device for others (which have no narrow formats yet).
    pub fn new(config: AdamWConfig, vars: &[Var]) -> Result<AdamW> {
        let moments = vars
            .iter()
            .map(|var| {
                if var.device().is_cpu() {
                    Ok(Moments::zeros(config.moments, var.elem_count()))
                } else if config.moments == MomentFormat::F32 {
                    let zeros = || Tensor::zeros(var.shape(), DType::F32, var.device());
                    Ok(Moments::Device {
                        m: zeros()?,
                        v: zeros()?,
                    })
                } else {
                    Err(JanusError::Invalid(format!(
                        "optimizer.moments = {:?} needs the parameters on the CPU: off it AdamW has FP32 moments only",
                        config.moments
                    )))
                }
            })
            .collect::<Result<_>>()?;
        Ok(AdamW {
            config,
            moments,
            step: 0,
        })
    }

    /// Bytes of optimiser state (the moments and their scales).
    pub fn state_bytes(&self) -> usize {
        self.moments.iter().map(Moments::bytes).sum()
    }

    /// One update of `vars` by `grads` × `grad_scale` (`None`: no gradient, the
    /// parameter and its moments are left alone) at learning rate `lr`; `decays[i]` says
    /// whether parameter i takes weight decay. On the CPU the FP32 `Var`s are updated in
    /// place by the fused pass; elsewhere by the composite ops on the device.
    pub fn update(
        &mut self,
        vars: &[Var],
        grads: &[Option<Tensor>],
        decays: &[bool],
        lr: f64,
        grad_scale: f64,
    ) -> Result<()> {
        self.step += 1;
        let c = self.config;
        let round = moments::mix(c.seed ^ self.step.wrapping_mul(0xD1B5_4A32_D192_ED03));
        for (i, var) in vars.iter().enumerate() {
            let Some(g) = &grads[i] else { continue };
            let k = AdamWStep::new(&c, self.step, lr, decays[i], grad_scale);
            let key = moments::mix(round ^ i as u64);
            let moments = &mut self.moments[i];
            if var.device().is_cpu() {
                if let Moments::Device { .. } = moments {
                    return Err(JanusError::Invalid(
                        "AdamW: device moments for a parameter on the CPU".into(),
                    ));
                }
                let g = g.to_dtype(DType::F32)?.contiguous()?;
                let op = FusedUpdate {
                    moments: RefCell::new(moments),
                    step: k,
                    key,
                };
                var.as_tensor().inplace_op2(&g, &op)?;
            } else {
                if let Moments::F32 { m, v } = moments {
                    // Restored from a checkpoint: onto the device once.
                    let up = |x: &[f32]| Tensor::from_slice(x, var.shape(), var.device());
                    *moments = Moments::Device {
                        m: up(m)?,
                        v: up(v)?,
                    };
                }
                let Moments::Device { m, v } = moments else {
                    return Err(JanusError::Invalid(format!(
                        "optimizer.moments = {:?} needs the parameters on the CPU",
                        moments.format()
                    )));
                };
                (*m, *v) = composite::update_tensor(var, g, m, v, &k)?;
            }
        }
        Ok(())
    }
}

/// The in-place op: the parameter's storage is the mutable operand, the gradient the
/// other; the moments come with the op.
struct FusedUpdate<'a> {
    moments: RefCell<&'a mut Moments>,
    step: AdamWStep,
    key: u64,
}

impl candle_core::InplaceOp2 for FusedUpdate<'_> {
    fn name(&self) -> &'static str {
        "fused-adamw"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<()> {
        let (CpuStorage::F32(p), CpuStorage::F32(g)) = (s1, s2) else {
            candle_core::bail!("fused AdamW: the parameter and gradient must be FP32");
        };
        let (Some((p0, p1)), Some((g0, g1))) = (l1.contiguous_offsets(), l2.contiguous_offsets())
        else {
            candle_core::bail!("fused AdamW: the parameter and gradient must be contiguous");
        };
        self.moments
            .borrow_mut()
            .update(&mut p[p0..p1], &g[g0..g1], &self.step, self.key);
        Ok(())
    }
}

/// The learning rate after `step` updates (0-based) of `total`.
pub fn learning_rate(
    step: usize,
    total: usize,
    peak: f64,
    warmup_ratio: f64,
    min_ratio: f64,
) -> f64 {
    let warmup = (warmup_ratio * total as f64).ceil() as usize;
    if step < warmup {
        return peak * (step + 1) as f64 / warmup as f64;
    }
    let span = total.saturating_sub(warmup).max(1);
    let progress = ((step - warmup) as f64 / span as f64).min(1.0);
    let cosine = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
    peak * (min_ratio + (1.0 - min_ratio) * cosine)
}

/// The global L2 norm of `grads`: one pass over each (FP32 on the CPU, summed in FP64
/// over fixed chunks, so the result does not depend on the thread count).
pub fn global_norm(grads: &[Option<Tensor>]) -> Result<f64> {
    use rayon::prelude::*;
    let mut sum = 0.0f64;
    for g in grads.iter().flatten() {
        let g = g.contiguous()?;
        let (storage, layout) = g.storage_and_layout();
        sum += match (&*storage, layout.contiguous_offsets()) {
            (Storage::Cpu(CpuStorage::F32(data)), Some((a, b))) => data[a..b]
                .par_chunks(1 << 14)
                .map(|c| c.iter().map(|&x| (x as f64) * (x as f64)).sum::<f64>())
                .collect::<Vec<f64>>()
                .into_iter()
                .sum::<f64>(),
            _ => g
                .to_dtype(DType::F64)?
                .sqr()?
                .sum_all()?
                .to_scalar::<f64>()?,
        };
    }
    Ok(sum.sqrt())
}

/// The factor that brings gradients of global norm `norm` to at most `max` (0: no
/// clipping): 1 when they are within it.
pub fn clip_scale(norm: f64, max: f64) -> f64 {
    if max > 0.0 && norm > max {
        max / (norm + 1e-6)
    } else {
        1.0
    }
}

/// Checks that restored moments fit: the format the run is configured with.
pub fn check_format(stored: MomentFormat, configured: MomentFormat) -> Result<()> {
    if stored == configured {
        Ok(())
    } else {
        Err(JanusError::Invalid(format!(
            "the training checkpoint holds {stored:?} moments, the run is configured for {configured:?} (optimizer.moments)"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::composite::CompositeAdamW;
    use super::*;
    use candle_core::Device;

    fn config(moments: MomentFormat) -> AdamWConfig {
        AdamWConfig {
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            weight_decay: 0.1,
            moments,
            seed: 7,
        }
    }

    /// Deterministic values in [-1, 1).
    fn noise(n: usize, salt: u64) -> Vec<f32> {
        (0..n)
            .map(|i| {
                (moments::mix(salt ^ (i as u64) << 20) >> 40) as f32 / (1u64 << 23) as f32 - 1.0
            })
            .collect()
    }

    #[test]
    fn the_schedule_warms_up_linearly_then_follows_a_cosine() {
        let lr = |s| learning_rate(s, 100, 1.0, 0.1, 0.0);
        assert!((lr(0) - 0.1).abs() < 1e-12);
        assert!((lr(9) - 1.0).abs() < 1e-12);
        assert!(
            (lr(10) - 1.0).abs() < 1e-12,
            "the cosine starts at the peak"
        );
        assert!((lr(55) - 0.5).abs() < 1e-12, "half-way down at the middle");
        assert!(lr(99) < 0.001);
        let floor = learning_rate(100, 100, 1.0, 0.0, 0.2);
        assert!((floor - 0.2).abs() < 1e-12);
    }

    #[test]
    fn adamw_matches_the_formula_and_decays_only_matrices() {
        let dev = Device::Cpu;
        let w = Var::from_vec(vec![1.0f32, -2.0], (1, 2), &dev).unwrap();
        let b = Var::from_vec(vec![0.5f32], 1, &dev).unwrap();
        let config = AdamWConfig {
            beta2: 0.95,
            ..config(MomentFormat::F32)
        };
        let vars = [w.clone(), b.clone()];
        let mut opt = AdamW::new(config, &vars).unwrap();
        let gw = Tensor::new(&[[0.5f32, -0.25]], &dev).unwrap();
        let gb = Tensor::new(&[2.0f32], &dev).unwrap();
        opt.update(&vars, &[Some(gw), Some(gb)], &[true, false], 0.01, 1.0)
            .unwrap();
        // Step 1: m̂ = g, v̂ = g², so the step is lr · sign(g) (up to eps).
        let w1 = w.as_tensor().to_vec2::<f32>().unwrap();
        let want = [1.0 * (1.0 - 0.001) - 0.01, -2.0 * (1.0 - 0.001) + 0.01];
        assert!((w1[0][0] - want[0]).abs() < 1e-6 && (w1[0][1] - want[1]).abs() < 1e-6);
        let b1 = b.as_tensor().to_vec1::<f32>().unwrap();
        assert!(
            (b1[0] - (0.5 - 0.01)).abs() < 1e-6,
            "no decay on a bias: {b1:?}"
        );
        assert_eq!(opt.state_bytes(), 3 * 8);
    }

    /// Parameters of a few shapes, one long enough to be split over the threads, one
    /// without a gradient.
    fn problem() -> (Vec<Var>, Vec<bool>) {
        let dev = Device::Cpu;
        let shapes: [&[usize]; 4] = [&[3, 5], &[7], &[300, 200], &[4, 4]];
        let vars = shapes
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let n = s.iter().product();
                Var::from_vec(noise(n, i as u64), *s, &dev).unwrap()
            })
            .collect();
        (vars, vec![true, false, true, true])
    }

    fn grads(vars: &[Var], step: u64) -> Vec<Option<Tensor>> {
        vars.iter()
            .enumerate()
            .map(|(i, v)| {
                (i != 3).then(|| {
                    let g = noise(v.elem_count(), 1000 * step + i as u64);
                    Tensor::from_vec(g, v.shape(), v.device()).unwrap()
                })
            })
            .collect()
    }

    #[test]
    fn the_fused_update_follows_the_composite_one_in_place() {
        let (fused_vars, decays) = problem();
        let (composite_vars, _) = problem();
        let mut fused = AdamW::new(config(MomentFormat::F32), &fused_vars).unwrap();
        let mut composite =
            CompositeAdamW::new(config(MomentFormat::F32), &composite_vars).unwrap();
        let untouched = fused_vars[3].as_tensor().to_vec2::<f32>().unwrap();
        let alias = fused_vars[2].as_tensor().clone();
        for step in 1..=20 {
            let g = grads(&fused_vars, step);
            let norm = global_norm(&g).unwrap();
            let scale = clip_scale(norm, 50.0);
            assert!(scale < 1.0, "the clipping is exercised");
            fused.update(&fused_vars, &g, &decays, 1e-2, scale).unwrap();
            composite
                .update(&composite_vars, &g, &decays, 1e-2, scale)
                .unwrap();
        }
        for (a, b) in fused_vars.iter().zip(&composite_vars) {
            let a = a
                .as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            let b = b
                .as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            let worst = a
                .iter()
                .zip(&b)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0, f32::max);
            assert!(worst < 2e-5, "fused and composite differ by {worst}");
        }
        for (i, m) in fused.moments.iter().enumerate() {
            let (m, v) = m.to_f32();
            let want_m = composite.m[i]
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            let want_v = composite.v[i]
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            // m cancels (gradients of either sign): errors relative to the largest.
            for (got, want) in [(m, want_m), (v, want_v)] {
                let top = want.iter().fold(0.0f32, |a, x| a.max(x.abs()));
                for (x, y) in got.iter().zip(&want) {
                    assert!((x - y).abs() <= 1e-5 * top, "{x} against {y} (of {top})");
                }
            }
        }
        assert_eq!(
            fused_vars[3].as_tensor().to_vec2::<f32>().unwrap(),
            untouched
        );
        // The parameter's storage itself was written: a handle taken before sees it.
        assert_eq!(
            alias.to_vec2::<f32>().unwrap(),
            fused_vars[2].as_tensor().to_vec2::<f32>().unwrap()
        );
    }

    #[test]
    fn the_norm_is_one_reduction_and_the_clip_a_scale() {
        let dev = Device::Cpu;
        let long = noise(100_000, 3);
        let want = (long.iter().map(|&x| x as f64 * x as f64).sum::<f64>() + 25.0).sqrt();
        let g = vec![
            Some(Tensor::new(&[3.0f32], &dev).unwrap()),
            None,
            Some(Tensor::new(&[4.0f32], &dev).unwrap()),
            Some(
                Tensor::from_vec(long, (400, 250), &dev)
                    .unwrap()
                    .t()
                    .unwrap(),
            ),
        ];
        let norm = global_norm(&g).unwrap();
        assert!((norm - want).abs() < 1e-9 * want, "{norm} against {want}");
        assert!((clip_scale(5.0, 1.0) - 1.0 / (5.0 + 1e-6)).abs() < 1e-12);
        assert_eq!(clip_scale(0.3, 1.0), 1.0);
        assert_eq!(clip_scale(5.0, 0.0), 1.0, "0: no clipping");
    }

    /// `steps` updates of a noisy quadratic, min ½‖p - target‖², from the same start;
    /// returns the parameters.
    fn descend(format: MomentFormat, steps: u64) -> Vec<f32> {
        let n = 4096;
        let dev = Device::Cpu;
        let target = noise(n, 99);
        let p = Var::from_vec(vec![0.0f32; n], n, &dev).unwrap();
        let mut opt = AdamW::new(
            AdamWConfig {
                beta2: 0.999,
                ..config(format)
            },
            std::slice::from_ref(&p),
        )
        .unwrap();
        for step in 1..=steps {
            let now = p.as_tensor().to_vec1::<f32>().unwrap();
            let jitter = noise(n, step);
            let g: Vec<f32> = (0..n)
                .map(|i| now[i] - target[i] + 0.3 * jitter[i])
                .collect();
            let g = Tensor::from_vec(g, n, &dev).unwrap();
            opt.update(std::slice::from_ref(&p), &[Some(g)], &[true], 1e-2, 1.0)
                .unwrap();
        }
        p.as_tensor().to_vec1::<f32>().unwrap()
    }

    #[test]
    fn narrow_moments_track_the_fp32_trajectory() {
        let f32_run = descend(MomentFormat::F32, 300);
        let rms = |a: &[f32], b: &[f32]| {
            (a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f32>() / a.len() as f32).sqrt()
        };
        // The distance travelled: the run starts from 0.
        let travelled = rms(&f32_run, &vec![0.0; f32_run.len()]);
        for (format, tolerance) in [(MomentFormat::Bf16, 0.01), (MomentFormat::Int8, 0.03)] {
            let run = descend(format, 300);
            let off = rms(&run, &f32_run) / travelled;
            assert!(off < tolerance, "{format:?}: {off} of the path off FP32's");
        }
    }
}
