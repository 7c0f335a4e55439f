//! OpenAI CLIP in candle, for inference: a Hugging Face `CLIPModel` folder
//! (`config.json`, `tokenizer.json`, `model.safetensors` with transformers' tensor
//! names) loaded on any candle device, texts and images encoded to normalised
//! embeddings, and their cosine similarities. [`config`] reads the folder's config,
//! [`model`] holds the towers, [`preprocess`] is CLIPImageProcessor's preparation.
//! Tested against golden outputs of an independent numpy forward
//! (`scripts/make_tiny_clip.py`) on tiny random weights.

pub mod config;
pub mod model;
pub mod preprocess;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use config::ClipConfig;
use image::RgbImage;
use model::{ClipModel, normalize};
use std::path::{Path, PathBuf};
use tokenizers::{Tokenizer, TruncationParams};

/// The files a CLIP folder must hold.
pub const FILES: [&str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];

/// Why a CLIP folder could not be loaded or used.
#[derive(Debug, thiserror::Error)]
pub enum ClipError {
    #[error(
        "{0}: not found (a CLIP folder holds config.json, tokenizer.json and model.safetensors, as Hugging Face's CLIPModel repositories do)"
    )]
    Missing(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Config { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Tokenizer { path: PathBuf, message: String },
    #[error("{path}: {message} (the weights must use CLIPModel's tensor names and shapes)")]
    Weights { path: PathBuf, message: String },
    #[error("CLIP forward: {0}")]
    Compute(#[from] candle_core::Error),
    #[error("image {index}: {message}")]
    Image { index: usize, message: String },
}

impl ClipError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> ClipError {
        if source.kind() == std::io::ErrorKind::NotFound {
            ClipError::Missing(path.to_path_buf())
        } else {
            ClipError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    }
}

/// Where transformers pools a text: with the legacy `eos_token_id` 2 (OpenAI's own
/// configs, from before transformers#24773) at the largest id, the end token being
/// the last of CLIP's vocabulary; otherwise at the first `eos_token_id` (position 0
/// where there is none, as `argmax` of all zeros gives). The first of equal maxima,
/// as torch's `argmax`. (Newer transformers decides the legacy case by the largest id
/// being 49407 instead; on OpenAI's checkpoints both agree.)
pub fn pool_position(ids: &[u32], eos_token_id: u32) -> usize {
    if eos_token_id == 2 {
        let max = ids.iter().copied().max().unwrap_or(0);
        ids.iter().position(|&i| i == max).unwrap_or(0)
    } else {
        ids.iter().position(|&i| i == eos_token_id).unwrap_or(0)
    }
}

/// A loaded CLIP.
pub struct Clip {
    config: ClipConfig,
    tokenizer: Tokenizer,
    tokenizer_path: PathBuf,
    model: ClipModel,
    device: Device,
}

impl Clip {
    /// Load the CLIP folder `dir` onto `device` (computing in float32); an error names
    /// the file and what is wrong with it.
    pub fn load(dir: &Path, device: &Device) -> Result<Clip, ClipError> {
        let [config_path, tokenizer_path, weights_path] = FILES.map(|f| dir.join(f));
        let config = ClipConfig::from_file(&config_path)?;
        if !tokenizer_path.is_file() {
            return Err(ClipError::Missing(tokenizer_path));
        }
        let mut tokenizer =
            Tokenizer::from_file(&tokenizer_path).map_err(|e| ClipError::Tokenizer {
                path: tokenizer_path.clone(),
                message: e.to_string(),
            })?;
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: config.text.max_position_embeddings,
                ..TruncationParams::default()
            }))
            .map_err(|e| ClipError::Tokenizer {
                path: tokenizer_path.clone(),
                message: e.to_string(),
            })?;
        if !weights_path.is_file() {
            return Err(ClipError::Missing(weights_path));
        }
        let weights_error = |e: candle_core::Error| ClipError::Weights {
            path: weights_path.clone(),
            message: e.to_string(),
        };
        // SAFETY: the file is mapped read-only while the model is built, and the
        // tensors are copied out of the map (to float32) before it is dropped; a user
        // rewriting the folder meanwhile is outside what the judge supports.
        let vb =
            unsafe { VarBuilder::from_mmaped_safetensors(&[&weights_path], DType::F32, device) }
                .map_err(weights_error)?;
        let model = ClipModel::new(&config, vb).map_err(weights_error)?;
        Ok(Clip {
            config,
            tokenizer,
            tokenizer_path,
            model,
            device: device.clone(),
        })
    }

    pub fn config(&self) -> &ClipConfig {
        &self.config
    }

    /// `logit_scale` as stored.
    pub fn logit_scale(&self) -> f32 {
        self.model.logit_scale
    }

    /// The token ids of `text` (start and end tokens included, truncated to the
    /// model's positions).
    pub fn token_ids(&self, text: &str) -> Result<Vec<u32>, ClipError> {
        let encoding = self
            .tokenizer
            .encode(text, true)
            .map_err(|e| ClipError::Tokenizer {
                path: self.tokenizer_path.clone(),
                message: format!("encoding {text:?}: {e}"),
            })?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Normalised embeddings of `texts` (texts × projection).
    pub fn text_embeddings(&self, texts: &[&str]) -> Result<Tensor, ClipError> {
        let ids = texts
            .iter()
            .map(|t| self.token_ids(t))
            .collect::<Result<Vec<_>, _>>()?;
        let longest = ids.iter().map(Vec::len).max().unwrap_or(0);
        // Rows are padded after their end token; the causal mask keeps the padding out
        // of every position up to it.
        let padded: Vec<u32> = ids
            .iter()
            .flat_map(|r| {
                r.iter()
                    .copied()
                    .chain(std::iter::repeat_n(0, longest - r.len()))
            })
            .collect();
        let pool: Vec<usize> = ids
            .iter()
            .map(|r| pool_position(r, self.config.text.eos_token_id))
            .collect();
        let batch = Tensor::from_vec(padded, (ids.len(), longest), &self.device)?;
        Ok(normalize(&self.model.text.forward(&batch, &pool)?)?)
    }

    /// Normalised embeddings of crops already prepared by [`preprocess::resized_crop`]
    /// (crops × projection).
    pub fn crop_embeddings(&self, crops: &[RgbImage]) -> Result<Tensor, ClipError> {
        let size = self.config.vision.image_size;
        let mut pixels = Vec::with_capacity(crops.len() * 3 * size * size);
        for (index, c) in crops.iter().enumerate() {
            if c.dimensions() != (size as u32, size as u32) {
                return Err(ClipError::Image {
                    index,
                    message: format!("a {:?} crop, not {size}×{size}", c.dimensions()),
                });
            }
            pixels.extend(preprocess::normalized(c));
        }
        let batch = Tensor::from_vec(pixels, (crops.len(), 3, size, size), &self.device)?;
        Ok(normalize(&self.model.vision.forward(&batch)?)?)
    }

    /// Normalised embeddings of `images` after CLIPImageProcessor's preparation.
    pub fn image_embeddings(&self, images: &[RgbImage]) -> Result<Tensor, ClipError> {
        let size = self.config.vision.image_size as u32;
        let crops = images
            .iter()
            .enumerate()
            .map(|(index, i)| {
                preprocess::resized_crop(i, size)
                    .map_err(|message| ClipError::Image { index, message })
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.crop_embeddings(&crops)
    }
}

/// Cosine similarities of normalised embeddings: `[image][text]`.
pub fn cosine(images: &Tensor, texts: &Tensor) -> Result<Vec<Vec<f32>>, ClipError> {
    Ok(images.matmul(&texts.t()?)?.to_vec2::<f32>()?)
}

#[cfg(test)]
pub(crate) mod tests;
