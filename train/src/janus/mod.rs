//! Janus-Pro's generation path in candle: the language model (a Llama of our own,
//! [`llama`], its hot ops fused with an analytic backward in [`fused`]) with its text
//! head and the image-generation modules ([`model`]), VQ-16 ([`vq16`]), weights in
//! DeepSeek's and transformers' layouts ([`checkpoint`], [`keys`], [`convert`]), the
//! config ([`config`]), the text tokenizer ([`text`]), sampling and generation with
//! classifier-free guidance ([`sampling`], [`generate`]), prompts to pictures
//! ([`load`], [`draw`]), parity with transformers' Janus on the committed goldens
//! ([`parity`]), and training's memory options: activation checkpointing
//! ([`checkpointing`]) and LoRA ([`lora`]), both on [`detour`] nodes.
//!
//! The reference is DeepSeek's `janus/models` and transformers' `models/janus`;
//! `scripts/janus_parity.py` builds the fixtures the parity tests compare against.

pub mod cache;
pub mod checkpoint;
pub mod checkpointing;
pub mod config;
pub mod convert;
pub mod detour;
pub mod draw;
pub mod error;
pub mod fused;
pub mod generate;
pub mod keys;
pub mod llama;
pub mod load;
pub mod lora;
pub mod model;
pub mod parity;
pub mod sampling;
pub mod text;
pub mod vq16;

pub use cache::{KvCache, Padding};
pub use config::{JanusConfig, LlamaConfig};
pub use error::JanusError;
pub use llama::Ops;
pub use model::Janus;
