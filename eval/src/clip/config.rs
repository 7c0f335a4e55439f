//! A CLIP folder's `config.json` as Hugging Face's `CLIPConfig` reads it: `text_config`
//! and `vision_config` (each overlaid by its legacy `*_config_dict` where one is set),
//! with transformers' defaults for the keys a file leaves out.

use super::ClipError;
use serde::Deserialize;
use serde_json::Value;
use std::path::Path;

/// The activation of the MLPs (`hidden_act`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// `x · σ(1.702 x)`, OpenAI's.
    QuickGelu,
    /// The exact (erf) GELU.
    Gelu,
}

/// What the two towers share: one transformer encoder.
#[derive(Clone, Debug, PartialEq)]
pub struct EncoderConfig {
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_attention_heads: usize,
    pub num_hidden_layers: usize,
    pub hidden_act: Activation,
    pub layer_norm_eps: f64,
}

/// `text_config`.
#[derive(Clone, Debug, PartialEq)]
pub struct TextConfig {
    pub encoder: EncoderConfig,
    pub vocab_size: usize,
    pub max_position_embeddings: usize,
    pub eos_token_id: u32,
}

/// `vision_config`.
#[derive(Clone, Debug, PartialEq)]
pub struct VisionConfig {
    pub encoder: EncoderConfig,
    pub image_size: usize,
    pub patch_size: usize,
    pub num_channels: usize,
}

/// The whole `config.json`.
#[derive(Clone, Debug, PartialEq)]
pub struct ClipConfig {
    pub text: TextConfig,
    pub vision: VisionConfig,
    pub projection_dim: usize,
    /// `_name_or_path` where the file has one (`openai/clip-vit-base-patch32`).
    pub name: Option<String>,
}

#[derive(Deserialize)]
struct RawEncoder {
    hidden_size: usize,
    intermediate_size: usize,
    num_attention_heads: usize,
    num_hidden_layers: usize,
    #[serde(default = "quick_gelu")]
    hidden_act: Activation,
    #[serde(default = "eps")]
    layer_norm_eps: f64,
}

fn quick_gelu() -> Activation {
    Activation::QuickGelu
}

fn eps() -> f64 {
    1e-5
}

/// transformers' `CLIPTextConfig` defaults.
fn text_defaults() -> Value {
    serde_json::json!({
        "vocab_size": 49408, "hidden_size": 512, "intermediate_size": 2048,
        "num_attention_heads": 8, "num_hidden_layers": 12, "max_position_embeddings": 77,
        "eos_token_id": 49407,
    })
}

/// transformers' `CLIPVisionConfig` defaults.
fn vision_defaults() -> Value {
    serde_json::json!({
        "hidden_size": 768, "intermediate_size": 3072, "num_attention_heads": 12,
        "num_hidden_layers": 12, "image_size": 224, "patch_size": 32, "num_channels": 3,
    })
}

/// `defaults`, overlaid by the file's `key` object, overlaid by its `key_dict` object.
fn section(file: &Value, key: &str, defaults: Value) -> Value {
    let mut out = defaults;
    for k in [key.to_string(), format!("{key}_dict")] {
        if let Some(Value::Object(m)) = file.get(&k) {
            for (name, v) in m {
                if !v.is_null() {
                    out[name] = v.clone();
                }
            }
        }
    }
    out
}

impl ClipConfig {
    /// Parse `config.json` at `path`; an error names the file and the key.
    pub fn from_file(path: &Path) -> Result<ClipConfig, ClipError> {
        let bytes = std::fs::read(path).map_err(|e| ClipError::io(path, e))?;
        let bad = |message: String| ClipError::Config {
            path: path.to_path_buf(),
            message,
        };
        let file: Value = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
        if let Some(t) = file.get("model_type").and_then(Value::as_str)
            && t != "clip"
        {
            return Err(bad(format!(
                "model_type `{t}`, not `clip`: only Hugging Face CLIPModel folders are read"
            )));
        }
        let text = section(&file, "text_config", text_defaults());
        let vision = section(&file, "vision_config", vision_defaults());
        let encoder = |v: &Value, which: &str| -> Result<EncoderConfig, ClipError> {
            let r: RawEncoder =
                serde_json::from_value(v.clone()).map_err(|e| bad(format!("{which}: {e}")))?;
            if r.num_attention_heads == 0 || !r.hidden_size.is_multiple_of(r.num_attention_heads) {
                return Err(bad(format!(
                    "{which}: hidden_size {} is not a multiple of num_attention_heads {}",
                    r.hidden_size, r.num_attention_heads
                )));
            }
            Ok(EncoderConfig {
                hidden_size: r.hidden_size,
                intermediate_size: r.intermediate_size,
                num_attention_heads: r.num_attention_heads,
                num_hidden_layers: r.num_hidden_layers,
                hidden_act: r.hidden_act,
                layer_norm_eps: r.layer_norm_eps,
            })
        };
        let usize_of = |v: &Value, which: &str, key: &str| -> Result<usize, ClipError> {
            v[key]
                .as_u64()
                .map(|n| n as usize)
                .ok_or_else(|| bad(format!("{which}.{key} is not a whole number")))
        };
        let (image_size, patch_size) = (
            usize_of(&vision, "vision_config", "image_size")?,
            usize_of(&vision, "vision_config", "patch_size")?,
        );
        if patch_size == 0 || !image_size.is_multiple_of(patch_size) {
            return Err(bad(format!(
                "vision_config: image_size {image_size} is not a multiple of patch_size {patch_size}"
            )));
        }
        Ok(ClipConfig {
            text: TextConfig {
                encoder: encoder(&text, "text_config")?,
                vocab_size: usize_of(&text, "text_config", "vocab_size")?,
                max_position_embeddings: usize_of(&text, "text_config", "max_position_embeddings")?,
                eos_token_id: usize_of(&text, "text_config", "eos_token_id")? as u32,
            },
            vision: VisionConfig {
                encoder: encoder(&vision, "vision_config")?,
                image_size,
                patch_size,
                num_channels: usize_of(&vision, "vision_config", "num_channels")?,
            },
            projection_dim: file
                .get("projection_dim")
                .map_or(Some(512), Value::as_u64)
                .ok_or_else(|| bad("projection_dim is not a whole number".into()))?
                as usize,
            name: file
                .get("_name_or_path")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string),
        })
    }

    /// A short description for labels: the name where the file has one, and the sizes
    /// (`ViT 12×768 /32 @224, text 12×512, projection 512`).
    pub fn describe(&self) -> String {
        let (v, t) = (&self.vision, &self.text.encoder);
        let sizes = format!(
            "ViT {}×{} /{} @{}, text {}×{}, projection {}",
            v.encoder.num_hidden_layers,
            v.encoder.hidden_size,
            v.patch_size,
            v.image_size,
            t.num_hidden_layers,
            t.hidden_size,
            self.projection_dim
        );
        match &self.name {
            Some(n) => format!("{n} ({sizes})"),
            None => sizes,
        }
    }
}
