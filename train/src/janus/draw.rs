//! From prompts to pictures, as `model.generate`, `reasongen generate` and the
//! evaluation during training use it: the settings ([`GenerateConfig`], the config of
//! `model.generate`), a model (a folder, [`Drawer`], or one in memory, [`draw`]), an
//! image tokenizer (the model's own VQ-16, or another of the same code vocabulary such
//! as the shapes world's patch VQ), and prompts with their seeds ([`sample_seed`]) give
//! rationales, image codes and images.

use super::error::{JanusError, Result};
use super::generate::{
    GenerateOptions, RationaleOptions, Request, Timing, Unconditional, generate,
};
use super::load::{DeviceChoice, Loaded, load};
use super::model::Janus;
use super::sampling::Sampling;
use super::text::TextTokenizer;
use crate::tokenizer::{self, ImageTokenizer};
use candle_core::Device;
use image::RgbImage;
use pipeline::Digest;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// How one kind of token is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SamplingConfig {
    /// Divides the logits; 0 takes the most likely token.
    #[serde(default = "one")]
    pub temperature: f64,
    /// Keep only the k most likely tokens.
    #[serde(default)]
    pub top_k: Option<usize>,
    /// Keep only the most likely tokens that make up this probability.
    #[serde(default)]
    pub top_p: Option<f64>,
}

impl Default for SamplingConfig {
    fn default() -> Self {
        SamplingConfig {
            temperature: 1.0,
            top_k: None,
            top_p: None,
        }
    }
}

impl From<SamplingConfig> for Sampling {
    fn from(c: SamplingConfig) -> Self {
        Sampling {
            temperature: c.temperature,
            top_k: c.top_k,
            top_p: c.top_p,
        }
    }
}

/// Config of `model.generate`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GenerateConfig {
    /// Images per prompt (GenEval: 4).
    #[serde(default = "one_u32")]
    pub samples: u32,
    /// Write a rationale before the image (ReasonGen-R1); false: the image right after
    /// the prompt (Janus-Pro).
    #[serde(default = "yes")]
    pub rationale: bool,
    /// The prompt's text, `{}` standing for the prompt. Default: ReasonGen-R1's
    /// `"A photo of {}. Output a richly detailed prompt: "`, or Janus-Pro's
    /// `"A photo of {}."` without a rationale.
    #[serde(default)]
    pub template: Option<String>,
    /// Rationale tokens at most, the one that ends it included (ReasonGen-R1: 448).
    #[serde(default = "default_max_rationale")]
    pub max_rationale_tokens: usize,
    /// Sampling of the rationale (default: multinomial at temperature 1).
    #[serde(default)]
    pub text_sampling: SamplingConfig,
    /// Sampling of the image codes (default: multinomial at temperature 1).
    #[serde(default)]
    pub image_sampling: SamplingConfig,
    /// Classifier-free guidance weight on the image codes (1: none).
    #[serde(default = "default_cfg")]
    pub cfg_weight: f64,
    /// The unconditional twin under guidance: `pads` (Janus' and ReasonGen-R1's
    /// evaluation, attended pads) or `masked` (as `model.sft` drops samples by default;
    /// for a model trained from scratch, which never saw attended pads).
    #[serde(
        default = "default_unconditional",
        skip_serializing_if = "is_default_unconditional"
    )]
    pub unconditional: Unconditional,
    /// Prompts generated together (the model runs twice as many rows with guidance).
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// `auto` (a GPU when built with `cuda` and one is present), `cpu` or `cuda`.
    #[serde(default)]
    pub device: DeviceChoice,
    /// The `benchmark` column (default: each prompt's family).
    #[serde(default)]
    pub benchmark: Option<String>,
}

fn one() -> f64 {
    1.0
}
fn one_u32() -> u32 {
    1
}
fn yes() -> bool {
    true
}
fn default_max_rationale() -> usize {
    448
}
fn default_cfg() -> f64 {
    5.0
}
fn default_batch() -> usize {
    8
}
fn default_unconditional() -> Unconditional {
    Unconditional::Pads
}
/// The default is left out of configs, so keys made before the option stay valid.
fn is_default_unconditional(u: &Unconditional) -> bool {
    *u == default_unconditional()
}

impl Default for GenerateConfig {
    fn default() -> Self {
        GenerateConfig {
            samples: 1,
            rationale: true,
            template: None,
            max_rationale_tokens: default_max_rationale(),
            text_sampling: SamplingConfig::default(),
            image_sampling: SamplingConfig::default(),
            cfg_weight: default_cfg(),
            unconditional: default_unconditional(),
            batch_size: default_batch(),
            device: DeviceChoice::Auto,
            benchmark: None,
        }
    }
}

impl GenerateConfig {
    /// The generation settings.
    pub fn draw_options(&self) -> DrawOptions {
        let template = self.template.clone().unwrap_or_else(|| {
            if self.rationale {
                "A photo of {}. Output a richly detailed prompt: ".into()
            } else {
                "A photo of {}.".into()
            }
        });
        DrawOptions {
            template,
            rationale: self.rationale.then_some(RationaleOptions {
                sampling: self.text_sampling.into(),
                max_tokens: self.max_rationale_tokens,
            }),
            image: self.image_sampling.into(),
            cfg_weight: self.cfg_weight,
            unconditional: self.unconditional,
        }
    }
}

/// The seed of one sample of one prompt.
pub fn sample_seed(seed: u64, prompt_id: &str, sample: u32) -> u64 {
    Digest::of_json(&(seed, prompt_id, sample)).seed()
}

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
        draw(
            &self.loaded.model,
            &self.loaded.text,
            self.images.as_ref(),
            batch,
            options,
        )
    }
}

/// Draw one batch of `(prompt, seed)` pairs with `model`, decoding through `images`.
pub fn draw(
    model: &Janus,
    text: &TextTokenizer,
    images: &dyn ImageTokenizer,
    batch: &[(String, u64)],
    options: &DrawOptions,
) -> Result<(Vec<Drawing>, Timing)> {
    if !options.template.contains("{}") {
        return Err(JanusError::Invalid(format!(
            "the template {:?} has no `{{}}` for the prompt",
            options.template
        )));
    }
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
        image_tokens: images.tokens(),
    };
    let (generations, timing) = generate(model, &text.special, &requests, &generate_options)?;
    let drawings = generations
        .into_iter()
        .map(|g| {
            let codes: Vec<u16> = g.image_tokens.iter().map(|&c| c as u16).collect();
            let image = images.decode(&codes).map_err(JanusError::Invalid)?;
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

/// The image as PNG bytes.
pub fn png(image: &RgbImage) -> Result<Vec<u8>> {
    let mut out = std::io::Cursor::new(Vec::new());
    image
        .write_to(&mut out, image::ImageFormat::Png)
        .map_err(|e| JanusError::Invalid(format!("PNG encoding: {e}")))?;
    Ok(out.into_inner())
}
