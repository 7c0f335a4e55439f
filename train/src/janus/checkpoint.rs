//! Checkpoint files: find them in a model folder, read their tensor names, and build
//! models from them in either key layout.
//!
//! A folder holds, in this order of preference: `model.safetensors.index.json` with its
//! shards, `model.safetensors`, other `*.safetensors`, `pytorch_model.bin.index.json`
//! with its shards (Janus-Pro-7B), or `pytorch_model.bin` (Janus-Pro-1B). safetensors
//! files are memory-mapped; PyTorch's zip pickles are read tensor by tensor (never all
//! at once). A path to one file is that file alone.
//!
//! [`Checkpoint::build`] hands a model constructor a `VarBuilder` that speaks the
//! original layout whatever the files use (names mapped through [`Layout::name`]), so
//! the same `VarBuilder` rooted at `gen_vision_model` builds VQ-16 from either layout.
//! Tensors the model does not ask for are ignored; every tensor it asks for and the
//! files lack is collected, and the build fails with the whole list.

use super::error::{JanusError, Result};
use super::keys::Layout;
use candle_core::pickle::PthTensors;
use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::VarBuilder;
use candle_nn::var_builder::SimpleBackend;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Index files and their weight files, in the order they are looked for.
const SAFETENSORS_INDEX: &str = "model.safetensors.index.json";
/// The weights file of a single-file folder (the one we write).
pub const SAFETENSORS_SINGLE: &str = "model.safetensors";
const BIN_INDEX: &str = "pytorch_model.bin.index.json";
const BIN_SINGLE: &str = "pytorch_model.bin";

enum WeightFile {
    Safetensors(MmapedSafetensors),
    Pth(PthTensors),
}

/// The weight files of one checkpoint and where each tensor lives.
pub struct Checkpoint {
    /// The folder or file it was opened from (named in errors).
    root: PathBuf,
    paths: Vec<PathBuf>,
    files: Vec<WeightFile>,
    /// Stored name → index into `files`.
    tensors: HashMap<String, usize>,
    layout: Layout,
}

/// The shard file names an index json lists (`weight_map` values), once each, sorted.
fn index_shards(index: &Path) -> Result<Vec<PathBuf>> {
    let text = std::fs::read(index).map_err(|e| JanusError::io(index, e))?;
    let json: serde_json::Value = serde_json::from_slice(&text)
        .map_err(|e| JanusError::checkpoint(index, format!("not JSON: {e}")))?;
    let map = json["weight_map"]
        .as_object()
        .ok_or_else(|| JanusError::checkpoint(index, "no `weight_map` object"))?;
    let dir = index.parent().unwrap_or(Path::new("."));
    let mut files = BTreeSet::new();
    for (name, file) in map {
        let file = file.as_str().ok_or_else(|| {
            JanusError::checkpoint(index, format!("`weight_map.{name}` is not a file name"))
        })?;
        files.insert(dir.join(file));
    }
    if files.is_empty() {
        return Err(JanusError::checkpoint(index, "`weight_map` is empty"));
    }
    Ok(files.into_iter().collect())
}

/// The weight files of a model folder (see the module documentation).
pub fn weight_files(dir: &Path) -> Result<Vec<PathBuf>> {
    Ok(find_weights(dir)?.1)
}

/// The weight files of a model folder, with the index json that lists them when they
/// are shards (see the module documentation).
pub fn find_weights(dir: &Path) -> Result<(Option<PathBuf>, Vec<PathBuf>)> {
    let index = dir.join(SAFETENSORS_INDEX);
    if index.is_file() {
        let shards = index_shards(&index)?;
        return Ok((Some(index), shards));
    }
    if dir.join(SAFETENSORS_SINGLE).is_file() {
        return Ok((None, vec![dir.join(SAFETENSORS_SINGLE)]));
    }
    let entries = std::fs::read_dir(dir).map_err(|e| JanusError::io(dir, e))?;
    let mut safetensors: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .collect();
    if !safetensors.is_empty() {
        safetensors.sort();
        return Ok((None, safetensors));
    }
    let index = dir.join(BIN_INDEX);
    if index.is_file() {
        let shards = index_shards(&index)?;
        return Ok((Some(index), shards));
    }
    if dir.join(BIN_SINGLE).is_file() {
        return Ok((None, vec![dir.join(BIN_SINGLE)]));
    }
    Err(JanusError::checkpoint(
        dir,
        format!(
            "no weights: looked for {SAFETENSORS_INDEX}, {SAFETENSORS_SINGLE}, *.safetensors, {BIN_INDEX} and {BIN_SINGLE}"
        ),
    ))
}

fn is_safetensors(path: &Path) -> bool {
    path.extension().is_some_and(|x| x == "safetensors")
}

impl Checkpoint {
    /// Open a model folder's weights, or one weight file.
    pub fn open(path: &Path) -> Result<Self> {
        let paths = if path.is_dir() {
            weight_files(path)?
        } else {
            vec![path.to_path_buf()]
        };
        let mut files = Vec::with_capacity(paths.len());
        let mut tensors = HashMap::new();
        for (index, p) in paths.iter().enumerate() {
            let file = if is_safetensors(p) {
                // SAFETY: the file is mapped read-only; like every reader of safetensors
                // weights we assume nobody truncates it while the model is alive.
                let st = unsafe { MmapedSafetensors::new(p) }
                    .map_err(|e| JanusError::checkpoint(p, e))?;
                for (name, _) in st.tensors() {
                    tensors.insert(name, index);
                }
                WeightFile::Safetensors(st)
            } else {
                let pth = PthTensors::new(p, None).map_err(|e| JanusError::checkpoint(p, e))?;
                for name in pth.tensor_infos().keys() {
                    tensors.insert(name.clone(), index);
                }
                WeightFile::Pth(pth)
            };
            files.push(file);
        }
        let layout = Layout::detect(tensors.keys().map(String::as_str)).ok_or_else(|| {
            JanusError::checkpoint(
                path,
                "not a Janus-Pro checkpoint: no `language_model.*` (DeepSeek) or `model.language_model.*` (transformers) tensors",
            )
        })?;
        Ok(Checkpoint {
            root: path.to_path_buf(),
            paths,
            files,
            tensors,
            layout,
        })
    }

    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The weight files, in the order they were opened.
    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    /// The stored tensor names, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.tensors.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    /// Does the checkpoint hold the original-layout tensor `name`?
    pub fn contains(&self, name: &str) -> bool {
        self.layout
            .name(name)
            .is_some_and(|stored| self.tensors.contains_key(&stored))
    }

