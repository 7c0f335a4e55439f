//! The optimiser: AdamW with decoupled weight decay and FP32 moments, the learning-rate
//! schedule (linear warm-up, then cosine to `min_lr_ratio`, as transformers'
//! `get_cosine_schedule_with_warmup`), and global-norm gradient clipping.
//!
//! candle-nn's `AdamW` keeps its moments in the parameters' dtype, has no bias
//! correction switch per group and no per-parameter decay, hence this one.

use crate::janus::error::Result;
use candle_core::{DType, Tensor, Var};

/// AdamW's constants.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

/// AdamW's state: the first and second moments of each parameter and the step count.
pub struct AdamW {
    pub config: AdamWConfig,
    pub m: Vec<Tensor>,
    pub v: Vec<Tensor>,
    /// Updates done.
    pub step: u64,
}

impl AdamW {
    /// Zero moments for `vars`.
    pub fn new(config: AdamWConfig, vars: &[Var]) -> Result<AdamW> {
        let zeros = |v: &Var| Tensor::zeros(v.shape(), DType::F32, v.device());
        Ok(AdamW {
            config,
            m: vars.iter().map(zeros).collect::<candle_core::Result<_>>()?,
            v: vars.iter().map(zeros).collect::<candle_core::Result<_>>()?,
            step: 0,
        })
    }

    /// One update of `vars` by `grads` (FP32, `None`: no gradient, the parameter and
    /// its moments are left alone) at learning rate `lr`; `decays[i]` says whether
    /// parameter i takes weight decay.
    pub fn update(
        &mut self,
        vars: &[Var],
        grads: &[Option<Tensor>],
        decays: &[bool],
        lr: f64,
    ) -> Result<()> {
        self.step += 1;
        let c = self.config;
        let t = self.step as i32;
        let correction1 = 1.0 - c.beta1.powi(t);
        let correction2 = 1.0 - c.beta2.powi(t);
        for (i, var) in vars.iter().enumerate() {
            let Some(g) = &grads[i] else { continue };
            let m = ((&self.m[i] * c.beta1)? + (g * (1.0 - c.beta1))?)?;
            let v = ((&self.v[i] * c.beta2)? + (g.sqr()? * (1.0 - c.beta2))?)?;
            let m_hat = (&m / correction1)?;
            let v_hat = (&v / correction2)?;
            let step = (m_hat / (v_hat.sqrt()? + c.eps)?)?;
            let mut w = var.as_tensor().detach();
            if decays[i] && c.weight_decay > 0.0 {
                w = (w * (1.0 - lr * c.weight_decay))?;
            }
            var.set(&(w - (step * lr)?)?)?;
            self.m[i] = m;
            self.v[i] = v;
        }
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

/// The global L2 norm of `grads`.
pub fn global_norm(grads: &[Option<Tensor>]) -> Result<f64> {
    let mut sum = 0.0f64;
    for g in grads.iter().flatten() {
        sum += g
            .sqr()?
            .sum_all()?
            .to_dtype(DType::F64)?
            .to_scalar::<f64>()?;
    }
    Ok(sum.sqrt())
}

/// Scale `grads` so that their global norm is at most `max` (0: no clipping); returns
/// the norm before clipping.
pub fn clip(grads: &mut [Option<Tensor>], max: f64) -> Result<f64> {
    let norm = global_norm(grads)?;
    if max > 0.0 && norm > max {
        let scale = max / (norm + 1e-6);
        for g in grads.iter_mut().flatten() {
            *g = (&*g * scale)?;
        }
    }
    Ok(norm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

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
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            weight_decay: 0.1,
        };
        let vars = [w.clone(), b.clone()];
        let mut opt = AdamW::new(config, &vars).unwrap();
        let gw = Tensor::new(&[[0.5f32, -0.25]], &dev).unwrap();
        let gb = Tensor::new(&[2.0f32], &dev).unwrap();
        opt.update(&vars, &[Some(gw), Some(gb)], &[true, false], 0.01)
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
    }

    #[test]
    fn clipping_bounds_the_global_norm() {
        let dev = Device::Cpu;
        let mut g = vec![
            Some(Tensor::new(&[3.0f32], &dev).unwrap()),
            None,
            Some(Tensor::new(&[4.0f32], &dev).unwrap()),
        ];
        let before = clip(&mut g, 1.0).unwrap();
        assert!((before - 5.0).abs() < 1e-9);
        assert!((global_norm(&g).unwrap() - 1.0).abs() < 1e-5);
        let mut small = vec![Some(Tensor::new(&[0.3f32], &dev).unwrap())];
        clip(&mut small, 1.0).unwrap();
        assert_eq!(
            small[0].as_ref().unwrap().to_vec1::<f32>().unwrap(),
            vec![0.3]
        );
    }
}
