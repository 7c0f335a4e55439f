//! The settings of an SFT run (`model.sft`'s config). Defaults are ReasonGen-R1's
//! release settings (paper.md §2.3–2.4) where it has them: AdamW lr 1e-5, β (0.9,
//! 0.95), weight decay 0.01, clip 1.0, 5 % linear warm-up then cosine to 0, loss
//! weights text 2 / image 1 / `<begin_of_image>` 0, CFG dropout 0.1, 1280 tokens.

use crate::core::optim::OptimizerOptions;
use crate::dist::DataParallel;
use crate::held_out::EvalOptions;
use crate::janus::load::DeviceChoice;
use crate::janus::lora::LoraConfig;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Per-token loss weights over the response.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LossWeights {
    /// Rationale tokens, `<end_of_image>` and EOS.
    #[serde(default = "two")]
    pub text: f64,
    /// Image codes.
    #[serde(default = "one")]
    pub image: f64,
    /// The `<begin_of_image>` label (0: the model is never taught to emit it).
    #[serde(default)]
    pub begin_of_image: f64,
}

impl Default for LossWeights {
    fn default() -> Self {
        LossWeights {
            text: 2.0,
            image: 1.0,
            begin_of_image: 0.0,
        }
    }
}

pub use crate::janus::generate::Unconditional;

/// Config of `model.sft`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SftConfig {
    /// Optimiser steps.
    #[serde(default = "default_steps")]
    pub steps: usize,
    /// Sequences per forward (micro-batch).
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Micro-batches per optimiser step (global batch = batch_size × grad_accum).
    #[serde(default = "one_usize")]
    pub grad_accum: usize,
    /// The samples of this many steps are drawn together and grouped by length into
    /// steps (1: each step alone), so that little of the compute goes to padding.
    #[serde(default = "default_length_group")]
    pub length_group: usize,
    /// Peak learning rate.
    #[serde(default = "default_lr")]
    pub lr: f64,
    /// Linear warm-up over this fraction of the steps.
    #[serde(default = "default_warmup")]
    pub warmup_ratio: f64,
    /// The cosine ends at lr × this.
    #[serde(default)]
    pub min_lr_ratio: f64,
    /// Decoupled weight decay (not applied to norms and biases).
    #[serde(default = "default_weight_decay")]
    pub weight_decay: f64,
    #[serde(default = "default_beta1")]
    pub beta1: f64,
    #[serde(default = "default_beta2")]
    pub beta2: f64,
    #[serde(default = "default_eps")]
    pub eps: f64,
    /// AdamW's moment storage (`{ moments = "f32" | "bf16" | "int8" }`); left out of
    /// the canonical config at its default, so run keys stay as they were.
    #[serde(default, skip_serializing_if = "OptimizerOptions::is_default")]
    pub optimizer: OptimizerOptions,
    /// Recompute each decoder layer's activations in the backward instead of keeping
    /// them (less memory, one more forward per step).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub activation_checkpointing: bool,
    /// Train LoRA adapters on the decoder's projections, every other weight frozen;
    /// the model written has them merged in (and apart, under `adapter/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lora: Option<LoraConfig>,
    /// Data parallelism (`{ backend = "mpi", ranks = 2, zero = 1 }`): each rank takes
    /// its share of every step's micro-batches; left out of the canonical config at one
    /// rank, so run keys stay as they were.
    #[serde(default, skip_serializing_if = "DataParallel::is_single")]
    pub data_parallel: DataParallel,
    /// Global gradient-norm clip (0: none).
    #[serde(default = "one")]
    pub clip_norm: f64,
    /// Seed of the data order, the prompt draws and the CFG dropout.
    #[serde(default)]
    pub seed: u64,
    /// Fraction of samples trained unconditionally.
    #[serde(default = "default_cfg_dropout")]
    pub cfg_dropout: f64,
    #[serde(default)]
    pub unconditional: Unconditional,
    #[serde(default)]
    pub loss_weights: LossWeights,
    /// Write the rationale before the image (ReasonGen-R1); false: the image right after
    /// the prompt (the Janus-Pro baseline).
    #[serde(default = "yes")]
    pub rationale: bool,
    /// The user turn, `{}` standing for the prompt. Default: ReasonGen-R1's
    /// `"{}. Output a richly detailed prompt: "`, or `"{}."` without a rationale.
    #[serde(default)]
    pub template: Option<String>,
    /// Sequences longer than this are left out (counted in `skipped_long`).
    #[serde(default = "default_max_length")]
    pub max_length: usize,
    /// Save a resumable checkpoint every this many steps (0: never).
    #[serde(default = "default_checkpoint_every")]
    pub checkpoint_every: usize,
    /// Log a line every this many steps.
    #[serde(default = "default_log_every")]
    pub log_every: usize,
    #[serde(default)]
    pub eval: EvalOptions,
    /// `auto` (a GPU when built with `cuda` and one is present), `cpu` or `cuda`.
    #[serde(default)]
    pub device: DeviceChoice,
    /// CPU threads the training asks the run for (default: all); the training keeps to
    /// the threads it is granted. One thread is bitwise reproducible (candle's threaded
    /// CPU matmul is not), and lets two small trainings share two cores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<u32>,
}

