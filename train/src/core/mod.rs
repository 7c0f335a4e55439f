//! The training core SFT and GRPO share: token sequences and micro-batches
//! ([`batch`]), per-token log-probabilities and entropies ([`logprobs`]), the
//! parameters with their FP32 masters ([`params`]), AdamW, the schedule and clipping
//! ([`optim`]), the optimiser step over a loss closure ([`stepper`]), checkpoints as
//! files ([`checkpoint`]), the memory a run reports ([`memory`]), the loop with resume,
//! logging, evaluation and checkpoints ([`harness`]), LoRA's frozen base and adapter files ([`lora`]), and the metrics and curves a run leaves ([`report`]), also as
//! TensorBoard event files ([`tensorboard`]).

pub mod batch;
pub mod checkpoint;
pub mod harness;
pub mod logprobs;
pub mod lora;
pub mod memory;
pub mod optim;
pub mod params;
pub mod report;
pub mod stepper;
pub mod tensorboard;
