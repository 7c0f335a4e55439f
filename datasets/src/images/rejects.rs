//! Tables of rejected rows: one row per image or record a stage set aside, with its id,
//! a reason (a stable name), a detail that says what was found, and where it came from.
//! A stage writes them in sub-folders of its artifact (`quarantine/`, `unmatched/…`),
//! so that the `part-*.parquet` shards at the top stay the one table of the artifact's
//! schema; [`subtables`] finds them again for reports.
//!
//! The schema (`reject@1`) is defined here rather than in `schemas` because no stage
//! takes it as an input: it is read by reports and by people (it opens in polars,
//! pyarrow and DuckDB like any table).

use crate::table::{ShardOptions, ShardWriter, TableError, shards};
use arrow::array::{ArrayRef, StringArray};
use arrow::datatypes::{DataType, Field};
use arrow::record_batch::RecordBatch;
use schemas::SchemaDef;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub const SCHEMA: SchemaDef = SchemaDef {
    name: "reject",
    version: 1,
    doc: "A row set aside by a stage, with the reason and what was found.",
    fields,
    added: &[],
};

fn fields() -> Vec<Field> {
    vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("reason", DataType::Utf8, false),
        Field::new("detail", DataType::Utf8, false),
        Field::new("path", DataType::Utf8, true),
        Field::new("source", DataType::Utf8, true),
    ]
}

/// One rejected row.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reject {
    pub id: String,
    pub reason: String,
    pub detail: String,
    /// The image's path, where it has one.
    pub path: Option<String>,
    /// Where the row came from (a folder, a file, a dataset id).
    pub source: Option<String>,
}

/// A record batch of rejects, with the schema's metadata.
pub fn to_batch(rows: &[Reject]) -> Result<RecordBatch, TableError> {
    let text = |f: fn(&Reject) -> Option<&str>| -> ArrayRef {
        Arc::new(rows.iter().map(f).collect::<StringArray>())
    };
    RecordBatch::try_new(
        Arc::new(SCHEMA.arrow_schema()),
        vec![
            text(|r| Some(&r.id)),
            text(|r| Some(&r.reason)),
            text(|r| Some(&r.detail)),
            text(|r| r.path.as_deref()),
            text(|r| r.source.as_deref()),
        ],
    )
    .map_err(|e| TableError::format(Path::new("(rejects)"), e))
}

/// A writer of a reject table in `dir` (created).
pub fn writer(dir: &Path) -> Result<ShardWriter, TableError> {
    std::fs::create_dir_all(dir).map_err(TableError::io(dir))?;
    Ok(ShardWriter::new(
        dir,
        Arc::new(SCHEMA.arrow_schema()),
        ShardOptions::default(),
    ))
}

/// The sub-folders of an artifact folder that hold tables (their `/`-separated paths
/// relative to `dir`, sorted), at any depth.
pub fn subtables(dir: &Path) -> Result<Vec<(String, PathBuf)>, TableError> {
    let mut found = Vec::new();
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).map_err(TableError::io(&folder))? {
            let path = entry.map_err(TableError::io(&folder))?.path();
            if !path.is_dir() {
                continue;
            }
            if !shards(&path)?.is_empty() {
                let rel = path.strip_prefix(dir).unwrap_or(&path);
                let name = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/");
                found.push((name, path.clone()));
            }
            folders.push(path);
        }
    }
    found.sort();
    Ok(found)
}
