//! Parity with transformers' Janus on the goldens that `scripts/janus_parity.py`
//! (`tests/fixtures/janus/`) and `scripts/janus_parity_vq.py`
//! (`tests/fixtures/janus_vq/`) wrote: the logits of the golden sequences, greedy
//! generation with CFG, and VQ-16 decoding. The parity tests use the pieces in F32 on
//! the CPU; [`measure`] runs them all on any device and dtype (`reasongen bench
//! janus-parity`, BF16 on a GPU) and reports the errors against the references' scale.

use super::checkpoint::Checkpoint;
use super::config::JanusConfig;
use super::error::{JanusError, Result};
use super::generate::{GenerateOptions, Request, generate};
use super::llama::Ops;
use super::model::Janus;
use super::sampling::Sampling;
use super::text::TextTokenizer;
use super::vq16::Vq16;
use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// The goldens of a fixture folder: `golden.safetensors` (on the CPU, F32) and, where
/// there is one, `golden.json`.
pub struct Golden {
    pub tensors: HashMap<String, Tensor>,
    pub meta: serde_json::Value,
}

impl Golden {
    pub fn open(dir: &Path) -> Result<Self> {
        let tensors = candle_core::safetensors::load(dir.join("golden.safetensors"), &Device::Cpu)
            .map_err(|e| JanusError::checkpoint(&dir.join("golden.safetensors"), e))?;
        let json = dir.join("golden.json");
        let meta = if json.is_file() {
            let text = std::fs::read(&json).map_err(|e| JanusError::io(&json, e))?;
            serde_json::from_slice(&text).map_err(|e| JanusError::config(&json, e.to_string()))?
        } else {
            serde_json::Value::Null
        };
        Ok(Golden { tensors, meta })
    }

    /// The tensor `name`, or an error naming it.
    pub fn get(&self, name: &str) -> Result<&Tensor> {
        self.tensors
            .get(name)
            .ok_or_else(|| JanusError::Invalid(format!("golden.safetensors has no `{name}`")))
    }

    /// The integer list at `pointer` in `golden.json` (e.g. `/plain/0/prompt_ids`).
    pub fn ids(&self, pointer: &str) -> Result<Vec<u32>> {
        let list = self.meta.pointer(pointer).and_then(|v| v.as_array());
        let list =
            list.ok_or_else(|| JanusError::Invalid(format!("golden.json has no {pointer}")))?;
        list.iter()
            .map(|v| {
                v.as_u64().map(|x| x as u32).ok_or_else(|| {
                    JanusError::Invalid(format!("golden.json: {pointer} holds {v}, not an id"))
                })
            })
            .collect()
    }
}

/// Max abs difference of two tensors of the same shape, compared in F32 on the CPU.
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
    if a.dims() != b.dims() {
        return Err(JanusError::Invalid(format!(
            "shapes differ: {:?} and {:?}",
            a.dims(),
            b.dims()
        )));
    }
    let f32_cpu = |x: &Tensor| x.to_device(&Device::Cpu)?.to_dtype(DType::F32);
    Ok((f32_cpu(a)? - f32_cpu(b)?)?
        .abs()?
        .flatten_all()?
        .max(0)?
        .to_scalar::<f32>()?)
}

/// Max abs value of a tensor (the scale errors are read against).
fn max_abs(x: &Tensor) -> Result<f32> {
    Ok(x.to_dtype(DType::F32)?
        .abs()?
        .flatten_all()?
        .max(0)?
        .to_scalar::<f32>()?)
}

/// Text and image logits of the golden sequence `name` (`mixed`: one row, returned as
/// [T, ·]; `padded`: a left-padded batch, [B, T, ·]).
pub fn logits(model: &Janus, golden: &Golden, name: &str, ops: Ops) -> Result<(Tensor, Tensor)> {
    let device = model.device();
    let mut ids = golden.get(&format!("{name}.ids"))?.to_dtype(DType::U32)?;
    let mut image = golden.get(&format!("{name}.image_mask"))?.clone();
    if ids.rank() == 1 {
        ids = ids.unsqueeze(0)?;
        image = image.unsqueeze(0)?;
    }
    let (b, t) = ids.dims2()?;
    let padding = match golden.tensors.get(&format!("{name}.attention_mask")) {
        Some(mask) => {
            let mask = mask.to_vec2::<u8>()?;
            super::cache::Padding::from_fn(b, t, |r, j| mask[r][j] == 1)
        }
        None => super::cache::Padding::none(b, t),
    };
    let embeds = model.embed_mixed(&ids.to_device(device)?, &image.to_device(device)?)?;
    let hidden = model.forward(&embeds, &padding, None, ops)?;
    let text = model.text_logits(&hidden)?;
    let image = model.image_logits(&hidden)?;
    if b == 1 {
        Ok((text.squeeze(0)?, image.squeeze(0)?))
    } else {
        Ok((text, image))
    }
}

