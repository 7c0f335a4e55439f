//! The training loop of one SFT run: draw the samples of a length group of steps,
//! build their sequences, group them by length into steps and cut each step into
//! length-bucketed micro-batches ([`Trainer`]); accumulate the gradients
//! of each micro-batch's loss (scaled by 1 / micro-batches, as ReasonGen-R1), clip the
//! global norm, and take one AdamW step at the schedule's learning rate ([`Stepper`],
//! which the benchmark drives with synthetic batches).

use super::config::SftConfig;
use super::data::{
    Batch, Builder, Draws, Example, Order, Position, Sequence, Weights, buckets, group_by_length,
};
use super::loss::loss;
use super::optim::{AdamW, AdamWConfig, clip, learning_rate};
use super::params::Params;
use super::state::{self, Progress};
use crate::janus::config::JanusConfig;
use crate::janus::error::{JanusError, Result};
use crate::janus::model::Janus;
use crate::janus::text::TextTokenizer;
use candle_core::{DType, Device, Tensor};
use schemas::sft_sample::SftSample;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::path::Path;
use std::time::Instant;

/// What one optimiser step did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepMetrics {
    /// 1-based.
    pub step: usize,
    /// The weighted loss that was minimised.
    pub loss: f64,
    /// Mean unweighted cross-entropy of the text head's and the image head's labels.
    pub text_loss: Option<f64>,
    pub image_loss: Option<f64>,
    pub lr: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    /// Tokens (not padding) and positions computed (rows × width, summed).
    pub tokens: usize,
    pub positions: usize,
    pub seconds: f64,
    pub tokens_per_s: f64,
}

/// The samples of an `sft_sample` table that can train: tokenised, their codes checked
/// against the image vocabulary; those with no codes are an error naming the row, those
/// longer than `max_length` (with their longest prompt) are left out and counted.
pub fn examples(
    rows: impl IntoIterator<Item = SftSample>,
    text: &TextTokenizer,
    config: &SftConfig,
    image_vocab: usize,
) -> Result<(Vec<Example>, usize)> {
    let template = config.template();
    let mut out = Vec::new();
    let mut skipped = 0;
    for row in rows {
        let codes = row.image_codes.as_ref().ok_or_else(|| {
            JanusError::Invalid(format!(
                "sample `{}` has no image codes (tokenize the images first)",
                row.id
            ))
        })?;
        if let Some(bad) = codes.iter().find(|&&c| c as usize >= image_vocab) {
            return Err(JanusError::Invalid(format!(
                "sample `{}`: image code {bad} is outside the model's {image_vocab} codes",
                row.id
            )));
        }
        let rationale_ids = if config.rationale {
            text.encode(row.rationale.trim())?
        } else {
            Vec::new()
        };
        let codes: Vec<u32> = codes.iter().map(|&c| u32::from(c)).collect();
        let Some(example) = Example::new(row.id.clone(), &row.prompts, rationale_ids, codes) else {
            return Err(JanusError::Invalid(format!(
                "sample `{}` has no prompt in any family",
                row.id
            )));
        };
        let longest_prompt = example
            .candidates()
            .iter()
            .map(|p| text.prompt_ids(&template.replace("{}", p), !config.rationale))
            .map(|ids| ids.map(|ids| ids.len()))
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .max()
            .unwrap_or(0);
        // + <begin_of_image>, <end_of_image> and EOS.
        let length = longest_prompt + example.rationale_ids.len() + example.codes.len() + 3;
        if length > config.max_length {
            skipped += 1;
        } else {
            out.push(example);
        }
    }
    Ok((out, skipped))
}

/// What one optimiser step did, before the bookkeeping.
pub struct Update {
    /// The weighted loss that was minimised.
    pub loss: f64,
    pub text_sum: f64,
    pub text_labels: usize,
    pub image_sum: f64,
    pub image_labels: usize,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    pub tokens: usize,
    pub positions: usize,
}

/// The model's parameters and their optimiser: one step on given micro-batches.
pub struct Stepper {
    model_config: JanusConfig,
    pub(crate) params: Params,
    decays: Vec<bool>,
    pub(crate) optimizer: AdamW,
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

    pub fn device(&self) -> Device {
        self.params
            .vars
            .first()
            .map_or(Device::Cpu, |v| v.device().clone())
    }

