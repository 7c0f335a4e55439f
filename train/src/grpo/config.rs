//! The settings of a GRPO run (`model.grpo`'s config). Defaults are ReasonGen-R1's
//! release settings (paper.md §3.3–3.4): groups of 8, 32 informative prompts a step in
//! 2 PPO mini-batches, AdamW lr 5e-6 constant, β (0.9, 0.999), weight decay 0.01,
//! clip 1.0, ratio clip 0.2, no KL, the adaptive entropy term (targets 2.0 text / 7.0
//! image nats, α within ±5e-3, ψ's Adam at 5e-5), dynamic sampling up to 8 generation
//! batches, the RL template, 448 rationale tokens, no guidance in rollouts.

use super::reward::RewardConfig;
use crate::core::optim::OptimizerOptions;
use crate::dist::DataParallel;
use crate::held_out::EvalOptions;
use crate::janus::generate::Unconditional;
use crate::janus::load::DeviceChoice;
use crate::janus::lora::LoraConfig;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The adaptive entropy term of one modality.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EntropyTarget {
    /// The entropy (nats, over the head's vocabulary) α steers toward.
    pub target: f64,
}

/// The adaptive entropy coefficients (paper.md §3.3).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EntropyConfig {
    /// Off: α = 0 throughout.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Rationale tokens, `<begin_of_image>` and EOS (ReasonGen-R1: 2.0 over 102,400).
    #[serde(default = "default_text_target")]
    pub text: EntropyTarget,
    /// Image codes (ReasonGen-R1: 7.0 over 16,384 codes; a target above ln(codes) is
    /// unreachable, so set it from the vocabulary for small models).
    #[serde(default = "default_image_target")]
    pub image: EntropyTarget,
    /// |α| at most.
    #[serde(default = "default_alpha_max")]
    pub alpha_max: f64,
    /// ψ's Adam learning rate.
    #[serde(default = "default_alpha_lr")]
    pub lr: f64,
}

impl Default for EntropyConfig {
    fn default() -> Self {
        serde_json::from_value(serde_json::json!({})).expect("every key has a default")
    }
}

/// Config of `model.grpo`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GrpoConfig {
    /// RL steps.
    #[serde(default = "default_steps")]
    pub steps: usize,
    /// Informative prompts (groups) a step trains on; also the prompts of each
    /// generation batch.
    #[serde(default = "default_prompts_per_step")]
    pub prompts_per_step: usize,
    /// Trajectories per prompt (the group).
    #[serde(default = "default_group")]
    pub group_size: usize,
    /// Optimiser steps per RL step, each over its share of the groups.
    #[serde(default = "default_mini_batches")]
    pub ppo_mini_batches: usize,
    /// Sequences per forward; each mini-batch's loss is its micro-batches' token means
    /// divided by their count.
    #[serde(default = "default_micro_batch")]
    pub micro_batch: usize,
    /// Generation batches a step may draw before it trains on what it has (dynamic
    /// sampling keeps groups whose rewards differ).
    #[serde(default = "default_max_gen_batches")]
    pub max_gen_batches: usize,
    /// Drop groups whose rewards are all equal (dynamic sampling).
    #[serde(default = "yes")]
    pub dynamic_sampling: bool,
    /// Constant learning rate.
    #[serde(default = "default_lr")]
    pub lr: f64,
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
    /// Data-parallel ranks (`{ ranks = 2, zero = 1 }`); left out of the canonical
    /// config at one rank, so run keys stay as they were.
    #[serde(default, skip_serializing_if = "DataParallel::is_single")]
    pub data_parallel: DataParallel,
    #[serde(default = "default_weight_decay")]
    pub weight_decay: f64,
    /// Global gradient-norm clip (0: none).
    #[serde(default = "one")]
    pub clip_norm: f64,
    /// PPO's ratio clip ε.
    #[serde(default = "default_clip_ratio")]
    pub clip_ratio: f64,
    /// β of the KL term against the frozen starting model (k3); 0 skips the reference.
    #[serde(default)]
    pub kl_coef: f64,
    #[serde(default)]
    pub entropy: EntropyConfig,
    /// Write the rationale before the image (ReasonGen-R1); false: Janus-Pro's plain
    /// mode, the same GRPO on the image alone.
    #[serde(default = "yes")]
    pub rationale: bool,
    /// The user turn, `{}` standing for the prompt. Default: ReasonGen-R1's
    /// `"A photo of {}. Output a richly detailed prompt: "`, or `"A photo of {}."`
    /// without a rationale.
    #[serde(default)]
    pub template: Option<String>,
    /// Rationale tokens at most, the one that ends it included.
    #[serde(default = "default_max_rationale")]
    pub max_rationale_tokens: usize,
    /// Guidance on the image codes during rollouts (ReasonGen-R1: 1, none).
    #[serde(default = "one")]
    pub cfg_weight: f64,
    /// The unconditional twin when `cfg_weight` ≠ 1.
    #[serde(default)]
    pub unconditional: Unconditional,
    /// Rows generated together.
    #[serde(default = "default_rollout_batch")]
    pub rollout_batch: usize,
    /// Score each rollout chunk while the next is generated.
    #[serde(default = "yes")]
    pub overlap: bool,
    pub reward: RewardConfig,
    /// The run fails when more than this fraction of a step's trajectories have no
    /// reward (the judge failed after its retries).
    #[serde(default = "default_max_failed")]
    pub max_failed_fraction: f64,
    /// Seed of the prompt order and every rollout.
    #[serde(default)]
    pub seed: u64,
    /// Held-out shapes-GenEval (with `eval_prompts` bound): every `eval.every` steps and
    /// after the last.
    #[serde(default)]
    pub eval: EvalOptions,
    /// Save a resumable checkpoint every this many steps (0: never).
    #[serde(default = "default_checkpoint_every")]
    pub checkpoint_every: usize,
    #[serde(default = "one_usize")]
    pub log_every: usize,
    #[serde(default)]
    pub device: DeviceChoice,
    /// CPU threads the training asks the run for (default: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<u32>,
}

