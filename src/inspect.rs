//! `reasongen status` and `reasongen show`: read the event log and the store.

use anyhow::{Context, Result, bail};
use pipeline::console::fmt_ms;
use pipeline::events::{Event, read_events};
use pipeline::store::Ref;
use pipeline::{Digest, Store};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct StatusArgs {
    /// A run id or a unique prefix of one (default: the latest run).
    run: Option<String>,
}

#[derive(clap::Args)]
pub struct ShowArgs {
    /// A node (`NODE` or `RECIPE/NODE`), or an artifact digest or unique prefix.
    what: String,
    /// How many levels of inputs to follow.
    #[arg(long, default_value_t = 16)]
    depth: usize,
}

#[derive(Default)]
struct NodeRow {
    state: String,
    duration_ms: Option<u64>,
    digest: Option<Digest>,
    rows: Option<u64>,
    counters: BTreeMap<String, u64>,
    note: String,
}

/// The counter in which LLM stages report what they spent, in micro-dollars.
const SPEND_COUNTER: &str = "llm_cost_micro_usd";

/// The run `what` names (`latest`, an id or a unique prefix), if it names one.
pub(crate) fn find_run(store: &Store, what: &str) -> Result<Option<String>> {
    let runs_dir = store.root().join("runs");
    let mut runs: Vec<String> = std::fs::read_dir(&runs_dir)
        .with_context(|| runs_dir.display().to_string())?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    runs.sort();
    if what == "latest" {
        return runs.pop().context("no runs in this store yet").map(Some);
    }
    let matches: Vec<String> = runs.into_iter().filter(|r| r.starts_with(what)).collect();
    match matches.len() {
        0 => Ok(None),
        1 => Ok(matches.into_iter().next()),
        n => bail!("`{what}` matches {n} runs; give more of the id"),
    }
}

pub fn status(store: &Path, args: StatusArgs) -> Result<ExitCode> {
    let store = Store::open(store)?;
    let run = match &args.run {
        None => find_run(&store, "latest")?,
        Some(prefix) => find_run(&store, prefix)?,
    }
    .with_context(|| format!("no run starts with `{}`", args.run.as_deref().unwrap_or("")))?;
    let events = read_events(&store.run_dir(&run).join("events.jsonl"))?;
    let mut order: Vec<String> = Vec::new();
    let mut nodes: BTreeMap<String, NodeRow> = BTreeMap::new();
    let mut header = String::new();
    let mut footer = None;
    let mut cap = None;
    let first_ts = events.first().map_or(0, |e| e.ts_ms);
    for rec in &events {
        match &rec.event {
            Event::RunStarted {
                recipe,
                recipe_path,
                nodes: ids,
                budget_usd,
                ..
            } => {
                cap = *budget_usd;
                header = format!("run {run}: recipe `{recipe}` ({recipe_path})");
                order = ids.clone();
                for id in ids {
                    nodes.entry(id.clone()).or_default().state = "not reached".into();
                }
            }
            Event::NodeStarted { node, .. } => {
                nodes.entry(node.clone()).or_default().state = "interrupted".into()
            }
            Event::NodeCached { node, digest, .. } => {
                let n = nodes.entry(node.clone()).or_default();
                n.state = "fresh".into();
                n.digest = Some(*digest);
            }
            Event::NodeFinished {
                node,
                digest,
                duration_ms,
                rows,
                counters,
                unchanged,
                ..
            } => {
                let n = nodes.entry(node.clone()).or_default();
                n.state = "ran".into();
                n.digest = Some(*digest);
                n.duration_ms = Some(*duration_ms);
                n.rows = *rows;
                n.counters = counters.clone();
                if *unchanged {
                    n.note = "same content as before".into();
                }
            }
            // Spending nodes report their counters as they go: a failed one keeps them.
            Event::NodeCounters { node, counters } => {
                nodes.entry(node.clone()).or_default().counters = counters.clone();
            }
            Event::NodeFailed {
                node,
                error,
                duration_ms,
            } => {
                let n = nodes.entry(node.clone()).or_default();
                n.state = "FAILED".into();
                n.duration_ms = Some(*duration_ms);
                n.note = error.lines().next().unwrap_or_default().to_string();
            }
            Event::NodeSkipped { node, reason } => {
                let n = nodes.entry(node.clone()).or_default();
                n.state = "skipped".into();
                n.note = reason.clone();
            }
            Event::RunFinished {
                status,
                duration_ms,
                ..
            } => footer = Some(format!("{status:?} in {}", fmt_ms(*duration_ms)).to_lowercase()),
            _ => {}
        }
    }
    println!("{header}");
    let width = order.iter().map(String::len).max().unwrap_or(4).max(4);
    for id in &order {
        let n = &nodes[id];
        let counters: Vec<String> = n.counters.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!(
            "  {id:<width$}  {:<11} {:>7}  {:<12}  {:>9}  {} {}",
            n.state,
            n.duration_ms.map(fmt_ms).unwrap_or_default(),
            n.digest.map(|d| d.short()).unwrap_or_default(),
            n.rows.map(|r| format!("{r} rows")).unwrap_or_default(),
            counters.join(" "),
            n.note
        );
    }
    let spent: u64 = nodes
        .values()
        .filter_map(|n| n.counters.get(SPEND_COUNTER))
        .sum();
    if spent > 0 || cap.is_some() {
        let cap = cap
            .map(|c| format!(" of the run's --budget-usd ${c:.4}"))
            .unwrap_or_default();
        println!("LLM spend: ${:.4}{cap}", spent as f64 / 1e6);
    }
    match footer {
        Some(f) => println!("{f}"),
        None => println!(
            "no end event: the run is still going or was killed ({} since its start)",
            fmt_ms(events.last().map_or(0, |e| e.ts_ms - first_ts))
        ),
    }
    Ok(ExitCode::SUCCESS)
}

