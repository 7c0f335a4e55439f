//! Running one node, the single code path every runner ends in: the node's
//! serialisable description ([`NodeSpec`], the run file `nodes/<node>.json` that
//! other processes read), the environment a run gives its nodes ([`RunEnv`]), and
//! [`execute`]: take the node lock, look again, run the stage into a private folder,
//! publish, record the key, move the ref. Deciding what runs is the scheduler's job.

use crate::artifact::Lineage;
use crate::budget::Budget;
use crate::context::{InputArtifact, StageContext, Tally};
use crate::digest::Digest;
use crate::events::{Event, EventSink, now_ms};
use crate::executor::Outcome;
use crate::faults::fault_point_for;
use crate::key::KeyInputs;
use crate::progress::Progress;
use crate::registry::PreparedNode;
use crate::shard::Shard;
use crate::stage::StageError;
use crate::store::{KeyRecord, NodeLock, Ref, Store, TmpLease};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Everything needed to run one node of a run in any process that opens the same
/// store: its key inputs (stage, canonical config, input digests, externals, seed) and
/// what the key does not hold.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeSpec {
    pub recipe: String,
    /// Folder against which the config's relative paths resolve.
    pub recipe_dir: PathBuf,
    pub node: String,
    pub key: KeyInputs,
    /// Input name → the nodes that produced the artifacts in `key.inputs`, in order.
    pub producers: BTreeMap<String, Vec<String>>,
    /// The node's seed (in the key only when the stage uses it).
    pub seed: u64,
    /// Threads granted to the node.
    pub threads: u32,
    /// Re-run even if the key is in the store (`--force`).
    pub force: bool,
}

impl NodeSpec {
    pub fn run_key(&self) -> Digest {
        self.key.run_key()
    }

    /// Write the description where [`Self::load`] finds it, in any process that opens
    /// the store (a run file: on S3 also in the bucket).
    pub fn save(&self, store: &Store, run_id: &str) -> Result<(), StageError> {
        let name = spec_file(&self.node);
        let text = serde_json::to_vec_pretty(self).expect("specs serialise");
        store.put_run_file(run_id, &name, &text).map_err(|e| {
            StageError::from(e).context(format!(
                "writing the description of node `{}` of run {run_id}",
                self.node
            ))
        })
    }

    pub fn load(store: &Store, run_id: &str, node: &str) -> Result<NodeSpec, StageError> {
        let name = spec_file(node);
        let what =
            format!("the description of node `{node}` of run {run_id} (runs/{run_id}/{name})");
        let text = store
            .get_run_file(run_id, &name)
            .map_err(|e| StageError::from(e).context(format!("reading {what}")))?
            .ok_or_else(|| StageError::msg(format!("{what} is not in the store")))?;
        serde_json::from_slice(&text)
            .map_err(|e| StageError::from(e).context(format!("parsing {what}")))
    }

    /// The input artifacts bound to each input name.
    fn input_list(&self) -> Result<BTreeMap<String, Vec<(String, Digest)>>, StageError> {
        let mut out = BTreeMap::new();
        for (name, digests) in &self.key.inputs {
            let producers = self.producers.get(name).map_or(&[][..], Vec::as_slice);
            if producers.len() != digests.len() {
                return Err(StageError::msg(format!(
                    "node `{}`: input `{name}` has {} digests but {} producers",
                    self.node,
                    digests.len(),
                    producers.len()
                )));
            }
            out.insert(
                name.clone(),
                producers
                    .iter()
                    .cloned()
                    .zip(digests.iter().copied())
                    .collect(),
            );
        }
        Ok(out)
    }
}

/// The run file (see [`Store::put_run_file`]) of `node`'s description.
fn spec_file(node: &str) -> String {
    format!("nodes/{node}.json")
}

/// The run file of the events a process running `node` alone writes (every attempt
/// appends).
pub fn events_file(node: &str) -> String {
    format!("nodes/{node}.events.jsonl")
}

/// What a run gives each of its nodes, in the process that runs them.
pub struct RunEnv {
    pub(crate) store: Store,
    pub(crate) events: EventSink,
    pub(crate) run_id: String,
    pub(crate) lease: Arc<TmpLease>,
    pub(crate) cancel: CancellationToken,
    /// Progress of the nodes running now, shown by the console.
    pub(crate) active: Mutex<BTreeMap<String, Progress>>,
    pub(crate) run_budget: Option<Arc<Budget>>,
}

