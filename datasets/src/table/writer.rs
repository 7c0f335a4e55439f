//! The streaming shard writer.
//!
//! Shards are laid out as the Hugging Face `datasets` writer lays them out: image bytes
//! (`struct{bytes, path}` columns) uncompressed, PLAIN-encoded, without dictionary, so
//! that readers can slice them without decompressing; every other column zstd; the
//! schema's metadata (schema id, `huggingface` features) in the file's key-value
//! metadata; the page index written. A new shard starts when the current one reaches
//! the target size; a row group ends at the configured row count or at 100 MB.
//!
//! Row groups are encoded on the caller's thread and written into the file by a thread
//! of each open shard's own, so that the next row group is encoded meanwhile; the bytes
//! are those `ArrowWriter` writes.

use super::{TableError, shard_name};
use arrow::array::{MutableArrayData, make_array};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::error::ArrowError;
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_writer::{
    ArrowColumnChunk, ArrowColumnWriter, ArrowRowGroupWriterFactory, compute_leaves,
};
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::thread::JoinHandle;

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
    current: Option<OpenShard>,
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

/// The shard being written: its row group in progress, encoded by the caller's thread,
/// and a thread of its own that writes finished row groups into the file.
///
/// Encoding a row group (up to 100 MB) and copying it into the file (the page cache)
/// take about as long as each other for image rows; with the copy on its own thread the
/// next row group is encoded meanwhile. The bytes are the ones `ArrowWriter` writes (the
/// same column writers, row groups and footer): only the thread doing each part changes.
/// At most one finished row group waits for the thread.
struct OpenShard {
    path: PathBuf,
    factory: ArrowRowGroupWriterFactory,
    /// The row group in progress: a writer per leaf column, and its rows.
    columns: Vec<ArrowColumnWriter>,
    group_rows: usize,
    /// Row groups handed to the thread.
    groups: usize,
    /// Bytes in the file once the thread has written what it was given.
    written: u64,
    to_file: Option<SyncSender<ToFile>>,
    thread: Option<JoinHandle<parquet::errors::Result<()>>>,
}

enum ToFile {
    RowGroup(Vec<ArrowColumnChunk>),
    /// Write the footer: the shard is complete. (Without it, as when a writer is dropped
    /// on an error, the file is left without a footer: unreadable, not short.)
    Footer,
}

impl OpenShard {
    fn create(
        path: PathBuf,
        schema: &SchemaRef,
        props: &WriterProperties,
    ) -> Result<Self, TableError> {
        let file = File::create(&path).map_err(TableError::io(&path))?;
        let format = |e| TableError::format(&path, e);
        let (mut file_writer, factory) =
            ArrowWriter::try_new(file, schema.clone(), Some(props.clone()))
                .and_then(ArrowWriter::into_serialized_writer)
                .map_err(format)?;
        let columns = factory.create_column_writers(0).map_err(format)?;
        let written = file_writer.bytes_written() as u64;
        let (to_file, from_writer) = sync_channel::<ToFile>(0);
        let thread = std::thread::Builder::new()
            .name("shard-file".into())
            .spawn(move || {
                for message in from_writer {
                    match message {
                        ToFile::RowGroup(chunks) => {
                            let mut group = file_writer.next_row_group()?;
                            for chunk in chunks {
                                chunk.append_to_row_group(&mut group)?;
                            }
                            group.close()?;
                        }
                        ToFile::Footer => {
                            file_writer.close()?;
                            break;
                        }
                    }
                }
                Ok(())
            })
            .map_err(TableError::io(&path))?;
        Ok(OpenShard {
            path,
            factory,
            columns,
            group_rows: 0,
            groups: 0,
            written,
            to_file: Some(to_file),
            thread: Some(thread),
        })
    }

    /// Encode `batch` into the row group in progress.
    fn encode(&mut self, schema: &SchemaRef, batch: &RecordBatch) -> Result<(), TableError> {
        let path = &self.path;
        let mut columns = self.columns.iter_mut();
        for (field, column) in schema.fields().iter().zip(batch.columns()) {
            let leaves = compute_leaves(field, column).map_err(|e| TableError::format(path, e))?;
            for leaf in leaves {
                let writer = columns.next().expect("a column writer per leaf");
                writer
                    .write(&leaf)
                    .map_err(|e| TableError::format(path, e))?;
            }
        }
        self.group_rows += batch.num_rows();
        Ok(())
    }

