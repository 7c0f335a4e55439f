//! Seeded random weights for a Janus-Pro config, as transformers initialises a Llama
//! (`_init_weights`): every linear and embedding weight from N(0, std²) (Janus-Pro's
//! `initializer_range` is 0.02), biases zero, RMSNorm weights one.
//!
//! The names and shapes are the ones [`Janus::new`] asks for, in DeepSeek's layout, so
//! the weights always fit the model code. Each tensor draws from its own stream, seeded
//! by the seed and its name: a tensor's values do not depend on which others exist.

use crate::janus::Janus;
use crate::janus::JanusConfig;
use crate::janus::error::Result;
use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder};
use datasets::rng::Rng;
use pipeline::Digest;
use std::collections::HashMap;
use std::sync::Mutex;

/// Every tensor of the model `config` describes, by original-layout name, in F32.
pub fn random(config: &JanusConfig, std: f64, seed: u64) -> Result<HashMap<String, Tensor>> {
    let backend = RandomBackend {
        std,
        seed,
        made: Mutex::new(HashMap::new()),
    };
    let made = {
        let vb = VarBuilder::from_backend(Box::new(&backend), DType::F32, Device::Cpu);
        Janus::new(config, vb)?;
        std::mem::take(&mut *backend.made.lock().unwrap_or_else(|p| p.into_inner()))
    };
    Ok(made)
}

/// A `VarBuilder` backend that makes each tensor asked for and keeps it.
struct RandomBackend {
    std: f64,
    seed: u64,
    made: Mutex<HashMap<String, Tensor>>,
}

/// Uniform in (0, 1] from the project's SplitMix64.
fn unit_open_below(rng: &mut Rng) -> f64 {
    ((rng.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
}

/// `n` standard normals, drawn in pairs (Box–Muller).
fn normals(rng: &mut Rng, n: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(n + 1);
    while out.len() < n {
        let (u, v) = (unit_open_below(rng), unit_open_below(rng));
        let r = (-2.0 * u.ln()).sqrt();
        let t = std::f64::consts::TAU * v;
        out.push((r * t.cos()) as f32);
        out.push((r * t.sin()) as f32);
    }
    out.truncate(n);
    out
}

impl RandomBackend {
    fn stream(&self, name: &str) -> Rng {
        let d = Digest::of_json(&(self.seed, name));
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&d.as_bytes()[..8]);
        Rng::new(u64::from_le_bytes(bytes))
    }

    fn make(&self, shape: &Shape, name: &str, hint: Init) -> candle_core::Result<Tensor> {
        let n = shape.elem_count();
        let values: Vec<f32> = match hint {
            Init::Const(c) => vec![c as f32; n],
            _ if name.ends_with(".bias") => vec![0.0; n],
            _ => {
                let std = self.std as f32;
                normals(&mut self.stream(name), n)
                    .into_iter()
                    .map(|x| x * std)
                    .collect()
            }
        };
        Tensor::from_vec(values, shape.clone(), &Device::Cpu)
    }
}

impl SimpleBackend for &RandomBackend {
    fn get(
        &self,
        shape: Shape,
        name: &str,
        hint: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let tensor = self.make(&shape, name, hint)?;
        self.made
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), tensor.clone());
        tensor.to_dtype(dtype)?.to_device(dev)
    }

    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> candle_core::Result<Tensor> {
        Err(candle_core::Error::Msg(format!(
            "random init: `{name}` asked for without a shape"
        )))
    }

    fn contains_tensor(&self, _: &str) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(t: &Tensor) -> (f64, f64) {
        let v: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
        let n = v.len() as f64;
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
        let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
        (mean, var.sqrt())
    }

    #[test]
    fn weights_follow_the_llama_init_and_the_seed() {
        let config = JanusConfig::tiny(300, 64);
        let a = random(&config, 0.02, 7).unwrap();
        let (mean, std) = stats(&a["language_model.model.layers.0.mlp.up_proj.weight"]);
        assert!(
            mean.abs() < 2e-3 && (std - 0.02).abs() < 2e-3,
            "{mean} {std}"
        );
        let (mean, std) = stats(&a["language_model.model.norm.weight"]);
        assert_eq!((mean, std), (1.0, 0.0));
        let (mean, std) = stats(&a["gen_head.vision_head.bias"]);
        assert_eq!((mean, std), (0.0, 0.0));
        assert_eq!(a["gen_head.vision_head.weight"].dims(), &[64, 64]);
        assert_eq!(a["language_model.lm_head.weight"].dims(), &[300, 64]);
        let same = random(&config, 0.02, 7).unwrap();
        let other = random(&config, 0.02, 8).unwrap();
        let key = "gen_embed.weight";
        let values = |m: &HashMap<String, Tensor>| -> Vec<f32> {
            m[key].flatten_all().unwrap().to_vec1().unwrap()
        };
        assert_eq!(values(&a), values(&same));
        assert_ne!(values(&a), values(&other));
        // Two tensors of one shape are not the same draws.
        let q: Vec<f32> = a["language_model.model.layers.0.self_attn.q_proj.weight"]
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let o: Vec<f32> = a["language_model.model.layers.0.self_attn.o_proj.weight"]
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_ne!(q, o);
    }
}
