//! The scheduler: walks a run's DAG in the controller process. It keys every node whose
//! inputs are done (no resources held), skips fresh ones, queues the rest until the
//! declared resources fit, hands each started node its own GPU ordinals, and passes it
//! to a [`NodeRunner`]. A failing node skips its dependents while unrelated branches go
//! on; cancellation stops starting nodes and waits for the running ones to stop. How a
//! node runs is the runner's business.

use crate::budget::Budget;
use crate::console::Console;
use crate::digest::Digest;
use crate::events::{Event, EventSink, RunStatus};
use crate::executor::devices::DevicePool;
use crate::executor::local::LocalRunner;
use crate::executor::node::{NodeSpec, RunEnv, tick_progress, update_ref};
use crate::executor::{NodeJob, NodeRunner, Outcome, RunOptions, RunSummary};
use crate::key::KeyInputs;
use crate::plan::key_inputs;
use crate::recipe::Graph;
use crate::stage::{Resources, StageError};
use crate::store::{Store, TmpLease};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

enum Phase {
    Keyed { key: KeyInputs, hit: Option<Digest> },
    Done(Result<Outcome, StageError>),
}

/// Run `graph` against `store`, every node in this process.
pub async fn run(
    graph: Arc<Graph>,
    store: Store,
    run_id: String,
    options: RunOptions,
    events: EventSink,
    console: Arc<Console>,
    cancel: CancellationToken,
) -> Result<RunSummary, crate::store::StoreError> {
    run_with(
        Arc::new(LocalRunner),
        graph,
        store,
        run_id,
        options,
        events,
        console,
        cancel,
    )
    .await
}

