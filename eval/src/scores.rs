//! The score table: every eval stage writes its scores as `eval_score` rows into
//! `scores/` of its report, and its per-image verdicts as `eval_sample` rows (image
//! bytes left in the generation's table, `image.path` naming the sample) into
//! `verdicts/`; `eval.scores` collects the scores of many eval nodes into one table,
//! each row naming the report it came from by digest.
//! The generation settings behind a score come from the generating node's meta
//! (`model.generate` records them).

use datasets::table::{ShardOptions, ShardWriter, TableReader, TableSummary};
use pipeline::{
    Arity, ArtifactKind, ArtifactType, InputArtifact, InputSpec, Output, OutputDecl, Stage,
    StageContext, StageError,
};
use schemars::JsonSchema;
use schemas::Row;
use schemas::eval_sample::EvalSample;
use schemas::eval_score::{EvalScore, JUDGE_KINDS};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;

/// The images an eval stage judges (input `samples`).
pub const SAMPLES: InputSpec = InputSpec {
    name: "samples",
    kinds: &[ArtifactKind::Table],
    schema: Some("eval_sample"),
    arity: Arity::One,
    doc: "generated images with their prompt ids (model.generate)",
};

/// The prompts they were drawn for (input `prompts`).
pub const PROMPTS: InputSpec = InputSpec {
    name: "prompts",
    kinds: &[ArtifactKind::Table],
    schema: Some("rl_prompt"),
    arity: Arity::One,
    doc: "the prompts, in the benchmark's order (GenEval-style records in `metadata`)",
};

/// Folder of a report holding its `eval_score` rows.
pub const SCORES_DIR: &str = "scores";
/// Folder of a report holding its per-image verdicts (`eval_sample` rows).
pub const VERDICTS_DIR: &str = "verdicts";

/// What every score of one evaluation shares: which benchmark and prompts, which judge,
/// which images and how they were made.
#[derive(Clone, Debug)]
pub struct ScoreContext {
    pub benchmark: String,
    pub prompt_set: String,
    pub prompt_set_version: String,
    pub judge: String,
    pub judge_kind: &'static str,
    pub model: String,
    pub samples: String,
    pub settings: Value,
}

impl ScoreContext {
    /// The context of judging `samples` (an `eval_sample` table whose first row is
    /// `first`) against `prompts`, by `judge` of standing `judge_kind`.
    pub fn new(
        benchmark: &str,
        samples: &InputArtifact,
        first: Option<&EvalSample>,
        prompts: &InputArtifact,
        prompt_set: &str,
        judge: &str,
        judge_kind: &'static str,
    ) -> Self {
        ScoreContext::unjudged(benchmark, samples, first, prompts, prompt_set)
            .judged_by(judge, judge_kind)
    }

    /// What is known of `samples` before anyone judges them.
    pub fn unjudged(
        benchmark: &str,
        samples: &InputArtifact,
        first: Option<&EvalSample>,
        prompts: &InputArtifact,
        prompt_set: &str,
    ) -> Self {
        let meta = &samples.content.meta;
        ScoreContext {
            benchmark: benchmark.into(),
            prompt_set: prompt_set.into(),
            prompt_set_version: prompts.digest.short(),
            judge: String::new(),
            judge_kind: "substitute",
            model: meta["model"]
                .as_str()
                .map(str::to_string)
                .or_else(|| first.map(|s| s.model.clone()))
                .unwrap_or_default(),
            samples: samples.digest.to_hex(),
            settings: meta["settings"].clone(),
        }
    }

    /// The same images, judged by `judge` of standing `judge_kind` (one of
    /// [`JUDGE_KINDS`]).
    pub fn judged_by(mut self, judge: &str, judge_kind: &'static str) -> Self {
        debug_assert!(JUDGE_KINDS.contains(&judge_kind));
        self.judge = judge.into();
        self.judge_kind = judge_kind;
        self
    }

    /// The facts about the images, as a layout's `layout.json` keeps them.
    pub fn images_json(&self) -> Value {
        serde_json::json!({
            "benchmark": self.benchmark,
            "prompt_set": self.prompt_set,
            "prompt_set_version": self.prompt_set_version,
            "model": self.model,
            "samples": self.samples,
            "settings": self.settings,
        })
    }

    /// The context [`images_json`](Self::images_json) wrote, not yet judged.
    pub fn from_images_json(v: &Value) -> Result<Self, String> {
        let field = |k: &str| {
            v[k].as_str()
                .map(str::to_string)
                .ok_or_else(|| format!("no `{k}` in the layout's record"))
        };
        Ok(ScoreContext {
            benchmark: field("benchmark")?,
            prompt_set: field("prompt_set")?,
            prompt_set_version: field("prompt_set_version")?,
            judge: String::new(),
            judge_kind: "substitute",
            model: field("model")?,
            samples: field("samples")?,
            settings: v["settings"].clone(),
        })
    }

