//! The image tokenizer interface: what turns images into codes and back. Tables record
//! which tokenizer made their codes, so changing the tokenizer re-runs the tokenize
//! node and what follows, and nothing else.
//!
//! Implementations: the patch VQ of the shapes world ([`crate::patch_vq`]); VQ-16 of
//! Janus-Pro ([`crate::janus::vq16`]). A tokenizer is a model artifact whose
//! `tokenizer.json` names its kind.

use crate::janus::vq16::Vq16;
use crate::patch_vq::PatchVq;
use image::RgbImage;
use std::path::Path;

pub trait ImageTokenizer: Send + Sync {
    /// `patch_vq`, `vq16`, …
    fn kind(&self) -> &'static str;
    /// Side of the square images it takes.
    fn image_size(&self) -> u32;
    /// Codes per image.
    fn tokens(&self) -> usize;
    /// Size of the code vocabulary.
    fn codebook_size(&self) -> u32;
    fn encode(&self, img: &RgbImage) -> Result<Vec<u16>, String>;
    /// Images it encodes at once to best effect (1: batching gains nothing).
    fn batch_size(&self) -> usize {
        1
    }
    /// The codes of several images, in order.
    fn encode_batch(&self, images: &[RgbImage]) -> Result<Vec<Vec<u16>>, String> {
        images.iter().map(|img| self.encode(img)).collect()
    }
    fn decode(&self, codes: &[u16]) -> Result<RgbImage, String>;
}

impl ImageTokenizer for PatchVq {
    fn kind(&self) -> &'static str {
        "patch_vq"
    }
    fn image_size(&self) -> u32 {
        self.config.image_size
    }
    fn tokens(&self) -> usize {
        self.config.tokens()
    }
    fn codebook_size(&self) -> u32 {
        self.config.codebook_size
    }
    fn encode(&self, img: &RgbImage) -> Result<Vec<u16>, String> {
        PatchVq::encode(self, img).map_err(|e| e.to_string())
    }
    fn decode(&self, codes: &[u16]) -> Result<RgbImage, String> {
        PatchVq::decode(self, codes).map_err(|e| e.to_string())
    }
}

/// Load the tokenizer a model artifact folder holds.
pub fn load(dir: &Path) -> Result<Box<dyn ImageTokenizer>, String> {
    let path = dir.join("tokenizer.json");
    let text = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let json: serde_json::Value =
        serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    match json["kind"].as_str() {
        Some("patch_vq") => Ok(Box::new(PatchVq::load(dir).map_err(|e| e.to_string())?)),
        Some("vq16") => {
            // A GPU when built with `cuda` and one is present (BF16), else the CPU (F32).
            let device = candle_core::Device::cuda_if_available(0).map_err(|e| e.to_string())?;
            Ok(Box::new(
                Vq16::load(dir, &device).map_err(|e| e.to_string())?,
            ))
        }
        // A Janus-Pro model folder (its `tokenizer.json` is the text tokenizer): the
        // model's own VQ-16 (`gen_vision_model`), built from its weights alone.
        None if dir.join("config.json").exists() => {
            let device = candle_core::Device::cuda_if_available(0).map_err(|e| e.to_string())?;
            Ok(Box::new(janus_vq16(dir, &device)?))
        }
        other => Err(format!(
            "{}: unknown tokenizer kind {other:?} (known: patch_vq, vq16, or a Janus-Pro model folder)",
            path.display()
        )),
    }
}

/// The VQ-16 of the Janus-Pro model folder `dir`, from its checkpoint (either layout).
fn janus_vq16(dir: &Path, device: &candle_core::Device) -> Result<Vq16, String> {
    use crate::janus::{checkpoint::Checkpoint, config::JanusConfig, load::dtype_for};
    let config = JanusConfig::from_file(&dir.join("config.json")).map_err(|e| e.to_string())?;
    let checkpoint = std::sync::Arc::new(Checkpoint::open(dir).map_err(|e| e.to_string())?);
    checkpoint
        .build(dtype_for(device), device, |vb| {
            Vq16::new(
                config.vq.clone(),
                vb.pp(crate::janus::vq16::CHECKPOINT_PREFIX),
            )
        })
        .map_err(|e| e.to_string())
}