/// Run `graph` against `store`, each node through `runner`.
#[allow(clippy::too_many_arguments)]
pub async fn run_with(
    runner: Arc<dyn NodeRunner>,
    graph: Arc<Graph>,
    store: Store,
    run_id: String,
    options: RunOptions,
    events: EventSink,
    console: Arc<Console>,
    cancel: CancellationToken,
) -> Result<RunSummary, crate::store::StoreError> {
    let started = Instant::now();
    let capacity = options.capacity;
    let lease = Arc::new(TmpLease::new(&store, &run_id)?);
    crate::store::clean_abandoned_tmp(&store, Duration::from_secs(60))?;

    let selection: BTreeSet<usize> = if options.targets.is_empty() {
        (0..graph.nodes.len()).collect()
    } else {
        graph.closure(&options.targets)
    };
    events.emit(Event::RunStarted {
        run_id: run_id.clone(),
        recipe: graph.recipe.name.clone(),
        recipe_path: graph.recipe.path.display().to_string(),
        nodes: selection
            .iter()
            .map(|&i| graph.nodes[i].id.clone())
            .collect(),
        budget_usd: options.budget_usd,
    });
    let env = Arc::new(RunEnv {
        store,
        events: events.clone(),
        run_id: run_id.clone(),
        lease,
        cancel: cancel.clone(),
        active: Mutex::new(BTreeMap::new()),
        run_budget: options
            .budget_usd
            .map(|usd| Budget::new("the run's --budget-usd", usd)),
    });

    let console2 = console.clone();
    let ticker = tokio::spawn(tick_progress(env.clone(), move |active| {
        console2.tick(active)
    }));
    let mut outcomes: BTreeMap<usize, Outcome> = BTreeMap::new();
    let mut digests: BTreeMap<usize, Digest> = BTreeMap::new();
    let mut started_nodes: BTreeSet<usize> = BTreeSet::new();
    let mut queue: VecDeque<(usize, KeyInputs, Resources)> = VecDeque::new();
    let mut used = Resources {
        threads: 0,
        gpus: 0,
        llm_slots: 0,
    };
    let mut devices = DevicePool::new(capacity.gpus);
    let mut holding: BTreeMap<usize, (Resources, Vec<u32>)> = BTreeMap::new();
    let mut tasks: JoinSet<(usize, Phase)> = JoinSet::new();
    let mut task_nodes: BTreeMap<tokio::task::Id, usize> = BTreeMap::new();

    // Nodes that cannot run with what the run was given fail up front.
    for &i in &selection {
        let want = graph.nodes[i].prepared.resources();
        if want.gpus > capacity.gpus {
            let error = format!(
                "needs {} GPU(s); this run has {} (--gpus)",
                want.gpus, capacity.gpus
            );
            fail_node(&graph, &events, i, error, &selection, &mut outcomes);
        }
    }

    loop {
        if !cancel.is_cancelled() {
            // Key every node whose inputs are all done.
            for &i in &selection {
                if started_nodes.contains(&i) || outcomes.contains_key(&i) {
                    continue;
                }
                let inputs = &graph.nodes[i].inputs;
                if inputs.values().flatten().all(|j| digests.contains_key(j)) {
                    started_nodes.insert(i);
                    let input_digests = inputs
                        .iter()
                        .map(|(n, js)| (n.clone(), js.iter().map(|j| digests[j]).collect()))
                        .collect();
                    let (env, graph) = (env.clone(), graph.clone());
                    let force = options.force.contains(&i);
                    let h = tasks.spawn(async move {
                        let phase = keying(&env, &graph, i, input_digests, force).await;
                        (i, phase)
                    });
                    task_nodes.insert(h.id(), i);
                }
            }
            // Start queued nodes as resources allow (in order, letting smaller ones
            // through when the head does not fit).
            let mut k = 0;
            while k < queue.len() {
                let want = queue[k].2;
                if capacity.fits(&used, &want) {
                    let (i, key, want) = queue.remove(k).expect("index in range");
                    used.threads += want.threads;
                    used.gpus += want.gpus;
                    used.llm_slots += want.llm_slots;
                    let ordinals = devices.take(want.gpus);
                    holding.insert(i, (want, ordinals.clone()));
                    let node = &graph.nodes[i];
                    let job = NodeJob {
                        spec: NodeSpec {
                            recipe: graph.recipe.name.clone(),
                            recipe_dir: graph.recipe.dir.clone(),
                            node: node.id.clone(),
                            key,
                            producers: node
                                .inputs
                                .iter()
                                .map(|(n, js)| {
                                    (
                                        n.clone(),
                                        js.iter().map(|j| graph.nodes[*j].id.clone()).collect(),
                                    )
                                })
                                .collect(),
                            seed: node.seed,
                            threads: want.threads,
                            force: options.force.contains(&i),
                        },
                        prepared: node.prepared.clone(),
                        granted: want,
                        devices: ordinals,
                    };
                    let run = runner.run_node(env.clone(), job);
                    let h = tasks.spawn(async move { (i, Phase::Done(run.await)) });
                    task_nodes.insert(h.id(), i);
                } else {
                    k += 1;
                }
            }
        }
        if tasks.is_empty() {
            break;
        }
        let joined = tokio::select! {
            j = tasks.join_next_with_id() => j,
            _ = cancel.cancelled(), if !cancel.is_cancelled() => continue,
        };
        let Some(joined) = joined else { break };
        let (i, phase) = match joined {
            Ok((id, (i, phase))) => {
                task_nodes.remove(&id);
                (i, phase)
            }
            Err(e) => {
                let i = task_nodes.remove(&e.id()).expect("every task is recorded");
                let error = if e.is_panic() {
                    format!("panicked: {}", panic_message(e.into_panic()))
                } else {
                    "task aborted".to_string()
                };
                (i, Phase::Done(Err(StageError::msg(error))))
            }
        };
        if let Some((r, ordinals)) = holding.remove(&i) {
            used.threads -= r.threads;
            used.gpus -= r.gpus;
            used.llm_slots -= r.llm_slots;
            devices.give_back(ordinals);
        }
        match phase {
            Phase::Keyed {
                hit: Some(digest), ..
            } => {
                digests.insert(i, digest);
                outcomes.insert(i, Outcome::Cached { digest });
            }
            Phase::Keyed { key, hit: None } => {
                let want = capacity.clamp(graph.nodes[i].prepared.resources());
                queue.push_back((i, key, want));
            }
            Phase::Done(Ok(outcome)) => {
                if let Outcome::Ran { digest, .. } | Outcome::Cached { digest } = &outcome {
                    digests.insert(i, *digest);
                }
                outcomes.insert(i, outcome);
            }
            Phase::Done(Err(e)) if e.is_cancelled() || cancel.is_cancelled() => {
                outcomes.insert(i, Outcome::Cancelled);
            }
            Phase::Done(Err(e)) => {
                let error = events.redact(&e.to_string());
                fail_node(&graph, &events, i, error, &selection, &mut outcomes);
            }
        }
    }
    ticker.abort();

    for &i in &selection {
        outcomes.entry(i).or_insert_with(|| {
            if cancel.is_cancelled() {
                Outcome::Cancelled
            } else {
                Outcome::Skipped {
                    reason: "not reached".into(),
                }
            }
        });
    }
    let count = |f: fn(&Outcome) -> bool| outcomes.values().filter(|o| f(o)).count();
    let failed = count(|o| matches!(o, Outcome::Failed { .. }));
    let status = if cancel.is_cancelled() {
        RunStatus::Cancelled
    } else if failed > 0 {
        RunStatus::Failed
    } else {
        RunStatus::Succeeded
    };
    let duration_ms = started.elapsed().as_millis() as u64;
    events.emit(Event::RunFinished {
        status,
        duration_ms,
        ran: count(|o| matches!(o, Outcome::Ran { .. })),
        cached: count(|o| matches!(o, Outcome::Cached { .. })),
        failed,
        skipped: count(|o| matches!(o, Outcome::Skipped { .. })),
    });
    Ok(RunSummary {
        run_id,
        status,
        duration_ms,
        outcomes: outcomes
            .into_iter()
            .map(|(i, o)| (graph.nodes[i].id.clone(), o))
            .collect(),
    })
}

