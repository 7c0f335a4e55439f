//! GRPO as ReasonGen-R1 runs it (paper.md §3): rollouts of a rationale and an image per
//! prompt in groups ([`rollout`]), a reward per image ([`reward`]: the VLM judge over
//! HTTP, the exact shapes judge, or a weighted sum), group-normalised advantages
//! ([`advantage`]), the PPO-clip loss with the per-modality adaptive entropy term and
//! an optional KL ([`loss`], [`entropy`]), dynamic sampling and the run ([`trainer`]),
//! configured by [`config`]. The optimiser step, checkpoints and the loop are the
//! training core's ([`crate::core`]), as SFT's.

pub mod advantage;
pub mod config;
pub mod entropy;
pub mod loss;
pub mod ranks;
pub mod reward;
pub mod rollout;
pub mod trainer;

pub use config::GrpoConfig;
pub use trainer::{StepMetrics, Trainer};