    /// The stored tensor `stored` as the files hold it (dtype and device of the file),
    /// with the file it came from.
    pub fn read(&self, stored: &str) -> Result<Option<(Tensor, &Path)>> {
        let Some(&index) = self.tensors.get(stored) else {
            return Ok(None);
        };
        let path = &self.paths[index];
        let tensor = match &self.files[index] {
            WeightFile::Safetensors(st) => st.load(stored, &Device::Cpu),
            WeightFile::Pth(pth) => pth.get(stored).and_then(|t| {
                t.ok_or_else(|| candle_core::Error::Msg(format!("no tensor `{stored}`")))
            }),
        }
        .map_err(|e| JanusError::checkpoint(path, format!("tensor `{stored}`: {e}")))?;
        Ok(Some((tensor, path)))
    }

    /// The stored tensor's dtype and shape, without reading its data.
    pub fn info(&self, stored: &str) -> Result<Option<(DType, Vec<usize>)>> {
        let Some(&index) = self.tensors.get(stored) else {
            return Ok(None);
        };
        let path = &self.paths[index];
        Ok(Some(match &self.files[index] {
            WeightFile::Safetensors(st) => {
                let view = st
                    .get(stored)
                    .map_err(|e| JanusError::checkpoint(path, format!("tensor `{stored}`: {e}")))?;
                let dtype = DType::try_from(view.dtype())
                    .map_err(|e| JanusError::checkpoint(path, format!("tensor `{stored}`: {e}")))?;
                (dtype, view.shape().to_vec())
            }
            WeightFile::Pth(pth) => {
                let info = pth
                    .tensor_infos()
                    .get(stored)
                    .ok_or_else(|| JanusError::checkpoint(path, format!("no tensor `{stored}`")))?;
                (info.dtype, info.layout.dims().to_vec())
            }
        }))
    }

    /// Build a model from the checkpoint: `build` gets a `VarBuilder` in the original
    /// layout, in `dtype` on `device`. Fails with every missing tensor's name.
    pub fn build<T>(
        self: &Arc<Self>,
        dtype: DType,
        device: &Device,
        build: impl FnOnce(VarBuilder<'static>) -> candle_core::Result<T>,
    ) -> Result<T> {
        let missing = Arc::new(Mutex::new(Vec::new()));
        let backend = Backend {
            checkpoint: self.clone(),
            missing: missing.clone(),
        };
        let vb = VarBuilder::from_backend(Box::new(backend), dtype, device.clone());
        let model = build(vb)?;
        let mut missing = std::mem::take(&mut *missing.lock().unwrap_or_else(|p| p.into_inner()));
        if !missing.is_empty() {
            missing.sort();
            missing.dedup();
            return Err(JanusError::MissingKeys {
                checkpoint: self.root.display().to_string(),
                keys: missing,
            });
        }
        Ok(model)
    }
}

/// The `VarBuilder` backend of [`Checkpoint::build`]: original names in, the files'
/// names looked up; a missing tensor is recorded and stands in as zeros (a broadcast
/// scalar, so nothing is allocated) until the build reports them all.
struct Backend {
    checkpoint: Arc<Checkpoint>,
    missing: Arc<Mutex<Vec<String>>>,
}

impl Backend {
    fn stand_in(
        &self,
        name: &str,
        shape: Shape,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        self.missing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(name.to_string());
        Tensor::zeros((), dtype, dev)?.broadcast_as(shape)
    }
}

impl SimpleBackend for Backend {
    fn get(
        &self,
        shape: Shape,
        name: &str,
        _: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let ckpt = &self.checkpoint;
        let Some(stored) = ckpt.layout.name(name) else {
            return self.stand_in(name, shape, dtype, dev);
        };
        let read = ckpt
            .read(&stored)
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let Some((tensor, path)) = read else {
            return self.stand_in(name, shape, dtype, dev);
        };
        if tensor.shape() != &shape {
            let error = JanusError::Shape {
                file: path.display().to_string(),
                key: stored,
                expected: shape.dims().to_vec(),
                found: tensor.dims().to_vec(),
            };
            return Err(candle_core::Error::Msg(error.to_string()));
        }
        tensor.to_dtype(dtype)?.to_device(dev)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        let ckpt = &self.checkpoint;
        let stored = ckpt.layout.name(name);
        let read = match &stored {
            Some(stored) => ckpt
                .read(stored)
                .map_err(|e| candle_core::Error::Msg(e.to_string()))?,
            None => None,
        };
        match read {
            Some((tensor, _)) => tensor.to_dtype(dtype)?.to_device(dev),
            None => Err(candle_core::Error::Msg(format!(
                "{}: no tensor `{name}`",
                ckpt.root.display()
            ))),
        }
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.checkpoint.contains(name)
    }
}
