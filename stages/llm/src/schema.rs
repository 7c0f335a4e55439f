//! Validation of answers against the JSON-schema subset that structured outputs use
//! (the one OpenAI's strict mode accepts, and vLLM, SGLang and llama.cpp grammars
//! follow): `type` (one or a list), `properties`, `required`,
//! `additionalProperties: false`, `items`, `minItems`, `maxItems`, `enum`. A mismatch
//! names the JSON path of the first offending value.

use serde_json::Value;

/// Check `value` against `schema`; `Err("$.tags[2]: expected string, got number")`.
pub fn validate(schema: &Value, value: &Value) -> Result<(), String> {
    check(schema, value, &mut String::from("$"))
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_matches(want: &str, v: &Value) -> bool {
    let have = type_name(v);
    want == have || (want == "number" && have == "integer")
}

fn check(schema: &Value, value: &Value, path: &mut String) -> Result<(), String> {
    let fail = |path: &str, what: String| Err(format!("{path}: {what}"));
    match schema.get("type") {
        Some(Value::String(t)) if !type_matches(t, value) => {
            return fail(path, format!("expected {t}, got {}", type_name(value)));
        }
        Some(Value::Array(ts))
            if !ts
                .iter()
                .any(|t| t.as_str().is_some_and(|t| type_matches(t, value))) =>
        {
            return fail(
                path,
                format!(
                    "expected one of {}, got {}",
                    Value::from(ts.clone()),
                    type_name(value)
                ),
            );
        }
        _ => {}
    }
    if let Some(Value::Array(options)) = schema.get("enum")
        && !options.contains(value)
    {
        return fail(
            path,
            format!("{value} is not one of {}", Value::from(options.clone())),
        );
    }
    match value {
        Value::Object(map) => {
            let props = schema.get("properties").and_then(Value::as_object);
            if let Some(Value::Array(required)) = schema.get("required") {
                for name in required.iter().filter_map(Value::as_str) {
                    if !map.contains_key(name) {
                        return fail(path, format!("missing required property `{name}`"));
                    }
                }
            }
            for (name, v) in map {
                let len = path.len();
                path.push('.');
                path.push_str(name);
                let sub = props.and_then(|p| p.get(name));
                let r = match sub {
                    Some(sub) => check(sub, v, path),
                    None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                        fail(path, "property not allowed by the schema".to_string())
                    }
                    None => Ok(()),
                };
                path.truncate(len);
                r?;
            }
        }
        Value::Array(items) => {
            let n = items.len() as u64;
            if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
                && n < min
            {
                return fail(path, format!("{n} items, at least {min} required"));
            }
            if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
                && n > max
            {
                return fail(path, format!("{n} items, at most {max} allowed"));
            }
            if let Some(sub) = schema.get("items") {
                for (i, v) in items.iter().enumerate() {
                    let len = path.len();
                    path.push_str(&format!("[{i}]"));
                    let r = check(sub, v, path);
                    path.truncate(len);
                    r?;
                }
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["short", "tags"],
            "properties": {
                "short": {"type": "string"},
                "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 3},
                "n": {"type": ["integer", "null"]},
                "mode": {"enum": ["a", "b"]}
            }
        })
    }

    #[test]
    fn accepts_matching_values() {
        validate(&schema(), &json!({"short": "s", "tags": ["x"]})).unwrap();
        validate(
            &schema(),
            &json!({"short": "s", "tags": ["x", "y"], "n": null, "mode": "b"}),
        )
        .unwrap();
        validate(&json!({"type": "number"}), &json!(3)).unwrap();
    }

    #[test]
    fn names_the_first_mismatch() {
        let cases = [
            (json!([1]), "$: expected object, got array"),
            (
                json!({"tags": ["x"]}),
                "$: missing required property `short`",
            ),
            (
                json!({"short": "s", "tags": ["x", 2]}),
                "$.tags[1]: expected string, got integer",
            ),
            (
                json!({"short": "s", "tags": []}),
                "$.tags: 0 items, at least 1 required",
            ),
            (
                json!({"short": "s", "tags": ["a", "b", "c", "d"]}),
                "$.tags: 4 items, at most 3 allowed",
            ),
            (
                json!({"short": "s", "tags": ["x"], "extra": 1}),
                "$.extra: property not allowed by the schema",
            ),
            (
                json!({"short": "s", "tags": ["x"], "mode": "c"}),
                r#"$.mode: "c" is not one of ["a","b"]"#,
            ),
            (
                json!({"short": "s", "tags": ["x"], "n": 1.5}),
                r#"$.n: expected one of ["integer","null"], got number"#,
            ),
        ];
        for (value, want) in cases {
            assert_eq!(validate(&schema(), &value).unwrap_err(), want);
        }
    }
}
