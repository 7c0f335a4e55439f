//! Models and training: the patch VQ of the shapes world now; Janus-Pro and VQ-16 in
//! candle, generation, SFT, GRPO, rewards, the optimiser and checkpoints as they land;
//! and the stages that use a model.

pub mod init;
pub mod janus;
pub mod patch_vq;
pub mod patch_vq_eval;
pub mod sft;
pub mod stages;
pub mod tokenizer;
