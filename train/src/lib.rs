//! Models and training: Janus-Pro and VQ-16 in candle, the shapes world's patch VQ,
//! generation; one training core ([`core`]) that SFT ([`sft`]) and GRPO ([`grpo`])
//! share, with data parallelism across ranks ([`dist`]); the
//! held-out evaluation during training ([`held_out`]); and the stages that use a model.

pub mod core;
pub mod dist;
pub mod grpo;
pub mod held_out;
pub mod init;
pub mod janus;
pub mod patch_vq;
pub mod patch_vq_eval;
pub mod sft;
pub mod stages;
pub mod tokenizer;
