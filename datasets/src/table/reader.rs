//! Reading tables: streamed row group by row group with column projection (Arrow), or
//! as polars frames.

use super::TableError;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::file::metadata::ParquetMetaData;
use polars::prelude::*;
use schemas::{Conformance, Row, SchemaDef};
use std::fs::File;
use std::path::{Path, PathBuf};

/// Rows per batch unless [`TableReader::with_batch_rows`] says otherwise.
const BATCH_ROWS: usize = 8192;
/// ... and at most about this many bytes of the columns read (uncompressed sizes from
/// the shard's footer) per default batch. Tables of images would otherwise come in
/// batches of hundreds of MB (8192 rows of 45 KB images: 370 MB), each allocated afresh
/// and paged in by the kernel: reading them took twice as long as in batches of 8 MiB,
/// whose buffers the allocator reuses.
const BATCH_BYTES: u64 = 8 << 20;

/// Streams the shards of one table.
pub struct TableReader {
    files: Vec<PathBuf>,
    /// Set by [`Self::with_batch_rows`]; `None`: up to [`BATCH_ROWS`] rows and about
    /// [`BATCH_BYTES`] bytes.
    batch_rows: Option<usize>,
}

/// Default rows per batch for a shard: [`BATCH_ROWS`], fewer for wide rows.
fn default_batch_rows(meta: &ParquetMetaData, mask: &ProjectionMask) -> usize {
    let rows = meta.file_metadata().num_rows().max(0) as u64;
    let bytes: u64 = meta
        .row_groups()
        .iter()
        .flat_map(|rg| rg.columns().iter().enumerate())
        .filter(|(leaf, _)| mask.leaf_included(*leaf))
        .map(|(_, c)| c.uncompressed_size().max(0) as u64)
        .sum();
    match bytes.checked_div(rows) {
        Some(per_row) if per_row > 0 => {
            (BATCH_BYTES / per_row).clamp(1, BATCH_ROWS as u64) as usize
        }
        _ => BATCH_ROWS,
    }
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
            batch_rows: None,
        }
    }

    /// Rows per batch handed out (at most). By default batches hold up to 8192 rows, and
    /// fewer where rows are wide (about 8 MiB of the columns read per batch).
    pub fn with_batch_rows(mut self, rows: usize) -> Self {
        self.batch_rows = Some(rows.max(1));
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
        let mask = match columns {
            Some(cols) => {
                let schema = b.schema().clone();
                let mut roots = Vec::with_capacity(cols.len());
                for c in cols {
                    roots.push(schema.index_of(c).map_err(|_| {
                        TableError::format(path, format!("no column `{c}` in the table"))
                    })?);
                }
                ProjectionMask::roots(b.parquet_schema(), roots)
            }
            None => ProjectionMask::all(),
        };
        let rows = self
            .batch_rows
            .unwrap_or_else(|| default_batch_rows(b.metadata(), &mask));
        b.with_projection(mask)
            .with_batch_size(rows)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::{ShardOptions, ShardWriter};
    use arrow::array::{ArrayRef, BinaryArray, UInt32Array};
    use std::sync::Arc;

    /// A one-shard table of `rows` rows of a `width`-byte binary column and a number.
    fn table(dir: &Path, rows: usize, width: usize) {
        let blobs = BinaryArray::from_iter_values((0..rows).map(|i| vec![(i % 251) as u8; width]));
        let numbers = UInt32Array::from_iter_values(0..rows as u32);
        let batch = RecordBatch::try_from_iter([
            ("blob", Arc::new(blobs) as ArrayRef),
            ("n", Arc::new(numbers) as ArrayRef),
        ])
        .unwrap();
        let options = ShardOptions {
            zstd_level: 1,
            ..ShardOptions::default()
        };
        let mut w = ShardWriter::new(dir, batch.schema(), options);
        w.write(&batch).unwrap();
        w.finish().unwrap();
    }

    fn batch_rows(reader: &TableReader, columns: Option<&[&str]>) -> Vec<usize> {
        reader
            .batches(columns)
            .map(|b| b.unwrap().num_rows())
            .collect()
    }

    #[test]
    fn default_batches_of_wide_rows_hold_about_8_mib() {
        let dir = tempfile::tempdir().unwrap();
        table(dir.path(), 300, 100_000);
        let reader = TableReader::open(dir.path()).unwrap();
        let rows = batch_rows(&reader, None);
        assert_eq!(rows.iter().sum::<usize>(), 300);
        let most = *rows.iter().max().unwrap();
        assert!((60..=84).contains(&most), "{rows:?}");
        // Only the columns read count: the numbers alone come in one batch.
        assert_eq!(batch_rows(&reader, Some(&["n"])), vec![300]);
        // Asked for, batches hold the rows asked for.
        let reader = TableReader::open(dir.path()).unwrap().with_batch_rows(200);
        assert_eq!(batch_rows(&reader, None), vec![200, 100]);
    }

    #[test]
    fn default_batches_of_narrow_rows_hold_8192_rows() {
        let dir = tempfile::tempdir().unwrap();
        table(dir.path(), 10_000, 8);
        let reader = TableReader::open(dir.path()).unwrap();
        assert_eq!(batch_rows(&reader, None), vec![8192, 1808]);
    }
}
