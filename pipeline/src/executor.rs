//! The local executor: runs a graph's nodes, concurrently where the DAG and the declared
//! resources allow, skipping fresh nodes and cutting off early when a re-run reproduces
//! the same content.
//!
//! A node goes through two phases. *Keying* (no resources held): compute the run key
//! from the input digests and external files, and look it up. *Running* (resources
//! held): take the node lock, look again (another process may have finished it), run
//! the stage into a private folder under `tmp/`, publish by rename, record the key,
//! move the ref. A failing node skips its dependents while unrelated branches go on;
//! cancellation drops running stages, and nothing half-written is ever published.

use crate::artifact::Lineage;
use crate::budget::Budget;
use crate::console::Console;
use crate::context::{InputArtifact, StageContext, Tally};
use crate::digest::Digest;
use crate::events::{Event, EventSink, RunStatus, now_ms};
use crate::faults::fault_point_for;
use crate::key::KeyInputs;
use crate::plan::key_inputs;
use crate::progress::Progress;
use crate::recipe::Graph;
use crate::stage::{Resources, StageError};
use crate::store::{KeyRecord, NodeLock, Ref, Store, TmpLease};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// What the machine gives a run.
#[derive(Clone, Copy, Debug)]
pub struct Capacity {
    pub threads: u32,
    pub gpus: u32,
    pub llm_slots: u32,
}

impl Capacity {
    fn fits(&self, used: &Resources, want: &Resources) -> bool {
        used.threads + want.threads <= self.threads
            && used.gpus + want.gpus <= self.gpus
            && used.llm_slots + want.llm_slots <= self.llm_slots
    }

    /// A request clamped to what exists, so a node asking for 8 threads on 2 cores runs.
    fn clamp(&self, want: Resources) -> Resources {
        Resources {
            threads: want.threads.clamp(1, self.threads.max(1)),
            gpus: want.gpus,
            llm_slots: want.llm_slots.min(self.llm_slots),
        }
    }
}

#[derive(Clone, Debug)]
pub struct RunOptions {
    pub capacity: Capacity,
    /// Run only these nodes and what they need (all nodes if empty).
    pub targets: Vec<usize>,
    /// Re-run these nodes even if fresh.
    pub force: BTreeSet<usize>,
    /// What the run's nodes may spend together, in USD (`--budget-usd`).
    pub budget_usd: Option<f64>,
}

/// How one node ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Ran {
        digest: Digest,
        duration_ms: u64,
        unchanged: bool,
    },
    Cached {
        digest: Digest,
    },
    Failed {
        error: String,
    },
    Skipped {
        reason: String,
    },
    Cancelled,
}

pub struct RunSummary {
    pub run_id: String,
    pub status: RunStatus,
    pub duration_ms: u64,
    /// Outcome of every selected node, in topological order.
    pub outcomes: Vec<(String, Outcome)>,
}

impl RunSummary {
    pub fn failed(&self) -> impl Iterator<Item = (&str, &str)> {
        self.outcomes.iter().filter_map(|(n, o)| match o {
            Outcome::Failed { error } => Some((n.as_str(), error.as_str())),
            _ => None,
        })
    }
}

/// A fresh run id: UTC time to the millisecond (so ids sort in time order) and a few
/// hex digits that differ between runs started in the same millisecond.
pub fn new_run_id() -> String {
    let now = std::time::SystemTime::now();
    let stamp = humantime::format_rfc3339_millis(now)
        .to_string()
        .replace(['-', ':'], "");
    let nonce = Digest::of_json(&(
        std::process::id(),
        now_ms(),
        Instant::now().elapsed().as_nanos(),
    ));
    format!("{stamp}-{}", &nonce.to_hex()[..6])
}

enum Phase {
    Keyed { key: KeyInputs, hit: Option<Digest> },
    Done(Result<Outcome, StageError>),
}