    fn model(&mut self) -> Result<&Janus> {
        if self.model.is_none() {
            self.model = Some(self.params.model(&self.model_config, self.dtype)?);
        }
        Ok(self.model.as_ref().expect("built above"))
    }

    /// Accumulate the gradients of every micro-batch's loss (each scaled by
    /// 1 / micro-batches), clip their global norm to `clip_norm` and update at `lr`.
    pub fn update(&mut self, batches: &[Batch], lr: f64, clip_norm: f64) -> Result<Update> {
        let scale = 1.0 / batches.len().max(1) as f64;
        let mut grads: Vec<Option<Tensor>> = vec![None; self.params.vars.len()];
        let mut out = Update {
            loss: 0.0,
            text_sum: 0.0,
            text_labels: 0,
            image_sum: 0.0,
            image_labels: 0,
            grad_norm: 0.0,
            tokens: 0,
            positions: 0,
        };
        for batch in batches {
            let parts = loss(self.model()?, batch, scale)?;
            out.loss += parts.loss.to_scalar::<f32>()? as f64;
            out.tokens += batch.tokens;
            out.positions += batch.positions;
            out.text_sum += parts.text_sum;
            out.text_labels += parts.text_labels;
            out.image_sum += parts.image_sum;
            out.image_labels += parts.image_labels;
            let store = parts.loss.backward()?;
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
        out.grad_norm = clip(&mut grads, clip_norm)?;
        self.optimizer
            .update(&self.params.vars, &grads, &self.decays, lr)?;
        if self.dtype != DType::F32 {
            self.model = None;
        }
        Ok(out)
    }
}

/// One SFT run in progress.
pub struct Trainer {
    config: SftConfig,
    text: TextTokenizer,
    stepper: Stepper,
    examples: Vec<Example>,
    order: Order,
    /// The steps of the current length group not yet taken, and where in the data
    /// stream the group was drawn from (what a checkpoint records while steps remain).
    pending: VecDeque<Vec<Sequence>>,
    group_start: Position,
    step: usize,
    metrics: Vec<StepMetrics>,
}

impl Trainer {
    /// A run from step 0; the computation is in `dtype` (FP32 masters either way).
    pub fn new(
        config: SftConfig,
        model_config: JanusConfig,
        text: TextTokenizer,
        params: Params,
        examples: Vec<Example>,
        dtype: DType,
    ) -> Result<Trainer> {
        config.check().map_err(JanusError::Invalid)?;
        if examples.is_empty() {
            return Err(JanusError::Invalid("no samples to train on".into()));
        }
        let adamw = AdamWConfig {
            beta1: config.beta1,
            beta2: config.beta2,
            eps: config.eps,
            weight_decay: config.weight_decay,
        };
        let start = Position {
            epoch: 0,
            cursor: 0,
        };
        let order = Order::new(config.seed, examples.len(), start.clone());
        Ok(Trainer {
            stepper: Stepper::new(model_config, params, adamw, dtype)?,
            config,
            text,
            examples,
            order,
            pending: VecDeque::new(),
            group_start: start,
            step: 0,
            metrics: Vec::new(),
        })
    }

    pub fn step(&self) -> usize {
        self.step
    }

    pub fn metrics(&self) -> &[StepMetrics] {
        &self.metrics
    }

    pub fn params(&self) -> &Params {
        &self.stepper.params
    }

    pub fn text(&self) -> &TextTokenizer {
        &self.text
    }

    /// The sequences of the next step's samples, from the current length group (a new
    /// one drawn when it is used up).
    fn next_sequences(&mut self) -> Result<Vec<Sequence>> {
        if self.pending.is_empty() {
            self.draw_group()?;
        }
        Ok(self.pending.pop_front().unwrap_or_default())
    }

    /// Draw the samples of `length_group` steps and group them by length into steps.
    fn draw_group(&mut self) -> Result<()> {
        let builder = Builder {
            text: &self.text,
            template: self.config.template(),
            rationale: self.config.rationale,
            unconditional: self.config.unconditional,
        };
        let draws = Draws {
            seed: self.config.seed,
            cfg_dropout: self.config.cfg_dropout,
        };
        self.group_start = self.order.position().clone();
        let per_step = self.config.batch_size * self.config.grad_accum;
        let rows = (0..per_step * self.config.length_group)
            .map(|_| {
                let (i, epoch) = self.order.next_sample();
                let example = &self.examples[i];
                let (prompt, dropped) = draws.of(example, i, epoch);
                builder.build(example, &prompt, dropped)
            })
            .collect::<Result<Vec<_>>>()?;
        let key = (self.config.seed, &self.group_start, "steps");
        self.pending = group_by_length(rows, per_step, &key).into();
        Ok(())
    }