    /// Bytes of the row group in progress, once encoded (estimated).
    fn in_progress_size(&self) -> usize {
        self.columns
            .iter()
            .map(ArrowColumnWriter::get_estimated_total_bytes)
            .sum()
    }

    /// Hand the row group in progress, if it has rows, to the thread.
    fn end_row_group(&mut self) -> Result<(), TableError> {
        if self.group_rows == 0 {
            return Ok(());
        }
        let next = self
            .factory
            .create_column_writers(self.groups + 1)
            .map_err(|e| self.error(e))?;
        let chunks = std::mem::replace(&mut self.columns, next)
            .into_iter()
            .map(ArrowColumnWriter::close)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.error(e))?;
        self.written += chunks
            .iter()
            .map(|c| c.close().metadata.compressed_size() as u64)
            .sum::<u64>();
        self.groups += 1;
        self.group_rows = 0;
        self.send(ToFile::RowGroup(chunks))
    }

    fn send(&mut self, message: ToFile) -> Result<(), TableError> {
        let sent = self
            .to_file
            .as_ref()
            .is_some_and(|to_file| to_file.send(message).is_ok());
        if sent { Ok(()) } else { Err(self.join()) }
    }

    /// Wait for the thread, which stopped early: why it stopped.
    fn join(&mut self) -> TableError {
        self.to_file = None;
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(Err(e))) => self.error(e),
            Some(Err(_)) => self.error("the thread writing the shard panicked"),
            Some(Ok(Ok(()))) | None => self.error("the shard is closed"),
        }
    }

    /// Write the last row group and the footer; wait until all is in the file.
    fn close(mut self) -> Result<PathBuf, TableError> {
        self.end_row_group()?;
        self.send(ToFile::Footer)?;
        self.to_file = None;
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(Ok(()))) => Ok(std::mem::take(&mut self.path)),
            Some(Ok(Err(e))) => Err(self.error(e)),
            Some(Err(_)) => Err(self.error("the thread writing the shard panicked")),
            None => Err(self.error("the shard is closed")),
        }
    }

    fn error(&self, e: impl std::fmt::Display) -> TableError {
        TableError::format(&self.path, e)
    }
}

