//! Refs: the latest artifact of each node of each recipe.

use super::{Result, Store, read_dir_sorted, read_json_opt, write_json_atomic};
use crate::digest::Digest;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// `refs/<recipe>/<node>.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ref {
    pub run_key: Digest,
    pub digest: Digest,
    /// Unix milliseconds of the run that set it.
    pub updated_ms: u64,
    pub run_id: String,
}

impl Store {
    fn ref_path(&self, recipe: &str, node: &str) -> PathBuf {
        self.path("refs").join(recipe).join(format!("{node}.json"))
    }

    pub fn get_ref(&self, recipe: &str, node: &str) -> Result<Option<Ref>> {
        read_json_opt(&self.ref_path(recipe, node))
    }

    pub fn put_ref(&self, recipe: &str, node: &str, r: &Ref) -> Result<()> {
        write_json_atomic(&self.ref_path(recipe, node), r)
    }

    pub fn remove_ref(&self, recipe: &str, node: &str) -> Result<()> {
        let p = self.ref_path(recipe, node);
        match std::fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(super::StoreError::Io { path: p, source: e })
            }
            _ => Ok(()),
        }
    }

    /// Every ref as (recipe, node, ref), sorted.
    pub fn refs(&self) -> Result<Vec<(String, String, Ref)>> {
        let mut out = Vec::new();
        for recipe_dir in read_dir_sorted(&self.path("refs"))? {
            let recipe = file_name(&recipe_dir);
            for file in read_dir_sorted(&recipe_dir)? {
                let name = file_name(&file);
                let Some(node) = name.strip_suffix(".json") else {
                    continue;
                };
                if node.starts_with('.') {
                    continue;
                }
                if let Some(r) = read_json_opt::<Ref>(&file)? {
                    out.push((recipe.clone(), node.to_string(), r));
                }
            }
        }
        Ok(out)
    }
}

fn file_name(p: &std::path::Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}
