//! Mapping the columns of a source batch onto one of our schemas.
//!
//! Each target column is filled from a source column (by default the one of the same
//! name), a constant, a generated row id, or nulls. Values are cast to the schema's
//! types: structs field by field by name (so a source whose struct fields come in
//! another order, or lack nullable ones, still maps), image columns through
//! [`images`](super::images), everything else by Arrow's cast (which refuses values
//! that do not convert rather than nulling them). Which columns and struct fields are
//! required comes from the schema's definition ([`SchemaDef::fields`]); the table is
//! written with its all-nullable Arrow schema ([`SchemaDef::arrow_schema`]). A required
//! value that is missing or null is an error that names the file, the row and the
//! column.

use super::images;
use super::read::Chunk;
use arrow::array::{Array, ArrayRef, AsArray, StringArray, StructArray, UInt32Array};
use arrow::array::{RecordBatch, new_null_array};
use arrow::buffer::NullBuffer;
use arrow::compute::{CastOptions, cast, cast_with_options, take};
use arrow::datatypes::{DataType, Field, Fields, SchemaRef};
use pipeline::StageError;
use schemars::JsonSchema;
use schemas::SchemaDef;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// How a table source makes the `id` column.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum IdRule {
    /// From a source column like any other column (`columns.id`, by default `id`).
    #[default]
    Column,
    /// From the file name and the row's 0-based position in the file:
    /// `{file name}-{row:06}`, e.g. `part-0.parquet-000041`.
    Row,
}

/// A value that does not fit its target type: the row (within the batch) if one row is
/// at fault, and why.
pub(crate) struct Misfit {
    row: Option<usize>,
    message: String,
}

impl Misfit {
    pub(crate) fn at(row: usize, message: impl Into<String>) -> Misfit {
        Misfit {
            row: Some(row),
            message: message.into(),
        }
    }

    pub(crate) fn all(message: impl Into<String>) -> Misfit {
        Misfit {
            row: None,
            message: message.into(),
        }
    }

    fn within(self, field: &str) -> Misfit {
        Misfit {
            message: format!("field `{field}`: {}", self.message),
            ..self
        }
    }
}

/// Where a target column's values come from.
pub(crate) enum Fill {
    /// The source column `name`; when the source lacks it, an error if `required`,
    /// else nulls.
    Column {
        name: String,
        required: bool,
    },
    /// One value (a one-row array of the target type) on every row.
    Constant(ArrayRef),
    /// Ids as [`IdRule::Row`] makes them.
    RowId,
    Null,
}

/// How the columns of a source become the columns of a schema.
pub(crate) struct Mapping {
    def: &'static SchemaDef,
    /// The schema's fields with their nullability: what a row must hold.
    required: Vec<Field>,
    /// The schema as written.
    schema: SchemaRef,
    fills: Vec<Fill>,
}

impl Mapping {
    /// Every target column from the source column of the same name, required when the
    /// schema requires it.
    pub(crate) fn new(def: &'static SchemaDef) -> Mapping {
        let required = (def.fields)();
        let fills = required
            .iter()
            .map(|f| Fill::Column {
                name: f.name().clone(),
                required: !f.is_nullable(),
            })
            .collect();
        Mapping {
            def,
            required,
            schema: Arc::new(def.arrow_schema()),
            fills,
        }
    }

    /// Apply a source config: `columns` (target → source column, required since named),
    /// `constants` (target → text, cast to the column's type) and the id rule.
    pub(crate) fn configure(
        mut self,
        columns: &BTreeMap<String, String>,
        constants: &BTreeMap<String, String>,
        id: IdRule,
    ) -> Result<Mapping, String> {
        for (target, source) in columns {
            self.set(
                target,
                Fill::Column {
                    name: source.clone(),
                    required: true,
                },
            )?;
        }
        for (target, value) in constants {
            if columns.contains_key(target) {
                return Err(format!("`{target}` is in both `columns` and `constants`"));
            }
            let i = self.index(target)?;
            let text: ArrayRef = Arc::new(StringArray::from(vec![value.as_str()]));
            let constant = self
                .conform(&text, i)
                .map_err(|m| format!("constant `{target}` = {value:?}: {}", m.message))?;
            self.set(target, Fill::Constant(constant))?;
        }
        if id == IdRule::Row {
            if columns.contains_key("id") || constants.contains_key("id") {
                return Err("`id = \"row\"` makes the ids; do not also map `id`".into());
            }
            self.set("id", Fill::RowId)?;
        }
        Ok(self)
    }

    fn index(&self, target: &str) -> Result<usize, String> {
        self.schema.index_of(target).map_err(|_| {
            let names: Vec<&str> = self
                .schema
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .collect();
            format!(
                "{} has no column `{target}`; its columns: {}",
                self.def.id(),
                names.join(", ")
            )
        })
    }

    /// `array` as column `i`: conformed to the definition's type (so that required
    /// struct fields are checked), then given the written type.
    fn conform(&self, array: &ArrayRef, i: usize) -> Result<ArrayRef, Misfit> {
        let strict = conform(array, self.required[i].data_type())?;
        let written = self.schema.field(i).data_type();
        if strict.data_type() == written {
            return Ok(strict);
        }
        cast(&strict, written).map_err(|e| Misfit::all(e.to_string()))
    }