impl Drop for OpenShard {
    /// Abandoned (on an error): the thread writes what it was given, and no footer.
    fn drop(&mut self) {
        self.to_file = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Does a column of this type hold a list (whose slices keep their whole child array)?
fn holds_list(ty: &DataType) -> bool {
    match ty {
        DataType::List(_)
        | DataType::LargeList(_)
        | DataType::ListView(_)
        | DataType::LargeListView(_)
        | DataType::Map(..) => true,
        DataType::Struct(fields) => fields.iter().any(|f| holds_list(f.data_type())),
        _ => false,
    }
}

/// Rows `offset..offset + len` of `batch`, its list columns copied so that they hold
/// only these rows' values (the other columns are zero-copy slices).
///
/// A slice of a list array keeps the whole child array, and the Parquet writer converts
/// narrow integer children (u8, u16, i8, i16 to i32) over the whole child on every
/// write: fed slice by slice, a batch's `image_codes` would be converted once per slice
/// (40 times for 10,000 rows), the writer's largest cost after the image bytes.
fn slice(batch: &RecordBatch, offset: usize, len: usize) -> Result<RecordBatch, ArrowError> {
    if offset == 0 && len == batch.num_rows() {
        return Ok(batch.clone());
    }
    let columns = batch
        .columns()
        .iter()
        .map(|c| {
            Ok(if holds_list(c.data_type()) {
                let data = c.to_data();
                let mut copy = MutableArrayData::new(vec![&data], false, len);
                copy.try_extend(0, offset, offset + len)?;
                make_array(copy.freeze())
            } else {
                c.slice(offset, len)
            })
        })
        .collect::<Result<_, ArrowError>>()?;
    RecordBatch::try_new_with_options(
        batch.schema(),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(len)),
    )
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
            let part = slice(&batch, offset, len).map_err(|e| TableError::format(&self.dir, e))?;
            self.write_slice(&part)?;
            offset += len;
        }
        Ok(())
    }

    fn write_slice(&mut self, batch: &RecordBatch) -> Result<(), TableError> {
        if self.current.is_none() {
            let path = self.dir.join(shard_name(self.shards));
            self.current = Some(OpenShard::create(path, &self.schema, &self.props)?);
        }
        let shard = self.current.as_mut().expect("opened above");
        // A row group ends at `row_group_rows` rows (as `ArrowWriter` ends them) ...
        let max_rows = self.options.row_group_rows.max(1);
        let mut offset = 0;
        while offset < batch.num_rows() {
            let len = (max_rows - shard.group_rows).min(batch.num_rows() - offset);
            let part = slice(batch, offset, len).map_err(|e| shard.error(e))?;
            shard.encode(&self.schema, &part)?;
            if shard.group_rows >= max_rows {
                shard.end_row_group()?;
            }
            offset += len;
        }
        self.rows += batch.num_rows() as u64;
        // ... or at 100 MB.
        if shard.in_progress_size() >= MAX_ROW_GROUP_BYTES {
            shard.end_row_group()?;
        }
        let size = shard.written + shard.in_progress_size() as u64;
        if size >= self.options.target_shard_bytes {
            self.close_shard()?;
        }
        Ok(())
    }

    fn close_shard(&mut self) -> Result<(), TableError> {
        if let Some(shard) = self.current.take() {
            let path = shard.close()?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::{TableReader, shards};
    use arrow::array::{Array, ArrayRef, AsArray, ListArray, StringArray};
    use arrow::datatypes::UInt16Type;
    use std::sync::Arc;

    fn batch(rows: u16) -> RecordBatch {
        let ids = StringArray::from_iter_values((0..rows).map(|i| format!("row-{i}")));
        let codes = ListArray::from_iter_primitive::<UInt16Type, _, _>(
            (0..rows).map(|i| Some((0..i % 5).map(move |j| Some(i * 10 + j)))),
        );
        RecordBatch::try_from_iter([
            ("id", Arc::new(ids) as ArrayRef),
            ("codes", Arc::new(codes) as ArrayRef),
        ])
        .unwrap()
    }

    #[test]
    fn slices_of_list_columns_hold_only_their_rows_values() {
        let b = batch(50);
        let part = slice(&b, 20, 7).unwrap();
        let codes = part.column(1).as_list::<i32>();
        let expected = b.column(1).slice(20, 7);
        assert_eq!(codes, expected.as_list::<i32>());
        let own: usize = (20..27).map(|i| i % 5).sum();
        assert_eq!(codes.values().len(), own, "the child is cut to the slice");
        assert_eq!(part.column(0).as_ref(), b.column(0).slice(20, 7).as_ref());
        assert_eq!(slice(&b, 0, 50).unwrap(), b);
    }

    #[test]
    fn shards_are_the_bytes_arrow_writer_writes() {
        let dir = tempfile::tempdir().unwrap();
        let b = batch(23);
        let options = ShardOptions {
            row_group_rows: 4,
            ..ShardOptions::default()
        };
        let mut w = ShardWriter::new(dir.path(), b.schema(), options);
        w.write(&b.slice(0, 10)).unwrap();
        w.write(&b.slice(10, 13)).unwrap();
        let summary = w.finish().unwrap();
        let files = shards(dir.path()).unwrap();
        assert_eq!((summary.shards, summary.rows), (1, 23));
        assert_eq!(summary.bytes, std::fs::metadata(&files[0]).unwrap().len());

        // The same rows through `ArrowWriter` alone, row groups ended at the same rows.
        let reference = dir.path().join("reference.parquet");
        let props = properties(&b.schema(), &options);
        let file = File::create(&reference).unwrap();
        let mut arrow = ArrowWriter::try_new(file, b.schema(), Some(props)).unwrap();
        arrow.write(&b.slice(0, 10)).unwrap();
        arrow.write(&b.slice(10, 13)).unwrap();
        arrow.close().unwrap();
        assert_eq!(
            std::fs::read(&files[0]).unwrap(),
            std::fs::read(&reference).unwrap()
        );
    }

    #[test]
    fn writers_move_between_threads() {
        fn send<T: Send>() {}
        send::<ShardWriter>();
    }

    #[test]
    fn an_abandoned_shard_has_no_footer() {
        let dir = tempfile::tempdir().unwrap();
        let b = batch(30);
        let options = ShardOptions {
            row_group_rows: 8,
            ..ShardOptions::default()
        };
        let mut w = ShardWriter::new(dir.path(), b.schema(), options);
        w.write(&b).unwrap();
        drop(w);
        let files = shards(dir.path()).unwrap();
        assert_eq!(files.len(), 1);
        assert!(
            std::fs::metadata(&files[0]).unwrap().len() > 4,
            "row groups written"
        );
        let err = TableReader::from_files(files).row_count().unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
    }
}
