//! One SFT run: draw the samples of a length group of steps, build their sequences,
//! group them by length into steps and cut each step into length-bucketed
//! micro-batches; each micro-batch's loss is scaled by 1 / micro-batches (as
//! ReasonGen-R1) and the step taken by the training core's
//! [`Stepper`](crate::core::stepper::Stepper) at the schedule's learning rate.
//!
//! Data-parallel, every rank draws the same steps and builds the same micro-batches;
//! rank r takes micro-batches r, r + N, …, each scaled by 1 / all micro-batches, and
//! the gradients are summed over the ranks: the update is the one-rank update of the
//! whole step. The metrics are summed over the ranks too.

use super::config::SftConfig;
use super::data::{Builder, Draws, Example, Order, Position, group_by_length};
use super::loss::loss;
use crate::core::batch::{Batch, Sequence, Weights, buckets};
use crate::core::harness;
use crate::core::lora::split;
use crate::core::optim::{AdamWConfig, learning_rate};
use crate::core::params::Params;
use crate::core::report::Plot;
use crate::core::stepper::Stepper;
use crate::dist::{Replica, share};
use crate::janus::config::JanusConfig;
use crate::janus::error::{JanusError, Result};
use crate::janus::text::TextTokenizer;
use candle_core::DType;
use schemas::sft_sample::SftSample;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
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

/// The curves of an SFT run.
pub const PLOTS: &[Plot<StepMetrics>] = &[
    Plot {
        file: "loss.png",
        title: "SFT loss",
        y: "loss",
        series: &[
            ("weighted loss", |m| Some(m.loss)),
            ("text CE", |m| m.text_loss),
            ("image CE", |m| m.image_loss),
        ],
    },
    Plot {
        file: "lr.png",
        title: "Learning rate",
        y: "lr",
        series: &[("lr", |m| Some(m.lr))],
    },
    Plot {
        file: "grad_norm.png",
        title: "Gradient norm (before clipping)",
        y: "norm",
        series: &[("grad norm", |m| Some(m.grad_norm))],
    },
];

