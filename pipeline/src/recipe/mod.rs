//! Recipes: TOML files that declare the nodes of a DAG.
//!
//! ```toml
//! [recipe]
//! name = "demo"           # refs in the store are kept per recipe name
//! seed = 7                # default seed of every node
//!
//! [nodes.prompts]
//! kind = "table.import"
//! config = { path = "data/prompts.jsonl" }
//!
//! [nodes.two_objects]
//! kind = "table.filter"
//! inputs = { input = "prompts" }
//! config = { where = "tag = 'two_object'" }
//! ```
//!
//! `[recipe] include = ["other.toml"]` adds another recipe's nodes (each with its own
//! recipe's seed, so their keys and cached results are the same in both recipes).
//!
//! This module parses and checks recipes; every error names the file, line, node and
//! key. [`validate`] turns a parsed recipe into a [`Graph`] of prepared nodes against a
//! registry, before anything runs.

mod diagnostics;
mod overrides;
mod parse;
mod validate;

pub use diagnostics::{Diagnostic, RecipeError};
pub use overrides::{Override, apply_all};
pub use validate::{Graph, GraphNode, validate};

use serde_json::Value;
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// A parsed recipe (not yet checked against the registry).
#[derive(Clone, Debug)]
pub struct Recipe {
    /// The file as the user named it (for messages).
    pub path: PathBuf,
    /// The folder relative paths in configs are resolved against (absolute).
    pub dir: PathBuf,
    pub name: String,
    pub description: Option<String>,
    pub seed: u64,
    /// Nodes in file order.
    pub nodes: Vec<NodeDecl>,
    source: String,
    /// Byte spans of keys, by dotted path (`nodes.a.config.where`).
    spans: BTreeMap<String, Range<usize>>,
    /// The recipes `include` named, whose nodes come first in `nodes`.
    included: Vec<Recipe>,
}

/// One `[nodes.ID]` table.
#[derive(Clone, Debug)]
pub struct NodeDecl {
    pub id: String,
    pub kind: String,
    /// Input name → the node ids bound to it (a string in the file is a list of one).
    pub inputs: BTreeMap<String, Vec<String>>,
    /// The config table, as JSON.
    pub config: Value,
    pub seed: Option<u64>,
    pub description: Option<String>,
}

impl Recipe {
    /// Read and parse a recipe file.
    pub fn load(path: &Path) -> Result<Recipe, RecipeError> {
        let source = std::fs::read_to_string(path).map_err(|e| {
            RecipeError::single(Diagnostic::file(path, format!("cannot read recipe: {e}")))
        })?;
        Self::parse(path, source)
    }

    /// Parse recipe text; `path` is used for messages and for the recipe folder.
    pub fn parse(path: &Path, source: String) -> Result<Recipe, RecipeError> {
        parse::parse(path, source)
    }

    pub fn node(&self, id: &str) -> Option<&NodeDecl> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// A diagnostic at the key `path` (dotted), or at the closest enclosing key found.
    pub(crate) fn diagnostic_at(
        &self,
        key_path: &str,
        node: Option<&str>,
        key: Option<&str>,
        message: String,
    ) -> Diagnostic {
        if let Some(id) = node
            && !self.spans.contains_key(&format!("nodes.{id}"))
            && let Some(inner) = self.included.iter().find(|r| r.node(id).is_some())
        {
            return inner.diagnostic_at(key_path, Some(id), key, message);
        }
        let mut probe = key_path.to_string();
        let span = loop {
            if let Some(span) = self.spans.get(&probe) {
                break Some(span.clone());
            }
            match probe.rfind('.') {
                Some(i) => probe.truncate(i),
                None => break None,
            }
        };
        let position = span.map(|s| diagnostics::line_col(&self.source, s.start));
        Diagnostic {
            file: self.path.clone(),
            position,
            node: node.map(str::to_string),
            key: key.map(str::to_string),
            message,
        }
    }
}
