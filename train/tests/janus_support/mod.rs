//! Helpers of the Janus-Pro tests: the fixtures `scripts/janus_parity.py` wrote into
//! `tests/fixtures/janus/`, and comparisons.
#![allow(dead_code)]

use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use train::janus::checkpoint::Checkpoint;
use train::janus::{Janus, JanusConfig, Ops, Padding};

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
    let config = JanusConfig::from_file(&dir.join("config.json")).unwrap();
    let checkpoint = Arc::new(Checkpoint::open(dir).unwrap());
    checkpoint
        .build(DType::F32, &Device::Cpu, |vb| Janus::new(&config, vb))
        .unwrap()
}

pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// Text and image logits of the golden mixed sequence `name` (`mixed`, `padded`).
pub fn logits(
    model: &Janus,
    golden: &HashMap<String, Tensor>,
    name: &str,
    ops: Ops,
) -> (Tensor, Tensor) {
    let mut ids = golden[&format!("{name}.ids")].to_dtype(DType::U32).unwrap();
    let mut image = golden[&format!("{name}.image_mask")].clone();
    if ids.rank() == 1 {
        ids = ids.unsqueeze(0).unwrap();
        image = image.unsqueeze(0).unwrap();
    }
    let (b, t) = ids.dims2().unwrap();
    let padding = match golden.get(&format!("{name}.attention_mask")) {
        Some(mask) => {
            let mask = mask.to_vec2::<u8>().unwrap();
            Padding::from_fn(b, t, |r, j| mask[r][j] == 1)
        }
        None => Padding::none(b, t),
    };
    let embeds = model.embed_mixed(&ids, &image).unwrap();
    let hidden = model.forward(&embeds, &padding, None, ops).unwrap();
    let text = model.text_logits(&hidden).unwrap();
    let image = model.image_logits(&hidden).unwrap();
    if b == 1 {
        (text.squeeze(0).unwrap(), image.squeeze(0).unwrap())
    } else {
        (text, image)
    }
}

/// Rows [B, T, V] of `x` at the positions `mask` [B, T] marks, as [N, V].
pub fn valid_rows(x: &Tensor, mask: &Tensor) -> Tensor {
    let (b, t, v) = x.dims3().unwrap();
    let mask = mask.to_vec2::<u8>().unwrap();
    let rows: Vec<u32> = (0..b * t)
        .filter(|i| mask[i / t][i % t] == 1)
        .map(|i| i as u32)
        .collect();
    let index = Tensor::new(rows, x.device()).unwrap();
    x.reshape((b * t, v))
        .unwrap()
        .index_select(&index, 0)
        .unwrap()
}
