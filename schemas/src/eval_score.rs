//! `eval_score`: one score of one benchmark task for one model, with everything the
//! protocol says to report beside it (judge, interval, counts, generation settings).
//! Per-image verdicts stay in `eval_sample` rows; this table holds their summaries.

use crate::def::SchemaDef;
use crate::rows::Row;
use arrow::datatypes::{DataType, Field};
use serde::{Deserialize, Serialize};

pub const SCHEMA: SchemaDef = SchemaDef {
    name: "eval_score",
    version: 1,
    doc: "A benchmark task's score for one model: judge, 95% interval, counts and the generation settings behind it.",
    fields,
    added: &[],
};

fn fields() -> Vec<Field> {
    vec![
        Field::new("benchmark", DataType::Utf8, false),
        Field::new("prompt_set", DataType::Utf8, false),
        Field::new("prompt_set_version", DataType::Utf8, false),
        Field::new("judge", DataType::Utf8, false),
        Field::new("judge_kind", DataType::Utf8, false),
        Field::new("task", DataType::Utf8, false),
        Field::new("score", DataType::Float64, false),
        Field::new("ci95_low", DataType::Float64, true),
        Field::new("ci95_high", DataType::Float64, true),
        Field::new("prompts", DataType::UInt64, false),
        Field::new("images", DataType::UInt64, false),
        Field::new("model", DataType::Utf8, false),
        Field::new("samples", DataType::Utf8, false),
        Field::new("resolution", DataType::UInt32, true),
        Field::new("samples_per_prompt", DataType::UInt32, true),
        Field::new("seed", DataType::UInt64, true),
        Field::new("cot", DataType::Boolean, true),
        Field::new("cfg_weight", DataType::Float64, true),
        Field::new("settings", DataType::Utf8, true),
        Field::new("eval_report", DataType::Utf8, false),
    ]
}

/// The judge's standing: `official` (the benchmark's own evaluator), `exact` (a known
/// truth, the shapes world) or `substitute` (anything else, always labelled).
pub const JUDGE_KINDS: [&str; 3] = ["official", "exact", "substitute"];

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EvalScore {
    /// `geneval`, `dpg_bench`, `t2i_compbench`, `shapes_geneval`.
    pub benchmark: String,
    /// The prompts' family (`geneval`, `geneval_long`, `shapes`, …).
    pub prompt_set: String,
    /// The prompt table's artifact digest (short): which prompts, exactly.
    pub prompt_set_version: String,
    /// Which judge, in words a reader recognises (`GenEval evaluate_images.py`,
    /// `substitute: VLM qwen2.5-vl-7b`, …).
    pub judge: String,
    /// One of [`JUDGE_KINDS`].
    pub judge_kind: String,
    /// The task or category; `overall` for the benchmark's headline number.
    pub task: String,
    pub score: f64,
    /// Bootstrap 95 % interval over prompts, when computed.
    pub ci95_low: Option<f64>,
    pub ci95_high: Option<f64>,
    pub prompts: u64,
    pub images: u64,
    /// Digest of the model artifact that drew the images.
    pub model: String,
    /// Digest of the `eval_sample` table judged.
    pub samples: String,
    /// Image side in pixels.
    pub resolution: Option<u32>,
    pub samples_per_prompt: Option<u32>,
    /// The generating node's seed (each image's own seed is in its `eval_sample` row).
    pub seed: Option<u64>,
    /// Whether the model wrote a rationale before the image.
    pub cot: Option<bool>,
    /// Classifier-free guidance weight on the image (1: none).
    pub cfg_weight: Option<f64>,
    /// Every generation setting, as a JSON object.
    pub settings: Option<String>,
    /// Digest of the eval report the score comes from (set by `eval.scores`; a run's
    /// manifests name the node that made it).
    pub eval_report: String,
}

impl Row for EvalScore {
    const SCHEMA: &'static SchemaDef = &SCHEMA;
}
