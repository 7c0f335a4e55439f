//! Checking a recipe against the registry: kinds, typed configs, input bindings,
//! artifact types and cycles. The result is a [`Graph`] in topological order.

use super::diagnostics::did_you_mean;
use super::{Recipe, RecipeError};
use crate::registry::{PreparedNode, Registry};
use crate::stage::{Arity, Bindings};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// A checked recipe: nodes in topological order (inputs before the nodes that read them).
pub struct Graph {
    pub recipe: Recipe,
    pub nodes: Vec<GraphNode>,
}

pub struct GraphNode {
    pub id: String,
    pub prepared: Arc<dyn PreparedNode>,
    /// Input name → indexes into [`Graph::nodes`].
    pub inputs: BTreeMap<String, Vec<usize>>,
    /// The node's seed (its own, or the recipe's).
    pub seed: u64,
}

impl Graph {
    pub fn index(&self, id: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.id == id)
    }

    /// The nodes `targets` need, themselves included, as a sorted set of indexes.
    pub fn closure(&self, targets: &[usize]) -> BTreeSet<usize> {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<usize> = targets.to_vec();
        while let Some(i) = stack.pop() {
            if seen.insert(i) {
                stack.extend(self.nodes[i].inputs.values().flatten().copied());
            }
        }
        seen
    }

    /// Every node downstream of `i` (not `i` itself).
    pub fn downstream(&self, i: usize) -> BTreeSet<usize> {
        let mut out = BTreeSet::new();
        // Topological order: a node's dependents come after it.
        for j in i + 1..self.nodes.len() {
            let reads = self.nodes[j]
                .inputs
                .values()
                .flatten()
                .any(|&k| k == i || out.contains(&k));
            if reads {
                out.insert(j);
            }
        }
        out
    }
}

/// Check `recipe` against `registry`. Reports every problem found, not only the first.
pub fn validate(recipe: Recipe, registry: &Registry) -> Result<Graph, RecipeError> {
    let mut problems = Vec::new();
    let ids: BTreeMap<&str, usize> = recipe
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.id.as_str(), i))
        .collect();

    // 1. Kinds and configs.
    let mut prepared: Vec<Option<Arc<dyn PreparedNode>>> = Vec::new();
    for node in &recipe.nodes {
        let here = format!("nodes.{}", node.id);
        let Some(stage) = registry.get(&node.kind) else {
            let hint = match did_you_mean(&node.kind, registry.kinds()) {
                Some(s) => format!("; did you mean `{s}`?"),
                None => "; `reasongen stages` lists them".to_string(),
            };
            problems.push(recipe.diagnostic_at(
                &format!("{here}.kind"),
                Some(&node.id),
                Some("kind"),
                format!("unknown stage kind `{}`{hint}", node.kind),
            ));
            prepared.push(None);
            continue;
        };
        match stage.prepare(&node.config) {
            Ok(p) => prepared.push(Some(p)),
            Err(e) => {
                let key = if e.path.is_empty() {
                    "config".to_string()
                } else {
                    format!("config.{}", e.path)
                };
                // serde may name an unknown field in its message only, not in its path.
                let at = match unknown_field(&e.message) {
                    Some(field) if e.path.is_empty() => format!("{here}.config.{field}"),
                    Some(field) if !e.path.ends_with(field) => {
                        format!("{here}.config.{}.{field}", e.path)
                    }
                    _ => format!("{here}.{key}"),
                };
                let shown_key = at.trim_start_matches(&format!("{here}.")).to_string();
                problems.push(recipe.diagnostic_at(
                    &at,
                    Some(&node.id),
                    Some(&shown_key),
                    e.message,
                ));
                prepared.push(None);
            }
        }
    }

    // 2. Inputs: declared names, arity, existing targets, artifact types.
    for (i, node) in recipe.nodes.iter().enumerate() {
        let Some(p) = &prepared[i] else { continue };
        let here = format!("nodes.{}", node.id);
        let specs = p.inputs();
        let wildcard = specs.iter().find(|s| s.name == "*");
        let mut report = |key: &str, message: String| {
            problems.push(recipe.diagnostic_at(
                &format!("{here}.{key}"),
                Some(&node.id),
                Some(key),
                message,
            ));
        };
        for spec in specs.iter().filter(|s| s.name != "*") {
            let bound = node.inputs.get(spec.name).map_or(0, Vec::len);
            match (spec.arity, bound) {
                (Arity::One | Arity::Many, 0) => report(
                    &format!("inputs.{}", spec.name),
                    format!(
                        "missing input `{}` ({}; {})",
                        spec.name,
                        spec.describe_kinds(),
                        spec.doc
                    ),
                ),
                (Arity::One | Arity::Optional, n) if n > 1 => report(
                    &format!("inputs.{}", spec.name),
                    format!("input `{}` takes one node, {n} given", spec.name),
                ),
                _ => {}
            }
        }
        for (name, targets) in &node.inputs {
            let key = format!("inputs.{name}");
            let Some(spec) = specs.iter().find(|s| s.name == name).or(wildcard) else {
                let names: Vec<&str> = specs.iter().map(|s| s.name).collect();
                report(
                    &key,
                    format!(
                        "unknown input `{name}`; `{}` takes: {}",
                        node.kind,
                        if names.is_empty() {
                            "no inputs".to_string()
                        } else {
                            names.join(", ")
                        }
                    ),
                );
                continue;
            };
            for target in targets {
                let Some(&j) = ids.get(target.as_str()) else {
                    let hint = did_you_mean(target, ids.keys().copied())
                        .map(|s| format!("; did you mean `{s}`?"))
                        .unwrap_or_default();
                    report(
                        &key,
                        format!("missing input: no node `{target}` in the recipe{hint}"),
                    );
                    continue;
                };
                if let Some(up) = &prepared[j] {
                    let ty = up.output();
                    if !spec.accepts(ty) {
                        report(
                            &key,
                            format!(
                                "input `{name}` takes {} but node `{target}` ({}) writes {ty}",
                                spec.describe_kinds(),
                                recipe.nodes[j].kind
                            ),
                        );
                    }
                }
            }
        }
        let bindings: Bindings = node.inputs.clone();
        if let Err(message) = p.validate(&bindings) {
            problems.push(recipe.diagnostic_at(&here, Some(&node.id), None, message));
        }
    }

    // 3. Cycles.
    let order = match topological_order(&recipe, &ids) {
        Ok(order) => order,
        Err(cycle) => {
            let first = &cycle[0];
            problems.push(recipe.diagnostic_at(
                &format!("nodes.{first}.inputs"),
                Some(first),
                Some("inputs"),
                format!("cycle: {}", cycle.join(" → ")),
            ));
            Vec::new()
        }
    };

    if !problems.is_empty() {
        return Err(RecipeError {
            diagnostics: problems,
        });
    }
    let position: BTreeMap<usize, usize> = order
        .iter()
        .enumerate()
        .map(|(pos, &orig)| (orig, pos))
        .collect();
    let nodes = order
        .iter()
        .map(|&orig| {
            let decl = &recipe.nodes[orig];
            GraphNode {
                id: decl.id.clone(),
                prepared: prepared[orig].clone().expect("checked above"),
                inputs: decl
                    .inputs
                    .iter()
                    .map(|(name, targets)| {
                        let idx = targets.iter().map(|t| position[&ids[t.as_str()]]).collect();
                        (name.clone(), idx)
                    })
                    .collect(),
                seed: decl.seed.unwrap_or(recipe.seed),
            }
        })
        .collect();
    Ok(Graph { recipe, nodes })
}

