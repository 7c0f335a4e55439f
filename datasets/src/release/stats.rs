//! Statistics of an exported table, for its dataset card: rationale lengths, image code
//! counts, and which models and templates made the rows.

use arrow::array::{Array, AsArray, ListArray, StringArray, StructArray, UInt32Array};
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use std::collections::BTreeMap;

/// The column holding the rationale, if any.
const RATIONALE_COLUMNS: &[&str] = &["rationale", "detailed_caption"];

/// (task, model, template, template version).
pub type Producer = (String, String, String, u32);

#[derive(Default, Debug)]
pub struct Stats {
    pub rationale_column: Option<String>,
    pub chars: Vec<u32>,
    pub words: Vec<u32>,
    pub codes: Vec<u32>,
    /// Rows made by each producer (a row made by two tasks counts for both).
    pub producers: BTreeMap<Producer, u64>,
}

/// Summary of a distribution.
#[derive(Debug, PartialEq)]
pub struct Summary {
    pub mean: f64,
    pub p50: u32,
    pub p90: u32,
    pub max: u32,
}

pub fn summarize(values: &[u32]) -> Option<Summary> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_unstable();
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    Some(Summary {
        mean: v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64,
        p50: at(0.5),
        p90: at(0.9),
        max: *v.last().expect("non-empty"),
    })
}

impl Stats {
    pub fn add(&mut self, batch: &RecordBatch) {
        let schema = batch.schema();
        if self.rationale_column.is_none() {
            self.rationale_column = RATIONALE_COLUMNS
                .iter()
                .find(|c| {
                    schema
                        .field_with_name(c)
                        .is_ok_and(|f| f.data_type() == &DataType::Utf8)
                })
                .map(|c| c.to_string());
        }
        if let Some(col) = &self.rationale_column
            && let Some(text) = batch
                .column_by_name(col)
                .and_then(|c| c.as_any().downcast_ref::<StringArray>())
        {
            for t in text.iter().flatten() {
                self.chars.push(t.chars().count() as u32);
                self.words.push(t.split_whitespace().count() as u32);
            }
        }
        if let Some(codes) = batch
            .column_by_name("image_codes")
            .and_then(|c| c.as_any().downcast_ref::<ListArray>())
        {
            for i in 0..codes.len() {
                if codes.is_valid(i) {
                    self.codes.push(codes.value_length(i) as u32);
                }
            }
        }
        if let Some(prov) = batch
            .column_by_name("provenance")
            .and_then(|c| c.as_any().downcast_ref::<ListArray>())
        {
            for i in 0..prov.len() {
                if prov.is_null(i) {
                    continue;
                }
                let entries = prov.value(i);
                let entries: &StructArray = entries.as_struct();
                for p in producers(entries) {
                    *self.producers.entry(p).or_default() += 1;
                }
            }
        }
    }
}

/// The producers listed in a provenance struct array.
pub fn producers(entries: &StructArray) -> Vec<Producer> {
    let s = |name: &str| {
        entries
            .column_by_name(name)
            .and_then(|c| c.as_any().downcast_ref::<StringArray>())
    };
    let (Some(task), Some(model), Some(template)) = (s("task"), s("model"), s("template")) else {
        return Vec::new();
    };
    let version = entries
        .column_by_name("template_version")
        .and_then(|c| c.as_any().downcast_ref::<UInt32Array>());
    (0..entries.len())
        .map(|j| {
            (
                task.value(j).to_string(),
                model.value(j).to_string(),
                template.value(j).to_string(),
                version.map_or(0, |v| v.value(j)),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries() {
        assert_eq!(summarize(&[]), None);
        let s = summarize(&[5, 1, 3, 2, 4, 10, 6, 7, 8, 9]).unwrap();
        assert_eq!(s.max, 10);
        assert_eq!(s.p50, 6);
        assert_eq!(s.p90, 9);
        assert!((s.mean - 5.5).abs() < 1e-9);
    }
}
