//! `source.benchmark`: a benchmark's prompt suite as an `rl_prompt` table, from the
//! copies embedded in the binary ([`datasets::benchmarks`]): GenEval's 553 prompts
//! (their records in `metadata`, as `evaluation_metadata.jsonl` has them), or Bagel's
//! rewritten long prompts over the same records (family `geneval_long`, never to be
//! compared with the original's scores), DPG-Bench's 1,065 prompts by item id (with a
//! user's copy of `dpg_bench.csv`, checked by its git blob id, each prompt's questions
//! in `metadata`), or T2I-CompBench's validation files (the colour file before
//! 2025-09-03 by default, as the published results and ReasonGen-R1's lists use; the
//! current one on request, labelled in `metadata`).

use super::{BATCH_ROWS, blocking, output};
use datasets::benchmarks::{BenchmarkPrompt, Suite, T2iFile, check_dpg_questions, prompts};
use datasets::table::{ShardOptions, ShardWriter, TableSummary};
use pipeline::store::FileHasher;
use pipeline::{
    ArtifactType, Bindings, Digest, InputSpec, Output, OutputDecl, Stage, StageContext, StageError,
};
use schemars::JsonSchema;
use schemas::Row;
use schemas::rl_prompt::{RlPrompt, SCHEMA};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// Which suite.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SuiteName {
    Geneval,
    /// GenEval's records with Bagel's rewritten long prompts.
    GenevalLong,
    DpgBench,
    T2iCompbench,
}

/// A T2I-CompBench validation file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum T2iName {
    /// `color_val.txt` before the 2025-09-03 deduplication.
    ColorBefore2025_09,
    /// `color_val.txt` as it is now.
    Color,
    Shape,
    Texture,
    Spatial,
    NonSpatial,
    Complex,
    #[serde(rename = "3d_spatial")]
    Spatial3d,
    Numeracy,
}

impl From<T2iName> for T2iFile {
    fn from(n: T2iName) -> T2iFile {
        match n {
            T2iName::ColorBefore2025_09 => T2iFile::ColorBefore2025_09,
            T2iName::Color => T2iFile::Color,
            T2iName::Shape => T2iFile::Shape,
            T2iName::Texture => T2iFile::Texture,
            T2iName::Spatial => T2iFile::Spatial,
            T2iName::NonSpatial => T2iFile::NonSpatial,
            T2iName::Complex => T2iFile::Complex,
            T2iName::Spatial3d => T2iFile::Spatial3d,
            T2iName::Numeracy => T2iFile::Numeracy,
        }
    }
}

/// The six T2I-CompBench categories the paper's peers report, colour as before
/// 2025-09-03.
const PAPER_T2I: [T2iName; 6] = [
    T2iName::ColorBefore2025_09,
    T2iName::Shape,
    T2iName::Texture,
    T2iName::Spatial,
    T2iName::NonSpatial,
    T2iName::Complex,
];

/// Config of `source.benchmark`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BenchmarkConfig {
    /// `geneval`, `geneval_long` (Bagel's rewritten prompts), `dpg_bench` or
    /// `t2i_compbench`.
    pub suite: SuiteName,
    /// T2I-CompBench's validation files (default: colour before 2025-09-03, shape,
    /// texture, spatial, non_spatial, complex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub t2i_files: Option<Vec<T2iName>>,
    /// DPG-Bench: your copy of ELLA's `dpg_bench.csv` (relative to the recipe), checked
    /// by its git blob id; each prompt's questions go into its `metadata`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpg_questions: Option<String>,
    /// Only the first this many prompts (a quick look; not the benchmark).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

/// The prompts of `config`, with their `family` and `metadata`.
fn rows(config: &BenchmarkConfig, recipe_dir: &Path) -> Result<Vec<RlPrompt>, StageError> {
    let err = |e: datasets::benchmarks::BenchmarkError| StageError::msg(e);
    let plain = |family: &str,
                 prompts: Vec<BenchmarkPrompt>,
                 meta: &dyn Fn(&BenchmarkPrompt) -> Option<String>| {
        prompts
            .into_iter()
            .map(|p| RlPrompt {
                metadata: meta(&p).or_else(|| p.record.clone()),
                id: p.id,
                prompt: p.text,
                family: family.to_string(),
                tag: Some(p.tag),
            })
            .collect::<Vec<_>>()
    };
    let mut out = match config.suite {
        SuiteName::Geneval => plain("geneval", prompts(Suite::GenEval).map_err(err)?, &|_| None),
        SuiteName::GenevalLong => plain(
            "geneval_long",
            prompts(Suite::GenEvalLong).map_err(err)?,
            &|_| None,
        ),
        SuiteName::DpgBench => {
            let questions = match &config.dpg_questions {
                Some(p) => dpg_questions(&pipeline::context::resolve_against(recipe_dir, p))?,
                None => BTreeMap::new(),
            };
            plain("dpg_bench", prompts(Suite::DpgBench).map_err(err)?, &|p| {
                questions
                    .get(&p.id)
                    .map(|q| json!({ "questions": q }).to_string())
            })
        }
        SuiteName::T2iCompbench => {
            let mut all = Vec::new();
            for name in config.t2i_files.clone().unwrap_or(PAPER_T2I.to_vec()) {
                let file = T2iFile::from(name);
                all.extend(plain(
                    "t2i_compbench",
                    prompts(Suite::T2iCompBench(file)).map_err(err)?,
                    &|_| Some(json!({ "file": file.file() }).to_string()),
                ));
            }
            all
        }
    };
    if let Some(n) = config.limit {
        out.truncate(n);
    }
    Ok(out)
}

