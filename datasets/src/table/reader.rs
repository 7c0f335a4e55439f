//! Reading tables: streamed row group by row group with column projection (Arrow), or
//! as polars frames.

use super::TableError;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use polars::prelude::*;
use schemas::{Conformance, Row, SchemaDef};
use std::fs::File;
use std::path::{Path, PathBuf};

/// Streams the shards of one table.
pub struct TableReader {
    files: Vec<PathBuf>,
    batch_rows: usize,
}

fn builder(path: &Path) -> Result<ParquetRecordBatchReaderBuilder<File>, TableError> {
    let file = File::open(path).map_err(TableError::io(path))?;
    ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| {
        TableError::format(
            path,
            format!("not a readable Parquet file (truncated?): {e}"),
        )
    })
}

impl TableReader {
    /// The table in folder `dir`.
    pub fn open(dir: &Path) -> Result<Self, TableError> {
        Ok(Self::from_files(super::shards(dir)?))
    }

    /// A table made of these Parquet files, in this order.
    pub fn from_files(files: Vec<PathBuf>) -> Self {
        TableReader {
            files,
            batch_rows: 8192,
        }
    }

    /// Rows per batch handed out (at most).
    pub fn with_batch_rows(mut self, rows: usize) -> Self {
        self.batch_rows = rows.max(1);
        self
    }

    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// The Arrow schema (with metadata) of the first shard.
    pub fn arrow_schema(&self) -> Result<SchemaRef, TableError> {
        let first = self
            .files
            .first()
            .ok_or_else(|| TableError::format(Path::new("."), "the table has no shards"))?;
        Ok(builder(first)?.schema().clone())
    }

    /// Row count from the shards' footers (no data read).
    pub fn row_count(&self) -> Result<u64, TableError> {
        let mut n = 0;
        for f in &self.files {
            n += builder(f)?.metadata().file_metadata().num_rows() as u64;
        }
        Ok(n)
    }

    /// Check every shard against `def` (footers only), the same way for all shards.
    pub fn conform(&self, def: &SchemaDef) -> Result<Conformance, TableError> {
        let mut first: Option<Conformance> = None;
        for f in &self.files {
            let c = schemas::conform(def, builder(f)?.schema()).map_err(|source| {
                TableError::Schema {
                    path: f.clone(),
                    source,
                }
            })?;
            match &first {
                None => first = Some(c),
                Some(c0) if *c0 != c => {
                    return Err(TableError::format(
                        f,
                        format!("shard schema {c:?} differs from the first shard's {c0:?}"),
                    ));
                }
                Some(_) => {}
            }
        }
        first.ok_or_else(|| TableError::format(Path::new("."), "the table has no shards"))
    }

    /// Batches of the named columns (all if `None`), shard after shard, row group after
    /// row group.
    pub fn batches(
        &self,
        columns: Option<&[&str]>,
    ) -> impl Iterator<Item = Result<RecordBatch, TableError>> + '_ {
        let columns: Option<Vec<String>> =
            columns.map(|c| c.iter().map(|s| s.to_string()).collect());
        self.files.iter().flat_map(move |path| {
            let opened = self.open_shard(path, columns.as_deref());
            let (reader, mut offset): (Option<ParquetRecordBatchReader>, u64) = match opened {
                Ok(r) => (Some(r), 0),
                Err(e) => return Box::new(std::iter::once(Err(e))) as Box<dyn Iterator<Item = _>>,
            };
            Box::new(reader.into_iter().flatten().map(move |b| {
                let b =
                    b.map_err(|e| TableError::format(path, format!("rows from {offset}: {e}")))?;
                offset += b.num_rows() as u64;
                Ok(b)
            }))
        })
    }

    fn open_shard(
        &self,
        path: &Path,
        columns: Option<&[String]>,
    ) -> Result<ParquetRecordBatchReader, TableError> {
        let b = builder(path)?;
        let b = match columns {
            Some(cols) => {
                let schema = b.schema().clone();
                let mut roots = Vec::with_capacity(cols.len());
                for c in cols {
                    roots.push(schema.index_of(c).map_err(|_| {
                        TableError::format(path, format!("no column `{c}` in the table"))
                    })?);
                }
                let mask = ProjectionMask::roots(b.parquet_schema(), roots);
                b.with_projection(mask)
            }
            None => b,
        };
        b.with_batch_size(self.batch_rows)
            .build()
            .map_err(|e| TableError::format(path, e))
    }

    /// Typed rows of schema `R`, batch by batch. Tables of older schema versions are
    /// adapted (new nullable columns read as null); others are refused up front.
    pub fn rows<R: Row>(
        &self,
    ) -> Result<impl Iterator<Item = Result<Vec<R>, TableError>> + '_, TableError> {
        self.conform(R::SCHEMA)?;
        Ok(self.batches(None).map(|b| {
            let b = b?;
            let adapted =
                schemas::adapt(R::SCHEMA, &b).map_err(|e| TableError::format(Path::new("."), e))?;
            schemas::from_batch(&adapted).map_err(|e| TableError::format(Path::new("."), e))
        }))
    }
}

/// Read one shard whole as a data frame.
pub fn read_shard(path: &Path) -> Result<DataFrame, TableError> {
    let file = File::open(path).map_err(TableError::io(path))?;
    ParquetReader::new(file)
        .finish()
        .map_err(|e| TableError::format(path, e))
}

/// One lazy frame over the given Parquet files.
pub fn scan(files: &[PathBuf]) -> Result<LazyFrame, TableError> {
    let at = files.first().map_or(Path::new("."), |p| p.as_path());
    let paths: Vec<PlRefPath> = files
        .iter()
        .map(|p| PlRefPath::try_from_path(p))
        .collect::<PolarsResult<_>>()
        .map_err(|e| TableError::format(at, e))?;
    LazyFrame::scan_parquet_files(paths.into_iter().collect(), ScanArgsParquet::default())
        .map_err(|e| TableError::format(at, e))
}
