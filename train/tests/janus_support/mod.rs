//! Helpers of the Janus-Pro tests: the fixtures `scripts/janus_parity.py` wrote into
//! `tests/fixtures/janus/`, and comparisons.
#![allow(dead_code)]

use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use train::janus::parity;
use train::janus::{Janus, Ops};

/// The parameters of `params` that `grads` gives no gradient, or only zeros.
pub fn without_gradient<'a>(
    params: &'a train::core::params::Params,
    grads: &candle_core::backprop::GradStore,
) -> Vec<&'a String> {
    params
        .names
        .iter()
        .zip(&params.vars)
        .filter(|(_, v)| {
            grads.get(v.as_tensor()).is_none_or(|g| {
                g.abs()
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap()
                    == 0.0
            })
        })
        .map(|(n, _)| n)
        .collect()
}

/// Max abs error allowed against transformers in F32.
pub const TOLERANCE: f32 = 1e-4;

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/janus")
}

pub fn golden() -> HashMap<String, Tensor> {
    candle_core::safetensors::load(fixtures().join("golden.safetensors"), &Device::Cpu).unwrap()
}

pub fn golden_json() -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(fixtures().join("golden.json")).unwrap()).unwrap()
}

pub fn ids(value: &serde_json::Value) -> Vec<u32> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect()
}

/// The model of a fixture folder (weights and `config.json`), F32 on the CPU.
pub fn model(dir: &Path) -> Janus {
    parity::fixture_model(dir, &Device::Cpu, DType::F32).unwrap()
}

pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    parity::max_abs_diff(a, b).unwrap()
}

/// Text and image logits of the golden mixed sequence `name` (`mixed`, `padded`).
pub fn logits(
    model: &Janus,
    golden: &HashMap<String, Tensor>,
    name: &str,
    ops: Ops,
) -> (Tensor, Tensor) {
    let golden = parity::Golden {
        tensors: golden.clone(),
        meta: serde_json::Value::Null,
    };
    parity::logits(model, &golden, name, ops).unwrap()
}

/// Rows [B, T, V] of `x` at the positions `mask` [B, T] marks, as [N, V].
pub fn valid_rows(x: &Tensor, mask: &Tensor) -> Tensor {
    parity::valid_rows(x, mask).unwrap()
}
