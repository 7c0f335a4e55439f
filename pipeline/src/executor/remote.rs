//! The worker side of a remote node: `reasongen exec-node` in any process that opens
//! the run's store. It reads the node's description from the store, prepares the stage
//! from this binary's registry, checks that the run key it computes here is the one the
//! controller computed (same stage version, same external files), and runs the node
//! through the one shared code path ([`execute`]). Its events go to the node's own
//! run file (on S3 shared through the bucket), which the controller merges into the
//! run's log. With a shard (`--shard k/n`) it does that shard of a shardable node's
//! items: its events go to a run file of their own, and a done file marks the shard
//! finished. Submitting and watching the
//! job is the runner's business ([`super::slurm`]).

use crate::console::Console;
use crate::events::Event;
use crate::events::EventSink;
use crate::executor::Outcome;
use crate::executor::devices::visible_devices;
use crate::executor::node::{NodeSpec, Rank, RunEnv, events_file, execute, tick_progress};
use crate::plan::key_of;
use crate::registry::Registry;
use crate::shard::Shard;
use crate::stage::StageError;
use crate::store::{Store, TmpLease};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often a node's events are shared while it runs (on S3: uploaded).
const SHARE_EVERY: Duration = Duration::from_secs(1);

/// The run file of the events `exec-node --shard` writes for one shard of `node`'s
/// items.
pub fn shard_events_file(node: &str, shard: Shard) -> String {
    format!("nodes/{node}.{}.events.jsonl", shard_label(shard))
}

/// The run file written once a shard of `node`'s items is done: whoever submitted the
/// shards looks for it to know which to submit again.
pub fn shard_done_file(node: &str, shard: Shard) -> String {
    format!("nodes/{node}.{}.done", shard_label(shard))
}

fn shard_label(shard: Shard) -> String {
    format!("shard-{}-of-{}", shard.index(), shard.count())
}

/// Run `node` of run `run_id` from its description in `store` (with `shard`, only
/// that shard of its items, publishing nothing). Its GPUs are those of
/// `CUDA_VISIBLE_DEVICES`, as a batch system sets it; its rank, of a node launched as
/// several (`srun`), is `SLURM_PROCID`.
pub async fn exec_node(
    store: Store,
    registry: &Registry,
    run_id: &str,
    node: &str,
    shard: Option<Shard>,
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
    if shard.is_some() && !prepared.shardable() {
        return Err(StageError::msg(format!(
            "node `{node}`: stage `{kind}` does not split its work into shards"
        )));
    }
    let rank = match std::env::var("SLURM_PROCID").ok().map(|r| r.parse::<u32>()) {
        None | Some(Ok(0)) => shard.map_or(Rank::Leader, Rank::Shard),
        Some(Ok(r)) => Rank::Follower(r),
        Some(Err(e)) => {
            return Err(StageError::msg(format!("SLURM_PROCID is not a rank: {e}")));
        }
    };
    // The controller reads them as a run file: on S3 from the bucket, where this
    // process shares them every second and when it ends.
    let events_name = match rank {
        Rank::Shard(s) => shard_events_file(node, s),
        _ => events_file(node),
    };
    let events = match rank {
        Rank::Leader | Rank::Shard(_) => {
            let path = store.continue_run_file(run_id, &events_name)?;
            EventSink::to_file(&path, vec![console.listener()])
                .map_err(|e| StageError::from(e).context(path.display()))?
        }
        Rank::Follower(_) => EventSink::detached(vec![console.listener()]),
    };
    let share = |store: Store, run_id: String| {
        let name = events_name.clone();
        move || store.share_run_file(&run_id, &name)
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
    let sharer = matches!(rank, Rank::Leader | Rank::Shard(_)).then(|| {
        let share = share(env.store.clone(), run_id.to_string());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(SHARE_EVERY).await;
                let _ = tokio::task::spawn_blocking(share.clone()).await;
            }
        })
    });
    let result = execute(&env, &spec, prepared.as_ref(), spec.threads, devices, rank).await;
    ticker.abort();
    if let Some(sharer) = sharer {
        sharer.abort();
        // Without a shared filesystem the job's log stays on its machine: the error
        // goes with the events, which the controller shows.
        if let Err(e) = &result {
            env.events.emit(Event::Message {
                node: node.to_string(),
                level: "error".into(),
                text: format!("exec-node: {e}"),
            });
        }
        let shared = share(env.store.clone(), run_id.to_string());
        tokio::task::spawn_blocking(shared)
            .await
            .map_err(|e| StageError::msg(format!("sharing the events of node `{node}`: {e}")))??;
    }
    if let (Rank::Shard(s), Ok(Outcome::Skipped { reason })) = (rank, &result) {
        env.store
            .put_run_file(run_id, &shard_done_file(node, s), reason.as_bytes())?;
    }
    result
}
