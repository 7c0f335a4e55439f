//! `reasongen run` and `reasongen plan`.

use anyhow::{Context, Result};
use pipeline::Store;
use pipeline::console::{Console, ConsoleMode, fmt_ms};
use pipeline::estimate::{NodeEstimate, Range};
use pipeline::events::{Event, EventSink, RunStatus};
use pipeline::executor::{Capacity, Outcome, RunOptions};
use pipeline::plan::{PlanState, PlannedNode};
use pipeline::recipe::{Graph, Override, Recipe, apply_all, validate};
use pipeline::store::StoreLock;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

#[derive(clap::Args)]
pub struct RecipeArgs {
    /// The recipe file.
    recipe: PathBuf,
    /// Override a config value: NODE.KEY=VALUE (VALUE is TOML, or a plain string).
    #[arg(long = "set", value_name = "NODE.KEY=VALUE")]
    sets: Vec<String>,
    /// Only this node and what it needs (repeatable).
    #[arg(long = "target", value_name = "NODE")]
    targets: Vec<String>,
    /// Re-run this node even if fresh (repeatable).
    #[arg(long = "force", value_name = "NODE")]
    force: Vec<String>,
}

#[derive(clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    recipe: RecipeArgs,
    /// CPU threads the run may use at once (default: all cores).
    #[arg(long)]
    jobs: Option<u32>,
    /// GPUs the run may use.
    #[arg(long, default_value_t = 0)]
    gpus: u32,
    /// Concurrent LLM requests the run may have in flight across nodes.
    #[arg(long, default_value_t = 1024)]
    llm_slots: u32,
    /// Cap what the run's LLM requests (every node's, and the GRPO judge's) may cost
    /// together, in USD; each node's own `budget_usd` applies as well.
    #[arg(long, value_name = "USD")]
    budget_usd: Option<f64>,
    /// Fail at once instead of waiting when `gc` holds the store.
    #[arg(long)]
    no_wait: bool,
    #[command(flatten)]
    executor: crate::exec::ExecutorArgs,
}

#[derive(clap::Args)]
pub struct PlanArgs {
    #[command(flatten)]
    recipe: RecipeArgs,
    /// Print the plan as JSON.
    #[arg(long)]
    json: bool,
}

struct Loaded {
    graph: Graph,
    targets: Vec<usize>,
    force: BTreeSet<usize>,
}

fn load(args: &RecipeArgs) -> Result<Loaded> {
    let mut recipe = Recipe::load(&args.recipe)?;
    let overrides = args
        .sets
        .iter()
        .map(|s| Override::parse(s))
        .collect::<Result<Vec<_>, _>>()
        .map_err(anyhow::Error::msg)?;
    apply_all(&mut recipe, &overrides)?;
    let graph = validate(recipe, &crate::registry())?;
    let index = |names: &[String], flag: &str| -> Result<Vec<usize>> {
        names
            .iter()
            .map(|n| {
                graph.index(n).with_context(|| {
                    format!(
                        "{flag} {n}: no node `{n}` in {}",
                        graph.recipe.path.display()
                    )
                })
            })
            .collect()
    };
    let targets = index(&args.targets, "--target")?;
    let force = index(&args.force, "--force")?.into_iter().collect();
    Ok(Loaded {
        graph,
        targets,
        force,
    })
}

fn selection(graph: &Graph, targets: &[usize]) -> BTreeSet<usize> {
    if targets.is_empty() {
        (0..graph.nodes.len()).collect()
    } else {
        graph.closure(targets)
    }
}

