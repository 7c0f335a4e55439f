//! Refs: the latest artifact of each node of each recipe.
//!
//! On S3 a ref moves by compare-and-swap on its ETag: read it, and write only if it
//! is still the version read (`If-Match`; `If-None-Match: *` when there was none),
//! trying again on a conflict. Of two runs racing to move one ref, the one with the
//! later `updated_ms` wins whatever the order of their writes.

use super::remote::Put;
use super::{
    Result, Store, json_bytes, parse_json, read_dir_sorted, read_json_opt, write_json_atomic,
};
use crate::digest::Digest;
use object_store::PutMode;
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
        let Some(remote) = self.remote() else {
            return read_json_opt(&self.ref_path(recipe, node));
        };
        let rel = remote_ref(recipe, node);
        remote
            .get(&rel)?
            .map(|(bytes, _)| parse_json(&remote.url(), &rel, &bytes))
            .transpose()
    }

    pub fn put_ref(&self, recipe: &str, node: &str, r: &Ref) -> Result<()> {
        let Some(remote) = self.remote() else {
            return write_json_atomic(&self.ref_path(recipe, node), r);
        };
        let rel = remote_ref(recipe, node);
        loop {
            let mode = match remote.get(&rel)? {
                Some((bytes, version)) => {
                    let current: Ref = parse_json(&remote.url(), &rel, &bytes)?;
                    if current.updated_ms > r.updated_ms {
                        return Ok(());
                    }
                    PutMode::Update(version)
                }
                None => PutMode::Create,
            };
            if let Put::Done = remote.put(&rel, json_bytes(r).into(), mode)? {
                return Ok(());
            }
        }
    }

    pub fn remove_ref(&self, recipe: &str, node: &str) -> Result<()> {
        if let Some(remote) = self.remote() {
            return remote.delete(&remote_ref(recipe, node));
        }
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
        if let Some(remote) = self.remote() {
            for (rel, _) in remote.list("refs")? {
                let Some((recipe, node)) = rel
                    .strip_prefix("refs/")
                    .and_then(|r| r.strip_suffix(".json"))
                    .and_then(|r| r.split_once('/'))
                else {
                    continue;
                };
                if let Some(r) = self.get_ref(recipe, node)? {
                    out.push((recipe.to_string(), node.to_string(), r));
                }
            }
            return Ok(out);
        }
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

/// The bucket name of a ref.
fn remote_ref(recipe: &str, node: &str) -> String {
    format!("refs/{recipe}/{node}.json")
}

fn file_name(p: &std::path::Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}
