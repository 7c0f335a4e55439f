//! The optimiser step both trainers take: the parameters (FP32 masters), AdamW's state
//! and the model built over them in the compute dtype. [`Stepper::update`] is the whole
//! step: for each micro-batch, forward and loss (the trainer's closure) → backward →
//! FP32 gradients accumulated (the first micro-batch's gradient is the accumulator, so
//! no zero-filled buffer is made); then one fused AdamW update with the global-norm
//! clipping as its gradient scale.
//!
//! A data-parallel replica ([`Replica`]) sums the ranks' gradients before the norm
//! (each rank's loss is scaled as its share of the whole step's), or with ZeRO-1 hands
//! the step to [`Zero1`]; only the root rank writes checkpoints, which under ZeRO-1
//! hold the moments gathered whole.

use super::checkpoint;
use super::lora::{self, Frozen};
use super::memory::{Memory, peak_rss_bytes};
use super::optim::{AdamW, AdamWConfig, check_format, clip_scale, global_norm};
use super::params::Params;
use crate::dist::Replica;
use crate::dist::flat::{all_reduce_grads, broadcast_vars};
use crate::dist::zero::Zero1;
use crate::janus::checkpointing::Checkpointing;
use crate::janus::config::JanusConfig;
use crate::janus::error::{JanusError, Result};
use crate::janus::load::write_folder;
use crate::janus::model::Janus;
use candle_core::{DType, Device, Tensor};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::path::Path;

/// AdamW over the whole model, or over this rank's shard (ZeRO-1).
enum Optimizer {
    Whole(AdamW),
    Sharded(Zero1),
}

/// The model's parameters and their optimiser.
pub struct Stepper {
    model_config: JanusConfig,
    params: Params,
    decays: Vec<bool>,
    optimizer: Optimizer,
    replica: Option<Replica>,
    dtype: DType,
    /// The FP32 model sees the updates in place and is built once; a BF16 one is
    /// rebuilt after each update.
    model: Option<Janus>,
    /// Activation checkpointing of the decoder layers: the parameter gradients the
    /// recomputations leave, merged into each backward's.
    checkpointing: Option<Checkpointing>,
    /// With LoRA, the frozen base the parameters (the adapters) are added to.
    frozen: Option<Frozen>,
    /// Seconds the last update spent in the norm and AdamW.
    optimizer_seconds: f64,
}

impl Stepper {
    /// Zero optimiser state over `params`; the computation is in `dtype`.
    pub fn new(
        model_config: JanusConfig,
        params: Params,
        adamw: AdamWConfig,
        dtype: DType,
    ) -> Result<Stepper> {
        Stepper::replicated(model_config, params, adamw, dtype, None)
    }

    /// As [`Stepper::new`], one rank of the data-parallel `replica` (`None`: alone).
    /// Every rank starts from rank 0's parameters.
    pub fn replicated(
        model_config: JanusConfig,
        params: Params,
        adamw: AdamWConfig,
        dtype: DType,
        replica: Option<Replica>,
    ) -> Result<Stepper> {
        let optimizer = match &replica {
            Some(r) => {
                broadcast_vars(&*r.comm, &params.vars)?;
                if r.zero1 {
                    Optimizer::Sharded(Zero1::new(r.comm.clone(), adamw, &params.vars)?)
                } else {
                    Optimizer::Whole(AdamW::new(adamw, &params.vars)?)
                }
            }
            None => Optimizer::Whole(AdamW::new(adamw, &params.vars)?),
        };
        let decays = (0..params.vars.len()).map(|i| params.decays(i)).collect();
        Ok(Stepper {
            model_config,
            params,
            decays,
            optimizer,
            replica,
            dtype,
            model: None,
            checkpointing: None,
            frozen: None,
            optimizer_seconds: 0.0,
        })
    }

    /// The parameters being the LoRA adapters of `frozen` when given (both from
    /// [`lora::split`]).
    pub fn with_frozen(mut self, frozen: Option<Frozen>) -> Stepper {
        self.frozen = frozen;
        self.model = None;
        self
    }

    /// The frozen base of a LoRA run.
    pub fn frozen(&self) -> Option<&Frozen> {
        self.frozen.as_ref()
    }

