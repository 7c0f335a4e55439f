//! `source.prompts`: prompt lists into an `rl_prompt` table.
//!
//! A `.txt` file holds one prompt per non-blank line (trimmed). A `.jsonl` file holds
//! one JSON object per line: the prompt under `prompt_key`, the tag under `tag_key`,
//! and the whole object goes into `metadata` as JSON text (GenEval's
//! `evaluation_metadata.jsonl`, with its `tag`, `include`, `exclude`, reads as it is).
//!
//! Ids are `{family}-{n:05}`, `n` the 0-based position of the prompt among all the
//! prompts read (files in name order, blank lines not counted): for one GenEval
//! metadata file, `n` is the line's index, the folder name GenEval's own scripts give
//! its images, so `geneval-00042` is image folder `00042`.

use super::files::{self, list};
use super::lines::{self, Lines, line_error};
use super::{BATCH_ROWS, Tracker, output};
use datasets::table::{ShardOptions, ShardWriter, TableSummary};
use pipeline::store::FileHasher;
use pipeline::{
    ArtifactType, Bindings, Digest, InputSpec, Output, OutputDecl, Stage, StageContext, StageError,
};
use schemars::JsonSchema;
use schemas::rl_prompt::{RlPrompt, SCHEMA};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Config of `source.prompts`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PromptsConfig {
    /// A `.txt` or `.jsonl` prompt file, or a folder whose such files are read in name
    /// order; relative to the recipe's folder.
    pub path: String,
    /// The family of every prompt (`geneval`, `dpg`, `t2i`, …); ids are
    /// `{family}-{n:05}`.
    pub family: String,
    /// The tag of prompts that have none (`.txt` lines, JSONL objects without
    /// `tag_key`).
    #[serde(default)]
    pub tag: Option<String>,
    /// JSONL: the key of the prompt.
    #[serde(default = "default_prompt_key")]
    pub prompt_key: String,
    /// JSONL: the key of the tag.
    #[serde(default = "default_tag_key")]
    pub tag_key: String,
}

fn default_prompt_key() -> String {
    "prompt".to_string()
}

fn default_tag_key() -> String {
    "tag".to_string()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ListFormat {
    Txt,
    Jsonl,
}

impl ListFormat {
    fn from_path(path: &Path) -> Option<ListFormat> {
        match path.extension()?.to_str()? {
            "txt" => Some(ListFormat::Txt),
            "jsonl" | "ndjson" => Some(ListFormat::Jsonl),
            _ => None,
        }
    }
}

fn sources(
    config: &PromptsConfig,
    recipe_dir: &Path,
) -> Result<Vec<(PathBuf, ListFormat)>, StageError> {
    let root = pipeline::context::resolve_against(recipe_dir, &config.path);
    list(&root, "txt or jsonl", |p, _| ListFormat::from_path(p))
}

/// A string field of a JSON line: `Ok(None)` if absent or null.
fn text_field(
    object: &Map<String, Value>,
    key: &str,
    path: &Path,
    number: u64,
) -> Result<Option<String>, StageError> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
        Some(other) => Err(line_error(
            path,
            number,
            format!("`{key}` must be a string, not {other}"),
        )),
    }
}

/// (prompt, tag, metadata) of one line.
fn parse_line(
    config: &PromptsConfig,
    format: ListFormat,
    path: &Path,
    number: u64,
    text: String,
) -> Result<(String, Option<String>, Option<String>), StageError> {
    if format == ListFormat::Txt {
        return Ok((text, config.tag.clone(), None));
    }
    let object: Map<String, Value> = lines::parse(path, number, &text)?;
    let prompt = text_field(&object, &config.prompt_key, path, number)?
        .filter(|p| !p.is_empty())
        .ok_or_else(|| {
            line_error(
                path,
                number,
                format!("no prompt: `{}` is missing or empty", config.prompt_key),
            )
        })?;
    let tag = text_field(&object, &config.tag_key, path, number)?.or_else(|| config.tag.clone());
    Ok((prompt, tag, Some(Value::Object(object).to_string())))
}

/// Read the prompt lists `config` names (relative to `recipe_dir`) into an `rl_prompt`
/// table in `out_dir`.
pub fn write_prompts(
    config: &PromptsConfig,
    recipe_dir: &Path,
    out_dir: &Path,
    tracker: &impl Tracker,
) -> Result<TableSummary, StageError> {
    let sources = sources(config, recipe_dir)?;
    tracker.total(0, "prompts");
    let mut writer = ShardWriter::new(
        out_dir,
        Arc::new(SCHEMA.arrow_schema()),
        ShardOptions::default(),
    );
    let mut rows: Vec<RlPrompt> = Vec::with_capacity(BATCH_ROWS);
    let mut flush = |rows: &mut Vec<RlPrompt>| -> Result<(), StageError> {
        writer.write(&schemas::to_batch(rows)?)?;
        tracker.advance(rows.len() as u64)?;
        rows.clear();
        Ok(())
    };
    let mut n = 0u64;
    for (path, format) in &sources {
        let lines = Lines::open(path)?;
        for line in lines {
            let (number, text) = line?;
            let (prompt, tag, metadata) = parse_line(config, *format, path, number, text)?;
            rows.push(RlPrompt {
                id: format!("{}-{n:05}", config.family),
                prompt,
                family: config.family.clone(),
                tag,
                metadata,
            });
            n += 1;
            if rows.len() == BATCH_ROWS {
                flush(&mut rows)?;
            }
        }
    }
    flush(&mut rows)?;
    Ok(writer.finish()?)
}

pub struct Prompts;

impl Stage for Prompts {
    type Config = PromptsConfig;
    const KIND: &'static str = "source.prompts";
    const VERSION: u32 = 1;
    const DOC: &'static str = "Read prompt lists (.txt one per line, .jsonl objects with prompt, tag and metadata) into rl_prompt rows.";
    const INPUTS: &'static [InputSpec] = &[];
    const OUTPUT: OutputDecl = OutputDecl::Fixed(ArtifactType::table("rl_prompt"));

    fn validate(config: &PromptsConfig, _: &Bindings) -> Result<(), String> {
        if config.family.trim().is_empty() {
            return Err("`family` is empty; name the prompts' family (e.g. `geneval`)".into());
        }
        Ok(())
    }

    fn externals(
        config: &PromptsConfig,
        files: &FileHasher,
        recipe_dir: &Path,
    ) -> Result<Vec<(String, Digest)>, StageError> {
        let root = pipeline::context::resolve_against(recipe_dir, &config.path);
        let sources = sources(config, recipe_dir)?;
        files::digests(
            &config.path,
            &root,
            sources.iter().map(|(p, _)| p.as_path()),
            files,
        )
    }

    async fn run(&self, config: PromptsConfig, ctx: StageContext) -> Result<Output, StageError> {
        super::blocking("source.prompts", move || {
            let summary = write_prompts(&config, &ctx.recipe_dir, &ctx.out_dir, &ctx)?;
            ctx.count("prompts", summary.rows);
            Ok(output(&summary, &SCHEMA))
        })
        .await
    }
}
