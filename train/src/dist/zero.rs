//! ZeRO stage 1: each rank keeps AdamW's moments only for its contiguous 1/N shard of
//! the flattened parameters ([`super::flat::Layout::shard`]). A step is reduce-scatter
//! of the gradients (each rank gets the summed gradients of its shard) → the global
//! norm from the shards' squared sums → AdamW on the shard, the clipping as its
//! gradient scale → all-gather of the updated shards into every rank's full weights.
//! A checkpoint's moments are gathered whole ([`Zero1::whole_moments`]) and cut back
//! into shards on restore (FP32 and BF16 moments; 8-bit ones are blocked per
//! parameter and are not cut).
//!
//! The shard's pieces (its part of each parameter it overlaps) are FP32 `Var`s that
//! the training core's fused [`AdamW`] updates, so every moment format works sharded.

use super::collective::Collective;
use super::flat::{Layout, present};
use crate::core::optim::moments::Parts;
use crate::core::optim::{AdamW, AdamWConfig, MomentFormat, Moments, clip_scale};
use crate::janus::error::{JanusError, Result};
use candle_core::{Device, Tensor, Var};
use std::ops::Range;
use std::sync::Arc;

/// One rank's optimiser under ZeRO-1.
pub struct Zero1 {
    comm: Arc<dyn Collective>,
    layout: Layout,
    /// This rank's shard of the flat vector, and ceil(total / world).
    shard: Range<usize>,
    chunk: usize,
    /// The parameter each piece belongs to and its range in the flat vector.
    pieces: Vec<(usize, Range<usize>)>,
    /// Each piece's FP32 master values (1-D), which `adamw` updates.
    masters: Vec<Var>,
    adamw: AdamW,
}

/// The pieces' masters read from `vars`.
fn masters(layout: &Layout, pieces: &[(usize, Range<usize>)], vars: &[Var]) -> Result<Vec<Var>> {
    pieces
        .iter()
        .map(|(i, piece)| {
            let start = piece.start - layout.offsets[*i];
            let values = vars[*i]
                .as_tensor()
                .flatten_all()?
                .narrow(0, start, piece.len())?;
            Ok(Var::from_tensor(&values.copy()?)?)
        })
        .collect()
}

fn unsupported(format: MomentFormat) -> Result<()> {
    if format == MomentFormat::Int8 {
        return Err(JanusError::Invalid(
            "ZeRO-1 checkpoints hold f32 or bf16 moments, not int8 (optimizer.moments)".into(),
        ));
    }
    Ok(())
}

impl Zero1 {
    /// Zero moments for this rank's shard of `vars` (which every rank holds alike).
    pub fn new(comm: Arc<dyn Collective>, config: AdamWConfig, vars: &[Var]) -> Result<Zero1> {
        let layout = Layout::of(vars);
        let (rank, world) = (comm.rank(), comm.world());
        let shard = layout.shard(rank, world);
        let pieces: Vec<(usize, Range<usize>)> = (0..vars.len())
            .filter_map(|i| {
                let r = layout.range(i);
                let piece = r.start.max(shard.start)..r.end.min(shard.end);
                (piece.start < piece.end).then_some((i, piece))
            })
            .collect();
        let masters = masters(&layout, &pieces, vars)?;
        Ok(Zero1 {
            adamw: AdamW::new(config, &masters)?,
            chunk: layout.chunk(world),
            comm,
            layout,
            shard,
            pieces,
            masters,
        })
    }

    /// Bytes of optimiser state this rank holds.
    pub fn state_bytes(&self) -> usize {
        self.adamw.state_bytes()
    }

    pub fn config(&self) -> AdamWConfig {
        self.adamw.config
    }

    pub fn step_count(&self) -> u64 {
        self.adamw.step
    }