    /// Fill `target` with `fill`.
    pub(crate) fn set(&mut self, target: &str, fill: Fill) -> Result<(), String> {
        let i = self.index(target)?;
        self.fills[i] = fill;
        Ok(())
    }

    /// The source columns the mapping reads (each once: one may fill several targets).
    pub(crate) fn source_columns(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .fills
            .iter()
            .filter_map(|f| match f {
                Fill::Column { name, .. } => Some(name.as_str()),
                _ => None,
            })
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// The target schema (with its id and features metadata).
    pub(crate) fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The target columns of a batch, in schema order, before the check for nulls in
    /// required columns ([`Mapping::finish`]).
    pub(crate) fn columns(&self, chunk: &Chunk) -> Result<Vec<ArrayRef>, StageError> {
        let rows = chunk.batch.num_rows();
        let mut out = Vec::with_capacity(self.fills.len());
        for (i, (field, fill)) in self.schema.fields().iter().zip(&self.fills).enumerate() {
            let ty = field.data_type();
            let column = match fill {
                Fill::Column { name, required } => match chunk.batch.column_by_name(name) {
                    Some(source) => self.conform(source, i).map_err(|m| {
                        let label = if name == field.name() {
                            name.clone()
                        } else {
                            format!("{name}` → `{}", field.name())
                        };
                        chunk.error(m.row, &label, m.message)
                    })?,
                    None if *required => {
                        return Err(StageError::msg(format!(
                            "{}: no column `{name}` for `{}`, which {} requires; the file has: {}",
                            chunk.file.display(),
                            field.name(),
                            self.def.id(),
                            chunk.source_columns.join(", ")
                        )));
                    }
                    None => new_null_array(ty, rows),
                },
                Fill::Constant(value) => take(value, &UInt32Array::from(vec![0; rows]), None)
                    .map_err(|e| chunk.error(None, field.name(), e))?,
                Fill::RowId => {
                    let file = chunk.file.file_name().unwrap_or_default().to_string_lossy();
                    Arc::new(StringArray::from_iter_values(
                        (0..rows).map(|r| format!("{file}-{:06}", chunk.first_row + r as u64)),
                    ))
                }
                Fill::Null => new_null_array(ty, rows),
            };
            out.push(column);
        }
        Ok(out)
    }

    /// The typed batch of `columns` (from [`Mapping::columns`]); a null in a required
    /// column is an error naming its row.
    pub(crate) fn finish(
        &self,
        chunk: &Chunk,
        columns: Vec<ArrayRef>,
    ) -> Result<RecordBatch, StageError> {
        for (field, column) in self.required.iter().zip(&columns) {
            if !field.is_nullable()
                && let Some(i) = first_null(column, None)
            {
                return Err(chunk.error(
                    Some(i),
                    field.name(),
                    format!("null, but {} requires a value", self.def.id()),
                ));
            }
        }
        RecordBatch::try_new(self.schema.clone(), columns).map_err(|e| chunk.error(None, "*", e))
    }
}

/// The first row where `array` is null and its parent (if any) is not.
fn first_null(array: &ArrayRef, parent: Option<&NullBuffer>) -> Option<usize> {
    if array.null_count() == 0 {
        return None;
    }
    (0..array.len()).find(|&i| array.is_null(i) && parent.is_none_or(|p| p.is_valid(i)))
}

/// `array` as type `ty`. An all-null column (as a JSON batch where a key is always
/// `null` reads) fits any type.
fn conform(array: &ArrayRef, ty: &DataType) -> Result<ArrayRef, Misfit> {
    if array.logical_null_count() == array.len() {
        return Ok(new_null_array(ty, array.len()));
    }
    if schemas::is_image_type(ty) {
        return images::image_array(array);
    }
    match (array.data_type(), ty) {
        (from, to) if from == to => Ok(array.clone()),
        (DataType::Struct(_), DataType::Struct(fields)) => {
            conform_struct(array.as_struct(), fields)
        }
        _ => {
            let options = CastOptions {
                safe: false,
                ..CastOptions::default()
            };
            cast_with_options(array, ty, &options).map_err(|e| Misfit::all(e.to_string()))
        }
    }
}

/// A struct as one with `fields`, matched by name: a nullable field the source lacks
/// is null, a required one is an error.
fn conform_struct(array: &StructArray, fields: &Fields) -> Result<ArrayRef, Misfit> {
    let mut children = Vec::with_capacity(fields.len());
    for f in fields {
        let child = match array.column_by_name(f.name()) {
            Some(c) => conform(c, f.data_type()).map_err(|m| m.within(f.name()))?,
            None if f.is_nullable() => new_null_array(f.data_type(), array.len()),
            None => return Err(Misfit::all(format!("no field `{}`", f.name()))),
        };
        if !f.is_nullable()
            && let Some(i) = first_null(&child, array.nulls())
        {
            return Err(Misfit::at(i, format!("field `{}` is null", f.name())));
        }
        children.push(child);
    }
    let s = StructArray::try_new(fields.clone(), children, array.nulls().cloned())
        .map_err(|e| Misfit::all(e.to_string()))?;
    Ok(Arc::new(s))
}
