//! VQ-16's group norms, most of them followed by SiLU. On the CPU in F32 the two run
//! fused, one parallel task per (image, group): two reads for the mean and variance,
//! one write of the result, where candle's `GroupNorm` and `silu` take a dozen passes
//! over the activations (75 MiB per image at 384² and 128 channels). Elsewhere (a GPU,
//! BF16), candle's ops run.

use candle_core::{DType, Module, Result, Storage, Tensor};
use candle_nn::{GroupNorm, VarBuilder};
use rayon::prelude::*;

/// GroupNorm over `groups` groups with a per-channel affine map.
pub(super) struct Norm {
    norm: GroupNorm,
    weight: Tensor,
    bias: Tensor,
    groups: usize,
    eps: f64,
}

impl Norm {
    pub(super) fn new(groups: usize, channels: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        let weight = vb.get(channels, "weight")?;
        let bias = vb.get(channels, "bias")?;
        Ok(Norm {
            norm: GroupNorm::new(weight.clone(), bias.clone(), channels, groups, eps)?,
            weight,
            bias,
            groups,
            eps,
        })
    }

    /// The norm of `x` [B, C, …], then SiLU where `silu`.
    pub(super) fn forward_then(&self, x: &Tensor, silu: bool) -> Result<Tensor> {
        if x.device().is_cpu() && x.dtype() == DType::F32 {
            return group_norm_cpu(x, &self.weight, &self.bias, self.groups, self.eps, silu);
        }
        let y = self.norm.forward(x)?;
        if silu { y.silu() } else { Ok(y) }
    }
}

/// `x` [B, C, …] (F32, CPU) normalised over each of `groups` groups of channels
/// (mean and biased variance, in F64), times `weight[c]` plus `bias[c]`, then SiLU
/// (`y · σ(y)`) where `silu`.
pub fn group_norm_cpu(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    groups: usize,
    eps: f64,
    silu: bool,
) -> Result<Tensor> {
    let x = x.contiguous()?;
    let dims = x.dims();
    if dims.len() < 3 || groups == 0 || !dims[1].is_multiple_of(groups) {
        candle_core::bail!("group norm of {dims:?} in {groups} groups");
    }
    let (b, c) = (dims[0], dims[1]);
    let plane: usize = dims[2..].iter().product();
    let per_group = c / groups * plane;
    let (weight, bias) = (weight.to_vec1::<f32>()?, bias.to_vec1::<f32>()?);
    if weight.len() != c || bias.len() != c {
        candle_core::bail!("group norm of {c} channels with {} weights", weight.len());
    }
    let mut out = vec![0f32; b * c * plane];
    let (storage, layout) = x.storage_and_layout();
    let Storage::Cpu(cpu) = &*storage else {
        candle_core::bail!("group_norm_cpu takes a CPU tensor");
    };
    let input = &cpu.as_slice::<f32>()?[layout.start_offset()..][..b * c * plane];
    out.par_chunks_exact_mut(per_group)
        .zip(input.par_chunks_exact(per_group))
        .enumerate()
        .for_each(|(i, (dst, src))| {
            let n = per_group as f64;
            let mean = src.iter().map(|&v| v as f64).sum::<f64>() / n;
            let var = src.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
            let inv = 1.0 / (var + eps).sqrt();
            let first = (i % groups) * (c / groups);
            for (k, (d, s)) in dst
                .chunks_exact_mut(plane)
                .zip(src.chunks_exact(plane))
                .enumerate()
            {
                let scale = (inv * weight[first + k] as f64) as f32;
                let shift = bias[first + k] - (mean * inv * weight[first + k] as f64) as f32;
                for (d, &s) in d.iter_mut().zip(s) {
                    let y = s * scale + shift;
                    *d = if silu { y / (1.0 + (-y).exp()) } else { y };
                }
            }
        });
    drop(storage);
    Tensor::from_vec(out, dims, x.device())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::janus::vq16::max_abs_diff;
    use candle_core::Device;

    #[test]
    fn equals_candles_group_norm_and_silu() {
        // 2 images, 8 channels in 4 groups, 3 × 5 planes, values off zero-mean and
        // off unit scale so that the centring and scaling both matter.
        let n = 2 * 8 * 3 * 5;
        let v: Vec<f32> = (0..n)
            .map(|i| 3.0 + 2.0 * (i as f32 * 0.37).sin())
            .collect();
        let x = Tensor::from_vec(v, (2, 8, 3, 5), &Device::Cpu).unwrap();
        let w: Vec<f32> = (0..8).map(|i| 0.5 + i as f32 * 0.25).collect();
        let bias: Vec<f32> = (0..8).map(|i| i as f32 * 0.1 - 0.3).collect();
        let weight = Tensor::new(w, &Device::Cpu).unwrap();
        let bias = Tensor::new(bias, &Device::Cpu).unwrap();
        let candle = GroupNorm::new(weight.clone(), bias.clone(), 8, 4, 1e-6).unwrap();
        let normed = candle.forward(&x).unwrap();
        for (silu, want) in [(false, normed.clone()), (true, normed.silu().unwrap())] {
            let got = group_norm_cpu(&x, &weight, &bias, 4, 1e-6, silu).unwrap();
            assert_eq!(got.dims(), want.dims());
            let err = max_abs_diff(&got, &want);
            assert!(err < 1e-5, "silu {silu}: {err}");
        }
    }

    #[test]
    fn refuses_groups_that_do_not_divide_the_channels() {
        let x = Tensor::zeros((1, 6, 2, 2), DType::F32, &Device::Cpu).unwrap();
        let w = Tensor::ones(6, DType::F32, &Device::Cpu).unwrap();
        let err = group_norm_cpu(&x, &w, &w, 4, 1e-6, false).unwrap_err();
        assert!(err.to_string().contains("4 groups"), "{err}");
    }
}
