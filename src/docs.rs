//! `reasongen stages`, `reasongen schema` and `reasongen init`: documentation generated
//! from the stages' typed configs, never written by hand.

use anyhow::{Result, bail};
use pipeline::registry::StageInfo;
use pipeline::stage::{Arity, OutputDecl};
use serde_json::{Map, Value, json};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct StagesArgs {
    /// Show only this kind.
    kind: Option<String>,
    /// Print JSON (kind, version, doc, inputs, output, config schema).
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct InitArgs {
    /// Where to write the recipe.
    #[arg(default_value = "recipe.toml")]
    path: PathBuf,
}

fn output_text(o: &OutputDecl) -> String {
    match o {
        OutputDecl::Fixed(t) => t.to_string(),
        OutputDecl::FromConfig { key, default } => format!("{default} (or as config `{key}` says)"),
        OutputDecl::TableFromConfig { key } => format!("table<schema named by config `{key}`>"),
    }
}

/// A config key's type in words, from its JSON Schema.
fn type_text(schema: &Value, defs: &Map<String, Value>) -> String {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.rsplit('/').next().unwrap_or(r);
        return match defs.get(name) {
            Some(def) => type_text(def, defs),
            None => name.to_string(),
        };
    }
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        let names: Vec<String> = values
            .iter()
            .map(|v| v.as_str().map_or(v.to_string(), str::to_string))
            .collect();
        return format!("one of {}", names.join("|"));
    }
    if let Some(options) = schema
        .get("oneOf")
        .or_else(|| schema.get("anyOf"))
        .and_then(Value::as_array)
    {
        let parts: Vec<String> = options
            .iter()
            .filter(|o| o.get("type") != Some(&json!("null")))
            .map(|o| {
                o.get("const")
                    .and_then(Value::as_str)
                    .map_or_else(|| type_text(o, defs), str::to_string)
            })
            .collect();
        return parts.join("|");
    }
    let ty = match schema.get("type") {
        Some(Value::String(t)) => t.clone(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .filter(|t| *t != "null")
            .collect::<Vec<_>>()
            .join("|"),
        _ => "any".to_string(),
    };
    match ty.as_str() {
        "array" => format!(
            "list of {}",
            schema
                .get("items")
                .map_or("any".into(), |i| type_text(i, defs))
        ),
        "object" => match schema.get("additionalProperties") {
            Some(v) if v.is_object() => format!("table of {}", type_text(v, defs)),
            _ => "table".into(),
        },
        _ => ty,
    }
}

fn print_stage(info: &StageInfo) {
    println!("{} v{}", info.kind, info.version);
    println!("  {}", info.doc);
    if info.inputs.is_empty() {
        println!("  inputs: none (a source)");
    } else {
        println!("  inputs:");
        for i in info.inputs {
            let arity = match i.arity {
                Arity::One => "one",
                Arity::Optional => "optional",
                Arity::Many => "one or more",
            };
            println!(
                "    {:<14} {} ({arity}): {}",
                i.name,
                i.describe_kinds(),
                i.doc
            );
        }
    }
    println!("  output: {}", output_text(&info.output));
    let schema = &info.config_schema;
    let empty = Map::new();
    let defs = schema
        .get("$defs")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        println!("  config:");
        for (key, p) in props {
            let default = if required.contains(&key.as_str()) {
                "required".to_string()
            } else {
                match p.get("default") {
                    Some(Value::Null) | None => "optional".to_string(),
                    Some(v) => format!("default {v}"),
                }
            };
            let doc = p
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or("")
                .replace('\n', " ");
            println!(
                "    {key:<14} {:<18} {default:<16} {doc}",
                type_text(p, defs)
            );
        }
    }
}

