//! `sft_sample`: what SFT trains on: prompt candidates, the rationale, the image and
//! its codes.

use crate::common::{
    AugmentedPrompts, ImageData, Provenance, augmented_prompts_type, code_list, image_type,
    provenance_type,
};
use crate::def::SchemaDef;
use crate::rows::Row;
use arrow::datatypes::{DataType, Field};
use serde::{Deserialize, Serialize};

pub const SCHEMA: SchemaDef = SchemaDef {
    name: "sft_sample",
    version: 1,
    doc: "An SFT sample: prompt candidates, rationale, image, and the image's codes.",
    fields,
    added: &[],
};

fn fields() -> Vec<Field> {
    vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("prompts", augmented_prompts_type(), false),
        Field::new("rationale", DataType::Utf8, false),
        Field::new("image", image_type(), false),
        Field::new("image_codes", code_list(), true),
        Field::new("tokenizer", DataType::Utf8, true),
        Field::new("provenance", provenance_type(), false),
    ]
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SftSample {
    pub id: String,
    /// The prompt candidates one is drawn from per sample.
    pub prompts: AugmentedPrompts,
    pub rationale: String,
    pub image: ImageData,
    /// The image's codes, filled by a tokenizer node.
    pub image_codes: Option<Vec<u16>>,
    /// Id of the tokenizer that made the codes (its kind and artifact digest).
    pub tokenizer: Option<String>,
    pub provenance: Vec<Provenance>,
}

impl Row for SftSample {
    const SCHEMA: &'static SchemaDef = &SCHEMA;
}