    /// With `on`, the model checkpoints its decoder layers: their activations are
    /// recomputed in the backward instead of kept ([`Checkpointing`]).
    pub fn with_checkpointing(mut self, on: bool) -> Stepper {
        self.checkpointing = on.then(Checkpointing::new);
        self.model = None;
        self
    }

    /// This rank and the world size ((0, 1) alone).
    pub fn rank_and_world(&self) -> (usize, usize) {
        self.replica
            .as_ref()
            .map_or((0, 1), |r| (r.comm.rank(), r.comm.world()))
    }

    /// Whether this rank writes checkpoints and outputs (rank 0, or alone).
    pub fn is_root(&self) -> bool {
        self.rank_and_world().0 == 0
    }

    /// Wait for every rank (nothing to wait for alone).
    pub fn barrier(&self) -> Result<()> {
        self.replica.as_ref().map_or(Ok(()), |r| r.comm.barrier())
    }

    /// `values` summed over the ranks in FP32 (left as they are alone): the trainers'
    /// metrics.
    pub fn sum_over_ranks(&self, values: &mut [f64]) -> Result<()> {
        let Some(r) = &self.replica else {
            return Ok(());
        };
        let mut sums: Vec<f32> = values.iter().map(|&v| v as f32).collect();
        r.comm.all_reduce_sum(&mut sums)?;
        for (v, s) in values.iter_mut().zip(sums) {
            *v = f64::from(s);
        }
        Ok(())
    }

    pub fn params(&self) -> &Params {
        &self.params
    }

    pub fn model_config(&self) -> &JanusConfig {
        &self.model_config
    }

    pub fn device(&self) -> Device {
        self.params
            .vars
            .first()
            .map_or(Device::Cpu, |v| v.device().clone())
    }

    /// The parameters' and the optimiser's bytes, and the process's peak resident set.
    pub fn memory(&self) -> Memory {
        Memory {
            parameter_bytes: self.params.count() * std::mem::size_of::<f32>(),
            trainable_parameters: self.params.count(),
            gradient_bytes: self.params.count() * std::mem::size_of::<f32>(),
            frozen_bytes: self.frozen.as_ref().map_or(0, Frozen::bytes),
            optimizer_state_bytes: match &self.optimizer {
                Optimizer::Whole(adamw) => adamw.state_bytes(),
                Optimizer::Sharded(zero) => zero.state_bytes(),
            },
            peak_rss_bytes: peak_rss_bytes(),
        }
    }

    /// Seconds the last [`Stepper::update`] spent after the backward passes: the
    /// gradient exchange of a replica, the norm and AdamW.
    pub fn optimizer_seconds(&self) -> f64 {
        self.optimizer_seconds
    }

    /// The model over the current parameters (built on first use after an update).
    pub fn model(&mut self) -> Result<&Janus> {
        if self.model.is_none() {
            let mut model =
                self.params
                    .model_with(&self.model_config, self.dtype, self.frozen.as_ref())?;
            model.set_checkpointing(self.checkpointing.clone());
            self.model = Some(model);
        }
        Ok(self.model.as_ref().expect("built above"))
    }

    /// One optimiser step. `loss(model, batch)` is each micro-batch's loss, already
    /// scaled as the trainer wants it summed (e.g. by 1 / micro-batches); the gradients
    /// are accumulated in FP32 (and summed over the ranks of a replica), their global
    /// norm clipped to `clip_norm` (as the update's gradient scale), and AdamW updates
    /// at `lr`. Returns the norm before clipping. A rank of a replica may have no
    /// `batches`; it takes part in the step all the same.
    pub fn update<B>(
        &mut self,
        batches: &[B],
        lr: f64,
        clip_norm: f64,
        mut loss: impl FnMut(&Janus, &B) -> Result<Tensor>,
    ) -> Result<f64> {
        let mut grads: Vec<Option<Tensor>> = vec![None; self.params.vars.len()];
        for batch in batches {
            let mut store = loss(self.model()?, batch)?.backward()?;
            if let Some(checkpointing) = &self.checkpointing {
                checkpointing.drain_into(&mut store)?;
            }
            for (slot, var) in grads.iter_mut().zip(&self.params.vars) {
                if let Some(g) = store.get(var.as_tensor()) {
                    let g = g.to_dtype(DType::F32)?;
                    *slot = Some(match slot.take() {
                        Some(sum) => (sum + g)?,
                        None => g,
                    });
                }
            }
        }
        let vars = &self.params.vars;
        let start = std::time::Instant::now();
        let norm = match &mut self.optimizer {
            Optimizer::Whole(adamw) => {
                if let Some(r) = &self.replica {
                    grads = all_reduce_grads(&*r.comm, vars, &grads)?;
                }
                let norm = global_norm(&grads)?;
                adamw.update(vars, &grads, &self.decays, lr, clip_scale(norm, clip_norm))?;
                norm
            }
            Optimizer::Sharded(zero) => zero.step(vars, &grads, &self.decays, lr, clip_norm)?,
        };
        self.optimizer_seconds = start.elapsed().as_secs_f64();
        if self.dtype != DType::F32 {
            self.model = None;
        }
        Ok(norm)
    }

