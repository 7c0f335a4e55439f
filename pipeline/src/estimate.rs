//! What a run would spend, before it runs: `reasongen plan` asks each stale node whose
//! inputs are already built for an estimate ([`crate::Stage::estimate`]); stages that
//! spend money (LLM requests) answer from their input rows, the memo and their last
//! run, and everything else answers nothing.

use crate::context::{InputArtifact, resolve_against};
use crate::digest::Digest;
use crate::memo::Memo;
use crate::plan::{PlanState, PlannedNode};
use crate::recipe::Graph;
use crate::stage::StageError;
use crate::store::Store;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// A quantity known to lie between `low` and `high`, most likely `expected`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Range {
    pub low: f64,
    pub expected: f64,
    pub high: f64,
}

impl Range {
    pub fn exact(v: f64) -> Range {
        Range {
            low: v,
            expected: v,
            high: v,
        }
    }
}

impl std::ops::Add for Range {
    type Output = Range;
    fn add(self, o: Range) -> Range {
        Range {
            low: self.low + o.low,
            expected: self.expected + o.expected,
            high: self.high + o.high,
        }
    }
}

/// What one node would send and spend.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SpendEstimate {
    /// The model its requests go to (the price table's key).
    pub model: String,
    /// Input rows.
    pub rows: u64,
    /// Rows whose answers the memo holds (free).
    pub cached: u64,
    /// Distinct requests it would send.
    pub to_send: u64,
    pub input_tokens: Range,
    pub output_tokens: Range,
    /// `None`: the price table lacks the model.
    pub cost_usd: Option<Range>,
    /// What a budget must allow for every request to be admitted at once: the sum of
    /// their worst cases.
    pub worst_usd: Option<f64>,
    /// How the answer lengths were estimated.
    pub basis: String,
}

/// A node's estimate, or why there is none yet.
#[derive(Clone, Debug, PartialEq)]
pub enum NodeEstimate {
    Known(SpendEstimate),
    /// Not computable before the run (an input is not built yet, or it failed).
    Unknown(String),
}

/// What a stage sees when asked for an estimate: its built inputs, the memo, its last
/// artifact in this recipe, and the recipe folder.
pub struct EstimateContext {
    pub recipe_dir: PathBuf,
    pub(crate) inputs: BTreeMap<String, Vec<InputArtifact>>,
    /// The node's artifact from its last run, if any (to learn from what it did).
    pub previous: Option<InputArtifact>,
    pub(crate) store: Store,
}

impl EstimateContext {
    /// The single artifact bound to input `name`.
    pub fn input(&self, name: &str) -> Result<&InputArtifact, StageError> {
        match self.inputs.get(name).map(Vec::as_slice) {
            Some([one]) => Ok(one),
            _ => Err(StageError::msg(format!(
                "input `{name}` is not bound to one artifact"
            ))),
        }
    }

    /// The item-level memo of `namespace` (lookups are not counted anywhere).
    pub fn memo(&self, namespace: &str) -> Result<Memo, StageError> {
        Ok(self.store.memo(namespace)?)
    }

    /// A path from the config, resolved against the recipe folder.
    pub fn resolve(&self, path: &str) -> PathBuf {
        resolve_against(&self.recipe_dir, path)
    }
}

/// The estimates of the stale nodes of `plan` whose stages spend money. A node whose
/// inputs are not all built is `Unknown`, naming the input to build first.
pub fn estimates(
    graph: &Graph,
    store: &Store,
    plan: &[PlannedNode],
) -> Result<Vec<(usize, NodeEstimate)>, StageError> {
    let built: BTreeMap<usize, Digest> = plan
        .iter()
        .filter_map(|p| match p.state {
            PlanState::Fresh { digest, .. } => Some((p.index, digest)),
            _ => None,
        })
        .collect();
    let mut out = Vec::new();
    for p in plan {
        let node = &graph.nodes[p.index];
        if matches!(p.state, PlanState::Fresh { .. }) || !node.prepared.spends() {
            continue;
        }
        let mut inputs = BTreeMap::new();
        let mut missing = None;
        for (name, producers) in &node.inputs {
            let mut list = Vec::new();
            for j in producers {
                let producer = &graph.nodes[*j].id;
                match built.get(j) {
                    Some(d) => list.push(artifact(store, producer, *d)?),
                    None => {
                        missing.get_or_insert(format!(
                            "its input `{name}` (node `{producer}`) is not built yet: \
                             `reasongen run RECIPE --target {producer}` builds it"
                        ));
                    }
                }
            }
            inputs.insert(name.clone(), list);
        }
        if let Some(why) = missing {
            out.push((p.index, NodeEstimate::Unknown(why)));
            continue;
        }
        let previous = match store.get_ref(&graph.recipe.name, &node.id)? {
            Some(r) if store.object_dir(&r.digest).exists() => {
                Some(artifact(store, &node.id, r.digest)?)
            }
            _ => None,
        };
        let ctx = EstimateContext {
            recipe_dir: graph.recipe.dir.clone(),
            inputs,
            previous,
            store: store.clone(),
        };
        let estimate = match node.prepared.estimate(&ctx) {
            Ok(Some(e)) => NodeEstimate::Known(e),
            Ok(None) => continue,
            Err(e) => NodeEstimate::Unknown(e.to_string()),
        };
        out.push((p.index, estimate));
    }
    Ok(out)
}

fn artifact(store: &Store, node: &str, digest: Digest) -> Result<InputArtifact, StageError> {
    Ok(InputArtifact {
        node: node.to_string(),
        digest,
        dir: store.object_dir(&digest),
        content: store.manifest(&digest)?.content,
    })
}
