//! PyTorch `.bin` checkpoints to safetensors, one tensor in memory at a time.
//!
//! The tensors keep their names, dtypes and shapes (a DeepSeek checkpoint stays in the
//! original layout, understanding path included), so the result loads wherever the
//! original did. Shards of at most `shard_bytes` (a tensor larger than that gets a
//! shard of its own) are named `model-00001-of-0000N.safetensors` with a
//! `model.safetensors.index.json`, or `model.safetensors` when one suffices. The
//! folder's small files (config, tokenizer, processor) are copied beside them.

use super::checkpoint::Checkpoint;
use super::error::{JanusError, Result};
use candle_core::DType;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Files copied from a model folder beside the converted weights, when present (and
/// brought into the store with it by `model.import`).
pub(crate) const SIDE_FILES: &[&str] = &[
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "processor_config.json",
    "preprocessor_config.json",
];

/// What a conversion wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Converted {
    pub files: Vec<PathBuf>,
    pub tensors: usize,
    pub bytes: u64,
}

/// safetensors' name of a dtype a pickle can hold.
fn dtype_name(dtype: DType) -> Option<&'static str> {
    Some(match dtype {
        DType::U8 => "U8",
        DType::U32 => "U32",
        DType::I64 => "I64",
        DType::BF16 => "BF16",
        DType::F16 => "F16",
        DType::F32 => "F32",
        DType::F64 => "F64",
        _ => return None,
    })
}

struct Entry {
    name: String,
    dtype_name: &'static str,
    shape: Vec<usize>,
    bytes: u64,
}

/// Write one shard: the header of `entries`, then their data read one at a time.
fn write_shard(checkpoint: &Checkpoint, entries: &[Entry], path: &Path) -> Result<()> {
    let mut header = serde_json::Map::new();
    header.insert("__metadata__".into(), serde_json::json!({"format": "pt"}));
    let mut offset = 0u64;
    for e in entries {
        header.insert(
            e.name.clone(),
            serde_json::json!({
                "dtype": e.dtype_name,
                "shape": e.shape,
                "data_offsets": [offset, offset + e.bytes],
            }),
        );
        offset += e.bytes;
    }
    let mut header = serde_json::to_vec(&header)
        .map_err(|e| JanusError::checkpoint(path, format!("header: {e}")))?;
    header.resize(header.len().next_multiple_of(8), b' ');
    let tmp = path.with_extension("safetensors.partial");
    let io = |e| JanusError::io(&tmp, e);
    let file = std::fs::File::create(&tmp).map_err(io)?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    out.write_all(&(header.len() as u64).to_le_bytes())
        .map_err(io)?;
    out.write_all(&header).map_err(io)?;
    for e in entries {
        let (tensor, source) = checkpoint
            .read(&e.name)?
            .ok_or_else(|| JanusError::checkpoint(path, format!("tensor `{}` vanished", e.name)))?;
        let data = safetensors::View::data(&tensor);
        if data.len() as u64 != e.bytes {
            return Err(JanusError::checkpoint(
                source,
                format!(
                    "tensor `{}`: {} bytes read, {} expected",
                    e.name,
                    data.len(),
                    e.bytes
                ),
            ));
        }
        out.write_all(&data).map_err(io)?;
    }
    out.into_inner()
        .map_err(|e| io(e.into_error()))?
        .sync_all()
        .map_err(io)?;
    std::fs::rename(&tmp, path).map_err(|e| JanusError::io(path, e))
}

/// Convert the `.bin` checkpoint at `input` (a model folder or one file) into
/// safetensors in the folder `output`.
pub fn convert(input: &Path, output: &Path, shard_bytes: u64) -> Result<Converted> {
    let checkpoint = Checkpoint::open(input)?;
    if let Some(p) = checkpoint
        .paths()
        .iter()
        .find(|p| p.extension().is_some_and(|x| x == "safetensors"))
    {
        return Err(JanusError::checkpoint(p, "is safetensors already"));
    }
    let mut entries = Vec::new();
    for name in checkpoint.names() {
        let (dtype, shape) = checkpoint
            .info(name)?
            .ok_or_else(|| JanusError::checkpoint(input, format!("tensor `{name}` vanished")))?;
        let dtype_name = dtype_name(dtype).ok_or_else(|| {
            JanusError::checkpoint(
                input,
                format!("tensor `{name}` has dtype {dtype:?}, which is not converted"),
            )
        })?;
        let bytes = (shape.iter().product::<usize>() * dtype.size_in_bytes()) as u64;
        entries.push(Entry {
            name: name.to_string(),
            dtype_name,
            shape,
            bytes,
        });
    }
    let mut shards: Vec<Vec<Entry>> = vec![Vec::new()];
    let mut size = 0u64;
    for e in entries {
        let current = shards.last().map_or(0, Vec::len);
        if current > 0 && size + e.bytes > shard_bytes {
            shards.push(Vec::new());
            size = 0;
        }
        size += e.bytes;
        if let Some(last) = shards.last_mut() {
            last.push(e);
        }
    }
    std::fs::create_dir_all(output).map_err(|e| JanusError::io(output, e))?;
    let n = shards.len();
    let mut files = Vec::with_capacity(n);
    let mut weight_map = BTreeMap::new();
    let (mut tensors, mut bytes) = (0, 0);
    for (i, shard) in shards.iter().enumerate() {
        let name = if n == 1 {
            "model.safetensors".to_string()
        } else {
            format!("model-{:05}-of-{n:05}.safetensors", i + 1)
        };
        let path = output.join(&name);
        write_shard(&checkpoint, shard, &path)?;
        for e in shard {
            weight_map.insert(e.name.clone(), name.clone());
            tensors += 1;
            bytes += e.bytes;
        }
        files.push(path);
    }
    if n > 1 {
        let index =
            serde_json::json!({"metadata": {"total_size": bytes}, "weight_map": weight_map});
        let path = output.join("model.safetensors.index.json");
        let text =
            serde_json::to_vec_pretty(&index).map_err(|e| JanusError::checkpoint(&path, e))?;
        std::fs::write(&path, text).map_err(|e| JanusError::io(&path, e))?;
        files.push(path);
    }
    if input.is_dir() {
        for side in SIDE_FILES {
            let from = input.join(side);
            if from.is_file() {
                let to = output.join(side);
                std::fs::copy(&from, &to).map_err(|e| JanusError::io(&from, e))?;
                files.push(to);
            }
        }
    }
    Ok(Converted {
        files,
        tensors,
        bytes,
    })
}
