//! `reasongen plan`: which nodes are fresh and which are stale, and why, computed from
//! keys and manifests alone (no table is read).

use crate::digest::Digest;
use crate::key::{ENGINE_KEY_VERSION, KeyInputs};
use crate::recipe::Graph;
use crate::registry::PreparedNode;
use crate::stage::StageError;
use crate::store::{FileHasher, Store};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// A node's state before a run.
#[derive(Clone, Debug, PartialEq)]
pub enum PlanState {
    /// Its run key is in the store with its artifact: it will not run.
    Fresh { run_key: Digest, digest: Digest },
    /// It will run.
    Stale,
    /// An input will be rebuilt first; the node runs only if that input's content
    /// changes (early cut-off).
    Pending,
    /// Its key cannot be computed (e.g. a source file is missing).
    Error(String),
}

#[derive(Clone, Debug)]
pub struct PlannedNode {
    pub index: usize,
    pub id: String,
    pub stage: String,
    pub state: PlanState,
    pub reasons: Vec<String>,
}

/// The key inputs of node `i`, given the content digests of its inputs.
pub fn key_inputs(
    graph: &Graph,
    i: usize,
    input_digests: BTreeMap<String, Vec<Digest>>,
    files: &FileHasher,
) -> Result<KeyInputs, StageError> {
    let node = &graph.nodes[i];
    key_of(
        node.prepared.as_ref(),
        node.seed,
        &graph.recipe.dir,
        input_digests,
        files,
    )
}

/// The key inputs of a prepared stage with `seed`, whose config paths resolve against
/// `recipe_dir`, given the content digests of its inputs.
pub fn key_of(
    p: &dyn PreparedNode,
    seed: u64,
    recipe_dir: &Path,
    input_digests: BTreeMap<String, Vec<Digest>>,
    files: &FileHasher,
) -> Result<KeyInputs, StageError> {
    let externals = p.externals(files, recipe_dir)?;
    Ok(KeyInputs {
        engine: ENGINE_KEY_VERSION,
        stage: p.kind().to_string(),
        stage_version: p.version(),
        config: p.canonical_config().clone(),
        inputs: input_digests,
        externals: externals.into_iter().collect(),
        seed: p.uses_seed().then_some(seed),
    })
}

/// Plan the nodes in `selection` (indexes of `graph`); nodes in `force` are stale.
pub fn plan(
    graph: &Graph,
    store: &Store,
    selection: &BTreeSet<usize>,
    force: &BTreeSet<usize>,
) -> Result<Vec<PlannedNode>, crate::store::StoreError> {
    let files = store.file_hasher()?;
    let recipe = &graph.recipe.name;
    let mut known: BTreeMap<usize, Digest> = BTreeMap::new();
    let mut out = Vec::new();
    for &i in selection {
        let node = &graph.nodes[i];
        let previous = store.get_ref(recipe, &node.id)?;
        let previous_key = match &previous {
            Some(r) => store.key(&r.run_key)?.map(|rec| rec.lineage.key),
            None => None,
        };
        // Digests of the inputs; an unknown one is assumed unchanged from last time,
        // so that the reasons still show every other change.
        let mut inputs = BTreeMap::new();
        let mut waiting_on = Vec::new();
        for (name, idxs) in &node.inputs {
            let mut ds = Vec::new();
            for (pos, j) in idxs.iter().enumerate() {
                match known.get(j) {
                    Some(d) => ds.push(*d),
                    None => {
                        waiting_on.push(format!(
                            "input `{name}` from `{}` will be rebuilt",
                            graph.nodes[*j].id
                        ));
                        let assumed = previous_key
                            .as_ref()
                            .and_then(|k| k.inputs.get(name))
                            .and_then(|v| v.get(pos).copied());
                        ds.push(assumed.unwrap_or_else(|| Digest::of_bytes(b"unknown")));
                    }
                }
            }
            inputs.insert(name.clone(), ds);
        }
        let key = match key_inputs(graph, i, inputs, &files) {
            Ok(k) => k,
            Err(e) => {
                out.push(PlannedNode {
                    index: i,
                    id: node.id.clone(),
                    stage: node.prepared.kind().to_string(),
                    state: PlanState::Error(e.to_string()),
                    reasons: vec![e.to_string()],
                });
                continue;
            }
        };
        let run_key = key.run_key();
        let mut reasons = match &previous_key {
            Some(prev) => key
                .changes_since(prev)
                .into_iter()
                .filter(|r| waiting_on.is_empty() || !r.starts_with("input `"))
                .collect(),
            None if previous.is_some() => vec!["the record of its last run is missing".into()],
            None => vec!["never run in this recipe".into()],
        };
        let state = if force.contains(&i) {
            reasons.insert(0, "forced (--force)".into());
            PlanState::Stale
        } else if !waiting_on.is_empty() {
            reasons.extend(waiting_on);
            if reasons.len() > waiting_on_count(&reasons) {
                PlanState::Stale
            } else {
                PlanState::Pending
            }
        } else {
            match store.lookup(&run_key)? {
                Some(rec) => {
                    known.insert(i, rec.digest);
                    reasons.clear();
                    PlanState::Fresh {
                        run_key,
                        digest: rec.digest,
                    }
                }
                None => {
                    if reasons.is_empty() {
                        reasons.push(match store.key(&run_key)? {
                            Some(_) => "its artifact is missing from the store".into(),
                            None => "no result for this key in the store".into(),
                        });
                    }
                    PlanState::Stale
                }
            }
        };
        out.push(PlannedNode {
            index: i,
            id: node.id.clone(),
            stage: node.prepared.kind().to_string(),
            state,
            reasons,
        });
    }
    Ok(out)
}

fn waiting_on_count(reasons: &[String]) -> usize {
    reasons
        .iter()
        .filter(|r| r.ends_with("will be rebuilt"))
        .count()
}
