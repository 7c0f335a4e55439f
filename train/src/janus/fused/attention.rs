//! Attention as one op: `softmax(q·kᵀ·scale + mask)·v` for every head, with grouped
//! queries (head h reads key-value head h / (heads / kv heads)) and an additive mask
//! [B, 1, T, S] (causal plus padding, or the cache's). The scores live one query row at
//! a time; masked keys (at the mask's −1e30) are skipped, which changes nothing since
//! their probability is exactly 0, unless a row has no key left (a padded query), which
//! then attends to every key alike as the composite softmax does.
//!
//! When a gradient is wanted and the probabilities fit [`KEPT_PROBS`], the forward
//! keeps them ([B, H, T, S], 0 at masked keys) in the op and the backward reads them.
//! Otherwise it keeps each row's softmax statistics (maximum and sum, apart: at the
//! mask's −1e30 a log-sum-exp would lose the sum to rounding) and the backward
//! recomputes the probabilities from them, row by row.
//! The output is [B, T, H·D], the layout `o_proj` reads, so no transpose follows.

use super::{View4, axpy, contiguous, cpu, dot};
use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor, bail};
use rayon::prelude::*;
use std::sync::OnceLock;

/// A mask value at or below this means "not attended" (the mask uses −1e30).
const MASKED_BELOW: f32 = -1e29;

/// The most probabilities (B·H·T·S) the forward keeps for the backward: 64 MiB.
const KEPT_PROBS: usize = 1 << 24;

/// What the forward leaves the backward.
enum Saved {
    /// Every probability, [B, H, T, S].
    Probs(Vec<f32>),
    /// (maximum, Σ exp(score − maximum)) of every score row, [B, H, T].
    Stats(Vec<(f32, f32)>),
}

struct Attention {
    mask: Tensor,
    scale: f32,
    /// Whether the forward keeps the probabilities (else the rows' statistics).
    keep_probs: bool,
    saved: OnceLock<Saved>,
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
            // Every row's probabilities, kept; else one scratch row per batch entry.
            let per_batch = if self.keep_probs { h * t * s } else { s }.max(1);
            let mut probs = vec![0f32; b * per_batch];
            out.par_chunks_mut(t * h * d)
                .zip(stats.par_chunks_mut(h * t))
                .zip(probs.par_chunks_mut(per_batch))
                .enumerate()
                .for_each(|(bi, ((out, stats), probs))| {
                    let mut keys = Vec::with_capacity(s);
                    for hi in 0..h {
                        let g = hi / group;
                        for i in 0..t {
                            let m = mask.row(bi, 0, i);
                            attended(m, &mut keys);
                            let row = if self.keep_probs { hi * t + i } else { 0 };
                            let p = &mut probs[row * s..(row + 1) * s];
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
                                p[j] /= sum;
                                axpy(o, p[j], v.row(bi, g, j));
                            }
                            stats[hi * t + i] = (max, sum);
                        }
                    }
                });
            // One forward per op: a second would have failed on the same inputs.
            let _ = self.saved.set(if self.keep_probs {
                Saved::Probs(probs)
            } else {
                Saved::Stats(stats)
            });
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
        let Some(saved) = self.saved.get() else {
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
                    let (mut keys, mut scratch) = (Vec::with_capacity(s), vec![0f32; s]);
                    for hi in 0..h {
                        let g = hi / group;
                        for i in 0..t {
                            let qi = qv.row(bi, hi, i);
                            let row = (bi * h + hi) * t + i;
                            let p = match saved {
                                Saved::Probs(probs) => &probs[row * s..(row + 1) * s],
                                Saved::Stats(stats) => {
                                    let m = mask.row(bi, 0, i);
                                    attended(m, &mut keys);
                                    let (max, sum) = stats[row];
                                    scratch.fill(0.0);
                                    for &j in &keys {
                                        let score = dot(qi, kv_.row(bi, g, j)) * self.scale;
                                        scratch[j] = (score + m[j] - max).exp() / sum;
                                    }
                                    &scratch[..]
                                }
                            };
                            let at = ((bi * t + i) * h + hi) * d;
                            let (oi, doi) = (&out[at..at + d], &dout[at..at + d]);
                            // D_i = dO_i · O_i = Σ_j p_j (dO_i · v_j).
                            let di = dot(doi, oi);
                            let dqi = &mut dq[(hi * t + i) * d..(hi * t + i + 1) * d];
                            for (j, &p) in p.iter().enumerate() {
                                if p == 0.0 {
                                    continue;
                                }
                                let kj = kv_.row(bi, g, j);
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
    attention_keeping(q, k, v, mask, scale, KEPT_PROBS)
}

/// [`attention`], keeping the probabilities for the backward only when there are at
/// most `kept_probs` of them.
pub(super) fn attention_keeping(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: &Tensor,
    scale: f64,
    kept_probs: usize,
) -> Result<Tensor> {
    let (b, h, t, _) = q.dims4()?;
    let wants_grad = q.track_op() || k.track_op() || v.track_op();
    let op = Attention {
        mask: super::last_dim_contiguous(mask)?,
        scale: scale as f32,
        keep_probs: wants_grad && b * h * t * k.dim(2)? <= kept_probs,
        saved: OnceLock::new(),
    };
    let last = super::last_dim_contiguous;
    last(q)?.apply_op3(&last(k)?, &last(v)?, op)
}
