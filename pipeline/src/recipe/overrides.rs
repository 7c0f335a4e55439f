//! `--set NODE.KEY=VALUE`: command-line overrides of config values.
//!
//! VALUE is read as a TOML value (`3`, `0.5`, `true`, `"text"`, `[1, 2]`); anything
//! that is not valid TOML is taken as a plain string, so `--set f.where=a>1` works
//! without quotes. KEY may be dotted to reach into nested tables.

use super::parse::toml_to_json;
use super::{Diagnostic, Recipe, RecipeError};
use serde_json::Value;

/// One `--set` argument.
#[derive(Clone, Debug, PartialEq)]
pub struct Override {
    /// The argument as given, for messages.
    pub raw: String,
    target: String,
    value: Value,
}

impl Override {
    pub fn parse(raw: &str) -> Result<Override, String> {
        let (target, value) = raw
            .split_once('=')
            .ok_or_else(|| format!("--set {raw}: expected NODE.KEY=VALUE"))?;
        let target = target.trim();
        if !target.contains('.') {
            return Err(format!(
                "--set {raw}: expected NODE.KEY=VALUE (no `.` in `{target}`)"
            ));
        }
        let value = match toml::from_str::<toml::Table>(&format!("v = {value}")) {
            Ok(t) => toml_to_json(&t["v"]),
            Err(_) => Value::String(value.to_string()),
        };
        Ok(Override {
            raw: raw.to_string(),
            target: target.to_string(),
            value,
        })
    }

    /// Apply to the recipe: the longest node id that prefixes the target wins.
    pub fn apply(&self, recipe: &mut Recipe) -> Result<(), Diagnostic> {
        let origin = |message: String| Diagnostic {
            file: recipe.path.clone(),
            position: None,
            node: None,
            key: None,
            message: format!("--set {}: {message}", self.raw),
        };
        let mut best: Option<usize> = None;
        for (i, node) in recipe.nodes.iter().enumerate() {
            let prefix = format!("{}.", node.id);
            if self.target.starts_with(&prefix)
                && best.is_none_or(|b| recipe.nodes[b].id.len() < node.id.len())
            {
                best = Some(i);
            }
        }
        let Some(i) = best else {
            let ids: Vec<&str> = recipe.nodes.iter().map(|n| n.id.as_str()).collect();
            return Err(origin(format!(
                "no node of the recipe matches (nodes: {})",
                ids.join(", ")
            )));
        };
        let node = &mut recipe.nodes[i];
        let key = &self.target[node.id.len() + 1..];
        let mut slot = &mut node.config;
        let parts: Vec<&str> = key.split('.').collect();
        for (depth, part) in parts.iter().enumerate() {
            if part.is_empty() {
                return Err(origin("empty key segment".into()));
            }
            let Value::Object(map) = slot else {
                return Err(origin(format!(
                    "`{}` is not a table",
                    parts[..depth].join(".")
                )));
            };
            if depth + 1 == parts.len() {
                map.insert(part.to_string(), self.value.clone());
                return Ok(());
            }
            slot = map
                .entry(part.to_string())
                .or_insert_with(|| Value::Object(Default::default()));
        }
        unreachable!("split yields at least one part")
    }
}

/// Apply every override, reporting all that fail.
pub fn apply_all(recipe: &mut Recipe, overrides: &[Override]) -> Result<(), RecipeError> {
    let diagnostics: Vec<Diagnostic> = overrides
        .iter()
        .filter_map(|o| o.apply(recipe).err())
        .collect();
    if diagnostics.is_empty() {
        Ok(())
    } else {
        Err(RecipeError { diagnostics })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn recipe() -> Recipe {
        Recipe::parse(
            Path::new("r.toml"),
            "[nodes.a]\nkind='k'\n[nodes.'a.b']\nkind='k'\nconfig = { x = { y = 1 } }\n".into(),
        )
        .unwrap()
    }

    #[test]
    fn values_are_toml_or_plain_strings() {
        assert_eq!(Override::parse("a.k=3").unwrap().value, Value::from(3));
        assert_eq!(Override::parse("a.k=0.5").unwrap().value, Value::from(0.5));
        assert_eq!(
            Override::parse("a.k=\"s\"").unwrap().value,
            Value::from("s")
        );
        assert_eq!(
            Override::parse("a.k=x > 1").unwrap().value,
            Value::from("x > 1")
        );
        assert!(Override::parse("a=3").is_err());
        assert!(Override::parse("a.k").is_err());
    }

    #[test]
    fn longest_node_prefix_and_nested_keys() {
        let mut r = recipe();
        Override::parse("a.b.x.y=2").unwrap().apply(&mut r).unwrap();
        assert_eq!(r.node("a.b").unwrap().config["x"]["y"], Value::from(2));
        Override::parse("a.z=true").unwrap().apply(&mut r).unwrap();
        assert_eq!(r.node("a").unwrap().config["z"], Value::from(true));
        let err = Override::parse("nope.k=1")
            .unwrap()
            .apply(&mut r)
            .unwrap_err();
        assert!(err.message.contains("no node"), "{err}");
        let err = Override::parse("a.z.w=1")
            .unwrap()
            .apply(&mut r)
            .unwrap_err();
        assert!(err.message.contains("not a table"), "{err}");
    }
}
