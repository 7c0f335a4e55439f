//! `rationale`: the rationale (detailed caption) of an image and its augmented prompts,
//! in the columns of ReasonGen-R1-SFT-230k, plus provenance.

use crate::common::{AugmentedPrompts, Provenance, augmented_prompts_type, provenance_type};
use crate::def::SchemaDef;
use crate::rows::Row;
use arrow::datatypes::{DataType, Field};
use serde::{Deserialize, Serialize};

pub const SCHEMA: SchemaDef = SchemaDef {
    name: "rationale",
    version: 1,
    doc: "The rationale of an image and its augmented prompts (ReasonGen-R1-SFT-230k columns) with provenance.",
    fields,
    added: &[],
};

fn fields() -> Vec<Field> {
    vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("brief_caption", DataType::Utf8, true),
        Field::new("detailed_caption", DataType::Utf8, false),
        Field::new("augmented_prompts", augmented_prompts_type(), true),
        Field::new("provenance", provenance_type(), false),
    ]
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Rationale {
    /// The id of the image it describes.
    pub id: String,
    pub brief_caption: Option<String>,
    /// The rationale: a dense description of the image.
    pub detailed_caption: String,
    pub augmented_prompts: Option<AugmentedPrompts>,
    pub provenance: Vec<Provenance>,
}

impl Row for Rationale {
    const SCHEMA: &'static SchemaDef = &SCHEMA;
}
