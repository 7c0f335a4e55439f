//! `source_image`: an image as it came from a source, with its caption or alt text.

use crate::common::{ImageData, image_type};
use crate::def::SchemaDef;
use crate::rows::Row;
use arrow::datatypes::{DataType, Field};
use serde::{Deserialize, Serialize};

pub const SCHEMA: SchemaDef = SchemaDef {
    name: "source_image",
    version: 1,
    doc: "An image from a source (folder, table, published dataset) with its caption.",
    fields,
    added: &[],
};

fn fields() -> Vec<Field> {
    vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("image", image_type(), false),
        Field::new("caption", DataType::Utf8, true),
        Field::new("source", DataType::Utf8, false),
        Field::new("width", DataType::UInt32, true),
        Field::new("height", DataType::UInt32, true),
        Field::new("aesthetic", DataType::Float64, true),
        Field::new("metadata", DataType::Utf8, true),
    ]
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SourceImage {
    pub id: String,
    pub image: ImageData,
    /// Caption or alt text, if the source has one.
    pub caption: Option<String>,
    /// Where the row came from (a folder, a file, a dataset id).
    pub source: String,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub aesthetic: Option<f64>,
    /// Other source fields, as a JSON object.
    pub metadata: Option<String>,
}

impl Row for SourceImage {
    const SCHEMA: &'static SchemaDef = &SCHEMA;
}
