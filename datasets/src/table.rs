//! A table is a folder of Parquet shards `part-00000.parquet`, `part-00001.parquet`, …
//! of one schema. [`TableWriter`] streams data frames into shards of a target size;
//! [`scan`] opens the shards as one lazy frame.

use polars::prelude::*;
use schemas::{SCHEMA_METADATA_KEY, SchemaId};
use std::fs::File;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("{path}: {source}")]
    Polars {
        path: PathBuf,
        #[source]
        source: PolarsError,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: columns differ from the first shard's: {message}")]
    SchemaMismatch { path: PathBuf, message: String },
}

fn polars_at(path: &Path) -> impl FnOnce(PolarsError) -> TableError + '_ {
    move |source| TableError::Polars {
        path: path.to_path_buf(),
        source,
    }
}

fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> TableError + '_ {
    move |source| TableError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Name of shard `i`.
pub fn shard_name(i: usize) -> String {
    format!("part-{i:05}.parquet")
}

/// What a finished table holds.
#[derive(Clone, Debug, PartialEq)]
pub struct TableSummary {
    pub rows: u64,
    pub shards: usize,
    /// Column names and polars dtypes, in order.
    pub columns: Vec<(String, String)>,
}

impl TableSummary {
    /// The facts recorded in the artifact manifest.
    pub fn meta(&self) -> serde_json::Value {
        serde_json::json!({
            "shards": self.shards,
            "columns": self.columns.iter().map(|(n, t)| serde_json::json!({"name": n, "dtype": t})).collect::<Vec<_>>(),
        })
    }
}

/// Writes data frames into shards of `rows_per_shard` rows (zstd-compressed).
pub struct TableWriter {
    dir: PathBuf,
    rows_per_shard: usize,
    schema_id: Option<SchemaId>,
    pending: Option<DataFrame>,
    shards: usize,
    rows: u64,
    schema: Option<Schema>,
}

impl TableWriter {
    pub fn new(dir: &Path, rows_per_shard: usize, schema_id: Option<SchemaId>) -> Self {
        TableWriter {
            dir: dir.to_path_buf(),
            rows_per_shard: rows_per_shard.max(1),
            schema_id,
            pending: None,
            shards: 0,
            rows: 0,
            schema: None,
        }
    }

    /// Append rows. Every frame must have the first frame's columns.
    pub fn write(&mut self, df: DataFrame) -> Result<(), TableError> {
        match &self.schema {
            None => self.schema = Some(df.schema().as_ref().clone()),
            Some(s) if s != df.schema().as_ref() => {
                return Err(TableError::SchemaMismatch {
                    path: self.dir.join(shard_name(self.shards)),
                    message: format!("expected {s:?}, got {:?}", df.schema()),
                });
            }
            Some(_) => {}
        }
        let mut pending = match self.pending.take() {
            Some(mut p) => {
                p.vstack_mut_owned(df).map_err(polars_at(&self.dir))?;
                p
            }
            None => df,
        };
        while pending.height() >= self.rows_per_shard {
            let rest = pending.slice(
                self.rows_per_shard as i64,
                pending.height() - self.rows_per_shard,
            );
            let head = pending.slice(0, self.rows_per_shard);
            self.flush(head)?;
            pending = rest;
        }
        if pending.height() > 0 {
            self.pending = Some(pending);
        }
        Ok(())
    }

    fn flush(&mut self, mut df: DataFrame) -> Result<(), TableError> {
        let path = self.dir.join(shard_name(self.shards));
        let file = File::create(&path).map_err(io_at(&path))?;
        let metadata = self.schema_id.as_ref().map(|id| {
            KeyValueMetadata::from_static(vec![(SCHEMA_METADATA_KEY.to_string(), id.to_string())])
        });
        df.rechunk_mut();
        ParquetWriter::new(file)
            .with_compression(ParquetCompression::Zstd(None))
            .with_key_value_metadata(metadata)
            .finish(&mut df)
            .map_err(polars_at(&path))?;
        self.shards += 1;
        self.rows += df.height() as u64;
        Ok(())
    }

    /// Write what is left. A table with no rows still gets one (empty) shard, so that
    /// its columns are known.
    pub fn finish(mut self) -> Result<TableSummary, TableError> {
        if let Some(p) = self.pending.take() {
            self.flush(p)?;
        }
        if self.shards == 0 {
            let schema = self.schema.clone().unwrap_or_default();
            self.flush(DataFrame::empty_with_schema(&schema))?;
        }
        let columns = self
            .schema
            .as_ref()
            .map(|s| {
                s.iter()
                    .map(|(n, t)| (n.to_string(), t.to_string()))
                    .collect()
            })
            .unwrap_or_default();
        Ok(TableSummary {
            rows: self.rows,
            shards: self.shards,
            columns,
        })
    }
}

/// The shards of a table folder, in order.
pub fn shards(dir: &Path) -> Result<Vec<PathBuf>, TableError> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io_at(dir))?
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

/// One lazy frame over the given Parquet files.
pub fn scan(files: &[PathBuf]) -> Result<LazyFrame, TableError> {
    let paths: Vec<PlRefPath> = files
        .iter()
        .map(|p| PlRefPath::try_from_path(p))
        .collect::<PolarsResult<_>>()
        .map_err(polars_at(
            files.first().map_or(Path::new("."), |p| p.as_path()),
        ))?;
    LazyFrame::scan_parquet_files(paths.into_iter().collect(), ScanArgsParquet::default()).map_err(
        polars_at(files.first().map_or(Path::new("."), |p| p.as_path())),
    )
}

/// Read one shard whole.
pub fn read_shard(path: &Path) -> Result<DataFrame, TableError> {
    let file = File::open(path).map_err(io_at(path))?;
    ParquetReader::new(file).finish().map_err(polars_at(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frame(start: i64, n: usize) -> DataFrame {
        let ids: Vec<i64> = (start..start + n as i64).collect();
        let texts: Vec<String> = ids.iter().map(|i| format!("row {i}")).collect();
        df!("id" => ids, "text" => texts).unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// Whatever the chunking of the input and the shard size, reading the shards
        /// back gives the rows written, in order.
        #[test]
        fn shards_round_trip(chunks in prop::collection::vec(0usize..40, 1..6), per_shard in 1usize..50) {
            let dir = tempfile::tempdir().unwrap();
            let mut w = TableWriter::new(dir.path(), per_shard, Some(SchemaId::new("t", 1)));
            let mut start = 0i64;
            for n in &chunks {
                w.write(frame(start, *n)).unwrap();
                start += *n as i64;
            }
            let summary = w.finish().unwrap();
            let total: usize = chunks.iter().sum();
            prop_assert_eq!(summary.rows, total as u64);
            prop_assert_eq!(summary.shards, total.div_ceil(per_shard).max(1));
            let files = shards(dir.path()).unwrap();
            prop_assert_eq!(files.len(), summary.shards);
            let back = scan(&files).unwrap().collect().unwrap();
            prop_assert_eq!(back.height(), total);
            let ids: Vec<i64> = back.column("id").unwrap().i64().unwrap().into_no_null_iter().collect();
            prop_assert_eq!(ids, (0..total as i64).collect::<Vec<_>>());
        }
    }

    #[test]
    fn mismatched_frames_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = TableWriter::new(dir.path(), 10, None);
        w.write(frame(0, 3)).unwrap();
        let other = df!("id" => [1i64]).unwrap();
        assert!(matches!(
            w.write(other),
            Err(TableError::SchemaMismatch { .. })
        ));
    }
}
