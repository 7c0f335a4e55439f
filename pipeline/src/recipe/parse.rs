//! TOML → [`Recipe`], keeping the position of every key for messages.

use super::diagnostics::line_col;
use super::{Diagnostic, NodeDecl, Recipe, RecipeError};
use serde_json::Value;
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;
use toml::de::{DeTable, DeValue};

const RECIPE_KEYS: &[&str] = &["name", "description", "seed", "include"];
const NODE_KEYS: &[&str] = &["kind", "inputs", "config", "seed", "description"];

pub(super) fn parse(path: &Path, source: String) -> Result<Recipe, RecipeError> {
    let spans = match DeTable::parse(&source) {
        Ok(table) => {
            let mut spans = BTreeMap::new();
            record_spans(table.get_ref(), "", &mut spans);
            spans
        }
        Err(e) => return Err(RecipeError::single(toml_error(path, &source, &e))),
    };
    let table: toml::Table =
        toml::from_str(&source).map_err(|e| RecipeError::single(toml_error(path, &source, &e)))?;
    // Absolute, so that paths handed to programs stay valid in any working folder.
    // Keys never contain it: stages label external files by the paths as written.
    let dir = path
        .parent()
        .map(Path::to_path_buf)
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| ".".into());
    let dir = std::path::absolute(&dir).unwrap_or(dir);
    let default_name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "recipe".into());
    let mut recipe = Recipe {
        path: path.to_path_buf(),
        dir,
        name: default_name,
        description: None,
        seed: 0,
        nodes: Vec::new(),
        source,
        spans,
        included: Vec::new(),
    };
    let mut problems = Vec::new();

    for (key, value) in &table {
        match key.as_str() {
            "recipe" => read_header(&mut recipe, value, &mut problems),
            "nodes" => match value.as_table() {
                Some(nodes) => {
                    for (id, node) in nodes {
                        if let Some(decl) = read_node(&recipe, id, node, &mut problems) {
                            recipe.nodes.push(decl);
                        }
                    }
                }
                None => problems.push(recipe.diagnostic_at(
                    "nodes",
                    None,
                    Some("nodes"),
                    "must be a table of nodes (`[nodes.ID]`)".into(),
                )),
            },
            other => problems.push(recipe.diagnostic_at(
                other,
                None,
                Some(other),
                "unknown top-level key (expected `recipe` or `nodes`)".into(),
            )),
        }
    }
    include(&mut recipe, &mut problems);
    if recipe.nodes.is_empty() && problems.is_empty() {
        problems.push(Diagnostic::file(
            path,
            "the recipe declares no nodes (add a `[nodes.ID]` table)",
        ));
    }
    if problems.is_empty() {
        Ok(recipe)
    } else {
        Err(RecipeError {
            diagnostics: problems,
        })
    }
}

fn read_header(recipe: &mut Recipe, value: &toml::Value, problems: &mut Vec<Diagnostic>) {
    let Some(header) = value.as_table() else {
        problems.push(recipe.diagnostic_at(
            "recipe",
            None,
            Some("recipe"),
            "must be a table".into(),
        ));
        return;
    };
    for (key, v) in header {
        let at = format!("recipe.{key}");
        match (key.as_str(), v) {
            ("name", toml::Value::String(s)) => match check_name(s) {
                Ok(()) => recipe.name = s.clone(),
                Err(m) => problems.push(recipe.diagnostic_at(&at, None, Some(&at), m)),
            },
            ("description", toml::Value::String(s)) => recipe.description = Some(s.clone()),
            ("include", _) => {}
            ("seed", toml::Value::Integer(n)) if *n >= 0 => recipe.seed = *n as u64,
            ("name" | "description", _) => {
                problems.push(recipe.diagnostic_at(&at, None, Some(&at), "must be a string".into()))
            }
            ("seed", _) => problems.push(recipe.diagnostic_at(
                &at,
                None,
                Some(&at),
                "must be a non-negative integer".into(),
            )),
            _ => problems.push(recipe.diagnostic_at(
                &at,
                None,
                Some(&at),
                format!("unknown key (expected one of: {})", RECIPE_KEYS.join(", ")),
            )),
        }
    }
}

/// The nodes of the recipes `[recipe] include` names (files next to this one, or paths
/// relative to its folder), before this recipe's own: each keeps its recipe's seed and
/// its messages point into its own file; a node id defined twice is an error.
fn include(recipe: &mut Recipe, problems: &mut Vec<Diagnostic>) {
    let table: toml::Table = match toml::from_str(&recipe.source) {
        Ok(t) => t,
        Err(_) => return,
    };
    let Some(value) = table.get("recipe").and_then(|r| r.get("include")) else {
        return;
    };
    let at = "recipe.include";
    let files: Vec<String> = match value {
        toml::Value::String(s) => vec![s.clone()],
        toml::Value::Array(a) if a.iter().all(toml::Value::is_str) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => {
            problems.push(recipe.diagnostic_at(
                at,
                None,
                Some(at),
                "must be a file or a list of files".into(),
            ));
            return;
        }
    };
    let mut nodes = Vec::new();
    for file in files {
        let path = recipe.dir.join(&file);
        if path == recipe.path
            || std::path::absolute(&path).ok() == std::path::absolute(&recipe.path).ok()
        {
            problems.push(recipe.diagnostic_at(
                at,
                None,
                Some(at),
                format!("`{file}` includes itself"),
            ));
            continue;
        }
        match Recipe::load(&path) {
            Ok(inner) => {
                for mut node in inner.nodes.clone() {
                    node.seed = node.seed.or(Some(inner.seed));
                    nodes.push(node);
                }
                recipe.included.push(inner);
            }
            Err(e) => problems.extend(e.diagnostics),
        }
    }
    for node in &recipe.nodes {
        if nodes.iter().any(|n: &NodeDecl| n.id == node.id) {
            problems.push(recipe.diagnostic_at(
                &format!("nodes.{}", node.id),
                Some(&node.id),
                None,
                "this node id is already defined by an included recipe".into(),
            ));
        }
    }
    nodes.append(&mut recipe.nodes);
    recipe.nodes = nodes;
}

