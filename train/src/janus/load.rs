//! A Janus-Pro model folder as released or as we write it: `config.json` (either
//! layout), the weights ([`super::checkpoint`]) and `tokenizer.json`. Loads the model
//! and its text tokenizer, and on request its VQ-16 from the same weights; writes a
//! folder ([`write_folder`]).
//!
//! Weights take the device's dtype: F32 on the CPU (candle's CPU kernels are slow or
//! missing in BF16), BF16 on a GPU.

use super::checkpoint::{Checkpoint, SAFETENSORS_SINGLE};
use super::config::JanusConfig;
use super::error::{JanusError, Result};
use super::model::Janus;
use super::text::TextTokenizer;
use super::vq16::{CHECKPOINT_PREFIX, Vq16};
use candle_core::{DType, Device};
use std::path::Path;
use std::sync::Arc;

/// Write a model folder `dir`: `config.json` from `config`, the weights through
/// `weights` (given the path of `model.safetensors`), the text tokenizer through
/// `tokenizer` (given the path of `tokenizer.json`).
pub fn write_folder(
    dir: &Path,
    config: &JanusConfig,
    weights: impl FnOnce(&Path) -> Result<()>,
    tokenizer: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| JanusError::io(dir, e))?;
    let path = dir.join("config.json");
    let json = serde_json::to_vec_pretty(&config.to_json())
        .map_err(|e| JanusError::config(&path, e.to_string()))?;
    std::fs::write(&path, json).map_err(|e| JanusError::io(&path, e))?;
    weights(&dir.join(SAFETENSORS_SINGLE))?;
    tokenizer(&dir.join("tokenizer.json"))
}

/// The dtype models run in on `device`.
pub fn dtype_for(device: &Device) -> DType {
    if device.is_cpu() {
        DType::F32
    } else {
        DType::BF16
    }
}

/// A loaded model folder.
pub struct Loaded {
    pub model: Janus,
    pub text: TextTokenizer,
    pub checkpoint: Arc<Checkpoint>,
}

impl Loaded {
    /// The model's VQ-16 (`gen_vision_model`), from the same weights.
    pub fn vq16(&self, device: &Device) -> Result<Vq16> {
        let config = self.model.config().vq.clone();
        self.checkpoint.build(dtype_for(device), device, |vb| {
            Vq16::new(config, vb.pp(CHECKPOINT_PREFIX))
        })
    }
}

/// Load the model folder `dir` onto `device`.
pub fn load(dir: &Path, device: &Device) -> Result<Loaded> {
    let config = JanusConfig::from_file(&dir.join("config.json"))?;
    let text = TextTokenizer::from_file(&dir.join("tokenizer.json"))?;
    let vocab = config.language.vocab_size;
    let s = text.special;
    let highest = [
        s.bos,
        s.eos,
        s.pad,
        s.begin_of_image,
        s.end_of_image,
        s.user,
        s.assistant,
    ]
    .into_iter()
    .max()
    .unwrap_or(0);
    if highest as usize >= vocab {
        return Err(JanusError::config(
            &dir.join("tokenizer.json"),
            format!("special token id {highest} is outside the model's vocabulary of {vocab}"),
        ));
    }
    let checkpoint = Arc::new(Checkpoint::open(dir)?);
    let model = checkpoint.build(dtype_for(device), device, |vb| Janus::new(&config, vb))?;
    Ok(Loaded {
        model,
        text,
        checkpoint,
    })
}

/// Where a model runs.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum DeviceChoice {
    /// The first GPU when the binary is built with `cuda` and one is present, else the CPU.
    #[default]
    Auto,
    Cpu,
    /// The first GPU (needs a `cuda` build).
    Cuda,
}

impl DeviceChoice {
    /// The device, a GPU being the first one (a process not placed by an executor).
    pub fn open(self) -> std::result::Result<Device, String> {
        self.open_granted(&[])
    }

    /// The device of a node that the executor granted the GPU ordinals `granted`
    /// (`StageContext::devices`): a GPU is the first of them (CUDA's ordinal 0 when
    /// none were granted, as under a batch system that renumbers the visible devices).
    pub fn open_granted(self, granted: &[u32]) -> std::result::Result<Device, String> {
        let ordinal = cuda_ordinal(granted);
        match self {
            DeviceChoice::Cpu => Ok(Device::Cpu),
            DeviceChoice::Cuda => {
                Device::new_cuda(ordinal).map_err(|e| format!("no GPU {ordinal}: {e}"))
            }
            DeviceChoice::Auto if candle_core::utils::cuda_is_available() => {
                Ok(Device::new_cuda(ordinal).unwrap_or(Device::Cpu))
            }
            DeviceChoice::Auto => Ok(Device::Cpu),
        }
    }

    /// Whether it asks for a GPU.
    pub fn wants_gpu(self) -> bool {
        match self {
            DeviceChoice::Cpu => false,
            DeviceChoice::Cuda => true,
            DeviceChoice::Auto => candle_core::utils::cuda_is_available(),
        }
    }
}

/// The CUDA ordinal a node opens out of the ordinals it was granted.
fn cuda_ordinal(granted: &[u32]) -> usize {
    granted.first().map_or(0, |&d| d as usize)
}

impl std::str::FromStr for DeviceChoice {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "auto" => Ok(DeviceChoice::Auto),
            "cpu" => Ok(DeviceChoice::Cpu),
            "cuda" => Ok(DeviceChoice::Cuda),
            other => Err(format!("device `{other}`: auto, cpu or cuda")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gpu_is_the_first_ordinal_the_executor_granted() {
        // Nothing granted (a process started alone, or a batch job's renumbered
        // devices): CUDA's first.
        assert_eq!(cuda_ordinal(&[]), 0);
        // The local scheduler's second GPU.
        assert_eq!(cuda_ordinal(&[1]), 1);
        assert_eq!(cuda_ordinal(&[2, 3]), 2);
        assert!(matches!(
            DeviceChoice::Cpu.open_granted(&[3]),
            Ok(Device::Cpu)
        ));
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn a_cuda_choice_without_a_gpu_names_the_ordinal() {
        let e = DeviceChoice::Cuda.open_granted(&[5]).unwrap_err();
        assert!(e.starts_with("no GPU 5:"), "{e}");
    }
}
