//! Attention as one op: `softmax(q·kᵀ·scale + mask)·v` for every head, with grouped
//! queries (head h reads key-value head h / (heads / kv heads)) and an additive mask
//! [B, 1, T, S] (causal plus padding, or the cache's). The scores live one query row at
//! a time; masked keys (at the mask's −1e30) are skipped, which changes nothing since
//! their probability is exactly 0, unless a row has no key left (a padded query), which
//! then attends to every key alike as the composite softmax does.
//!
//! The forward keeps each row's softmax statistics (maximum and sum, apart: at the
//! mask's −1e30 a log-sum-exp would lose the sum to rounding) in the op; the backward
//! recomputes the probabilities from them, row by row (no [B, H, T, S] tensor in either direction).
//! The output is [B, T, H·D], the layout `o_proj` reads, so no transpose follows.

use super::{View4, axpy, contiguous, cpu, dot};
use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor, bail};
use rayon::prelude::*;
use std::sync::OnceLock;

/// A mask value at or below this means "not attended" (the mask uses −1e30).
const MASKED_BELOW: f32 = -1e29;

struct Attention {
    mask: Tensor,
    scale: f32,
    /// (maximum, Σ exp(score − maximum)) of every score row, [B, H, T], from the forward.
    stats: OnceLock<Vec<(f32, f32)>>,
}

/// The keys row `mask` lets a query attend (all of them when it lets none).
fn attended(mask: &[f32], keys: &mut Vec<usize>) {
    keys.clear();
    keys.extend((0..mask.len()).filter(|&j| mask[j] > MASKED_BELOW));
    if keys.is_empty() {
        keys.extend(0..mask.len());
    }
}

/// Shapes: (B, H, T, D) of q, (KV, S) of k and v; checked against each other and the mask.
fn shapes(
    q: &View4,
    k: &View4,
    v: &View4,
    mask: &View4,
) -> Result<(usize, usize, usize, usize, usize, usize)> {
    let [b, h, t, d] = q.dims;
    let [kb, kv, s, kd] = k.dims;
    if [kb, kv, s, kd] != v.dims || kb != b || kd != d || kv == 0 || h % kv != 0 {
        bail!(
            "fused-attention: q {:?}, k {:?}, v {:?}",
            q.dims,
            k.dims,
            v.dims
        )
    }
    if mask.dims != [b, 1, t, s] {
        bail!(
            "fused-attention: mask {:?} for q {:?} and {s} keys",
            mask.dims,
            q.dims
        )
    }
    Ok((b, h, t, d, kv, s))
}

impl Attention {
    fn with_mask<R>(&self, f: impl FnOnce(View4) -> Result<R>) -> Result<R> {
        let name = "fused-attention";
        let (ms, ml) = self.mask.storage_and_layout();
        f(View4::new(name, cpu(name, &ms)?, ml)?)
    }
}