/// DPG-Bench's questions by item id, from the user's checked copy of the CSV.
fn dpg_questions(path: &Path) -> Result<BTreeMap<String, Vec<Value>>, StageError> {
    let bytes = check_dpg_questions(path).map_err(StageError::msg)?;
    questions_by_item(bytes, path)
}

/// Each row of a DPG-Bench question CSV as an object of its columns, by item id.
fn questions_by_item(
    bytes: Vec<u8>,
    path: &Path,
) -> Result<BTreeMap<String, Vec<Value>>, StageError> {
    use polars::prelude::{CsvReadOptions, DataType, SerReader};
    let frame = CsvReadOptions::default()
        .with_has_header(true)
        .with_infer_schema_length(Some(0))
        .into_reader_with_file_handle(std::io::Cursor::new(bytes))
        .finish()
        .map_err(|e| StageError::msg(format!("{}: {e}", path.display())))?;
    let columns: Vec<(String, Vec<Option<String>>)> = frame
        .columns()
        .iter()
        .map(|c| {
            let s = c
                .as_materialized_series()
                .cast(&DataType::String)
                .map_err(|e| StageError::msg(format!("{}: {e}", path.display())))?;
            let values = s
                .str()
                .map_err(|e| StageError::msg(format!("{}: {e}", path.display())))?
                .iter()
                .map(|v| v.map(str::to_string))
                .collect();
            Ok((c.name().to_string(), values))
        })
        .collect::<Result<_, StageError>>()?;
    let item = columns
        .iter()
        .position(|(n, _)| n == "item_id")
        .ok_or_else(|| StageError::msg(format!("{}: no `item_id` column", path.display())))?;
    let mut out: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for row in 0..frame.height() {
        let id = columns[item].1[row].clone().unwrap_or_default();
        let fields: serde_json::Map<String, Value> = columns
            .iter()
            .map(|(n, v)| (n.clone(), v[row].clone().map_or(Value::Null, Value::String)))
            .collect();
        out.entry(id).or_default().push(Value::Object(fields));
    }
    Ok(out)
}

/// Write the suite's table into `out`.
pub fn write_benchmark(
    config: &BenchmarkConfig,
    recipe_dir: &Path,
    out: &Path,
) -> Result<TableSummary, StageError> {
    let rows = rows(config, recipe_dir)?;
    let mut writer = ShardWriter::new(
        out,
        Arc::new(RlPrompt::SCHEMA.arrow_schema()),
        ShardOptions::default(),
    );
    for chunk in rows.chunks(BATCH_ROWS) {
        writer.write(&schemas::to_batch(chunk)?)?;
    }
    Ok(writer.finish()?)
}

pub struct Benchmark;

impl Stage for Benchmark {
    type Config = BenchmarkConfig;
    const KIND: &'static str = "source.benchmark";
    const VERSION: u32 = 1;
    const DOC: &'static str = "A benchmark's prompt suite (GenEval, its rewritten long prompts, DPG-Bench, T2I-CompBench's validation files) as rl_prompt rows, from the copies built in.";
    const INPUTS: &'static [InputSpec] = &[];
    const OUTPUT: OutputDecl = OutputDecl::Fixed(ArtifactType::table("rl_prompt"));

    fn validate(config: &BenchmarkConfig, _: &Bindings) -> Result<(), String> {
        if config.dpg_questions.is_some() && config.suite != SuiteName::DpgBench {
            return Err("`dpg_questions` applies to suite = \"dpg_bench\" only".into());
        }
        if config.t2i_files.is_some() && config.suite != SuiteName::T2iCompbench {
            return Err("`t2i_files` applies to suite = \"t2i_compbench\" only".into());
        }
        if config.t2i_files.as_ref().is_some_and(Vec::is_empty) {
            return Err("`t2i_files` is empty".into());
        }
        Ok(())
    }

    fn externals(
        config: &BenchmarkConfig,
        files: &FileHasher,
        recipe_dir: &Path,
    ) -> Result<Vec<(String, Digest)>, StageError> {
        let Some(p) = &config.dpg_questions else {
            return Ok(Vec::new());
        };
        let path = pipeline::context::resolve_against(recipe_dir, p);
        let digest = files
            .digest(&path)
            .map_err(|e| StageError::msg(format!("dpg_questions {}: {e}", path.display())))?;
        Ok(vec![(p.clone(), digest)])
    }

    async fn run(&self, config: BenchmarkConfig, ctx: StageContext) -> Result<Output, StageError> {
        blocking("source.benchmark", move || {
            let summary = write_benchmark(&config, &ctx.recipe_dir, &ctx.out_dir)?;
            ctx.count("prompts", summary.rows);
            Ok(output(&summary, &SCHEMA))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn question_rows_are_grouped_by_item() {
        let csv = "item_id,text,proposition_id,dependency,tuple,question_natural_language\n\
                   partiprompts1,a cat,1,0,entity - whole (cat),Is there a cat?\n\
                   partiprompts1,a cat,2,1,attribute - color (cat),Is the cat black?\n\
                   7,two dogs,1,0,entity - whole (dog),Are there dogs?\n";
        let q = questions_by_item(csv.as_bytes().to_vec(), Path::new("q.csv")).unwrap();
        assert_eq!(q.len(), 2);
        assert_eq!(q["partiprompts1"].len(), 2);
        assert_eq!(
            q["partiprompts1"][1]["question_natural_language"],
            "Is the cat black?"
        );
        assert_eq!(q["7"][0]["dependency"], "0", "every value stays text");
    }
}
