//! `eval_sample`: one generated image of a benchmark prompt, with its score.

use crate::common::{ImageData, image_type};
use crate::def::SchemaDef;
use crate::rows::Row;
use arrow::datatypes::{DataType, Field};
use serde::{Deserialize, Serialize};

pub const SCHEMA: SchemaDef = SchemaDef {
    name: "eval_sample",
    version: 1,
    doc: "A benchmark sample: prompt, generated rationale and image, score and details.",
    fields,
    added: &[],
};

fn fields() -> Vec<Field> {
    vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("benchmark", DataType::Utf8, false),
        Field::new("prompt_id", DataType::Utf8, false),
        Field::new("prompt", DataType::Utf8, false),
        Field::new("tag", DataType::Utf8, true),
        Field::new("sample", DataType::UInt32, false),
        Field::new("seed", DataType::UInt64, false),
        Field::new("rationale", DataType::Utf8, true),
        Field::new("image", image_type(), false),
        Field::new("score", DataType::Float64, true),
        Field::new("details", DataType::Utf8, true),
        Field::new("model", DataType::Utf8, false),
    ]
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EvalSample {
    pub id: String,
    /// `geneval`, `dpg_bench`, `t2i_compbench`, `shapes_geneval`, …
    pub benchmark: String,
    pub prompt_id: String,
    pub prompt: String,
    pub tag: Option<String>,
    /// Index of the image among the prompt's samples.
    pub sample: u32,
    pub seed: u64,
    pub rationale: Option<String>,
    pub image: ImageData,
    pub score: Option<f64>,
    /// The judge's details as a JSON object.
    pub details: Option<String>,
    /// Digest of the model artifact that generated it.
    pub model: String,
}

impl Row for EvalSample {
    const SCHEMA: &'static SchemaDef = &SCHEMA;
}