/// Kahn's algorithm, stable in file order. On a cycle, returns one cycle's node ids
/// with the first repeated at the end.
fn topological_order(
    recipe: &Recipe,
    ids: &BTreeMap<&str, usize>,
) -> Result<Vec<usize>, Vec<String>> {
    let n = recipe.nodes.len();
    let deps: Vec<BTreeSet<usize>> = recipe
        .nodes
        .iter()
        .map(|node| {
            node.inputs
                .values()
                .flatten()
                .filter_map(|t| ids.get(t.as_str()).copied())
                .collect()
        })
        .collect();
    let mut done = vec![false; n];
    let mut order = Vec::with_capacity(n);
    while order.len() < n {
        let next = (0..n).find(|&i| !done[i] && deps[i].iter().all(|&d| done[d]));
        match next {
            Some(i) => {
                done[i] = true;
                order.push(i);
            }
            None => {
                // Walk dependencies among the remaining nodes until one repeats.
                let mut path = vec![(0..n).find(|&i| !done[i]).expect("nodes remain")];
                loop {
                    let last = *path.last().expect("non-empty");
                    let dep = *deps[last]
                        .iter()
                        .find(|&&d| !done[d])
                        .expect("a blocked node has a blocked dependency");
                    if let Some(pos) = path.iter().position(|&p| p == dep) {
                        // `path` follows "reads from" edges; print in data-flow order.
                        let mut cycle: Vec<String> = path[pos..]
                            .iter()
                            .rev()
                            .map(|&i| recipe.nodes[i].id.clone())
                            .collect();
                        cycle.push(cycle[0].clone());
                        return Err(cycle);
                    }
                    path.push(dep);
                }
            }
        }
    }
    Ok(order)
}

/// The field named in serde's "unknown field `x`, expected ..." message.
fn unknown_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split('`').next()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn cycles_are_printed_in_data_flow_order() {
        let src = r#"
[nodes.a]
kind = "k"
inputs = { x = "c" }
[nodes.b]
kind = "k"
inputs = { x = "a" }
[nodes.c]
kind = "k"
inputs = { x = "b" }
[nodes.d]
kind = "k"
"#;
        let recipe = Recipe::parse(Path::new("r.toml"), src.into()).unwrap();
        let ids = recipe
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.id.as_str(), i))
            .collect();
        let cycle = topological_order(&recipe, &ids).unwrap_err();
        assert_eq!(cycle.len(), 4);
        assert_eq!(cycle.first(), cycle.last());
        // Each step is an edge "producer → consumer".
        for w in cycle.windows(2) {
            let consumer = recipe.node(&w[1]).unwrap();
            assert!(consumer.inputs["x"].contains(&w[0]), "{cycle:?}");
        }
    }
}