impl RunEnv {
    /// The store the run's nodes publish to.
    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    pub(crate) fn set_active(&self, node: &str, progress: Option<Progress>) {
        let mut active = self.active.lock().unwrap_or_else(|p| p.into_inner());
        match progress {
            Some(p) => active.insert(node.to_string(), p),
            None => active.remove(node),
        };
    }

    fn active(&self) -> Vec<(String, Progress)> {
        self.active
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(n, p)| (n.clone(), p.clone()))
            .collect()
    }
}

/// Point `node`'s ref at `digest` unless it already does.
pub(crate) fn update_ref(
    env: &RunEnv,
    recipe: &str,
    node: &str,
    run_key: Digest,
    digest: Digest,
) -> Result<(), StageError> {
    let current = env.store.get_ref(recipe, node)?;
    if current
        .as_ref()
        .is_some_and(|r| r.run_key == run_key && r.digest == digest)
    {
        return Ok(());
    }
    env.store.put_ref(
        recipe,
        node,
        &Ref {
            run_key,
            digest,
            updated_ms: now_ms(),
            run_id: env.run_id.clone(),
        },
    )?;
    Ok(())
}

/// Which process of a node this is: the only one or rank 0 of a data-parallel node
/// (it holds the node lock and publishes), another rank (it runs the stage beside
/// rank 0 and publishes nothing), or one shard of a shardable node's items (it fills
/// the item memo for them and publishes nothing; the node's own run publishes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rank {
    Leader,
    Follower(u32),
    Shard(Shard),
}

