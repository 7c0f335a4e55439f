//! Models and training: Janus-Pro and VQ-16 in candle, the tiny presets and the patch
//! VQ of the shapes world, generation, SFT, GRPO, rewards, the optimiser, checkpoints,
//! and the stages that use a model.
//!
//! Empty until the model issues land; the crate exists so that the workspace has its
//! final shape and dependencies point the right way from the start.
