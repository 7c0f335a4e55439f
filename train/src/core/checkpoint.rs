//! A training checkpoint as a folder of files: `state.safetensors` (the FP32 weights
//! `param.{name}` in the original layout's names, AdamW's moments `m.{name}` and
//! `v.{name}`) and `progress.json` (the optimiser's step count, the parameter names,
//! and the trainer's own progress: its step, data position, metrics, and whatever else
//! it needs to go on, such as GRPO's entropy controller). The folder comes from the
//! store ([`pipeline::store::Checkpoints`]), which publishes it whole. Restoring one and
//! training on gives bitwise what an uninterrupted run gives (on the CPU, one thread).

use super::optim::AdamW;
use super::params::Params;
use crate::janus::error::{JanusError, Result};
use candle_core::{Device, Tensor};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

const TENSORS: &str = "state.safetensors";
const PROGRESS: &str = "progress.json";

#[derive(Serialize, Deserialize)]
struct Header<P> {
    optimizer_step: u64,
    /// Parameter names, in the model's order.
    names: Vec<String>,
    progress: P,
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
    for (i, (name, t)) in params.tensors().into_iter().enumerate() {
        tensors.insert(format!("param.{name}"), t.to_device(&Device::Cpu)?);
        tensors.insert(format!("m.{name}"), optimizer.m[i].to_device(&Device::Cpu)?);
        tensors.insert(format!("v.{name}"), optimizer.v[i].to_device(&Device::Cpu)?);
    }
    let path = dir.join(TENSORS);
    candle_core::safetensors::save(&tensors, &path).map_err(|e| invalid(&path, e))?;
    let header = Header {
        optimizer_step: optimizer.step,
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
    pub m: Vec<Tensor>,
    pub v: Vec<Tensor>,
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
    let (mut m, mut v) = (Vec::new(), Vec::new());
    for name in &header.names {
        let take = |prefix: &str| {
            file.load(&format!("{prefix}.{name}"), device)
                .map_err(|e| invalid(&path, format!("`{prefix}.{name}`: {e}")))
        };
        params.insert(name.clone(), take("param")?);
        m.push(take("m")?);
        v.push(take("v")?);
    }
    Ok(Restored {
        params: Params::from_tensors(&header.names, &params)?,
        m,
        v,
        optimizer_step: header.optimizer_step,
        progress: header.progress,
    })
}