impl CustomOp3 for Attention {
    fn name(&self) -> &'static str {
        "fused-attention"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let q = View4::new(self.name(), s1, l1)?;
        let k = View4::new(self.name(), s2, l2)?;
        let v = View4::new(self.name(), s3, l3)?;
        self.with_mask(|mask| {
            let (b, h, t, d, kv, s) = shapes(&q, &k, &v, &mask)?;
            let group = h / kv;
            let mut out = vec![0f32; b * t * h * d];
            let mut stats = vec![(0f32, 0f32); b * h * t];
            out.par_chunks_mut(t * h * d)
                .zip(stats.par_chunks_mut(h * t))
                .enumerate()
                .for_each(|(bi, (out, stats))| {
                    let (mut keys, mut p) = (Vec::with_capacity(s), vec![0f32; s]);
                    for hi in 0..h {
                        let g = hi / group;
                        for i in 0..t {
                            let m = mask.row(bi, 0, i);
                            attended(m, &mut keys);
                            let qi = q.row(bi, hi, i);
                            let mut max = f32::NEG_INFINITY;
                            for &j in &keys {
                                p[j] = dot(qi, k.row(bi, g, j)) * self.scale + m[j];
                                max = max.max(p[j]);
                            }
                            let mut sum = 0f32;
                            for &j in &keys {
                                p[j] = (p[j] - max).exp();
                                sum += p[j];
                            }
                            let o = &mut out[(i * h + hi) * d..(i * h + hi + 1) * d];
                            for &j in &keys {
                                axpy(o, p[j] / sum, v.row(bi, g, j));
                            }
                            stats[hi * t + i] = (max, sum);
                        }
                    }
                });
            // One forward per op: a second would have failed on the same inputs.
            let _ = self.stats.set(stats);
            Ok((CpuStorage::F32(out), Shape::from((b, t, h * d))))
        })
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let name = self.name();
        let Some(stats) = self.stats.get() else {
            bail!("{name}: backward before forward")
        };
        let grad = grad.contiguous()?;
        let (qs, ql) = q.storage_and_layout();
        let (ks, kl) = k.storage_and_layout();
        let (vs, vl) = v.storage_and_layout();
        let (os, ol) = res.storage_and_layout();
        let (gs, gl) = grad.storage_and_layout();
        let qv = View4::new(name, cpu(name, &qs)?, ql)?;
        let kv_ = View4::new(name, cpu(name, &ks)?, kl)?;
        let vv = View4::new(name, cpu(name, &vs)?, vl)?;
        let out = contiguous(name, cpu(name, &os)?, ol)?;
        let dout = contiguous(name, cpu(name, &gs)?, gl)?;
        let (dq, dk, dv) = self.with_mask(|mask| {
            let (b, h, t, d, kv, s) = shapes(&qv, &kv_, &vv, &mask)?;
            let group = h / kv;
            let mut dq = vec![0f32; b * h * t * d];
            let mut dk = vec![0f32; b * kv * s * d];
            let mut dv = vec![0f32; b * kv * s * d];
            dq.par_chunks_mut(h * t * d)
                .zip(
                    dk.par_chunks_mut(kv * s * d)
                        .zip(dv.par_chunks_mut(kv * s * d)),
                )
                .enumerate()
                .for_each(|(bi, (dq, (dk, dv)))| {
                    let mut keys = Vec::with_capacity(s);
                    for hi in 0..h {
                        let g = hi / group;
                        for i in 0..t {
                            let m = mask.row(bi, 0, i);
                            attended(m, &mut keys);
                            let qi = qv.row(bi, hi, i);
                            let at = ((bi * t + i) * h + hi) * d;
                            let (oi, doi) = (&out[at..at + d], &dout[at..at + d]);
                            let (max, sum) = stats[(bi * h + hi) * t + i];
                            // D_i = dO_i · O_i = Σ_j p_j (dO_i · v_j).
                            let di = dot(doi, oi);
                            let dqi = &mut dq[(hi * t + i) * d..(hi * t + i + 1) * d];
                            for &j in &keys {
                                let kj = kv_.row(bi, g, j);
                                let p = (dot(qi, kj) * self.scale + m[j] - max).exp() / sum;
                                if p == 0.0 {
                                    continue;
                                }
                                let ds = p * (dot(doi, vv.row(bi, g, j)) - di) * self.scale;
                                axpy(dqi, ds, kj);
                                let row = (g * s + j) * d;
                                axpy(&mut dk[row..row + d], ds, qi);
                                axpy(&mut dv[row..row + d], p, doi);
                            }
                        }
                    }
                });
            Ok((dq, dk, dv))
        })?;
        Ok((
            Some(Tensor::from_vec(dq, q.shape(), q.device())?),
            Some(Tensor::from_vec(dk, k.shape(), k.device())?),
            Some(Tensor::from_vec(dv, v.shape(), v.device())?),
        ))
    }
}

/// Attention of `q` [B, H, T, D] over `k`, `v` [B, KV, S, D] (any strides, contiguous
/// last dimension) under the additive `mask` [B, 1, T, S], scores scaled by `scale`:
/// [B, T, H·D] (F32 on the CPU).
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, mask: &Tensor, scale: f64) -> Result<Tensor> {
    let op = Attention {
        mask: super::last_dim_contiguous(mask)?,
        scale: scale as f32,
        stats: OnceLock::new(),
    };
    let last = super::last_dim_contiguous;
    last(q)?.apply_op3(&last(k)?, &last(v)?, op)
}
