//! The trainable parameters: FP32 master weights as candle `Var`s, named in DeepSeek's
//! original layout, and the model built over them in the compute dtype.
//!
//! A model is built through a `VarBuilder` whose backend hands out each master weight
//! cast to the compute dtype (`to_dtype` records its gradient, so gradients arrive in
//! FP32 on the `Var`s; in FP32 the cast is the `Var` itself). candle has no autocast,
//! so this is the mixed-precision scheme: BF16 compute on a GPU, FP32 masters and
//! optimiser state. The model is rebuilt after each update in BF16 (the casts are
//! copies); in FP32 it sees the updates in place.
//!
//! The first build records the parameters: from a checkpoint (any layout
//! [`Checkpoint`] reads) or freshly initialised (benchmarks). With LoRA
//! ([`crate::core::lora`]) the parameters are the adapters only, initialised from a
//! seed, and the model takes its other weights from the frozen base.

use super::lora::Frozen;
use crate::janus::checkpoint::Checkpoint;
use crate::janus::config::JanusConfig;
use crate::janus::error::{JanusError, Result};
use crate::janus::model::Janus;
use crate::janus::vq16::{CHECKPOINT_PREFIX, Vq16};
use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::VarBuilder;
use candle_nn::var_builder::SimpleBackend;
use pipeline::Digest;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// The parameters, in the order the model asks for them.
pub struct Params {
    pub names: Vec<String>,
    pub vars: Vec<Var>,
    index: HashMap<String, usize>,
}

/// Where a first build takes its values from.
enum Source {
    Checkpoint(VarBuilder<'static>),
    Init,
    /// Constants and uniform draws from this seed (hashed with each name).
    Seeded(u64),
    /// Every parameter is recorded already.
    Recorded,
}

struct Backend {
    params: Arc<Mutex<Params>>,
    source: Source,
    /// Weights that are not parameters (a LoRA base), in the compute dtype.
    frozen: Option<Arc<HashMap<String, Tensor>>>,
}

/// `init` of `shape`, its random draws from `seed` and `name`.
fn seeded(
    seed: u64,
    name: &str,
    shape: Shape,
    init: candle_nn::Init,
    dev: &Device,
) -> candle_core::Result<Tensor> {
    match init {
        candle_nn::Init::Const(v) => Tensor::full(v as f32, shape, dev),
        candle_nn::Init::Uniform { lo, up } => {
            let mut state = Digest::of_json(&(seed, name)).seed();
            let values: Vec<f32> = (0..shape.elem_count())
                .map(|_| {
                    // splitmix64, the top 24 bits as a fraction of 1.
                    state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
                    let mut z = state;
                    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                    let u = ((z ^ (z >> 31)) >> 40) as f64 / (1u64 << 24) as f64;
                    (lo + (up - lo) * u) as f32
                })
                .collect();
            Tensor::from_vec(values, shape, dev)
        }
        other => candle_core::bail!("no seeded initialiser for `{name}` ({other:?})"),
    }
}

impl SimpleBackend for Backend {
    fn get(
        &self,
        shape: Shape,
        name: &str,
        init: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let mut params = self.params.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(&i) = params.index.get(name) {
            let var = &params.vars[i];
            if var.shape() != &shape {
                candle_core::bail!(
                    "parameter `{name}` is {:?}, the model asks for {:?}",
                    var.dims(),
                    shape.dims()
                )
            }
            return var.as_tensor().to_dtype(dtype);
        }
        if let Some(t) = self.frozen.as_ref().and_then(|f| f.get(name)) {
            if t.shape() != &shape {
                candle_core::bail!(
                    "frozen weight `{name}` is {:?}, the model asks for {:?}",
                    t.dims(),
                    shape.dims()
                )
            }
            return t.to_dtype(dtype);
        }
        let var = match &self.source {
            Source::Checkpoint(vb) => {
                Var::from_tensor(&vb.get_with_hints_dtype(shape, name, init, DType::F32)?)?
            }
            Source::Init => init.var(shape, DType::F32, dev)?,
            Source::Seeded(seed) => Var::from_tensor(&seeded(*seed, name, shape, init, dev)?)?,
            Source::Recorded => candle_core::bail!("no parameter `{name}`"),
        };
        let tensor = var.as_tensor().to_dtype(dtype)?;
        let i = params.vars.len();
        params.index.insert(name.to_string(), i);
        params.names.push(name.to_string());
        params.vars.push(var);
        Ok(tensor)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, _: &Device) -> candle_core::Result<Tensor> {
        let params = self.params.lock().unwrap_or_else(|p| p.into_inner());
        match params.index.get(name) {
            Some(&i) => params.vars[i].as_tensor().to_dtype(dtype),
            None => match self.frozen.as_ref().and_then(|f| f.get(name)) {
                Some(t) => t.to_dtype(dtype),
                None => candle_core::bail!("no parameter `{name}`"),
            },
        }
    }

