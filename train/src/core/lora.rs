//! LoRA's side of the parameters: the frozen base ([`Frozen`]) the model takes its
//! weights from while only the adapters are parameters (FP32 masters, gradients and
//! AdamW state for them alone), and the two ways a LoRA run is written out: the
//! adapters in PEFT's layout ([`save_adapters`]: `adapter_model.safetensors` with
//! `base_model.model.{module}.lora_{A,B}.weight`, and `adapter_config.json`), and the
//! base with the adapters merged in under the original names
//! ([`Frozen::save_merged`]: W' = W + (alpha / rank) · B A), which loads like any
//! other model. The adapters themselves are built by [`Params::adapters`]; the
//! projections that use them are [`crate::janus::lora`].

use super::params::Params;
use crate::janus::config::JanusConfig;
use crate::janus::error::{JanusError, Result};
use crate::janus::lora::LoraConfig;
use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// PEFT's prefix of every adapter name.
const PEFT_PREFIX: &str = "base_model.model.";

/// The folder, inside a written model folder, that holds the adapters.
pub const ADAPTER_DIR: &str = "adapter";

/// The base weights of a LoRA run, frozen in the compute dtype, and the LoRA settings.
pub struct Frozen {
    pub lora: LoraConfig,
    pub(crate) tensors: Arc<HashMap<String, Tensor>>,
}

impl Frozen {
    /// Freeze `base` in `dtype` (its FP32 masters are dropped).
    pub fn new(base: Params, lora: LoraConfig, dtype: DType) -> Result<Frozen> {
        lora.check().map_err(JanusError::Invalid)?;
        let tensors = base
            .tensors()
            .into_iter()
            .map(|(n, t)| Ok((n, t.to_dtype(dtype)?)))
            .collect::<Result<HashMap<_, _>>>()?;
        Ok(Frozen {
            lora,
            tensors: Arc::new(tensors),
        })
    }

    /// Bytes the frozen weights hold.
    pub fn bytes(&self) -> usize {
        self.tensors
            .values()
            .map(|t| t.elem_count() * t.dtype().size_in_bytes())
            .sum()
    }

    /// The base weights with `adapters` merged in, in FP32 under the original names.
    pub fn merged(&self, adapters: &Params) -> Result<HashMap<String, Tensor>> {
        let adapters: HashMap<String, Tensor> = adapters.tensors().into_iter().collect();
        let scale = self.lora.scale();
        let mut merged = HashMap::new();
        for (name, w) in self.tensors.iter() {
            let w = w.to_dtype(DType::F32)?;
            let module = name.strip_suffix(".weight").unwrap_or(name);
            let pair = (
                adapters.get(&format!("{module}.lora_A.weight")),
                adapters.get(&format!("{module}.lora_B.weight")),
            );
            let w = match pair {
                (Some(a), Some(b)) => (w + (b.matmul(a)? * scale)?)?,
                (None, None) => w,
                _ => {
                    return Err(JanusError::Invalid(format!(
                        "`{module}` has only one of its two adapters"
                    )));
                }
            };
            merged.insert(name.clone(), w);
        }
        Ok(merged)
    }

    /// Write the merged weights, with the untrained ones `kept`, as `path` (FP32
    /// safetensors, original layout).
    pub fn save_merged(&self, path: &Path, adapters: &Params, kept: Option<&Params>) -> Result<()> {
        let tensors = self
            .merged(adapters)?
            .into_iter()
            .chain(kept.map(Params::tensors).unwrap_or_default())
            .map(|(n, t)| Ok((n, t.to_device(&Device::Cpu)?)))
            .collect::<Result<HashMap<_, _>>>()?;
        candle_core::safetensors::save(&tensors, path).map_err(|e| JanusError::checkpoint(path, e))
    }
}

/// The parameters a run trains: with `lora`, fresh adapters (A from `lora.seed`, B
/// zero) over the base `params` frozen in `dtype`; without, `params` themselves.
pub fn split(
    config: &JanusConfig,
    params: Params,
    lora: Option<LoraConfig>,
    dtype: DType,
) -> Result<(Params, Option<Frozen>)> {
    let Some(lora) = lora else {
        return Ok((params, None));
    };
    let device = params
        .vars
        .first()
        .map_or(Device::Cpu, |v| v.device().clone());
    let frozen = Frozen::new(params, lora, dtype)?;
    let adapters = Params::adapters(config, &frozen, &device)?;
    Ok((adapters, Some(frozen)))
}

/// Write `adapters` into `dir` as PEFT does: `adapter_model.safetensors` (FP32) and
/// `adapter_config.json`.
pub fn save_adapters(dir: &Path, adapters: &Params, lora: &LoraConfig) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| JanusError::io(dir, e))?;
    let path = dir.join("adapter_model.safetensors");
    let tensors = adapters
        .tensors()
        .into_iter()
        .map(|(n, t)| Ok((format!("{PEFT_PREFIX}{n}"), t.to_device(&Device::Cpu)?)))
        .collect::<Result<HashMap<_, _>>>()?;
    candle_core::safetensors::save(&tensors, &path)
        .map_err(|e| JanusError::checkpoint(&path, e))?;
    let path = dir.join("adapter_config.json");
    let config = serde_json::json!({
        "peft_type": "LORA",
        "r": lora.rank,
        "lora_alpha": lora.alpha,
        "lora_dropout": 0.0,
        "target_modules": lora.target_modules,
        "bias": "none",
        "fan_in_fan_out": false,
        "inference_mode": true,
    });
    let json =
        serde_json::to_vec_pretty(&config).map_err(|e| JanusError::Invalid(e.to_string()))?;
    std::fs::write(&path, json).map_err(|e| JanusError::io(&path, e))
}
