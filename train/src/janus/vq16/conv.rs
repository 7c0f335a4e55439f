//! VQ-16's convolutions. On the CPU in F32, a 3×3 convolution runs as im2col over
//! bands of output rows, each band one GEMM `[c_out, 9·c_in] × [9·c_in, pixels]`:
//! candle's CPU conv2d (0.11) gathers its im2col tiles with one scattered store per
//! element and spent longer on that than on its GEMM (`BENCHMARKS.md`, "VQ-16
//! encoding"). Here each tap's row is a contiguous copy, the channels are gathered in
//! parallel, and the GEMM is candle's matmul (multi-threaded). Elsewhere (a GPU, BF16,
//! 1×1 kernels) candle's conv2d runs.

use candle_core::{DType, Device, Module, Result, Storage, Tensor};
use candle_nn::Conv2d;
use rayon::prelude::*;

/// Floats of a band's im2col matrix at most (32 MiB): bands of 18 rows at 384² and
/// 128 channels, so GEMMs stay large while the matrix stays in memory's reach.
pub const BAND_FLOATS: usize = 8 << 20;

/// A convolution with square kernels, run as [`conv3x3_cpu`] where that applies.
pub(super) struct Conv {
    conv: Conv2d,
    kernel: usize,
    stride: usize,
    padding: usize,
}

impl Conv {
    pub(super) fn new(conv: Conv2d, kernel: usize, stride: usize, padding: usize) -> Self {
        Conv {
            conv,
            kernel,
            stride,
            padding,
        }
    }
}

impl Module for Conv {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if self.kernel == 3 && x.device().is_cpu() && x.dtype() == DType::F32 {
            conv3x3_cpu(
                x,
                self.conv.weight(),
                self.conv.bias(),
                self.stride,
                self.padding,
                BAND_FLOATS,
            )
        } else {
            self.conv.forward(x)
        }
    }
}

/// `x` [B, c_in, H, W] (F32, CPU) convolved with `weight` [c_out, c_in, 3, 3], plus
/// `bias` `[c_out]`: `[B, c_out, H', W']`, H' = (H + 2·padding − 3) / stride + 1. Output
/// rows go in bands whose im2col matrix has `band_floats` floats at most (one row at
/// least).
pub fn conv3x3_cpu(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    padding: usize,
    band_floats: usize,
) -> Result<Tensor> {
    let x = x.contiguous()?;
    let (b, cin, h, w) = x.dims4()?;
    let (cout, wcin, kh, kw) = weight.dims4()?;
    if (wcin, kh, kw) != (cin, 3, 3) || stride == 0 || h + 2 * padding < 3 || w + 2 * padding < 3 {
        candle_core::bail!(
            "conv3x3 of {:?} with a kernel {:?}, stride {stride}, padding {padding}",
            x.dims(),
            weight.dims()
        );
    }
    let (ho, wo) = (
        (h + 2 * padding - 3) / stride + 1,
        (w + 2 * padding - 3) / stride + 1,
    );
    let k = 9 * cin;
    // [c_out, c_in·9], the column order of the im2col rows below (c_in, then ky, kx).
    let weight = weight.contiguous()?.reshape((cout, k))?;
    let bias = bias.map(|b| b.to_vec1::<f32>()).transpose()?;
    let rows = (band_floats / (k * wo)).clamp(1, ho);
    let mut out = vec![0f32; b * cout * ho * wo];
    let mut col = vec![0f32; k * rows * wo];
    let (storage, layout) = x.storage_and_layout();
    let Storage::Cpu(cpu) = &*storage else {
        candle_core::bail!("conv3x3_cpu takes a CPU tensor");
    };
    let input = &cpu.as_slice::<f32>()?[layout.start_offset()..][..b * cin * h * w];
    for (img, out_img) in input
        .chunks_exact(cin * h * w)
        .zip(out.chunks_exact_mut(cout * ho * wo))
    {
        for r0 in (0..ho).step_by(rows) {
            let n = rows.min(ho - r0) * wo;
            let col = &mut col[..k * n];
            col.par_chunks_exact_mut(9 * n)
                .zip(img.par_chunks_exact(h * w))
                .for_each(|(taps, plane)| {
                    for (tap, dst) in taps.chunks_exact_mut(n).enumerate() {
                        im2col_rows(plane, (h, w), (tap / 3, tap % 3), stride, padding, r0, dst);
                    }
                });
            let band = weight.matmul(&Tensor::from_slice(col, (k, n), &Device::Cpu)?)?;
            let (band_storage, band_layout) = band.storage_and_layout();
            let Storage::Cpu(band_cpu) = &*band_storage else {
                candle_core::bail!("the band's product is not on the CPU");
            };
            let band = &band_cpu.as_slice::<f32>()?[band_layout.start_offset()..][..cout * n];
            out_img
                .par_chunks_exact_mut(ho * wo)
                .zip(band.par_chunks_exact(n))
                .enumerate()
                .for_each(|(co, (plane, values))| {
                    let add = bias.as_ref().map_or(0.0, |b| b[co]);
                    for (o, v) in plane[r0 * wo..][..n].iter_mut().zip(values) {
                        *o = v + add;
                    }
                });
        }
    }
    drop(storage);
    Tensor::from_vec(out, (b, cout, ho, wo), x.device())
}

