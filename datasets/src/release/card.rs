//! The README.md dataset card: YAML front matter (`configs`, `dataset_info`, licence) in
//! the form the Hugging Face Hub reads, and prose a person reads.

use super::split::Splits;
use super::stats::{Stats, summarize};
use super::yaml::to_yaml;
use serde_json::{Map, Value, json};
use std::fmt::Write as _;

/// What the card says about where the data came from.
#[derive(Clone, Debug, Default)]
pub struct CardInfo {
    pub name: String,
    pub description: String,
    /// A Hub licence identifier (`mit`, `apache-2.0`, `cc-by-4.0`, `other`, …).
    pub license: String,
    pub recipe: String,
    pub node: String,
    /// Run key of the node that made the release.
    pub run_key: String,
    /// Content digest of the exported table.
    pub source: String,
}

/// One split as written.
#[derive(Clone, Debug, PartialEq)]
pub struct SplitReport {
    pub name: String,
    pub rows: u64,
    pub shards: usize,
    /// Bytes of its Parquet files.
    pub parquet_bytes: u64,
    /// Uncompressed bytes (the row groups' total size), the Hub's `num_bytes`.
    pub num_bytes: u64,
}

/// A `datasets` feature (JSON form) in the card's YAML form.
fn yaml_feature(f: &Value) -> Map<String, Value> {
    let simplify = |m: Map<String, Value>| -> Value {
        match (m.len(), m.get("dtype"), m.get("struct")) {
            (1, Some(d), _) => d.clone(),
            (1, _, Some(s)) => s.clone(),
            _ => Value::Object(m),
        }
    };
    let mut out = Map::new();
    match f {
        Value::Array(items) if !items.is_empty() => {
            out.insert("list".into(), simplify(yaml_feature(&items[0])));
        }
        Value::Object(o) => match o.get("_type").and_then(Value::as_str) {
            Some("Value") => {
                out.insert("dtype".into(), o["dtype"].clone());
            }
            Some(kind @ ("Sequence" | "List" | "LargeList")) => {
                let key = match kind {
                    "Sequence" => "sequence",
                    "List" => "list",
                    _ => "large_list",
                };
                out.insert(key.into(), simplify(yaml_feature(&o["feature"])));
            }
            Some(other) => {
                out.insert("dtype".into(), Value::String(other.to_lowercase()));
            }
            None => {
                let fields: Vec<Value> = o
                    .iter()
                    .map(|(name, sub)| {
                        let mut entry = Map::new();
                        entry.insert("name".into(), Value::String(name.clone()));
                        entry.extend(yaml_feature(sub));
                        Value::Object(entry)
                    })
                    .collect();
                out.insert("struct".into(), Value::Array(fields));
            }
        },
        _ => {
            out.insert("dtype".into(), Value::String("null".into()));
        }
    }
    out
}

/// The front matter as a JSON value (rendered to YAML).
fn front_matter(
    info: &CardInfo,
    features: &Map<String, Value>,
    splits: &[SplitReport],
    provenance: bool,
) -> Value {
    let data_files = |dir: &str| -> Vec<Value> {
        splits
            .iter()
            .map(|s| json!({"split": s.name, "path": format!("{dir}/{}-*", s.name)}))
            .collect()
    };
    let mut configs =
        vec![json!({"config_name": "default", "data_files": data_files("data"), "default": true})];
    if provenance {
        configs.push(json!({"config_name": "provenance", "data_files": data_files("provenance")}));
    }
    let feature_list: Vec<Value> = features
        .iter()
        .map(|(name, f)| {
            let mut entry = Map::new();
            entry.insert("name".into(), Value::String(name.clone()));
            entry.extend(yaml_feature(f));
            Value::Object(entry)
        })
        .collect();
    let download: u64 = splits.iter().map(|s| s.parquet_bytes).sum();
    let size: u64 = splits.iter().map(|s| s.num_bytes).sum();
    json!({
        "license": info.license,
        "pretty_name": info.name,
        "configs": configs,
        "dataset_info": {
            "features": feature_list,
            "splits": splits.iter().map(|s| json!({"name": s.name, "num_bytes": s.num_bytes, "num_examples": s.rows})).collect::<Vec<_>>(),
            "download_size": download,
            "dataset_size": size,
        },
        "tags": ["reasongen", "text-to-image", "chain-of-thought"],
    })
}

