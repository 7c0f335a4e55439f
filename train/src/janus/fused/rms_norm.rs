//! RMSNorm as one op: `y = x · rsqrt(mean(x²) + eps) · w` over the last dimension,
//! with its backward (`dx` and `dw`) in one pass. F32 throughout, as transformers'
//! order gives for F32 inputs.

use super::{contiguous, cpu};
use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor, bail};
use rayon::prelude::*;

/// Rows per rayon task: enough work to be worth a hand-off.
const ROW_WORK: usize = 16 * 1024;

struct RmsNorm {
    eps: f32,
}

/// 1 / RMS of a row.
fn inverse_rms(row: &[f32], eps: f32) -> f32 {
    let mean = row.iter().map(|x| x * x).sum::<f32>() / row.len() as f32;
    1.0 / (mean + eps).sqrt()
}

impl CustomOp2 for RmsNorm {
    fn name(&self) -> &'static str {
        "fused-rms-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = contiguous(self.name(), s1, l1)?;
        let w = contiguous(self.name(), s2, l2)?;
        let h = w.len();
        if l1.dims().last() != Some(&h) {
            bail!("{}: input {:?} against weight {h}", self.name(), l1.dims())
        }
        let mut y = vec![0f32; x.len()];
        y.par_chunks_mut(h)
            .zip(x.par_chunks(h))
            .with_min_len(ROW_WORK / h.max(1))
            .for_each(|(y, x)| {
                let inv = inverse_rms(x, self.eps);
                for ((y, x), w) in y.iter_mut().zip(x).zip(w) {
                    *y = x * inv * w;
                }
            });
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let (xs, xl) = x.storage_and_layout();
        let (ws, wl) = w.storage_and_layout();
        let (gs, gl) = grad.storage_and_layout();
        let name = self.name();
        let xv = contiguous(name, cpu(name, &xs)?, xl)?;
        let wv = contiguous(name, cpu(name, &ws)?, wl)?;
        let gv = contiguous(name, cpu(name, &gs)?, gl)?;
        let h = wv.len();
        let mut dx = vec![0f32; xv.len()];
        // dx = inv · (g·w − n · mean(g·w·n)) with n = x · inv; dw = Σ_rows g · n.
        let dw = dx
            .par_chunks_mut(h)
            .zip(xv.par_chunks(h).zip(gv.par_chunks(h)))
            .with_min_len(ROW_WORK / h.max(1))
            .fold(
                || vec![0f32; h],
                |mut dw, (dx, (x, g))| {
                    let inv = inverse_rms(x, self.eps);
                    let mut mean = 0f32;
                    for ((x, g), w) in x.iter().zip(g).zip(wv) {
                        mean += g * w * x * inv;
                    }
                    mean /= h as f32;
                    for (((dx, x), g), (dw, w)) in
                        dx.iter_mut().zip(x).zip(g).zip(dw.iter_mut().zip(wv))
                    {
                        let n = x * inv;
                        *dx = inv * (g * w - n * mean);
                        *dw += g * n;
                    }
                    dw
                },
            )
            .reduce(
                || vec![0f32; h],
                |mut a, b| {
                    a.iter_mut().zip(&b).for_each(|(a, b)| *a += b);
                    a
                },
            );
        let dx = Tensor::from_vec(dx, x.shape(), x.device())?;
        let dw = Tensor::from_vec(dw, w.shape(), w.device())?;
        Ok((Some(dx), Some(dw)))
    }
}

/// RMSNorm of `x` [.., H] scaled by `weight` [H] (F32 on the CPU).
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    x.contiguous()?
        .apply_op2(weight, RmsNorm { eps: eps as f32 })
}
