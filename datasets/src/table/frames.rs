//! polars data frames → Arrow record batches, so that tables made with polars are
//! written by the same [`ShardWriter`](super::ShardWriter) as every other table.
//!
//! Columns cross through the Arrow C data interface (no copy). Types come out as the
//! conventional ones (`Utf8`, `Binary`, `List`), or as the target schema's types when
//! one is given, so a filtered table keeps the schema of its input.

use super::TableError;
use arrow::array::{ArrayRef, make_array};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, FieldRef, Fields, Schema, SchemaRef};
use arrow::ffi::{FFI_ArrowArray, FFI_ArrowSchema, from_ffi};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use polars::prelude::{CompatLevel, DataFrame, DataType as PlDataType, Field as PlField};
use std::path::Path;
use std::sync::Arc;

/// `dtype` with `Null` (what polars infers for JSON `null` and `[]`) made `String`, if
/// it has one: `Null` does not cross the C data interface. Values are unchanged (all
/// null, or empty lists), and an all-null column casts to any target type.
fn concrete(dtype: &PlDataType) -> Option<PlDataType> {
    match dtype {
        PlDataType::Null => Some(PlDataType::String),
        PlDataType::List(inner) => concrete(inner).map(|t| PlDataType::List(Box::new(t))),
        PlDataType::Struct(fields) => {
            let changed: Vec<Option<PlDataType>> =
                fields.iter().map(|f| concrete(f.dtype())).collect();
            changed.iter().any(Option::is_some).then(|| {
                PlDataType::Struct(
                    fields
                        .iter()
                        .zip(changed)
                        .map(|(f, t)| {
                            PlField::new(f.name().clone(), t.unwrap_or_else(|| f.dtype().clone()))
                        })
                        .collect(),
                )
            })
        }
        _ => None,
    }
}

/// One polars column as an arrow-rs array.
fn column_to_arrow(column: &polars::prelude::Column) -> Result<ArrayRef, String> {
    let column = match concrete(column.dtype()) {
        Some(t) => column.cast(&t).map_err(|e| e.to_string())?,
        None => column.clone(),
    };
    let field = column.field().to_arrow(CompatLevel::oldest());
    let array = column.rechunk_to_arrow(CompatLevel::oldest());
    let c_array = polars_arrow::ffi::export_array_to_c(array);
    let c_schema = polars_arrow::ffi::export_field_to_c(&field);
    // SAFETY: both crates implement the Arrow C data interface; the structs are
    // `#[repr(C)]` with the same layout, and ownership (the release callbacks) moves
    // with them.
    let data = unsafe {
        let c_array: FFI_ArrowArray = std::mem::transmute(c_array);
        let c_schema: FFI_ArrowSchema = std::mem::transmute(c_schema);
        from_ffi(c_array, &c_schema)
    }
    .map_err(|e| e.to_string())?;
    Ok(make_array(data))
}

/// The conventional type: large and view variants become the plain ones.
fn plain(ty: &DataType) -> DataType {
    match ty {
        DataType::LargeUtf8 | DataType::Utf8View => DataType::Utf8,
        DataType::LargeBinary | DataType::BinaryView => DataType::Binary,
        DataType::LargeList(f) | DataType::List(f) | DataType::ListView(f) => {
            DataType::List(Arc::new(plain_field(f)))
        }
        DataType::Struct(fields) => DataType::Struct(Fields::from(
            fields.iter().map(plain_field).collect::<Vec<_>>(),
        )),
        other => other.clone(),
    }
}

fn plain_field(f: &FieldRef) -> Field {
    Field::new(f.name(), plain(f.data_type()), f.is_nullable())
}

/// A data frame as a record batch of `target`'s types (and metadata) if given, else of
/// conventional types.
pub fn frame_to_batch(
    df: &DataFrame,
    target: Option<&SchemaRef>,
) -> Result<RecordBatch, TableError> {
    let here = Path::new("(data frame)");
    let mut fields = Vec::with_capacity(df.width());
    let mut arrays = Vec::with_capacity(df.width());
    for column in df.columns() {
        let array = column_to_arrow(column).map_err(|e| TableError::format(here, e))?;
        let want = match target.and_then(|t| t.field_with_name(column.name()).ok()) {
            Some(f) => f.clone(),
            None => Field::new(column.name().as_str(), plain(array.data_type()), true),
        };
        let array = if array.data_type() == want.data_type() {
            array
        } else {
            cast(&array, want.data_type())
                .map_err(|e| TableError::format(here, format!("column `{}`: {e}", column.name())))?
        };
        fields.push(Field::new(
            want.name(),
            want.data_type().clone(),
            want.is_nullable() || array.null_count() > 0,
        ));
        arrays.push(array);
    }
    let metadata = target.map(|t| t.metadata().clone()).unwrap_or_default();
    let schema = Arc::new(Schema::new(fields).with_metadata(metadata));
    RecordBatch::try_new_with_options(
        schema,
        arrays,
        &RecordBatchOptions::new().with_row_count(Some(df.height())),
    )
    .map_err(|e| TableError::format(here, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, StringArray, UInt16Array};
    use polars::df;

    #[test]
    fn frames_cross_to_arrow_with_plain_or_target_types() {
        let df = df!(
            "id" => ["a", "b", "c"],
            "n" => [1u16, 2, 3],
        )
        .unwrap();
        let batch = frame_to_batch(&df, None).unwrap();
        assert_eq!(batch.schema().field(0).data_type(), &DataType::Utf8);
        let ids = batch
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert_eq!(ids.value(2), "c");
        let ns = batch
            .column(1)
            .as_any()
            .downcast_ref::<UInt16Array>()
            .unwrap();
        assert_eq!(ns.values().to_vec(), vec![1, 2, 3]);

        let target = Arc::new(
            Schema::new(vec![
                Field::new("id", DataType::LargeUtf8, false),
                Field::new("n", DataType::UInt32, false),
            ])
            .with_metadata(std::collections::HashMap::from([(
                "k".to_string(),
                "v".to_string(),
            )])),
        );
        let batch = frame_to_batch(&df, Some(&target)).unwrap();
        assert_eq!(batch.schema().field(1).data_type(), &DataType::UInt32);
        assert_eq!(batch.schema().metadata()["k"], "v");
        assert_eq!(batch.column(0).len(), 3);
    }
}
