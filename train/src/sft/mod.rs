//! Supervised fine-tuning of Janus-Pro as ReasonGen-R1 does it: the rationale, then
//! the image, in one sequence (`../shared/research/paper.md` §2).
//!
//! - [`config`]: the training settings (steps, batch, schedule, loss weights, CFG
//!   dropout, the no-rationale baseline).
//! - [`data`]: samples to token sequences (the paper's template, prompts drawn from the
//!   augmented families, unconditional rows), the seeded data order and length-bucketed
//!   micro-batches.
//! - [`loss`]: the weighted cross-entropy with the head chosen by the next token.
//! - [`params`]: FP32 master weights as candle `Var`s and the model built over them in
//!   the compute dtype; saving in DeepSeek's layout.
//! - [`optim`]: AdamW, the warm-up + cosine schedule and global-norm clipping.
//! - [`state`]: a resumable checkpoint (weights, moments, step, data position, metrics).
//! - [`trainer`]: the loop: micro-batches, accumulation, one optimiser step, metrics.
//! - [`report`]: `metrics.jsonl` and the PNG curves.

pub mod config;
pub mod data;
pub mod loss;
pub mod optim;
pub mod params;
pub mod report;
pub mod state;
pub mod trainer;

pub use config::{LossWeights, SftConfig, Unconditional};
pub use trainer::{StepMetrics, Trainer};