pub fn show(store: &Path, args: ShowArgs) -> Result<ExitCode> {
    let store = Store::open(store)?;
    let digest = resolve(&store, &args.what)?;
    let m = store.manifest(&digest)?;
    let c = &m.content;
    println!("artifact {digest}");
    println!("  folder    {}", store.object_dir(&digest).display());
    println!("  kind      {}", c.kind);
    if let Some(s) = &c.schema {
        println!("  schema    {s}");
    }
    if let Some(r) = c.rows {
        println!("  rows      {r}");
    }
    println!("  files     {} ({} bytes)", c.files.len(), c.total_bytes());
    for f in c.files.iter().take(10) {
        println!("    {:<40} {:>12}  {}", f.path, f.size, f.sha256.short());
    }
    if c.files.len() > 10 {
        println!("    … {} more", c.files.len() - 10);
    }
    if !c.meta.is_null() {
        println!("  meta      {}", c.meta);
    }
    let l = &m.lineage;
    println!(
        "made by     {} v{} as node `{}` of recipe `{}`",
        l.key.stage, l.key.stage_version, l.node, l.recipe
    );
    println!("  run key   {}", l.run_key);
    println!("  run       {} ({})", l.run_id, fmt_ms(l.duration_ms));
    println!("  config    {}", l.key.config);
    if !l.counters.is_empty() {
        println!("  counters  {:?}", l.counters);
    }
    println!("lineage");
    let mut seen = BTreeSet::new();
    print_lineage(&store, &digest, 1, args.depth, &mut seen);
    Ok(ExitCode::SUCCESS)
}

fn print_lineage(
    store: &Store,
    digest: &Digest,
    level: usize,
    max: usize,
    seen: &mut BTreeSet<Digest>,
) {
    let indent = "  ".repeat(level);
    let Ok(m) = store.manifest(digest) else {
        println!("{indent}{} (not in the store)", digest.short());
        return;
    };
    let l = &m.lineage;
    println!(
        "{indent}{} {} ← {} v{} (node `{}`)",
        digest.short(),
        m.content.kind,
        l.key.stage,
        l.key.stage_version,
        l.node
    );
    for (label, d) in &l.key.externals {
        println!("{indent}  ← {label} {}", d.short());
    }
    if !seen.insert(*digest) || level >= max {
        return;
    }
    for (name, ds) in &l.key.inputs {
        for d in ds {
            println!("{indent}  input `{name}`:");
            print_lineage(store, d, level + 2, max, seen);
        }
    }
}

/// A digest (or prefix), a `RECIPE/NODE`, or a node name found in exactly one recipe.
pub(crate) fn resolve(store: &Store, what: &str) -> Result<Digest> {
    if let Ok(d) = store.resolve_digest(what) {
        return Ok(d);
    }
    Ok(find_ref(store, what)?.2.digest)
}

/// The ref of `NODE` (in exactly one recipe) or `RECIPE/NODE`: (recipe, node, ref).
pub fn find_ref(store: &Store, what: &str) -> Result<(String, String, Ref)> {
    let refs = store.refs()?;
    let mut hits: Vec<_> = refs
        .into_iter()
        .filter(|(recipe, node, _)| node == what || format!("{recipe}/{node}") == what)
        .collect();
    match hits.len() {
        1 => Ok(hits.remove(0)),
        0 => bail!("`{what}` is neither an artifact digest nor a node with a ref in this store"),
        _ => bail!(
            "node `{what}` is in several recipes: {}; name one as RECIPE/NODE",
            hits.iter()
                .map(|(r, n, _)| format!("{r}/{n}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}
