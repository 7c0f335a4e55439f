//! A training checkpoint as a folder of files: `state.safetensors` (the FP32 weights
//! `param.{name}` in the original layout's names and AdamW's moments: with `f32`
//! moments `m.{name}` and `v.{name}` in FP32; with `bf16` the same names in BF16; with
//! `int8` the codes `m.{name}` and `v.{name}` (of m and √v) in U8 and `scales.{name}`,
//! FP32, the (m, √v) absolute maxima of each 256-element block in turn) and
//! `progress.json` (the optimiser's step count, its moment format `moments` when not
//! `f32`, the parameter names, and the trainer's own progress: its step, data position,
//! metrics, and whatever else it needs to go on, such as GRPO's entropy controller). The
//! folder comes from the store ([`pipeline::store::Checkpoints`]), which publishes it
//! whole. Restoring one and training on gives bitwise what an uninterrupted run gives
//! (on the CPU, one thread).

use super::optim::moments::Parts;
use super::optim::{AdamW, MomentFormat, Moments};
use super::params::Params;
use crate::janus::error::{JanusError, Result};
use candle_core::{DType, Device, Tensor};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

const TENSORS: &str = "state.safetensors";
const PROGRESS: &str = "progress.json";

#[derive(Serialize, Deserialize)]
struct Header<P> {
    optimizer_step: u64,
    /// Absent in checkpoints from before the option: FP32.
    #[serde(default, skip_serializing_if = "is_f32")]
    moments: MomentFormat,
    /// Parameter names, in the model's order.
    names: Vec<String>,
    progress: P,
}

fn is_f32(format: &MomentFormat) -> bool {
    *format == MomentFormat::F32
}

fn invalid(path: &Path, e: impl std::fmt::Display) -> JanusError {
    JanusError::Invalid(format!("training checkpoint {}: {e}", path.display()))
}

/// Write the checkpoint into the folder `dir`.
pub fn save<P: Serialize>(
    dir: &Path,
    params: &Params,
    optimizer: &AdamW,
    progress: &P,
) -> Result<()> {
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    let cpu = Device::Cpu;
    let dtype = match optimizer.config.moments {
        MomentFormat::Bf16 => DType::BF16,
        _ => DType::F32,
    };
    for (i, (name, t)) in params.tensors().into_iter().enumerate() {
        tensors.insert(format!("param.{name}"), t.to_device(&cpu)?);
        let n = t.elem_count();
        match optimizer.moments[i].parts() {
            Parts::Floats(m, v) => {
                tensors.insert(
                    format!("m.{name}"),
                    Tensor::from_vec(m, n, &cpu)?.to_dtype(dtype)?,
                );
                tensors.insert(
                    format!("v.{name}"),
                    Tensor::from_vec(v, n, &cpu)?.to_dtype(dtype)?,
                );
            }
            Parts::Codes { m, v, scales } => {
                tensors.insert(format!("m.{name}"), Tensor::from_vec(m, n, &cpu)?);
                tensors.insert(format!("v.{name}"), Tensor::from_vec(v, n, &cpu)?);
                let k = scales.len();
                tensors.insert(format!("scales.{name}"), Tensor::from_vec(scales, k, &cpu)?);
            }
        }
    }
    let path = dir.join(TENSORS);
    candle_core::safetensors::save(&tensors, &path).map_err(|e| invalid(&path, e))?;
    let header = Header {
        optimizer_step: optimizer.step,
        moments: optimizer.config.moments,
        names: params.names.clone(),
        progress,
    };
    let path = dir.join(PROGRESS);
    let json = serde_json::to_vec(&header).map_err(|e| invalid(&path, e))?;
    std::fs::write(&path, json).map_err(|e| JanusError::Io {
        path: path.clone(),
        source: e,
    })
}

/// A checkpoint read back.
pub struct Restored<P> {
    pub params: Params,
    /// The format the moments were saved in.
    pub moments_format: MomentFormat,
    pub moments: Vec<Moments>,
    pub optimizer_step: u64,
    pub progress: P,
}

/// Read the checkpoint in `dir` onto `device`.
pub fn load<P: DeserializeOwned>(dir: &Path, device: &Device) -> Result<Restored<P>> {
    let path = dir.join(PROGRESS);
    let json = std::fs::read(&path).map_err(|e| JanusError::Io {
        path: path.clone(),
        source: e,
    })?;
    let header: Header<P> = serde_json::from_slice(&json).map_err(|e| invalid(&path, e))?;
    let path = dir.join(TENSORS);
    // SAFETY: checkpoints are written whole and never modified in place.
    let file = unsafe { candle_core::safetensors::MmapedSafetensors::new(&path) }
        .map_err(|e| invalid(&path, e))?;
    let mut params = HashMap::new();
    let mut moments = Vec::new();
    for name in &header.names {
        let take = |prefix: &str, device: &Device| {
            file.load(&format!("{prefix}.{name}"), device)
                .map_err(|e| invalid(&path, format!("`{prefix}.{name}`: {e}")))
        };
        let param = take("param", device)?;
        let n = param.elem_count();
        params.insert(name.clone(), param);
        let read =
            |prefix: &str| -> Result<Tensor> { Ok(take(prefix, &Device::Cpu)?.flatten_all()?) };
        let parts = match header.moments {
            MomentFormat::F32 | MomentFormat::Bf16 => Parts::Floats(
                read("m")?.to_dtype(DType::F32)?.to_vec1()?,
                read("v")?.to_dtype(DType::F32)?.to_vec1()?,
            ),
            MomentFormat::Int8 => Parts::Codes {
                m: read("m")?.to_vec1()?,
                v: read("v")?.to_vec1()?,
                scales: read("scales")?.to_vec1()?,
            },
        };
        moments.push(
            Moments::from_parts(header.moments, n, parts)
                .map_err(|e| invalid(&path, format!("the moments of `{name}`: {e}")))?,
        );
    }
    Ok(Restored {
        params: Params::from_tensors(&header.names, &params)?,
        moments_format: header.moments,
        moments,
        optimizer_step: header.optimizer_step,
        progress: header.progress,
    })
}
