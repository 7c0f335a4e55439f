//! Schema definitions: a name, a version, the Arrow fields, and the history of columns
//! added since version 1.

use crate::features::hf_features;
use crate::id::SchemaId;
use crate::{HF_METADATA_KEY, SCHEMA_METADATA_KEY};
use arrow::datatypes::{DataType, Field, Fields, Schema};
use std::collections::HashMap;
use std::sync::Arc;

/// One table schema.
pub struct SchemaDef {
    pub name: &'static str,
    pub version: u32,
    pub doc: &'static str,
    /// The Arrow fields of the current version.
    pub fields: fn() -> Vec<Field>,
    /// Columns added after version 1, each with the version that added it. A table of
    /// an older version is read with those columns null, when they are nullable.
    pub added: &'static [(&'static str, u32)],
}

impl SchemaDef {
    pub fn id(&self) -> SchemaId {
        SchemaId::new(self.name, self.version)
    }

    /// The Arrow schema as written: every field nullable, as `datasets` and pyarrow
    /// expect (a `datasets` feature only applies when its Arrow type equals the file's,
    /// nullability included), with the schema id and the Hugging Face features in its
    /// metadata (which the Parquet writer stores in the file's key-value metadata).
    /// Which columns are required is the business of [`SchemaDef::fields`] and of the
    /// row types.
    pub fn arrow_schema(&self) -> Schema {
        let schema = Schema::new(
            (self.fields)()
                .iter()
                .map(nullable_field)
                .collect::<Vec<_>>(),
        );
        let features = hf_features(&schema);
        let metadata = HashMap::from([
            (SCHEMA_METADATA_KEY.to_string(), self.id().to_string()),
            (HF_METADATA_KEY.to_string(), features.to_string()),
        ]);
        schema.with_metadata(metadata)
    }

    /// The version that added `column` (1 if it was there from the start).
    pub fn added_in(&self, column: &str) -> u32 {
        self.added
            .iter()
            .find(|(c, _)| *c == column)
            .map_or(1, |(_, v)| *v)
    }
}

/// `field` with it and every nested field nullable.
pub fn nullable_field(field: &Field) -> Field {
    Field::new(field.name(), nullable_type(field.data_type()), true)
}

/// `ty` with every nested field nullable.
pub fn nullable_type(ty: &DataType) -> DataType {
    match ty {
        DataType::List(f) => DataType::List(Arc::new(nullable_field(f))),
        DataType::LargeList(f) => DataType::LargeList(Arc::new(nullable_field(f))),
        DataType::Struct(fields) => DataType::Struct(Fields::from(
            fields.iter().map(|f| nullable_field(f)).collect::<Vec<_>>(),
        )),
        other => other.clone(),
    }
}

/// Every schema this build knows, current versions.
pub const ALL: &[&SchemaDef] = &[
    &crate::source_image::SCHEMA,
    &crate::rationale::SCHEMA,
    &crate::sft_sample::SCHEMA,
    &crate::rl_prompt::SCHEMA,
    &crate::rollout::SCHEMA,
    &crate::eval_sample::SCHEMA,
    &crate::eval_score::SCHEMA,
];

/// The current definition of the schema named `name`.
pub fn find(name: &str) -> Option<&'static SchemaDef> {
    ALL.iter().copied().find(|d| d.name == name)
}