    /// One score row.
    pub fn row(
        &self,
        task: &str,
        score: f64,
        ci95: Option<(f64, f64)>,
        prompts: usize,
        images: usize,
    ) -> EvalScore {
        let s = &self.settings;
        EvalScore {
            benchmark: self.benchmark.clone(),
            prompt_set: self.prompt_set.clone(),
            prompt_set_version: self.prompt_set_version.clone(),
            judge: self.judge.clone(),
            judge_kind: self.judge_kind.into(),
            task: task.into(),
            score,
            ci95_low: ci95.map(|c| c.0),
            ci95_high: ci95.map(|c| c.1),
            prompts: prompts as u64,
            images: images as u64,
            model: self.model.clone(),
            samples: self.samples.clone(),
            resolution: s["resolution"].as_u64().map(|v| v as u32),
            samples_per_prompt: s["samples_per_prompt"].as_u64().map(|v| v as u32),
            seed: s["seed"].as_u64(),
            cot: s["cot"].as_bool(),
            cfg_weight: s["cfg_weight"].as_f64(),
            settings: (!s.is_null()).then(|| s.to_string()),
            eval_report: String::new(),
        }
    }
}

/// The family of a prompt table's rows (`geneval`, `shapes`, …; several joined by `+`).
pub fn prompt_set<'a>(families: impl IntoIterator<Item = &'a str>) -> String {
    let mut f: Vec<&str> = families.into_iter().collect();
    f.sort_unstable();
    f.dedup();
    f.join("+")
}

fn write_table<R: Row>(dir: &Path, rows: &[R]) -> Result<TableSummary, StageError> {
    std::fs::create_dir_all(dir)?;
    let mut w = ShardWriter::new(
        dir,
        Arc::new(R::SCHEMA.arrow_schema()),
        ShardOptions::default(),
    );
    w.write(&schemas::to_batch(rows)?)?;
    Ok(w.finish()?)
}

/// Write a report's scores and verdicts (the verdicts' image bytes are dropped; their
/// `image.path` keeps the sample's file name).
pub fn write(
    out_dir: &Path,
    scores: &[EvalScore],
    verdicts: impl IntoIterator<Item = EvalSample>,
) -> Result<(), StageError> {
    write_table(&out_dir.join(SCORES_DIR), scores)?;
    let verdicts: Vec<EvalSample> = verdicts
        .into_iter()
        .map(|mut v| {
            v.image.bytes = None;
            if v.image.path.is_none() {
                v.image.path = Some(format!("{}.png", v.id));
            }
            v
        })
        .collect();
    write_table(&out_dir.join(VERDICTS_DIR), &verdicts).map(drop)
}

/// Every row of a table.
pub fn read_all<R: Row>(dir: &Path) -> Result<Vec<R>, StageError> {
    let mut out = Vec::new();
    for rows in TableReader::open(dir)?.rows::<R>()? {
        out.extend(rows?);
    }
    Ok(out)
}

/// The scores of an eval node's report.
pub fn read_scores(report_dir: &Path) -> Result<Vec<EvalScore>, StageError> {
    let dir = report_dir.join(SCORES_DIR);
    if !dir.is_dir() {
        return Err(StageError::msg(format!(
            "{} holds no `{SCORES_DIR}/`: not the report of an eval stage",
            report_dir.display()
        )));
    }
    read_all(&dir)
}

/// The per-image verdicts of an eval node's report.
pub fn read_verdicts(report_dir: &Path) -> Result<Vec<EvalSample>, StageError> {
    read_all(&report_dir.join(VERDICTS_DIR))
}

/// Config of `eval.scores` (none).
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScoresConfig {}

/// `eval.scores`: the scores of many eval nodes as one `eval_score` table, each row
/// naming the report it came from.
pub struct Scores;

impl Stage for Scores {
    type Config = ScoresConfig;
    const KIND: &'static str = "eval.scores";
    const VERSION: u32 = 1;
    const DOC: &'static str =
        "The scores of eval nodes (any benchmark, any judge) as one eval_score table.";
    const INPUTS: &'static [InputSpec] = &[InputSpec {
        name: "evals",
        kinds: &[ArtifactKind::Report],
        schema: None,
        arity: Arity::Many,
        doc: "reports of eval stages",
    }];
    const OUTPUT: OutputDecl = OutputDecl::Fixed(ArtifactType::table("eval_score"));

    async fn run(&self, _: ScoresConfig, ctx: StageContext) -> Result<Output, StageError> {
        let mut rows = Vec::new();
        for input in ctx.inputs("evals") {
            let scores = read_scores(&input.dir)
                .map_err(|e| e.context(format!("input `{}`", input.node)))?;
            rows.extend(scores.into_iter().map(|mut s| {
                s.eval_report = input.digest.to_hex();
                s
            }));
        }
        let summary = write_table(&ctx.out_dir, &rows)?;
        ctx.log(format!(
            "{} scores from {} eval nodes",
            rows.len(),
            ctx.inputs("evals").len()
        ));
        Ok(Output {
            rows: Some(summary.rows),
            schema: summary.schema_id,
            meta: serde_json::json!({"scores": rows.len()}),
        })
    }
}