    fn contains_tensor(&self, name: &str) -> bool {
        let recorded = self
            .params
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .index
            .contains_key(name);
        recorded
            || self.frozen.as_ref().is_some_and(|f| f.contains_key(name))
            || match &self.source {
                Source::Checkpoint(vb) => vb.contains_tensor(name),
                Source::Init | Source::Seeded(_) | Source::Recorded => false,
            }
    }
}

fn empty() -> Arc<Mutex<Params>> {
    Arc::new(Mutex::new(Params {
        names: Vec::new(),
        vars: Vec::new(),
        index: HashMap::new(),
    }))
}

fn take(shared: Arc<Mutex<Params>>) -> Params {
    match Arc::try_unwrap(shared) {
        Ok(m) => m.into_inner().unwrap_or_else(|p| p.into_inner()),
        Err(_) => unreachable!("the backend is dropped with the model builder"),
    }
}

impl Params {
    /// The weights of the checkpoint folder (or file) `path`, as FP32 masters on `device`.
    pub fn from_checkpoint(path: &Path, config: &JanusConfig, device: &Device) -> Result<Params> {
        let checkpoint = Arc::new(Checkpoint::open(path)?);
        let shared = empty();
        checkpoint.build(DType::F32, device, |vb| {
            let backend = Backend {
                params: shared.clone(),
                source: Source::Checkpoint(vb),
                frozen: None,
            };
            let builder = VarBuilder::from_backend(Box::new(backend), DType::F32, device.clone());
            Janus::new(config, builder).map(drop)
        })?;
        Ok(take(shared))
    }

    /// The VQ-16's weights (`gen_vision_model.*`) in the checkpoint `path`, in the
    /// original layout: training leaves them as they are, and the model it writes keeps
    /// them so that the folder draws on its own. `None` when the checkpoint holds no
    /// VQ-16 (a model trained over another image tokenizer).
    pub fn vq_from_checkpoint(
        path: &Path,
        config: &JanusConfig,
        device: &Device,
    ) -> Result<Option<Params>> {
        let checkpoint = Arc::new(Checkpoint::open(path)?);
        if !checkpoint.contains(&format!("{CHECKPOINT_PREFIX}.quantize.embedding.weight")) {
            return Ok(None);
        }
        let shared = empty();
        checkpoint.build(DType::F32, device, |vb| {
            let backend = Backend {
                params: shared.clone(),
                source: Source::Checkpoint(vb),
                frozen: None,
            };
            let builder = VarBuilder::from_backend(Box::new(backend), DType::F32, device.clone());
            Vq16::new(config.vq.clone(), builder.pp(CHECKPOINT_PREFIX)).map(drop)
        })?;
        Ok(Some(take(shared)))
    }