fn read_node(
    recipe: &Recipe,
    id: &str,
    value: &toml::Value,
    problems: &mut Vec<Diagnostic>,
) -> Option<NodeDecl> {
    let here = format!("nodes.{id}");
    let before = problems.len();
    if let Err(m) = check_name(id) {
        problems.push(recipe.diagnostic_at(&here, Some(id), None, format!("bad node id: {m}")));
    }
    let Some(table) = value.as_table() else {
        problems.push(recipe.diagnostic_at(
            &here,
            Some(id),
            None,
            "a node must be a table with at least `kind`".into(),
        ));
        return None;
    };
    let mut decl = NodeDecl {
        id: id.to_string(),
        kind: String::new(),
        inputs: BTreeMap::new(),
        config: Value::Object(Default::default()),
        seed: None,
        description: None,
    };
    for (key, v) in table {
        let at = format!("{here}.{key}");
        let mut bad = |message: &str| {
            problems.push(recipe.diagnostic_at(&at, Some(id), Some(key), message.to_string()))
        };
        match key.as_str() {
            "kind" => match v.as_str() {
                Some(s) => decl.kind = s.to_string(),
                None => bad("must be a string naming a stage kind (see `reasongen stages`)"),
            },
            "description" => match v.as_str() {
                Some(s) => decl.description = Some(s.to_string()),
                None => bad("must be a string"),
            },
            "seed" => match v.as_integer() {
                Some(n) if n >= 0 => decl.seed = Some(n as u64),
                _ => bad("must be a non-negative integer"),
            },
            "config" => match v.as_table() {
                Some(_) => decl.config = toml_to_json(v),
                None => bad("must be a table"),
            },
            "inputs" => match v.as_table() {
                Some(inputs) => {
                    for (name, target) in inputs {
                        let at = format!("{here}.inputs.{name}");
                        let ids = match target {
                            toml::Value::String(s) => Some(vec![s.clone()]),
                            toml::Value::Array(items) => items
                                .iter()
                                .map(|i| i.as_str().map(str::to_string))
                                .collect::<Option<Vec<_>>>(),
                            _ => None,
                        };
                        match ids {
                            Some(ids) => {
                                decl.inputs.insert(name.clone(), ids);
                            }
                            None => problems.push(recipe.diagnostic_at(
                                &at,
                                Some(id),
                                Some(&format!("inputs.{name}")),
                                "must be a node id or a list of node ids".into(),
                            )),
                        }
                    }
                }
                None => bad("must be a table of input name = node id"),
            },
            _ => bad(&format!(
                "unknown node key (expected one of: {})",
                NODE_KEYS.join(", ")
            )),
        }
    }
    if decl.kind.is_empty() && !table.contains_key("kind") {
        problems.push(recipe.diagnostic_at(
            &here,
            Some(id),
            Some("kind"),
            "missing `kind` (see `reasongen stages` for the list)".into(),
        ));
    }
    (problems.len() == before).then_some(decl)
}

/// Node ids and recipe names become file names in the store.
pub(super) fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}` must be 1–128 of A–Z a–z 0–9 _ - . and not start with a dot"
        ))
    }
}

/// TOML value → JSON value (datetimes become strings).
pub(super) fn toml_to_json(v: &toml::Value) -> Value {
    match v {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(n) => Value::from(*n),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(f.to_string())),
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(items) => Value::Array(items.iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => Value::Object(
            t.iter()
                .map(|(k, v)| (k.clone(), toml_to_json(v)))
                .collect(),
        ),
    }
}

fn record_spans(table: &DeTable<'_>, prefix: &str, out: &mut BTreeMap<String, Range<usize>>) {
    for (key, value) in table.iter() {
        let path = if prefix.is_empty() {
            key.get_ref().to_string()
        } else {
            format!("{prefix}.{}", key.get_ref())
        };
        out.insert(path.clone(), key.span());
        record_value_spans(value.get_ref(), &path, out);
    }
}

fn record_value_spans(value: &DeValue<'_>, path: &str, out: &mut BTreeMap<String, Range<usize>>) {
    match value {
        DeValue::Table(t) => record_spans(t, path, out),
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let p = format!("{path}.{i}");
                out.insert(p.clone(), item.span());
                record_value_spans(item.get_ref(), &p, out);
            }
        }
        _ => {}
    }
}

fn toml_error(path: &Path, source: &str, e: &toml::de::Error) -> Diagnostic {
    let position = e.span().map(|s| line_col(source, s.start));
    let mut d = Diagnostic {
        file: path.to_path_buf(),
        position,
        node: None,
        key: None,
        message: format!("invalid TOML: {}", e.message()),
    };
    // A repeated `[nodes.ID]` table is a duplicate node id.
    if e.message() == "duplicate key"
        && let Some(span) = e.span()
    {
        let line_start = source[..span.start].rfind('\n').map_or(0, |i| i + 1);
        let line = &source[line_start..];
        if line.trim_start().starts_with("[nodes.") {
            let id = &source[span.clone()];
            d.node = Some(id.trim_matches(['"', '\'']).to_string());
            d.message = "duplicate node id (each `[nodes.ID]` table must be unique)".into();
        }
    }
    d
}