    /// One step from this rank's (unreduced) `grads`; `vars` end up updated alike on
    /// every rank. Returns the global gradient norm before clipping.
    pub fn step(
        &mut self,
        vars: &[Var],
        grads: &[Option<Tensor>],
        decays: &[bool],
        lr: f64,
        clip_norm: f64,
    ) -> Result<f64> {
        let world = self.comm.world();
        let present = present(&*self.comm, grads)?;
        let flat = self.layout.flatten(grads, self.chunk * world)?;
        let mut mine = vec![0.0f32; self.chunk];
        self.comm.reduce_scatter(&flat, &mut mine)?;
        let squares: f64 = mine.iter().map(|&g| f64::from(g) * f64::from(g)).sum();
        let mut squares = [squares as f32];
        self.comm.all_reduce_sum(&mut squares)?;
        let norm = f64::from(squares[0]).sqrt();
        let device = vars.first().map_or(Device::Cpu, |v| v.device().clone());
        let piece_grads = self
            .pieces
            .iter()
            .map(|(i, piece)| {
                let local = piece.start - self.shard.start..piece.end - self.shard.start;
                present[*i]
                    .then(|| Tensor::from_slice(&mine[local], piece.len(), &device))
                    .transpose()
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        let piece_decays: Vec<bool> = self.pieces.iter().map(|(i, _)| decays[*i]).collect();
        self.adamw.update(
            &self.masters,
            &piece_grads,
            &piece_decays,
            lr,
            clip_scale(norm, clip_norm),
        )?;
        let mut updated = vec![0.0f32; self.chunk];
        for ((_, piece), master) in self.pieces.iter().zip(&self.masters) {
            let at = piece.start - self.shard.start;
            updated[at..at + piece.len()].copy_from_slice(&master.as_tensor().to_vec1::<f32>()?);
        }
        let mut whole = vec![0.0f32; self.chunk * world];
        self.comm.all_gather(&updated, &mut whole)?;
        self.layout.set_vars(vars, &whole)?;
        Ok(norm)
    }

    /// Every parameter's whole moments, gathered from the ranks' shards (a collective:
    /// every rank calls it, and each gets them all).
    pub fn whole_moments(&self, vars: &[Var]) -> Result<Vec<Moments>> {
        let format = self.adamw.config.moments;
        unsupported(format)?;
        let (mut m, mut v) = (vec![0.0f32; self.chunk], vec![0.0f32; self.chunk]);
        for ((_, piece), moments) in self.pieces.iter().zip(&self.adamw.moments) {
            let at = piece.start - self.shard.start..piece.end - self.shard.start;
            let (pm, pv) = moments.to_f32();
            m[at.clone()].copy_from_slice(&pm);
            v[at].copy_from_slice(&pv);
        }
        let world = self.comm.world();
        let (mut whole_m, mut whole_v) =
            (vec![0.0; self.chunk * world], vec![0.0; self.chunk * world]);
        self.comm.all_gather(&m, &mut whole_m)?;
        self.comm.all_gather(&v, &mut whole_v)?;
        (0..vars.len())
            .map(|i| {
                let r = self.layout.range(i);
                let parts = Parts::Floats(whole_m[r.clone()].to_vec(), whole_v[r.clone()].to_vec());
                Moments::from_parts(format, r.len(), parts).map_err(JanusError::Invalid)
            })
            .collect()
    }

    /// Take up restored weights (`vars`), whole `moments` and the step count.
    pub fn restore(&mut self, vars: &[Var], moments: &[Moments], step: u64) -> Result<()> {
        let format = self.adamw.config.moments;
        unsupported(format)?;
        self.masters = masters(&self.layout, &self.pieces, vars)?;
        self.adamw.moments = self
            .pieces
            .iter()
            .map(|(i, piece)| {
                let start = piece.start - self.layout.offsets[*i];
                let (m, v) = moments[*i].to_f32();
                let cut = |x: Vec<f32>| x[start..start + piece.len()].to_vec();
                Moments::from_parts(format, piece.len(), Parts::Floats(cut(m), cut(v)))
                    .map_err(JanusError::Invalid)
            })
            .collect::<Result<_>>()?;
        self.adamw.step = step;
        Ok(())
    }
}
