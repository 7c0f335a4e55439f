//! The Hugging Face `datasets` features JSON of an Arrow schema.
//!
//! `datasets` reads the `huggingface` key of a Parquet file's metadata to decide how
//! columns decode: the image struct becomes its `Image` feature. Lists of scalars are
//! written as `Sequence`, which both `datasets` 2.x/3.x and 4.x read as a list; lists of
//! structs are written as a JSON list holding the struct, the form every version reads
//! as a list of dicts.

use crate::common::is_image_type;
use arrow::datatypes::{DataType, Schema};
use serde_json::{Map, Value, json};

fn value(dtype: &str) -> Value {
    json!({"dtype": dtype, "_type": "Value"})
}

fn feature(ty: &DataType) -> Value {
    if is_image_type(ty) {
        return json!({"_type": "Image"});
    }
    match ty {
        DataType::Utf8 | DataType::Utf8View => value("string"),
        DataType::LargeUtf8 => value("large_string"),
        DataType::Binary | DataType::BinaryView => value("binary"),
        DataType::LargeBinary => value("large_binary"),
        DataType::Boolean => value("bool"),
        DataType::Int8 => value("int8"),
        DataType::Int16 => value("int16"),
        DataType::Int32 => value("int32"),
        DataType::Int64 => value("int64"),
        DataType::UInt8 => value("uint8"),
        DataType::UInt16 => value("uint16"),
        DataType::UInt32 => value("uint32"),
        DataType::UInt64 => value("uint64"),
        DataType::Float16 => value("float16"),
        DataType::Float32 => value("float32"),
        DataType::Float64 => value("float64"),
        DataType::Null => value("null"),
        DataType::List(f) | DataType::LargeList(f) => match f.data_type() {
            DataType::Struct(_) if !is_image_type(f.data_type()) => {
                Value::Array(vec![feature(f.data_type())])
            }
            inner => json!({"feature": feature(inner), "_type": "Sequence"}),
        },
        DataType::Struct(fields) => Value::Object(
            fields
                .iter()
                .map(|f| (f.name().clone(), feature(f.data_type())))
                .collect::<Map<String, Value>>(),
        ),
        other => value(&other.to_string().to_lowercase()),
    }
}

/// `{"info": {"features": {...}}}` for `schema`.
pub fn hf_features(schema: &Schema) -> Value {
    let features: Map<String, Value> = schema
        .fields()
        .iter()
        .map(|f| (f.name().clone(), feature(f.data_type())))
        .collect();
    json!({"info": {"features": features}})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::{code_list, image_type, provenance_type};
    use arrow::datatypes::Field;

    #[test]
    fn images_lists_and_structs_map_to_datasets_features() {
        let schema = Schema::new(vec![
            Field::new("image", image_type(), false),
            Field::new("codes", code_list(), true),
            Field::new("provenance", provenance_type(), false),
            Field::new("n", DataType::UInt32, false),
        ]);
        let f = &hf_features(&schema)["info"]["features"];
        assert_eq!(f["image"], json!({"_type": "Image"}));
        assert_eq!(
            f["codes"],
            json!({"feature": {"dtype": "uint16", "_type": "Value"}, "_type": "Sequence"})
        );
        assert!(f["provenance"].is_array());
        assert_eq!(f["provenance"][0]["task"], value("string"));
        assert_eq!(f["n"], value("uint32"));
    }
}