/// The whole README.md.
pub fn render(
    info: &CardInfo,
    schema_id: Option<&str>,
    features: &Map<String, Value>,
    splits: &[SplitReport],
    split_rule: &Splits,
    stats: &Stats,
    provenance: bool,
) -> String {
    let mut s = String::new();
    s.push_str("---\n");
    s.push_str(&to_yaml(&front_matter(info, features, splits, provenance)));
    s.push_str("---\n\n");
    let _ = writeln!(s, "# {}\n", info.name);
    if !info.description.is_empty() {
        let _ = writeln!(s, "{}\n", info.description);
    }
    let total: u64 = splits.iter().map(|r| r.rows).sum();
    let _ = writeln!(
        s,
        "Built with reasongen from recipe `{}`, node `{}` (run key `{}`), exporting table `{}`{}.\n",
        info.recipe,
        info.node,
        info.run_key,
        info.source,
        schema_id
            .map(|id| format!(" of schema `{id}`"))
            .unwrap_or_default()
    );
    s.push_str(
        "## Contents\n\n| split | rows | shards | Parquet bytes |\n| --- | ---: | ---: | ---: |\n",
    );
    for r in splits {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} |",
            r.name, r.rows, r.shards, r.parquet_bytes
        );
    }
    let _ = writeln!(s, "| total | {total} | | |\n");
    s.push_str("Columns: ");
    s.push_str(
        &features
            .keys()
            .map(|k| format!("`{k}`"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    s.push_str(".\n\n");

    if let Some(col) = &stats.rationale_column {
        let _ = writeln!(s, "## Rationales\n\nColumn `{col}`.\n");
        s.push_str(
            "| measure | mean | median | p90 | max |\n| --- | ---: | ---: | ---: | ---: |\n",
        );
        for (label, values) in [
            ("characters", &stats.chars),
            ("words (whitespace tokens)", &stats.words),
        ] {
            if let Some(m) = summarize(values) {
                let _ = writeln!(
                    s,
                    "| {label} | {:.1} | {} | {} | {} |",
                    m.mean, m.p50, m.p90, m.max
                );
            }
        }
        s.push('\n');
    }
    if let Some(m) = summarize(&stats.codes) {
        let _ = writeln!(
            s,
            "## Image codes\n\n{} rows carry image codes: {:.1} codes per image on average (max {}).\n",
            stats.codes.len(),
            m.mean,
            m.max
        );
    }
    if !stats.producers.is_empty() {
        s.push_str("## Models and templates\n\n| task | model | template | version | rows |\n| --- | --- | --- | ---: | ---: |\n");
        for ((task, model, template, version), n) in &stats.producers {
            let _ = writeln!(s, "| {task} | {model} | {template} | {version} | {n} |");
        }
        s.push('\n');
    }
    if provenance {
        s.push_str("## Provenance\n\nThe `provenance` config maps every row (`id`) to the task, model, template and request key that produced it: `load_dataset(REPO, \"provenance\")`.\n\n");
    }
    let fractions: Vec<String> = split_rule
        .fractions()
        .iter()
        .map(|(n, f)| format!("{n} {f}"))
        .collect();
    let _ = writeln!(
        s,
        "## Splits\n\nEach row's split is chosen by sha256(seed, id) with seed {} and fractions {}: a row keeps its split as the dataset grows.\n",
        split_rule.seed(),
        fractions.join(", ")
    );
    let _ = writeln!(s, "## Licence\n\n{}\n", info.license);
    s.push_str("## Files\n\n`SHA256SUMS` lists the sha256 of every file of this release.\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_take_the_hub_yaml_form() {
        let f: Value = serde_json::from_str(
            r#"{"image": {"_type": "Image"},
                "codes": {"feature": {"dtype": "uint16", "_type": "Value"}, "_type": "Sequence"},
                "prompts": {"short_caption": {"dtype": "string", "_type": "Value"}, "tags": {"feature": {"dtype": "string", "_type": "Value"}, "_type": "Sequence"}},
                "provenance": [{"task": {"dtype": "string", "_type": "Value"}}]}"#,
        )
        .unwrap();
        let f = f.as_object().unwrap();
        assert_eq!(
            Value::Object(yaml_feature(&f["image"])),
            json!({"dtype": "image"})
        );
        assert_eq!(
            Value::Object(yaml_feature(&f["codes"])),
            json!({"sequence": "uint16"})
        );
        assert_eq!(
            Value::Object(yaml_feature(&f["prompts"])),
            json!({"struct": [{"name": "short_caption", "dtype": "string"}, {"name": "tags", "sequence": "string"}]})
        );
        assert_eq!(
            Value::Object(yaml_feature(&f["provenance"])),
            json!({"list": [{"name": "task", "dtype": "string"}]})
        );
    }
}
