//! The optimiser step both trainers take: the parameters (FP32 masters), AdamW's state
//! and the model built over them in the compute dtype. [`Stepper::update`] is the whole
//! step: for each micro-batch, forward and loss (the trainer's closure) → backward →
//! FP32 gradients accumulated; then the global norm clipped and one AdamW update.

use super::checkpoint;
use super::optim::{AdamW, AdamWConfig, clip};
use super::params::Params;
use crate::janus::config::JanusConfig;
use crate::janus::error::{JanusError, Result};
use crate::janus::load::write_folder;
use crate::janus::model::Janus;
use candle_core::{DType, Device, Tensor};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::path::Path;

/// The model's parameters and their optimiser.
pub struct Stepper {
    model_config: JanusConfig,
    params: Params,
    decays: Vec<bool>,
    optimizer: AdamW,
    dtype: DType,
    /// The FP32 model sees the updates in place and is built once; a BF16 one is
    /// rebuilt after each update.
    model: Option<Janus>,
}

impl Stepper {
    /// Zero optimiser state over `params`; the computation is in `dtype`.
    pub fn new(
        model_config: JanusConfig,
        params: Params,
        adamw: AdamWConfig,
        dtype: DType,
    ) -> Result<Stepper> {
        let optimizer = AdamW::new(adamw, &params.vars)?;
        let decays = (0..params.vars.len()).map(|i| params.decays(i)).collect();
        Ok(Stepper {
            model_config,
            params,
            decays,
            optimizer,
            dtype,
            model: None,
        })
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

    /// The model over the current parameters (built on first use after an update).
    pub fn model(&mut self) -> Result<&Janus> {
        if self.model.is_none() {
            self.model = Some(self.params.model(&self.model_config, self.dtype)?);
        }
        Ok(self.model.as_ref().expect("built above"))
    }

    /// One optimiser step. `loss(model, batch)` is each micro-batch's loss, already
    /// scaled as the trainer wants it summed (e.g. by 1 / micro-batches); the gradients
    /// are accumulated in FP32, their global norm clipped to `clip_norm`, and AdamW
    /// updates at `lr`. Returns the norm before clipping.
    pub fn update<B>(
        &mut self,
        batches: &[B],
        lr: f64,
        clip_norm: f64,
        mut loss: impl FnMut(&Janus, &B) -> Result<Tensor>,
    ) -> Result<f64> {
        let mut grads: Vec<Option<Tensor>> = vec![None; self.params.vars.len()];
        for batch in batches {
            let store = loss(self.model()?, batch)?.backward()?;
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
        let norm = clip(&mut grads, clip_norm)?;
        self.optimizer
            .update(&self.params.vars, &grads, &self.decays, lr)?;
        if self.dtype != DType::F32 {
            self.model = None;
        }
        Ok(norm)
    }

    /// Write a checkpoint of the parameters, the optimiser and `progress` into `dir`.
    pub fn save_checkpoint<P: Serialize>(&self, dir: &Path, progress: &P) -> Result<()> {
        checkpoint::save(dir, &self.params, &self.optimizer, progress)
    }

    /// Take up the checkpoint in `dir`; returns the trainer's progress.
    pub fn restore<P: DeserializeOwned>(&mut self, dir: &Path) -> Result<P> {
        let restored = checkpoint::load::<P>(dir, &self.device())?;
        if restored.params.names != self.params.names {
            return Err(JanusError::Invalid(
                "the training checkpoint holds other parameters than the model".into(),
            ));
        }
        self.params = restored.params;
        self.optimizer.m = restored.m;
        self.optimizer.v = restored.v;
        self.optimizer.step = restored.optimizer_step;
        self.model = None;
        Ok(restored.progress)
    }

    /// Write the model folder: `config.json`, `model.safetensors` (FP32, DeepSeek's
    /// layout, with the untrained weights `kept`) and the text tokenizer `tokenizer`
    /// copied in.
    pub fn save_model(&self, dir: &Path, tokenizer: &Path, kept: Option<&Params>) -> Result<()> {
        write_folder(
            dir,
            &self.model_config,
            |path| self.params.save(path, DType::F32, kept),
            |path| {
                std::fs::copy(tokenizer, path)
                    .map(drop)
                    .map_err(|e| JanusError::io(tokenizer, e))
            },
        )
    }
}
