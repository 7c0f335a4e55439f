//! Reading tables written by other schema versions.
//!
//! A table of an older version is read when every column the current version requires
//! is there with its type; columns added since, if nullable, are read as nulls. Anything
//! else is refused with a message that names the column and both versions. A table of a
//! newer version than this build knows is refused outright.

use crate::SCHEMA_METADATA_KEY;
use crate::def::{SchemaDef, nullable_type};
use crate::id::SchemaId;
use arrow::array::new_null_array;
use arrow::datatypes::Schema;
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use std::sync::Arc;

/// How a table's schema maps onto the current definition.
#[derive(Clone, Debug, PartialEq)]
pub struct Conformance {
    /// The schema id the table carries (`None` for a table written without one).
    pub written_by: Option<SchemaId>,
    /// Columns of the current version the table lacks; read as nulls.
    pub filled: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum EvolutionError {
    #[error("the table holds `{found}`, not a `{expected}` table")]
    OtherSchema { found: SchemaId, expected: String },
    #[error(
        "the table was written by {found}, newer than {current} which this build reads; upgrade reasongen"
    )]
    Newer { found: SchemaId, current: SchemaId },
    #[error(
        "column `{column}` (required, added in version {added_in}) is missing from a table written by {found}; this build reads {current}"
    )]
    MissingColumn {
        column: String,
        added_in: u32,
        found: String,
        current: SchemaId,
    },
    #[error(
        "column `{column}` is {found_type} in the table ({found}) but {expected_type} in {current}"
    )]
    TypeMismatch {
        column: String,
        found_type: String,
        expected_type: String,
        found: String,
        current: SchemaId,
    },
    #[error("column `{column}` of the table ({found}) is not in {current}")]
    UnknownColumn {
        column: String,
        found: String,
        current: SchemaId,
    },
    #[error("bad `{SCHEMA_METADATA_KEY}` metadata: {0}")]
    BadId(String),
}

/// Check a table's Arrow schema (with its metadata) against `def`.
pub fn conform(def: &SchemaDef, table: &Schema) -> Result<Conformance, Box<EvolutionError>> {
    let current = def.id();
    let written_by = match table.metadata().get(SCHEMA_METADATA_KEY) {
        Some(text) => Some(
            text.parse::<SchemaId>()
                .map_err(|e| EvolutionError::BadId(e.to_string()))?,
        ),
        None => None,
    };
    if let Some(id) = &written_by {
        if id.name != def.name {
            return Err(Box::new(EvolutionError::OtherSchema {
                found: id.clone(),
                expected: def.name.to_string(),
            }));
        }
        if id.version > def.version {
            return Err(Box::new(EvolutionError::Newer {
                found: id.clone(),
                current,
            }));
        }
    }
    let found = written_by
        .as_ref()
        .map_or_else(|| "no schema id".to_string(), |id| id.to_string());
    let mut filled = Vec::new();
    let fields = (def.fields)();
    for f in &fields {
        match table.field_with_name(f.name()) {
            // Nullability is not compared: written schemas are all-nullable.
            Ok(have) if nullable_type(have.data_type()) == nullable_type(f.data_type()) => {}
            Ok(have) => {
                return Err(Box::new(EvolutionError::TypeMismatch {
                    column: f.name().clone(),
                    found_type: have.data_type().to_string(),
                    expected_type: f.data_type().to_string(),
                    found,
                    current,
                }));
            }
            Err(_) if f.is_nullable() => filled.push(f.name().clone()),
            Err(_) => {
                return Err(Box::new(EvolutionError::MissingColumn {
                    column: f.name().clone(),
                    added_in: def.added_in(f.name()),
                    found,
                    current,
                }));
            }
        }
    }
    if let Some(extra) = table
        .fields()
        .iter()
        .find(|t| !fields.iter().any(|f| f.name() == t.name()))
    {
        return Err(Box::new(EvolutionError::UnknownColumn {
            column: extra.name().clone(),
            found,
            current,
        }));
    }
    Ok(Conformance { written_by, filled })
}

/// A batch of a conforming table in the current schema: columns in order, the filled
/// ones null, the current metadata.
pub fn adapt(def: &SchemaDef, batch: &RecordBatch) -> Result<RecordBatch, ArrowError> {
    let schema = Arc::new(def.arrow_schema());
    let columns = schema
        .fields()
        .iter()
        .map(|f| match batch.column_by_name(f.name()) {
            Some(c) => c.clone(),
            None => new_null_array(f.data_type(), batch.num_rows()),
        })
        .collect();
    RecordBatch::try_new(schema, columns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{DataType, Field};
    use std::collections::HashMap;

    fn v1() -> Vec<Field> {
        vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("text", DataType::Utf8, false),
        ]
    }
    fn v2() -> Vec<Field> {
        let mut f = v1();
        f.push(Field::new("score", DataType::Float64, true));
        f
    }
    fn v3() -> Vec<Field> {
        let mut f = v2();
        f.push(Field::new("lang", DataType::Utf8, false));
        f
    }
    const V1: SchemaDef = SchemaDef {
        name: "notes",
        version: 1,
        doc: "",
        fields: v1,
        added: &[],
    };
    const V2: SchemaDef = SchemaDef {
        name: "notes",
        version: 2,
        doc: "",
        fields: v2,
        added: &[("score", 2)],
    };
    const V3: SchemaDef = SchemaDef {
        name: "notes",
        version: 3,
        doc: "",
        fields: v3,
        added: &[("score", 2), ("lang", 3)],
    };

    fn tagged(fields: Vec<Field>, id: &str) -> Schema {
        Schema::new(fields).with_metadata(HashMap::from([(
            SCHEMA_METADATA_KEY.to_string(),
            id.to_string(),
        )]))
    }

    #[test]
    fn an_older_table_gains_its_new_nullable_columns() {
        let c = conform(&V2, &V1.arrow_schema()).unwrap();
        assert_eq!(c.written_by, Some(SchemaId::new("notes", 1)));
        assert_eq!(c.filled, vec!["score"]);
        let batch = RecordBatch::new_empty(Arc::new(V1.arrow_schema()));
        let adapted = adapt(&V2, &batch).unwrap();
        assert_eq!(adapted.schema().fields().len(), 3);
    }

    #[test]
    fn a_missing_required_column_names_the_column_and_both_versions() {
        let e = conform(&V3, &V1.arrow_schema()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "column `lang` (required, added in version 3) is missing from a table written by notes@1; this build reads notes@3"
        );
    }

    #[test]
    fn newer_other_and_mistyped_tables_are_refused() {
        assert!(matches!(
            conform(&V1, &V2.arrow_schema()).map_err(|e| *e),
            Err(EvolutionError::Newer { .. })
        ));
        let other = tagged(v1(), "rationale@1");
        assert!(matches!(
            conform(&V1, &other).map_err(|e| *e),
            Err(EvolutionError::OtherSchema { .. })
        ));
        let wrong = tagged(
            vec![
                Field::new("id", DataType::Utf8, false),
                Field::new("text", DataType::Int64, false),
            ],
            "notes@1",
        );
        let e = conform(&V1, &wrong).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("column `text` is Int64 in the table (notes@1) but Utf8 in notes@1"),
            "{e}"
        );
    }
}
