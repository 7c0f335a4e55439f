//! `rollout`: one GRPO trajectory: the prompt, the sampled rationale and image, the
//! reward and where it came from (the judge's answer and request key, or why there is
//! none), the advantage and the log-probabilities it was trained with.

use crate::common::{ImageData, code_list, image_type};
use crate::def::SchemaDef;
use crate::rows::Row;
use arrow::datatypes::{DataType, Field};
use serde::{Deserialize, Serialize};

pub const SCHEMA: SchemaDef = SchemaDef {
    name: "rollout",
    version: 2,
    doc: "A GRPO rollout: prompt, sampled rationale and image, reward with its judge's answer and request key, advantage and log-probability.",
    fields,
    added: &[
        ("generation", 2),
        ("rationale_tokens", 2),
        ("capped", 2),
        ("rewards", 2),
        ("judge_answer", 2),
        ("request_key", 2),
        ("failure", 2),
        ("kept", 2),
        ("log_prob", 2),
    ],
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
        Field::new("generation", DataType::UInt32, true),
        Field::new("rationale_tokens", DataType::UInt32, true),
        Field::new("capped", DataType::Boolean, true),
        Field::new("rewards", DataType::Utf8, true),
        Field::new("judge_answer", DataType::Utf8, true),
        Field::new("request_key", DataType::Utf8, true),
        Field::new("failure", DataType::Utf8, true),
        Field::new("kept", DataType::Boolean, true),
        Field::new("log_prob", DataType::Float64, true),
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
    /// The reward (0 when the judge failed: see `failure`).
    pub reward: f64,
    /// Its group-normalised advantage (0 when left out of the update).
    pub advantage: f64,
    /// The model that sampled it: the input model's digest and the step (`…@12`).
    pub model: String,
    /// Which generation batch of the step it came from (dynamic sampling).
    pub generation: Option<u32>,
    pub rationale_tokens: Option<u32>,
    /// The rationale hit `max_rationale_tokens`.
    pub capped: Option<bool>,
    /// Each reward's value, by name, as JSON (`{"vlm": 1.0}`; a sum lists its parts).
    pub rewards: Option<String>,
    /// The judge's answer text (VLM rewards).
    pub judge_answer: Option<String>,
    /// The judge request's key in the memo (`llm.chat`): the exact request sent.
    pub request_key: Option<String>,
    /// Why there is no reward (the judge failed after its retries).
    pub failure: Option<String>,
    /// Trained on: its group was informative and within the step's batch.
    pub kept: Option<bool>,
    /// The sum of its response tokens' log-probabilities under the rollout policy.
    pub log_prob: Option<f64>,
}

impl Row for Rollout {
    const SCHEMA: &'static SchemaDef = &SCHEMA;
}
