//! The parameters as one flat `f32` vector, as the collectives move them: each
//! parameter's offset ([`Layout`]), gradients and weights flattened into it and back,
//! each rank's contiguous 1/N shard of it ([`Layout::shard`]), and which parameters
//! any rank has a gradient for.

use super::collective::Collective;
use crate::janus::error::Result;
use candle_core::{Device, Tensor, Var};
use std::ops::Range;

/// Where each parameter lies in the flat vector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Parameter i is `offsets[i]..offsets[i + 1]`.
    pub offsets: Vec<usize>,
}

impl Layout {
    pub fn of(vars: &[Var]) -> Layout {
        let mut offsets = vec![0];
        for v in vars {
            offsets.push(offsets.last().copied().unwrap_or(0) + v.elem_count());
        }
        Layout { offsets }
    }

    /// Values in all.
    pub fn total(&self) -> usize {
        self.offsets.last().copied().unwrap_or(0)
    }

    pub fn range(&self, i: usize) -> Range<usize> {
        self.offsets[i]..self.offsets[i + 1]
    }

    /// Each rank's shard length: ceil(total / world).
    pub fn chunk(&self, world: usize) -> usize {
        self.total().div_ceil(world.max(1))
    }

    /// The values rank `rank` owns (the last shards may be short or empty).
    pub fn shard(&self, rank: usize, world: usize) -> Range<usize> {
        let chunk = self.chunk(world);
        let total = self.total();
        (rank * chunk).min(total)..((rank + 1) * chunk).min(total)
    }

    /// `tensors` (`None`: zeros) flattened into `len` ≥ total values, the rest zeros.
    pub fn flatten(&self, tensors: &[Option<Tensor>], len: usize) -> Result<Vec<f32>> {
        let mut flat = vec![0.0f32; len.max(self.total())];
        for (i, t) in tensors.iter().enumerate() {
            if let Some(t) = t {
                let values = t.flatten_all()?.to_dtype(candle_core::DType::F32)?;
                flat[self.range(i)].copy_from_slice(&values.to_vec1::<f32>()?);
            }
        }
        Ok(flat)
    }

    /// The current weights of `vars`, flattened into `len` ≥ total values.
    pub fn flatten_vars(&self, vars: &[Var], len: usize) -> Result<Vec<f32>> {
        let tensors: Vec<Option<Tensor>> =
            vars.iter().map(|v| Some(v.as_detached_tensor())).collect();
        self.flatten(&tensors, len)
    }

    /// Parameter i's values of `flat` as a tensor of `var`'s shape on `device`.
    pub fn tensor(&self, flat: &[f32], i: usize, var: &Var, device: &Device) -> Result<Tensor> {
        Ok(Tensor::from_slice(
            &flat[self.range(i)],
            var.shape(),
            device,
        )?)
    }

    /// Set `vars` to the values of `flat`.
    pub fn set_vars(&self, vars: &[Var], flat: &[f32]) -> Result<()> {
        for (i, var) in vars.iter().enumerate() {
            var.set(&self.tensor(flat, i, var, var.device())?)?;
        }
        Ok(())
    }
}

/// Which parameters have a gradient on any rank.
pub fn present(comm: &dyn Collective, grads: &[Option<Tensor>]) -> Result<Vec<bool>> {
    let mut flags: Vec<f32> = grads
        .iter()
        .map(|g| f32::from(u8::from(g.is_some())))
        .collect();
    comm.all_reduce_sum(&mut flags)?;
    Ok(flags.into_iter().map(|f| f > 0.0).collect())
}

/// Every rank's `vars` set to rank 0's.
pub fn broadcast_vars(comm: &dyn Collective, vars: &[Var]) -> Result<()> {
    let layout = Layout::of(vars);
    let mut flat = layout.flatten_vars(vars, 0)?;
    comm.broadcast(&mut flat, 0)?;
    layout.set_vars(vars, &flat)
}

/// The sum over ranks of each rank's `grads` (the data-parallel step without
/// sharding); a parameter no rank has a gradient for stays `None`.
pub fn all_reduce_grads(
    comm: &dyn Collective,
    vars: &[Var],
    grads: &[Option<Tensor>],
) -> Result<Vec<Option<Tensor>>> {
    let layout = Layout::of(vars);
    let present = present(comm, grads)?;
    let mut flat = layout.flatten(grads, 0)?;
    comm.all_reduce_sum(&mut flat)?;
    vars.iter()
        .enumerate()
        .map(|(i, var)| {
            present[i]
                .then(|| layout.tensor(&flat, i, var, var.device()))
                .transpose()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_the_vector_once_in_ceil_sized_pieces() {
        let dev = Device::Cpu;
        let vars: Vec<Var> = [3usize, 4, 0, 3]
            .iter()
            .map(|&n| Var::zeros(n, candle_core::DType::F32, &dev).unwrap())
            .collect();
        let layout = Layout::of(&vars);
        assert_eq!(layout.total(), 10);
        assert_eq!(layout.chunk(3), 4);
        let shards: Vec<_> = (0..3).map(|r| layout.shard(r, 3)).collect();
        assert_eq!(shards, vec![0..4, 4..8, 8..10]);
        assert_eq!(layout.shard(3, 4), 9..10);
        assert_eq!(
            Layout::of(&vars[..1]).shard(3, 4),
            3..3,
            "more ranks than values"
        );
    }
}
