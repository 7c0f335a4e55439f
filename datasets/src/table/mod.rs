//! Tables: folders of Parquet shards `part-00000.parquet`, `part-00001.parquet`, … of
//! one Arrow schema.
//!
//! [`ShardWriter`] streams record batches into shards of a target size, laid out as the
//! Hugging Face writer lays them out; [`TableReader`] streams them back, row group by
//! row group, with column projection and schema checks; [`scan`] opens them as one
//! polars lazy frame for joins, filters, dedup and statistics. Data frames reach the
//! writer through [`frames`], so every table is written one way.

pub mod frames;
mod reader;
mod writer;

pub use reader::{TableReader, read_shard, scan};
pub use writer::{ShardOptions, ShardWriter, TableSummary};

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("{path}: {message}")]
    Format { path: PathBuf, message: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Schema {
        path: PathBuf,
        #[source]
        source: Box<schemas::EvolutionError>,
    },
}

impl TableError {
    pub(crate) fn format(path: &Path, message: impl std::fmt::Display) -> Self {
        TableError::Format {
            path: path.to_path_buf(),
            message: message.to_string(),
        }
    }

    pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TableError + '_ {
        move |source| TableError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Name of shard `i`.
pub fn shard_name(i: usize) -> String {
    format!("part-{i:05}.parquet")
}

/// The shards of a table folder, in order.
pub fn shards(dir: &Path) -> Result<Vec<PathBuf>, TableError> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(TableError::io(dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("part-") && n.ends_with(".parquet"))
        })
        .collect();
    out.sort();
    Ok(out)
}
