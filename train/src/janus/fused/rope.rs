//! RoPE in the non-interleaved `rotate_half` form as one op: each head's first and
//! second halves (x₁, x₂) become (x₁·cos − x₂·sin, x₂·cos + x₁·sin); the backward is
//! the rotation by −sin. The input may be a strided view (the heads transposed out
//! of the projection); the output is contiguous.

use super::{View4, contiguous, cpu};
use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor, bail};
use rayon::prelude::*;

struct Rope;

/// Rotate x [B, H, T, D] by cos, sin [B, T, D/2] (`sign` −1 rotates back) into `out`,
/// contiguous [B, H, T, D].
fn rotate(x: View4, cos: &[f32], sin: &[f32], sign: f32, out: &mut [f32]) {
    let [_, heads, t, d] = x.dims;
    let half = d / 2;
    out.par_chunks_mut(t * d).enumerate().for_each(|(bh, out)| {
        let (b, h) = (bh / heads, bh % heads);
        for (i, out) in out.chunks_mut(d).enumerate() {
            let row = x.row(b, h, i);
            let at = (b * t + i) * half;
            let (c, s) = (&cos[at..at + half], &sin[at..at + half]);
            let (x1, x2) = row.split_at(half);
            let (o1, o2) = out.split_at_mut(half);
            for k in 0..half {
                let s = sign * s[k];
                o1[k] = x1[k] * c[k] - x2[k] * s;
                o2[k] = x2[k] * c[k] + x1[k] * s;
            }
        }
    });
}

/// Check the shapes; (B, T, D/2) of the tables.
fn check(name: &str, x: &Layout, cos: &Layout, sin: &Layout) -> Result<()> {
    let d = x.dims();
    let want = [d[0], d[2], d[3] / 2];
    if !d[3].is_multiple_of(2) || cos.dims() != want || sin.dims() != want {
        bail!(
            "{name}: x {d:?}, cos {:?}, sin {:?}",
            cos.dims(),
            sin.dims()
        )
    }
    Ok(())
}

impl CustomOp3 for Rope {
    fn name(&self) -> &'static str {
        "fused-rope"
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
        let x = View4::new(self.name(), s1, l1)?;
        check(self.name(), l1, l2, l3)?;
        let cos = contiguous(self.name(), s2, l2)?;
        let sin = contiguous(self.name(), s3, l3)?;
        let mut out = vec![0f32; l1.shape().elem_count()];
        rotate(x, cos, sin, 1.0, &mut out);
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let name = self.name();
        let grad = super::last_dim_contiguous(grad)?;
        let (gs, gl) = grad.storage_and_layout();
        let (cs, cl) = cos.storage_and_layout();
        let (ss, sl) = sin.storage_and_layout();
        let g = View4::new(name, cpu(name, &gs)?, gl)?;
        let cos_v = contiguous(name, cpu(name, &cs)?, cl)?;
        let sin_v = contiguous(name, cpu(name, &ss)?, sl)?;
        let mut dx = vec![0f32; x.elem_count()];
        rotate(g, cos_v, sin_v, -1.0, &mut dx);
        Ok((
            Some(Tensor::from_vec(dx, x.shape(), x.device())?),
            None,
            None,
        ))
    }
}

/// Rotate `x` [B, heads, T, D] (any strides, contiguous last dimension) by `cos` and
/// `sin` [B, T, D/2] (F32 on the CPU; no gradient reaches the tables).
pub fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    super::last_dim_contiguous(x)?.apply_op3(&cos.contiguous()?, &sin.contiguous()?, Rope)
}