/// Rows [B, T, V] of `x` at the positions `mask` [B, T] marks, as [N, V].
pub fn valid_rows(x: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let (b, t, v) = x.dims3()?;
    let mask = mask.to_vec2::<u8>()?;
    let rows: Vec<u32> = (0..b * t)
        .filter(|i| mask[i / t][i % t] == 1)
        .map(|i| i as u32)
        .collect();
    let index = Tensor::new(rows, x.device())?;
    Ok(x.reshape((b * t, v))?.index_select(&index, 0)?)
}

/// One comparison with a reference.
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    pub what: String,
    /// Max abs error.
    pub error: f32,
    /// Max abs value of the reference.
    pub scale: f32,
}

impl Comparison {
    pub fn relative(&self) -> f32 {
        if self.scale > 0.0 {
            self.error / self.scale
        } else {
            self.error
        }
    }
}

/// Greedy tokens against the reference's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Agreement {
    pub what: String,
    /// Tokens equal at the same position.
    pub equal: usize,
    pub total: usize,
    /// Tokens before the first difference, per row.
    pub prefix: Vec<usize>,
}

/// Everything [`measure`] compared.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    pub logits: Vec<Comparison>,
    pub generation: Vec<Agreement>,
    pub pixels: Vec<Comparison>,
}

/// The model of fixture folder `dir` (its `config.json` and weights) on `device` in
/// `dtype`.
pub fn fixture_model(dir: &Path, device: &Device, dtype: DType) -> Result<Janus> {
    let config = JanusConfig::from_file(&dir.join("config.json"))?;
    let checkpoint = Arc::new(Checkpoint::open(dir)?);
    checkpoint.build(dtype, device, |vb| Janus::new(&config, vb))
}

/// Logits of the golden sequences (the tiny model in `janus/original`, inference's ops),
/// greedy plain generation with CFG, and VQ-16 decoding of the golden codes
/// (`janus_vq`), on `device` in `dtype`. `fixtures` holds `janus/` and `janus_vq/`.
pub fn measure(fixtures: &Path, device: &Device, dtype: DType) -> Result<Report> {
    let dir = fixtures.join("janus");
    let golden = Golden::open(&dir)?;
    let model = fixture_model(&dir.join("original"), device, dtype)?;
    let mut report = Report::default();

    for name in ["mixed", "padded"] {
        let (text, image) = logits(&model, &golden, name, Ops::inference(device, dtype))?;
        for (head, got) in [("text", text), ("image", image)] {
            let want = golden.get(&format!("{name}.{head}_logits"))?;
            let (got, want) = match golden.tensors.get(&format!("{name}.attention_mask")) {
                Some(mask) => (
                    valid_rows(&got.to_device(&Device::Cpu)?, mask)?,
                    valid_rows(want, mask)?,
                ),
                None => (got, want.clone()),
            };
            report.logits.push(Comparison {
                what: format!("{name} sequence, {head} logits"),
                error: max_abs_diff(&got, &want)?,
                scale: max_abs(&want)?,
            });
        }
    }

    let text = TextTokenizer::from_file(&dir.join("original").join("tokenizer.json"))?;
    let cases = golden
        .meta
        .get("plain")
        .and_then(|p| p.as_array())
        .map_or(0, Vec::len);
    let requests = (0..cases)
        .map(|i| {
            Ok(Request {
                prompt_ids: golden.ids(&format!("/plain/{i}/prompt_ids"))?,
                seed: 0,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let number = |key: &str| {
        golden.meta[key]
            .as_f64()
            .ok_or_else(|| JanusError::Invalid(format!("golden.json has no {key}")))
    };
    let options = GenerateOptions {
        rationale: None,
        image: Sampling::GREEDY,
        cfg_weight: number("cfg_weight")?,
        unconditional: super::generate::Unconditional::Pads,
        image_tokens: number("image_tokens")? as usize,
    };
    let (out, _) = generate(&model, &text.special, &requests, &options)?;
    let mut agreement = Agreement {
        what: format!(
            "greedy plain generation, CFG {}, {} rows × {} codes",
            options.cfg_weight, cases, options.image_tokens
        ),
        equal: 0,
        total: 0,
        prefix: Vec::new(),
    };
    for (i, got) in out.iter().enumerate() {
        let want = golden.ids(&format!("/plain/{i}/image_tokens"))?;
        let same = got.image_tokens.iter().zip(&want);
        agreement.equal += same.clone().filter(|(a, b)| a == b).count();
        agreement.total += want.len();
        agreement
            .prefix
            .push(same.take_while(|(a, b)| a == b).count());
    }
    report.generation.push(agreement);

    let vq_dir = fixtures.join("janus_vq");
    let vq = Vq16::load_as(&vq_dir, device, dtype)?;
    let vq_golden = Golden::open(&vq_dir)?;
    for (codes, pixels) in [("codes", "pixels"), ("random_codes", "random_pixels")] {
        let want = vq_golden.get(pixels)?;
        let got = vq.decode(&vq_golden.get(codes)?.to_dtype(DType::U32)?)?;
        report.pixels.push(Comparison {
            what: format!("VQ-16 decoding of `{codes}`, pixels"),
            error: max_abs_diff(&got, want)?,
            scale: max_abs(want)?,
        });
    }
    Ok(report)
}