/// Record a failure and skip everything downstream of it.
fn fail_node(
    graph: &Graph,
    events: &EventSink,
    i: usize,
    error: String,
    selection: &BTreeSet<usize>,
    outcomes: &mut BTreeMap<usize, Outcome>,
) {
    events.emit(Event::NodeFailed {
        node: graph.nodes[i].id.clone(),
        error: error.clone(),
        duration_ms: 0,
    });
    outcomes.insert(i, Outcome::Failed { error });
    for j in graph.downstream(i) {
        if selection.contains(&j) && !outcomes.contains_key(&j) {
            let reason = format!("upstream `{}` failed", graph.nodes[i].id);
            events.emit(Event::NodeSkipped {
                node: graph.nodes[j].id.clone(),
                reason: reason.clone(),
            });
            outcomes.insert(j, Outcome::Skipped { reason });
        }
    }
}

/// Phase one: the run key, and whether the store already has it.
async fn keying(
    env: &Arc<RunEnv>,
    graph: &Arc<Graph>,
    i: usize,
    input_digests: BTreeMap<String, Vec<Digest>>,
    force: bool,
) -> Phase {
    let (env2, graph2) = (env.clone(), graph.clone());
    let keyed =
        tokio::task::spawn_blocking(move || -> Result<(KeyInputs, Option<Digest>), StageError> {
            let files = env2.store.file_hasher()?;
            let key = key_inputs(&graph2, i, input_digests, &files)?;
            let hit = if force {
                None
            } else {
                env2.store.lookup(&key.run_key())?.map(|r| r.digest)
            };
            if let Some(digest) = hit {
                let node = &graph2.nodes[i].id;
                update_ref(&env2, &graph2.recipe.name, node, key.run_key(), digest)?;
            }
            Ok((key, hit))
        })
        .await;
    match keyed {
        Ok(Ok((key, hit))) => {
            if let Some(digest) = hit {
                env.events.emit(Event::NodeCached {
                    node: graph.nodes[i].id.clone(),
                    run_key: key.run_key(),
                    digest,
                });
            }
            Phase::Keyed { key, hit }
        }
        Ok(Err(e)) => Phase::Done(Err(e.context("computing the run key"))),
        Err(e) => Phase::Done(Err(StageError::msg(format!("keying panicked: {e}")))),
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(non-string panic payload)".to_string()
    }
}
