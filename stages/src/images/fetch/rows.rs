//! The rows of the input table, whatever its schema: the URL, the caption and the id
//! from the configured columns, and every other column kept as a JSON object for the
//! row's metadata.

use super::config::FetchConfig;
use arrow::record_batch::RecordBatch;
use pipeline::StageError;
use serde_json::{Map, Value};

/// One input row.
#[derive(Clone, Debug, PartialEq)]
pub struct InputRow {
    pub id: String,
    /// The URL cell as text (`None` when null or not text).
    pub url: Option<String>,
    pub caption: Option<String>,
    /// The other columns, as a JSON object (`None` when there are none).
    pub metadata: Option<String>,
}

/// A cell as text: strings as they are, other values as JSON, null as `None`.
fn text(value: Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s),
        other => Some(other.to_string()),
    }
}

/// Check that the table has the configured columns.
pub fn check_columns(config: &FetchConfig, columns: &[String]) -> Result<(), StageError> {
    let named = [
        Some(&config.url_column),
        config.caption_column.as_ref(),
        config.id_column.as_ref(),
    ];
    for (what, name) in ["url_column", "caption_column", "id_column"]
        .iter()
        .zip(named)
    {
        if let Some(name) = name
            && !columns.contains(name)
        {
            return Err(StageError::msg(format!(
                "`{what}` names `{name}`, which the input table does not have (its columns: {})",
                columns.join(", ")
            )));
        }
    }
    Ok(())
}

/// The rows of `batch`, the first at position `first` of the table.
pub fn rows(
    config: &FetchConfig,
    batch: &RecordBatch,
    first: u64,
) -> Result<Vec<InputRow>, StageError> {
    let objects: Vec<Map<String, Value>> = serde_arrow::from_record_batch(batch)
        .map_err(|e| StageError::msg(format!("input rows from {first}: {e}")))?;
    objects
        .into_iter()
        .enumerate()
        .map(|(i, mut object)| {
            let position = first + i as u64;
            let url = object.remove(&config.url_column).and_then(|v| match v {
                Value::String(s) => Some(s),
                _ => None,
            });
            let caption = match &config.caption_column {
                Some(c) => object.remove(c).and_then(text),
                None => None,
            };
            let id = match &config.id_column {
                Some(c) => object.remove(c).and_then(text).ok_or_else(|| {
                    StageError::msg(format!("input row {position}: the id column `{c}` is null"))
                })?,
                None => format!("{position:08}"),
            };
            let metadata = (!object.is_empty()).then(|| Value::Object(object).to_string());
            Ok(InputRow {
                id,
                url,
                caption,
                metadata,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{ArrayRef, Int64Array, StringArray};
    use std::sync::Arc;

    #[test]
    fn columns_are_picked_and_the_rest_is_kept() {
        let batch = RecordBatch::try_from_iter([
            (
                "link",
                Arc::new(StringArray::from(vec![Some("http://a/1.png"), None])) as ArrayRef,
            ),
            (
                "alt",
                Arc::new(StringArray::from(vec![Some("a cat"), None])) as ArrayRef,
            ),
            (
                "similarity",
                Arc::new(Int64Array::from(vec![7, 8])) as ArrayRef,
            ),
        ])
        .unwrap();
        let config = FetchConfig {
            url_column: "link".into(),
            caption_column: Some("alt".into()),
            ..FetchConfig::default()
        };
        let got = rows(&config, &batch, 40).unwrap();
        assert_eq!(
            got[0],
            InputRow {
                id: "00000040".into(),
                url: Some("http://a/1.png".into()),
                caption: Some("a cat".into()),
                metadata: Some(r#"{"similarity":7}"#.into()),
            }
        );
        assert_eq!(got[1].url, None);
        assert_eq!(got[1].id, "00000041");
        let columns = ["link".to_string(), "alt".to_string()];
        assert!(check_columns(&config, &columns).is_ok());
        let wrong = FetchConfig {
            id_column: Some("key".into()),
            ..config
        };
        let err = check_columns(&wrong, &columns).unwrap_err().to_string();
        assert!(err.contains("`key`") && err.contains("link, alt"), "{err}");
    }
}