/// One im2col row: input plane `plane` (h × w) at tap (dy, dx) for the output rows
/// from `r0` on, `dst.len() / w'` of them, w' = (w + 2·padding − 3) / stride + 1;
/// positions that fall in the padding are zero.
fn im2col_rows(
    plane: &[f32],
    (h, w): (usize, usize),
    (dy, dx): (usize, usize),
    stride: usize,
    padding: usize,
    r0: usize,
    dst: &mut [f32],
) {
    let wo = (w + 2 * padding - 3) / stride + 1;
    // Output columns whose input column c·stride + dx − padding is inside the plane.
    let lo = padding.saturating_sub(dx).div_ceil(stride).min(wo);
    let hi = ((w + padding - dx).div_ceil(stride)).clamp(lo, wo);
    for (r, row) in dst.chunks_exact_mut(wo).enumerate() {
        let iy = ((r0 + r) * stride + dy)
            .checked_sub(padding)
            .filter(|&y| y < h);
        let Some(iy) = iy else {
            row.fill(0.0);
            continue;
        };
        let src = &plane[iy * w..][..w];
        row[..lo].fill(0.0);
        row[hi..].fill(0.0);
        if lo == hi {
            continue;
        }
        let first = lo * stride + dx - padding;
        if stride == 1 {
            row[lo..hi].copy_from_slice(&src[first..first + hi - lo]);
        } else {
            for (d, s) in row[lo..hi]
                .iter_mut()
                .zip(src[first..].iter().step_by(stride))
            {
                *d = *s;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::janus::vq16::max_abs_diff;
    use candle_nn::Conv2dConfig;

    /// Values in [−1, 1] that differ everywhere (no accidental symmetry).
    fn values(shape: (usize, usize, usize, usize), seed: f32) -> Tensor {
        let n = shape.0 * shape.1 * shape.2 * shape.3;
        let v: Vec<f32> = (0..n).map(|i| (i as f32 * 0.7133 + seed).sin()).collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    #[test]
    fn equals_candles_conv2d_for_every_stride_padding_and_band() {
        // Odd, even and minimal planes, not square; strides 1 and 2, padding 0 to 2;
        // 1 and 2 images; bands of one row, of two rows (the last one partial where
        // the rows are odd) and of the whole plane.
        let (cin, cout) = (5, 4);
        let weight = values((cout, cin, 3, 3), 1.1);
        let bias = Tensor::new(&[0.5f32, -0.25, 0.0, 2.0], &Device::Cpu).unwrap();
        for (h, w) in [(7, 9), (6, 5), (3, 3), (1, 2)] {
            for stride in [1, 2] {
                for padding in [0, 1, 2] {
                    if h + 2 * padding < 3 || w + 2 * padding < 3 {
                        continue;
                    }
                    let wo = (w + 2 * padding - 3) / stride + 1;
                    for b in [1, 2] {
                        let x = values((b, cin, h, w), 0.3);
                        let cfg = Conv2dConfig {
                            padding,
                            stride,
                            ..Default::default()
                        };
                        let want = Conv2d::new(weight.clone(), Some(bias.clone()), cfg)
                            .forward(&x)
                            .unwrap();
                        for band in [1, 2 * 9 * cin * wo, BAND_FLOATS] {
                            let got = conv3x3_cpu(&x, &weight, Some(&bias), stride, padding, band)
                                .unwrap();
                            let case = format!("{h}×{w} s{stride} p{padding} b{b} band {band}");
                            assert_eq!(got.dims(), want.dims(), "{case}");
                            let err = max_abs_diff(&got, &want);
                            assert!(err < 1e-5, "{case}: {err}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn takes_a_strided_input_and_no_bias() {
        // A transposed view (not contiguous) and no bias: as candle's.
        let x = values((1, 3, 6, 4), 0.9).transpose(2, 3).unwrap();
        let weight = values((2, 3, 3, 3), 0.2);
        let want = x.conv2d(&weight, 1, 1, 1, 1).unwrap();
        let got = conv3x3_cpu(&x, &weight, None, 1, 1, BAND_FLOATS).unwrap();
        assert!(max_abs_diff(&got, &want) < 1e-5);
    }

    #[test]
    fn refuses_a_kernel_that_does_not_fit() {
        let x = values((1, 2, 4, 4), 0.0);
        let err = conv3x3_cpu(&x, &values((1, 3, 3, 3), 0.0), None, 1, 1, BAND_FLOATS);
        assert!(err.unwrap_err().to_string().contains("conv3x3"));
        let small = values((1, 3, 2, 2), 0.0);
        assert!(conv3x3_cpu(&small, &values((1, 3, 3, 3), 0.0), None, 1, 0, BAND_FLOATS).is_err());
    }
}
