//! A resumable training checkpoint as one safetensors blob: the FP32 weights
//! (`param.{name}`, original layout names), AdamW's moments (`m.{name}`, `v.{name}`),
//! and in the header's metadata the step, the optimiser's step count, the position in
//! the data stream and the metrics so far. Restoring it and training on gives bitwise
//! the losses an uninterrupted run gives (on the CPU).

use super::data::Position;
use super::optim::AdamW;
use super::params::Params;
use super::trainer::StepMetrics;
use crate::janus::error::{JanusError, Result};
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Everything but the tensors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Optimiser steps done.
    pub step: usize,
    /// Where the data stream is drawn from next; mid length group, where that group was
    /// drawn from (it is drawn again and its taken steps skipped).
    pub position: Position,
    pub metrics: Vec<StepMetrics>,
    /// Parameter names, in the model's order.
    pub names: Vec<String>,
}

const META_KEY: &str = "reasongen.sft";

fn invalid(e: impl std::fmt::Display) -> JanusError {
    JanusError::Invalid(format!("training checkpoint: {e}"))
}

/// The blob of a checkpoint.
pub fn encode(params: &Params, optimizer: &AdamW, progress: &Progress) -> Result<Vec<u8>> {
    let mut tensors: Vec<(String, Tensor)> = Vec::new();
    for (i, (name, t)) in params.tensors().into_iter().enumerate() {
        tensors.push((format!("param.{name}"), t.to_device(&Device::Cpu)?));
        tensors.push((format!("m.{name}"), optimizer.m[i].to_device(&Device::Cpu)?));
        tensors.push((format!("v.{name}"), optimizer.v[i].to_device(&Device::Cpu)?));
    }
    let mut meta = HashMap::new();
    meta.insert(
        META_KEY.to_string(),
        serde_json::to_string(&(progress, optimizer.step)).map_err(invalid)?,
    );
    safetensors::serialize(tensors, Some(meta)).map_err(invalid)
}

/// A decoded checkpoint.
pub struct Restored {
    pub params: Params,
    pub m: Vec<Tensor>,
    pub v: Vec<Tensor>,
    pub optimizer_step: u64,
    pub progress: Progress,
}

/// Read a blob back onto `device`.
pub fn decode(bytes: &[u8], device: &Device) -> Result<Restored> {
    let (_, header) = safetensors::SafeTensors::read_metadata(bytes).map_err(invalid)?;
    let json = header
        .metadata()
        .as_ref()
        .and_then(|m| m.get(META_KEY))
        .ok_or_else(|| invalid("no training state in the header"))?;
    let (progress, optimizer_step): (Progress, u64) =
        serde_json::from_str(json).map_err(invalid)?;
    let mut all = candle_core::safetensors::load_buffer(bytes, device)?;
    let mut params = HashMap::new();
    let (mut m, mut v) = (Vec::new(), Vec::new());
    for name in &progress.names {
        let mut take = |prefix: &str| {
            all.remove(&format!("{prefix}.{name}"))
                .ok_or_else(|| invalid(format!("no `{prefix}.{name}`")))
        };
        params.insert(name.clone(), take("param")?);
        m.push(take("m")?);
        v.push(take("v")?);
    }
    Ok(Restored {
        params: Params::from_tensors(&progress.names, &params)?,
        m,
        v,
        optimizer_step,
        progress,
    })
}
