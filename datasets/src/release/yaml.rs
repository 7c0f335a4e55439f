//! A small YAML emitter for dataset cards: JSON values as block YAML, strings quoted
//! unless plainly safe. Enough for the card's front matter; not a general YAML library.

use serde_json::Value;

fn plain_ok(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | '*'))
        && !s.starts_with(['-', '.', '*'])
        && !matches!(
            s,
            "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "~"
        )
        && s.parse::<f64>().is_err()
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) if plain_ok(s) => s.clone(),
        Value::String(s) => serde_json::to_string(s).expect("strings serialise"),
        Value::Null => "null".into(),
        other => other.to_string(),
    }
}

fn is_scalar(v: &Value) -> bool {
    !matches!(v, Value::Object(_) | Value::Array(_))
}

fn emit(v: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                if is_scalar(child) {
                    out.push_str(&format!(
                        "{pad}{}: {}\n",
                        scalar(&Value::String(k.clone())),
                        scalar(child)
                    ));
                } else if child.as_array().is_some_and(Vec::is_empty) {
                    out.push_str(&format!("{pad}{k}: []\n"));
                } else {
                    out.push_str(&format!("{pad}{}:\n", scalar(&Value::String(k.clone()))));
                    let deeper = if child.is_array() { indent } else { indent + 2 };
                    emit(child, deeper, out);
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                if is_scalar(item) {
                    out.push_str(&format!("{pad}- {}\n", scalar(item)));
                } else {
                    // The first key sits on the dash line; the rest align under it.
                    let mut inner = String::new();
                    emit(item, indent + 2, &mut inner);
                    let trimmed = inner.trim_start_matches(' ');
                    out.push_str(&format!("{pad}- {trimmed}"));
                }
            }
        }
        scalar_value => out.push_str(&format!("{pad}{}\n", scalar(scalar_value))),
    }
}

/// `value` (an object) as block YAML.
pub fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    emit(value, 0, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_objects_and_lists() {
        // Keys in alphabetical order, so the expectation holds whether or not
        // serde_json keeps insertion order.
        let v = json!({
            "configs": [{"config_name": "default", "data_files": [{"path": "data/train-*", "split": "train"}]}],
            "empty": [],
            "license": "cc-by-4.0",
            "n": 3,
            "title": "a: tricky # title",
        });
        let y = to_yaml(&v);
        assert_eq!(
            y,
            "configs:\n- config_name: default\n  data_files:\n  - path: data/train-*\n    split: train\nempty: []\nlicense: cc-by-4.0\nn: 3\ntitle: \"a: tricky # title\"\n"
        );
    }
}
