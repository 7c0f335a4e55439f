//! `rl_prompt`: a text prompt for RL or evaluation, with its family, task and metadata.

use crate::def::SchemaDef;
use crate::rows::Row;
use arrow::datatypes::{DataType, Field};
use serde::{Deserialize, Serialize};

pub const SCHEMA: SchemaDef = SchemaDef {
    name: "rl_prompt",
    version: 1,
    doc: "A prompt for RL or evaluation, with its family, task tag and metadata.",
    fields,
    added: &[],
};

fn fields() -> Vec<Field> {
    vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("prompt", DataType::Utf8, false),
        Field::new("family", DataType::Utf8, false),
        Field::new("tag", DataType::Utf8, true),
        Field::new("metadata", DataType::Utf8, true),
    ]
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RlPrompt {
    pub id: String,
    pub prompt: String,
    /// `geneval`, `dpg`, `t2i`, `shapes`, …
    pub family: String,
    /// The task within the family (`counting`, `position`, …).
    pub tag: Option<String>,
    /// Task metadata as a JSON object (e.g. GenEval's include/exclude).
    pub metadata: Option<String>,
}

impl Row for RlPrompt {
    const SCHEMA: &'static SchemaDef = &SCHEMA;
}
