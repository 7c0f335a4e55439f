//! The fused AdamW kernel on the CPU: one pass over a contiguous FP32 segment that
//! reads the parameter, its gradient and both moments and writes the parameter and the
//! moments in place ([`adamw_segment`]), split over the rayon pool for large segments,
//! with the global-norm clipping folded in as a gradient scale. The step's constants are
//! [`AdamWStep`]. Moment formats other than FP32 and the per-tensor bookkeeping live in
//! [`super::moments`] and [`super`]; this file holds only the arithmetic.

use super::AdamWConfig;

/// Segments at least this long are split over the thread pool.
const PARALLEL_MIN: usize = 1 << 15;

/// The constants of one AdamW update of one parameter (or a segment of one).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamWStep {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    /// Decoupled decay (0 for parameters that take none).
    pub weight_decay: f32,
    /// `1 - beta1^t` at update `t` (1-based).
    pub bias_correction1: f32,
    /// `1 - beta2^t`.
    pub bias_correction2: f32,
    /// The gradient's factor: the global-norm clipping scale (1: no clipping).
    pub grad_scale: f32,
}

impl AdamWStep {
    /// The constants of update `t` (1-based) at learning rate `lr`, with decay when
    /// `decays`, gradients multiplied by `grad_scale`.
    pub fn new(config: &AdamWConfig, t: u64, lr: f64, decays: bool, grad_scale: f64) -> Self {
        let t = t.min(i32::MAX as u64) as i32;
        AdamWStep {
            lr: lr as f32,
            beta1: config.beta1 as f32,
            beta2: config.beta2 as f32,
            eps: config.eps as f32,
            weight_decay: if decays {
                config.weight_decay as f32
            } else {
                0.0
            },
            bias_correction1: (1.0 - config.beta1.powi(t)) as f32,
            bias_correction2: (1.0 - config.beta2.powi(t)) as f32,
            grad_scale: grad_scale as f32,
        }
    }
}

/// One AdamW update of the segment `p` by the gradient `g` with FP32 moments `m`, `v`,
/// in place: `m ← β1·m + (1-β1)·s·g`, `v ← β2·v + (1-β2)·(s·g)²`,
/// `p ← p·(1 - lr·wd) - lr·(m/c1) / (√(v/c2) + eps)`. Elementwise, so the result does not
/// depend on how the segment is split. Panics if the four slices differ in length.
pub fn adamw_segment(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], k: &AdamWStep) {
    use rayon::prelude::*;
    assert!(
        g.len() == p.len() && m.len() == p.len() && v.len() == p.len(),
        "adamw_segment: lengths differ (p {}, g {}, m {}, v {})",
        p.len(),
        g.len(),
        m.len(),
        v.len()
    );
    if p.len() < PARALLEL_MIN {
        return adamw_serial(p, g, m, v, k);
    }
    let chunk = p
        .len()
        .div_ceil(rayon::current_num_threads().max(1))
        .max(PARALLEL_MIN / 2);
    p.par_chunks_mut(chunk)
        .zip(g.par_chunks(chunk))
        .zip(m.par_chunks_mut(chunk))
        .zip(v.par_chunks_mut(chunk))
        .for_each(|(((p, g), m), v)| adamw_serial(p, g, m, v, k));
}

/// [`adamw_segment`] on one thread.
pub(super) fn adamw_serial(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], k: &AdamWStep) {
    let (b1, b2) = (k.beta1, k.beta2);
    let (a1, a2) = (1.0 - b1, 1.0 - b2);
    let (c1, c2) = (k.bias_correction1, k.bias_correction2);
    let decay = 1.0 - k.lr * k.weight_decay;
    let (lr, eps, s) = (k.lr, k.eps, k.grad_scale);
    for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
        let g = g * s;
        let mi = b1 * *m + a1 * g;
        let vi = b2 * *v + a2 * (g * g);
        *m = mi;
        *v = vi;
        *p = *p * decay - lr * ((mi / c1) / ((vi / c2).sqrt() + eps));
    }
}
