//! The worker side of a remote node: `reasongen exec-node` in any process that opens
//! the run's store. It reads the node's description from the store, prepares the stage
//! from this binary's registry, checks that the run key it computes here is the one the
//! controller computed (same stage version, same external files), and runs the node
//! through the one shared code path ([`execute`]). Its events go to the node's own
//! file, which the controller merges into the run's log. Submitting and watching the
//! job is the runner's business ([`super::slurm`]).

use crate::console::Console;
use crate::events::EventSink;
use crate::executor::Outcome;
use crate::executor::devices::visible_devices;
use crate::executor::node::{NodeSpec, Rank, RunEnv, execute, nodes_dir, tick_progress};
use crate::plan::key_of;
use crate::registry::Registry;
use crate::stage::StageError;
use crate::store::{Store, TmpLease};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

/// The events `exec-node` writes for `node` of run `run_id` (every attempt appends).
pub fn node_events_path(store: &Store, run_id: &str, node: &str) -> PathBuf {
    nodes_dir(store, run_id).join(format!("{node}.events.jsonl"))
}

/// Run `node` of run `run_id` from its description in `store`. Its GPUs are those of
/// `CUDA_VISIBLE_DEVICES`, as a batch system sets it; its rank, of a node launched as
/// several (`srun`), is `SLURM_PROCID`.
pub async fn exec_node(
    store: Store,
    registry: &Registry,
    run_id: &str,
    node: &str,
    console: Arc<Console>,
    cancel: CancellationToken,
) -> Result<Outcome, StageError> {
    let spec = NodeSpec::load(&store, run_id, node)?;
    let kind = &spec.key.stage;
    let stage = registry.get(kind).ok_or_else(|| {
        StageError::msg(format!(
            "node `{node}`: this binary has no stage kind `{kind}`"
        ))
    })?;
    let prepared = stage.prepare(&spec.key.config).map_err(|e| {
        StageError::msg(format!(
            "node `{node}`: config{} rejected: {}",
            if e.path.is_empty() {
                String::new()
            } else {
                format!(" key `{}`", e.path)
            },
            e.message
        ))
    })?;
    let files = store.file_hasher()?;
    let key = key_of(
        prepared.as_ref(),
        spec.seed,
        &spec.recipe_dir,
        spec.key.inputs.clone(),
        &files,
    )?;
    if key.run_key() != spec.run_key() {
        return Err(StageError::msg(format!(
            "node `{node}`: the run key computed here differs from the controller's: {}",
            key.changes_since(&spec.key).join("; ")
        )));
    }
    let want = prepared.resources().gpus as usize;
    let devices = visible_devices(std::env::var("CUDA_VISIBLE_DEVICES").ok().as_deref());
    if devices.len() < want {
        return Err(StageError::msg(format!(
            "node `{node}` needs {want} GPU(s) but CUDA_VISIBLE_DEVICES gives {}",
            devices.len()
        )));
    }

    // Under `srun`, one process per rank: rank 0 locks, publishes and writes the
    // node's events; the other ranks log to their job output only.
    let rank = match std::env::var("SLURM_PROCID").ok().map(|r| r.parse::<u32>()) {
        None | Some(Ok(0)) => Rank::Leader,
        Some(Ok(r)) => Rank::Follower(r),
        Some(Err(e)) => {
            return Err(StageError::msg(format!("SLURM_PROCID is not a rank: {e}")));
        }
    };
    let events = match rank {
        Rank::Leader => {
            let path = node_events_path(&store, run_id, node);
            EventSink::to_file(&path, vec![console.listener()])
                .map_err(|e| StageError::from(e).context(path.display()))?
        }
        Rank::Follower(_) => EventSink::detached(vec![console.listener()]),
    };
    let lease_name = format!("{run_id}.{node}.{}", std::process::id());
    let env = Arc::new(RunEnv {
        lease: Arc::new(TmpLease::new(&store, &lease_name)?),
        store,
        events,
        run_id: run_id.to_string(),
        cancel,
        active: Mutex::new(BTreeMap::new()),
        run_budget: None,
    });
    let ticker = tokio::spawn(tick_progress(env.clone(), move |active| {
        console.tick(active)
    }));
    let result = execute(&env, &spec, prepared.as_ref(), spec.threads, devices, rank).await;
    ticker.abort();
    result
}