    /// Write a checkpoint of the parameters, the optimiser and `progress` into `dir`
    /// (under ZeRO-1 the other ranks call [`Stepper::whole_optimizer`] meanwhile).
    pub fn save_checkpoint<P: Serialize>(&self, dir: &Path, progress: &P) -> Result<()> {
        match (&self.optimizer, self.whole_optimizer()?) {
            (_, Some(gathered)) => checkpoint::save(dir, &self.params, &gathered, progress),
            (Optimizer::Whole(adamw), None) => checkpoint::save(dir, &self.params, adamw, progress),
            (Optimizer::Sharded(_), None) => unreachable!("a sharded optimiser is gathered"),
        }
    }

    /// Under ZeRO-1, the whole optimiser gathered from every rank's shard (a
    /// collective: the ranks that write no checkpoint call it while the root writes
    /// one); `None` when this rank holds it whole.
    pub fn whole_optimizer(&self) -> Result<Option<AdamW>> {
        let Optimizer::Sharded(zero) = &self.optimizer else {
            return Ok(None);
        };
        Ok(Some(AdamW {
            config: zero.config(),
            moments: zero.whole_moments(&self.params.vars)?,
            step: zero.step_count(),
        }))
    }

    /// Take up the checkpoint in `dir`; returns the trainer's progress.
    pub fn restore<P: DeserializeOwned>(&mut self, dir: &Path) -> Result<P> {
        let restored = checkpoint::load::<P>(dir, &self.device())?;
        if restored.params.names != self.params.names {
            return Err(JanusError::Invalid(
                "the training checkpoint holds other parameters than the model".into(),
            ));
        }
        let configured = match &self.optimizer {
            Optimizer::Whole(adamw) => adamw.config.moments,
            Optimizer::Sharded(zero) => zero.config().moments,
        };
        check_format(restored.moments_format, configured)?;
        self.params = restored.params;
        match &mut self.optimizer {
            Optimizer::Whole(adamw) => {
                adamw.moments = restored.moments;
                adamw.step = restored.optimizer_step;
            }
            Optimizer::Sharded(zero) => zero.restore(
                &self.params.vars,
                &restored.moments,
                restored.optimizer_step,
            )?,
        }
        self.model = None;
        Ok(restored.progress)
    }

    /// Write the model folder: `config.json`, `model.safetensors` (FP32, DeepSeek's
    /// layout, with the untrained weights `kept`) and the text tokenizer `tokenizer`
    /// copied in. With LoRA the weights are the base with the adapters merged in, and
    /// the adapters are also written apart, in PEFT's layout, under `adapter/`.
    pub fn save_model(&self, dir: &Path, tokenizer: &Path, kept: Option<&Params>) -> Result<()> {
        write_folder(
            dir,
            &self.model_config,
            |path| match &self.frozen {
                Some(frozen) => frozen.save_merged(path, &self.params, kept),
                None => self.params.save(path, DType::F32, kept),
            },
            |path| {
                std::fs::copy(tokenizer, path)
                    .map(drop)
                    .map_err(|e| JanusError::io(tokenizer, e))
            },
        )?;
        match &self.frozen {
            Some(frozen) => {
                lora::save_adapters(&dir.join(lora::ADAPTER_DIR), &self.params, &frozen.lora)
            }
            None => Ok(()),
        }
    }
}
