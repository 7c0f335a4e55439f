//! Column types shared by several schemas: the Hugging Face image struct, augmented
//! prompts (the five families of ReasonGen-R1-SFT-230k) and provenance records.

use arrow::datatypes::{DataType, Field, Fields};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The Hugging Face `Image` feature: `struct{bytes: binary, path: string}`.
pub fn image_type() -> DataType {
    DataType::Struct(Fields::from(vec![
        Field::new("bytes", DataType::Binary, true),
        Field::new("path", DataType::Utf8, true),
    ]))
}

/// Is `ty` the image struct (nullability aside)?
pub fn is_image_type(ty: &DataType) -> bool {
    crate::def::nullable_type(ty) == image_type()
}

/// An encoded image (PNG, JPEG, …) as the Hugging Face `Image` feature stores it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageData {
    #[serde(with = "serde_bytes")]
    pub bytes: Option<Vec<u8>>,
    pub path: Option<String>,
}

impl ImageData {
    pub fn from_bytes(bytes: Vec<u8>, path: Option<String>) -> Self {
        ImageData {
            bytes: Some(bytes),
            path,
        }
    }
}

pub(crate) fn string_list() -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
}

/// Prompt candidates in the five families of ReasonGen-R1-SFT-230k
/// (`research/paper.md` §1.1): the SFT draws one per sample.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AugmentedPrompts {
    pub short_caption: Option<String>,
    pub paraphrases: Vec<String>,
    pub tags: Vec<String>,
    pub varied_captions: Vec<String>,
    pub object_prompts: Vec<String>,
}

pub(crate) fn augmented_prompts_type() -> DataType {
    DataType::Struct(Fields::from(vec![
        Field::new("short_caption", DataType::Utf8, true),
        Field::new("paraphrases", string_list(), false),
        Field::new("tags", string_list(), false),
        Field::new("varied_captions", string_list(), false),
        Field::new("object_prompts", string_list(), false),
    ]))
}

/// Which request made a value: the task, the model, the template and its version, and
/// the request key under which the answer sits in the memo.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    /// `caption`, `augment`, `plan`, `teacher`, …
    pub task: String,
    pub model: String,
    pub template: String,
    pub template_version: u32,
    pub request_key: String,
}

pub(crate) fn provenance_type() -> DataType {
    DataType::List(Arc::new(Field::new(
        "item",
        DataType::Struct(Fields::from(vec![
            Field::new("task", DataType::Utf8, false),
            Field::new("model", DataType::Utf8, false),
            Field::new("template", DataType::Utf8, false),
            Field::new("template_version", DataType::UInt32, false),
            Field::new("request_key", DataType::Utf8, false),
        ])),
        true,
    )))
}

pub(crate) fn code_list() -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::UInt16, true)))
}