    /// Freshly initialised weights (candle's default initialisers).
    pub fn random(config: &JanusConfig, device: &Device) -> Result<Params> {
        let shared = empty();
        {
            let backend = Backend {
                params: shared.clone(),
                source: Source::Init,
                frozen: None,
            };
            let builder = VarBuilder::from_backend(Box::new(backend), DType::F32, device.clone());
            Janus::new(config, builder)?;
        }
        Ok(take(shared))
    }

    /// Parameters from named tensors (a resumed checkpoint), in `names`' order.
    pub fn from_tensors(names: &[String], tensors: &HashMap<String, Tensor>) -> Result<Params> {
        let mut params = Params {
            names: Vec::new(),
            vars: Vec::new(),
            index: HashMap::new(),
        };
        for name in names {
            let t = tensors.get(name).ok_or_else(|| {
                JanusError::Invalid(format!("the checkpoint has no parameter `{name}`"))
            })?;
            let i = params.vars.len();
            params.index.insert(name.clone(), i);
            params.names.push(name.clone());
            params
                .vars
                .push(Var::from_tensor(&t.to_dtype(DType::F32)?)?);
        }
        Ok(params)
    }

    /// The LoRA adapters of `frozen`'s targets, A drawn from its seed and B zero.
    pub fn adapters(config: &JanusConfig, frozen: &Frozen, device: &Device) -> Result<Params> {
        let shared = empty();
        {
            let backend = Backend {
                params: shared.clone(),
                source: Source::Seeded(frozen.lora.seed),
                frozen: Some(frozen.tensors.clone()),
            };
            let builder = VarBuilder::from_backend(Box::new(backend), DType::F32, device.clone());
            Janus::with_lora(config, builder, Some(&frozen.lora))?;
        }
        Ok(take(shared))
    }

    /// The model over these parameters, computing in `dtype`.
    pub fn model(&self, config: &JanusConfig, dtype: DType) -> Result<Janus> {
        self.model_with(config, dtype, None)
    }

    /// [`Params::model`], these parameters being the adapters of `frozen` when given.
    pub fn model_with(
        &self,
        config: &JanusConfig,
        dtype: DType,
        frozen: Option<&Frozen>,
    ) -> Result<Janus> {
        let shared = Arc::new(Mutex::new(Params {
            names: self.names.clone(),
            vars: self.vars.clone(),
            index: self.index.clone(),
        }));
        let device = self
            .vars
            .first()
            .map_or(Device::Cpu, |v| v.device().clone());
        let backend = Backend {
            params: shared,
            source: Source::Recorded,
            frozen: frozen.map(|f| f.tensors.clone()),
        };
        let builder = VarBuilder::from_backend(Box::new(backend), dtype, device);
        Ok(Janus::with_lora(config, builder, frozen.map(|f| &f.lora))?)
    }

    /// Whether weight decay applies: matrices and embeddings, not norms or biases.
    pub fn decays(&self, i: usize) -> bool {
        self.vars[i].rank() >= 2
    }

    pub fn count(&self) -> usize {
        self.vars.iter().map(|v| v.elem_count()).sum()
    }

    /// The weights as named tensors (the `Var`s' current values).
    pub fn tensors(&self) -> Vec<(String, Tensor)> {
        self.names
            .iter()
            .zip(&self.vars)
            .map(|(n, v)| (n.clone(), v.as_detached_tensor()))
            .collect()
    }

    /// Write the weights, with the untrained ones `kept`, as `path` (safetensors,
    /// original layout) in `dtype`.
    pub fn save(&self, path: &Path, dtype: DType, kept: Option<&Params>) -> Result<()> {
        let tensors = self
            .tensors()
            .into_iter()
            .chain(kept.map(Params::tensors).unwrap_or_default())
            .map(|(n, t)| Ok((n, t.to_dtype(dtype)?.to_device(&Device::Cpu)?)))
            .collect::<Result<HashMap<_, _>>>()?;
        candle_core::safetensors::save(&tensors, path).map_err(|e| JanusError::checkpoint(path, e))
    }
}
