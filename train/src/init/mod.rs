//! A fresh Janus-Pro model folder: seeded random weights for a config ([`weights`]),
//! a byte-level BPE text tokenizer learned from a corpus with Janus-Pro's special
//! tokens ([`text`]), written as `config.json`, `model.safetensors` (DeepSeek's layout)
//! and `tokenizer.json`, which [`crate::janus::load`] reads back.

pub mod text;
pub mod weights;

use crate::janus::JanusConfig;
use crate::janus::error::{JanusError, Result};
use std::path::Path;

/// Weights file of a model folder written here.
pub const WEIGHTS_FILE: &str = "model.safetensors";

/// Write a model folder: `config` with the text vocabulary set to the tokenizer's,
/// random weights of standard deviation `std` from `seed`, and the tokenizer.
pub fn write_model(
    dir: &Path,
    config: &JanusConfig,
    tokenizer: &tokenizers::Tokenizer,
    std: f64,
    seed: u64,
) -> Result<JanusConfig> {
    let mut config = config.clone();
    config.language.vocab_size = tokenizer.get_vocab_size(true);
    config
        .check()
        .map_err(|m| JanusError::config(&dir.join("config.json"), m))?;
    let tensors = weights::random(&config, std, seed)?;
    let path = dir.join(WEIGHTS_FILE);
    candle_core::safetensors::save(&tensors, &path)
        .map_err(|e| JanusError::checkpoint(&path, e))?;
    let path = dir.join("config.json");
    let json = serde_json::to_vec_pretty(&config.to_json())
        .map_err(|e| JanusError::config(&path, e.to_string()))?;
    std::fs::write(&path, json).map_err(|e| JanusError::io(&path, e))?;
    let path = dir.join("tokenizer.json");
    tokenizer
        .save(&path, false)
        .map_err(|e| JanusError::Tokenizer {
            path: path.clone(),
            message: e.to_string(),
        })?;
    Ok(config)
}