fn yes() -> bool {
    true
}
fn one() -> f64 {
    1.0
}
fn one_usize() -> usize {
    1
}
fn default_text_target() -> EntropyTarget {
    EntropyTarget { target: 2.0 }
}
fn default_image_target() -> EntropyTarget {
    EntropyTarget { target: 7.0 }
}
fn default_alpha_max() -> f64 {
    5e-3
}
fn default_alpha_lr() -> f64 {
    5e-5
}
fn default_steps() -> usize {
    400
}
fn default_prompts_per_step() -> usize {
    32
}
fn default_group() -> usize {
    8
}
fn default_mini_batches() -> usize {
    2
}
fn default_micro_batch() -> usize {
    2
}
fn default_max_gen_batches() -> usize {
    8
}
fn default_lr() -> f64 {
    5e-6
}
fn default_beta1() -> f64 {
    0.9
}
fn default_beta2() -> f64 {
    0.999
}
fn default_eps() -> f64 {
    1e-8
}
fn default_weight_decay() -> f64 {
    0.01
}
fn default_clip_ratio() -> f64 {
    0.2
}
fn default_max_rationale() -> usize {
    448
}
fn default_rollout_batch() -> usize {
    16
}
fn default_max_failed() -> f64 {
    0.05
}
fn default_checkpoint_every() -> usize {
    25
}

impl GrpoConfig {
    /// The user turn.
    pub fn template(&self) -> String {
        self.template.clone().unwrap_or_else(|| {
            if self.rationale {
                "A photo of {}. Output a richly detailed prompt: ".into()
            } else {
                "A photo of {}.".into()
            }
        })
    }

    pub fn check(&self) -> Result<(), String> {
        if let Some(lora) = &self.lora {
            lora.check()?;
        }
        for (key, v) in [
            ("steps", self.steps),
            ("prompts_per_step", self.prompts_per_step),
            ("group_size", self.group_size),
            ("ppo_mini_batches", self.ppo_mini_batches),
            ("micro_batch", self.micro_batch),
            ("max_gen_batches", self.max_gen_batches),
            ("rollout_batch", self.rollout_batch),
        ] {
            if v == 0 {
                return Err(format!("{key} must be at least 1"));
            }
        }
        if self.ppo_mini_batches > self.prompts_per_step {
            return Err("ppo_mini_batches must not exceed prompts_per_step".into());
        }
        if !(self.lr >= 0.0 && self.clip_ratio > 0.0 && self.kl_coef >= 0.0) {
            return Err("lr and kl_coef must be ≥ 0, clip_ratio > 0".into());
        }
        if !(0.0..=1.0).contains(&self.max_failed_fraction) {
            return Err("max_failed_fraction must be in [0, 1]".into());
        }
        if !self.template().contains("{}") {
            return Err(format!("template {:?} has no `{{}}`", self.template()));
        }
        if self.rationale && self.max_rationale_tokens == 0 {
            return Err("max_rationale_tokens must be at least 1".into());
        }
        self.data_parallel.check()?;
        self.reward.check()
    }
}
