//! `source.table`: Parquet or JSONL files read into a table of one of our schemas,
//! their columns mapped by name (`columns`), fixed values (`constants`) and ids made
//! from the row's position where the source has none (`id = "row"`).
//!
//! Values are cast to the schema's types; an image column takes an image struct, raw
//! bytes, base64 text or a data URL. A required column that is missing or null, a
//! value that does not convert, a JSONL line that is not JSON, or a truncated Parquet
//! file is an error naming the file and the row, line or column. Files are read batch
//! by batch, and only the columns the mapping uses.

use super::files::{self, Format};
use super::mapping::{IdRule, Mapping};
use super::read::{self, Chunk};
use super::{BATCH_ROWS, Tracker};
use arrow::array::ArrayRef;
use datasets::table::{ShardOptions, ShardWriter, TableSummary};
use pipeline::store::FileHasher;
use pipeline::{Bindings, Digest, InputSpec, Output, OutputDecl, Stage, StageContext, StageError};
use schemars::JsonSchema;
use schemas::SchemaDef;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The schemas a table source can write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TargetSchema {
    RlPrompt,
    SourceImage,
    Rationale,
    SftSample,
}

impl TargetSchema {
    pub fn def(self) -> &'static SchemaDef {
        let name = match self {
            TargetSchema::RlPrompt => "rl_prompt",
            TargetSchema::SourceImage => "source_image",
            TargetSchema::Rationale => "rationale",
            TargetSchema::SftSample => "sft_sample",
        };
        schemas::find(name).expect("every target schema is defined")
    }
}

/// Config of `source.table`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TableConfig {
    /// A Parquet or JSONL file, or a folder whose such files are read in name order;
    /// relative to the recipe's folder.
    pub path: String,
    /// `jsonl` or `parquet`; by default taken from each file's extension.
    #[serde(default)]
    pub format: Option<Format>,
    /// The schema of the table written.
    pub schema: TargetSchema,
    /// Target column → source column, e.g. `{ prompt = "text" }`. A target not named
    /// here comes from the source column of the same name (null if the source has
    /// none and the schema allows it).
    #[serde(default)]
    pub columns: BTreeMap<String, String>,
    /// Target column → a fixed value (text, cast to the column's type), e.g.
    /// `{ family = "geneval" }`.
    #[serde(default)]
    pub constants: BTreeMap<String, String>,
    /// `column`: ids come from a source column like any other; `row`: ids are
    /// `{file name}-{row:06}` (0-based row in the file), for sources without ids.
    #[serde(default)]
    pub id: IdRule,
}

impl TableConfig {
    fn mapping(&self) -> Result<Mapping, String> {
        Mapping::new(self.schema.def()).configure(&self.columns, &self.constants, self.id)
    }
}

/// Write the rows of `sources` through `mapping` into a table in `out_dir`; `adjust`
/// may change a batch's mapped columns (in schema order) before the check for nulls.
pub(crate) fn write_mapped(
    sources: &[(PathBuf, Format)],
    mapping: &Mapping,
    out_dir: &Path,
    tracker: &impl Tracker,
    adjust: impl Fn(&mut [ArrayRef]),
) -> Result<TableSummary, StageError> {
    tracker.total(read::known_rows(sources)?, "rows");
    let mut writer = ShardWriter::new(out_dir, mapping.schema().clone(), ShardOptions::default());
    let wanted = mapping.source_columns();
    for (path, format) in sources {
        read::for_each_chunk(path, *format, &wanted, BATCH_ROWS, |chunk: Chunk| {
            let mut columns = mapping.columns(&chunk)?;
            adjust(&mut columns);
            writer.write(&mapping.finish(&chunk, columns)?)?;
            tracker.advance(chunk.batch.num_rows() as u64)
        })?;
    }
    Ok(writer.finish()?)
}

/// Read the files `config` names (relative paths against `recipe_dir`) into a table
/// of its schema in `out_dir`.
pub fn write_table(
    config: &TableConfig,
    recipe_dir: &Path,
    out_dir: &Path,
    tracker: &impl Tracker,
) -> Result<TableSummary, StageError> {
    let mapping = config.mapping().map_err(StageError::msg)?;
    let sources = files::tables(&config.path, config.format, recipe_dir)?;
    write_mapped(&sources, &mapping, out_dir, tracker, |_| {})
}

pub struct SourceTable;

impl Stage for SourceTable {
    type Config = TableConfig;
    const KIND: &'static str = "source.table";
    const VERSION: u32 = 1;
    const DOC: &'static str = "Read Parquet or JSONL files into a table of one of our schemas (rl_prompt, source_image, rationale, sft_sample), mapping columns, constants and ids.";
    const INPUTS: &'static [InputSpec] = &[];
    const OUTPUT: OutputDecl = OutputDecl::TableFromConfig { key: "schema" };

    fn validate(config: &TableConfig, _: &Bindings) -> Result<(), String> {
        config.mapping().map(|_| ())
    }

    fn externals(
        config: &TableConfig,
        files: &FileHasher,
        recipe_dir: &Path,
    ) -> Result<Vec<(String, Digest)>, StageError> {
        files::table_digests(&config.path, config.format, files, recipe_dir)
    }

    async fn run(&self, config: TableConfig, ctx: StageContext) -> Result<Output, StageError> {
        super::blocking("source.table", move || {
            let summary = write_table(&config, &ctx.recipe_dir, &ctx.out_dir, &ctx)?;
            ctx.count("rows", summary.rows);
            Ok(super::output(&summary, config.schema.def()))
        })
        .await
    }
}
