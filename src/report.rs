//! `reasongen report RUN_OR_NODE`: the page `eval.report` writes, for what is already in
//! the store. A run (its id, a unique prefix, or `latest`) gives every artifact its
//! nodes made or found fresh; a node (`NODE` or `RECIPE/NODE`, its latest artifact)
//! gives the artifact and everything in its lineage, plus the dataset releases its run
//! made of tables in that lineage. Both are rendered by `eval::report`, as the stage
//! renders its inputs.

use crate::inspect::find_ref;
use anyhow::{Context, Result, bail};
use eval::report::{ReportConfig, gather, render};
use pipeline::events::{Event, read_events};
use pipeline::{ArtifactKind, Digest, InputArtifact, Store};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct ReportArgs {
    /// A run id (or a unique prefix of one), `latest`, or a node (`NODE` or
    /// `RECIPE/NODE`).
    what: String,
    /// Where to write the page.
    #[arg(long, default_value = "report.html")]
    out: PathBuf,
    /// Prompts shown per task for each evaluation.
    #[arg(long, default_value_t = ReportConfig::default().per_task)]
    per_task: usize,
    /// Prompts shown among the worst, and among the best, of each evaluation.
    #[arg(long, default_value_t = ReportConfig::default().extremes)]
    extremes: usize,
}

pub fn report(store: &Path, args: ReportArgs) -> Result<ExitCode> {
    let store = Store::open(store)?;
    let (title, digests) = match crate::inspect::find_run(&store, &args.what)? {
        Some(run) => (
            format!("reasongen report: run {run}"),
            run_nodes(&store, &run)?,
        ),
        None => {
            let (recipe, node, r) = find_ref(&store, &args.what)?;
            let mut digests = lineage(&store, r.digest)?;
            digests.extend(releases_of(&store, &r.run_id, &digests)?);
            (
                format!("reasongen report: node {node} of recipe {recipe}"),
                digests,
            )
        }
    };
    let artifacts = digests
        .iter()
        .map(|d| artifact(&store, *d))
        .collect::<Result<Vec<_>>>()?;
    let config = ReportConfig {
        title: Some(title.clone()),
        per_task: args.per_task,
        extremes: args.extremes,
    };
    let report = gather(&artifacts, &config, title).map_err(|e| anyhow::anyhow!("{e}"))?;
    let html = render(&report);
    std::fs::write(&args.out, &html).with_context(|| args.out.display().to_string())?;
    println!(
        "{} (evaluations {}, training runs {}, dataset cards {}, {} KiB)",
        args.out.display(),
        report.evals.len(),
        report.trainings.len(),
        report.datasets.len(),
        html.len() / 1024
    );
    Ok(ExitCode::SUCCESS)
}

fn artifact(store: &Store, digest: Digest) -> Result<InputArtifact> {
    let m = store.manifest(&digest)?;
    Ok(InputArtifact {
        node: m.lineage.node,
        digest,
        dir: store.object_dir(&digest),
        content: m.content,
    })
}

/// The artifacts of a run's nodes (made or fresh), in the recipe's order.
fn run_nodes(store: &Store, run: &str) -> Result<Vec<Digest>> {
    let events = read_events(&store.run_dir(run).join("events.jsonl"))?;
    let mut order: Vec<String> = Vec::new();
    let mut made: Vec<(String, Digest)> = Vec::new();
    for rec in events {
        match rec.event {
            Event::RunStarted { nodes, .. } => order = nodes,
            Event::NodeCached { node, digest, .. } | Event::NodeFinished { node, digest, .. } => {
                made.push((node, digest))
            }
            _ => {}
        }
    }
    let mut out: Vec<Digest> = order
        .iter()
        .filter_map(|n| made.iter().find(|(m, _)| m == n).map(|(_, d)| *d))
        .collect();
    if out.is_empty() {
        bail!("run {run} made no artifacts yet");
    }
    out.dedup();
    Ok(out)
}

/// `digest` and every artifact in its lineage, each once, inputs after what used them.
fn lineage(store: &Store, digest: Digest) -> Result<Vec<Digest>> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut stack = vec![digest];
    while let Some(d) = stack.pop() {
        if !seen.insert(d) || !store.has_object(&d) {
            continue;
        }
        out.push(d);
        let m = store.manifest(&d)?;
        for inputs in m.lineage.key.inputs.values().rev() {
            stack.extend(inputs.iter().rev());
        }
    }
    Ok(out)
}

/// The releases run `run` made of tables among `tables`.
fn releases_of(store: &Store, run: &str, tables: &[Digest]) -> Result<Vec<Digest>> {
    let mut out = Vec::new();
    for d in run_nodes(store, run)? {
        let m = store.manifest(&d)?;
        let of_lineage = m
            .lineage
            .key
            .inputs
            .values()
            .flatten()
            .any(|i| tables.contains(i));
        if m.content.kind == ArtifactKind::Release && of_lineage && !tables.contains(&d) {
            out.push(d);
        }
    }
    Ok(out)
}