fn one() -> f64 {
    1.0
}
fn two() -> f64 {
    2.0
}
fn one_usize() -> usize {
    1
}
fn yes() -> bool {
    true
}
fn default_steps() -> usize {
    100
}
fn default_batch() -> usize {
    8
}
fn default_lr() -> f64 {
    1e-5
}
fn default_warmup() -> f64 {
    0.05
}
fn default_weight_decay() -> f64 {
    0.01
}
fn default_beta1() -> f64 {
    0.9
}
fn default_beta2() -> f64 {
    0.95
}
fn default_eps() -> f64 {
    1e-8
}
fn default_cfg_dropout() -> f64 {
    0.1
}
fn default_max_length() -> usize {
    1280
}
fn default_length_group() -> usize {
    16
}
fn default_checkpoint_every() -> usize {
    50
}
fn default_log_every() -> usize {
    10
}

impl Default for SftConfig {
    fn default() -> Self {
        serde_json::from_value(serde_json::json!({})).expect("every key has a default")
    }
}

impl SftConfig {
    /// The user turn's template.
    pub fn template(&self) -> String {
        self.template.clone().unwrap_or_else(|| {
            if self.rationale {
                "{}. Output a richly detailed prompt: ".into()
            } else {
                "{}.".into()
            }
        })
    }

    /// Settings that cannot train.
    pub fn check(&self) -> Result<(), String> {
        if let Some(lora) = &self.lora {
            lora.check()?;
        }
        if self.steps == 0 || self.batch_size == 0 || self.grad_accum == 0 || self.length_group == 0
        {
            return Err("steps, batch_size, grad_accum and length_group must be at least 1".into());
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(format!("lr {} must be positive", self.lr));
        }
        for (name, v) in [
            ("warmup_ratio", self.warmup_ratio),
            ("min_lr_ratio", self.min_lr_ratio),
            ("cfg_dropout", self.cfg_dropout),
            ("beta1", self.beta1),
            ("beta2", self.beta2),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!("{name} {v} must be within [0, 1]"));
            }
        }
        if self.beta1 >= 1.0 || self.beta2 >= 1.0 {
            return Err("beta1 and beta2 must be below 1".into());
        }
        for (name, v) in [
            ("weight_decay", self.weight_decay),
            ("eps", self.eps),
            ("clip_norm", self.clip_norm),
            ("loss_weights.text", self.loss_weights.text),
            ("loss_weights.image", self.loss_weights.image),
            (
                "loss_weights.begin_of_image",
                self.loss_weights.begin_of_image,
            ),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!("{name} {v} must be a non-negative number"));
            }
        }
        self.data_parallel.check()?;
        if !self.template().contains("{}") {
            return Err(format!(
                "template {:?} has no `{{}}` for the prompt",
                self.template()
            ));
        }
        if self.max_length < 4 {
            return Err(format!("max_length {} is too short", self.max_length));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::optim::MomentFormat;
    use serde_json::json;

    /// The canonical config (what the run key hashes) of a run that does not set the
    /// option is what it was before the option existed.
    #[test]
    fn the_optimizer_option_is_left_out_of_the_canonical_config_at_its_default() {
        let canonical = serde_json::to_value(SftConfig::default()).unwrap();
        assert!(canonical.get("optimizer").is_none(), "{canonical}");
        let explicit: SftConfig =
            serde_json::from_value(json!({"optimizer": {"moments": "f32"}})).unwrap();
        assert_eq!(serde_json::to_value(explicit).unwrap(), canonical);
        let bf16: SftConfig =
            serde_json::from_value(json!({"optimizer": {"moments": "bf16"}})).unwrap();
        assert_eq!(bf16.optimizer.moments, MomentFormat::Bf16);
        assert_eq!(
            serde_json::to_value(bf16).unwrap()["optimizer"],
            json!({"moments": "bf16"})
        );
        let bad = serde_json::from_value::<SftConfig>(json!({"optimizer": {"moments": "fp8"}}))
            .unwrap_err()
            .to_string();
        assert!(bad.contains("fp8") && bad.contains("int8"), "{bad}");
    }

    #[test]
    fn defaults_are_the_papers_and_bad_values_are_named() {
        let c = SftConfig::default();
        assert_eq!(
            (c.lr, c.beta1, c.beta2, c.weight_decay),
            (1e-5, 0.9, 0.95, 0.01)
        );
        assert_eq!(c.loss_weights, LossWeights::default());
        assert_eq!((c.cfg_dropout, c.max_length), (0.1, 1280));
        assert_eq!(c.template(), "{}. Output a richly detailed prompt: ");
        assert!(c.check().is_ok());
        let bad = SftConfig {
            cfg_dropout: 1.5,
            ..c.clone()
        };
        assert!(bad.check().unwrap_err().contains("cfg_dropout"));
        let plain = SftConfig {
            rationale: false,
            ..c
        };
        assert_eq!(plain.template(), "{}.");
    }
}