struct Shared {
    graph: Arc<Graph>,
    store: Store,
    events: EventSink,
    console: Arc<Console>,
    run_id: String,
    lease: Arc<TmpLease>,
    cancel: CancellationToken,
    active: Mutex<BTreeMap<String, Progress>>,
    run_budget: Option<Arc<Budget>>,
}

/// Run `graph` against `store`.
pub async fn run(
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
    let shared = Arc::new(Shared {
        graph: graph.clone(),
        store,
        events: events.clone(),
        console: console.clone(),
        run_id: run_id.clone(),
        lease,
        cancel: cancel.clone(),
        active: Mutex::new(BTreeMap::new()),
        run_budget: options
            .budget_usd
            .map(|usd| Budget::new("the run's --budget-usd", usd)),
    });

    let ticker = tokio::spawn(tick_progress(shared.clone()));
    let mut outcomes: BTreeMap<usize, Outcome> = BTreeMap::new();
    let mut digests: BTreeMap<usize, Digest> = BTreeMap::new();
    let mut started_nodes: BTreeSet<usize> = BTreeSet::new();
    let mut queue: VecDeque<(usize, KeyInputs, Resources)> = VecDeque::new();
    let mut used = Resources {
        threads: 0,
        gpus: 0,
        llm_slots: 0,
    };
    let mut holding: BTreeMap<usize, Resources> = BTreeMap::new();
    let mut tasks: JoinSet<(usize, Phase)> = JoinSet::new();
    let mut task_nodes: BTreeMap<tokio::task::Id, usize> = BTreeMap::new();

    // Nodes that cannot run on this machine fail up front.
    for &i in &selection {
        let want = graph.nodes[i].prepared.resources();
        if want.gpus > capacity.gpus {
            outcomes.insert(
                i,
                Outcome::Failed {
                    error: format!(
                        "needs {} GPU(s); this run has {} (--gpus)",
                        want.gpus, capacity.gpus
                    ),
                },
            );
        }
    }
    for (&i, o) in &outcomes.clone() {
        if let Outcome::Failed { error } = o {
            fail_node(&shared, i, error.clone(), 0, &selection, &mut outcomes);
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
                    let s = shared.clone();
                    let force = options.force.contains(&i);
                    let h = tasks.spawn(async move {
                        let phase = keying(&s, i, input_digests, force).await;
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
                    holding.insert(i, want);
                    let s = shared.clone();
                    let in_arts = input_artifacts(&shared, i, &digests);
                    let force = options.force.contains(&i);
                    let h = tasks.spawn(async move {
                        let r = execute(&s, i, key, want, in_arts, force).await;
                        (i, Phase::Done(r))
                    });
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
        if let Some(r) = holding.remove(&i) {
            used.threads -= r.threads;
            used.gpus -= r.gpus;
            used.llm_slots -= r.llm_slots;
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
                let error = shared.events.redact(&e.to_string());
                fail_node(&shared, i, error, 0, &selection, &mut outcomes);
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
    shared: &Shared,
    i: usize,
    error: String,
    duration_ms: u64,
    selection: &BTreeSet<usize>,
    outcomes: &mut BTreeMap<usize, Outcome>,
) {
    let graph = &shared.graph;
    shared.events.emit(Event::NodeFailed {
        node: graph.nodes[i].id.clone(),
        error: error.clone(),
        duration_ms,
    });
    outcomes.insert(i, Outcome::Failed { error });
    for j in graph.downstream(i) {
        if selection.contains(&j) && !outcomes.contains_key(&j) {
            let reason = format!("upstream `{}` failed", graph.nodes[i].id);
            shared.events.emit(Event::NodeSkipped {
                node: graph.nodes[j].id.clone(),
                reason: reason.clone(),
            });
            outcomes.insert(j, Outcome::Skipped { reason });
        }
    }
}

/// Phase one: the run key, and whether the store already has it.
async fn keying(
    s: &Arc<Shared>,
    i: usize,
    input_digests: BTreeMap<String, Vec<Digest>>,
    force: bool,
) -> Phase {
    let s2 = s.clone();
    let keyed =
        tokio::task::spawn_blocking(move || -> Result<(KeyInputs, Option<Digest>), StageError> {
            let files = s2.store.file_hasher()?;
            let key = key_inputs(&s2.graph, i, input_digests, &files)?;
            let hit = if force {
                None
            } else {
                s2.store.lookup(&key.run_key())?.map(|r| r.digest)
            };
            if let Some(digest) = hit {
                update_ref(&s2, i, key.run_key(), digest)?;
            }
            Ok((key, hit))
        })
        .await;
    match keyed {
        Ok(Ok((key, hit))) => {
            if let Some(digest) = hit {
                s.events.emit(Event::NodeCached {
                    node: s.graph.nodes[i].id.clone(),
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

/// Point the node's ref at `digest` unless it already does.
fn update_ref(s: &Shared, i: usize, run_key: Digest, digest: Digest) -> Result<(), StageError> {
    let recipe = &s.graph.recipe.name;
    let node = &s.graph.nodes[i].id;
    let current = s.store.get_ref(recipe, node)?;
    if current
        .as_ref()
        .is_some_and(|r| r.run_key == run_key && r.digest == digest)
    {
        return Ok(());
    }
    s.store.put_ref(
        recipe,
        node,
        &Ref {
            run_key,
            digest,
            updated_ms: now_ms(),
            run_id: s.run_id.clone(),
        },
    )?;
    Ok(())
}

fn input_artifacts(
    s: &Shared,
    i: usize,
    digests: &BTreeMap<usize, Digest>,
) -> BTreeMap<String, Vec<(String, Digest)>> {
    s.graph.nodes[i]
        .inputs
        .iter()
        .map(|(name, js)| {
            (
                name.clone(),
                js.iter()
                    .map(|j| (s.graph.nodes[*j].id.clone(), digests[j]))
                    .collect(),
            )
        })
        .collect()
}

/// Phase two: run the stage and publish its artifact.
async fn execute(
    s: &Arc<Shared>,
    i: usize,
    key: KeyInputs,
    granted: Resources,
    inputs: BTreeMap<String, Vec<(String, Digest)>>,
    force: bool,
) -> Result<Outcome, StageError> {
    let node = &s.graph.nodes[i];
    let run_key = key.run_key();

    // Only one process computes a key at a time; the others wait and then find it.
    let lock = match NodeLock::try_acquire(&s.store, &run_key)? {
        Some(lock) => lock,
        None => {
            s.events.emit(Event::NodeWaiting {
                node: node.id.clone(),
                reason: "another process is computing this node; waiting for it".into(),
            });
            let store = s.store.clone();
            tokio::task::spawn_blocking(move || NodeLock::acquire(&store, &run_key))
                .await
                .map_err(|e| StageError::msg(e.to_string()))??
        }
    };
    // Unless forced, look again: the process we waited for may have finished it.
    if !force && let Some(rec) = s.store.lookup(&run_key)? {
        update_ref(s, i, run_key, rec.digest)?;
        s.events.emit(Event::NodeCached {
            node: node.id.clone(),
            run_key,
            digest: rec.digest,
        });
        return Ok(Outcome::Cached { digest: rec.digest });
    }

    let work = s.lease.dir().join(&node.id);
    let out_dir = work.join("out");
    let scratch_dir = work.join("scratch");
    for d in [&out_dir, &scratch_dir] {
        std::fs::create_dir_all(d).map_err(|e| StageError::from(e).context(d.display()))?;
    }
    let mut in_arts = BTreeMap::new();
    for (name, list) in inputs {
        let mut v = Vec::new();
        for (producer, digest) in list {
            let manifest = s.store.manifest(&digest)?;
            s.store
                .check_held(&manifest)
                .map_err(|e| StageError::from(e).context(format!("input `{name}` ({producer})")))?;
            v.push(InputArtifact {
                node: producer,
                digest,
                dir: s.store.object_dir(&digest),
                content: manifest.content,
            });
        }
        in_arts.insert(name, v);
    }
    let progress = Progress::default();
    let tally = Tally::default();
    let ctx = StageContext {
        node: node.id.clone(),
        recipe: s.graph.recipe.name.clone(),
        run_key,
        out_dir: out_dir.clone(),
        scratch_dir: scratch_dir.clone(),
        recipe_dir: s.graph.recipe.dir.clone(),
        seed: node.seed,
        threads: granted.threads as usize,
        progress: progress.clone(),
        cancel: s.cancel.child_token(),
        run_budget: s.run_budget.clone(),
        inputs: in_arts,
        events: s.events.clone(),
        store: s.store.clone(),
        tally: tally.clone(),
        run_dir: s.store.run_dir(&s.run_id),
    };

    s.events.emit(Event::NodeStarted {
        node: node.id.clone(),
        stage: node.prepared.kind().to_string(),
        run_key,
    });
    s.active
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(node.id.clone(), progress);
    let started_ms = now_ms();
    let started = Instant::now();
    let result = tokio::select! {
        r = node.prepared.run(ctx) => r,
        _ = s.cancel.cancelled() => Err(StageError::cancelled()),
    };
    s.active
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&node.id);
    let output = match result {
        Ok(o) => o,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&work);
            return Err(e);
        }
    };
    fault_point_for("node.after_run", &node.id);

    let duration_ms = started.elapsed().as_millis() as u64;
    let counters = tally.snapshot();
    let lineage = Lineage {
        key,
        run_key,
        recipe: s.graph.recipe.name.clone(),
        node: node.id.clone(),
        run_id: s.run_id.clone(),
        started_ms,
        duration_ms,
        counters: counters.clone(),
    };
    let kind = node.prepared.output().kind;
    let store = s.store.clone();
    let node_id = node.id.clone();
    let published = tokio::task::spawn_blocking(move || -> Result<_, StageError> {
        let manifest = store.publish(&out_dir, kind, &output, lineage.clone(), &tally.held())?;
        let _ = std::fs::remove_dir_all(&work);
        fault_point_for("publish.before_key", &node_id);
        store.put_key(&KeyRecord {
            digest: manifest.digest,
            lineage,
        })?;
        // Done: its checkpoints are of no more use.
        store.checkpoints(&run_key).clear()?;
        Ok(manifest)
    })
    .await
    .map_err(|e| StageError::msg(format!("publishing panicked: {e}")))??;
    drop(lock);

    let digest = published.digest;
    let previous = s.store.get_ref(&s.graph.recipe.name, &node.id)?;
    let unchanged = previous.is_some_and(|r| r.digest == digest);
    update_ref(s, i, run_key, digest)?;
    s.events.emit(Event::NodeFinished {
        node: node.id.clone(),
        run_key,
        digest,
        duration_ms,
        rows: published.content.rows,
        bytes: published.content.total_bytes(),
        counters,
        unchanged,
    });
    Ok(Outcome::Ran {
        digest,
        duration_ms,
        unchanged,
    })
}

/// Refresh the console several times a second and write progress events every two
/// seconds for nodes that moved.
async fn tick_progress(s: Arc<Shared>) {
    let mut last_event = Instant::now();
    let mut reported: BTreeMap<String, u64> = BTreeMap::new();
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let active: Vec<(String, Progress)> = s
            .active
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(n, p)| (n.clone(), p.clone()))
            .collect();
        s.console.tick(&active);
        if last_event.elapsed() >= Duration::from_secs(2) {
            last_event = Instant::now();
            for (node, p) in &active {
                let (done, total, unit) = p.snapshot();
                if reported.get(node) != Some(&done) {
                    reported.insert(node.clone(), done);
                    s.events.emit(Event::NodeProgress {
                        node: node.clone(),
                        done,
                        total,
                        unit,
                    });
                }
            }
        }
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
