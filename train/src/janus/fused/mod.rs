//! The language model's hot ops as candle custom ops with an analytic backward, for
//! F32 on the CPU: RMSNorm ([`rms_norm`]), RoPE ([`rope`]), causal attention with an
//! additive mask and grouped queries ([`attention`]), SwiGLU ([`swiglu`]) and the
//! per-label log-probability and entropy of a head's logits ([`log_probs`]). Each one
//! replaces a graph of candle's primitive ops (and its backward) by one pass over the
//! data, threads over rows with rayon.
//!
//! Here: the kernels and the views of CPU storage they share. Not here: which path a
//! forward takes ([`crate::janus::llama::Ops`]), and the composite versions they are
//! tested against (in `llama.rs` and `core/logprobs.rs`). There are no GPU kernels:
//! off the CPU, or in another dtype, the model runs the composite ops.

pub mod attention;
pub mod log_probs;
pub mod rms_norm;
pub mod rope;
pub mod swiglu;
#[cfg(test)]
mod tests;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, Layout, Result, Storage, Tensor, bail};

/// The F32 values of CPU storage, or an error naming the op.
fn f32_values<'a>(op: &str, storage: &'a CpuStorage) -> Result<&'a [f32]> {
    match storage {
        CpuStorage::F32(v) => Ok(v),
        other => bail!("{op}: F32 only, got {:?}", other.dtype()),
    }
}

/// The CPU storage behind a tensor's read guard, or an error naming the op.
fn cpu<'a>(op: &str, storage: &'a Storage) -> Result<&'a CpuStorage> {
    match storage {
        Storage::Cpu(s) => Ok(s),
        _ => bail!("{op}: CPU only"),
    }
}

/// The values of a contiguous layout, in row-major order.
fn contiguous<'a>(op: &str, storage: &'a CpuStorage, layout: &Layout) -> Result<&'a [f32]> {
    let Some((start, end)) = layout.contiguous_offsets() else {
        bail!("{op}: the input must be contiguous")
    };
    Ok(&f32_values(op, storage)?[start..end])
}

/// A 4-D F32 view of CPU storage with any strides but a contiguous last dimension.
#[derive(Clone, Copy)]
struct View4<'a> {
    data: &'a [f32],
    start: usize,
    strides: [usize; 3],
    dims: [usize; 4],
}

impl<'a> View4<'a> {
    fn new(op: &str, storage: &'a CpuStorage, layout: &Layout) -> Result<Self> {
        let (dims, strides) = (layout.dims(), layout.stride());
        if dims.len() != 4 || (strides[3] != 1 && dims[3] > 1) {
            bail!(
                "{op}: wants a 4-D input with a contiguous last dimension, got {dims:?} / {strides:?}"
            )
        }
        Ok(View4 {
            data: f32_values(op, storage)?,
            start: layout.start_offset(),
            strides: [strides[0], strides[1], strides[2]],
            dims: [dims[0], dims[1], dims[2], dims[3]],
        })
    }

    /// The last-dimension row at (a, b, c).
    fn row(&self, a: usize, b: usize, c: usize) -> &'a [f32] {
        let o = self.start + a * self.strides[0] + b * self.strides[1] + c * self.strides[2];
        &self.data[o..o + self.dims[3]]
    }
}

/// A tensor with a contiguous last dimension (copied only when it has none).
fn last_dim_contiguous(t: &Tensor) -> Result<Tensor> {
    let stride = t.stride();
    if stride.last().is_none_or(|&s| s == 1) {
        Ok(t.clone())
    } else {
        t.contiguous()
    }
}

/// Σ a·b over equal-length slices, in eight lanes the compiler keeps in vector registers.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            lanes[l] += x[l] * y[l];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// y += a·x.
fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    for (y, x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}