/// Run the node described by `spec` with `threads` threads and the GPU ordinals
/// `devices`, and publish its artifact.
pub async fn execute(
    env: &RunEnv,
    spec: &NodeSpec,
    prepared: &dyn PreparedNode,
    threads: u32,
    devices: Vec<u32>,
    rank: Rank,
) -> Result<Outcome, StageError> {
    let run_key = spec.run_key();
    let node = spec.node.as_str();

    // Only one process computes a key at a time; the others wait and then find it.
    let lock = match rank {
        Rank::Follower(_) | Rank::Shard(_) => None,
        Rank::Leader => match lock_or_find(env, spec).await? {
            Ok(lock) => Some(lock),
            Err(found) => return Ok(found),
        },
    };

    let work = env.lease.dir().join(node);
    let out_dir = work.join("out");
    let scratch_dir = work.join("scratch");
    for d in [&out_dir, &scratch_dir] {
        std::fs::create_dir_all(d).map_err(|e| StageError::from(e).context(d.display()))?;
    }
    let mut in_arts = BTreeMap::new();
    for (name, list) in spec.input_list()? {
        let mut v = Vec::new();
        for (producer, digest) in list {
            let manifest = env.store.manifest(&digest)?;
            env.store
                .check_held(&manifest)
                .map_err(|e| StageError::from(e).context(format!("input `{name}` ({producer})")))?;
            v.push(InputArtifact {
                node: producer,
                digest,
                dir: env.store.object_dir(&digest),
                content: manifest.content,
            });
        }
        in_arts.insert(name, v);
    }
    let progress = Progress::default();
    let tally = Tally::default();
    let ctx = StageContext {
        node: node.to_string(),
        recipe: spec.recipe.clone(),
        run_key,
        out_dir: out_dir.clone(),
        scratch_dir: scratch_dir.clone(),
        recipe_dir: spec.recipe_dir.clone(),
        seed: spec.seed,
        threads: threads as usize,
        devices: devices.clone(),
        progress: progress.clone(),
        cancel: env.cancel.child_token(),
        run_budget: env.run_budget.clone(),
        shard: match rank {
            Rank::Shard(s) => Some(s),
            _ => None,
        },
        inputs: in_arts,
        events: env.events.clone(),
        store: env.store.clone(),
        tally: tally.clone(),
        run_dir: env.store.run_dir(&env.run_id),
    };

    env.events.emit(Event::NodeStarted {
        node: node.to_string(),
        stage: prepared.kind().to_string(),
        run_key,
        devices,
    });
    env.set_active(node, Some(progress));
    let started_ms = now_ms();
    let started = Instant::now();
    let result = tokio::select! {
        r = prepared.run(ctx) => r,
        _ = env.cancel.cancelled() => Err(StageError::cancelled()),
    };
    env.set_active(node, None);
    let output = match result {
        Ok(o) => o,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&work);
            return Err(e);
        }
    };
    match rank {
        Rank::Leader => {}
        Rank::Follower(r) => {
            let _ = std::fs::remove_dir_all(&work);
            return Ok(Outcome::Skipped {
                reason: format!("rank {r} of a data-parallel node: rank 0 publishes"),
            });
        }
        Rank::Shard(shard) => {
            let _ = std::fs::remove_dir_all(&work);
            env.events.emit(Event::NodeCounters {
                node: node.to_string(),
                counters: tally.snapshot(),
            });
            return Ok(Outcome::Skipped {
                reason: format!(
                    "shard {shard} of its items memoised; the node's own run publishes"
                ),
            });
        }
    }
    fault_point_for("node.after_run", node);

    let duration_ms = started.elapsed().as_millis() as u64;
    let counters = tally.snapshot();
    let lineage = Lineage {
        key: spec.key.clone(),
        run_key,
        recipe: spec.recipe.clone(),
        node: node.to_string(),
        run_id: env.run_id.clone(),
        started_ms,
        duration_ms,
        counters: counters.clone(),
    };
    let kind = prepared.output().kind;
    let store = env.store.clone();
    let node_id = node.to_string();
    let published = tokio::task::spawn_blocking(move || -> Result<_, StageError> {
        let manifest = store.publish(&out_dir, kind, &output, lineage.clone(), &tally.held())?;
        let _ = std::fs::remove_dir_all(&work);
        fault_point_for("publish.before_key", &node_id);
        // The record in force: on a store where the first writer wins, another
        // process's result for the same key.
        let kept = store.put_key(&KeyRecord {
            digest: manifest.digest,
            lineage,
        })?;
        // Done: its checkpoints are of no more use.
        store.checkpoints(&run_key).clear()?;
        Ok((manifest, kept.digest))
    })
    .await
    .map_err(|e| StageError::msg(format!("publishing panicked: {e}")))??;
    drop(lock);

    let (published, digest) = published;
    let previous = env.store.get_ref(&spec.recipe, node)?;
    let unchanged = previous.is_some_and(|r| r.digest == digest);
    update_ref(env, &spec.recipe, node, run_key, digest)?;
    env.events.emit(Event::NodeFinished {
        node: node.to_string(),
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

/// Take the node lock, waiting for another process that holds it; then, unless forced,
/// look again: the process we waited for may have finished the node (`Err` with the
/// outcome then).
async fn lock_or_find(
    env: &RunEnv,
    spec: &NodeSpec,
) -> Result<Result<NodeLock, Outcome>, StageError> {
    let run_key = spec.run_key();
    let node = spec.node.as_str();
    let lock = match NodeLock::try_acquire(&env.store, &run_key)? {
        Some(lock) => lock,
        None => {
            env.events.emit(Event::NodeWaiting {
                node: node.to_string(),
                reason: "another process is computing this node; waiting for it".into(),
            });
            let store = env.store.clone();
            tokio::task::spawn_blocking(move || NodeLock::acquire(&store, &run_key))
                .await
                .map_err(|e| StageError::msg(e.to_string()))??
        }
    };
    if !spec.force
        && let Some(rec) = env.store.lookup(&run_key)?
    {
        update_ref(env, &spec.recipe, node, run_key, rec.digest)?;
        env.events.emit(Event::NodeCached {
            node: node.to_string(),
            run_key,
            digest: rec.digest,
        });
        return Ok(Err(Outcome::Cached { digest: rec.digest }));
    }
    Ok(Ok(lock))
}

/// Refresh the console several times a second (through `tick`) and write progress
/// events every two seconds for nodes that moved.
pub(crate) async fn tick_progress(env: Arc<RunEnv>, tick: impl Fn(&[(String, Progress)])) {
    let mut last_event = Instant::now();
    let mut reported: BTreeMap<String, u64> = BTreeMap::new();
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let active = env.active();
        tick(&active);
        if last_event.elapsed() >= Duration::from_secs(2) {
            last_event = Instant::now();
            for (node, p) in &active {
                let (done, total, unit) = p.snapshot();
                if reported.get(node) != Some(&done) {
                    reported.insert(node.clone(), done);
                    env.events.emit(Event::NodeProgress {
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
