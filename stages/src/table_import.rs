//! `table.import`: read CSV, JSONL or Parquet files from outside the store into a table.
//!
//! The files' content digests are part of the run key (hashed once, then remembered by
//! their size, times and inode), so editing a source file re-runs the node and nothing
//! else does.

use crate::sources::files;
use datasets::table::frames::frame_to_batch;
use datasets::table::{ShardOptions, ShardWriter, read_shard};
use pipeline::store::FileHasher;
use pipeline::{
    ArtifactKind, ArtifactType, Digest, InputSpec, Output, OutputDecl, ResultExt, Stage,
    StageContext, StageError,
};
use polars::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Csv,
    Jsonl,
    Parquet,
}

impl Format {
    fn from_path(path: &Path) -> Option<Format> {
        match path.extension()?.to_str()? {
            "csv" => Some(Format::Csv),
            "jsonl" | "ndjson" => Some(Format::Jsonl),
            "parquet" => Some(Format::Parquet),
            _ => None,
        }
    }
}

/// Config of `table.import`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportConfig {
    /// A file, or a folder whose files of the format are read in name order; relative
    /// to the recipe's folder.
    pub path: String,
    /// `csv`, `jsonl` or `parquet`; by default taken from the file extension.
    #[serde(default)]
    pub format: Option<Format>,
}

pub struct TableImport;

impl TableImport {
    /// The files to read, in order, with the format of each.
    fn sources(
        config: &ImportConfig,
        recipe_dir: &Path,
    ) -> Result<Vec<(PathBuf, Format)>, StageError> {
        let root = pipeline::context::resolve_against(recipe_dir, &config.path);
        files::list(&root, "csv, jsonl or parquet", |p, single| {
            match (config.format, Format::from_path(p)) {
                (Some(want), Some(have)) => (want == have).then_some(want),
                (Some(want), None) => single.then_some(want),
                (None, have) => have,
            }
        })
    }
}

fn read(path: &Path, format: Format) -> Result<DataFrame, StageError> {
    let df = match format {
        Format::Parquet => return read_shard(path).map_err(StageError::from),
        Format::Csv => CsvReadOptions::default()
            .with_has_header(true)
            .try_into_reader_with_file_path(Some(path.to_path_buf()))
            .and_then(|r| r.finish()),
        Format::Jsonl => std::fs::File::open(path)
            .map_err(PolarsError::from)
            .and_then(|f| {
                JsonReader::new(f)
                    .with_json_format(JsonFormat::JsonLines)
                    .finish()
            }),
    };
    ResultExt::context(df, path.display())
}

impl Stage for TableImport {
    type Config = ImportConfig;
    const KIND: &'static str = "table.import";
    const VERSION: u32 = 1;
    const DOC: &'static str = "Read CSV, JSONL or Parquet files into a table.";
    const INPUTS: &'static [InputSpec] = &[];
    const OUTPUT: OutputDecl = OutputDecl::Fixed(ArtifactType::of(ArtifactKind::Table));

    fn externals(
        config: &ImportConfig,
        files: &FileHasher,
        recipe_dir: &Path,
    ) -> Result<Vec<(String, Digest)>, StageError> {
        let root = pipeline::context::resolve_against(recipe_dir, &config.path);
        let sources = Self::sources(config, recipe_dir)?;
        files::digests(
            &config.path,
            &root,
            sources.iter().map(|(p, _)| p.as_path()),
            files,
        )
    }

    async fn run(&self, config: ImportConfig, ctx: StageContext) -> Result<Output, StageError> {
        let sources = Self::sources(&config, &ctx.recipe_dir)?;
        tokio::task::spawn_blocking(move || {
            ctx.progress.set_total(sources.len() as u64, "files");
            let mut writer: Option<ShardWriter> = None;
            for (path, format) in &sources {
                ctx.check_cancelled()?;
                let df = read(path, *format)?;
                let batch = frame_to_batch(&df, writer.as_ref().map(|w| w.schema()))
                    .context(path.display())?;
                let w = writer.get_or_insert_with(|| {
                    ShardWriter::new(&ctx.out_dir, batch.schema(), ShardOptions::default())
                });
                w.write(&batch).context(path.display())?;
                ctx.progress.inc(1);
            }
            let summary = writer.expect("at least one source").finish()?;
            ctx.count("files", sources.len() as u64);
            Ok(Output {
                rows: Some(summary.rows),
                schema: None,
                meta: summary.meta(),
            })
        })
        .await
        .map_err(|e| StageError::msg(format!("import thread: {e}")))?
    }
}
