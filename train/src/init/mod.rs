//! A fresh Janus-Pro model folder: seeded random weights for a config ([`weights`]),
//! a byte-level BPE text tokenizer learned from a corpus with Janus-Pro's special
//! tokens ([`text`]), written as `config.json`, `model.safetensors` (DeepSeek's layout)
//! and `tokenizer.json`, which [`crate::janus::load`] reads back.

pub mod text;
pub mod weights;

use crate::janus::JanusConfig;
use crate::janus::error::{JanusError, Result};
use crate::janus::load::write_folder;
use std::path::Path;

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
    write_folder(
        dir,
        &config,
        |path| {
            candle_core::safetensors::save(&tensors, path)
                .map_err(|e| JanusError::checkpoint(path, e))
        },
        |path| {
            tokenizer
                .save(path, false)
                .map_err(|e| JanusError::Tokenizer {
                    path: path.to_path_buf(),
                    message: e.to_string(),
                })
        },
    )?;
    Ok(config)
}
