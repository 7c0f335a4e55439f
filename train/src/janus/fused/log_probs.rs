//! A head's per-label log-probability and entropy from its logits as one op:
//! log-softmax over the vocabulary, the label's entry, and `−Σ p·log p`, without the
//! [n, vocab] log-softmax tensor of the composite path. The backward writes the
//! logits' gradient directly: `g_lp · (1[k = label] − p_k) − g_H · p_k · (log p_k + H)`.

use super::{contiguous, cpu};
use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor, bail};
use rayon::prelude::*;
use std::sync::OnceLock;

/// Rows per rayon task, at least.
const ROW_WORK: usize = 16 * 1024;

struct LabelLogProbs {
    labels: Vec<u32>,
    /// Log-sum-exp of every row, from the forward.
    lse: OnceLock<Vec<f32>>,
}

/// (log-sum-exp, entropy) of a row, from one pass of exponentials:
/// H = lse − Σ e·z / Σ e with e = exp(z − max).
fn log_sum_exp_and_entropy(row: &[f32]) -> (f32, f32) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let (mut sum, mut weighted) = (0f32, 0f32);
    for z in row {
        let e = (z - max).exp();
        sum += e;
        weighted += e * (z - max);
    }
    let lse = max + sum.ln();
    (lse, sum.ln() - weighted / sum)
}

impl CustomOp1 for LabelLogProbs {
    fn name(&self) -> &'static str {
        "fused-label-log-probs"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let logits = contiguous(self.name(), storage, layout)?;
        let (n, vocab) = layout.shape().dims2()?;
        if n != self.labels.len() {
            bail!(
                "{}: {n} rows of logits, {} labels",
                self.name(),
                self.labels.len()
            )
        }
        if let Some(&bad) = self.labels.iter().find(|&&l| l as usize >= vocab) {
            bail!(
                "{}: label {bad} is beyond the vocabulary of {vocab}",
                self.name()
            )
        }
        let mut out = vec![0f32; 2 * n];
        let mut lse = vec![0f32; n];
        out.par_chunks_mut(2)
            .zip(lse.par_iter_mut())
            .zip(logits.par_chunks(vocab).zip(self.labels.par_iter()))
            .with_min_len(ROW_WORK / vocab.max(1))
            .for_each(|((out, lse), (z, &label))| {
                let entropy;
                (*lse, entropy) = log_sum_exp_and_entropy(z);
                out[0] = z[label as usize] - *lse;
                out[1] = entropy;
            });
        let _ = self.lse.set(lse);
        Ok((CpuStorage::F32(out), Shape::from((n, 2))))
    }

    fn bwd(&self, logits: &Tensor, res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let name = self.name();
        let Some(lse) = self.lse.get() else {
            bail!("{name}: backward before forward")
        };
        let (res, grad) = (res.contiguous()?, grad.contiguous()?);
        let (zs, zl) = logits.storage_and_layout();
        let (rs, rl) = res.storage_and_layout();
        let (gs, gl) = grad.storage_and_layout();
        let z = contiguous(name, cpu(name, &zs)?, zl)?;
        let r = contiguous(name, cpu(name, &rs)?, rl)?;
        let g = contiguous(name, cpu(name, &gs)?, gl)?;
        let vocab = logits.dim(1)?;
        let mut dz = vec![0f32; z.len()];
        dz.par_chunks_mut(vocab)
            .zip(z.par_chunks(vocab))
            .zip(r.par_chunks(2).zip(g.par_chunks(2)))
            .zip(lse.par_iter().zip(self.labels.par_iter()))
            .with_min_len(ROW_WORK / vocab.max(1))
            .for_each(|(((dz, z), (r, g)), (&lse, &label))| {
                let (g_lp, g_h, entropy) = (g[0], g[1], r[1]);
                for (dz, z) in dz.iter_mut().zip(z) {
                    let lp = z - lse;
                    let p = lp.exp();
                    *dz = -g_lp * p - g_h * p * (lp + entropy);
                }
                dz[label as usize] += g_lp;
            });
        Ok(Some(Tensor::from_vec(dz, logits.shape(), logits.device())?))
    }
}

/// Each row's (log-probability of its label, entropy) of `logits` [n, vocab]: [n, 2]
/// (F32 on the CPU).
pub fn label_log_probs(logits: &Tensor, labels: &[u32]) -> Result<Tensor> {
    logits.contiguous()?.apply_op1(LabelLogProbs {
        labels: labels.to_vec(),
        lse: OnceLock::new(),
    })
}
