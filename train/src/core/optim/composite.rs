//! The reference AdamW: FP32 moments as tensors and the update as a chain of candle
//! ops per parameter (each op a fresh tensor, the parameter written by `Var::set`). The
//! fused optimiser ([`super::AdamW`]) is tested against it and `bench sft
//! --optim-bench` times both; training uses it only for parameters off the CPU
//! ([`update_tensor`]), until a device kernel exists.

use super::{AdamWConfig, AdamWStep};
use crate::janus::error::Result;
use candle_core::{DType, Tensor, Var};

/// AdamW's state: the first and second moments of each parameter and the step count.
pub struct CompositeAdamW {
    pub config: AdamWConfig,
    pub m: Vec<Tensor>,
    pub v: Vec<Tensor>,
    /// Updates done.
    pub step: u64,
}

impl CompositeAdamW {
    /// Zero moments for `vars`.
    pub fn new(config: AdamWConfig, vars: &[Var]) -> Result<CompositeAdamW> {
        let zeros = |v: &Var| Tensor::zeros(v.shape(), DType::F32, v.device());
        Ok(CompositeAdamW {
            config,
            m: vars.iter().map(zeros).collect::<candle_core::Result<_>>()?,
            v: vars.iter().map(zeros).collect::<candle_core::Result<_>>()?,
            step: 0,
        })
    }

    /// The same update as [`super::AdamW::update`] (the gradients scaled by
    /// `grad_scale` in a pass of their own).
    pub fn update(
        &mut self,
        vars: &[Var],
        grads: &[Option<Tensor>],
        decays: &[bool],
        lr: f64,
        grad_scale: f64,
    ) -> Result<()> {
        self.step += 1;
        for (i, var) in vars.iter().enumerate() {
            let Some(g) = &grads[i] else { continue };
            let k = AdamWStep::new(&self.config, self.step, lr, decays[i], grad_scale);
            (self.m[i], self.v[i]) = update_tensor(var, g, &self.m[i], &self.v[i], &k)?;
        }
        Ok(())
    }
}

/// One update of `var` by `g` with FP32 moments `m`, `v` as tensors on its device;
/// returns the new moments. Also the update of parameters off the CPU, which has no
/// fused kernel yet.
pub fn update_tensor(
    var: &Var,
    g: &Tensor,
    m: &Tensor,
    v: &Tensor,
    k: &AdamWStep,
) -> Result<(Tensor, Tensor)> {
    let (b1, b2) = (k.beta1 as f64, k.beta2 as f64);
    let g = (g.to_dtype(DType::F32)? * k.grad_scale as f64)?;
    let m = ((m * b1)? + (&g * (1.0 - b1))?)?;
    let v = ((v * b2)? + (g.sqr()? * (1.0 - b2))?)?;
    let m_hat = (&m / k.bias_correction1 as f64)?;
    let v_hat = (&v / k.bias_correction2 as f64)?;
    let step = (m_hat / (v_hat.sqrt()? + k.eps as f64)?)?;
    let mut w = var.as_tensor().detach();
    if k.weight_decay > 0.0 {
        w = (w * (1.0 - k.lr as f64 * k.weight_decay as f64))?;
    }
    var.set(&(w - (step * k.lr as f64)?)?)?;
    Ok((m, v))
}