    /// One optimiser step.
    pub fn train_step(&mut self) -> Result<StepMetrics> {
        let start = Instant::now();
        let sequences = self.next_sequences()?;
        let w = self.config.loss_weights;
        let weights = Weights {
            text: w.text as f32,
            image: w.image as f32,
            begin_of_image: w.begin_of_image as f32,
        };
        let pad = self.text.special.pad;
        let device = self.stepper.device();
        let batches = buckets(sequences, self.config.batch_size)
            .iter()
            .map(|rows| Batch::new(rows, pad, weights, &device))
            .collect::<Result<Vec<_>>>()?;
        let c = &self.config;
        let lr = learning_rate(self.step, c.steps, c.lr, c.warmup_ratio, c.min_lr_ratio);
        let u = self.stepper.update(&batches, lr, c.clip_norm)?;
        self.step += 1;
        let seconds = start.elapsed().as_secs_f64();
        let mean = |sum: f64, n: usize| (n > 0).then(|| sum / n as f64);
        let metrics = StepMetrics {
            step: self.step,
            loss: u.loss,
            text_loss: mean(u.text_sum, u.text_labels),
            image_loss: mean(u.image_sum, u.image_labels),
            lr,
            grad_norm: u.grad_norm,
            tokens: u.tokens,
            positions: u.positions,
            seconds,
            tokens_per_s: u.tokens as f64 / seconds.max(1e-9),
        };
        self.metrics.push(metrics.clone());
        Ok(metrics)
    }

    /// A resumable checkpoint of the run as it stands ([`state`]).
    pub fn checkpoint(&self) -> Result<Vec<u8>> {
        state::encode(
            &self.stepper.params,
            &self.stepper.optimizer,
            &Progress {
                step: self.step,
                // Mid-group, the group is drawn again on restore and its taken steps
                // skipped.
                position: if self.pending.is_empty() {
                    self.order.position().clone()
                } else {
                    self.group_start.clone()
                },
                metrics: self.metrics.clone(),
                names: self.stepper.params.names.clone(),
            },
        )
    }

    /// Continue from a checkpoint of this run.
    pub fn restore(&mut self, bytes: &[u8]) -> Result<()> {
        let restored = state::decode(bytes, &self.stepper.device())?;
        if restored.progress.names != self.stepper.params.names {
            return Err(JanusError::Invalid(
                "the training checkpoint holds other parameters than the model".into(),
            ));
        }
        let s = &mut self.stepper;
        s.params = restored.params;
        s.optimizer.m = restored.m;
        s.optimizer.v = restored.v;
        s.optimizer.step = restored.optimizer_step;
        s.model = None;
        self.step = restored.progress.step;
        self.metrics = restored.progress.metrics;
        self.order = Order::new(
            self.config.seed,
            self.examples.len(),
            restored.progress.position,
        );
        self.pending.clear();
        let taken = self.step % self.config.length_group;
        if taken > 0 {
            self.draw_group()?;
            self.pending.drain(..taken);
        }
        Ok(())
    }

    /// Write the model folder: `config.json`, `model.safetensors` (FP32, DeepSeek's
    /// layout) and the text tokenizer `tokenizer` copied in.
    pub fn save_model(&self, dir: &Path, tokenizer: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| JanusError::Io {
            path: dir.to_path_buf(),
            source: e,
        })?;
        let config = dir.join("config.json");
        let json = serde_json::to_vec_pretty(&self.stepper.model_config.to_json())
            .map_err(|e| JanusError::Invalid(e.to_string()))?;
        std::fs::write(&config, json).map_err(|e| JanusError::Io {
            path: config.clone(),
            source: e,
        })?;
        std::fs::copy(tokenizer, dir.join("tokenizer.json")).map_err(|e| JanusError::Io {
            path: tokenizer.to_path_buf(),
            source: e,
        })?;
        self.stepper
            .params
            .save(&dir.join("model.safetensors"), DType::F32)
    }
}
