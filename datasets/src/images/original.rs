//! The record of the original image that preparation keeps in a `source_image` row's
//! `metadata` JSON, under the key `original`: its format, width and height as stored,
//! EXIF orientation, byte count and SHA-256. The row's own `width` and `height` are the
//! prepared square's. Pairing deduplicates on `original.sha256`; the dataset report
//! plots `original.width` and `original.height`.

use super::prepare::Prepared;
use serde_json::{Map, Value, json};

/// The metadata key of the record.
pub const KEY: &str = "original";

/// The JSON path (for polars' `json_path_match`) of a field of the record.
pub fn json_path(field: &str) -> String {
    format!("$.{KEY}.{field}")
}

/// `metadata` (a JSON object, or none) with the record of `prepared`, whose original
/// was `len` bytes. An existing record (the row was prepared before) is kept: it
/// describes the first original. Metadata that is not a JSON object is kept as it was
/// under `source_metadata`.
pub fn with_record(metadata: Option<&str>, prepared: &Prepared, len: usize) -> String {
    let mut object = match metadata.map(serde_json::from_str::<Value>) {
        None => Map::new(),
        Some(Ok(Value::Object(map))) => map,
        Some(Ok(other)) => Map::from_iter([("source_metadata".to_string(), other)]),
        Some(Err(_)) => Map::from_iter([(
            "source_metadata".to_string(),
            Value::String(metadata.unwrap_or_default().to_string()),
        )]),
    };
    object.entry(KEY).or_insert_with(|| {
        json!({
            "format": prepared.header.format.name(),
            "width": prepared.header.width,
            "height": prepared.header.height,
            "orientation": prepared.orientation,
            "bytes": len,
            "sha256": prepared.sha256,
        })
    });
    Value::Object(object).to_string()
}
