//! Release export: a table as a dataset folder in the Hugging Face layout.
//!
//! ```text
//! data/{split}-{i:05d}-of-{n:05d}.parquet        the rows, split by a seeded hash of `id`
//! provenance/{split}-{i:05d}-of-{n:05d}.parquet  row id → task, model, template, request key
//! README.md                                       dataset card (YAML configs, dataset_info)
//! SHA256SUMS                                      sha256 of every other file
//! ```
//!
//! The same table and options give the same bytes: shards are written by the
//! deterministic [`ShardWriter`], the card holds no timestamps, files are listed sorted.

mod card;
mod split;
mod stats;
mod yaml;

pub use card::{CardInfo, SplitReport};
pub use split::Splits;

use crate::table::{ShardOptions, ShardWriter, TableError, TableReader};
use arrow::array::{Array, AsArray, ListArray, StringArray, StringBuilder, UInt32Builder};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use parquet::file::reader::{FileReader, SerializedFileReader};
use sha2::{Digest, Sha256};
use stats::Stats;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error(transparent)]
    Table(#[from] TableError),
    #[error("{0}")]
    Invalid(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ReleaseError + '_ {
    move |source| ReleaseError::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub struct ExportOptions {
    pub splits: Splits,
    /// The column that identifies a row (and decides its split).
    pub id_column: String,
    pub shard: ShardOptions,
    pub card: CardInfo,
}

/// What an export wrote.
#[derive(Debug)]
pub struct ExportReport {
    pub splits: Vec<SplitReport>,
    pub rows: u64,
    /// Every file, relative to the release folder, with its sha256, sorted.
    pub files: Vec<(String, String)>,
}

fn provenance_schema() -> SchemaRef {
    let schema = Schema::new(vec![
        Field::new("id", DataType::Utf8, true),
        Field::new("split", DataType::Utf8, true),
        Field::new("task", DataType::Utf8, true),
        Field::new("model", DataType::Utf8, true),
        Field::new("template", DataType::Utf8, true),
        Field::new("template_version", DataType::UInt32, true),
        Field::new("request_key", DataType::Utf8, true),
    ]);
    let features = schemas::hf_features(&schema).to_string();
    Arc::new(schema.with_metadata(HashMap::from([(
        schemas::HF_METADATA_KEY.to_string(),
        features,
    )])))
}

/// The provenance rows of a batch of one split: one per provenance entry, or one with
/// nulls for a row that has none.
fn provenance_rows(batch: &RecordBatch, ids: &StringArray, split: &str) -> RecordBatch {
    let mut id = StringBuilder::new();
    let mut sp = StringBuilder::new();
    let mut task = StringBuilder::new();
    let mut model = StringBuilder::new();
    let mut template = StringBuilder::new();
    let mut version = UInt32Builder::new();
    let mut key = StringBuilder::new();
    let prov = batch
        .column_by_name("provenance")
        .and_then(|c| c.as_any().downcast_ref::<ListArray>());
    for i in 0..batch.num_rows() {
        let entries = prov.filter(|p| p.is_valid(i)).map(|p| p.value(i));
        let entries = entries.as_ref().map(|e| e.as_struct());
        let n = entries.map_or(0, |e| e.len());
        let col = |name: &str| {
            entries
                .and_then(|e| e.column_by_name(name))
                .and_then(|c| c.as_any().downcast_ref::<StringArray>().cloned())
        };
        let (t, m, tp, k) = (
            col("task"),
            col("model"),
            col("template"),
            col("request_key"),
        );
        let v = entries
            .and_then(|e| e.column_by_name("template_version"))
            .and_then(|c| {
                c.as_primitive_opt::<arrow::datatypes::UInt32Type>()
                    .cloned()
            });
        for j in 0..n.max(1) {
            id.append_value(ids.value(i));
            sp.append_value(split);
            let get = |a: &Option<StringArray>| {
                a.as_ref().filter(|_| j < n).map(|a| a.value(j).to_string())
            };
            task.append_option(get(&t));
            model.append_option(get(&m));
            template.append_option(get(&tp));
            version.append_option(v.as_ref().filter(|_| j < n).map(|a| a.value(j)));
            key.append_option(get(&k));
        }
    }
    RecordBatch::try_new(
        provenance_schema(),
        vec![
            Arc::new(id.finish()),
            Arc::new(sp.finish()),
            Arc::new(task.finish()),
            Arc::new(model.finish()),
            Arc::new(template.finish()),
            Arc::new(version.finish()),
            Arc::new(key.finish()),
        ],
    )
    .expect("columns match the provenance schema")
}

/// The table's schema with `datasets` features in its metadata (computed if absent).
fn release_schema(schema: &SchemaRef) -> SchemaRef {
    if schema.metadata().contains_key(schemas::HF_METADATA_KEY) {
        return schema.clone();
    }
    let mut metadata = schema.metadata().clone();
    metadata.insert(
        schemas::HF_METADATA_KEY.to_string(),
        schemas::hf_features(schema).to_string(),
    );
    Arc::new(Schema::new(schema.fields().clone()).with_metadata(metadata))
}

/// Export the table in folder `table` into the empty (or absent) folder `out`.
pub fn export(
    table: &Path,
    out: &Path,
    options: &ExportOptions,
) -> Result<ExportReport, ReleaseError> {
    if out.exists() && std::fs::read_dir(out).map_err(io(out))?.next().is_some() {
        return Err(ReleaseError::Invalid(format!(
            "{}: the release folder must be empty",
            out.display()
        )));
    }
    let reader = TableReader::open(table)?;
    let schema = release_schema(&reader.arrow_schema()?);
    match schema.field_with_name(&options.id_column) {
        Ok(f) if f.data_type() == &DataType::Utf8 => {}
        Ok(f) => {
            return Err(ReleaseError::Invalid(format!(
                "id column `{}` is {}, not a string",
                options.id_column,
                f.data_type()
            )));
        }
        Err(_) => {
            return Err(ReleaseError::Invalid(format!(
                "the table has no id column `{}` (set `id_column`)",
                options.id_column
            )));
        }
    }
    let staging = out.join(".staging");
    let split_names: Vec<String> = options.splits.names().map(str::to_string).collect();
    let mut data = Vec::new();
    let mut prov = Vec::new();
    for name in &split_names {
        for (kind, writers, schema) in [
            ("data", &mut data, schema.clone()),
            ("provenance", &mut prov, provenance_schema()),
        ] {
            let dir = staging.join(kind).join(name);
            std::fs::create_dir_all(&dir).map_err(io(&dir))?;
            writers.push(ShardWriter::new(&dir, schema, options.shard));
        }
    }
    let mut stats = Stats::default();
    let mut rows = 0u64;
    for batch in reader.batches(None) {
        let batch = batch?;
        let batch = RecordBatch::try_new(schema.clone(), batch.columns().to_vec())
            .map_err(|e| ReleaseError::Invalid(e.to_string()))?;
        let ids = batch
            .column_by_name(&options.id_column)
            .and_then(|c| c.as_any().downcast_ref::<StringArray>())
            .expect("checked to be a string column");
        if let Some(i) = (0..ids.len()).find(|&i| ids.is_null(i)) {
            return Err(ReleaseError::Invalid(format!(
                "row {} has a null `{}`",
                rows + i as u64,
                options.id_column
            )));
        }
        let assigned: Vec<usize> = ids
            .iter()
            .map(|id| options.splits.assign(id.expect("non-null")))
            .collect();
        for (s, name) in split_names.iter().enumerate() {
            let mask: arrow::array::BooleanArray = assigned.iter().map(|&a| Some(a == s)).collect();
            let part = filter_record_batch(&batch, &mask)
                .map_err(|e| ReleaseError::Invalid(e.to_string()))?;
            if part.num_rows() == 0 {
                continue;
            }
            let part_ids = part
                .column_by_name(&options.id_column)
                .and_then(|c| c.as_any().downcast_ref::<StringArray>())
                .expect("same columns");
            prov[s].write(&provenance_rows(&part, part_ids, name))?;
            data[s].write(&part)?;
        }
        stats.add(&batch);
        rows += batch.num_rows() as u64;
    }

    let mut reports = Vec::new();
    for name in &split_names {
        let data_writer = data.remove(0);
        let prov_writer = prov.remove(0);
        let written = data_writer.finish()?;
        prov_writer.finish()?;
        let mut parquet_bytes = 0;
        let mut num_bytes = 0;
        for kind in ["data", "provenance"] {
            let from = staging.join(kind).join(name);
            let files = crate::table::shards(&from)?;
            let n = files.len();
            let to_dir = out.join(kind);
            std::fs::create_dir_all(&to_dir).map_err(io(&to_dir))?;
            for (i, f) in files.iter().enumerate() {
                let to = to_dir.join(format!("{name}-{i:05}-of-{n:05}.parquet"));
                if kind == "data" {
                    parquet_bytes += std::fs::metadata(f).map_err(io(f))?.len();
                    num_bytes += uncompressed_bytes(f)?;
                }
                std::fs::rename(f, &to).map_err(io(&to))?;
            }
        }
        reports.push(SplitReport {
            name: name.clone(),
            rows: written.rows,
            shards: written.shards,
            parquet_bytes,
            num_bytes,
        });
    }
    std::fs::remove_dir_all(&staging).map_err(io(&staging))?;

    let features: serde_json::Value = schema
        .metadata()
        .get(schemas::HF_METADATA_KEY)
        .and_then(|f| serde_json::from_str(f).ok())
        .unwrap_or_default();
    let features = features["info"]["features"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let readme = card::render(
        &options.card,
        schema
            .metadata()
            .get(schemas::SCHEMA_METADATA_KEY)
            .map(String::as_str),
        &features,
        &reports,
        &options.splits,
        &stats,
        true,
    );
    let readme_path = out.join("README.md");
    std::fs::write(&readme_path, readme).map_err(io(&readme_path))?;
    let files = checksums(out)?;
    let sums: String = files.iter().map(|(p, h)| format!("{h}  {p}\n")).collect();
    let sums_path = out.join("SHA256SUMS");
    std::fs::write(&sums_path, sums).map_err(io(&sums_path))?;
    Ok(ExportReport {
        splits: reports,
        rows,
        files,
    })
}

/// Uncompressed size of a Parquet file's row groups.
fn uncompressed_bytes(path: &Path) -> Result<u64, ReleaseError> {
    let file = std::fs::File::open(path).map_err(io(path))?;
    let reader = SerializedFileReader::new(file)
        .map_err(|e| ReleaseError::Invalid(format!("{}: {e}", path.display())))?;
    Ok(reader
        .metadata()
        .row_groups()
        .iter()
        .map(|g| g.total_byte_size() as u64)
        .sum())
}

/// sha256 of every file under `dir` (relative paths with `/`, sorted).
fn checksums(dir: &Path) -> Result<Vec<(String, String)>, ReleaseError> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).map_err(io(&d))? {
            let p = e.map_err(io(&d))?.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let bytes = std::fs::read(&p).map_err(io(&p))?;
                let rel = p
                    .strip_prefix(dir)
                    .expect("under dir")
                    .to_string_lossy()
                    .replace('\\', "/");
                out.push((rel, hex::encode(Sha256::digest(&bytes))));
            }
        }
    }
    out.sort();
    Ok(out)
}
