//! Supervised fine-tuning of Janus-Pro as ReasonGen-R1 does it: the rationale, then
//! the image, in one sequence (`../shared/research/paper.md` §2).
//!
//! - [`config`]: the training settings (steps, batch, schedule, loss weights, CFG
//!   dropout, the no-rationale baseline).
//! - [`data`]: samples to token sequences (the paper's template, prompts drawn from the
//!   augmented families, unconditional rows), the seeded data order and length groups.
//! - [`loss`]: the weighted cross-entropy of [`crate::core::logprobs`].
//! - [`trainer`]: the run: its steps through the training core, its checkpoint
//!   progress and curves.

pub mod config;
pub mod data;
pub mod loss;
pub mod trainer;

pub use config::{LossWeights, SftConfig, Unconditional};
pub use trainer::{StepMetrics, Trainer};