pub fn stages(args: StagesArgs) -> Result<ExitCode> {
    let registry = crate::registry();
    let mut infos = registry.infos();
    if let Some(kind) = &args.kind {
        infos.retain(|i| i.kind == kind);
        if infos.is_empty() {
            bail!(
                "no stage kind `{kind}` (known: {})",
                registry.kinds().collect::<Vec<_>>().join(", ")
            );
        }
    }
    if args.json {
        let out: Vec<Value> = infos
            .iter()
            .map(|i| {
                json!({
                    "kind": i.kind,
                    "version": i.version,
                    "doc": i.doc,
                    "inputs": i.inputs.iter().map(|s| json!({"name": s.name, "kinds": s.describe_kinds(), "arity": format!("{:?}", s.arity), "doc": s.doc})).collect::<Vec<_>>(),
                    "output": output_text(&i.output),
                    "uses_seed": i.uses_seed,
                    "config": i.config_schema,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        for (n, info) in infos.iter().enumerate() {
            if n > 0 {
                println!();
            }
            print_stage(info);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Rewrite `#/$defs/X` references to `#/$defs/<prefix>X` throughout a schema.
fn prefix_refs(v: &mut Value, prefix: &str) {
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                if k == "$ref"
                    && let Value::String(s) = child
                    && let Some(name) = s.strip_prefix("#/$defs/")
                {
                    *s = format!("#/$defs/{prefix}{name}");
                } else {
                    prefix_refs(child, prefix);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| prefix_refs(i, prefix)),
        _ => {}
    }
}

/// The JSON Schema of recipe files.
pub fn recipe_schema() -> Value {
    let registry = crate::registry();
    let mut defs = Map::new();
    let mut branches = Vec::new();
    let mut kinds = Vec::new();
    for info in registry.infos() {
        let prefix = format!("{}.", info.kind);
        let mut config = info.config_schema.clone();
        prefix_refs(&mut config, &prefix);
        if let Some(Value::Object(d)) = config.as_object_mut().and_then(|c| c.remove("$defs")) {
            for (name, def) in d {
                defs.insert(format!("{prefix}{name}"), def);
            }
        }
        if let Some(c) = config.as_object_mut() {
            c.remove("$schema");
            c.remove("title");
        }
        let input_names: Vec<&str> = info
            .inputs
            .iter()
            .map(|i| i.name)
            .filter(|n| *n != "*")
            .collect();
        let mut inputs =
            json!({"type": "object", "additionalProperties": {"$ref": "#/$defs/node_ref"}});
        if !info.inputs.iter().any(|i| i.name == "*") {
            inputs["propertyNames"] = json!({"enum": input_names});
        }
        branches.push(json!({
            "if": {"properties": {"kind": {"const": info.kind}}, "required": ["kind"]},
            "then": {"properties": {"config": config, "inputs": inputs}, "description": info.doc}
        }));
        kinds.push(json!({"const": info.kind, "description": info.doc}));
    }
    defs.insert(
        "node_ref".into(),
        json!({"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}], "description": "a node id, or a list of node ids"}),
    );
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "reasongen recipe",
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "recipe": {
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "name": {"type": "string", "pattern": "^[A-Za-z0-9_-][A-Za-z0-9_.-]*$", "description": "refs in the store are kept per recipe name (default: the file name)"},
                    "description": {"type": "string"},
                    "seed": {"type": "integer", "minimum": 0, "description": "default seed of every node"}
                }
            },
            "nodes": {
                "type": "object",
                "propertyNames": {"pattern": "^[A-Za-z0-9_-][A-Za-z0-9_.-]*$"},
                "additionalProperties": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["kind"],
                    "properties": {
                        "kind": {"oneOf": kinds},
                        "description": {"type": "string"},
                        "seed": {"type": "integer", "minimum": 0},
                        "inputs": {"type": "object"},
                        "config": {"type": "object"}
                    },
                    "allOf": branches
                }
            }
        },
        "$defs": defs
    })
}

pub fn schema() -> Result<ExitCode> {
    println!("{}", serde_json::to_string_pretty(&recipe_schema())?);
    Ok(ExitCode::SUCCESS)
}

const STARTER: &str = r#"# A reasongen recipe: a DAG of nodes. `reasongen stages` lists every kind of node,
# `reasongen plan FILE` shows what would run and why, `reasongen run FILE` runs it.
# Editors: `reasongen schema > recipe.schema.json` gives completion and checking.

[recipe]
name = "starter"        # refs in the store are kept per recipe name
seed = 0                # the default seed of every node

# A source: read a table from a file (CSV, JSONL or Parquet), relative to this file.
# Editing the file re-runs this node; nothing else does.
[nodes.prompts]
kind = "table.import"
config = { path = "prompts.jsonl" }

# Keep some rows: a SQL condition, a seeded sample, a few columns.
[nodes.sample]
kind = "table.filter"
inputs = { input = "prompts" }
config = { sample = 0.5, seed = 1 }

# Any program can be a node: it reads {input.NAME} folders and writes into {out}.
[nodes.count]
kind = "command"
inputs = { table = "sample" }
config = { argv = ["sh", "-c", "ls {input.table} > {out}/shards.txt"] }
"#;

pub fn init(args: InitArgs) -> Result<ExitCode> {
    if args.path.exists() {
        bail!("{} exists; not overwriting it", args.path.display());
    }
    std::fs::write(&args.path, STARTER)?;
    let prompts = args
        .path
        .parent()
        .unwrap_or(std::path::Path::new("."))
        .join("prompts.jsonl");
    if !prompts.exists() {
        std::fs::write(
            &prompts,
            "{\"prompt\": \"a photo of a red cube\"}\n{\"prompt\": \"two blue spheres on a table\"}\n{\"prompt\": \"a green triangle above a yellow circle\"}\n{\"prompt\": \"three white squares\"}\n",
        )?;
    }
    println!(
        "wrote {} (and {} for it to read); try: reasongen plan {0}",
        args.path.display(),
        prompts.display()
    );
    Ok(ExitCode::SUCCESS)
}