/// What a checkpoint keeps of an SFT run beside the weights and the optimiser.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Optimiser steps done.
    pub step: usize,
    /// Where the data stream is drawn from next; mid length group, where that group was
    /// drawn from (it is drawn again and its taken steps skipped).
    pub position: Position,
    pub metrics: Vec<StepMetrics>,
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
        Trainer::replicated(config, model_config, text, params, examples, dtype, None)
    }

    /// As [`Trainer::new`], one rank of the data-parallel `replica` (`None`: alone).
    pub fn replicated(
        config: SftConfig,
        model_config: JanusConfig,
        text: TextTokenizer,
        params: Params,
        examples: Vec<Example>,
        dtype: DType,
        replica: Option<Replica>,
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
            moments: config.optimizer.moments,
            seed: config.seed,
        };
        let start = Position {
            epoch: 0,
            cursor: 0,
        };
        let order = Order::new(config.seed, examples.len(), start.clone());
        let (params, frozen) = split(&model_config, params, config.lora.clone(), dtype)?;
        let stepper = Stepper::replicated(model_config, params, adamw, dtype, replica)?
            .with_checkpointing(config.activation_checkpointing)
            .with_frozen(frozen);
        Ok(Trainer {
            stepper,
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
        self.stepper.params()
    }

    pub fn text(&self) -> &TextTokenizer {
        &self.text
    }

    /// The model as it stands, and the text tokenizer.
    pub fn model(&mut self) -> Result<(&crate::janus::model::Janus, &TextTokenizer)> {
        Ok((self.stepper.model()?, &self.text))
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
        let all = buckets(sequences, self.config.batch_size);
        let (rank, world) = self.stepper.rank_and_world();
        let batches = share(&all, rank, world)
            .map(|rows| Batch::new(rows, pad, weights, &device))
            .collect::<Result<Vec<_>>>()?;
        let c = &self.config;
        let lr = learning_rate(self.step, c.steps, c.lr, c.warmup_ratio, c.min_lr_ratio);
        let scale = 1.0 / all.len().max(1) as f64;
        let (mut total, mut text, mut image) = (0.0, (0.0, 0), (0.0, 0));
        let grad_norm = self
            .stepper
            .update(&batches, lr, c.clip_norm, |model, batch| {
                let l = loss(model, batch, scale)?;
                total += l.loss.to_scalar::<f32>()? as f64;
                text = (text.0 + l.text_sum, text.1 + l.text_labels);
                image = (image.0 + l.image_sum, image.1 + l.image_labels);
                Ok(l.loss)
            })?;
        let mut sums = [
            total,
            text.0,
            text.1 as f64,
            image.0,
            image.1 as f64,
            batches.iter().map(|b| b.tokens).sum::<usize>() as f64,
            batches.iter().map(|b| b.positions).sum::<usize>() as f64,
        ];
        self.stepper.sum_over_ranks(&mut sums)?;
        let [
            total,
            text_sum,
            text_n,
            image_sum,
            image_n,
            tokens,
            positions,
        ] = sums;
        let (text, image) = ((text_sum, text_n as usize), (image_sum, image_n as usize));
        let (tokens, positions) = (tokens as usize, positions as usize);
        self.step += 1;
        if !total.is_finite() {
            return Err(JanusError::Invalid(format!(
                "the loss is {total} at step {}",
                self.step
            )));
        }
        let seconds = start.elapsed().as_secs_f64();
        let mean = |(sum, n): (f64, usize)| (n > 0).then(|| sum / n as f64);
        let metrics = StepMetrics {
            step: self.step,
            loss: total,
            text_loss: mean(text),
            image_loss: mean(image),
            lr,
            grad_norm,
            tokens,
            positions,
            seconds,
            tokens_per_s: tokens as f64 / seconds.max(1e-9),
        };
        self.metrics.push(metrics.clone());
        Ok(metrics)
    }

    /// Write the model folder (FP32 weights in DeepSeek's layout), with the text
    /// tokenizer `tokenizer` copied in.
    pub fn save_model(
        &self,
        dir: &std::path::Path,
        tokenizer: &std::path::Path,
        kept: Option<&Params>,
    ) -> Result<()> {
        self.stepper.save_model(dir, tokenizer, kept)
    }
}

impl harness::Trainer for Trainer {
    type Metrics = StepMetrics;
    type Progress = Progress;

    fn step(&self) -> usize {
        self.step
    }

    fn train_step(&mut self) -> Result<StepMetrics> {
        Trainer::train_step(self)
    }

    fn log_line(&self, m: &StepMetrics) -> String {
        let part =
            |name: &str, v: Option<f64>| v.map_or(String::new(), |v| format!(", {name} {v:.3}"));
        format!(
            "step {}/{}: loss {:.4}{}{}, lr {:.2e}, grad norm {:.3}, {:.0} tokens/s, padding {:.1}%",
            m.step,
            self.config.steps,
            m.loss,
            part("text CE", m.text_loss),
            part("image CE", m.image_loss),
            m.lr,
            m.grad_norm,
            m.tokens_per_s,
            100.0 * (1.0 - m.tokens as f64 / m.positions.max(1) as f64)
        )
    }

    fn stepper(&self) -> &Stepper {
        &self.stepper
    }

    fn stepper_mut(&mut self) -> &mut Stepper {
        &mut self.stepper
    }

    fn progress(&self) -> Progress {
        Progress {
            step: self.step,
            // Mid-group, the group is drawn again on restore and its taken steps skipped.
            position: if self.pending.is_empty() {
                self.order.position().clone()
            } else {
                self.group_start.clone()
            },
            metrics: self.metrics.clone(),
        }
    }

    fn resume(&mut self, progress: Progress) -> Result<()> {
        self.step = progress.step;
        self.metrics = progress.metrics;
        self.order = Order::new(self.config.seed, self.examples.len(), progress.position);
        self.pending.clear();
        let taken = self.step % self.config.length_group;
        if taken > 0 {
            self.draw_group()?;
            self.pending.drain(..taken);
        }
        Ok(())
    }
}
