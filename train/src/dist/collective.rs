//! The collective operations data-parallel training needs ([`Collective`]), over flat
//! `f32` host buffers, and the length checks every backend shares. The backends live
//! beside it ([`super::threads`], [`super::mpi`], [`super::nccl`]); what the training
//! does with them lives in [`super::sync`] and [`super::zero`].

use crate::janus::error::{JanusError, Result};

/// How [`Collective::all_reduce`] combines the ranks' values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReduceOp {
    Sum,
    /// The sum divided by the world size.
    Avg,
}

/// One rank's end of a group of `world` ranks. Every rank calls the same operations in
/// the same order with buffers of the same lengths; a rank that does not deadlocks the
/// others (the thread backend reports it as an error instead).
pub trait Collective: Send + Sync {
    /// This rank, in `0..world`.
    fn rank(&self) -> usize;
    fn world(&self) -> usize;
    /// Every rank's `buf` summed element-wise, left in every rank's `buf`.
    fn all_reduce_sum(&self, buf: &mut [f32]) -> Result<()>;
    /// `input` holds `world` chunks of `out.len()`; rank r's `out` gets the sum of every
    /// rank's chunk r.
    fn reduce_scatter(&self, input: &[f32], out: &mut [f32]) -> Result<()>;
    /// Every rank's `input` in rank order (`out.len()` = world × `input.len()`).
    fn all_gather(&self, input: &[f32], out: &mut [f32]) -> Result<()>;
    /// `root`'s `buf` copied into every rank's.
    fn broadcast(&self, buf: &mut [f32], root: usize) -> Result<()>;
    /// Returns once every rank has called it.
    fn barrier(&self) -> Result<()>;

    /// [`Collective::all_reduce_sum`], averaged for [`ReduceOp::Avg`].
    fn all_reduce(&self, buf: &mut [f32], op: ReduceOp) -> Result<()> {
        self.all_reduce_sum(buf)?;
        if op == ReduceOp::Avg {
            let n = self.world() as f32;
            buf.iter_mut().for_each(|x| *x /= n);
        }
        Ok(())
    }
}

/// An error unless `whole` is `world` × `part` (the reduce-scatter and all-gather shapes).
pub fn check_chunks(what: &str, whole: usize, part: usize, world: usize) -> Result<()> {
    if whole != part * world {
        return Err(JanusError::Invalid(format!(
            "{what}: {whole} values are not {world} ranks × {part}"
        )));
    }
    Ok(())
}

/// An error unless `root` is a rank of the group.
pub fn check_root(root: usize, world: usize) -> Result<()> {
    if root >= world {
        return Err(JanusError::Invalid(format!(
            "broadcast from rank {root} in a world of {world}"
        )));
    }
    Ok(())
}