pub fn plan(store: &Path, args: PlanArgs) -> Result<ExitCode> {
    let loaded = load(&args.recipe)?;
    let store = Store::open(store)?;
    let plan = pipeline::plan::plan(
        &loaded.graph,
        &store,
        &selection(&loaded.graph, &loaded.targets),
        &loaded.force,
    )?;
    let estimates: BTreeMap<usize, NodeEstimate> =
        pipeline::estimate::estimates(&loaded.graph, &store, &plan)
            .map_err(|e| anyhow::anyhow!("estimating spend: {e}"))?
            .into_iter()
            .collect();
    if args.json {
        let rows: Vec<_> = plan
            .iter()
            .map(|p| {
                let (state, digest) = match &p.state {
                    PlanState::Fresh { digest, .. } => ("fresh", Some(digest.to_hex())),
                    PlanState::Stale => ("stale", None),
                    PlanState::Pending => ("pending", None),
                    PlanState::Error(_) => ("error", None),
                };
                let estimate = match estimates.get(&p.index) {
                    None => serde_json::Value::Null,
                    Some(NodeEstimate::Known(e)) => serde_json::json!(e),
                    Some(NodeEstimate::Unknown(why)) => serde_json::json!({"unknown": why}),
                };
                serde_json::json!({"node": p.id, "stage": p.stage, "state": state, "digest": digest, "reasons": p.reasons, "estimate": estimate})
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        println!(
            "plan of {} (recipe `{}`, store {})",
            loaded.graph.recipe.path.display(),
            loaded.graph.recipe.name,
            store.root().display()
        );
        print_plan(&plan);
        print_spend(&loaded.graph, &estimates);
    }
    let errors = plan
        .iter()
        .filter(|p| matches!(p.state, PlanState::Error(_)))
        .count();
    Ok(if errors > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// What the nodes that spend would send and cost, and the total by model.
fn print_spend(graph: &Graph, estimates: &BTreeMap<usize, NodeEstimate>) {
    if estimates.is_empty() {
        return;
    }
    println!("spend (expected, and the range over which answer lengths vary):");
    let width = estimates
        .keys()
        .map(|&i| graph.nodes[i].id.len())
        .max()
        .unwrap_or(4);
    let mut by_model: BTreeMap<&str, Range> = BTreeMap::new();
    let mut unpriced = Vec::new();
    for (&i, estimate) in estimates {
        let id = &graph.nodes[i].id;
        let e = match estimate {
            NodeEstimate::Unknown(why) => {
                println!("  {id:<width$}  unknown: {why}");
                continue;
            }
            NodeEstimate::Known(e) => e,
        };
        let cost = match &e.cost_usd {
            Some(c) => {
                let sum = by_model.entry(&e.model).or_default();
                *sum = *sum + *c;
                let worst = e
                    .worst_usd
                    .map(|w| format!("; a budget of ${w:.4} admits all of it at once"))
                    .unwrap_or_default();
                format!("{}{worst}", money(c))
            }
            None => {
                unpriced.push(e.model.clone());
                format!("cost unknown: no price for `{}`", e.model)
            }
        };
        println!(
            "  {id:<width$}  {}: {} rows, {} answered in the memo, {} to send; {:.0} tokens in, {:.0} out ({:.0}-{:.0}); {cost} ({})",
            e.model,
            e.rows,
            e.cached,
            e.to_send,
            e.input_tokens.expected,
            e.output_tokens.expected,
            e.output_tokens.low,
            e.output_tokens.high,
            e.basis
        );
    }
    let total = by_model.values().fold(Range::default(), |a, &b| a + b);
    let models: Vec<String> = by_model
        .iter()
        .map(|(m, r)| format!("{m} ${:.4}", r.expected))
        .collect();
    let unpriced = if unpriced.is_empty() {
        String::new()
    } else {
        format!(", and unpriced requests to {}", unpriced.join(", "))
    };
    println!(
        "  total {}: {}{unpriced}",
        money(&total),
        if models.is_empty() {
            "nothing priced".to_string()
        } else {
            models.join(", ")
        }
    );
}

fn money(r: &Range) -> String {
    format!("${:.4} (${:.4}-${:.4})", r.expected, r.low, r.high)
}

fn print_plan(plan: &[PlannedNode]) {
    let width = plan.iter().map(|p| p.id.len()).max().unwrap_or(4).max(4);
    let kind_width = plan.iter().map(|p| p.stage.len()).max().unwrap_or(5).max(5);
    let mut counts = [0usize; 4];
    for p in plan {
        let (label, slot) = match &p.state {
            PlanState::Fresh { .. } => ("fresh", 0),
            PlanState::Stale => ("stale", 1),
            PlanState::Pending => ("pending", 2),
            PlanState::Error(_) => ("error", 3),
        };
        counts[slot] += 1;
        let detail = match &p.state {
            PlanState::Fresh { digest, .. } => digest.short(),
            _ => p.reasons.first().cloned().unwrap_or_default(),
        };
        println!(
            "  {label:<7}  {:<width$}  {:<kind_width$}  {detail}",
            p.id, p.stage
        );
        if !matches!(p.state, PlanState::Fresh { .. }) {
            for r in p.reasons.iter().skip(1) {
                println!("  {:<7}  {:<width$}  {:<kind_width$}  {r}", "", "", "");
            }
        }
    }
    println!(
        "{} fresh, {} stale, {} pending (run only if an input's content changes), {} errors",
        counts[0], counts[1], counts[2], counts[3]
    );
}

/// Threads a run's remote jobs may hold at once unless `--jobs` says otherwise.
const REMOTE_THREADS: u32 = 4096;

pub fn run(store_dir: &Path, quiet: bool, args: RunArgs) -> Result<ExitCode> {
    let loaded = load(&args.recipe)?;
    if let Some(usd) = args.budget_usd
        && !(usd.is_finite() && usd > 0.0)
    {
        anyhow::bail!("--budget-usd {usd}: give a positive amount of USD");
    }
    args.executor.check(args.budget_usd)?;
    let store = Store::open(store_dir)?;
    let mode = if quiet {
        ConsoleMode::Quiet
    } else {
        ConsoleMode::detect()
    };
    let console = Console::new(mode);
    let _lock = StoreLock::shared(&store, !args.no_wait, |why| {
        console.line(&format!("waiting: {why}"));
    })?;
    let run_id = pipeline::executor::new_run_id();
    let events_path = store.run_dir(&run_id).join("events.jsonl");
    let events = EventSink::to_file(&events_path, vec![console.listener()])
        .with_context(|| format!("opening {}", events_path.display()))?;

    let graph = Arc::new(loaded.graph);
    let selected = selection(&graph, &loaded.targets);
    let planned = pipeline::plan::plan(&graph, &store, &selected, &loaded.force)?;
    for p in &planned {
        events.emit(Event::NodePlanned {
            node: p.id.clone(),
            fresh: matches!(p.state, PlanState::Fresh { .. }),
            reasons: p.reasons.clone(),
        });
        if !quiet && matches!(p.state, PlanState::Stale | PlanState::Error(_)) {
            let own: Vec<&str> = p
                .reasons
                .iter()
                .filter(|r| !r.ends_with("will be rebuilt"))
                .map(String::as_str)
                .collect();
            console.line(&format!("{}: stale: {}", p.id, own.join("; ")));
        }
    }

    let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    // Under a batch system the cluster decides where jobs fit; `--jobs` still caps
    // the threads the run's jobs hold at once.
    let default_threads = if args.executor.is_local() {
        cores
    } else {
        REMOTE_THREADS
    };
    let capacity = Capacity {
        threads: args.jobs.unwrap_or(default_threads).max(1),
        gpus: args.gpus,
        llm_slots: args.llm_slots,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores.max(2) as usize)
        .enable_all()
        .build()?;
    let cancel = CancellationToken::new();
    let runner = {
        let _in_runtime = runtime.enter();
        args.executor.runner(store_dir)?
    };
    let summary = runtime.block_on(async {
        let c = cancel.clone();
        let console2 = console.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                console2
                    .line("interrupted: cancelling running nodes (Ctrl-C again to exit at once)");
                c.cancel();
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(130);
                }
            }
        });
        pipeline::executor::run_with(
            runner,
            graph.clone(),
            store.clone(),
            run_id,
            RunOptions {
                capacity,
                targets: loaded.targets.clone(),
                force: loaded.force.clone(),
                budget_usd: args.budget_usd,
            },
            events,
            console.clone(),
            cancel,
        )
        .await
    })?;
    runtime.shutdown_background();

    let (mut ran, mut cached, mut failed, mut skipped) = (0, 0, 0, 0);
    for (_, o) in &summary.outcomes {
        match o {
            Outcome::Ran { .. } => ran += 1,
            Outcome::Cached { .. } => cached += 1,
            Outcome::Failed { .. } => failed += 1,
            Outcome::Skipped { .. } | Outcome::Cancelled => skipped += 1,
        }
    }
    let line = format!(
        "{}: {ran} ran, {cached} fresh, {failed} failed, {skipped} skipped in {} (run {}, events {})",
        match summary.status {
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "FAILED",
            RunStatus::Cancelled => "cancelled",
        },
        fmt_ms(summary.duration_ms),
        summary.run_id,
        events_path.display()
    );
    if !quiet || summary.status != RunStatus::Succeeded {
        console.line(&line);
    }
    for (node, error) in summary.failed() {
        console.line(&format!("failed node `{node}`: {error}"));
    }
    Ok(match summary.status {
        RunStatus::Succeeded => ExitCode::SUCCESS,
        RunStatus::Failed => ExitCode::FAILURE,
        RunStatus::Cancelled => ExitCode::from(130),
    })
}
