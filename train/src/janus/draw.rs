//! From prompts to pictures, as the `generate` stage and `reasongen generate` use it: a
//! model folder, an image tokenizer (the model's own VQ-16, or another of the same code
//! vocabulary such as the shapes world's patch VQ), and prompts with their seeds give
//! rationales, image codes and images.

use super::error::{JanusError, Result};
use super::generate::{
    GenerateOptions, RationaleOptions, Request, Timing, Unconditional, generate,
};
use super::load::{Loaded, load};
use super::model::Janus;
use super::sampling::Sampling;
use crate::tokenizer::{self, ImageTokenizer};
use candle_core::Device;
use image::RgbImage;
use std::path::Path;

/// How prompts become pictures.
#[derive(Clone, Debug, PartialEq)]
pub struct DrawOptions {
    /// The prompt's text with `{}` standing for the prompt (ReasonGen-R1:
    /// `"A photo of {}. Output a richly detailed prompt: "`).
    pub template: String,
    /// `None`: no rationale, the image right after the prompt (Janus-Pro).
    pub rationale: Option<RationaleOptions>,
    pub image: Sampling,
    pub cfg_weight: f64,
    pub unconditional: Unconditional,
}

/// One prompt's picture.
#[derive(Clone, Debug, PartialEq)]
pub struct Drawing {
    pub rationale: Option<String>,
    pub codes: Vec<u32>,
    pub image: RgbImage,
}

pub struct Drawer {
    loaded: Loaded,
    images: Box<dyn ImageTokenizer>,
}

impl Drawer {
    /// The model folder `model_dir` on `device`, drawing through the image tokenizer
    /// folder `image_tokenizer`, or through the model's own VQ-16 when `None`.
    pub fn open(model_dir: &Path, image_tokenizer: Option<&Path>, device: &Device) -> Result<Self> {
        let loaded = load(model_dir, device)?;
        let images: Box<dyn ImageTokenizer> = match image_tokenizer {
            Some(dir) => tokenizer::load(dir).map_err(JanusError::Invalid)?,
            None => Box::new(loaded.vq16(device)?),
        };
        let vocab = loaded.model.config().image_vocab;
        if images.codebook_size() as usize != vocab {
            return Err(JanusError::Invalid(format!(
                "the image tokenizer ({}) has {} codes, the model's image heads know {vocab}",
                images.kind(),
                images.codebook_size()
            )));
        }
        Ok(Drawer { loaded, images })
    }

    pub fn model(&self) -> &Janus {
        &self.loaded.model
    }

    pub fn image_tokenizer(&self) -> &dyn ImageTokenizer {
        self.images.as_ref()
    }

    /// One batch: `(prompt, seed)` pairs.
    pub fn draw(
        &self,
        batch: &[(String, u64)],
        options: &DrawOptions,
    ) -> Result<(Vec<Drawing>, Timing)> {
        if !options.template.contains("{}") {
            return Err(JanusError::Invalid(format!(
                "the template {:?} has no `{{}}` for the prompt",
                options.template
            )));
        }
        let text = &self.loaded.text;
        let requests = batch
            .iter()
            .map(|(prompt, seed)| {
                let prompt = options.template.replace("{}", prompt);
                Ok(Request {
                    prompt_ids: text.prompt_ids(&prompt, options.rationale.is_none())?,
                    seed: *seed,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let generate_options = GenerateOptions {
            rationale: options.rationale,
            image: options.image,
            cfg_weight: options.cfg_weight,
            unconditional: options.unconditional,
            image_tokens: self.images.tokens(),
        };
        let (generations, timing) = generate(
            &self.loaded.model,
            &text.special,
            &requests,
            &generate_options,
        )?;
        let drawings = generations
            .into_iter()
            .map(|g| {
                let codes: Vec<u16> = g.image_tokens.iter().map(|&c| c as u16).collect();
                let image = self.images.decode(&codes).map_err(JanusError::Invalid)?;
                let rationale = match options.rationale {
                    Some(_) => Some(text.decode(&g.rationale_ids)?),
                    None => None,
                };
                Ok(Drawing {
                    rationale,
                    codes: g.image_tokens,
                    image,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((drawings, timing))
    }
}

/// The image as PNG bytes.
pub fn png(image: &RgbImage) -> Result<Vec<u8>> {
    let mut out = std::io::Cursor::new(Vec::new());
    image
        .write_to(&mut out, image::ImageFormat::Png)
        .map_err(|e| JanusError::Invalid(format!("PNG encoding: {e}")))?;
    Ok(out.into_inner())
}
