//! The streaming shard writer.
//!
//! Shards are laid out as the Hugging Face `datasets` writer lays them out: image bytes
//! (`struct{bytes, path}` columns) uncompressed, PLAIN-encoded, without dictionary, so
//! that readers can slice them without decompressing; every other column zstd; the
//! schema's metadata (schema id, `huggingface` features) in the file's key-value
//! metadata; the page index written. A new shard starts when the current one reaches
//! the target size; a row group ends at the configured row count or at 100 MB.

use super::{TableError, shard_name};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;
use std::fs::File;
use std::path::{Path, PathBuf};

/// Row groups end at this many bytes even if they have fewer rows than configured
/// (the Hugging Face writer's `MAX_ROW_GROUP_SIZE`).
const MAX_ROW_GROUP_BYTES: usize = 100 * 1024 * 1024;
/// Rows handed to the Parquet writer at a time (the granularity of shard sizes).
const WRITE_SLICE_ROWS: usize = 256;

#[derive(Clone, Copy, Debug)]
pub struct ShardOptions {
    /// A shard is closed once it holds this many bytes (500 MB, as the Hugging Face
    /// writer's `MAX_SHARD_SIZE`).
    pub target_shard_bytes: u64,
    /// Rows per row group (at most; 100 MB also ends one).
    pub row_group_rows: usize,
    /// zstd level of the compressed columns.
    pub zstd_level: i32,
}

impl Default for ShardOptions {
    fn default() -> Self {
        ShardOptions {
            target_shard_bytes: 500 * 1000 * 1000,
            row_group_rows: 10_000,
            zstd_level: 3,
        }
    }
}

/// What a finished table holds.
#[derive(Clone, Debug, PartialEq)]
pub struct TableSummary {
    pub rows: u64,
    pub shards: usize,
    pub bytes: u64,
    /// Schema id from the schema's metadata, if any.
    pub schema_id: Option<String>,
    /// Column names and Arrow types, in order.
    pub columns: Vec<(String, String)>,
}

impl TableSummary {
    /// The facts recorded in the artifact manifest.
    pub fn meta(&self) -> serde_json::Value {
        serde_json::json!({
            "shards": self.shards,
            "columns": self.columns.iter().map(|(n, t)| serde_json::json!({"name": n, "type": t})).collect::<Vec<_>>(),
        })
    }
}

/// Writes record batches of one schema into shards.
pub struct ShardWriter {
    dir: PathBuf,
    schema: SchemaRef,
    options: ShardOptions,
    props: WriterProperties,
    current: Option<(PathBuf, ArrowWriter<File>)>,
    shards: usize,
    rows: u64,
    bytes: u64,
}

fn properties(schema: &SchemaRef, options: &ShardOptions) -> WriterProperties {
    let zstd = ZstdLevel::try_new(options.zstd_level).unwrap_or_default();
    // The schema's metadata (schema id, `huggingface` features) goes into the file's
    // key-value metadata, where `datasets`, pyarrow and our reader look for it.
    let mut metadata: Vec<KeyValue> = schema
        .metadata()
        .iter()
        .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
        .collect();
    metadata.sort_by(|a, b| a.key.cmp(&b.key));
    let mut b = WriterProperties::builder()
        .set_compression(Compression::ZSTD(zstd))
        .set_max_row_group_row_count(Some(options.row_group_rows.max(1)))
        .set_key_value_metadata(Some(metadata));
    for field in schema.fields() {
        if schemas::is_image_type(field.data_type()) {
            let path = ColumnPath::new(vec![field.name().clone(), "bytes".into()]);
            b = b
                .set_column_compression(path.clone(), Compression::UNCOMPRESSED)
                .set_column_dictionary_enabled(path.clone(), false)
                .set_column_encoding(path, Encoding::PLAIN);
        }
    }
    b.build()
}

impl ShardWriter {
    pub fn new(dir: &Path, schema: SchemaRef, options: ShardOptions) -> Self {
        let props = properties(&schema, &options);
        ShardWriter {
            dir: dir.to_path_buf(),
            schema,
            options,
            props,
            current: None,
            shards: 0,
            rows: 0,
            bytes: 0,
        }
    }

    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Append a batch (its schema must be the writer's, metadata aside).
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), TableError> {
        if batch.schema().fields() != self.schema.fields() {
            return Err(TableError::format(
                &self.dir.join(shard_name(self.shards)),
                format!(
                    "batch columns {:?} differ from the table's {:?}",
                    batch.schema().fields(),
                    self.schema.fields()
                ),
            ));
        }
        let batch = RecordBatch::try_new(self.schema.clone(), batch.columns().to_vec())
            .map_err(|e| TableError::format(&self.dir, e))?;
        // Feed small slices (row groups still follow `row_group_rows`), so that a shard
        // closes near its target size even when rows are large images.
        let step = self.options.row_group_rows.clamp(1, WRITE_SLICE_ROWS);
        let mut offset = 0;
        while offset < batch.num_rows() {
            let len = step.min(batch.num_rows() - offset);
            self.write_slice(&batch.slice(offset, len))?;
            offset += len;
        }
        Ok(())
    }

    fn write_slice(&mut self, batch: &RecordBatch) -> Result<(), TableError> {
        if self.current.is_none() {
            let path = self.dir.join(shard_name(self.shards));
            let file = File::create(&path).map_err(TableError::io(&path))?;
            let writer = ArrowWriter::try_new(file, self.schema.clone(), Some(self.props.clone()))
                .map_err(|e| TableError::format(&path, e))?;
            self.current = Some((path, writer));
        }
        let (path, writer) = self.current.as_mut().expect("opened above");
        writer
            .write(batch)
            .map_err(|e| TableError::format(path, e))?;
        self.rows += batch.num_rows() as u64;
        if writer.in_progress_size() >= MAX_ROW_GROUP_BYTES {
            writer.flush().map_err(|e| TableError::format(path, e))?;
        }
        let size = writer.bytes_written() as u64 + writer.in_progress_size() as u64;
        if size >= self.options.target_shard_bytes {
            self.close_shard()?;
        }
        Ok(())
    }

    fn close_shard(&mut self) -> Result<(), TableError> {
        if let Some((path, writer)) = self.current.take() {
            writer.close().map_err(|e| TableError::format(&path, e))?;
            self.bytes += std::fs::metadata(&path)
                .map_err(TableError::io(&path))?
                .len();
            self.shards += 1;
        }
        Ok(())
    }

    /// Close the last shard. A table with no rows still gets one (empty) shard, so that
    /// its schema is known.
    pub fn finish(mut self) -> Result<TableSummary, TableError> {
        if self.current.is_none() && self.shards == 0 {
            self.write_slice(&RecordBatch::new_empty(self.schema.clone()))?;
        }
        self.close_shard()?;
        Ok(TableSummary {
            rows: self.rows,
            shards: self.shards,
            bytes: self.bytes,
            schema_id: self
                .schema
                .metadata()
                .get(schemas::SCHEMA_METADATA_KEY)
                .cloned(),
            columns: self
                .schema
                .fields()
                .iter()
                .map(|f| (f.name().clone(), f.data_type().to_string()))
                .collect(),
        })
    }
}
