//! `rollout`: one GRPO trajectory: prompt, sampled rationale and image, reward.

use crate::common::{ImageData, code_list, image_type};
use crate::def::SchemaDef;
use crate::rows::Row;
use arrow::datatypes::{DataType, Field};
use serde::{Deserialize, Serialize};

pub const SCHEMA: SchemaDef = SchemaDef {
    name: "rollout",
    version: 1,
    doc: "A GRPO rollout: prompt, sampled rationale and image, reward and advantage.",
    fields,
    added: &[],
};

fn fields() -> Vec<Field> {
    vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("prompt_id", DataType::Utf8, false),
        Field::new("prompt", DataType::Utf8, false),
        Field::new("step", DataType::UInt32, false),
        Field::new("sample", DataType::UInt32, false),
        Field::new("rationale", DataType::Utf8, false),
        Field::new("image", image_type(), true),
        Field::new("image_codes", code_list(), false),
        Field::new("reward", DataType::Float64, false),
        Field::new("advantage", DataType::Float64, false),
        Field::new("model", DataType::Utf8, false),
    ]
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Rollout {
    pub id: String,
    pub prompt_id: String,
    pub prompt: String,
    /// The RL step that sampled it.
    pub step: u32,
    /// Index within the prompt's group.
    pub sample: u32,
    pub rationale: String,
    pub image: Option<ImageData>,
    pub image_codes: Vec<u16>,
    pub reward: f64,
    pub advantage: f64,
    /// Digest of the model artifact that sampled it.
    pub model: String,
}

impl Row for Rollout {
    const SCHEMA: &'static SchemaDef = &SCHEMA;
}
