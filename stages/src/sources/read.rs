//! Parquet and JSONL source files read in batches, each batch knowing where its rows
//! came from so that errors can name the file and the row (or line).
//!
//! Parquet streams row group by row group with only the wanted columns read. JSONL is
//! read a batch of lines at a time: each line is first checked to be a JSON object
//! (so that a bad one is reported with its line number), then the batch goes through
//! polars' JSON reader for the column types.

use super::Format;
use super::lines::{self, Lines};
use arrow::record_batch::RecordBatch;
use datasets::table::TableReader;
use datasets::table::frames::frame_to_batch;
use pipeline::{ResultExt, StageError};
use polars::prelude::{JsonFormat, JsonReader, SerReader};
use std::fmt::Display;
use std::io::Cursor;
use std::path::{Path, PathBuf};

/// A batch of rows of one source file.
pub(crate) struct Chunk<'a> {
    pub batch: RecordBatch,
    pub file: &'a Path,
    /// Position in the file of the batch's first row (0-based).
    pub first_row: u64,
    /// JSONL: the line number of each row.
    pub lines: Option<Vec<u64>>,
    /// Every column of the source (read or not), for errors.
    pub source_columns: Vec<String>,
}

impl Chunk<'_> {
    /// How errors name row `i` of the batch: `line 7` (JSONL) or `row 41` (0-based).
    pub fn describe(&self, i: usize) -> String {
        match &self.lines {
            Some(lines) => format!("line {}", lines[i]),
            None => format!("row {}", self.first_row + i as u64),
        }
    }

    /// An error about `column` at row `i` of the batch (or the whole batch).
    pub fn error(&self, row: Option<usize>, column: &str, why: impl Display) -> StageError {
        let at = match row {
            Some(i) => format!(": {}", self.describe(i)),
            None => String::new(),
        };
        StageError::msg(format!(
            "{}{at}: column `{column}`: {why}",
            self.file.display()
        ))
    }
}

/// Feed `each` the batches of `path` (at most `rows` rows each) with the columns of
/// `wanted` that the file has; the file's other columns are not read.
pub(crate) fn for_each_chunk(
    path: &Path,
    format: Format,
    wanted: &[&str],
    rows: usize,
    mut each: impl FnMut(Chunk) -> Result<(), StageError>,
) -> Result<(), StageError> {
    match format {
        Format::Parquet => {
            let reader = TableReader::from_files(vec![path.to_path_buf()]).with_batch_rows(rows);
            let schema = reader.arrow_schema()?;
            let present: Vec<&str> = wanted
                .iter()
                .copied()
                .filter(|c| schema.field_with_name(c).is_ok())
                .collect();
            let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
            let mut first_row = 0;
            for batch in reader.batches((!present.is_empty()).then_some(present.as_slice())) {
                let batch = batch?;
                let n = batch.num_rows() as u64;
                each(Chunk {
                    batch,
                    file: path,
                    first_row,
                    lines: None,
                    source_columns: names.clone(),
                })?;
                first_row += n;
            }
            Ok(())
        }
        Format::Jsonl => {
            let mut lines = Lines::open(path)?;
            let mut first_row = 0;
            loop {
                let mut text = String::new();
                let mut numbers = Vec::with_capacity(rows);
                for line in lines.by_ref().take(rows) {
                    let (number, line) = line?;
                    lines::check_object(path, number, &line)?;
                    text.push_str(&line);
                    text.push('\n');
                    numbers.push(number);
                }
                let (Some(&first), Some(&last)) = (numbers.first(), numbers.last()) else {
                    return Ok(());
                };
                let (batch, names) = json_batch(text, wanted)
                    .context(format_args!("{}: lines {first}-{last}", path.display()))?;
                let n = numbers.len() as u64;
                each(Chunk {
                    batch,
                    file: path,
                    first_row,
                    lines: Some(numbers),
                    source_columns: names,
                })?;
                first_row += n;
            }
        }
    }
}

/// JSON lines (already checked) as a record batch of the `wanted` columns they have,
/// and the names of all their columns.
fn json_batch(text: String, wanted: &[&str]) -> Result<(RecordBatch, Vec<String>), StageError> {
    let df = JsonReader::new(Cursor::new(text))
        .with_json_format(JsonFormat::JsonLines)
        .infer_schema_len(None)
        .finish()?;
    let names = df
        .get_column_names()
        .iter()
        .map(|n| n.to_string())
        .collect();
    let present: Vec<&str> = wanted
        .iter()
        .copied()
        .filter(|c| df.schema().contains(c))
        .collect();
    let df = if present.is_empty() {
        df
    } else {
        df.select(present)?
    };
    let batch = frame_to_batch(&df, None)?;
    Ok((batch, names))
}

/// The rows of `sources` from their Parquet footers (no data read; a truncated file
/// fails here, named), or 0 (unknown) when one of them is JSONL.
pub(crate) fn known_rows(sources: &[(PathBuf, Format)]) -> Result<u64, StageError> {
    if sources.iter().any(|(_, f)| *f != Format::Parquet) {
        return Ok(0);
    }
    let files = sources.iter().map(|(p, _)| p.clone()).collect();
    Ok(TableReader::from_files(files).row_count()?)
}
